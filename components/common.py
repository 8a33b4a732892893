"""Small helpers shared by the tabs: turning engine errors into messages for the user."""

from __future__ import annotations

import html
import re

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


def empty_state(text: str) -> str:
    """What an empty area shows instead of a blank table or plot: what to do next."""
    return f'<div class="studio-empty">{html.escape(text)}</div>'
