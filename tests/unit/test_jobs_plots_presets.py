"""Figures, config diff, presets, checkpoints and the multi-GPU launch command (no model)."""

import json

import pytest

from studio.config import RunConfig
from studio.errors import StudioError
from studio.jobs import envinfo, presets
from studio.jobs.train import accelerate_command, latest_checkpoint
from studio.plots import compare_figure, config_diff, loss_figure, metrics_figure, present_panels


def rows(n=5, **extra):
    return [{"step": s, "loss": 2.0 / s, "learning_rate": 1e-4, "grad_norm": 1.0, "time": s, **{k: v * s for k, v in extra.items()}} for s in range(1, n + 1)]


def test_loss_figure_has_raw_smoothed_eval_and_log_toggle():
    data = rows() + [{"step": 5, "eval_loss": 0.9}]
    fig = loss_figure(data, log_scale=True)
    assert [t.name for t in fig.data] == ["loss", "smoothed", "eval loss"]
    assert fig.layout.yaxis.type == "log"
    assert list(fig.data[0].x) == [1, 2, 3, 4, 5]


def test_method_panels_appear_only_when_their_keys_are_logged():
    sft = [title for title, _ in present_panels(rows(tokens_per_second=10.0))]
    assert sft == ["Learning rate", "Grad norm", "Tokens / s"]
    dpo = [title for title, _ in present_panels(rows(**{"rewards/margins": 0.1, "rewards/accuracies": 0.1}))]
    assert "DPO reward margin" in dpo and "DPO accuracy" in dpo
    ppo = [title for title, _ in present_panels(rows(**{"objective/kl": 0.1, "objective/entropy": 1.0, "loss/value_avg": 0.5, "objective/rlhf_reward": 0.2}))]
    assert {"PPO KL", "PPO entropy", "PPO value loss", "PPO reward"} <= set(ppo)
    fig = metrics_figure(rows(**{"accuracy": 0.1}))
    assert {t.name for t in fig.data} == {"learning_rate", "grad_norm", "accuracy"}


def test_compare_overlays_runs_and_diffs_configs():
    fig = compare_figure([("a", rows()), ("b", rows(3) + [{"step": 3, "eval_loss": 1.0}])])
    assert [t.name for t in fig.data if t.showlegend is not False] == ["a", "b"]
    header, diff = config_diff({"a": {"learning_rate": 1e-4, "lora_r": 16, "seed": 1}, "b": {"learning_rate": 5e-4, "lora_r": 16, "seed": 1}})
    assert header == ["setting", "a", "b"] and diff == [["learning_rate", "0.0001", "0.0005"]]


def test_preset_round_trip_and_bad_preset_message(studio_home):
    cfg = RunConfig.from_dict({"data": "x.jsonl", "learning_rate": 5e-4, "lora_r": 8})
    name = presets.save_preset("my fast LoRA", cfg)
    assert name == "my-fast-LoRA" and presets.list_presets() == [name]
    loaded = presets.load_preset(name)
    assert loaded["learning_rate"] == 5e-4 and loaded["lora_r"] == 8 and "data" not in loaded
    (presets.presets_dir() / "bad.yaml").write_text("learning_rat: 1\n")
    with pytest.raises(StudioError, match="unknown key learning_rat"):
        presets.load_preset("bad")
    with pytest.raises(StudioError, match="no preset named"):
        presets.load_preset("missing")


def test_latest_checkpoint_skips_one_cut_off_mid_save(tmp_path):
    for step, complete in ((2, True), (10, True), (12, False)):
        folder = tmp_path / "checkpoints" / f"checkpoint-{step}"
        folder.mkdir(parents=True)
        if complete:
            (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    assert latest_checkpoint(tmp_path).endswith("checkpoint-10")


def test_accelerate_command_uses_ddp_for_adapters_and_fsdp_for_full(tmp_path):
    lora = accelerate_command(RunConfig.from_dict({"data": "x", "method": "lora"}), tmp_path / "config.yaml", "r1", 2, resume=True)
    assert lora[1:3] == ["-m", "accelerate.commands.launch"] and "--multi_gpu" in lora and "--use_fsdp" not in lora
    assert lora[lora.index("--num_processes") + 1] == "2"
    assert lora[-6:] == ["train", str(tmp_path / "config.yaml"), "--run-id", "r1", "--worker", "--resume"]
    full = accelerate_command(RunConfig.from_dict({"data": "x", "method": "full"}), tmp_path / "config.yaml", "r1", 2, resume=False)
    assert "--use_fsdp" in full and "--multi_gpu" not in full and full[-1] == "--worker"


def test_environment_snapshot_names_versions():
    snap = envinfo.snapshot()
    assert snap["packages"]["torch"] and snap["packages"]["trl"] and snap["python"]
    assert "cuda_available" in snap and isinstance(snap["gpus"], list)
