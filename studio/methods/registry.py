"""The method registry: one spec per training method, and every list of methods derives from it
(config's METHODS / knobs / adapter-or-full, the trainer module, the up-front data check, the
estimator's terms, the advisor's preset, the fast path).

Adding a method = one new trainer module `studio/methods/<module>.py` + its tests. The module
declares its own spec(s) at top level and has `run(cfg, ctx)`:

    from .registry import MethodSpec

    SPEC = MethodSpec("echo", "Echo: ...", data="instruction", weights="adapter", order=130)
    # or, for a module that trains several methods: SPECS = (MethodSpec(...), MethodSpec(...))

Read by the UI process (config validation, pre-flight, advisor, estimator): never imports torch.
The trainer modules import torch, TRL and PEFT at module level, so the registry does not import
them: it reads each module's `SPEC`/`SPECS` assignment from its source (ast) and evaluates just
that expression, with `MethodSpec` and the module's own literal constants (e.g. a shared tuple of
knobs) as the only names. When the trainer process imports the module, the same expression builds
the same spec (tests/unit/test_method_registry.py checks they agree).
"""

from __future__ import annotations

import ast
import importlib.util
import pkgutil
import sys
from dataclasses import KW_ONLY, dataclass, replace

SPEC_NAMES = ("SPEC", "SPECS")


@dataclass(frozen=True)
class MethodSpec:
    name: str
    summary: str  # one line: the Train tab's dropdown and `--help-config`
    _: KW_ONLY
    data: str  # the data it accepts (checked before any weights load; methods.check_data):
    #   instruction: instruction/chat data (SFT formats; KTO data keeps its desirable rows)
    #   preference: chosen/rejected pairs (`kto`: labelled single answers too)
    #   rl: prompts (+ preference pairs when no reward model is given)
    #   prompts: prompts, answered by the model itself
    #   grpo: prompts (+ reference answers for the rewards that need them)
    weights: str  # "adapter" (LoRA: DDP on several GPUs), "full" (every weight: FSDP), "knob" (the `weights` field)
    order: int = 1000  # place in every list (the Train tab's dropdown first): lower first, then by name
    knobs: tuple[str, ...] = ()  # the method-specific RunConfig fields the Train tab shows
    family: str = "sft"  # sft / preference / rl: which config checks apply
    panels: tuple[str, ...] = ()  # method-specific metric panels (studio.plots.PANELS titles) its trainer logs
    estimate: str | None = None  # how the estimator models it (a method name the estimator knows), None: not estimated
    pairs: bool = False  # the estimator: two sequences per example (chosen + rejected)
    fast_trainer: str | None = None  # the CUDA fast path's trainer kind (studio.perf.TRAINERS), None: no fast path
    learning_rate: tuple[float, float] = (2e-4, 2e-4)  # the advisor's preset: (tiny model < 300M, larger)
    module: str = ""  # the trainer module under studio.methods: filled in by the registry (the module that declares it)


class RegistryError(Exception):
    """A trainer module's spec cannot be read: one line with the file and line, raised at import."""


def _declared_specs(source: str, filename: str) -> list[MethodSpec]:
    """The specs a module's source assigns to SPEC / SPECS at top level, without running the module."""
    names: dict[str, object] = {}  # the module's literal constants seen so far (e.g. RL_KNOBS)
    found: list[MethodSpec] = []
    for node in ast.parse(source, filename).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            target, value = node.targets[0].id, node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            target, value = node.target.id, node.value
        else:
            continue
        if target not in SPEC_NAMES:
            try:
                names[target] = ast.literal_eval(value)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                names.pop(target, None)  # not a literal: not usable in a spec
            continue
        try:
            built = eval(compile(ast.Expression(value), filename, "eval"), {"__builtins__": {}, "MethodSpec": MethodSpec}, dict(names))  # noqa: S307 (the package's own source, names limited to MethodSpec and literals)
        except NameError as err:
            raise RegistryError(f"{filename} line {node.lineno}: {target} may use only MethodSpec(...) and literal constants of the module ({err}).") from None
        except TypeError as err:
            raise RegistryError(f"{filename} line {node.lineno}: {target}: {err}.") from None
        specs = [built] if target == "SPEC" else list(built) if isinstance(built, (tuple, list)) else [built]
        if not all(isinstance(s, MethodSpec) for s in specs):
            raise RegistryError(f"{filename} line {node.lineno}: {target} must be a MethodSpec (SPEC) or a tuple of them (SPECS).")
        found += specs
    return found


def collect(package: str = __package__) -> tuple[MethodSpec, ...]:
    """Every spec declared by a module of `package`, each with its module filled in, sorted by (order, name)."""
    found: dict[str, MethodSpec] = {}
    for info in pkgutil.iter_modules(sys.modules[package].__path__):
        if info.ispkg or info.name.startswith("_") or info.name == "registry":
            continue
        module_spec = importlib.util.find_spec(f"{package}.{info.name}")
        source = module_spec.loader.get_source(module_spec.name) if module_spec and module_spec.loader else None
        if not source or not any(name in source for name in SPEC_NAMES):
            continue
        for spec_ in _declared_specs(source, module_spec.origin or f"{package}/{info.name}.py"):
            if spec_.name in found:
                raise RegistryError(f"method `{spec_.name}` is declared twice: by {found[spec_.name].module}.py and {info.name}.py.")
            found[spec_.name] = replace(spec_, module=info.name)
    return tuple(sorted(found.values(), key=lambda s: (s.order, s.name)))


SPECS: tuple[MethodSpec, ...] = collect()
BY_NAME = {spec.name: spec for spec in SPECS}


def spec(method: str) -> MethodSpec:
    """The spec of a known method (a KeyError names an unknown one: config validation refuses those first)."""
    return BY_NAME[method]


def names(**where) -> tuple[str, ...]:
    """The methods whose spec fields equal `where`, in registry order: names(family="rl"), names(weights="full")."""
    return tuple(s.name for s in SPECS if all(getattr(s, key) == value for key, value in where.items()))


def trains_adapter(method: str, weights: str = "lora") -> bool:
    """LoRA adapter (True) or every weight (False); a `knob` method follows its `weights` field."""
    kind = spec(method).weights
    return weights != "full" if kind == "knob" else kind == "adapter"
