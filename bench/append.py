"""Append throughput of the event log beside a plain apsw floor, in one run.

    python3 bench/append.py [--events 200000] [--batch 1000]

The log encodes each payload (msgspec), assigns stream versions, checks idempotency and
extends the SHA-256 chain. The floor inserts the same pre-encoded rows with
``executemany`` into a table of the same shape and indexes, in the same WAL/synchronous
mode, with no hashing or encoding. Prints both rates and the ratio (target >= 0.5).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import apsw

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from skillopsd.events import Database, EventLog, NewEvent, content_id, utc_now
from skillopsd.events._codec import encode
from skillopsd.events._db import PAGE_SIZE
from skillopsd.events.types import TranscriptLineCaptured

FLOOR_SCHEMA = """
CREATE TABLE events (
    position INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, stream TEXT NOT NULL,
    stream_version INTEGER NOT NULL, type TEXT NOT NULL, schema INTEGER NOT NULL,
    recorded_at TEXT NOT NULL, data BLOB NOT NULL, prev_hash BLOB NOT NULL, hash BLOB NOT NULL,
    UNIQUE (stream, stream_version));
CREATE INDEX events_by_type ON events (type, position);
"""


def make_events(n: int, streams: int) -> list[NewEvent]:
    rnd = random.Random(7)
    words = [f"word{i}" for i in range(500)]
    events = []
    for i in range(n):
        text = " ".join(rnd.choice(words) for _ in range(260))[:1900]
        line = ('{"type":"assistant","message":{"content":"' + text + '"}}').encode()
        source = f"src{i % streams}"
        payload = TranscriptLineCaptured(
            agent="claude",
            source_id=source,
            generation=1,
            offset=i * 2000,
            line=line,
            captured_at="2026-11-22T00:00:00.000000Z",
            session=source,
        )
        events.append(NewEvent(f"source:{source}", payload, content_id(source, i)))
    return events


def run_log(path: Path, events: list[NewEvent], batch: int) -> float:
    db = Database.open(path)
    log = EventLog(db)
    start = time.perf_counter()
    for i in range(0, len(events), batch):
        log.append(events[i : i + batch])
    elapsed = time.perf_counter() - start
    db.close()
    return elapsed


def run_floor(path: Path, events: list[NewEvent], batch: int) -> float:
    conn = apsw.Connection(str(path))
    conn.execute(f"PRAGMA page_size={PAGE_SIZE}")  # as the log's database has
    conn.execute("PRAGMA journal_mode=WAL").fetchone()
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(FLOOR_SCHEMA)
    # Pre-encoded outside the timed region: the floor does no encoding or hashing.
    recorded = utc_now()
    versions: dict[str, int] = {}
    rows = []
    for pos, e in enumerate(events, 1):
        versions[e.stream] = versions.get(e.stream, 0) + 1
        rows.append(
            (
                pos,
                e.event_id,
                e.stream,
                versions[e.stream],
                "TranscriptLineCaptured",
                1,
                recorded,
                encode(e.payload),
                b"\0" * 32,
                b"\0" * 32,
            )
        )
    start = time.perf_counter()
    for i in range(0, len(rows), batch):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?)", rows[i : i + batch])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--streams", type=int, default=100)
    args = parser.parse_args()
    events = make_events(args.events, args.streams)
    payload = sum(len(encode(e.payload)) for e in events[:1000]) / 1000
    with tempfile.TemporaryDirectory() as tmp:
        floor = run_floor(Path(tmp) / "floor.db", events, args.batch)
        logged = run_log(Path(tmp) / "log.db", events, args.batch)
        size = os.path.getsize(Path(tmp) / "log.db")
    n = args.events
    print(
        f"events {n}, batch {args.batch}, mean payload {payload:.0f} B, log db {size / 1e6:.0f} MB"
    )
    print(f"floor (apsw executemany): {n / floor:>10,.0f} events/s  ({floor:.2f} s)")
    print(f"event log (append):       {n / logged:>10,.0f} events/s  ({logged:.2f} s)")
    print(f"ratio log/floor: {floor / logged:.2f}  (target >= 0.50)")


if __name__ == "__main__":
    main()
