"""``EventLog.append_imported`` / ``erase_imported``: the team replica's appends, which keep
another log's ids and times; the normal append is unchanged beside them."""

from __future__ import annotations

import hashlib
from pathlib import Path

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from skillopsd.events import (
    Database,
    EventLog,
    ImportedEvent,
    NewEvent,
    utc_now,
    verify_chain,
)
from skillopsd.events.types import AnnotationAdded, PayloadsErased
from skillopsd.projections import engine_for

_encode = msgspec.msgpack.Encoder().encode


def _annotation(n: int, label: str = "good") -> bytes:
    return _encode(AnnotationAdded(annotation_id=f"a{n}", session_id=f"s{n % 3}", label=label))


def _imported(n: int, *, withheld: bool = False, at: str = "2026-01-02T03:04:05.000006Z"):
    payload = _annotation(n)
    return ImportedEvent(
        event_id=f"id-{n}",
        stream=f"m1/annotation:{n % 4}",
        type="AnnotationAdded",
        schema=1,
        recorded_at=at,
        payload=None if withheld else payload,
        digest=hashlib.sha256(payload).digest(),
    )


@given(
    st.lists(
        st.tuples(st.integers(0, 12), st.booleans(), st.integers(0, 59)), min_size=1, max_size=40
    ),
    st.lists(st.integers(1, 8), min_size=1, max_size=6),
)
def test_ids_and_times_are_kept_and_a_known_id_is_not_stored_again(
    tmp_path_factory: object, draws: list[tuple[int, bool, int]], splits: list[int]
) -> None:
    path = Path(tmp_path_factory.mktemp("imp")) / "r.db"  # type: ignore[attr-defined]
    db = Database.open(path)
    log = EventLog(db)
    events = [_imported(n, withheld=w, at=f"2026-01-02T03:04:{s:02d}.000000Z") for n, w, s in draws]
    placed: dict[str, int] = {}
    first: dict[str, ImportedEvent] = {}
    start = 0
    for size in splits * 10:
        batch = events[start : start + size]
        if not batch:
            break
        before = log.head()
        result = log.append_imported(batch)
        fresh = [p for p, appended in result if appended]
        assert fresh == list(range(before + 1, before + 1 + len(fresh)))
        for event, (position, appended) in zip(batch, result, strict=True):
            if event.event_id in placed:
                assert (position, appended) == (placed[event.event_id], False)
            else:
                placed[event.event_id] = position
                first[event.event_id] = event
        start += size
    assert log.head() == len(placed)
    with db.read():
        for recorded in log.read():
            event = first[recorded.event_id]
            assert recorded.position == placed[recorded.event_id]
            assert (recorded.stream, recorded.type, recorded.recorded_at) == (
                event.stream,
                event.type,
                event.recorded_at,
            )
            assert recorded.erased == (event.payload is None)
            if event.payload is not None:
                assert recorded.data == event.payload
    engine = engine_for(db)
    engine.catch_up()
    incremental = engine.digest()
    engine.rebuild()
    assert engine.digest() == incremental
    if all(e.payload is not None for e in first.values()):
        assert verify_chain(db).ok
    db.close()


def test_erase_imported_destroys_the_bytes_and_keeps_the_record_as_sent(tmp_path: Path) -> None:
    db = Database.open(tmp_path / "r.db")
    log = EventLog(db)
    log.append_imported([_imported(n) for n in range(6)])
    record = PayloadsErased(positions=[2, 4], reason="test", author="a", scope="session")
    imported = ImportedEvent(
        event_id="erasure-1",
        stream="m1/erasure",
        type="PayloadsErased",
        schema=1,
        recorded_at="2026-01-03T00:00:00.000000Z",
        payload=_encode(record),
    )
    done = log.erase_imported([2, 4], imported)
    assert done.positions == [7]
    with db.read():
        rows = {e.position: e for e in log.read()}
    assert rows[2].erased and rows[4].erased and not rows[3].erased
    assert (rows[7].event_id, rows[7].recorded_at) == ("erasure-1", imported.recorded_at)
    assert verify_chain(db).ok
    # Again: already done, nothing appended.
    assert log.erase_imported([2, 4], imported).positions == []
    # The normal append still stamps its own time.
    before = utc_now()
    log.append(
        [NewEvent("local", AnnotationAdded(annotation_id="x", session_id="s", label="good"))]
    )
    with db.read():
        newest = list(log.read(after=7))
    assert [e.recorded_at >= before for e in newest] == [True]
    db.close()
