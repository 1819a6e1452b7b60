"""OTLP export: the mapping of real sessions, batching, the sender's retries, and the CLI."""

from __future__ import annotations

import json
import re
import shutil
import stat
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from skillopsd.events import Database, EventLog, NewEvent
from skillopsd.events.types import (
    AnnotationAdded,
    AnnotationRetracted,
    EvalCaseResult,
    EvalRunCompleted,
    GraderResult,
)
from skillopsd.export import (
    Accepted,
    ReceiverRefused,
    ReceiverUnavailable,
    Sender,
    SessionTrace,
    due_sessions,
    encode_batches,
    encode_session,
    export_sessions,
    root_span_id,
    traces_url,
)
from skillopsd.projections.session_views import Outcomes, SessionView, SpanView, Tokens

from ._daemon import db_path
from ._export_helpers import FAILURES_AND_BLOCKS, derived, home_with, run_once
from ._otlp_receiver import Receiver
from .conftest import run_ctl

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def captured_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = home_with(tmp_path_factory.mktemp("otlp-home"))
    run_once(home)
    return home


@pytest.fixture
def home(captured_home: Path, tmp_path: Path) -> Path:
    """A private copy of the captured HOME (tests write checkpoints and annotations)."""
    copy = tmp_path / "home"
    shutil.copytree(captured_home, copy)
    return copy


def _nanos(stamp: str) -> int:
    moment = datetime.fromisoformat(stamp)
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


def _attrs(span: Span) -> dict[str, object]:
    out: dict[str, object] = {}
    for kv in span.attributes:
        kind = kv.value.WhichOneof("value")
        value = getattr(kv.value, kind)
        out[kv.key] = list(v.string_value for v in value.values) if kind == "array_value" else value
    return out


def _trace(session: SessionView, spans: list[SpanView]) -> SessionTrace:
    return SessionTrace(session=session, spans=spans, annotations=[], evals=[], position=1)


def test_real_sessions_map_span_for_span(captured_home: Path) -> None:
    sessions = derived(captured_home)
    assert len(sessions) == 4
    outcomes_seen: set[str | None] = set()
    for sid, (session, spans) in sessions.items():
        encoded = encode_session(_trace(session, spans))
        root, rest = encoded[0], encoded[1:]
        assert len(rest) == len(spans)
        assert root.span_id.hex() == root_span_id(sid) and not root.parent_span_id
        assert _attrs(root)["openinference.span.kind"] == "AGENT"
        expected_root = {"failure": 2, "success": 1}.get(session.verdict or "", 0)
        assert root.status.code == expected_root
        assert {s.trace_id for s in encoded} == {bytes.fromhex(spans[0].trace_id)}
        for span, out in zip(spans, rest, strict=True):
            outcomes_seen.add(span.outcome)
            attrs = _attrs(out)
            assert out.span_id.hex() == span.span_id
            assert out.parent_span_id.hex() == (span.parent_span_id or root_span_id(sid))
            assert out.name == span.name
            assert span.start is not None and span.end is not None
            # Times are the derived ones, except that a parent covers its children and an LLM
            # response recorded at one instant starts when what it answers ended.
            parent_of = any(c.parent_span_id == span.span_id for c in spans)
            moved = attrs.get("skillops.time.start_from") == "previous_event"
            if parent_of or moved:
                assert out.start_time_unix_nano <= _nanos(span.start)
                assert out.end_time_unix_nano >= _nanos(span.end)
                assert not moved or span.kind == "LLM"
            else:
                assert out.start_time_unix_nano == _nanos(span.start)
                assert out.end_time_unix_nano == _nanos(span.end)
            kind = {"SKILL": "TOOL"}.get(span.kind, span.kind)
            if span.kind == "TOOL" and any(
                c.parent_span_id == span.span_id and c.kind == "CHAIN" for c in spans
            ):
                kind = "AGENT"
            assert attrs["openinference.span.kind"] == kind
            assert attrs["skillops.span.kind"] == span.kind
            assert attrs["session.id"] == sid
            for key, value in span.attributes.items():
                if isinstance(value, str) and len(value) > 32 * 1024:
                    assert str(attrs[key]).startswith(value[: 32 * 1024])
                elif value is not None:
                    assert attrs[key] == value, key
            if span.outcome == "failure":
                assert out.status.code == Status.STATUS_CODE_ERROR
                reason = span.attributes.get("skillops.result.error")
                assert out.status.message == (str(reason)[:1024] if reason else "failure")
            elif span.outcome == "success":
                assert out.status.code == Status.STATUS_CODE_OK
            else:
                assert out.status.code == Status.STATUS_CODE_UNSET
                assert attrs.get("skillops.outcome") == span.outcome
            if span.kind == "LLM" and "gen_ai.usage.input_tokens" in span.attributes:
                assert (
                    attrs["llm.token_count.prompt"] == span.attributes["gen_ai.usage.input_tokens"]
                )
                assert attrs["llm.model_name"] == span.attributes["gen_ai.request.model"]
            if span.kind == "TOOL":
                assert attrs["tool.name"] == span.attributes["gen_ai.tool.name"]
    assert {"success", "failure", "blocked"} <= outcomes_seen


def _stamp(base: int, offset: int | None) -> str | None:
    return (
        None if offset is None else datetime.fromtimestamp(base + offset).astimezone().isoformat()
    )


@st.composite
def _timed_spans(draw: st.DrawFn) -> list[SpanView]:
    """A small tree whose spans may lack a start, an end, or both."""
    n = draw(st.integers(1, 8))
    base = 1_780_000_000
    out: list[SpanView] = []
    for i in range(n):
        parent = draw(st.sampled_from([None, *[s.span_id for s in out]]))
        start = draw(st.none() | st.integers(0, 5000))
        end = draw(st.none() | st.integers(0, 5000))
        out.append(
            SpanView(
                span_id=f"{i + 1:016x}",
                trace_id="ab" * 16,
                parent_span_id=parent,
                kind=draw(st.sampled_from(["CHAIN", "LLM", "TOOL", "SKILL"])),
                name=f"s{i}",
                start=_stamp(base, start),
                end=_stamp(base, end),
                outcome=draw(st.sampled_from([None, "success", "failure", "blocked"])),
                attributes={},
                session_id="0123456789abcdef",
            )
        )
    return out


@settings(max_examples=60, deadline=None)
@given(spans=_timed_spans(), started=st.booleans())
def test_missing_times_are_filled_and_marked(spans: list[SpanView], started: bool) -> None:
    session = SessionView(
        session_id="0123456789abcdef",
        agent="claude",
        native_session_id="n",
        title=None,
        cwd=None,
        started_at="2026-05-01T00:00:00Z" if started else None,
        ended_at=None,
        turns=1,
        tools=0,
        skills=[],
        outcomes=Outcomes(success=0, failure=0, blocked=0, unknown=0),
        verdict=None,
        tokens=Tokens(input=None, output=None, cache_read=None, cache_creation=None),
        deriver_version=1,
        parent_session_id=None,
    )
    encoded = encode_session(_trace(session, spans))
    by_id = {s.span_id.hex(): s for s in encoded}
    ids = {s.span_id for s in spans}
    for span in spans:
        out = by_id[span.span_id]
        assert out.end_time_unix_nano >= out.start_time_unix_nano
        estimated = _attrs(out).get("skillops.time.estimated", False)
        assert estimated == (span.start is None or span.end is None)
        # A parent covers its children: none starts before it or ends after it.
        parent = by_id.get(span.parent_span_id or "") if span.parent_span_id in ids else None
        if parent is not None:
            assert parent.start_time_unix_nano <= out.start_time_unix_nano
            assert out.end_time_unix_nano <= parent.end_time_unix_nano
        if any(c.parent_span_id == span.span_id for c in spans):
            continue  # a parent's times may widen to its children's
        if _attrs(out).get("skillops.time.start_from") == "previous_event":
            # An instant LLM response starts when what it answers ended, never later.
            assert span.kind == "LLM" and span.start is not None
            assert out.start_time_unix_nano < _nanos(span.start)
            continue
        if span.start is not None:
            assert out.start_time_unix_nano == _nanos(span.start)
        elif span.end is not None:
            assert out.start_time_unix_nano == _nanos(span.end)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(max_bytes=st.integers(2_000, 400_000), order=st.permutations(range(4)))
def test_batches_hold_every_span_once_within_the_limit(
    captured_home: Path, max_bytes: int, order: list[int]
) -> None:
    sessions = list(derived(captured_home).values())
    traces = [_trace(*sessions[i]) for i in order]
    expected = {s.span_id.hex(): t.session.session_id for t in traces for s in encode_session(t)}
    largest = max(s.ByteSize() for t in traces for s in encode_session(t))
    seen: list[str] = []
    done: list[str] = []
    for batch in encode_batches(traces, max_bytes=max_bytes):
        request = ExportTraceServiceRequest()
        request.ParseFromString(batch.body)
        # A batch may pass the limit only by what one span needs on its own.
        assert len(batch.body) <= max(max_bytes, largest + 2048)
        ids = [
            s.span_id.hex()
            for rs in request.resource_spans
            for ss in rs.scope_spans
            for s in ss.spans
        ]
        assert len(ids) == batch.spans
        for rs in request.resource_spans:
            sid = {kv.key: kv.value.string_value for kv in rs.resource.attributes}["session.id"]
            assert all(expected[s.span_id.hex()] == sid for ss in rs.scope_spans for s in ss.spans)
        seen += ids
        # A session is done in the batch that holds its last span, not before.
        for sid, _position in batch.done:
            assert all(expected[i] != sid for i in expected if i not in seen)
            done.append(sid)
    assert sorted(seen) == sorted(expected)
    assert sorted(done) == sorted(t.session.session_id for t in traces)


def test_traces_url() -> None:
    assert traces_url("http://h:4318") == "http://h:4318/v1/traces"
    assert traces_url("http://h:4318/") == "http://h:4318/v1/traces"
    assert traces_url("https://h/otel/v1/traces") == "https://h/otel/v1/traces"
    assert traces_url("http://h/api") == "http://h/api/v1/traces"
    with pytest.raises(ValueError):
        traces_url("h:4318")


def test_sender_retries_honours_retry_after_and_stops_at_a_refusal() -> None:
    receiver = Receiver()
    waits: list[float] = []
    try:
        sender = Sender(receiver.url, [("x-team", "a")], sleep=waits.append, attempts=4)
        receiver.answers = [(503, {"Retry-After": "7"}), (429, {}), (500, {})]
        sender.post(ExportTraceServiceRequest().SerializeToString())
        assert len(receiver.requests) == 1 and receiver.refused == 3
        assert 7 <= waits[0] <= 7.7  # Retry-After, plus at most 10% jitter
        assert 0.5 <= waits[1] <= 0.55 * 2 and waits[2] >= waits[1]
        headers = receiver.headers[0]
        assert headers["Content-Encoding"] == "gzip"
        assert headers["Content-Type"] == "application/x-protobuf"
        assert headers["x-team"] == "a"

        waits.clear()
        for refusal in (400, 401, 413, 415, 501):
            receiver.answers = [(refusal, {})]
            with pytest.raises(ReceiverRefused, match=str(refusal)):
                sender.post(b"")
        assert waits == []  # a refusal is not retried

        receiver.answers = [(503, {})] * 4
        with pytest.raises(ReceiverUnavailable, match="gave up after 4 attempts"):
            sender.post(b"")
    finally:
        receiver.down()
    with pytest.raises(ReceiverUnavailable, match="cannot reach"):
        Sender(receiver.url, sleep=lambda _s: None, attempts=2).post(b"")


def _spans_in_db(home: Path) -> dict[str, str]:
    return {span.span_id: sid for sid, (_session, spans) in derived(home).items() for span in spans}


def _annotate(home: Path, session_id: str, label: str) -> str:
    db = Database.open(db_path(home))
    try:
        annotation = AnnotationAdded(
            annotation_id=f"a-{label}",
            session_id=session_id,
            label=label,
            note="seen",
            author="t",  # type: ignore[arg-type]
        )
        with db.write():
            EventLog(db).append([NewEvent(f"session:{session_id}:human", annotation)])
        return annotation.annotation_id
    finally:
        db.close()


def test_cli_exports_everything_once_then_only_what_changed(home: Path) -> None:
    receiver = Receiver()
    try:
        env = {"HOME": str(home)}
        done = run_ctl("export", "otlp", "--endpoint", receiver.url, "--header", "k=v", env=env)
        assert done.returncode == 0, done.stderr
        expected = _spans_in_db(home)
        counts = receiver.span_counts()
        roots = {root_span_id(sid) for sid in derived(home)}
        assert set(counts) == set(expected) | roots
        assert set(counts.values()) == {1}
        assert "exported 4 sessions" in done.stderr

        again = run_ctl("export", "otlp", "--endpoint", receiver.url, "--changed", env=env)
        assert again.returncode == 0 and "exported 0 sessions" in again.stderr
        assert receiver.span_counts() == counts

        sid = next(iter(derived(home)))
        _annotate(home, sid, "bad")
        third = run_ctl("export", "otlp", "--endpoint", receiver.url, "--changed", env=env)
        assert third.returncode == 0 and "exported 1 sessions" in third.stderr
        root = next(
            s for s in receiver.spans() if s.span_id.hex() == root_span_id(sid) and s.events
        )
        assert [e.name for e in root.events] == ["skillops.annotation"]
        assert _attrs(root)["skillops.annotation.label"] == "bad"
        status = run_ctl("status", env=env)
        assert (
            f"{receiver.url}/v1/traces (by hand): 4/4 sessions exported, up to date"
            in status.stdout
        )
    finally:
        receiver.down()


def test_cli_refusal_is_one_line_exit_2_and_checkpoints_nothing(home: Path) -> None:
    receiver = Receiver()
    try:
        receiver.answers = [(415, {})]
        env = {"HOME": str(home)}
        done = run_ctl("export", "otlp", "--endpoint", receiver.url, env=env)
        assert done.returncode == 2
        assert done.stderr.strip().count("\n") == 0
        assert "415" in done.stderr and "0 of 4 sessions exported" in done.stderr
        # Nothing was acknowledged, so everything is still due.
        again = run_ctl("export", "otlp", "--endpoint", receiver.url, "--changed", env=env)
        assert again.returncode == 0 and "exported 4 sessions" in again.stderr
    finally:
        receiver.down()
    down = run_ctl("export", "otlp", "--endpoint", receiver.url, "--retries", "1", env=env)
    assert down.returncode == 1 and "cannot reach" in down.stderr
    bad = run_ctl("export", "otlp", "--endpoint", receiver.url, "--header", "nokey", env=env)
    assert bad.returncode == 2 and "K=V" in bad.stderr


def _checkpointed(home: Path) -> set[str]:
    db = Database.open(db_path(home))
    try:
        with db.read() as conn:
            return {r[0] for r in conn.execute("SELECT session_id FROM export_checkpoints")}
    finally:
        db.close()


def test_cli_outage_mid_export_resends_only_what_was_not_acknowledged(home: Path) -> None:
    receiver = Receiver()
    try:
        env = {"HOME": str(home)}
        small = ("--batch-bytes", "65536")  # several requests a session
        receiver.fail_after = 3
        first = run_ctl(
            "export", "otlp", "--endpoint", receiver.url, *small, "--retries", "0", env=env
        )
        assert first.returncode == 1, first.stderr
        assert "503" in first.stderr
        completed = _checkpointed(home)
        before = receiver.span_counts()
        assert before and len(completed) < 4

        receiver.fail_after = None
        second = run_ctl("export", "otlp", "--endpoint", receiver.url, *small, "--changed", env=env)
        assert second.returncode == 0, second.stderr
        assert f"exported {4 - len(completed)} sessions" in second.stderr
        counts = receiver.span_counts()
        sessions = derived(home)
        assert set(counts) == set(_spans_in_db(home)) | {root_span_id(s) for s in sessions}
        for sid in completed:  # acknowledged before the outage: never sent again
            ids = [s.span_id for s in sessions[sid][1]] + [root_span_id(sid)]
            assert all(counts[i] == 1 for i in ids)
    finally:
        receiver.down()


def test_out_file_is_otlp_json_with_hex_ids(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "traces.jsonl"
    env = {"HOME": str(home)}
    sid = next(
        s for s, (v, _) in derived(home).items() if v.native_session_id == FAILURES_AND_BLOCKS
    )
    done = run_ctl("export", "otlp", "--out", str(out), "--session", sid, env=env)
    assert done.returncode == 0, done.stderr
    lines = out.read_text().splitlines()
    spans = [
        span
        for line in lines
        for rs in json.loads(line)["resourceSpans"]
        for ss in rs["scopeSpans"]
        for span in ss["spans"]
    ]
    _session, derived_spans = derived(home)[sid]
    assert len(spans) == len(derived_spans) + 1
    assert {s["spanId"] for s in spans} == {s.span_id for s in derived_spans} | {root_span_id(sid)}
    # OTLP/JSON: enums are integers (STATUS_CODE_ERROR = 2, SPAN_KIND_INTERNAL = 1), ids hex,
    # times decimal strings of nanoseconds; the file is its owner's alone.
    assert any(s.get("status", {}).get("code") == 2 for s in spans)
    assert all(s["kind"] == 1 for s in spans)
    assert all(re.fullmatch(r"[0-9a-f]{32}", s["traceId"]) for s in spans)
    assert all(re.fullmatch(r"[0-9a-f]{16}", s["spanId"]) for s in spans)
    assert all(s["startTimeUnixNano"].isdigit() for s in spans)
    assert "STATUS_CODE" not in out.read_text() and "SPAN_KIND" not in out.read_text()
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    # An existing file, readable by others, is tightened before anything is written to it.
    out.write_text("PREVIOUS-CONTENT-7f3a")
    out.chmod(0o644)
    again = run_ctl("export", "otlp", "--out", str(out), "--session", sid, env=env)
    assert again.returncode == 0, again.stderr
    assert (
        stat.S_IMODE(out.stat().st_mode) == 0o600 and "PREVIOUS-CONTENT-7f3a" not in out.read_text()
    )


class _Collect:
    def __init__(self) -> None:
        self.requests: list[ExportTraceServiceRequest] = []

    def post(self, body: bytes) -> Accepted:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        self.requests.append(request)
        return Accepted()

    def root(self, session_id: str) -> Span:
        wanted = root_span_id(session_id)
        return next(
            span
            for request in self.requests
            for rs in request.resource_spans
            for ss in rs.scope_spans
            for span in ss.spans
            if span.span_id.hex() == wanted
        )


def test_eval_results_and_retractions_reach_the_root_span(home: Path) -> None:
    sessions = derived(home)
    graded, other = sorted(sessions)[:2]
    run = EvalRunCompleted(
        run_id="run-1",
        skill="triage",
        version_hash="v" * 64,
        suite_hash="s" * 64,
        deriver_version=1,
        sessions=[graded, other],
        passed=False,
        cases=[
            EvalCaseResult(
                suite="s",
                case="c",
                graded=2,
                passed_sessions=1,
                passed=False,
                results=[
                    GraderResult(session_id=graded, index=0, type="outcome", passed=True),
                    GraderResult(session_id=other, index=0, type="outcome", passed=False),
                ],
            )
        ],
    )
    annotation_id = _annotate(home, graded, "good")
    db = Database.open(db_path(home))
    try:
        with db.write():
            EventLog(db).append([NewEvent("eval:run-1", run)])
        target = "http://receiver.invalid/v1/traces"
        sink = _Collect()
        export_sessions(db, sink, due_sessions(db, target), target=target)
        root = sink.root(graded)
        assert [e.name for e in root.events] == ["skillops.annotation", "skillops.eval"]
        assert _attrs(root)["skillops.eval.passed"] is True
        assert _attrs(sink.root(other))["skillops.eval.passed"] is False
        assert _attrs(sink.root(other))["skillops.eval.run_id"] == "run-1"
        assert due_sessions(db, target) == []

        retraction = AnnotationRetracted(annotation_id=annotation_id, author="t")
        with db.write():
            EventLog(db).append([NewEvent(f"session:{graded}:human", retraction)])
        [due] = due_sessions(db, target)  # the retraction changed what the session shows
        assert due.session.session_id == graded
        sink = _Collect()
        export_sessions(db, sink, [due], target=target)
        root = sink.root(graded)
        assert [e.name for e in root.events] == ["skillops.eval"]
        assert "skillops.annotation.label" not in _attrs(root)
    finally:
        db.close()


def _exported(
    home: Path, tmp_path: Path, sid: str, *extra: str
) -> tuple[list[dict[str, Any]], str]:
    out = tmp_path / f"{sid}{len(extra)}.jsonl"
    done = run_ctl("export", "otlp", "--out", str(out), "--session", sid, *extra,
                   env={"HOME": str(home)})  # fmt: skip
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    spans = [
        span
        for line in text.splitlines()
        for rs in json.loads(line)["resourceSpans"]
        for ss in rs["scopeSpans"]
        for span in ss["spans"]
    ]
    return spans, text


def _json_attrs(span: dict[str, Any]) -> dict[str, Any]:
    return {a["key"]: next(iter(a["value"].values())) for a in span.get("attributes", [])}


def test_content_times_and_agents_as_phoenix_draws_them(home: Path, tmp_path: Path) -> None:
    sessions = derived(home)
    for sid, (session, derived_spans) in sessions.items():
        spans, _text = _exported(home, tmp_path, sid)
        by_id = {s["spanId"]: s for s in spans}
        # No child outlives its parent, nor starts before it.
        for s in spans:
            parent = by_id.get(s.get("parentSpanId", ""))
            if parent is not None:
                assert int(parent["startTimeUnixNano"]) <= int(s["startTimeUnixNano"])
                assert int(s["endTimeUnixNano"]) <= int(parent["endTimeUnixNano"])
        # An LLM span lasts 0 ms only when nothing in the transcript came before its response.
        llms = [s for s in spans if _json_attrs(s).get("openinference.span.kind") == "LLM"]
        assert llms
        instant = [s for s in llms if s["startTimeUnixNano"] == s["endTimeUnixNano"]]
        assert len(instant) <= len({s["parentSpanId"] for s in llms}), sid
        # LLM spans carry what they were asked and what they answered.
        answered = [
            d for d in derived_spans if d.kind == "LLM" and d.attributes.get("gen_ai.output.text")
        ]
        for d in answered:
            a = _json_attrs(by_id[d.span_id])
            assert a["output.value"] == d.attributes["gen_ai.output.text"]
            assert a["llm.output_messages.0.message.role"] == "assistant"
            assert a["llm.output_messages.0.message.content"] == d.attributes["gen_ai.output.text"]
        with_input = [s for s in llms if "llm.input_messages.0.message.content" in _json_attrs(s)]
        assert with_input and all(
            _json_attrs(s)["llm.input_messages.0.message.role"] == "user" for s in with_input
        )
        root = by_id[root_span_id(sid)]
        if answered:
            assert _json_attrs(root).get("output.value")
        # A call that spawned a subagent is an AGENT span.
        for d in derived_spans:
            if d.kind == "TOOL" and any(
                c.parent_span_id == d.span_id and c.kind == "CHAIN" for c in derived_spans
            ):
                assert _json_attrs(by_id[d.span_id])["openinference.span.kind"] == "AGENT"

        # --no-content: no prompt, answer, command, error text, title or path leaves.
        bare, text = _exported(home, tmp_path, sid, "--no-content")
        assert len(bare) == len(spans)
        for s in bare:
            keys = set(_json_attrs(s))
            assert not keys & {"input.value", "output.value", "gen_ai.prompt", "gen_ai.output.text",
                               "gen_ai.tool.call.arguments", "skillops.result.error"}  # fmt: skip
            assert not any(
                k.startswith(("llm.input_messages", "llm.output_messages")) for k in keys
            )
            assert s.get("status", {}).get("message", "failure") == "failure"
        for d in derived_spans:
            for key in ("gen_ai.prompt", "gen_ai.output.text", "skillops.result.error"):
                value = d.attributes.get(key)
                if isinstance(value, str) and len(value) > 12:
                    assert json.dumps(value)[1:-1][:40] not in text, key
        if session.title and len(session.title) > 12:
            assert json.dumps(session.title)[1:-1][:40] not in text


def test_sender_retries_for_its_time_budget_honouring_retry_after() -> None:
    receiver = Receiver()
    now = [0.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    try:
        receiver.answers = [(503, {"Retry-After": "7"})] * 1000
        sender = Sender(receiver.url, sleep=sleep, clock=lambda: now[0], budget=150)
        with pytest.raises(ReceiverUnavailable, match="gave up after") as caught:
            sender.post(b"")
        # Every wait honoured Retry-After (7 s, jitter at most 10 % more, the last one cut to
        # what was left), and it kept trying for the whole budget, not a handful of attempts.
        assert all(6.99 <= w <= 7.71 for w in waits[:-1])
        assert 150 <= now[0] <= 158 and len(waits) >= 19
        assert "503" in str(caught.value)
        # A receiver back within the budget gets the request.
        receiver.answers = [(503, {})] * 3
        now[0] = 0.0
        assert Sender(receiver.url, sleep=sleep, clock=lambda: now[0]).post(b"").rejected == 0
    finally:
        receiver.down()


def test_an_idle_connection_the_server_closed_is_reopened_without_a_failure() -> None:
    import socket
    import threading

    served: list[int] = []
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    port = listener.getsockname()[1]

    def serve() -> None:
        # Each connection answers one request as keep-alive, then the server closes it while
        # idle (as Phoenix's server does after its keep-alive timeout).
        while len(served) < 3:
            conn, _ = listener.accept()
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            length = int(next(
                line.split(b":")[1] for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            ))  # fmt: skip
            while len(body) < length:
                body += conn.recv(65536)
            served.append(len(body))
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        # One attempt allowed: a stale connection must not cost it.
        sender = Sender(f"http://127.0.0.1:{port}", attempts=1, budget=0)
        for _ in range(3):
            time.sleep(0.2)  # the server has closed the kept-alive connection by now
            assert sender.post(b"x" * 100).rejected == 0
        assert len(served) == 3
    finally:
        listener.close()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_refused_connection_where_nothing_ever_answered_fails_at_once() -> None:
    """F18: a mistyped port is not a receiver restarting: no retries, no 150 s of silence."""
    waits: list[float] = []
    told: list[str] = []
    sender = Sender(
        f"http://127.0.0.1:{_free_port()}",
        sleep=waits.append,
        on_retry=lambda why, _left: told.append(why),
    )
    started = time.monotonic()
    with pytest.raises(ReceiverUnavailable, match="Connection refused") as caught:
        sender.post(b"")
    assert time.monotonic() - started < 5
    assert waits == [] and told == [] and not caught.value.retry
    assert "not retried" in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(ReceiverUnavailable, match="not retried"):
        Sender("http://no-such-host.invalid:4318", sleep=waits.append).post(b"")
    assert waits == []


def test_a_receiver_that_answered_and_went_away_is_waited_for_and_the_wait_is_said() -> None:
    receiver = Receiver()
    now = [0.0]
    waits: list[float] = []
    told: list[tuple[str, float]] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    sender = Sender(
        receiver.url,
        sleep=sleep,
        clock=lambda: now[0],
        budget=20,
        on_retry=lambda why, left: told.append((why, left)),
    )
    try:
        sender.post(b"")  # reached
        assert sender.reached
    finally:
        receiver.down()
    sender.close()  # as a restart does: the kept-alive connection is gone too
    with pytest.raises(ReceiverUnavailable, match="gave up after"):
        sender.post(b"")
    assert len(waits) > 3 and 20 <= now[0] <= 23  # retried for the whole budget
    assert len(told) == 1 and "cannot reach" in told[0][0] and told[0][1] == 20


def test_cli_a_closed_port_answers_in_seconds_and_a_retry_is_said(home: Path) -> None:
    env = {"HOME": str(home)}
    started = time.monotonic()
    done = run_ctl(
        "export", "otlp", "--endpoint", f"http://127.0.0.1:{_free_port()}", env=env, timeout=60
    )
    assert time.monotonic() - started < 20
    assert done.returncode == 1 and "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Connection refused" in lines[0] and "not retried" in lines[0]
    assert "(0 of 4 sessions exported)" in lines[0]
    receiver = Receiver()
    try:
        receiver.answers = [(503, {})] * 1000
        done = run_ctl("export", "otlp", "--endpoint", receiver.url, "--retry-budget", "1", env=env)
    finally:
        receiver.down()
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 2, done.stderr
    assert "503" in lines[0] and "retrying for up to 1s (--retry-budget, --retries)" in lines[0]
    assert "gave up after" in lines[1]
