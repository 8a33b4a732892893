"""Download copies live in a temp folder of the browser session that made them; the app's unload
handler (components.common.end_session) removes that session's folders and no other's."""

from __future__ import annotations

from types import SimpleNamespace

from gradio.context import LocalContext

from components import common


def test_end_session_removes_only_that_sessions_copies(tmp_path):
    source = tmp_path / "report.html"
    source.write_text("<p>report</p>")
    LocalContext.request.set(SimpleNamespace(session_hash="alice"))
    alice = common.downloadable(source)
    LocalContext.request.set(SimpleNamespace(session_hash="bob"))
    bob = common.downloadable(source)
    try:
        assert open(alice).read() == "<p>report</p>" and alice != bob
        LocalContext.request.set(SimpleNamespace(session_hash="alice"))
        assert common.end_session() == 1
        from pathlib import Path

        assert not Path(alice).exists() and Path(bob).exists()
    finally:
        LocalContext.request.set(SimpleNamespace(session_hash="bob"))
        common.end_session()
        LocalContext.request.set(None)
