"""Headless CLI: `python -m studio train RUN.yaml`, `runs list|show|cancel|resume`, `chat`, `data`.

User errors print one line (`error: ...`) and exit 2; they never print a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

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

    run_dir = execute(args.config, run_id=args.run_id, resume=args.resume)
    print(run_dir)
    return 0


def cmd_runs(args) -> int:
    from .jobs import registry, runner

    if args.action == "list":
        runs = registry.list_runs()
        if args.json:
            print(json.dumps([r.to_json() for r in runs], indent=2))
        else:
            for r in runs:
                when = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.created))
                print(f"{r.id:40s} {r.status:12s} {r.method:12s} {when}  {r.name}")
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
    from .chat import ChatEngine, GenerationSettings
    from .jobs import registry

    record = registry.get(args.run_id)
    if record is None:
        raise StudioError(f"no run with id {args.run_id}.", hint="See `python -m studio runs list`.")
    engine = ChatEngine.for_run(record)
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens, temperature=0.0 if args.greedy else 0.7)
    answer = engine.answer([{"role": "user", "content": args.prompt}], tuned=not args.base, settings=settings)
    print(answer.replace("\n", " "))
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m studio", description="Fine-tuning Studio, headless.")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train from a YAML run config")
    train.add_argument("config", nargs="?")
    train.add_argument("--run-id", help="use this run id (the UI passes one)")
    train.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint")
    train.add_argument("--help-config", action="store_true", help="list every config key with its help")
    train.set_defaults(func=cmd_train)

    runs = sub.add_parser("runs", help="list, show, cancel or resume runs")
    runs.add_argument("action", choices=["list", "show", "cancel", "resume"])
    runs.add_argument("id", nargs="?")
    runs.add_argument("--json", action="store_true")
    runs.set_defaults(func=cmd_runs)

    chat = sub.add_parser("chat", help="ask a trained run (or its base model) one question")
    chat.add_argument("run_id")
    chat.add_argument("--prompt", required=True)
    chat.add_argument("--base", action="store_true", help="answer with the base model (adapter off)")
    chat.add_argument("--max-new-tokens", type=int, default=128)
    chat.add_argument("--greedy", action="store_true")
    chat.set_defaults(func=cmd_chat)

    data = sub.add_parser("data", help="datasets: inspect PATH [--json] | prepare PATH --name N | versions (see `data -h`)", add_help=False)
    data.add_argument("data_args", nargs=argparse.REMAINDER)
    data.set_defaults(func=cmd_data)
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
