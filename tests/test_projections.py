"""The projection engine's contract, run against every projection the product ships."""

from __future__ import annotations

from pathlib import Path

import apsw
import pytest

from skillopsd.events import Database, EventLog, NewEvent, RecordedEvent
from skillopsd.projections import (
    EventCounts,
    Projection,
    ProjectionEngine,
    default_projections,
    engine_for,
)

from ._samples import every_event


def _fill(log: EventLog, rounds: int, start: int = 0) -> None:
    for r in range(start, start + rounds):
        log.append([NewEvent(f"s:{i % 4}", e) for i, e in enumerate(every_event(seed=r))])


@pytest.mark.parametrize("projection", default_projections(), ids=lambda p: p.name)
def test_incremental_equals_rebuild_and_rebuild_is_stable(
    tmp_path: Path, projection: Projection
) -> None:
    db = Database.open(tmp_path / "p.db")
    log = EventLog(db)
    engine = ProjectionEngine(db, [projection])
    for step in range(4):  # fold in several increments, with small chunks
        _fill(log, 2, start=step * 2)
        engine.catch_up(chunk=7)
    incremental = engine.digest()
    engine.rebuild()
    first = engine.digest()
    engine.rebuild()
    assert incremental == first == engine.digest()
    assert all(s.lag == 0 for s in engine.states())


def test_checkpoint_and_lag(db: Database) -> None:
    log = EventLog(db)
    engine = ProjectionEngine(db, [EventCounts()])
    _fill(log, 1)
    head = log.head()
    (state,) = [s for s in engine.states() if s.name == "event_counts"]
    assert (state.checkpoint, state.lag) == (0, head)
    applied = engine.catch_up()
    assert applied == head
    (state,) = [s for s in engine.states() if s.name == "event_counts"]
    assert (state.checkpoint, state.lag) == (head, 0)
    assert engine.catch_up() == 0


def test_event_counts_content(db: Database) -> None:
    log = EventLog(db)
    _fill(log, 3)
    engine_for(db).catch_up(chunk=5)
    rows = list(db.conn.execute("SELECT stream, type, events FROM p_event_counts"))
    total = sum(r[2] for r in rows)
    assert total == log.head()
    by_stream: dict[str, int] = {}
    for stream, _type, n in rows:
        by_stream[stream] = by_stream.get(stream, 0) + n
    for stream, n in by_stream.items():
        assert n == log.stream_version(stream)


class _Failing(Projection):
    name = "failing"
    tables = ("p_failing",)

    def __init__(self, fail_at: int) -> None:
        self.fail_at = fail_at

    def create(self, conn: apsw.Connection) -> None:
        conn.execute("CREATE TABLE p_failing (position INTEGER PRIMARY KEY)")

    def apply(self, conn: apsw.Connection, event: RecordedEvent) -> None:
        if event.position == self.fail_at:
            raise RuntimeError("boom")
        conn.execute("INSERT INTO p_failing VALUES (?)", (event.position,))


def test_rows_and_checkpoint_commit_together(db: Database) -> None:
    log = EventLog(db)
    _fill(log, 2)
    failing = _Failing(fail_at=30)
    engine = ProjectionEngine(db, [failing])
    with pytest.raises(RuntimeError):
        engine.catch_up(chunk=10)
    (state,) = engine.states()
    rows = [r[0] for r in db.conn.execute("SELECT position FROM p_failing ORDER BY 1")]
    # Chunks before the failure are committed with their checkpoint; the failed one is not.
    assert state.checkpoint == 20 and rows == list(range(1, 21))
    failing.fail_at = -1
    engine.catch_up(chunk=10)
    rows = [r[0] for r in db.conn.execute("SELECT position FROM p_failing ORDER BY 1")]
    assert rows == list(range(1, log.head() + 1))


def test_version_bump_replays_from_zero(db: Database) -> None:
    log = EventLog(db)
    _fill(log, 1)
    engine = ProjectionEngine(db, [EventCounts()])
    engine.catch_up()
    before = engine.digest()

    class EventCountsV2(EventCounts):
        version = 2

    engine2 = ProjectionEngine(db, [EventCountsV2()])
    (state,) = engine2.states()
    assert state.checkpoint == 0
    engine2.catch_up()
    assert engine2.digest() == before


def test_projections_folded_together_equal_each_folded_alone(db: Database) -> None:
    """The engine reads the log once for the projections at the same checkpoint (each folds
    its own types): in small chunks and increments, with the projections at different
    checkpoints, each ends as it does replayed alone, and the count of events applied is
    the sum of what each alone applies."""
    log = EventLog(db)
    engine = engine_for(db)
    _fill(log, 2)
    # One projection ahead of the rest.
    applied = ProjectionEngine(db, [engine.projections[-2]]).catch_up(chunk=3)
    for step in range(3):
        _fill(log, 2, start=2 + step * 2)
        applied += engine.catch_up(chunk=7)
    together = {p.name: ProjectionEngine(db, [p]).digest() for p in engine.projections}
    alone = 0
    for projection in engine.projections:
        single = ProjectionEngine(db, [projection])
        alone += single.rebuild()
        assert single.digest() == together[projection.name], projection.name
    assert applied == alone


def test_event_counts_folded_in_sql_equal_folded_event_by_event(db: Database) -> None:
    """EventCounts folds ranges of the log in SQL (fold_range): the same table as its
    apply_many over the same events."""
    log = EventLog(db)
    _fill(log, 3)
    in_sql = ProjectionEngine(db, [EventCounts()])
    in_sql.catch_up(chunk=4)  # ranges of 80 positions
    by_sql = in_sql.digest()

    class EventByEvent(EventCounts):
        def fold_range(self, conn: apsw.Connection, after: int, upto: int) -> None:
            return None

    engine = ProjectionEngine(db, [EventByEvent()])
    engine.rebuild()
    assert engine.digest() == by_sql
