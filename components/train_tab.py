"""Train tab: pick model, method and knobs; Start/Stop a background run; watch its live curve.

The form's widgets are keyed by RunConfig field names, so one mapping (run_monitor.form_to_raw /
raw_to_form) serves Start, clone, presets, the advisor's Apply and the restore after a reload."""

from __future__ import annotations

import gradio as gr

from studio import models
from studio.config import CAI_MODES, DPO_LOSSES, GRPO_WEIGHTS, LORA_TARGETS, METHOD_KNOBS, METHODS, RunConfig
from studio.jobs import registry, runner
from studio.rewards import PRIMARY_KEY, REWARD_TYPES, add_reward, runs_code

from .common import error_text, status_html
from .run_monitor import build_monitor, build_reuse, default_run, form_to_raw, raw_to_form, run_choices, stop_run  # noqa: F401

KNOB_NAMES = ("dpo_beta", "dpo_loss_type", "reward_model", "sft_data", "rl_algorithm", "response_length", "kl_coef", "ppo_epochs", "num_generations", "constitution", "cai_mode", "judge_model", "rewards", "weights")
SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup")
TRUST_WARNING = ("⚠️ trust_remote_code runs Python code shipped inside the model's folder or hub repo, with your user's rights, "
                 "on this machine. Turn it on only for a model whose code you have read and trust.")


def model_choices() -> list[tuple[str, str]]:
    """The model picker: embedded, converted GGUFs, local folders earlier runs used, cached hub ids."""
    return models.model_choices([r.model for r in registry.list_runs()])


def start_run(keys: list[str], *values):
    raw = form_to_raw(keys, list(values))
    raw["model"] = raw.get("model") or "embedded"
    raw["data"] = raw.get("data") or ""
    shown = set(METHOD_KNOBS.get(raw.get("method"), ()))
    raw = {k: v for k, v in raw.items() if k not in KNOB_NAMES or k in shown}  # other methods' knobs keep their defaults
    try:
        cfg = RunConfig.from_dict(raw, where="Train tab")
        record = runner.start(cfg)
    except Exception as err:  # noqa: BLE001
        return status_html(error_text(err), "error"), gr.update(), gr.skip()
    return status_html(f"Started run {record.id}.", "ok", transient=True), gr.update(choices=run_choices(), value=record.id), record.id


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
            "num_generations": gr.Number(value=d.num_generations, label="Samples per prompt (RLOO, GRPO)", precision=0, minimum=2, visible=False, elem_id="train-num-generations"),
            "constitution": gr.Textbox(value="", label="Constitution file (empty = the studio's default principles)", visible=False, elem_id="train-constitution"),
            "cai_mode": gr.Dropdown(choices=[(f"{k} — {v}", k) for k, v in CAI_MODES.items()], value=d.cai_mode, label="Constitutional AI training", visible=False, elem_id="train-cai-mode"),
            "judge_model": gr.Textbox(value="", label="Judge model (empty = the model itself)", visible=False, elem_id="train-judge-model"),
            "weights": gr.Dropdown(choices=list(GRPO_WEIGHTS), value=d.weights, label="GRPO trains", visible=False, info=help_of["weights"], elem_id="train-grpo-weights"),
            "rewards": gr.Textbox(value="", label="GRPO rewards (YAML list; the composer below adds to it)", lines=4, visible=False, info=help_of["rewards"], elem_id="train-rewards"),
        }
    return widgets


PYTHON_REWARD_WARNING = "⚠️ A python reward runs your file's code inside the training process, with your user's rights. Use only a file you wrote or have read."
REWARD_VALUE_HINT = {"regex": "pattern, e.g. ^\\s*\\{", "json_valid": "optional JSON Schema (JSON text) or a .json file", "numeric": "optional relative tolerance, e.g. 0.01",
                     "length": "max length in characters", "reward_model": "reward run id or folder", "python": "path of your .py file", "exact": "(no value)"}


def build_reward_composer(rewards: gr.Textbox) -> gr.Group:
    """GRPO's reward composer: pick a type, give its value and weight, Add (validated, appended to the YAML box)."""
    with gr.Group(visible=False, elem_id="train-reward-composer") as composer:
        with gr.Row():
            kind = gr.Dropdown(choices=[(f"{k} — {text}", k) for k, (text, _) in REWARD_TYPES.items()], value="json_valid", label="Reward", scale=2, elem_id="train-reward-type")
            value = gr.Textbox(label=PRIMARY_KEY["json_valid"], placeholder=REWARD_VALUE_HINT["json_valid"], scale=2, elem_id="train-reward-value")
            weight = gr.Number(value=1.0, label="Weight", scale=1, elem_id="train-reward-weight")
            add = gr.Button("Add reward", size="sm", elem_id="train-reward-add")
        status = gr.HTML(elem_id="train-reward-status")
        warning = gr.HTML(visible=False, elem_id="train-reward-warning")

    def do_add(text, kind_value, value_text, weight_value):
        try:
            return add_reward(text, kind_value, value_text, weight_value), "", ""
        except Exception as err:  # noqa: BLE001
            return gr.skip(), gr.skip(), status_html(error_text(err), "error")

    kind.change(lambda k: gr.update(label=PRIMARY_KEY.get(k, "value"), placeholder=REWARD_VALUE_HINT.get(k, ""), value=""), kind, value)
    add.click(do_add, [rewards, kind, value, weight], [rewards, value, status])
    rewards.change(lambda text: gr.update(value=status_html(PYTHON_REWARD_WARNING, "warn"), visible=True) if runs_code(text) else gr.update(value="", visible=False), rewards, warning)
    return composer


def choices_of(name: str) -> list[str]:
    """A RunConfig field's allowed values (its help text, shown as the widget's info, explains each)."""
    return list(RunConfig.field_choices(name))


def build_advanced() -> tuple[dict, gr.HTML]:
    """Optimiser, checkpointing, LoRA, SFT loss/truncation, eval and safety settings, folded away; each shows its config help."""
    help_of = RunConfig.field_help()
    d = RunConfig()
    with gr.Accordion("Advanced settings", open=False, elem_id="train-advanced"):
        with gr.Row():
            accumulation = gr.Number(value=d.gradient_accumulation_steps, label="Gradient accumulation", precision=0, minimum=1, info=help_of["gradient_accumulation_steps"], elem_id="train-grad-accum")
            scheduler = gr.Dropdown(choices=list(SCHEDULERS), value=d.lr_scheduler_type, label="LR scheduler", info="How the learning rate moves over the run.", elem_id="train-scheduler")
        with gr.Row():
            warmup = gr.Number(value=d.warmup_ratio, label="Warmup ratio", minimum=0, maximum=0.99, info=help_of["warmup_ratio"], elem_id="train-warmup")
            save_steps = gr.Number(value=d.save_steps, label="Save every N steps", precision=0, minimum=1, info=help_of["save_steps"], elem_id="train-save-steps")
        with gr.Row():
            checkpointing = gr.Checkbox(value=d.gradient_checkpointing, label="Gradient checkpointing", info=help_of["gradient_checkpointing"], elem_id="train-checkpointing")
            quant_bits = gr.Dropdown(choices=[("4-bit NF4", 4), ("8-bit LLM.int8", 8)], value=d.quant_bits, label="QLoRA base quantisation",
                                     info="Bits of the frozen base weights (method qlora).", elem_id="train-quant-bits")
            eval_fraction = gr.Number(value=d.eval_fraction, label="Eval fraction", minimum=0, maximum=0.9, info="Share of the rows held out for eval loss (0 = none).", elem_id="train-eval-fraction")
        with gr.Row():
            alpha = gr.Number(value=0, label="LoRA alpha (0 = 2 × rank)", precision=0, minimum=0, elem_id="train-lora-alpha")
            dropout = gr.Number(value=d.lora_dropout, label="LoRA dropout", minimum=0, maximum=0.9, elem_id="train-lora-dropout")
            target = gr.Dropdown(choices=list(LORA_TARGETS), value=d.lora_target, label="LoRA targets", elem_id="train-lora-target")
        with gr.Row():  # the SFT rendering choices: RunConfig's own lists and help
            loss_on = gr.Dropdown(choices=choices_of("loss_on"), value=d.loss_on, label="Loss on", info=help_of["loss_on"], elem_id="train-loss-on")
            truncation = gr.Dropdown(choices=choices_of("truncation_side"), value=d.truncation_side, label="Truncation side", info=help_of["truncation_side"],
                                     elem_id="train-truncation-side")
        with gr.Row():
            dora = gr.Checkbox(value=d.use_dora, label="DoRA", info=help_of["use_dora"], elem_id="train-dora")
            rslora = gr.Checkbox(value=d.use_rslora, label="rsLoRA", info=help_of["use_rslora"], elem_id="train-rslora")
        trust = gr.Checkbox(value=False, label="trust_remote_code", info="Off unless you trust the model's own Python code.", elem_id="train-trust-remote-code")
        warning = gr.HTML(visible=False, elem_id="train-trust-warning")
    trust.change(lambda on: gr.update(value=status_html(TRUST_WARNING, "warn") if on else "", visible=bool(on)), trust, warning)
    widgets = {"gradient_accumulation_steps": accumulation, "lr_scheduler_type": scheduler, "warmup_ratio": warmup, "save_steps": save_steps,
               "gradient_checkpointing": checkpointing, "quant_bits": quant_bits, "eval_fraction": eval_fraction, "lora_alpha": alpha, "lora_dropout": dropout,
               "lora_target": target, "use_dora": dora, "use_rslora": rslora, "trust_remote_code": trust, "loss_on": loss_on, "truncation_side": truncation}
    return widgets, warning


def check_eval_copies(data, eval_fraction):
    """The eval split a run on this data would use, and the train rows that copy an eval row (contamination)."""
    from studio.data import split as one_split

    hidden = gr.update(value="", visible=False)
    if not str(data or "").strip():
        return hidden, gr.update(visible=False)
    try:
        _, chosen, found = one_split.check(str(data).strip(), float(eval_fraction or 0), RunConfig().seed)
    except Exception:  # noqa: BLE001  (a bad file gets its message from Start and the Data tab)
        return hidden, gr.update(visible=False)
    if not chosen.eval:
        return hidden, gr.update(visible=False)
    if not found.train_ids:
        return gr.update(value=status_html(f"Eval split: {chosen.describe()}; no train row copies an eval row.", "ok"), visible=True), gr.update(visible=False)
    return gr.update(value=status_html(f"{found.summary()}.", "warn"), visible=True), gr.update(visible=True)


def drop_eval_copies(data, eval_fraction):
    """Drop them: save a dataset version without the train rows that copy an eval row, and train on it."""
    from studio.data import split as one_split

    try:
        loaded, chosen, found = one_split.check(str(data or "").strip(), float(eval_fraction or 0), RunConfig().seed)
        path = one_split.save_without_contamination(loaded, chosen, found)
    except Exception as err:  # noqa: BLE001
        return status_html(error_text(err), "error"), gr.skip(), gr.update()
    message = f"Dropped {len(found.train_ids)} train rows that copied eval rows; training data is now the saved version {path.parent.name}/{path.name}."
    return status_html(message, "ok"), str(path), gr.update(visible=False)


def show_method_knobs(method):
    shown = set(METHOD_KNOBS.get(method, ()))
    return [gr.update(visible=name in shown) for name in KNOB_NAMES]


def build(dataset_path: gr.State) -> dict:
    gr.Markdown("### 3 · Train\nTraining runs in its own process: closing the browser does not stop it, and reopening the studio shows it again.")
    with gr.Row():
        with gr.Column(scale=1, elem_id="train-form"):
            model = gr.Dropdown(choices=[("embedded · SmolLM2-135M-Instruct", "embedded")], value="embedded", allow_custom_value=True,
                                label="Model", info="Pick one, or type a local folder, a .gguf file or a hub id", elem_id="train-model")
            method = gr.Dropdown(choices=[(f"{k} — {v}", k) for k, v in METHODS.items()], value="lora", label="Method", elem_id="train-method")
            data = gr.Textbox(label="Dataset", info="Filled in by the Data tab; or type a path", placeholder="Load a dataset in the Data tab first", elem_id="train-data")
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
            reward_composer = build_reward_composer(knob_widgets["rewards"])
            advanced, trust_warning = build_advanced()
            with gr.Row():
                start = gr.Button("Start training", variant="primary", elem_id="train-start")
                stop = gr.Button("Stop", variant="secondary", interactive=False, elem_id="train-stop")
            action = gr.HTML(elem_id="train-action")
            with gr.Row(elem_id="train-eval-copies-row"):
                eval_copies = gr.HTML(visible=False, elem_id="train-eval-copies")
                drop_copies = gr.Button("Drop them", size="sm", variant="secondary", visible=False, elem_id="train-drop-eval-copies")
        with gr.Column(scale=2):
            monitor = build_monitor(stop)
            run_picker = monitor["run_picker"]
    # Clone run / presets / Apply / restore fill these widgets: add a knob here to have it cloned and saved too.
    form = {"model": model, "method": method, "data": data, "num_train_epochs": epochs, "max_steps": max_steps, "learning_rate": learning_rate,
            "per_device_train_batch_size": batch_size, "max_length": max_length, "lora_r": lora_r, **knob_widgets, **advanced}
    keys = list(form)
    with gr.Row():
        build_reuse(form, run_picker)
    started = gr.State(None)

    dataset_path.change(lambda p: p or gr.skip(), dataset_path, data)
    for trigger in (data.change, advanced["eval_fraction"].change):  # contamination: train rows that copy an eval row
        trigger(check_eval_copies, [data, advanced["eval_fraction"]], [eval_copies, drop_copies])
    drop_copies.click(drop_eval_copies, [data, advanced["eval_fraction"]], [action, data, drop_copies])
    start.click(lambda *values: start_run(keys, *values), list(form.values()), [action, run_picker, started])
    method.change(show_method_knobs, method, list(knob_widgets.values()))
    method.change(lambda m: gr.update(visible=m == "grpo"), method, reward_composer)
    stop.click(stop_run, run_picker, action)

    def restore():
        """After a (re)load: watch the live or newest run, with the form filled from its config."""
        run_id = default_run()
        raw = monitor["run_config"](run_id) or {}
        values = raw_to_form(keys, raw)
        values[keys.index("model")] = gr.update(choices=model_choices(), value=raw["model"]) if "model" in raw else gr.update(choices=model_choices())
        return [gr.update(choices=run_choices(), value=run_id), *values]

    return {"run_picker": run_picker, "form": form, "started": started, "restore": restore, "restore_targets": [run_picker, *form.values()],
            "refresh_choices": lambda: gr.update(choices=run_choices())}
