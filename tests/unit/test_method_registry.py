"""The method registry (studio/methods/registry.py) is the one list of methods: every spec is
complete and consistent, the lists elsewhere derive from it, and a new method is one new file
(its trainer module, declaring its own spec) that shows up everywhere."""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import fields

import pytest

from studio import config, estimator, perf, plots
from studio.methods import MODULES, registry
from tests.conftest import REPO


def test_every_spec_is_complete():
    panel_titles = {title for title, _ in plots.PANELS}
    config_fields = {f.name for f in fields(config.RunConfig)}
    for spec in registry.SPECS:
        trainer = REPO / "studio" / "methods" / f"{spec.module}.py"
        functions = {node.name for node in ast.parse(trainer.read_text()).body if isinstance(node, ast.FunctionDef)}
        assert "run" in functions, f"{spec.name}: {trainer.name} has no run(cfg, ctx)"
        assert set(spec.knobs) <= config_fields, spec.name
        assert set(spec.panels) <= panel_titles, spec.name
        assert spec.weights in ("adapter", "full", "knob") and spec.family in ("sft", "preference", "rl")
        assert spec.data in ("instruction", "preference", "kto", "rl", "prompts", "grpo")
        assert spec.fast_trainer in (None, *perf.TRAINERS)
        assert spec.estimate in (None, *estimator.ESTIMATE_METHODS)
        assert all(0 < lr < 1 for lr in spec.learning_rate)


def test_lists_derive_from_the_registry():
    assert list(config.METHODS) == [s.name for s in registry.SPECS] == list(MODULES)
    assert config.RL_METHODS == ("ppo", "rloo", "rlhf") and config.FULL_WEIGHT_METHODS == ("full", "instruction")
    assert config.METHOD_KNOBS["dpo"] == registry.spec("dpo").knobs
    assert not registry.trains_adapter("full") and registry.trains_adapter("kto") and not registry.trains_adapter("grpo", "full")


# A new method is one file: a trainer module that declares its spec (here SFT under another name).
ECHO = '''"""Echo: a test-only method, SFT under another name."""
from .registry import MethodSpec
from .sft import run  # noqa: F401

SPEC = MethodSpec("echo", "Echo: a test-only method", data="instruction", weights="adapter", order=45, knobs=("dpo_beta",),
                  estimate="echo", learning_rate=(3e-4, 1e-4))
'''
NEW_METHOD = """
import json, sys
from studio import advisor, config, estimator
from studio.jobs.train import preflight
from studio.methods import MODULES, registry

cfg = config.RunConfig.from_dict({"method": "echo", "data": "assets/demo/json_answers.jsonl", "dpo_beta": 0.2})
cfg.validate()
preflight(cfg)  # the UI's check before a run: model source and the data the spec accepts
arch = estimator.load_architecture("embedded")
est = estimator.estimate(arch, estimator.Setup(method="echo", seq=128, batch=2, device="cpu"))
choice = advisor.pick_method(method="echo", model="embedded", device="cpu", examples=200)
heavy = sorted(m for m in ("torch", "transformers", "trl", "peft") if m in sys.modules)
print(json.dumps({
    "methods": list(config.METHODS), "module": MODULES["echo"],
    "knobs": list(config.METHOD_KNOBS["echo"]), "adapter": cfg.uses_adapter, "estimator": list(estimator.ESTIMATE_METHODS),
    "estimate_gib": est.peak_gib, "advisor_lr": choice.preset.values["learning_rate"], "advisor_method": choice.method,
    "advisor_lora_r": choice.preset.values.get("lora_r"), "heavy": heavy,
}))
"""


def test_a_new_method_file_reaches_every_list(tmp_path):
    """Adding a method = one new file in studio/methods: no edit elsewhere. A copy of the package
    gets `echo.py`; config validation, the pre-flight, the Train tab's list (config.METHODS), the
    estimator and the advisor all see it, and none of that loads an ML library."""
    import json
    import os
    import shutil

    shutil.copytree(REPO / "studio", tmp_path / "studio", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "assets").symlink_to(REPO / "assets")
    (tmp_path / "studio" / "methods" / "echo.py").write_text(ECHO)
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "STUDIO_HOME": str(tmp_path / "home")}
    result = subprocess.run([sys.executable, "-c", NEW_METHOD], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    expected = [s.name for s in registry.SPECS]
    expected.insert(expected.index("instruction") + 1, "echo")  # order=45: between instruction (40) and dpo (50)
    assert seen["methods"] == expected
    assert seen["module"] == "echo" and seen["knobs"] == ["dpo_beta"] and seen["adapter"] is True
    assert seen["estimator"] == [*estimator.ESTIMATE_METHODS[:4], "echo", *estimator.ESTIMATE_METHODS[4:]] and seen["estimate_gib"] > 0
    assert seen["advisor_method"] == "echo" and seen["advisor_lr"] == 3e-4 and seen["advisor_lora_r"]  # tiny model: the spec's first rate
    assert seen["heavy"] == []
    # the Train tab's method dropdown is config.METHODS (read from its source: importing gradio costs 5 CPU-s)
    tab = ast.parse((REPO / "components" / "train_tab.py").read_text())
    imported = {a.name for n in ast.walk(tab) if isinstance(n, ast.ImportFrom) and n.module == "studio.config" for a in n.names}
    dropdown = next(n for n in ast.walk(tab) if isinstance(n, ast.Call) and any(k.arg == "elem_id" and getattr(k.value, "value", None) == "train-method" for k in n.keywords))
    choices = next(k.value for k in dropdown.keywords if k.arg == "choices")
    assert "METHODS" in imported and "METHODS" in {n.id for n in ast.walk(choices) if isinstance(n, ast.Name)}


def test_each_trainer_module_builds_the_spec_the_registry_read():
    """The registry reads SPEC/SPECS from the source (no torch); importing the module builds the same."""
    import importlib
    from dataclasses import replace

    for module in dict.fromkeys(s.module for s in registry.SPECS):
        trainer = importlib.import_module(f"studio.methods.{module}")
        own = (trainer.SPEC,) if hasattr(trainer, "SPEC") else tuple(trainer.SPECS)
        assert [replace(s, module=module) for s in own] == [s for s in registry.SPECS if s.module == module]


def test_a_spec_that_needs_code_is_one_clear_line():
    source = 'from .registry import MethodSpec\nKNOBS = tuple(["dpo_beta"])\nSPEC = MethodSpec("x", "X", data="instruction", weights="adapter", knobs=KNOBS)\n'
    with pytest.raises(registry.RegistryError, match=r"x\.py line 3: SPEC may use only MethodSpec\(\.\.\.\) and literal constants"):
        registry._declared_specs(source, "x.py")
    with pytest.raises(registry.RegistryError, match=r"x\.py line 1: SPEC must be a MethodSpec"):
        registry._declared_specs('SPEC = ("lora",)\n', "x.py")
