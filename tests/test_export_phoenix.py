"""Export into a real Arize Phoenix, queried back through its REST API.

Marked ``phoenix``: ``-m "not phoenix"`` skips them locally; CI installs Phoenix
(.ci/phoenix-env) and fails if it is missing.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from skillopsd.export import root_span_id
from skillopsd.projections.session_views import SpanView

from ._daemon import DaemonProcess, daemon_env, db_path
from ._dashboard import artifacts_dir, launch_chromium
from ._export_helpers import (
    CODEX_FAILURE,
    FAILURES_AND_BLOCKS,
    ONE_BLOCK,
    SMALL_FAILURE,
    derived,
    home_with,
    run_once,
)
from ._phoenix import Phoenix, Proxy, start_phoenix
from ._shared import skip_or_fail
from .conftest import run_ctl

pytestmark = [pytest.mark.phoenix, pytest.mark.slow]

# claude, "Check CI linting failures": 9 shell calls, one printing a gofmt diff.
UI_SESSION = "665c2e57-8c9f-4dd8-ba40-05c63f801620"
_KIND = {"CHAIN": "CHAIN", "LLM": "LLM", "TOOL": "TOOL", "SKILL": "TOOL", "AGENT": "AGENT"}


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Phoenix]:
    running = start_phoenix(tmp_path_factory.mktemp("phoenix"))
    yield running
    running.stop()


def _arrived(
    phoenix: Phoenix, project: str, count: int, timeout: float = 60
) -> list[dict[str, Any]]:
    """Phoenix's spans of ``project`` once ``count`` have arrived (it inserts in batches)."""
    deadline = time.monotonic() + timeout
    spans = phoenix.spans(project)
    while len(spans) < count and time.monotonic() < deadline:
        time.sleep(0.5)
        spans = phoenix.spans(project)
    return spans


def _check_trace(got: dict[str, dict[str, Any]], sid: str, spans: list[SpanView]) -> None:
    """One session as Phoenix shows it: the tree, statuses, kinds and GenAI attributes."""
    root = got[root_span_id(sid)]
    assert root["parent_id"] is None and root["span_kind"] == "AGENT"
    assert {got[s.span_id]["context"]["trace_id"] for s in spans} == {spans[0].trace_id}
    for span in spans:
        seen = got[span.span_id]
        attrs = seen["attributes"]
        assert seen["parent_id"] == (span.parent_span_id or root_span_id(sid))
        assert seen["name"] == span.name
        assert seen["span_kind"] == _KIND[span.kind]
        if span.outcome == "failure":
            assert seen["status_code"] == "ERROR"
            reason = span.attributes.get("skillops.result.error")
            assert seen["status_message"] == (str(reason)[:1024] if reason else "failure")
        elif span.outcome == "success":
            assert seen["status_code"] == "OK"
        else:
            assert seen["status_code"] == "UNSET"
            assert attrs.get("skillops.outcome") == span.outcome
        if span.kind == "TOOL":
            assert attrs["gen_ai.tool.name"] == span.attributes["gen_ai.tool.name"]
            assert attrs["gen_ai.tool.call.id"] == span.attributes["gen_ai.tool.call.id"]
        if span.kind == "LLM":
            assert attrs["gen_ai.request.model"] == span.attributes["gen_ai.request.model"]
            tokens = span.attributes.get("gen_ai.usage.output_tokens")
            if tokens is not None:
                assert attrs["gen_ai.usage.output_tokens"] == tokens
                assert attrs["llm.token_count.completion"] == tokens


def test_cli_export_arrives_in_phoenix_as_derived(phoenix: Phoenix, tmp_path: Path) -> None:
    home = home_with(tmp_path / "home", (FAILURES_AND_BLOCKS, CODEX_FAILURE))
    run_once(home)
    sessions = derived(home)
    expected = sum(len(spans) + 1 for _s, spans in sessions.values())
    done = run_ctl(
        "export", "otlp", "--endpoint", phoenix.url, "--project", "cli", env={"HOME": str(home)}
    )
    assert done.returncode == 0, done.stderr
    arrived = _arrived(phoenix, "cli", expected)
    got = {s["context"]["span_id"]: s for s in arrived}
    assert len(arrived) == len(got) == expected
    statuses = {s["status_code"] for s in arrived}
    assert {"ERROR", "OK", "UNSET"} <= statuses
    for sid, (session, spans) in sessions.items():
        _check_trace(got, sid, spans)
        root = got[root_span_id(sid)]
        assert root["status_code"] == {"failure": "ERROR", "success": "OK"}.get(
            session.verdict or "", "UNSET"
        )
        assert root["attributes"]["session.id"] == sid
    blocked = [s for _sid, (_v, spans) in sessions.items() for s in spans if s.outcome == "blocked"]
    assert blocked and all(got[s.span_id]["status_code"] == "UNSET" for s in blocked)

    # Exporting again replaces rather than duplicates: Phoenix keeps one span per id.
    again = run_ctl(
        "export", "otlp", "--endpoint", phoenix.url, "--project", "cli", env={"HOME": str(home)}
    )
    assert again.returncode == 0, again.stderr
    time.sleep(2)
    assert len(phoenix.spans("cli")) == expected


def test_daemon_exports_live_to_phoenix_through_an_outage(phoenix: Phoenix, tmp_path: Path) -> None:
    home = home_with(tmp_path / "home", (ONE_BLOCK, SMALL_FAILURE))
    proxy = Proxy(phoenix.port)  # down: the daemon starts while the receiver is unreachable
    daemon = DaemonProcess(
        home,
        "--otlp-endpoint",
        proxy.url,
        "--otlp-settle",
        "0",
        "--otlp-project",
        "live",
        env=daemon_env(home),
    )
    try:
        daemon.wait_for(lambda: len(derived_or_empty(home)) == 2, timeout=60)
        daemon.wait_for(lambda: _last_error(home) is not None, timeout=60)
        assert "cannot reach" in str(_last_error(home))
        assert phoenix.spans("live") == []
        proxy.up()
        sessions = derived(home)
        expected = sum(len(spans) + 1 for _s, spans in sessions.values())
        arrived = _arrived(phoenix, "live", expected, timeout=90)
        got = {s["context"]["span_id"]: s for s in arrived}
        assert len(arrived) == len(got) == expected, daemon.logs()[-3000:]
        for sid, (_session, spans) in sessions.items():
            _check_trace(got, sid, spans)
    finally:
        assert daemon.stop(timeout=30) == 0
        proxy.down()


def _last_error(home: Path) -> object:
    done = run_ctl("status", "--json", env={"HOME": str(home)})
    exports = json.loads(done.stdout)["exports"] if done.returncode == 0 else []
    return exports[0]["last_error"] if exports else None


def derived_or_empty(home: Path) -> dict[str, Any]:
    if not db_path(home).exists():
        return {}
    try:
        return derived(home)
    except Exception:  # not projected yet
        return {}


def test_an_opened_trace_in_phoenix_shows_the_session_and_a_calls_output(
    phoenix: Phoenix, tmp_path: Path
) -> None:
    """Phoenix's own UI, in the system Chromium: the session's tree and a call's result."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("needs the playwright package (pip install -e '.[test]')")
    home = home_with(tmp_path / "home", (UI_SESSION,))
    run_once(home)
    [(_sid, (session, spans))] = derived(home).items()
    done = run_ctl(
        "export", "otlp", "--endpoint", phoenix.url, "--project", "ui", "--verify", "phoenix",
        env={"HOME": str(home)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    stored = {s["context"]["span_id"]: s for s in phoenix.spans("ui")}
    diff = next(
        sp for sp in spans if "gofmt -l" in str(sp.attributes.get("gen_ai.tool.call.arguments"))
    )
    output = stored[diff.span_id]["attributes"]["output.value"]
    assert "--- diff ---" in output  # what the call printed, not only that it succeeded
    with urllib.request.urlopen(f"{phoenix.url}/v1/projects", timeout=30) as r:
        project = next(p["id"] for p in json.load(r)["data"] if p["name"] == "ui")
    node = urllib.parse.quote(stored[diff.span_id]["id"])
    url = f"{phoenix.url}/projects/{project}/traces/{spans[0].trace_id}?selectedSpanNodeId={node}"
    shot = artifacts_dir("phoenix") / "trace.png"
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.goto(url)
            page.get_by_text("--- diff ---").first.wait_for(timeout=120_000)
            page.wait_for_timeout(500)  # the tree's last paint
            page.screenshot(path=str(shot))
            text = page.inner_text("body")
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
    # The session: its root (name and verdict), its turns, every call, the opened call's
    # command as input and what it printed as output.
    assert f"claude session {session.title}" in text
    assert session.verdict == "success" and "Status\nOK" in text
    assert "turn 1" in text and "turn 2" in text
    assert text.count("Bash") >= sum(1 for sp in spans if sp.name == "Bash")
    assert "gofmt -l internal/gitproto/smarthttp.go" in text
    for line in output.splitlines()[:3]:
        assert line.strip() in text
