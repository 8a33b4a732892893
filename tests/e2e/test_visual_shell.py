"""The app shell in a real browser at 1440×900, light and dark (following the system setting):
every tab has the status bar and no Dataframe with placeholder headers ("1 2 3"), each tab is
screenshotted; the stepper ticks a step done in this session; the status bar shows a live run
and a click on it opens that run in the Train tab.

Runs on the session's demo studio (tests/conftest.py `demo_server`), so it adds no server start."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest

from studio.jobs import registry
from tests.e2e.conftest import SCREENSHOTS
from tests.e2e.test_runs_live import append_rows, make_run, wait_for

pytestmark = pytest.mark.e2e

TABS = ("Data", "Method", "Train", "Runs", "Chat", "Evaluate", "Export")
SHOTS = SCREENSHOTS / "tabs"
# Header texts of every visible Dataframe, by the id of its block.
HEADERS_JS = """() => [...document.querySelectorAll('[role=grid]')].filter(g => g.offsetParent !== null).map(g => {
  const block = g.closest('[id]');
  return [block ? block.id : '?', [...g.querySelectorAll('thead th')].map(th => th.innerText.trim())];
})"""
# No component is waiting on the server (each shows a status tracker while it does).
IDLE_JS = """() => ![...document.querySelectorAll('[data-testid=status-tracker]')]
  .some(e => !e.classList.contains('hide') && e.offsetParent !== null && e.getBoundingClientRect().height > 0)"""
BODY_LUMINANCE_JS = """() => {
  const [r, g, b] = getComputedStyle(document.querySelector('gradio-app') || document.body).backgroundColor.match(/\\d+/g).map(Number);
  return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255;
}"""


def placeholder_tables(page) -> list:
    """Visible tables whose headers are Gradio's defaults: 1, 2, 3, ..."""
    return [(elem_id, headers) for elem_id, headers in page.evaluate(HEADERS_JS)
            if headers and all(re.fullmatch(r"\d+", h) for h in headers)]


@pytest.fixture
def context_for(browser):
    contexts = []

    def make(scheme: str):
        context = browser.new_context(viewport={"width": 1440, "height": 900}, color_scheme=scheme)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_tab_has_the_status_bar_and_no_placeholder_tables(demo_server, context_for, scheme):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = context_for(scheme)
    page.goto(demo_server["url"])
    status = page.locator("#studio-status .sb")
    status.wait_for(timeout=60_000)
    luminance = page.evaluate(BODY_LUMINANCE_JS)
    assert (luminance < 0.3) if scheme == "dark" else (luminance > 0.7), (scheme, luminance)  # the theme follows the system
    for tab in TABS:
        page.get_by_role("tab", name=tab, exact=True).click()
        page.wait_for_timeout(300)
        page.wait_for_function(IDLE_JS, timeout=30_000)  # the tab's refresh-on-show
        assert status.is_visible(), f"no status bar on the {tab} tab"
        assert re.search(r"CPU · \d+ cores|GiB", status.inner_text()), status.inner_text()
        assert "Queue:" in status.inner_text()
        assert placeholder_tables(page) == [], f"{tab} tab: placeholder headers in {placeholder_tables(page)}"
        if tab == "Train":
            stop_classes = page.locator("#train-stop").get_attribute("class") or ""
            assert "stop" not in stop_classes.split(), "Stop is red although nothing runs"
        page.screenshot(path=str(SHOTS / f"{tab.lower()}-{scheme}.png"))


def test_the_server_log_has_the_address_and_no_share_link_hint(demo_server):
    log = (demo_server["home"] / "demo_server.log").read_text()
    assert "Fine-tuning Studio is running at http://127.0.0.1:" in log
    assert "share=True" not in log and "public link" not in log


def test_stepper_and_status_bar_follow_the_session(demo_server, context_for, monkeypatch):
    monkeypatch.setenv("STUDIO_HOME", str(demo_server["home"]))
    page = context_for("light")
    page.goto(demo_server["url"])
    page.locator("#studio-status .sb").wait_for(timeout=60_000)

    def lit() -> list[str]:  # the steps drawn as the tab on screen
        return [step for step in ("data", "method", "train", "chat", "evaluate", "export")
                if "current" in (page.locator(f"#step-{step}").get_attribute("class") or "").split()]

    # Stepper: loading a dataset ticks Data; the step buttons switch tabs; the step of the tab on screen is lit.
    assert "✓" not in page.locator("#step-data").inner_text() and lit() == ["data"]
    page.locator("#data-demo").click()
    wait_for(lambda: "✓" in page.locator("#step-data").inner_text(), 60, "the Data step to tick")
    assert "✓" not in page.locator("#step-train").inner_text() and lit() == ["data"]
    page.locator("#step-method").click()
    page.locator("#method-advise").wait_for(state="visible", timeout=10_000)
    wait_for(lambda: lit() == ["method"], 10, "the Method step to be lit")
    page.get_by_role("tab", name="Chat", exact=True).click()
    wait_for(lambda: lit() == ["chat"], 10, "the Chat step to be lit after its tab was picked")
    page.get_by_role("tab", name="Runs", exact=True).click()
    wait_for(lambda: lit() == [], 10, "no step lit on the Runs tab")

    # Status bar: a live run (a stand-in process) shows with its step and loss; a click opens it.
    live = make_run("shell-live", 1e-3, [])
    stand_in = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        registry.mark_running(live.id, stand_in.pid)
        append_rows(live.run_dir, [(1, 2.5), (2, 2.25)], max_steps=6)
        run_text = page.locator("#studio-status .sb-run")
        wait_for(lambda: "shell-live" in run_text.inner_text(), 15, "the live run in the status bar")
        assert "step 2/6" in run_text.inner_text() and "loss 2.250" in run_text.inner_text(), run_text.inner_text()
        assert re.search(r"ETA (…|[1-9])", run_text.inner_text()), run_text.inner_text()  # never "ETA 0s" with 4 steps to go
        run_text.click()
        wait_for(lambda: "shell-live" in page.locator("#train-run input").input_value(), 15, "the Train tab to watch the run")
        page.locator("#train-status").get_by_text("RUNNING").wait_for(timeout=15_000)
        wait_for(lambda: lit() == ["train"], 10, "the Train step to be lit")
        wait_for(lambda: "stop" in (page.locator("#train-stop").get_attribute("class") or "").split(), 10, "Stop to turn red")
        time.sleep(0.5)
        page.screenshot(path=str(SCREENSHOTS / "shell-live-run.png"))
    finally:
        stand_in.kill()
        stand_in.wait()
        registry.finish(live.id, "cancelled", "stand-in for the status-bar test")
