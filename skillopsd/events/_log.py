"""The append-only, hash-chained event log."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime

import msgspec

from . import _codec
from ._chain import GENESIS_HASH, event_hash
from ._db import Database, scalar
from .errors import ConcurrencyError
from .types import Event

_INSERT = (
    "INSERT INTO events (position, event_id, stream, stream_version, type, schema,"
    " recorded_at, data, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_COLUMNS = "position, event_id, stream, stream_version, type, schema, recorded_at, data, hash"
# SQLite's default SQLITE_MAX_VARIABLE_NUMBER is 32766; stay well below it.
_ID_CHUNK = 5000


class NewEvent(msgspec.Struct, frozen=True):
    """An event to append: its stream, payload and (for idempotency) its id."""

    stream: str
    payload: Event
    event_id: str | None = None


class RecordedEvent(msgspec.Struct, frozen=True):
    """An event as stored; ``payload`` decodes (and upcasts) the stored bytes on access."""

    position: int
    event_id: str
    stream: str
    stream_version: int
    type: str
    schema: int
    recorded_at: str
    data: bytes
    hash: bytes

    @property
    def payload(self) -> Event:
        """The decoded payload, upcast to the current schema of its type."""
        return _codec.decode(self.type, self.schema, self.data)


class AppendResult(msgspec.Struct, frozen=True):
    """What an append did: the positions written and how many events were already there."""

    positions: list[int]
    duplicates: int


def content_id(*parts: str | bytes | int) -> str:
    """A deterministic event id from the content that defines a fact (for idempotent appends)."""
    h = hashlib.sha256()
    for part in parts:
        raw = part if isinstance(part, bytes) else str(part).encode()
        h.update(len(raw).to_bytes(8, "big"))
        h.update(raw)
    return h.hexdigest()[:32]


def utc_now() -> str:
    """The current time as ISO 8601 UTC with microseconds (producers only, never projections)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class EventLog:
    """Append to and read from the log in one database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def append(
        self,
        events: Sequence[NewEvent],
        *,
        expected_versions: Mapping[str, int] | None = None,
    ) -> AppendResult:
        """Append ``events`` in one transaction, in order.

        Events whose ``event_id`` is already stored (or repeated earlier in the batch) are
        skipped: appending the same fact twice is a no-op. ``expected_versions`` maps a
        stream to the version it must be at before this batch (0: the stream must not
        exist); a mismatch raises :class:`ConcurrencyError` and writes nothing. A batch in
        which every event is already stored succeeds as a no-op, so a retried append after
        an unknown outcome is safe.
        """
        ids = [e.event_id or uuid.uuid4().hex for e in events]
        recorded_at = utc_now()
        with self.db.write() as conn:
            existing = self._existing_ids(ids)
            fresh: list[tuple[str, NewEvent]] = []
            seen: set[str] = set()
            for event_id, event in zip(ids, events, strict=True):
                if event_id in existing or event_id in seen:
                    continue
                seen.add(event_id)
                fresh.append((event_id, event))
            duplicates = len(events) - len(fresh)
            if not fresh:
                return AppendResult(positions=[], duplicates=duplicates)
            versions: dict[str, int] = {}
            for _, event in fresh:
                if event.stream not in versions:
                    versions[event.stream] = self._stream_version(event.stream)
            for stream, expected in (expected_versions or {}).items():
                actual = versions[stream] if stream in versions else self._stream_version(stream)
                if actual != expected:
                    raise ConcurrencyError(stream, expected, actual)
            row = conn.execute(
                "SELECT position, hash FROM events ORDER BY position DESC LIMIT 1"
            ).fetchone()
            position, prev = (row[0], row[1]) if row else (0, GENESIS_HASH)
            rows = []
            positions = []
            for event_id, event in fresh:
                position += 1
                version = versions[event.stream] + 1
                versions[event.stream] = version
                payload = event.payload
                type_name = type(payload).__name__
                schema = payload.SCHEMA
                data = _codec.encode(payload)
                digest = event_hash(
                    prev,
                    position,
                    event_id,
                    event.stream,
                    version,
                    type_name,
                    schema,
                    recorded_at,
                    data,
                )
                rows.append(
                    (
                        position,
                        event_id,
                        event.stream,
                        version,
                        type_name,
                        schema,
                        recorded_at,
                        data,
                        prev,
                        digest,
                    )
                )
                positions.append(position)
                prev = digest
            conn.executemany(_INSERT, rows)
        return AppendResult(positions=positions, duplicates=duplicates)

    def _existing_ids(self, ids: list[str]) -> set[str]:
        found: set[str] = set()
        conn = self.db.conn
        for start in range(0, len(ids), _ID_CHUNK):
            chunk = ids[start : start + _ID_CHUNK]
            marks = ",".join("?" * len(chunk))
            found.update(
                r[0]
                for r in conn.execute(
                    f"SELECT event_id FROM events WHERE event_id IN ({marks})", chunk
                )
            )
        return found

    def _stream_version(self, stream: str) -> int:
        version = scalar(
            self.db.conn, "SELECT max(stream_version) FROM events WHERE stream = ?", (stream,)
        )
        return version or 0

    def stream_version(self, stream: str) -> int:
        """The current version of ``stream`` (0 if it has no events)."""
        with self.db.read():
            return self._stream_version(stream)

    def head(self) -> int:
        """The position of the newest event (0 for an empty log)."""
        return scalar(self.db.conn, "SELECT max(position) FROM events") or 0

    def read(
        self,
        *,
        after: int = 0,
        upto: int | None = None,
        types: Iterable[str] | None = None,
        stream: str | None = None,
        limit: int | None = None,
        with_data: bool = True,
    ) -> Iterator[RecordedEvent]:
        """Events in position order, filtered by position range, types and stream.

        ``with_data=False`` leaves ``data`` empty (no payload), for readers that need only
        the envelope; it spares reading every transcript line back.
        """
        where = ["position > ?"]
        args: list[object] = [after]
        if upto is not None:
            where.append("position <= ?")
            args.append(upto)
        if types is not None:
            names = sorted(set(types))
            if not names:
                return
            where.append(f"type IN ({','.join('?' * len(names))})")
            args.extend(names)
        if stream is not None:
            where.append("stream = ?")
            args.append(stream)
        columns = _COLUMNS if with_data else _COLUMNS.replace("data", "x'' AS data")
        sql = f"SELECT {columns} FROM events WHERE {' AND '.join(where)} ORDER BY position"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        for row in self.db.conn.execute(sql, args):
            yield RecordedEvent(*row)

    def read_stream(self, stream: str, *, after_version: int = 0) -> Iterator[RecordedEvent]:
        """One stream's events in version order."""
        sql = (
            f"SELECT {_COLUMNS} FROM events WHERE stream = ? AND stream_version > ?"
            " ORDER BY stream_version"
        )
        for row in self.db.conn.execute(sql, (stream, after_version)):
            yield RecordedEvent(*row)
