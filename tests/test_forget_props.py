"""Forgetting as a class: any sequence of forgets (of sessions and of single files), derivations
and catch-ups leaves projections a replay reproduces, the chain intact, and every session it did
not touch exactly as it was."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skillopsd.cli import cli
from skillopsd.derive import derive_session
from skillopsd.deriving import SessionDeriver
from skillopsd.events import Database, EventLog, verify_chain
from skillopsd.forgetting import execute, plan_session, plan_sources
from skillopsd.projections import engine_for

from ._capture_helpers import FIXTURES, layout_claude_pair

_FILES = (
    "claude_skill.jsonl",
    "claude_reasoning.jsonl",
    "codex_skill.jsonl",
    "codex_narrated_skill.jsonl",
)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database holding real transcripts, captured and derived by ``ingest``."""
    base = tmp_path_factory.mktemp("forget-template")
    home = base / "home"
    layout_claude_pair(home)
    path = base / "t.db"
    runner = CliRunner()
    for args in ([str(home / ".claude")], [str(FIXTURES / n) for n in _FILES]):
        result = runner.invoke(cli, ["--db", str(path), "ingest", *args])
        assert result.exit_code == 0, result.output
    return path


def _copy(template: Path, dest: Path) -> Path:
    for suffix in ("", "-wal"):
        src = Path(f"{template}{suffix}")
        if src.exists():
            shutil.copy(src, Path(f"{dest}{suffix}"))
    return dest


def _rows(db: Database, session_ids: set[str]) -> Iterator[tuple[object, ...]]:
    for table in ("p_sessions", "p_spans", "p_session_skills"):
        for row in db.conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2"):
            if row[0] in session_ids or (table == "p_spans" and row[1] in session_ids):
                yield (table, *row)


op = st.one_of(
    st.tuples(st.just("session"), st.integers(0, 20)),
    st.tuples(st.just("source"), st.integers(0, 20)),
    st.tuples(st.just("derive"), st.just(0)),
    st.tuples(st.just("catch_up"), st.just(0)),
)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(ops=st.lists(op, min_size=1, max_size=6))
def test_any_forgets_replay_and_leave_the_rest(
    template: Path, tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[str, int]]
) -> None:
    path = _copy(template, tmp_path_factory.mktemp("forget") / "f.db")
    db = Database.open(path)
    try:
        deriver = SessionDeriver(db)
        engine = engine_for(db)
        engine.catch_up()
        keys = sorted(deriver.all_sessions())
        sources = sorted({s for k in keys for s, _n in deriver.files_of(k)})
        everyone = {k.session_id for k in keys}
        with db.read():
            before = set(_rows(db, everyone))
        touched: set[str] = set()
        whole: set[str] = set()  # sessions every file of which was forgotten
        for kind, n in ops:
            if kind == "session":
                key = keys[n % len(keys)]
                planned = plan_session(db, deriver, key)
                whole.add(key.session_id)
            elif kind == "source":
                source = sources[n % len(sources)]
                planned = plan_sources(db, deriver, [source])
                owner = deriver.key_of(source)
                assert owner is not None
                if len(deriver.files_of(owner)) == 1:
                    whole.add(owner.session_id)
            elif kind == "derive":
                deriver.derive(deriver.all_sessions())
                continue
            else:
                engine.catch_up()
                continue
            touched.update(planned.session_ids)
            if planned.positions:
                execute(db, planned, reason="prop", author="hypothesis")
                with db.read():
                    gone = list(EventLog(db).read(types=["PayloadsErased"]))[-1].payload
                assert gone.positions == planned.positions  # type: ignore[attr-defined]
        deriver.derive(deriver.all_sessions())
        engine.catch_up()
        incremental = engine.digest()
        assert verify_chain(db).ok
        with db.read():
            listed = {r[0] for r in db.conn.execute("SELECT session_id FROM p_sessions")}
            assert not listed & whole  # nothing derived back from nothing
            untouched = everyone - touched
            assert set(_rows(db, untouched)) == {r for r in before if _owner(r) in untouched}
            # What a session shows is the derivation of exactly the lines that remain.
            for key in keys:
                if key.session_id not in listed:
                    continue
                fresh = derive_session(key.agent, key.native_id, deriver.sources_of(key))
                spans = db.conn.execute(
                    "SELECT span_id FROM p_spans WHERE session_id = ? ORDER BY seq",
                    (key.session_id,),
                ).fetchall()
                assert [r[0] for r in spans] == fresh.session.span_ids, key
        engine.rebuild()
        assert engine.digest() == incremental
    finally:
        db.close()


def _owner(row: tuple[object, ...]) -> object:
    return row[2] if row[0] == "p_spans" else row[1]
