"""Export into a real Arize Phoenix, queried back through its REST API.

Marked ``phoenix``: ``-m "not phoenix"`` skips them locally; CI installs Phoenix
(.ci/phoenix-env) and fails if it is missing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from skillopsd.export import root_span_id
from skillopsd.projections.session_views import SpanView

from ._daemon import DaemonProcess, daemon_env, db_path
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
from .conftest import run_ctl

pytestmark = [pytest.mark.phoenix, pytest.mark.slow]

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
