"""Small helpers shared by the tabs: turning engine errors into messages for the user."""

from __future__ import annotations

import html

from studio.errors import StudioError


def error_text(err: Exception) -> str:
    """A one-line message for a StudioError; anything else is reported without a traceback."""
    if isinstance(err, StudioError):
        return f"⚠️ {err}"
    return f"⚠️ Unexpected problem: {type(err).__name__}: {err}"


def status_html(text: str, kind: str = "info") -> str:
    return f'<div class="studio-status studio-{kind}">{html.escape(text)}</div>'
