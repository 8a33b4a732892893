"""Saved presets: a named RunConfig (minus the dataset) under $STUDIO_HOME/presets/NAME.yaml."""

from __future__ import annotations


import yaml

from ..config import RunConfig
from ..errors import StudioError
from ..paths import safe_name, studio_home

# Keys that describe one particular run rather than a recipe.
RUN_SPECIFIC = ("data", "name")


def presets_dir():
    path = studio_home() / "presets"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _file(name: str):
    return presets_dir() / f"{safe_name(name, extra='.', what='preset')}.yaml"


def save_preset(name: str, cfg: RunConfig) -> str:
    values = {k: v for k, v in cfg.to_dict().items() if k not in RUN_SPECIFIC}
    path = _file(name)
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return path.stem


def list_presets() -> list[str]:
    return sorted(p.stem for p in presets_dir().glob("*.yaml"))


def load_preset(name: str) -> dict:
    """The preset's values (validated against RunConfig's keys), to merge over the form."""
    path = _file(name)
    if not path.is_file():
        raise StudioError(f"no preset named '{name}'.", where=str(path.parent), hint=f"Saved presets: {', '.join(list_presets()) or 'none'}.")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise StudioError(f"the preset is not valid YAML ({err}).", where=str(path)) from None
    RunConfig.from_dict({**values, "data": "preset-check"}, where=str(path))  # one clear message for a bad key
    return values
