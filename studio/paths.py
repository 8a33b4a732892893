"""Where the studio keeps its state. Everything lives under $STUDIO_HOME."""

from __future__ import annotations

import os
from pathlib import Path


def studio_home() -> Path:
    """The state folder: $STUDIO_HOME, or ~/.fine-tuning-studio."""
    home = Path(os.environ.get("STUDIO_HOME") or Path.home() / ".fine-tuning-studio")
    home.mkdir(parents=True, exist_ok=True)
    return home


def models_dir() -> Path:
    """Converted model caches. $STUDIO_MODELS_DIR lets tests share one cache across homes."""
    override = os.environ.get("STUDIO_MODELS_DIR")
    if override:
        Path(override).mkdir(parents=True, exist_ok=True)
        return Path(override)
    return _sub("models")


def datasets_dir() -> Path:
    return _sub("datasets")


def runs_dir() -> Path:
    return _sub("runs")


def registry_path() -> Path:
    return studio_home() / "registry.sqlite"


def _sub(name: str) -> Path:
    path = studio_home() / name
    path.mkdir(parents=True, exist_ok=True)
    return path


# Served beyond loopback (launch.py sets these), a path a user types must lie under the studio home,
# the shipped assets, or a root the owner listed with --allow-path (os.pathsep-separated).
CONFINE_ENV = "STUDIO_CONFINE_PATHS"
ALLOW_ENV = "STUDIO_ALLOWED_PATHS"


def allowed_roots() -> list[Path]:
    """Where user-typed paths may point when confinement is on."""
    from .resources import assets_root

    extra = [Path(p).expanduser() for p in os.environ.get(ALLOW_ENV, "").split(os.pathsep) if p.strip()]
    return [root.resolve() for root in (studio_home(), assets_root(), *extra)]


def confine(path: str | Path, what: str) -> Path:
    """`path` (resolved, symlinks followed) when confinement is off or it lies under an allowed root;
    otherwise a StudioError naming the field. Relative paths resolve against the working directory."""
    from .errors import StudioError

    resolved = Path(str(path).strip()).expanduser().resolve()
    if os.environ.get(CONFINE_ENV) != "1":
        return resolved
    roots = allowed_roots()
    if any(resolved == root or resolved.is_relative_to(root) for root in roots):
        return resolved
    raise StudioError(
        f"{path} is outside the folders this studio may read.",
        where=what,
        hint=f"Served beyond this machine, paths must lie under {', '.join(map(str, roots))}; the owner can add a folder with `launch.py --allow-path DIR`.",
    )


def confine_model(value, what: str) -> None:
    """A model source (run field or judge) that names a local path is confined; `embedded`, a hub id
    or a run id is not a path."""
    value = str(value or "").strip()
    if value and (value.endswith(".gguf") or value.startswith((".", "/", "~")) or Path(value).expanduser().exists()):
        confine(value, what)


def confine_config(cfg) -> None:
    """Confine every path a run config names: data files, the constitution, GRPO reward files, and
    the model / judge / reward model (also a GRPO reward_model reward's run) where they name a local
    path rather than a hub or run id."""
    for name in ("data", "sft_data", "constitution"):
        value = str(getattr(cfg, name, "") or "").strip()
        if value:
            confine(value, name)
    for name in ("model", "judge_model", "reward_model"):
        confine_model(getattr(cfg, name, ""), name)
    for index, spec in enumerate(getattr(cfg, "rewards", None) or []):
        if isinstance(spec, dict) and spec.get("type") == "reward_model":
            confine_model(spec.get("run"), f"rewards[{index}].run")  # a reward run's folder (a run id is no path)
        for key in ("file", "schema"):
            value = spec.get(key) if isinstance(spec, dict) else None
            if isinstance(value, str) and value.strip() and (key == "file" or value.strip().endswith(".json")):
                confine(value, f"rewards[{index}].{key}")


def safe_name(text: str, *, limit: int = 60, extra: str = "", fallback: str | None = None, what: str = "name") -> str:
    """The one name sanitiser (runs, dataset versions and files, presets, suites, exports): ASCII
    letters, digits, - and _ (plus `extra`), every other run of characters one '-', at most `limit`
    long, so a name never leaves its folder. Nothing usable left: `fallback`, else a StudioError
    asking for a `what`."""
    import re

    from .errors import StudioError

    allowed = "A-Za-z0-9_" + re.escape(extra) + "-"
    cleaned = re.sub(f"[^{allowed}]+", "-", str(text).strip())[:limit].strip("-" + extra)
    if cleaned:
        return cleaned
    if fallback is not None:
        return fallback
    raise StudioError(f"nothing usable is left of {str(text).strip()[:40]!r}; a {what} name needs letters, digits, - or _.", where=what)
