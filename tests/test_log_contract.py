"""The contract every event log must honour (DESIGN.md section 4)."""

from __future__ import annotations

import os
from pathlib import Path

import apsw
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skillopsd.events import (
    EVENT_TYPES,
    ConcurrencyError,
    Database,
    EventLog,
    NewEvent,
    _codec,
    content_id,
    register_upcaster,
    verify_chain,
)
from skillopsd.events.types import PolicySet

from ._samples import every_event, roundtrip_equal, sample


def _policy(i: int) -> PolicySet:
    return PolicySet(name=f"p{i}", values={"threshold": i / 10})


def test_every_event_type_round_trips(log: EventLog) -> None:
    events = every_event(seed=1)
    assert {type(e).__name__ for e in events} == set(EVENT_TYPES)
    result = log.append([NewEvent(f"test:{type(e).__name__}", e) for e in events])
    assert result.positions == list(range(1, len(events) + 1))
    stored = list(log.read())
    assert [r.type for r in stored] == [type(e).__name__ for e in events]
    for original, recorded in zip(events, stored, strict=True):
        assert roundtrip_equal(original, recorded.payload)
        assert type(recorded.payload) is type(original)
    assert verify_chain(log.db).ok


def test_reads_by_range_stream_and_type(log: EventLog) -> None:
    log.append([NewEvent(f"s:{i % 3}", _policy(i)) for i in range(30)])
    assert [e.position for e in log.read(after=10, upto=14)] == [11, 12, 13, 14]
    assert [e.position for e in log.read(after=25)] == [26, 27, 28, 29, 30]
    by_stream = list(log.read_stream("s:1"))
    assert [e.stream_version for e in by_stream] == list(range(1, 11))
    assert all(e.stream == "s:1" for e in by_stream)
    other = sample(EVENT_TYPES["AnnotationAdded"])
    log.append([NewEvent("a:1", other)])
    assert [e.position for e in log.read(types=["AnnotationAdded"])] == [31]
    assert list(log.read(types=[])) == []
    assert len(list(log.read(limit=7))) == 7


def test_idempotent_reappend_is_a_no_op(log: EventLog) -> None:
    batch = [NewEvent("s", _policy(i), content_id("p", i)) for i in range(5)]
    first = log.append(batch)
    assert first.positions == [1, 2, 3, 4, 5]
    again = log.append(batch)
    assert again.positions == [] and again.duplicates == 5
    mixed = log.append([*batch[:2], NewEvent("s", _policy(9), content_id("p", 9))])
    assert mixed.positions == [6] and mixed.duplicates == 2
    within = log.append([NewEvent("s", _policy(7), "dup"), NewEvent("s", _policy(8), "dup")])
    assert within.positions == [7] and within.duplicates == 1
    assert log.head() == 7
    assert log.stream_version("s") == 7
    assert verify_chain(log.db).ok


def test_expected_version_conflict_writes_nothing(log: EventLog) -> None:
    log.append([NewEvent("order:1", _policy(1))], expected_versions={"order:1": 0})
    log.append([NewEvent("order:1", _policy(2))], expected_versions={"order:1": 1})
    head = log.head()
    with pytest.raises(ConcurrencyError) as info:
        log.append(
            [NewEvent("other", _policy(3)), NewEvent("order:1", _policy(4))],
            expected_versions={"order:1": 1},
        )
    assert info.value.stream == "order:1"
    assert (info.value.expected, info.value.actual) == (1, 2)
    assert log.head() == head
    assert log.stream_version("other") == 0
    # A stream the batch does not touch can still be asserted.
    with pytest.raises(ConcurrencyError):
        log.append([NewEvent("x", _policy(5))], expected_versions={"order:1": 0})
    assert log.head() == head


def test_update_and_delete_are_refused(log: EventLog) -> None:
    log.append([NewEvent("s", _policy(1))])
    conn = log.db.conn
    with pytest.raises(apsw.ConstraintError, match="append-only"):
        conn.execute("UPDATE events SET stream = 'x' WHERE position = 1")
    with pytest.raises(apsw.ConstraintError, match="append-only"):
        conn.execute("DELETE FROM events")
    assert log.head() == 1 and verify_chain(log.db).ok


def _tamper(path: Path, sql: str, *args: object) -> None:
    raw = apsw.Connection(str(path))
    raw.execute("DROP TRIGGER events_no_update")
    raw.execute("DROP TRIGGER events_no_delete")
    raw.execute(sql, args)
    raw.close()


@pytest.mark.parametrize(
    ("sql", "args", "bad", "why"),
    [
        ("UPDATE events SET data = ? WHERE position = 7", (b"\x80",), 7, "digest"),
        ("UPDATE events SET stream = 's' WHERE position = 4", (), 4, "version"),
        ("UPDATE events SET recorded_at = '2000-01-01' WHERE position = 9", (), 9, "content"),
        ("DELETE FROM events WHERE position = 5", (), 5, "gap"),
        ("UPDATE events SET prev_hash = zeroblob(32) WHERE position = 3", (), 3, "prev_hash"),
    ],
)
def test_tampering_is_caught_at_the_right_position(
    tmp_path: Path, sql: str, args: tuple[object, ...], bad: int, why: str
) -> None:
    path = tmp_path / "t.db"
    db = Database.open(path)
    EventLog(db).append([NewEvent(f"s{i % 2}", _policy(i)) for i in range(12)])
    db.close()
    _tamper(path, sql, *args)
    db = Database.open(path)
    report = verify_chain(db)
    assert not report.ok
    assert report.bad_position == bad
    assert why in (report.reason or "")
    assert report.events == bad - 1


def test_tail_deletion_is_caught_by_the_head_anchor(tmp_path: Path) -> None:
    """Dropping the last events leaves a valid prefix, but the anchor says where it ended."""
    path = tmp_path / "t.db"
    db = Database.open(path)
    EventLog(db).append([NewEvent("s", _policy(i)) for i in range(3)])
    db.close()
    _tamper(path, "DELETE FROM events WHERE position = 3")
    db = Database.open(path)
    report = verify_chain(db)
    assert not report.ok and report.events == 2 and report.bad_position == 3
    assert "removed" in (report.reason or "")


def test_upcasting_old_schema_on_read(log: EventLog, monkeypatch: pytest.MonkeyPatch) -> None:
    log.append([NewEvent("policy", PolicySet(name="verdict", values={"x": 1}))])
    # Pretend PolicySet moved to schema 2, renaming ``name`` to ``policy``-prefixed values.
    monkeypatch.setattr(PolicySet, "SCHEMA", 2)
    monkeypatch.setattr(_codec, "_upcasters", dict(_codec._upcasters))

    @register_upcaster("PolicySet", 1)
    def _v1_to_v2(fields: dict) -> dict:
        return {**fields, "author": "upcast", "name": fields["name"].upper()}

    (event,) = log.read()
    assert event.schema == 1
    assert event.payload == PolicySet(name="VERDICT", values={"x": 1}, author="upcast")


def test_database_file_and_directory_modes(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "skillops" / "s.db"
    db = Database.open(path, create_dirs=True)
    EventLog(db).append([NewEvent("s", _policy(1))])
    assert (os.stat(path.parent).st_mode & 0o777) == 0o700
    for suffix in ("", "-wal", "-shm"):
        assert (os.stat(f"{path}{suffix}").st_mode & 0o777) == 0o600, suffix
    db.close()


event_strategy = st.builds(
    lambda stream, value, eid: NewEvent(f"s:{stream}", _policy(value), eid),
    st.integers(0, 4),
    st.integers(0, 1000),
    st.one_of(st.none(), st.sampled_from([f"id{i}" for i in range(15)])),
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(batches=st.lists(st.lists(event_strategy, max_size=12), max_size=8))
def test_random_batches_keep_positions_gapless_and_chain_valid(
    tmp_path_factory: pytest.TempPathFactory, batches: list[list[NewEvent]]
) -> None:
    db = Database.open(tmp_path_factory.mktemp("h") / "h.db")
    log = EventLog(db)
    seen: set[str] = set()
    expected = 0
    for batch in batches:
        new_ids = {e.event_id for e in batch if e.event_id and e.event_id not in seen}
        anonymous = sum(1 for e in batch if e.event_id is None)
        result = log.append(batch)
        assert len(result.positions) == len(new_ids) + anonymous
        seen |= new_ids
        expected += len(result.positions)
    rows = list(log.read())
    assert [r.position for r in rows] == list(range(1, expected + 1))
    versions: dict[str, int] = {}
    for r in rows:
        versions[r.stream] = versions.get(r.stream, 0) + 1
        assert r.stream_version == versions[r.stream]
    assert len({r.event_id for r in rows}) == len(rows)
    report = verify_chain(db)
    assert report.ok and report.events == expected
    db.close()


def test_payload_bytes_are_what_is_hashed(log: EventLog) -> None:
    event = _policy(3)
    log.append([NewEvent("s", event)])
    (row,) = log.read()
    assert row.data == msgspec.msgpack.encode(event)
