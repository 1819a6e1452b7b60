"""Payload frames: one stream's payloads compressed together, read, erased and packed alone."""

from __future__ import annotations

import hashlib
from pathlib import Path

import apsw
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skillopsd.events import Database, EventLog, NewEvent, stream_payloads, verify_chain
from skillopsd.events._chain import GENESIS_HASH, event_hash_v2
from skillopsd.events._db import _MIGRATIONS, _SCHEMA_1, APPLICATION_ID
from skillopsd.events._frames import (
    ERASED,
    FRAME_MIN,
    FRAME_TARGET,
    FRAMED,
    FrameError,
    decode_ref,
    encode_ref,
    split,
)
from skillopsd.events.types import (
    PayloadsErased,
    PolicySet,
    SourceFileTracked,
    TranscriptLineCaptured,
)
from skillopsd.projections import engine_for


def _line(stream: str, i: int, size: int = 400) -> NewEvent:
    body = {"type": "user", "i": i, "text": f"line {i} of {stream} " + "x" * size}
    return NewEvent(
        stream,
        TranscriptLineCaptured(
            agent="claude",
            source_id=stream,
            generation=1,
            offset=i,
            line=msgspec.json.encode(body),
            captured_at="2025-01-01T00:00:00.000000Z",
        ),
    )


def _erasure(positions: list[int]) -> NewEvent:
    return NewEvent(
        "erasure",
        PayloadsErased(positions=positions, reason="test", author="tester", scope="source"),
    )


def _codecs(db: Database) -> dict[int, int]:
    return dict(db.conn.execute("SELECT position, codec FROM events"))


def _lines(log: EventLog) -> dict[int, bytes]:
    """Every readable line, by position."""
    out: dict[int, bytes] = {}
    for event in log.read(types=["TranscriptLineCaptured"], include_erased=False):
        payload = event.payload
        assert isinstance(payload, TranscriptLineCaptured)
        out[event.position] = payload.line
    return out


@pytest.fixture
def db(tmp_path: Path) -> Database:
    return Database.open(tmp_path / "f.db")


@given(st.lists(st.integers(0, 2**40), min_size=3, max_size=3))
def test_a_reference_round_trips(values: list[int]) -> None:
    assert decode_ref(encode_ref(*values)) == tuple(values)


@given(st.binary(max_size=40))
def test_a_malformed_reference_raises_frame_error_not_anything_else(ref: bytes) -> None:
    try:
        frame, offset, length = decode_ref(ref)
    except FrameError:
        return
    assert encode_ref(frame, offset, length) == ref or ref[-1] < 0x80


@given(st.lists(st.integers(0, 3 * FRAME_TARGET), max_size=60), st.sampled_from([0, FRAME_MIN]))
def test_split_ranges_are_ordered_disjoint_runs_of_two_or_more(
    sizes: list[int], minimum: int
) -> None:
    ranges = split(sizes, minimum)
    end = 0
    for start, stop in ranges:
        assert start >= end and stop - start >= 2
        assert sum(sizes[start:stop]) >= minimum
        end = stop
    if len(sizes) >= 2 and sum(sizes) >= minimum and max(sizes) < FRAME_TARGET // 2:
        assert ranges and ranges[0][0] == 0 and ranges[-1][1] == len(sizes)  # all framed


def test_a_batch_of_one_stream_is_framed_and_reads_back_exactly(db: Database) -> None:
    log = EventLog(db)
    events = [_line("source:a", i) for i in range(60)] + [_line("source:b", 0)]
    log.append(events)
    codecs = _codecs(db)
    assert {codecs[p] for p in range(1, 61)} == {FRAMED}
    assert codecs[61] != FRAMED  # a lone payload of another stream stays in its row
    assert list(_lines(log).values()) == [e.payload.line for e in events]  # type: ignore[attr-defined]
    frames = db.conn.execute("SELECT stream, count(*) FROM payload_frames GROUP BY stream")
    assert dict(frames) == {"source:a": 1}
    # Digests are not stored while the payload is there: the hash commits to it.
    assert db.conn.execute("SELECT count(*) FROM events WHERE digest IS NOT NULL").fetchone() == (
        0,
    )
    assert verify_chain(db).ok
    # One row read alone, by stream, by position.
    assert [p for _, _, p in stream_payloads(db, "source:a", "TranscriptLineCaptured")][5] == (
        msgspec.msgpack.encode(events[5].payload)
    )


def test_a_large_batch_is_cut_into_frames_of_the_target_size(db: Database) -> None:
    log = EventLog(db)
    events = [_line("source:big", i, size=20_000) for i in range(150)]  # ~3 MB
    log.append(events)
    sizes = [
        len(db.frames.frame(ident)) for (ident,) in db.conn.execute("SELECT id FROM payload_frames")
    ]
    assert len(sizes) >= 2 and all(s <= FRAME_TARGET + 2 * 20_100 for s in sizes)
    assert sum(sizes) == sum(len(msgspec.msgpack.encode(e.payload)) for e in events)
    assert verify_chain(db).ok


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(picks=st.sets(st.integers(0, 59), min_size=1, max_size=60))
def test_erasing_some_of_a_frame_repacks_the_rest_and_destroys_the_frame(
    tmp_path_factory: pytest.TempPathFactory, picks: set[int]
) -> None:
    db = Database.open(tmp_path_factory.mktemp("e") / "e.db")
    log = EventLog(db)
    log.append([_line("source:a", i) for i in range(60)])
    before = _lines(log)
    (old_frame,) = [r[0] for r in db.conn.execute("SELECT id FROM payload_frames")]
    chosen = sorted(p + 1 for p in picks)
    log.erase(chosen, _erasure(chosen))
    after = _lines(log)
    assert after == {p: line for p, line in before.items() if p not in chosen}
    frames = [r[0] for r in db.conn.execute("SELECT id FROM payload_frames")]
    assert old_frame not in frames  # deleted (secure_delete zeroes it)
    assert len(frames) == (1 if len(chosen) < 60 else 0)
    for ident in frames:  # the new frame holds exactly what is kept
        assert db.frames.frame(ident) == b"".join(
            msgspec.msgpack.encode(e.payload) for e in log.read(upto=60) if not e.erased
        )
    codecs = _codecs(db)
    assert all(codecs[p] == ERASED for p in chosen)
    assert verify_chain(db).ok
    # Erasing again is a no-op for what is already erased; the rest still erases.
    rest = sorted(set(range(1, 61)) - set(chosen))[:3]
    if rest:
        again = sorted({*chosen[:2], *rest})
        log.erase(again, _erasure(again))
        assert verify_chain(db).ok
    db.close()


def test_erased_rows_keep_their_digest_and_their_hash(db: Database) -> None:
    log = EventLog(db)
    log.append([_line("source:a", i) for i in range(40)])
    payload = next(iter(log.read(after=9, upto=10))).data
    hashes = dict(db.conn.execute("SELECT position, hash FROM events"))
    log.erase([10], _erasure([10]))
    digest, data, hash_ = db.conn.execute(
        "SELECT digest, data, hash FROM events WHERE position = 10"
    ).fetchone()
    assert digest == hashlib.sha256(payload).digest() and data == b"" and hash_ == hashes[10]
    assert all(
        h == hashes[p] for p, h in db.conn.execute("SELECT position, hash FROM events") if p <= 40
    )


def test_pack_moves_settled_live_rows_into_frames_and_changes_no_hash(db: Database) -> None:
    log = EventLog(db)
    for i in range(30):  # live capture: one line per append, one payload per row
        log.append([_line("source:live", i)])
        log.append([_line("source:quiet", i, size=50)])
    log.append([NewEvent("policy", PolicySet(name="p", values={}))])
    assert FRAMED not in _codecs(db).values()
    lines = _lines(log)
    hashes = dict(db.conn.execute("SELECT position, hash FROM events"))
    engine = engine_for(db)
    engine.catch_up()
    digest = engine.digest()
    # Nothing has been quiet long enough, and no stream has a frame's worth: nothing moves.
    assert log.pack("2000-01-01T00:00:00.000000Z") == 0
    # Everything recorded before the future is settled: both streams are packed.
    assert log.pack("2999-01-01T00:00:00.000000Z") == 60
    codecs = _codecs(db)
    assert {codecs[p] for p in range(1, 61)} == {FRAMED}
    assert codecs[61] != FRAMED  # a stream with one event has nothing to pack
    assert _lines(log) == lines
    assert dict(db.conn.execute("SELECT position, hash FROM events")) == hashes
    assert verify_chain(db).ok
    engine.rebuild()
    assert engine.digest() == digest
    # The watermark: a second pass finds nothing, and new rows after it are packed later.
    assert log.pack("2999-01-01T00:00:00.000000Z") == 0
    for i in range(30, 40):
        log.append([_line("source:live", i)])
    assert log.pack("2999-01-01T00:00:00.000000Z") == 10
    assert verify_chain(db).ok


def test_pack_waits_for_a_stream_still_filling_and_then_takes_it(db: Database) -> None:
    log = EventLog(db)
    for i in range(20):
        log.append([_line("source:filling", i)])
    assert log.pack("2000-01-01T00:00:00.000000Z") == 0  # not quiet, under a frame
    for i in range(20, 20 + FRAME_TARGET // 400 + 10):
        log.append([_line("source:filling", i)])
    moved = log.pack("2000-01-01T00:00:00.000000Z")
    assert moved >= FRAME_TARGET // 450  # a full frame went, the rest may wait
    assert verify_chain(db).ok
    assert log.pack("2999-01-01T00:00:00.000000Z") + moved == 20 + FRAME_TARGET // 400 + 10


def test_the_triggers_allow_only_packing_and_erasure(db: Database) -> None:
    log = EventLog(db)
    log.append([_line("source:a", i) for i in range(40)])
    log.append([_line("source:b", 0)])
    ref = db.conn.execute("SELECT data FROM events WHERE position = 1").fetchone()[0]
    for sql, args in [
        ("UPDATE events SET codec = 0 WHERE position = 1", ()),
        ("UPDATE events SET data = x'' WHERE position = 1", ()),
        ("UPDATE events SET digest = zeroblob(32) WHERE position = 1", ()),
        ("UPDATE events SET codec = -2, digest = zeroblob(32), data = x'' WHERE position = 41", ()),
        ("UPDATE events SET stream = 'x' WHERE position = 1", ()),
        ("UPDATE events SET codec = -1, data = x'' WHERE position = 41", ()),
    ]:
        with pytest.raises(apsw.ConstraintError, match="append-only"):
            db.conn.execute(sql, args)
    # Moving a schema-4 payload into a frame changes only where its bytes live.
    db.conn.execute("UPDATE events SET codec = -1, data = ? WHERE position = 2", (ref,))
    report = verify_chain(db)
    assert not report.ok and report.bad_position == 2  # verify sees the wrong bytes


def _schema_3_database(path: Path, count: int) -> None:
    """A database as schema 3 wrote it: per-row payloads, stored digests, v2 hashes."""
    raw = apsw.Connection(str(path))
    raw.execute("PRAGMA page_size=16384")
    raw.execute("PRAGMA journal_mode=WAL").fetchall()
    raw.execute(_SCHEMA_1)
    raw.execute(_MIGRATIONS[1])
    raw.execute(_MIGRATIONS[2])
    raw.execute(f"PRAGMA application_id={APPLICATION_ID}")
    raw.execute("PRAGMA user_version=3")
    prev = GENESIS_HASH
    for i in range(1, count + 1):
        data = msgspec.msgpack.encode(_line("source:old", i).payload)
        digest = hashlib.sha256(data).digest()
        header = (i, f"id{i}", "source:old", i, "TranscriptLineCaptured", 1, "2024-01-01T00:00:00Z")
        prev = event_hash_v2(prev, *header, 0, digest)
        raw.execute(
            "INSERT INTO events (position, event_id, stream, stream_version, type, schema,"
            " recorded_at, codec, digest, data, prev_hash, hash)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?, x'', ?)",
            (*header, digest, data, prev),
        )
    raw.execute(
        "INSERT OR REPLACE INTO chain_head (id, position, hash) VALUES (1, ?, ?)", (count, prev)
    )
    raw.close()


def test_schema_3_rows_stay_as_they_are_beside_new_framed_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _schema_3_database(path, 30)
    before = apsw.Connection(str(path)).execute("SELECT * FROM events").fetchall()
    db = Database.open(path)
    log = EventLog(db)
    assert verify_chain(db).ok
    log.append([_line("source:old", i) for i in range(31, 71)])  # new rows of the same stream
    # Old rows are never framed (their hash covers their codec), new ones are.
    assert log.pack("2999-01-01T00:00:00.000000Z") == 0
    codecs = _codecs(db)
    assert {codecs[p] for p in range(1, 31)} == {0}
    assert {codecs[p] for p in range(31, 71)} == {FRAMED}
    after = db.conn.execute(
        "SELECT position, event_id, stream, stream_version, type, schema, recorded_at, data,"
        " prev_hash, hash, codec, digest FROM events WHERE position <= 30"
    ).fetchall()
    assert after == [tuple(r) for r in before]
    # Both formats erase and verify.
    log.erase([3, 40], _erasure([3, 40]))
    row3 = db.conn.execute("SELECT codec, digest, data FROM events WHERE position = 3").fetchone()
    assert row3[0] == 0 and row3[1] is not None and row3[2] == b""
    report = verify_chain(db)
    assert report.ok, report
    assert len(_lines(log)) == 68


def test_recompress_rewrites_quiet_fast_frames_and_nothing_else(db: Database) -> None:
    log = EventLog(db)

    log.append([_line("source:a", i, size=900) for i in range(200)])
    log.append([_line("source:b", i, size=900) for i in range(200)])
    lines = _lines(log)
    hashes = dict(db.conn.execute("SELECT position, hash FROM events"))
    refs = dict(db.conn.execute("SELECT position, data FROM events"))
    before = dict(db.conn.execute("SELECT id, length(data) FROM payload_frames"))
    assert {lvl for (lvl,) in db.conn.execute("SELECT level FROM payload_frames")} == {1}
    assert log.recompress("2000-01-01T00:00:00.000000Z") == 0  # nothing is quiet yet
    assert log.recompress("2999-01-01T00:00:00.000000Z", budget=1) == 1  # one per budget
    assert log.recompress("2999-01-01T00:00:00.000000Z") == len(before) - 1
    after = dict(db.conn.execute("SELECT id, length(data) FROM payload_frames"))
    # Never larger (on such repetitive lines level 3 can lose to level 1: the bytes stay).
    assert after.keys() == before.keys() and all(after[i] <= before[i] for i in before)
    assert {lvl for (lvl,) in db.conn.execute("SELECT level FROM payload_frames")} == {3}
    # Only where the bytes are stored changed: payloads, references, hashes are the same.
    reopened = Database.open(db.path)  # no cached frame
    assert _lines(EventLog(reopened)) == lines
    assert dict(db.conn.execute("SELECT position, data FROM events")) == refs
    assert dict(db.conn.execute("SELECT position, hash FROM events")) == hashes
    assert verify_chain(reopened).ok
    assert log.recompress("2999-01-01T00:00:00.000000Z") == 0
    reopened.close()


def test_erasing_across_several_frames_replaces_only_the_frames_touched(db: Database) -> None:
    log = EventLog(db)
    log.append([_line("source:big", i, size=20_000) for i in range(150)])  # ~3 MB, 3+ frames
    log.append([_line("source:other", i, size=2_000) for i in range(20)])
    frames_of = {
        p: decode_ref(cell)[0]
        for p, cell in db.conn.execute("SELECT position, data FROM events WHERE codec = -1")
    }
    big = sorted({frames_of[p] for p in range(1, 151)})
    assert len(big) >= 3
    lines = _lines(log)
    # One position in the first frame, two in the last: the middle ones stay as they are.
    first = [p for p in range(1, 151) if frames_of[p] == big[0]][:1]
    last = [p for p in range(1, 151) if frames_of[p] == big[-1]][-2:]
    chosen = sorted(first + last)
    log.erase(chosen, _erasure(chosen))
    now = {r[0] for r in db.conn.execute("SELECT id FROM payload_frames")}
    assert big[0] not in now and big[-1] not in now
    assert set(big[1:-1]) <= now  # untouched frames keep their ids and bytes
    assert len(now) == len(big) + 1  # the two touched frames replaced; source:other's kept
    assert _lines(log) == {p: line for p, line in lines.items() if p not in chosen}
    assert verify_chain(db).ok


def _tracked(stream: str, i: int) -> NewEvent:
    return NewEvent(
        stream,
        SourceFileTracked(
            agent="claude",
            source_id=stream,
            path=f"/home/u/.claude/projects/p/{i}.jsonl",
            device=1,
            inode=i,
            fingerprint="f" * 16,
            generation=1,
            session=f"session-{i}",
        ),
    )


def test_rare_types_stay_in_their_rows_when_appended_and_packed_common_ones_framed(
    db: Database,
) -> None:
    """A file's SourceFileTracked, appended in one batch with its lines (as capture does) or
    one at a time and packed, stays one payload per row: whoever derives sessions reads every
    file's one by type, and out of a frame each would decompress its stream's whole frame."""
    log = EventLog(db)
    batch = [_tracked("source:a", 0), *(_line("source:a", i) for i in range(40))]
    log.append(batch)
    for i in range(20):  # live: one event per append, packed later
        log.append([_tracked("source:b", i) if i == 0 else _line("source:b", i)])
    codecs = _codecs(db)
    assert codecs[1] != FRAMED and {codecs[p] for p in range(2, 42)} == {FRAMED}
    assert log.pack("2999-01-01T00:00:00.000000Z") == 19
    codecs = _codecs(db)
    assert codecs[42] != FRAMED and {codecs[p] for p in range(43, 62)} == {FRAMED}
    # Reading the rare ones decompresses no frame.
    cached = db.frames._cache  # a fresh reader's cache of decompressed frames
    cached.clear()
    tracked = [e.payload for e in log.read(types=["SourceFileTracked"])]
    assert tracked == [batch[0].payload, _tracked("source:b", 0).payload]
    assert not cached
    assert [e.position for e in log.read(types=["TranscriptLineCaptured"])] == [
        *range(2, 42),
        *range(43, 62),
    ]
    assert verify_chain(db).ok
