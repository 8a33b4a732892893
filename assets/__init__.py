"""Files the studio ships: demo data, advisor rules, reference architectures, probes, CSS.

Installed, this folder is the package `studio_assets` (pyproject.toml maps it); read it through
`studio.resources.asset()`, which also finds it in a checkout.
"""
