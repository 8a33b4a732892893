"""Headless CLI: `python -m studio train RUN.yaml`, `runs list|show|cancel|resume`, `chat`, `eval`, `export`, `data`, `advise`, `estimate`.

User errors print one line (`error: ...`) and exit 2; they never print a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from . import procenv  # noqa: E402

procenv.apply()  # before anything imports torch: allocator, OpenMP and compile caches (studio/procenv.py)

from .errors import StudioError  # noqa: E402


def cmd_train(args) -> int:
    if args.help_config:
        from .config import RunConfig

        for name, text in RunConfig.field_help().items():
            print(f"{name:30s} {text}")
        return 0
    if not args.config:
        raise StudioError("give a run config: python -m studio train RUN.yaml")
    from .jobs.train import execute

    run_dir = execute(args.config, run_id=args.run_id, resume=args.resume, worker=args.worker)
    print(run_dir)
    return 0


def cmd_runs(args) -> int:
    from .jobs import registry, runner

    if args.action == "list":
        runs = registry.list_runs(kind=args.kind)
        if args.json:
            print(json.dumps([r.to_json() for r in runs], indent=2))
        else:
            for r in runs:
                when = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.created))
                print(f"{r.id:40s} {r.status:12s} {r.method:12s} {(r.device or '-'):10s} {when}  {r.name}")
        return 0
    if not args.id:
        raise StudioError(f"`runs {args.action}` needs a run id (see `python -m studio runs list`).")
    record = registry.get(args.id)
    if record is None:
        raise StudioError(f"no run with id {args.id}.", hint="See `python -m studio runs list`.")
    if args.action == "show":
        print(json.dumps(record.to_json(), indent=2))
    elif args.action == "cancel":
        print(runner.cancel(args.id))
    elif args.action == "resume":
        if record.status not in ("interrupted", "failed", "cancelled"):
            raise StudioError(f"run {args.id} is {record.status}; only interrupted, failed or cancelled runs resume.")
        from .jobs.train import execute

        print(execute(record.run_dir / "config.yaml", run_id=args.id, resume=True))
    return 0


def cmd_chat(args) -> int:
    from .chat import ChatEngine
    from .engine import GenerationSettings
    from .jobs import registry

    record = registry.get(args.run_id)
    if record is None:
        raise StudioError(f"no run with id {args.run_id}.", hint="See `python -m studio runs list`.")
    temperature = 0.0 if args.greedy else args.temperature
    settings = GenerationSettings(system_prompt=args.system or "", max_new_tokens=args.max_new_tokens, temperature=temperature, seed=args.seed)
    if args.suite:
        return _chat_suite(args, record, settings)
    if not args.prompt:
        raise StudioError("give a prompt (--prompt TEXT) or a prompt suite (--suite FILE).")
    engine = ChatEngine.for_run(record)
    answer = engine.answer([{"role": "user", "content": args.prompt}], tuned=not args.base, settings=settings)
    print(answer.replace("\n", " "))
    return 0


def _chat_suite(args, record, settings) -> int:
    """Run a prompt suite on the run's tuned model and `--against` (default: its base model)."""
    from pathlib import Path

    from .chat import ChatEngine
    from .suites import load_prompt_suite, run_prompt_suite, write_suite_report

    prompts = load_prompt_suite(args.suite)
    engine = ChatEngine.for_choices(args.against or f"base:{_run_base(record)}", record.id)
    result = run_prompt_suite(engine, prompts, settings, progress=lambda done, total: print(f"{done}/{total} answers", file=sys.stderr))
    html_path, md_path = write_suite_report(result, Path(args.report or Path(record.run_dir) / "suites" / Path(args.suite).stem), title=f"Prompt suite · {Path(args.suite).name}")
    print(md_path.read_text())
    print(html_path)
    return 0


def _run_base(record) -> str:
    from .chat import run_base_source

    return run_base_source(record)


def cmd_eval(args) -> int:
    from .evaluate import EvalOptions, summary_markdown
    from .jobs import evaljob, registry

    record = registry.get(args.run_id)
    if record is None:
        raise StudioError(f"no run with id {args.run_id}.", hint="See `python -m studio runs list`.")
    given = {"max_examples": args.max_examples, "max_new_tokens": args.max_new_tokens, "batch_size": args.batch_size}
    if args.probe_file:
        given["probe_file"] = args.probe_file
    options = EvalOptions(data=args.data, probes=not args.no_probes, judge=args.judge, drop_overlap=args.drop_overlap,
                          **{k: v for k, v in given.items() if v is not None})
    if args.background:
        job = evaljob.start(record.id, options)
        print(json.dumps({"job_id": job.id, "run_dir": str(job.run_dir)}) if args.json else f"evaluation job {job.id} started; results in {job.run_dir}")
        return 0
    results = evaljob.execute(record, options, job_id=args.job_id, echo=lambda line: print(line, file=sys.stderr, flush=True))
    if args.json:
        print(json.dumps(results))
    else:
        print(summary_markdown(results))
        print(results["report"])
    return 0


def cmd_export(args) -> int:
    from .export import export_run, zip_folder
    from .jobs import registry

    record = registry.get(args.run_id)
    if record is None:
        raise StudioError(f"no run with id {args.run_id}.", hint="See `python -m studio runs list`.")
    summary = export_run(record, args.format, args.out, quants=tuple(args.quant or ()), verify=not args.no_verify, ollama=args.ollama,
                         system=args.system, push=args.push, progress=lambda fraction, message: print(f"[{fraction:4.0%}] {message}", file=sys.stderr))
    if args.zip is not None:
        summary["zip"] = str(zip_folder(args.out, args.zip or None))
    if args.json:  # {files, quant, base_model, llama_cpp_check: {agree, total, stops}, ...}
        print(json.dumps(summary))
        return 0
    if summary.get("llama_cpp_check"):
        from .export import check_line

        print(f"{summary['quant']}: {check_line(summary['llama_cpp_check'])}", file=sys.stderr)
    print(json.dumps(summary, indent=2))
    print(summary["out"])
    return 0


def cmd_data(args) -> int:
    from .data.cli import main as data_main

    return data_main(args.data_args)


def cmd_models(args) -> int:
    from . import models

    started = time.time()
    resolved = models.resolve(args.source)
    print(f"{resolved.display_name} ({resolved.kind}) ready in {time.time() - started:.1f}s at {resolved.path}")
    return 0


def cmd_advise(args) -> int:
    from .advisor import Answers, advise, check_base_model, dataset_signals

    if args.answers:
        text, where = open(args.answers).read() if os.path.isfile(args.answers) else None, args.answers
        if text is None:
            raise StudioError(f"answers file not found: {args.answers}.")
    elif sys.stdin.isatty():
        raise StudioError("give the answers as JSON on stdin or with --answers FILE.",
                          hint='echo \'{"examples": 500, "goal": "style", "has_eval_set": true}\' | python -m studio advise --json')
    else:
        text, where = sys.stdin.read(), "stdin"
    try:
        raw = json.loads(text or "null")
    except json.JSONDecodeError as err:
        raise StudioError(f"the answers are not valid JSON ({err.msg}).", where=f"{where} line {err.lineno}") from None
    signals = dataset_signals(args.data, model=args.model) if args.data else None
    if signals is not None and isinstance(raw, dict):
        raw.setdefault("examples", signals.examples)
        raw.setdefault("has_eval_set", signals.has_eval_split)
    check = None
    if args.check_base:
        if signals is None:
            raise StudioError("--check-base needs --data (its eval split holds the prompts and references).")
        check = check_base_model(signals.eval_pairs, model=args.model, sample=args.sample, max_new_tokens=args.max_new_tokens)
        if isinstance(raw, dict):
            raw.setdefault("base_model_already_good", check.already_good)
    answers = Answers.from_dict(raw, where=where)
    result = advise(answers, signals=signals, model=args.model, device=args.device,
                    wants_scalar_reward=args.scalar_reward, has_principles=args.principles, checkable_answers=args.checkable)
    if args.json:
        out = result.to_dict()
        if signals is not None:
            out["signals"] = {k: v for k, v in signals.__dict__.items() if k != "eval_pairs"}
        if check is not None:
            out["base_check"] = {"mean_score": check.mean_score, "already_good": check.already_good,
                                 "rows": [r.__dict__ for r in check.rows]}
        print(json.dumps(out, indent=2, ensure_ascii=False))
    else:
        if signals is not None:
            print(f"data: {signals.describe()}")
        if check is not None:
            print(check.describe())
        print(result.describe())
    return 0


def cmd_estimate(args) -> int:
    from .estimator import Setup, estimate, load_architecture

    arch = load_architecture(args.model)
    checkpointing = {"on": True, "off": False, "auto": arch.params >= 1e9}[args.gradient_checkpointing]
    setup = Setup(method=args.method, seq=args.seq, batch=args.batch, gradient_checkpointing=checkpointing,
                  optimizer=args.optimizer, lora_r=args.lora_r, device=args.device,
                  num_generations=args.generations, completion_length=args.completion_length)
    result = estimate(arch, setup, train_tokens=args.train_tokens)
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.describe())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m studio", description="Fine-tuning Studio, headless.")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train from a YAML run config")
    train.add_argument("config", nargs="?")
    train.add_argument("--run-id", help="use this run id (the UI passes one)")
    train.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint")
    train.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # one rank of a studio-launched multi-GPU run
    train.add_argument("--help-config", action="store_true", help="list every config key with its help")
    train.set_defaults(func=cmd_train)

    runs = sub.add_parser("runs", help="list, show, cancel or resume runs")
    runs.add_argument("action", choices=["list", "show", "cancel", "resume"])
    runs.add_argument("id", nargs="?")
    runs.add_argument("--json", action="store_true")
    runs.add_argument("--kind", choices=["train", "eval"], default="train", help="list training runs (default) or evaluation jobs")
    runs.set_defaults(func=cmd_runs)

    chat = sub.add_parser("chat", help="ask a trained run (or its base model) one question, or run a prompt suite")
    chat.add_argument("run_id")
    chat.add_argument("--prompt")
    chat.add_argument("--base", action="store_true", help="answer with the base model (adapter off)")
    chat.add_argument("--max-new-tokens", type=int, default=128)
    chat.add_argument("--greedy", action="store_true")
    chat.add_argument("--temperature", type=float, default=0.7)
    chat.add_argument("--seed", type=int, default=0)
    chat.add_argument("--system", help="system prompt")
    chat.add_argument("--suite", help="a CSV/JSON/JSONL prompt suite to run on both sides")
    chat.add_argument("--against", help="the other side for --suite: a run id or base:MODEL (default: the run's base)")
    chat.add_argument("--report", help="folder for the suite's report.html and report.md")
    chat.set_defaults(func=cmd_chat)

    evaluation = sub.add_parser("eval", help="evaluate a run, base vs tuned: eval loss, task metrics, capability probe")
    evaluation.add_argument("run_id")
    evaluation.add_argument("--json", action="store_true", help="print the results as one JSON object")
    evaluation.add_argument("--data", help="eval file (default: the run's held-out split or DATA.heldout.jsonl)")
    evaluation.add_argument("--drop-overlap", action=argparse.BooleanOptionalAction, default=True,
                            help="leave out eval-file rows that are in (or near copies of) the run's training rows (default: on; "
                                 "--no-drop-overlap evaluates them, with a warning); the count is reported either way")
    evaluation.add_argument("--max-examples", type=int, help="default: EvalOptions in studio/evaluate.py (32)")
    evaluation.add_argument("--max-new-tokens", type=int, help="per answer (default 40; probe answers 16)")
    evaluation.add_argument("--batch-size", type=int, help="answers decoded together (default 16)")
    evaluation.add_argument("--no-probes", action="store_true", help="skip the capability-regression probe")
    evaluation.add_argument("--probe-file", help="another probe set (JSON, as assets/probes/capabilities.json)")
    evaluation.add_argument("--judge", help="a local model (e.g. embedded) to judge base vs tuned answers")
    evaluation.add_argument("--background", action="store_true", help="start the evaluation as a job and return at once (see `runs list`)")
    evaluation.add_argument("--job-id", help=argparse.SUPPRESS)  # the job row a background evaluation runs as
    evaluation.set_defaults(func=cmd_eval)

    export = sub.add_parser("export", help="export a run: adapter, merged safetensors or GGUF, with a model card")
    export.add_argument("run_id")
    export.add_argument("--format", required=True, choices=["adapter", "merged", "gguf"])
    export.add_argument("--out", required=True, help="an empty or new folder")
    from .export import DEFAULT_QUANT, QUANTS

    export.add_argument("--quant", "--gguf-type", action="append", choices=list(QUANTS),
                        help=f"GGUF type, repeatable (llama.cpp's quantizer); default {DEFAULT_QUANT}, the first is the Modelfile's")
    export.add_argument("--ollama", action="store_true", help="also write an Ollama Modelfile (gguf)")
    export.add_argument("--system", help="system prompt for the Modelfile's SYSTEM (default: the chat template's own)")
    export.add_argument("--push", metavar="REPO_ID", help="upload the export to the Hugging Face Hub (needs a token)")
    export.add_argument("--json", action="store_true", help="print only the summary as JSON: files, quant, base_model, llama_cpp_check")
    export.add_argument("--no-verify", action="store_true", help="skip loading the export back (merged) or the llama.cpp check (gguf)")
    export.add_argument("--zip", nargs="?", const="", default=None, metavar="ZIP", help="also zip the export (to ZIP, default OUT.zip)")
    export.set_defaults(func=cmd_export)

    data = sub.add_parser("data", help="datasets: inspect PATH [--json] | prepare PATH --name N | versions (see `data -h`)", add_help=False)
    data.add_argument("data_args", nargs=argparse.REMAINDER)
    data.set_defaults(func=cmd_data)
    advise_p = sub.add_parser("advise", help="fine-tune, RAG, prompting or build an eval first? answers as JSON on stdin")
    advise_p.add_argument("--json", action="store_true", help="print JSON: approach, reasons, next_step, method, preset")
    advise_p.add_argument("--answers", help="read the answers from this JSON file instead of stdin")
    advise_p.add_argument("--data", help="a dataset file or saved version: fills examples, eval split and token lengths")
    advise_p.add_argument("--model", default="embedded", help="model or config.json folder (for the method picker and estimate)")
    advise_p.add_argument("--device", choices=["gpu", "cpu"], default="gpu", help="gpu = the 24 GB RTX 4090 reference")
    advise_p.add_argument("--check-base", action="store_true", help="run the base model on a sample of the eval split")
    advise_p.add_argument("--sample", type=int, default=5, help="eval prompts for --check-base")
    advise_p.add_argument("--max-new-tokens", type=int, default=96)
    advise_p.add_argument("--scalar-reward", action="store_true", help="a scalar reward is wanted (RLHF)")
    advise_p.add_argument("--principles", action="store_true", help="you have written principles (Constitutional AI)")
    advise_p.add_argument("--checkable", action="store_true", help="a rule can check the answers (format, exact or numeric answer): GRPO")
    advise_p.set_defaults(func=cmd_advise)

    from .estimator import ESTIMATE_METHODS, OPTIMIZERS

    est = sub.add_parser("estimate", help="peak memory, fits-24GB, time and cost, from config.json only")
    est.add_argument("--model", required=True, help="a folder with config.json, a config.json, `embedded` or a known name")
    est.add_argument("--method", required=True, choices=ESTIMATE_METHODS)
    est.add_argument("--seq", type=int, required=True, help="sequence length (max_length)")
    est.add_argument("--batch", type=int, required=True, help="per-device batch size")
    est.add_argument("--gradient-checkpointing", choices=["auto", "on", "off"], default="auto", help="auto: on for models of 1B+")
    est.add_argument("--optimizer", choices=OPTIMIZERS, help="default: what the studio's trainer uses")
    est.add_argument("--lora-r", type=int, default=16)
    est.add_argument("--device", choices=["gpu", "cpu"], default="gpu", help="gpu: bf16 (RTX 4090 reference); cpu: fp32 RAM")
    est.add_argument("--train-tokens", type=int, help="dataset tokens x epochs: adds time and cost")
    est.add_argument("--generations", type=int, default=4, help="GRPO: completions sampled per prompt")
    est.add_argument("--completion-length", type=int, default=256, help="GRPO: new tokens per completion (--seq is prompt + completion)")
    est.add_argument("--json", action="store_true")
    est.set_defaults(func=cmd_estimate)

    model = sub.add_parser("models", help="prepare a model (converts the embedded GGUF once)")
    model.add_argument("action", choices=["prepare"])
    model.add_argument("source", nargs="?", default="embedded")
    model.set_defaults(func=cmd_models)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["data"]:  # `data` has its own sub-commands and options (studio/data/cli.py)
        args = argparse.Namespace(func=cmd_data, data_args=argv[1:])
    else:
        args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except StudioError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
