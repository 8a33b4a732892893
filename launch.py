"""Start Fine-tuning Studio: `python launch.py [--host 127.0.0.1] [--port 7860] [--auth user:pass]`."""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main() -> None:
    parser = argparse.ArgumentParser(description="Fine-tuning Studio")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: local only)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--auth", help="require a login, as user:password")
    args = parser.parse_args()

    from components.app import CSS, build_app

    auth = tuple(args.auth.split(":", 1)) if args.auth else None
    if args.host not in ("127.0.0.1", "localhost") and not auth:
        print(f"warning: serving on {args.host} without --auth; anyone who can reach this port can use the studio.")
    build_app().queue(default_concurrency_limit=4).launch(
        server_name=args.host,
        server_port=args.port,
        auth=auth,
        share=False,
        css=CSS,
        footer_links=[],
        show_error=False,
    )


if __name__ == "__main__":
    main()
