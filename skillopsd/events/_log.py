"""The append-only, hash-chained event log."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import apsw
import msgspec

from . import _codec
from ._chain import GENESIS_HASH, event_hash_v2
from ._compress import Codecs
from ._db import COMMON_TYPES, RARE_TYPES, Database, scalar
from .errors import ConcurrencyError, EventErasedError, LogError
from .types import Event, PayloadsErased

_INSERT = (
    "INSERT INTO events (position, event_id, stream, stream_version, type, schema,"
    " recorded_at, codec, digest, data, prev_hash, hash)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, x'', ?)"
)
# ``erased``: a schema-2 row (digest kept) whose payload is empty; no encoded payload is.
_COLUMNS = (
    "position, event_id, stream, stream_version, type, schema, recorded_at, hash,"
    " length(data) = 0 AND digest IS NOT NULL, codec, data"
)
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
    data: bytes  # the uncompressed payload (b"" when erased or read without data)
    hash: bytes
    erased: bool = False

    @property
    def payload(self) -> Event:
        """The decoded payload, upcast to the current schema of its type."""
        if self.erased:
            raise EventErasedError(f"event {self.position} ({self.type}) was erased")
        return _codec.decode(self.type, self.schema, self.data)


class AppendResult(msgspec.Struct, frozen=True):
    """What an append did: the positions written and how many events were already there.

    ``wal_cleared`` is set by :meth:`EventLog.erase` only: whether the WAL could be
    truncated afterwards (False: a reader held it; the erased bytes may linger there until
    the next checkpoint).
    """

    positions: list[int]
    duplicates: int
    wal_cleared: bool | None = None


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

    def __init__(self, db: Database, *, dictionary: bool = True) -> None:
        self.db = db
        # False: plain zstd, as databases written before the shipped dictionary hold (tests
        # of old rows use it); True: the shipped dictionary (see _compress).
        self.dictionary = dictionary

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
            codecs = self.db.codecs
            dictionary = codecs.shipped_id() if self.dictionary else None
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
                digest = hashlib.sha256(data).digest()
                codec, stored = codecs.compress(data, dictionary)
                chained = event_hash_v2(
                    prev,
                    position,
                    event_id,
                    event.stream,
                    version,
                    type_name,
                    schema,
                    recorded_at,
                    codec,
                    digest,
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
                        codec,
                        digest,
                        stored,
                        chained,
                    )
                )
                positions.append(position)
                prev = chained
            conn.executemany(_INSERT, rows)
            conn.execute(
                "INSERT OR REPLACE INTO chain_head (id, position, hash) VALUES (1, ?, ?)",
                (position, prev),
            )
        return AppendResult(positions=positions, duplicates=duplicates)

    def erase(self, positions: Sequence[int], record: NewEvent) -> AppendResult:
        """In one transaction: append ``record`` (a PayloadsErased naming ``positions``) and
        destroy those events' payload bytes (secure_delete, then a TRUNCATE checkpoint of the
        WAL).

        Only the payload is destroyed: every other column, the digest and the hash stay, so
        the chain still verifies. Schema-1 rows (stored before digests existed) and
        erasure records themselves cannot be erased; asking raises :class:`LogError` and
        changes nothing. Erasing an already erased event is allowed (a no-op for it).
        """
        wanted = sorted(set(positions))
        payload = record.payload
        if not isinstance(payload, PayloadsErased):
            raise LogError("an erasure is recorded by a PayloadsErased event")
        if payload.positions != wanted:
            raise LogError("the PayloadsErased record must name exactly the erased positions")
        if not wanted:
            raise LogError("nothing to erase")
        conn = self.db.conn
        # Every connection runs with secure_delete (Database.open): the old cell, and every
        # stale copy an earlier page split left in unused space, is zeroed, not unlinked.
        with self.db.write():
            self._check_erasable(wanted)
            result = self.append([record])
            if not result.positions:  # this very record is stored: already done
                return AppendResult(positions=[], duplicates=1, wal_cleared=None)
            (erased_by,) = result.positions
            conn.executemany(
                "INSERT OR IGNORE INTO erasures (position, erased_by) VALUES (?, ?)",
                [(p, erased_by) for p in wanted],
            )
            conn.executemany(
                "UPDATE events SET data = x'' WHERE position = ?", [(p,) for p in wanted]
            )
        # The WAL still holds the pages as they were before: copy and truncate it.
        cleared = self.db.checkpoint_truncate() if not self.db.in_write else None
        return AppendResult(positions=result.positions, duplicates=0, wal_cleared=cleared)

    def _check_erasable(self, wanted: list[int]) -> None:
        found: dict[int, tuple[str, bool]] = {}
        for start in range(0, len(wanted), _ID_CHUNK):
            chunk = wanted[start : start + _ID_CHUNK]
            marks = ",".join("?" * len(chunk))
            for position, type_name, has_digest in self.db.conn.execute(
                f"SELECT position, type, digest IS NOT NULL FROM events"
                f" WHERE position IN ({marks})",
                chunk,
            ):
                found[position] = (type_name, bool(has_digest))
        for position in wanted:
            if position not in found:
                raise LogError(f"cannot erase position {position}: no such event")
            type_name, has_digest = found[position]
            if type_name == "PayloadsErased":
                raise LogError(f"cannot erase position {position}: it records an erasure")
            if not has_digest:
                raise LogError(
                    f"cannot erase position {position}: stored before schema 2, its hash"
                    " covers the payload bytes, so erasing it could not be verified"
                )

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
        include_erased: bool = True,
    ) -> Iterator[RecordedEvent]:
        """Events in position order, filtered by position range, types and stream.

        ``with_data=False`` leaves ``data`` empty (no payload), for readers that need only
        the envelope; it spares reading every transcript line back. Erased events come
        with ``erased=True`` and empty ``data`` unless ``include_erased=False`` skips them.
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
            if COMMON_TYPES.isdisjoint(names):
                where.append(RARE_TYPES)  # lets SQLite use the partial index
        if stream is not None:
            where.append("stream = ?")
            args.append(stream)
        if not include_erased:
            where.append("NOT (length(data) = 0 AND digest IS NOT NULL)")
        columns = _COLUMNS if with_data else _COLUMNS.replace(" codec, data", " 0, x''")
        sql = f"SELECT {columns} FROM events WHERE {' AND '.join(where)} ORDER BY position"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        yield from self._recorded(self.db.conn.execute(sql, args))

    def read_stream(self, stream: str, *, after_version: int = 0) -> Iterator[RecordedEvent]:
        """One stream's events in version order."""
        sql = (
            f"SELECT {_COLUMNS} FROM events WHERE stream = ? AND stream_version > ?"
            " ORDER BY stream_version"
        )
        yield from self._recorded(self.db.conn.execute(sql, (stream, after_version)))

    def _recorded(self, rows: Iterable[tuple[Any, ...]]) -> Iterator[RecordedEvent]:
        decompress = self.db.codecs.decompress
        for (
            position,
            event_id,
            stream,
            version,
            type_name,
            schema,
            at,
            h,
            erased,
            codec,
            data,
        ) in rows:
            yield RecordedEvent(
                position,
                event_id,
                stream,
                version,
                type_name,
                schema,
                at,
                decompress(codec, data) if data else b"",
                h,
                bool(erased),
            )


def stream_payloads(db: Database, stream: str, type_name: str) -> Iterator[tuple[int, bytes]]:
    """``(schema, uncompressed payload)`` of one stream's events of one type, in version order.

    Erased events are skipped. For hot readers that decode only a few fields themselves.
    """
    decompress = db.codecs.decompress
    rows = db.conn.execute(
        "SELECT schema, codec, data FROM events WHERE stream = ? AND type = ?"
        " AND length(data) > 0 ORDER BY stream_version",
        (stream, type_name),
    )
    for schema, codec, data in rows:
        yield schema, decompress(codec, data)


def events_at(conn: apsw.Connection, positions: Iterable[int]) -> dict[int, Event]:
    """The decoded payloads of the events at ``positions`` (erased ones are left out).

    For projections that keep an event's position instead of a copy of its payload.
    """
    codecs = Codecs(conn)
    wanted = sorted(set(positions))
    found: dict[int, Event] = {}
    for start in range(0, len(wanted), _ID_CHUNK):
        chunk = wanted[start : start + _ID_CHUNK]
        marks = ",".join("?" * len(chunk))
        for position, type_name, schema, codec, data in conn.execute(
            f"SELECT position, type, schema, codec, data FROM events"
            f" WHERE position IN ({marks}) AND length(data) > 0",
            chunk,
        ):
            found[position] = _codec.decode(type_name, schema, codecs.decompress(codec, data))
    return found
