"""p_spans keeps only what queries read; every reader still gets each span's full attributes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from skillopsd import deriving
from skillopsd.cli import cli
from skillopsd.derive import DERIVER_VERSION
from skillopsd.derive import _outcome as outcome_rules
from skillopsd.deriving import SessionDeriver
from skillopsd.events import Database, EventLog
from skillopsd.events.types import SpanDerived
from skillopsd.projections import engine_for
from skillopsd.projections.session_views import spans_of
from skillopsd.projections.sessions import (
    QUERIED_ATTRIBUTES,
    QUERIED_CHAIN_ATTRIBUTES,
    QUERIED_SKILL_ATTRIBUTES,
)

from ._capture_helpers import FIXTURES

pytestmark = pytest.mark.skipif(not FIXTURES.exists(), reason=f"needs fixtures at {FIXTURES}")


@pytest.fixture
def ingested(tmp_path: Path) -> Path:
    path = tmp_path / "s.db"
    files = sorted(str(p) for p in FIXTURES.glob("*.jsonl"))
    result = CliRunner().invoke(cli, ["--db", str(path), "ingest", *files])
    assert result.exit_code == 0, result.output
    return path


def _newest_spans(db: Database) -> dict[str, SpanDerived]:
    newest: dict[str, SpanDerived] = {}
    for event in EventLog(db).read(types=["SpanDerived"]):
        span = event.payload
        assert isinstance(span, SpanDerived)
        newest[span.span_id] = span
    return newest


def _check(db: Database) -> int:
    """Every span as readers see it equals the newest SpanDerived; returns how many trimmed."""
    newest = _newest_spans(db)
    sessions = [r[0] for r in db.conn.execute("SELECT session_id FROM p_sessions")]
    seen = 0
    for session_id in sessions:
        for view in spans_of(db.conn, session_id):
            assert view.attributes == newest[view.span_id].attributes, view.span_id
            seen += 1
    assert seen == db.conn.execute("SELECT count(*) FROM p_spans").fetchone()[0] > 0
    trimmed = 0
    for kind, stored in db.conn.execute("SELECT kind, attributes FROM p_spans"):
        keys = set(json.loads(stored)) if stored is not None else set()
        keep = {"SKILL": QUERIED_SKILL_ATTRIBUTES, "CHAIN": QUERIED_CHAIN_ATTRIBUTES}.get(
            kind, QUERIED_ATTRIBUTES
        )
        assert keys <= keep
        trimmed += 1
    return trimmed


def test_text_attributes_are_read_from_the_log_not_copied(ingested: Path) -> None:
    db = Database.open(ingested)
    assert _check(db) > 0  # the fixtures hold tool calls and model output: something is trimmed
    # A newer derivation replaces the spans: positions follow the newest SpanDerived.
    SessionDeriver(db, deriver_version=DERIVER_VERSION + 1).derive(
        SessionDeriver(db).all_sessions()
    )
    engine_for(db).catch_up()
    assert _check(db) > 0
    engine_for(db).rebuild()
    assert _check(db) > 0
    db.close()


def test_session_show_json_prints_the_full_text(ingested: Path) -> None:
    db = Database.open(ingested)
    newest = _newest_spans(db)
    session_id = db.conn.execute(
        "SELECT session_id FROM p_spans GROUP BY session_id ORDER BY count(*) DESC"
    ).fetchone()[0]
    db.close()
    result = CliRunner().invoke(
        cli, ["--db", str(ingested), "session", "show", session_id, "--json"]
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    shown = printed["spans"]
    # The derived attributes exactly; the price of a model response is printed beside them.
    assert shown and all(s["attributes"] == newest[s["span_id"]].attributes for s in shown)
    assert set(printed["costs"]) <= {s["span_id"] for s in shown if s["kind"] == "LLM"}
    assert printed["costs"]
    assert any(set(s["attributes"]) - QUERIED_SKILL_ATTRIBUTES for s in shown)
    assert all(s["trace_id"] == newest[s["span_id"]].trace_id for s in shown)


def _spans_by_type(db: Database) -> dict[str, int]:
    counts: dict[str, int] = {}
    for event in EventLog(db).read(with_data=False):
        counts[event.type] = counts.get(event.type, 0) + 1
    return counts


# One process, and worker processes (which read the stored spans themselves): the fixtures
# are fewer sessions than a pool is started for, so it is asked for below that.
@pytest.mark.parametrize("workers", [1, 2])
def test_a_version_bump_appends_only_the_spans_it_changes(
    ingested: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    monkeypatch.setattr(deriving, "POOL_MIN_SESSIONS", 1)
    pools: list[int] = []
    start_pool = deriving._pool
    monkeypatch.setattr(deriving, "_pool", lambda *a, **k: pools.append(1) or start_pool(*a, **k))
    db = Database.open(ingested)
    engine = engine_for(db)
    engine.catch_up()
    sessions = db.conn.execute("SELECT session_id FROM p_sessions").fetchall()
    views = {sid: spans_of(db.conn, sid) for (sid,) in sessions}
    before = _spans_by_type(db)
    # The same rules under a new version: every session is derived again, no span changes.
    bumped = SessionDeriver(db, deriver_version=DERIVER_VERSION + 1, workers=workers)
    result = bumped.derive(bumped.stale())
    engine.catch_up()
    after = _spans_by_type(db)
    assert result.sessions == len(sessions)
    assert after["SpanDerived"] == before["SpanDerived"]  # not one span appended again
    assert after["SessionDerived"] == before["SessionDerived"] + len(sessions)
    assert {sid: spans_of(db.conn, sid) for (sid,) in sessions} == views
    versions = {v for (v,) in db.conn.execute("SELECT DISTINCT deriver_version FROM p_sessions")}
    assert versions == {DERIVER_VERSION + 1}
    # A version whose rules call every rejection a failure: only the spans that changed.
    monkeypatch.setattr(outcome_rules, "_CLAUDE_BLOCKED", ())
    monkeypatch.setattr(outcome_rules, "_CLAUDE_DENIED", outcome_rules.re.compile("$^"))
    changed = SessionDeriver(db, deriver_version=DERIVER_VERSION + 2, workers=workers)
    changed.derive(changed.stale())
    engine.catch_up()
    appended = _spans_by_type(db)["SpanDerived"] - after["SpanDerived"]
    flipped = [
        (old.span_id, new.outcome)
        for (sid,) in sessions
        for old, new in zip(views[sid], spans_of(db.conn, sid), strict=True)
        if old != new
    ]
    assert flipped and appended == len(flipped)
    assert all(outcome == "failure" for _, outcome in flipped)
    assert _check(db) > 0  # every view is the newest SpanDerived of its span
    # Nothing more to say at the same version, even forced; a rebuild gives the same state.
    assert changed.derive(changed.all_sessions()).appended == 0
    assert len(pools) == (3 if workers > 1 else 0)
    digest = engine.digest()
    engine.rebuild()
    assert engine.digest() == digest
    db.close()
