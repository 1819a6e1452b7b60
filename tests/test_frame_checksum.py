"""A damaged payload frame is unreadable, never read back as altered text.

Found by a reviewer: one flipped byte in the middle of a frame still decompressed, and
``log`` printed (derivation read) a transcript line that was never written; only ``verify``
noticed. Frames now carry zstd's content checksum.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import apsw
import msgspec

from skillopsd.events import Database, EventLog, NewEvent
from skillopsd.events.types import TranscriptLineCaptured

from .conftest import run_ctl


def _line(i: int) -> NewEvent:
    # Text zstd cannot shorten much: most of the frame is literals, where a flipped byte
    # decompresses to another byte instead of breaking the frame.
    text = hashlib.sha512(str(i).encode()).hexdigest()
    return NewEvent(
        "source:a",
        TranscriptLineCaptured(
            agent="claude",
            source_id="source:a",
            generation=1,
            offset=i,
            line=msgspec.json.encode({"type": "user", "i": i, "text": text}),
            captured_at="2025-01-01T00:00:00.000000Z",
        ),
    )


def _build(path: Path) -> list[bytes]:
    db = Database.open(path)
    try:
        events = [_line(i) for i in range(80)]
        EventLog(db).append(events)
        assert db.conn.execute("SELECT count(*) FROM payload_frames").fetchone() == (1,)
        return [e.payload.line for e in events]  # type: ignore[attr-defined]
    finally:
        db.close()


def _flip(path: Path, at: float) -> None:
    conn = apsw.Connection(str(path))
    try:
        frame, data = conn.execute("SELECT id, data FROM payload_frames").fetchone()
        damaged = bytearray(data)
        damaged[int(len(damaged) * at)] ^= 0xFF
        conn.execute("UPDATE payload_frames SET data = ? WHERE id = ?", (bytes(damaged), frame))
    finally:
        conn.close()


def test_no_flipped_byte_of_a_frame_is_read_back_as_a_line(tmp_path: Path) -> None:
    for n, at in enumerate((0.2, 0.35, 0.5, 0.65, 0.8, 0.95)):
        path = tmp_path / f"{n}.db"
        lines = _build(path)
        _flip(path, at)
        db = Database.open(path)
        try:
            read = [
                (e.position, e.fault, e.fault is None and e.payload.line)  # type: ignore[attr-defined]
                for e in EventLog(db).read(types=["TranscriptLineCaptured"])
            ]
        finally:
            db.close()
        assert read, "every event is still listed"
        for position, fault, line in read:
            assert fault is not None or line == lines[position - 1], (at, position)
        assert any(fault is not None for _, fault, _ in read), at


def test_log_lists_a_damaged_frame_as_unreadable_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "damaged.db"
    _build(path)
    _flip(path, 0.5)
    done = run_ctl("--db", str(path), "log", "--json")
    assert done.returncode == 1, done.stderr
    assert "unreadable" in done.stderr and "Traceback" not in done.stderr
