"""p_spans keeps only what queries read; every reader still gets each span's full attributes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from skillopsd.cli import cli
from skillopsd.derive import DERIVER_VERSION
from skillopsd.deriving import SessionDeriver
from skillopsd.events import Database, EventLog
from skillopsd.events.types import SpanDerived
from skillopsd.projections import engine_for
from skillopsd.projections.session_views import spans_of
from skillopsd.projections.sessions import QUERIED_ATTRIBUTES, QUERIED_SKILL_ATTRIBUTES

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
        keep = QUERIED_SKILL_ATTRIBUTES if kind == "SKILL" else QUERIED_ATTRIBUTES
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
    shown = json.loads(result.output)["spans"]
    assert shown and all(s["attributes"] == newest[s["span_id"]].attributes for s in shown)
    assert any(set(s["attributes"]) - QUERIED_SKILL_ATTRIBUTES for s in shown)
    assert all(s["trace_id"] == newest[s["span_id"]].trace_id for s in shown)
