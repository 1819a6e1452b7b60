"""Erasure: payload bytes destroyed on request, the chain still proven (issue 7 item 7)."""

from __future__ import annotations

import os
from pathlib import Path

import apsw
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skillopsd.events import (
    Database,
    EventErasedError,
    EventLog,
    LogError,
    NewEvent,
    stream_payloads,
    verify_chain,
)
from skillopsd.events._frames import FRAMED, decode_ref
from skillopsd.events.types import PayloadsErased, PolicySet, TranscriptLineCaptured


def _line(i: int, body: bytes) -> NewEvent:
    return NewEvent(
        "source:f",
        TranscriptLineCaptured(
            agent="claude",
            source_id="f",
            generation=1,
            offset=i,
            line=body,
            captured_at="2025-01-01T00:00:00.000000Z",
        ),
    )


def _erasure(positions: list[int]) -> NewEvent:
    return NewEvent(
        "erasure",
        PayloadsErased(positions=positions, reason="leaked key", author="tester", scope="source"),
    )


def _secret(rnd: bytes) -> bytes:
    # Random text compresses poorly, so its stored (compressed) form holds long runs of it.
    return b'{"type":"user","message":"token=' + rnd.hex().encode() + b'"}'


def _files(path: Path) -> bytes:
    out = b""
    for suffix in ("", "-wal"):
        f = Path(f"{path}{suffix}")
        if f.exists():
            out += f.read_bytes()
    return out


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    count=st.integers(2, 40),
    picks=st.sets(st.integers(0, 39), min_size=1, max_size=10),
    seed=st.binary(min_size=16, max_size=16),
)
def test_erased_bytes_are_gone_from_file_and_wal_and_verify_passes(
    tmp_path_factory: pytest.TempPathFactory, count: int, picks: set[int], seed: bytes
) -> None:
    path = tmp_path_factory.mktemp("e") / "e.db"
    db = Database.open(path)
    log = EventLog(db)
    bodies = [_secret(seed + os.urandom(300 + 37 * i)) for i in range(count)]
    log.append([_line(i, b) for i, b in enumerate(bodies)])
    chosen = sorted({p % count + 1 for p in picks})
    # What holds each payload's stored bytes: its row, or (framed) its whole frame, which an
    # erasure must replace by a frame without the erased payloads.
    frames = dict(db.conn.execute("SELECT id, data FROM payload_frames"))
    stored = {
        position: frames[decode_ref(cell)[0]] if codec == FRAMED else cell
        for position, codec, cell in db.conn.execute("SELECT position, codec, data FROM events")
    }
    head_hash = verify_chain(db).head_hash
    result = log.erase(chosen, _erasure(chosen))
    assert result.positions == [count + 1] and result.wal_cleared is True
    report = verify_chain(db)
    assert report.ok and report.events == count + 1
    on_disk = _files(path)
    for position in chosen:
        if stored[position] in frames.values():
            # The old frame is gone whole (a new frame of the same payloads may begin with
            # the same compressed bytes, so no slice of it proves anything), and no frame
            # left holds the erased payload.
            assert stored[position] not in on_disk
            for (ident,) in db.conn.execute("SELECT id FROM payload_frames"):
                assert bodies[position - 1] not in db.frames.frame(ident)
        else:
            assert stored[position][100:164] not in on_disk
        assert bodies[position - 1][40:104] not in on_disk  # neither compressed nor plain
    kept = [i + 1 for i in range(count) if i + 1 not in chosen]
    for position in kept[:3]:
        if stored[position] not in frames.values():
            assert stored[position][100:164] in on_disk  # the rest is untouched
    events = list(log.read())
    assert [e.position for e in events if e.erased] == chosen
    assert [e.data for e in events if e.erased] == [b""] * len(chosen)
    assert [e.payload.line for e in events[:count] if not e.erased] == [bodies[p - 1] for p in kept]
    assert [e.position for e in log.read(include_erased=False)] == [*kept, count + 1]
    assert [d for _, _, d in stream_payloads(db, "source:f", "TranscriptLineCaptured")] == [
        e.data for e in events[:count] if not e.erased
    ]
    # The chain up to the old head is the same chain: the erasure only added one event.
    assert list(log.read(upto=count))[-1].hash.hex() == head_hash
    db.close()


def test_erased_payload_raises_a_typed_error(log: EventLog) -> None:
    log.append([_line(0, b'{"a":1}'), _line(1, b'{"b":2}')])
    log.erase([1], _erasure([1]))
    first = next(log.read())
    assert first.erased
    with pytest.raises(EventErasedError):
        _ = first.payload
    assert isinstance(list(log.read())[-1].payload, PayloadsErased)


def test_erasure_is_refused_for_what_cannot_be_erased(log: EventLog) -> None:
    log.append([_line(0, b'{"a":1}'), NewEvent("p", PolicySet(name="x", values={}))])
    with pytest.raises(LogError, match="no such event"):
        log.erase([9], _erasure([9]))
    with pytest.raises(LogError, match="exactly"):
        log.erase([1], _erasure([2]))
    log.erase([1], _erasure([1]))
    with pytest.raises(LogError, match="records an erasure"):
        log.erase([3], _erasure([3]))
    assert log.head() == 3 and verify_chain(log.db).ok
    # Erasing again is harmless; repeating the same record is a no-op.
    again = log.erase([1, 2], _erasure([1, 2]))
    assert again.positions == [4] and verify_chain(log.db).ok


def test_no_update_outside_an_erasure(log: EventLog) -> None:
    log.append([_line(0, b'{"a":1}' * 20), _line(1, b'{"b":2}' * 20)])
    conn = log.db.conn
    with pytest.raises(apsw.ConstraintError, match="append-only"):
        conn.execute("UPDATE events SET data = x'' WHERE position = 1")
    with pytest.raises(apsw.ConstraintError, match="PayloadsErased"):
        conn.execute("INSERT INTO erasures (position, erased_by) VALUES (1, 2)")
    log.erase([1], _erasure([1]))
    with pytest.raises(apsw.ConstraintError, match="append-only"):
        conn.execute("UPDATE events SET digest = zeroblob(32) WHERE position = 1")
    with pytest.raises(apsw.ConstraintError, match="append-only"):
        conn.execute("DELETE FROM erasures")
    assert verify_chain(log.db).ok
