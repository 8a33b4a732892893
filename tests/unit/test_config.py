import pytest

from studio.config import RunConfig
from studio.errors import StudioError


def test_round_trip_keeps_every_field(tmp_path):
    cfg = RunConfig.from_dict({"data": "x.jsonl", "learning_rate": "2e-4", "max_steps": 20, "use_dora": True})
    path = tmp_path / "run.yaml"
    cfg.save(path)
    again = RunConfig.from_yaml(path)
    assert again == cfg
    assert again.learning_rate == pytest.approx(2e-4)
    assert cfg.cli_command(path) == f"python -m studio train {path}"


@pytest.mark.parametrize(
    "raw, expected",
    [
        ({"data": "x", "method": "lorra"}, "method: 'lorra' is not a known method"),
        ({"data": "x", "learning_rate": -1e-4}, "learning_rate: must be a positive number"),
        ({"data": "x", "learning_rate": "fast"}, "learning_rate: expected a number, got 'fast'"),
        ({"data": "x", "max_steps": 2.5}, "max_steps: expected an integer"),
        ({"data": "x", "max_steps": 0}, "max_steps: must be a positive step count"),
        ({"data": "x", "lora_dropout": 1.5}, "lora_dropout: must be between 0 and 1"),
        ({"data": "x", "colour": "blue"}, "unknown key colour"),
        ({"method": "lora"}, "data: no training data given"),
        ({"data": "x", "use_dora": "yes"}, "use_dora: expected true or false"),
    ],
)
def test_bad_values_are_one_line_messages_naming_the_field(raw, expected):
    with pytest.raises(StudioError) as info:
        RunConfig.from_dict(raw, where="run.yaml")
    message = str(info.value)
    assert expected in message
    assert message.startswith("run.yaml: ")
    assert "\n" not in message


def test_broken_yaml_names_the_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model: embedded\ndata: [unclosed\n")
    with pytest.raises(StudioError) as info:
        RunConfig.from_yaml(path)
    assert "line" in str(info.value) and "bad.yaml" in str(info.value)


def test_every_field_has_help():
    assert all(text.strip() for text in RunConfig.field_help().values())


def test_trust_remote_code_is_off_unless_asked(studio_home):
    from studio import models

    assert RunConfig.from_dict({"data": "x"}).trust_remote_code is False
    assert RunConfig.from_dict({"data": "x", "trust_remote_code": True}).trust_remote_code is True
    assert models.resolve("embedded").trust_remote_code is False
    assert models.resolve("embedded", trust_remote_code=True).trust_remote_code is True


def test_a_run_config_is_read_typed_by_readers(tmp_path):
    """RunConfig.of_run: what chat, evaluate and the run monitor read; an old key is dropped, a missing file is None."""
    from studio.config import RunConfig

    run = tmp_path / "run"
    run.mkdir()
    assert RunConfig.of_run(run) is None
    (run / "config.yaml").write_text("model: /models/x\nmethod: dpo\ndata: d.jsonl\nlearning_rate: '5e-6'\nremoved_in_a_later_version: 3\n")
    cfg = RunConfig.of_run(run)
    assert (cfg.model, cfg.method, cfg.learning_rate, cfg.uses_adapter) == ("/models/x", "dpo", 5e-6, True)
    (run / "config.yaml").write_text("- not\n- a mapping\n")
    assert RunConfig.of_run(run) is None


def test_loss_on_and_truncation_side_choices_live_in_the_config_and_reach_the_train_tab_and_summary(studio_home):
    """One list each (RunConfig's field metadata): validation, the renderer, the Train tab's advanced
    settings and the watched run's summary all read it."""
    import gradio as gr

    from components import run_monitor, train_tab
    from studio.data.render import LOSS_ON, TRUNCATION_SIDES
    from studio.jobs import registry

    assert list(RunConfig.field_choices("loss_on")) == ["all_assistant", "last_reply"]
    assert TRUNCATION_SIDES == tuple(RunConfig.field_choices("truncation_side")) == ("right", "left")
    assert set(RunConfig.field_choices("loss_on")) < set(LOSS_ON)  # the renderer adds full SFT's "all"
    with pytest.raises(StudioError, match="loss_on: 'all' is not one of all_assistant, last_reply"):
        RunConfig.from_dict({"data": "x.jsonl", "loss_on": "all"})

    with gr.Blocks():
        widgets, _ = train_tab.build_advanced()
    for name in ("loss_on", "truncation_side"):
        assert [value for _, value in widgets[name].choices] == list(RunConfig.field_choices(name))
        assert widgets[name].info == RunConfig.field_help()[name]
    keys = ["data", "method", "loss_on", "truncation_side"]
    cfg = RunConfig.from_dict(run_monitor.form_to_raw(keys, ["x.jsonl", "lora", "last_reply", "left"]), where="Train tab")
    assert (cfg.loss_on, cfg.truncation_side) == ("last_reply", "left")

    summary = dict(cfg.summary())
    assert (summary["loss_on"], summary["truncation_side"]) == ("last_reply", "left")
    assert dict(RunConfig(data="x", method="full").summary())["loss_on"] == "every token (full SFT)"
    assert "loss_on" not in dict(RunConfig(data="x", method="dpo").summary())  # DPO does not render rows this way
    record = registry.create("run-a", name="a", method="lora", model="embedded", dataset="x.jsonl")
    cfg.save(record.run_dir / "config.yaml")
    line = run_monitor.config_summary("run-a")
    assert "<b>loss_on</b> last_reply" in line and "<b>truncation_side</b> left" in line
    assert run_monitor.config_summary(None) == ""


def test_a_run_on_a_saved_version_is_named_after_the_version(studio_home):
    """Every saved version's file is data.parquet: the run's name and id say which version it is."""
    version = studio_home / "datasets" / "identity" / "v2"
    version.mkdir(parents=True)
    (version / "data.parquet").write_bytes(b"")
    (version / "manifest.json").write_text("{}")
    cfg = RunConfig(data=str(version / "data.parquet"))
    assert (cfg.default_name, cfg.run_id_hint) == ("lora on identity v2", "lora-identity v2")
    assert RunConfig(data="/data/json_answers.jsonl", method="dpo").default_name == "dpo on json_answers.jsonl"
    assert RunConfig(data="/data/json_answers.jsonl").run_id_hint == "lora-json_answers"
    assert RunConfig(data="/data/x.jsonl", name="mine").default_name == "mine"
    (version / "manifest.json").unlink()  # a data.parquet of the user's own keeps its file name
    assert RunConfig(data=str(version / "data.parquet")).default_name == "lora on data.parquet"
