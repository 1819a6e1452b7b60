"""The export tells Phoenix the truth: what Phoenix acknowledged but did not store is sent
again before the checkpoint moves, labels arrive as span annotations, and a session that
changed replaces its old trace (Phoenix keeps the first copy of a span id).

A Phoenix of its own: Phoenix stores a span id once, whatever project it was sent to, so
these tests must not share sessions with another module's Phoenix.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from skillopsd.export import root_span_id

from ._export_helpers import (
    CODEX_FAILURE,
    FAILURES_AND_BLOCKS,
    ONE_BLOCK,
    SMALL_FAILURE,
    derived,
    home_with,
    run_once,
)
from ._phoenix import Phoenix, start_phoenix
from .conftest import run_ctl

pytestmark = [pytest.mark.phoenix, pytest.mark.slow]


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Phoenix]:
    running = start_phoenix(tmp_path_factory.mktemp("phoenix"))
    yield running
    running.stop()


class _LyingProxy:
    """An HTTP relay in front of Phoenix that acknowledges some OTLP requests without
    passing them on: what Phoenix does to spans it acknowledged just before it stops."""

    def __init__(self, upstream_port: int, drop: int | None) -> None:
        import http.client
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.dropped = 0
        self.forwarded = 0
        outer = self

        class Relay(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: object) -> None:
                pass

            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                lie = self.command == "POST" and self.path.startswith("/v1/traces")
                if lie and (drop is None or outer.dropped < drop):
                    outer.dropped += 1
                    self.send_response(200)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                outer.forwarded += lie
                conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                conn.request(self.command, self.path, body=body, headers=headers)
                answer = conn.getresponse()
                data = answer.read()
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_POST = do_DELETE = _relay

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Relay)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _status_exports(home: Path) -> list[dict[str, Any]]:
    done = run_ctl("status", "--json", env={"HOME": str(home)})
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout)["exports"])


def test_verify_sends_again_what_phoenix_acknowledged_but_did_not_store(
    phoenix: Phoenix, tmp_path: Path
) -> None:
    home = home_with(tmp_path / "home", (FAILURES_AND_BLOCKS, CODEX_FAILURE))
    run_once(home)
    env = {"HOME": str(home)}
    sessions = derived(home)
    expected = sum(len(spans) + 1 for _s, spans in sessions.values())
    # Acknowledged and dropped, unverified: the checkpoint would say exported while Phoenix
    # holds nothing. That is the failure --verify exists for.
    liar = _LyingProxy(phoenix.port, drop=None)
    try:
        blind = run_ctl("export", "otlp", "--endpoint", liar.url, "--project", "blind", env=env)
        assert blind.returncode == 0 and liar.dropped >= 1
        time.sleep(2)
        assert phoenix.spans("blind") == []
        # Verified: every send is dropped, so it fails after its rounds and checkpoints nothing.
        lost = run_ctl(
            "export", "otlp", "--endpoint", liar.url, "--project", "lost", "--verify",
            "phoenix", env=env, timeout=240,
        )  # fmt: skip
        assert lost.returncode == 1, lost.stderr
        assert "did not store" in lost.stderr and "Traceback" not in lost.stderr
        row = next(e for e in _status_exports(home) if e["target"].endswith("project=lost"))
        assert row["exported"] == 0 and row["behind"] == len(sessions)
    finally:
        liar.close()
    # The first request is dropped after its acknowledgement; verify finds the hole and
    # sends those sessions again, and only then checkpoints.
    liar = _LyingProxy(phoenix.port, drop=1)
    try:
        done = run_ctl(
            "export", "otlp", "--endpoint", liar.url, "--project", "verified", "--verify",
            "phoenix", "--batch-bytes", "65536", env=env,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert liar.dropped == 1 and "sent 1 again" in done.stderr
    finally:
        liar.close()
    arrived = phoenix.spans("verified")
    assert len(arrived) == len({s["context"]["span_id"] for s in arrived}) == expected
    row = next(e for e in _status_exports(home) if e["target"].endswith("project=verified"))
    assert row["exported"] == len(sessions) and row["behind"] == 0


def _annotations(phoenix: Phoenix, project: str, span_ids: list[str]) -> list[dict[str, Any]]:
    import urllib.parse
    import urllib.request

    query = urllib.parse.urlencode([("span_ids", s) for s in span_ids] + [("limit", "1000")])
    url = f"{phoenix.url}/v1/projects/{project}/span_annotations?{query}"
    with urllib.request.urlopen(url, timeout=30) as r:
        return list(json.load(r)["data"])


def test_labels_reach_phoenix_as_annotations_and_a_changed_session_replaces_its_trace(
    phoenix: Phoenix, tmp_path: Path
) -> None:
    home = home_with(tmp_path / "home", (ONE_BLOCK, SMALL_FAILURE))
    # One session is first seen halfway (its transcript's first half), as a live export
    # catches a session that is still growing.
    transcript = next(home.rglob(f"{SMALL_FAILURE}.jsonl"))
    whole = transcript.read_text()
    lines = whole.splitlines(keepends=True)
    transcript.write_text("".join(lines[: len(lines) // 2]))
    run_once(home)
    env = {"HOME": str(home)}
    sessions = derived(home)
    sid = next(s for s, (v, _sp) in sessions.items() if v.native_session_id == ONE_BLOCK)
    label = run_ctl("annotate", sid, "--label", "bad", "--note", "went in circles", env=env)
    assert label.returncode == 0, label.stderr
    args = ("export", "otlp", "--endpoint", phoenix.url, "--project", "notes")
    done = run_ctl(*args, "--verify", "phoenix", env=env)
    assert done.returncode == 0, done.stderr
    notes = _annotations(phoenix, "notes", [root_span_id(sid)])
    assert [(n["name"], n["result"]["label"], n["result"]["explanation"]) for n in notes] == [
        ("label", "bad", "went in circles")
    ]
    assert notes[0]["annotator_kind"] == "HUMAN"

    # The session exported halfway is replaced by its whole trace once it grew: Phoenix alone
    # keeps the first copy of a span (the root's end and verdict) and would show the half.
    grown_sid = next(
        s for s, (v, _sp) in derived(home).items() if v.native_session_id == SMALL_FAILURE
    )
    half_spans = len(derived(home)[grown_sid][1])
    transcript.write_text(whole)
    run_once(home)
    session, spans = derived(home)[grown_sid]
    assert len(spans) > half_spans
    again = run_ctl(*args, "--verify", "phoenix", "--changed", "--settle-seconds", "0", env=env)
    assert again.returncode == 0, again.stderr
    got = {
        s["context"]["span_id"]: s
        for s in phoenix.spans("notes")
        if s["context"]["trace_id"] == spans[0].trace_id
    }
    assert set(got) == {sp.span_id for sp in spans} | {root_span_id(grown_sid)}
    root = got[root_span_id(grown_sid)]
    assert root["end_time"].startswith(session.ended_at[:19])
    assert root["attributes"]["skillops.outcomes.success"] == session.outcomes.success
    # The label is written again with its identifier: one annotation, not two.
    assert len(_annotations(phoenix, "notes", [root_span_id(sid)])) == 1
