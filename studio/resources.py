"""The files the studio ships (demo data, advisor rules, reference architectures, probes, CSS) and
how a child `python -m studio` finds this same package, from any working directory.

In a checkout they are the repository's `assets/` folder; in an installed wheel the same folder is
the package `studio_assets` (pyproject.toml maps `assets/` to it), read through importlib.resources.
Every lookup of a shipped file goes through `asset()`; nothing else climbs `__file__`'s parents.
"""

from __future__ import annotations

import importlib.resources
import os
from pathlib import Path

ASSETS_PACKAGE = "studio_assets"
# The folder that holds the `studio` package: a checkout's root, or site-packages.
PACKAGE_ROOT = Path(__file__).resolve().parent.parent


def assets_root() -> Path:
    """The folder of shipped files: the installed `studio_assets` package, else the checkout's assets/."""
    try:
        return Path(str(importlib.resources.files(ASSETS_PACKAGE)))
    except ModuleNotFoundError:
        return PACKAGE_ROOT / "assets"


def asset(relative: str) -> Path:
    """A shipped file by its path under assets/, e.g. asset("demo/json_answers.jsonl")."""
    return assets_root() / relative


def child_env(env: dict | None = None) -> dict:
    """`env` (default: this process's) with PYTHONPATH led by the folder holding `studio`, so a child
    `python -m studio ...` imports this same package whatever its working directory."""
    env = dict(os.environ if env is None else env)
    parts = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    root = str(PACKAGE_ROOT)
    env["PYTHONPATH"] = os.pathsep.join([root, *(p for p in parts if p != root)])
    return env


def render_template(name: str, **context) -> str:
    """One of the studio's jinja2 templates (studio/templates, package data), HTML-escaped."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("studio", "templates"), autoescape=jinja2.select_autoescape(["html", "j2"]))
    return env.get_template(name).render(**context)
