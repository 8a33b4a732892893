"""Train tab: pick model, method and knobs; Start/Stop a background run; watch its live curve."""

from __future__ import annotations

import gradio as gr

from studio.config import CAI_MODES, DPO_LOSSES, METHOD_KNOBS, METHODS, RunConfig
from studio.jobs import runner

from .common import error_text, status_html
from .run_monitor import build_monitor, build_reuse, default_run, run_choices, stop_run  # noqa: F401  (live monitoring, clone, presets)


def start_run(model, method, data_path, epochs, max_steps, learning_rate, batch_size, max_length, lora_r, *knob_values):
    raw = {
        "model": model or "embedded",
        "method": method,
        "data": data_path or "",
        "num_train_epochs": epochs,
        "max_steps": int(max_steps) if max_steps else -1,
        "learning_rate": learning_rate,
        "per_device_train_batch_size": batch_size,
        "max_length": max_length,
        "lora_r": lora_r,
        "lora_alpha": 2 * int(lora_r),
    }
    knobs = dict(zip(KNOB_NAMES, knob_values))
    raw.update({name: knobs[name] for name in METHOD_KNOBS.get(method, ()) if name in knobs})
    try:
        cfg = RunConfig.from_dict(raw, where="Train tab")
        record = runner.start(cfg)
    except Exception as err:  # noqa: BLE001
        return status_html(error_text(err), "error"), gr.update()
    return status_html(f"Started run {record.id}.", "ok"), gr.update(choices=run_choices(), value=record.id)


KNOB_NAMES = ("dpo_beta", "dpo_loss_type", "reward_model", "sft_data", "rl_algorithm", "response_length", "kl_coef", "ppo_epochs", "num_generations", "constitution", "cai_mode", "judge_model")


def build_method_knobs() -> dict:
    """The knobs of the preference / RL / Constitutional AI methods; only the chosen method's are visible."""
    help_of = RunConfig.field_help()
    d = RunConfig()
    with gr.Group(elem_id="train-method-knobs"):
        widgets = {
            "dpo_beta": gr.Number(value=d.dpo_beta, label="DPO beta", visible=False, info=help_of["dpo_beta"], elem_id="train-dpo-beta"),
            "dpo_loss_type": gr.Dropdown(choices=list(DPO_LOSSES), value=d.dpo_loss_type, label="DPO loss", visible=False, elem_id="train-dpo-loss"),
            "reward_model": gr.Textbox(value="", label="Reward model (run id or folder; empty = train one first)", visible=False, info=help_of["reward_model"], elem_id="train-reward-model"),
            "sft_data": gr.Textbox(value="", label="SFT data (RLHF stage 1)", visible=False, info=help_of["sft_data"], elem_id="train-sft-data"),
            "rl_algorithm": gr.Dropdown(choices=["ppo", "rloo"], value=d.rl_algorithm, label="RL stage", visible=False, elem_id="train-rl-algorithm"),
            "response_length": gr.Number(value=d.response_length, label="Generated tokens per prompt", precision=0, minimum=1, visible=False, elem_id="train-response-length"),
            "kl_coef": gr.Number(value=d.kl_coef, label="KL coefficient", visible=False, info=help_of["kl_coef"], elem_id="train-kl-coef"),
            "ppo_epochs": gr.Number(value=d.ppo_epochs, label="PPO epochs per rollout", precision=0, minimum=1, visible=False, elem_id="train-ppo-epochs"),
            "num_generations": gr.Number(value=d.num_generations, label="RLOO samples per prompt", precision=0, minimum=2, visible=False, elem_id="train-num-generations"),
            "constitution": gr.Textbox(value="", label="Constitution file (empty = the studio's default principles)", visible=False, elem_id="train-constitution"),
            "cai_mode": gr.Dropdown(choices=[(f"{k} — {v}", k) for k, v in CAI_MODES.items()], value=d.cai_mode, label="Constitutional AI training", visible=False, elem_id="train-cai-mode"),
            "judge_model": gr.Textbox(value="", label="Judge model (empty = the model itself)", visible=False, elem_id="train-judge-model"),
        }
    return widgets


def show_method_knobs(method):
    shown = set(METHOD_KNOBS.get(method, ()))
    return [gr.update(visible=name in shown) for name in KNOB_NAMES]


def build(dataset_path: gr.State) -> dict:
    gr.Markdown("### 2 · Train\nTraining runs in its own process: closing the browser does not stop it, and reopening the studio shows it again.")
    with gr.Row():
        with gr.Column(scale=1):
            model = gr.Textbox(value="embedded", label="Model", info="`embedded` (SmolLM2-135M-Instruct), a local folder, a .gguf file or a hub id", elem_id="train-model")
            method = gr.Dropdown(choices=[(f"{k} — {v}", k) for k, v in METHODS.items()], value="lora", label="Method", elem_id="train-method")
            data = gr.Textbox(label="Dataset", info="Filled in by the Data tab; or type a path", elem_id="train-data")
            with gr.Row():
                epochs = gr.Number(value=1, label="Epochs", minimum=0.01, elem_id="train-epochs")
                max_steps = gr.Number(value=0, label="Max steps (0 = use epochs)", precision=0, elem_id="train-max-steps")
            with gr.Row():
                learning_rate = gr.Number(value=1e-3, label="Learning rate", elem_id="train-lr")
                batch_size = gr.Number(value=8, label="Batch size", precision=0, minimum=1, elem_id="train-batch")
            with gr.Row():
                max_length = gr.Number(value=256, label="Max length (tokens)", precision=0, minimum=16, elem_id="train-maxlen")
                lora_r = gr.Number(value=16, label="LoRA rank", precision=0, minimum=1, elem_id="train-rank")
            knob_widgets = build_method_knobs()
            with gr.Row():
                start = gr.Button("Start training", variant="primary", elem_id="train-start")
                stop = gr.Button("Stop", variant="stop", elem_id="train-stop")
            action = gr.HTML(elem_id="train-action")
        with gr.Column(scale=2):
            monitor = build_monitor()
            run_picker = monitor["run_picker"]
    # Clone run / presets fill these widgets: add a knob here to have it cloned and saved too.
    form = {"model": model, "method": method, "data": data, "num_train_epochs": epochs, "max_steps": max_steps, "learning_rate": learning_rate,
            "per_device_train_batch_size": batch_size, "max_length": max_length, "lora_r": lora_r, **knob_widgets}
    with gr.Row():
        build_reuse(form, run_picker)

    dataset_path.change(lambda p: p or gr.skip(), dataset_path, data)
    start.click(
        start_run,
        [model, method, data, epochs, max_steps, learning_rate, batch_size, max_length, lora_r, *knob_widgets.values()],
        [action, run_picker],
    )
    method.change(show_method_knobs, method, list(knob_widgets.values()))
    stop.click(stop_run, run_picker, action)
    return {"run_picker": run_picker, "refresh_choices": lambda: gr.update(choices=run_choices(), value=default_run()), "form": form}
