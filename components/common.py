"""Small helpers shared by the tabs: turning engine errors into messages for the user."""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from gradio.utils import get_upload_folder

from studio.errors import StudioError


def user_file_names(text: str) -> str:
    """Gradio keeps an upload as <temp>/gradio/<hash>/<name>; a message names the user's file, <name>."""
    return re.sub(re.escape(get_upload_folder().rstrip("/")) + r"/[0-9a-f]{16,}/", "", text)


def error_text(err: Exception) -> str:
    """A one-line message for a StudioError; anything else is reported without a traceback."""
    if isinstance(err, StudioError):
        return user_file_names(f"⚠️ {err}")
    return user_file_names(f"⚠️ Unexpected problem: {type(err).__name__}: {err}")


def status_html(text: str, kind: str = "info", *, transient: bool = False) -> str:
    """A status line; `transient` ones ("Stopping…", "Saved…") fade out by themselves after a few seconds."""
    classes = f"studio-status studio-{kind}" + (" studio-transient" if transient else "")
    return f'<div class="{classes}">{html.escape(text)}</div>'


def stop_button(live: bool):
    """A Stop/Cancel button: red and enabled only while what it stops is queued or running."""
    import gradio as gr

    return gr.update(variant="stop" if live else "secondary", interactive=live)


def empty_state(text: str) -> str:
    """What an empty area shows instead of a blank table or plot: what to do next."""
    return f'<div class="studio-empty">{html.escape(text)}</div>'


# ----- Shared by several tabs (tabs import each other only through this module) ------------------

def chat_run_choices() -> list[tuple[str, str]]:
    """(label, run id) of every run that has trained weights (Chat, Evaluate and Export pick from these)."""
    from studio import chat
    from studio.jobs import registry

    usable = [r for r in registry.list_runs() if chat.has_weights(r)]
    return [(f"{r.name} · {r.status} · {r.id}", r.id) for r in usable]


# Temp folders by browser session (Gradio's session hash); `end_session` (app.unload) removes them.
_SESSION_TEMP: dict[str, list[Path]] = {}
_SESSION_LOCK = threading.Lock()


def session_temp_dir(prefix: str = "studio-download-") -> Path:
    """A new temp folder owned by the calling browser session: it goes when the session ends."""
    from gradio.context import LocalContext

    folder = Path(tempfile.mkdtemp(prefix=prefix))
    session = getattr(LocalContext.request.get(None), "session_hash", None)
    with _SESSION_LOCK:
        _SESSION_TEMP.setdefault(session or "", []).append(folder)
    return folder


def downloadable(path: Path) -> str:
    """A copy in this session's temp folder: Gradio serves downloads from the temp dir, so the studio
    home itself need not be served (launch.py's allowed_paths stays empty)."""
    target = session_temp_dir() / Path(path).name
    shutil.copy2(path, target)
    return str(target)


def end_session() -> int:
    """app.unload: remove the temp folders of the session that closed; returns how many went."""
    from gradio.context import LocalContext

    session = getattr(LocalContext.request.get(None), "session_hash", None)
    if not session:
        return 0
    with _SESSION_LOCK:
        folders = _SESSION_TEMP.pop(session, [])
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
    return len(folders)


def stream_cli(args: list[str], timeout: float = 3600):
    """Run `python -m studio ARGS` as a subprocess (from any working directory); yield (elapsed seconds,
    last stderr line) while it runs, then ("done", stdout) or raise StudioError with its one-line error."""
    from studio.resources import child_env

    env = child_env({**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    process = subprocess.Popen([sys.executable, "-m", "studio", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started = time.time()
    stderr_lines: list[str] = []
    reader = threading.Thread(target=lambda: stderr_lines.extend(iter(process.stderr.readline, "")), daemon=True)
    reader.start()
    while process.poll() is None:
        if time.time() - started > timeout:
            process.kill()
            raise StudioError(f"`{args[0]}` took longer than {timeout:.0f}s and was stopped.")
        last = next((line.strip() for line in reversed(stderr_lines) if line.strip().startswith("[")), "")
        yield time.time() - started, last
        time.sleep(0.5)
    stdout = process.stdout.read()
    reader.join(timeout=2)
    if process.returncode != 0:
        message = next((line.strip() for line in reversed(stderr_lines) if line.startswith("error:")), None)
        raise StudioError(message[len("error:"):].strip() if message else f"`{args[0]}` failed (exit {process.returncode}): {''.join(stderr_lines)[-400:]}")
    yield "done", stdout
