"""The method registry (studio/methods/registry.py) is the one list of methods: every spec is
complete and consistent, and the lists elsewhere derive from it (a new spec shows up everywhere)."""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import fields

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


NEW_METHOD = """
from studio.methods import registry
toy = registry.MethodSpec("toy", "Toy: a new method", "sft", "instruction", "adapter", knobs=("dpo_beta",), estimate="lora",
                          learning_rate=(3e-4, 3e-4))
registry.SPECS += (toy,)
registry.BY_NAME["toy"] = toy
from studio import config, estimator
from studio.methods import runner_for, sft
cfg = config.RunConfig.from_dict({"method": "toy", "data": "x.jsonl"})
print("toy" in config.METHODS, runner_for("toy") is sft.run, config.METHOD_KNOBS["toy"], cfg.uses_adapter, estimator._adapter("toy"))
"""


def test_a_new_spec_reaches_config_modules_and_estimator():
    """Adding a method = its trainer module + one spec: nothing else lists methods."""
    result = subprocess.run([sys.executable, "-c", NEW_METHOD], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["True", "True", "('dpo_beta',)", "True", "True"]
