"""Start Fine-tuning Studio.

    python launch.py [--host 127.0.0.1] [--port 7860] [--auth user:pass | --auth-file FILE] [--app]

Safe defaults: binds 127.0.0.1, no share link, uploads capped, and a non-loopback host is refused
unless a login is required. `--app` opens the studio in a chromeless app window (Chromium, Chrome
or Edge with `--app=URL`, else the default browser).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import shutil
import subprocess
import sys
import webbrowser
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

MAX_UPLOAD = "2gb"
# Browsers that open a URL as a chromeless app window with --app=URL, in order of preference.
APP_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "microsoft-edge", "microsoft-edge-stable", "msedge", "chrome")
MAC_APP_BROWSERS = ("/Applications/Google Chrome.app/Contents/MacOS/Google Chrome", "/Applications/Chromium.app/Contents/MacOS/Chromium",
                    "/Applications/Microsoft Edge.app/Contents/MacOS/Microsoft Edge")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_auth(args: argparse.Namespace) -> list[tuple[str, str]] | None:
    """Credentials from --auth-file (one user:pass per line), $STUDIO_AUTH, or --auth user:pass (which
    every local user can read in `ps`, so it prints a warning)."""
    lines: list[str] = []
    if args.auth:
        print("warning: --auth puts the password in the process list (ps); use --auth-file FILE or the STUDIO_AUTH variable.", file=sys.stderr)
        lines.append(args.auth)
    if os.environ.get("STUDIO_AUTH", "").strip():
        lines.append(os.environ["STUDIO_AUTH"].strip())
    if args.auth_file:
        path = Path(args.auth_file).expanduser()
        if not path.is_file():
            raise SystemExit(f"error: --auth-file {path} not found.")
        lines += [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    pairs = []
    for number, line in enumerate(lines, start=1):
        user, sep, password = line.partition(":")
        if not sep or not user or not password:
            raise SystemExit(f"error: credential {number} must look like user:password.")
        pairs.append((user, password))
    return pairs or None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Fine-tuning Studio")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--auth", help="require a login, as user:password (visible in ps: prefer --auth-file or $STUDIO_AUTH)")
    parser.add_argument("--auth-file", help="file with one user:password per line")
    parser.add_argument("--allow-path", action="append", default=[], metavar="DIR",
                        help="served beyond loopback, typed paths must lie under the studio home; add a folder users may read (repeatable)")
    parser.add_argument("--app", action="store_true", help="open the studio in a chromeless app window (Chromium/Chrome/Edge --app), else the default browser")
    return parser.parse_args(argv)


def app_browser() -> str | None:
    """The first Chromium-family browser on this machine, or None."""
    for name in APP_BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return next((path for path in MAC_APP_BROWSERS if Path(path).is_file()), None)


def open_window(url: str) -> str:
    """Open `url` as an app window where a Chromium-family browser exists, else in the default
    browser; returns what was done, for the console."""
    browser = app_browser()
    if browser:
        subprocess.Popen([browser, f"--app={url}", "--new-window"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
        return f"opened an app window ({Path(browser).name} --app)"
    if webbrowser.open(url):
        return "opened in the default browser"
    return "no browser found: open the address above"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    auth = read_auth(args)
    if not is_loopback(args.host) and not auth:
        print(
            f"error: refusing to serve on {args.host} without a login: anyone who can reach the port could "
            "train, read your data and run models. Add --auth-file FILE (or STUDIO_AUTH=user:password), "
            "or keep the default --host 127.0.0.1.",
            file=sys.stderr,
        )
        raise SystemExit(2)

    from components.app import CSS, THEME, build_app
    from studio.paths import ALLOW_ENV, CONFINE_ENV

    if not is_loopback(args.host):
        # Typed paths (data, model, constitution, ...) confined to the studio home, the shipped assets,
        # Gradio's upload folder and the owner's --allow-path roots (studio.paths.confine).
        from gradio.utils import get_upload_folder

        os.environ[CONFINE_ENV] = "1"
        roots = [str(Path(p).expanduser().resolve()) for p in args.allow_path] + [get_upload_folder()]
        os.environ[ALLOW_ENV] = os.pathsep.join(roots)

    app = build_app().queue(default_concurrency_limit=8)
    # quiet: Gradio's own banner ends with the share-link hint, which this studio never offers.
    app.launch(
        server_name=args.host,
        server_port=args.port,
        auth=auth,
        share=False,
        quiet=True,
        theme=THEME,
        css=CSS,
        footer_links=[],
        show_error=False,
        allowed_paths=[],  # downloads are per-session temp copies (components.common.downloadable); the studio home is not served
        max_file_size=MAX_UPLOAD,
        prevent_thread_lock=True,
    )
    url = app.local_url or f"http://{args.host}:{args.port}/"
    print(f"Fine-tuning Studio is running at {url}  (Ctrl+C to stop)", flush=True)
    if args.app:
        print(f"Fine-tuning Studio: {open_window(url)}", flush=True)
    app.block_thread()


if __name__ == "__main__":
    main()
