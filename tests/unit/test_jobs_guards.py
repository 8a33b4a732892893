"""Guards on real transformers TrainerState/TrainerControl objects (no model needed)."""

import math

from transformers import TrainerControl, TrainerState, TrainingArguments

from studio.jobs.metrics import read_metrics
from studio.methods.callbacks import EvalGuards, MetricsWriter


def trainer_objects(tmp_path):
    args = TrainingArguments(output_dir=str(tmp_path / "out"), report_to=[])
    state = TrainerState()
    state.max_steps = 100
    return args, state, TrainerControl()


def feed(guards, writer, args, state, control, train_losses, eval_loss):
    for loss in train_losses:
        state.global_step += 1
        logs = {"loss": loss, "learning_rate": 1e-4}
        writer.on_log(args, state, control, logs=logs)
        guards.on_log(args, state, control, logs=logs)
    guards.on_evaluate(args, state, control, metrics={"eval_loss": eval_loss})


def test_nan_loss_stops_the_run_with_a_message(tmp_path):
    args, state, control = trainer_objects(tmp_path)
    writer = MetricsWriter(tmp_path)
    state.global_step = 7
    writer.on_log(args, state, control, logs={"loss": math.nan, "grad_norm": math.inf})
    assert writer.nonfinite_loss and control.should_training_stop
    assert "NaN/inf at step 7" in writer.stop_reason
    (row,) = read_metrics(tmp_path / "metrics.jsonl")
    assert row["loss"] is None and row["grad_norm"] is None  # valid JSON, no NaN literal


def test_early_stopping_after_patience_evaluations_without_improvement(tmp_path):
    args, state, control = trainer_objects(tmp_path)
    writer = MetricsWriter(tmp_path)
    guards = EvalGuards(writer, patience=2)
    for eval_loss in (2.0, 1.5, 1.6):
        feed(guards, writer, args, state, control, [1.0], eval_loss)
        assert not control.should_training_stop
    feed(guards, writer, args, state, control, [1.0], 1.55)
    assert control.should_training_stop and control.should_save
    assert "not improved for 2 evaluations" in writer.stop_reason and "best 1.5000" in writer.stop_reason


def test_overfitting_warning_when_the_gap_widens(tmp_path):
    args, state, control = trainer_objects(tmp_path)
    writer = MetricsWriter(tmp_path)
    guards = EvalGuards(writer, patience=0)
    feed(guards, writer, args, state, control, [2.0, 1.9], 2.0)
    feed(guards, writer, args, state, control, [1.6, 1.5], 1.8)  # both improve: no warning
    assert not writer.warnings
    feed(guards, writer, args, state, control, [1.2, 1.1], 1.9)
    feed(guards, writer, args, state, control, [0.8, 0.7], 2.1)
    assert len(writer.warnings) == 1 and "overfitting" in writer.warnings[0]
    assert not control.should_training_stop  # a warning, not a stop, when patience is 0
    warnings = [r for r in read_metrics(tmp_path / "metrics.jsonl") if r.get("warning")]
    assert warnings and warnings[0]["step"] == state.global_step


def test_memory_is_logged_with_each_training_row(tmp_path):
    args, state, control = trainer_objects(tmp_path)
    writer = MetricsWriter(tmp_path)
    state.global_step = 1
    writer.on_log(args, state, control, logs={"loss": 1.0})
    (row,) = read_metrics(tmp_path / "metrics.jsonl")
    assert row["cpu_rss_gib"] > 0 and row["max_steps"] == 100


def test_tensorboard_option_writes_event_files(tmp_path):
    from studio.config import RunConfig
    from studio.methods.callbacks import standard_callbacks

    args, state, control = trainer_objects(tmp_path)
    writer = MetricsWriter(tmp_path)
    callbacks = standard_callbacks(tmp_path, writer, RunConfig.from_dict({"data": "x", "tensorboard": True}))
    assert len(standard_callbacks(tmp_path, writer, RunConfig.from_dict({"data": "x"}))) == 2
    board = callbacks[-1]
    state.global_step = 1
    board.on_log(args, state, control, logs={"loss": 1.5, "learning_rate": 1e-4})
    board.tb_writer.flush()
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
