"""The append-only, hash-chained event log."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import apsw
import msgspec

from . import _codec
from ._chain import GENESIS_HASH, event_hash_v4
from ._compress import Codecs
from ._db import COMMON_TYPES, RARE_TYPES, Database, scalar
from ._frames import ERASED, FRAME_TARGET, FRAMED, PACK_LEVEL, Frames, decode_ref, split
from .errors import ConcurrencyError, CorruptEventError, EventErasedError, LogError
from .types import EVENT_TYPES, Event, PayloadsErased

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


class EncodedEvent(msgspec.Struct, frozen=True):
    """An event to append whose payload is already encoded (:func:`encode_event`): made
    where it was derived, so the appending process neither encodes it nor receives it whole.
    """

    stream: str
    type: str
    schema: int
    data: bytes
    event_id: str


def encode_event(stream: str, payload: Event, epoch: int = 0) -> EncodedEvent:
    """``payload`` encoded once, with its content id (salted with ``epoch`` when not 0):
    the same bytes and id as appending ``NewEvent(stream, payload, content_id(...))``."""
    name = type(payload).__name__
    data = _codec.encode(payload)
    ident = content_id(name, data, epoch) if epoch else content_id(name, data)
    return EncodedEvent(stream, name, payload.SCHEMA, data, ident)


class ImportedEvent(msgspec.Struct, frozen=True):
    """An event another log recorded, appended as it was recorded there (the team replica
    only): its id, type, schema and ``recorded_at`` are kept, its payload comes encoded.

    ``payload`` None: its bytes did not come (withheld, erased); the row is stored erased
    with ``digest`` (what the other log's chain commits to) in their place.
    """

    event_id: str
    stream: str
    type: str
    schema: int
    recorded_at: str
    payload: bytes | None
    digest: bytes = b""


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
    # Why the stored payload could not be read back (a damaged row, frame or dictionary);
    # None when it was read, or not asked for. ``data`` is then empty.
    fault: str | None = None

    @property
    def payload(self) -> Event:
        """The decoded payload, upcast to the current schema of its type.

        Raises :class:`EventErasedError` for an erased event and :class:`CorruptEventError`
        (naming the position) for one whose stored bytes are damaged.
        """
        if self.erased:
            raise EventErasedError(f"event {self.position} ({self.type}) was erased")
        if self.fault is not None:
            raise CorruptEventError(self.position, self.fault)
        try:
            return _codec.decode(self.type, self.schema, self.data)
        except LogError as exc:
            raise CorruptEventError(self.position, str(exc)) from exc


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


def utc_now(ago: float = 0.0) -> str:
    """The current time (less ``ago`` seconds) as ISO 8601 UTC with microseconds, the form of
    ``recorded_at`` (producers only, never projections)."""
    return (datetime.now(UTC) - timedelta(seconds=ago)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _encoded(
    events: Sequence[NewEvent | EncodedEvent],
) -> tuple[list[bytes], list[str], list[int]]:
    """Each event's payload bytes, type name and schema (new payloads encoded now). A batch
    is of one kind (:meth:`EventLog.append` or :meth:`EventLog.append_encoded`)."""
    if events and isinstance(events[0], EncodedEvent):
        done = cast(list[EncodedEvent], events)
        return [e.data for e in done], [e.type for e in done], [e.schema for e in done]
    payloads = [e.payload for e in cast(list[NewEvent], events)]
    names = [type(p).__name__ for p in payloads]
    return _codec.encode_all(payloads), names, [p.SCHEMA for p in payloads]


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
        return self._append(ids, events, expected_versions)

    def append_encoded(
        self,
        events: Sequence[EncodedEvent],
        *,
        expected_versions: Mapping[str, int] | None = None,
    ) -> AppendResult:
        """:meth:`append` of events whose payloads are already encoded."""
        for event in events:
            cls = EVENT_TYPES.get(event.type)
            if cls is None or event.schema != cls.SCHEMA:
                raise ValueError(f"not an event type of this version: {event.type} {event.schema}")
        return self._append([e.event_id for e in events], events, expected_versions)

    def _append(
        self,
        ids: list[str],
        events: Sequence[NewEvent | EncodedEvent],
        expected_versions: Mapping[str, int] | None,
    ) -> AppendResult:
        recorded_at = utc_now()
        with self.db.write() as conn:
            existing = self._existing_ids(ids)
            fresh: list[tuple[str, NewEvent | EncodedEvent]] = []
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
            encoded, names, schemas = _encoded([event for _, event in fresh])
            stored = self._store(
                [
                    e.stream if name in COMMON_TYPES else None  # _framed, inline (per event)
                    for (_, e), name in zip(fresh, names, strict=True)
                ],
                encoded,
                dictionary,
            )
            rows = []
            positions = []
            for (event_id, event), type_name, schema, data, (codec, cell) in zip(
                fresh, names, schemas, encoded, stored, strict=True
            ):
                position += 1
                version = versions[event.stream] + 1
                versions[event.stream] = version
                chained = event_hash_v4(
                    prev,
                    position,
                    event_id,
                    event.stream,
                    version,
                    type_name,
                    schema,
                    recorded_at,
                    hashlib.sha256(data).digest(),
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
                        None,
                        cell,
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

    def _store(
        self, streams: list[str | None], encoded: list[bytes], dictionary: int | None
    ) -> list[tuple[int, bytes]]:
        """``(codec, data cell)`` of each payload: runs of one stream's payloads in frames,
        the rest (``None`` for its stream) compressed one by one.

        Only the common types (a transcript's lines, a session's spans) are framed: they are
        read a stream at a time, a frame after another. A rare type is looked up by its type
        across many streams (every file's SourceFileTracked, whenever sessions are derived):
        read out of a frame, each would decompress its stream's whole frame (a megabyte, 2 ms)
        for a few hundred bytes.
        """
        stored: list[tuple[int, bytes] | None] = [None] * len(encoded)
        by_stream: dict[str, list[int]] = {}
        for i, stream in enumerate(streams):
            if stream is not None:
                by_stream.setdefault(stream, []).append(i)
        runs: list[tuple[str, list[int]]] = []
        for stream, members in by_stream.items():
            runs.extend(
                (stream, members[a:b]) for a, b in split([len(encoded[i]) for i in members])
            )
        written = self.db.frames.write_many(
            [(stream, [encoded[i] for i in run]) for stream, run in runs], dictionary
        )
        for (_, run), refs in zip(runs, written, strict=True):
            for i, ref in zip(run, refs, strict=True):
                stored[i] = (FRAMED, ref)
        compress = self.db.codecs.compress
        return [
            cell if cell is not None else compress(encoded[i], dictionary)
            for i, cell in enumerate(stored)
        ]

    def append_imported(self, events: Sequence[ImportedEvent]) -> list[tuple[int, bool]]:
        """Append events recorded by other logs (the team replica), keeping their ids and
        times; ``(position, appended)`` of each, in order.

        Not for anything a machine records itself (``append`` stamps the time of the append;
        this trusts the caller's). An id already stored, or repeated in the batch, is not
        stored again: its position is the one stored (``appended`` False). Stream versions
        are this log's own; the hash chain is this log's own, over each payload's digest.
        """
        with self.db.write() as conn:
            existing = self._existing_positions([e.event_id for e in events])
            out: list[tuple[int, bool]] = []
            fresh: list[ImportedEvent] = []
            row = conn.execute(
                "SELECT position, hash FROM events ORDER BY position DESC LIMIT 1"
            ).fetchone()
            head, prev = (row[0], row[1]) if row else (0, GENESIS_HASH)
            position = head
            for event in events:
                known = existing.get(event.event_id)
                if known is not None:
                    out.append((known, False))
                    continue
                position += 1
                existing[event.event_id] = position
                fresh.append(event)
                out.append((position, True))
            if not fresh:
                return out
            versions: dict[str, int] = {}
            for event in fresh:
                if event.stream not in versions:
                    versions[event.stream] = self._stream_version(event.stream)
            dictionary = self.db.codecs.shipped_id() if self.dictionary else None
            present = [i for i, e in enumerate(fresh) if e.payload is not None]
            cells = self._store(
                [_framed(fresh[i].stream, fresh[i].type) for i in present],
                [fresh[i].payload or b"" for i in present],
                dictionary,
            )
            stored = dict(zip(present, cells, strict=True))
            rows = []
            position = head
            for i, event in enumerate(fresh):
                position += 1
                version = versions[event.stream] + 1
                versions[event.stream] = version
                if event.payload is not None:
                    codec, cell = stored[i]
                    digest = hashlib.sha256(event.payload).digest()
                    kept: bytes | None = None
                else:
                    codec, cell = ERASED, b""
                    digest = kept = event.digest
                chained = event_hash_v4(
                    prev,
                    position,
                    event.event_id,
                    event.stream,
                    version,
                    event.type,
                    event.schema,
                    event.recorded_at,
                    digest,
                )
                rows.append(
                    (
                        position,
                        event.event_id,
                        event.stream,
                        version,
                        event.type,
                        event.schema,
                        event.recorded_at,
                        codec,
                        kept,
                        cell,
                        chained,
                    )
                )
                prev = chained
            conn.executemany(_INSERT, rows)
            conn.execute(
                "INSERT OR REPLACE INTO chain_head (id, position, hash) VALUES (1, ?, ?)",
                (position, prev),
            )
        return out

    def _existing_positions(self, ids: list[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        unique = sorted(set(ids))
        for start in range(0, len(unique), _ID_CHUNK):
            chunk = unique[start : start + _ID_CHUNK]
            marks = ",".join("?" * len(chunk))
            for event_id, position in self.db.conn.execute(
                f"SELECT event_id, position FROM events WHERE event_id IN ({marks})", chunk
            ):
                found[str(event_id)] = int(position)
        return found

    def erase(self, positions: Sequence[int], record: NewEvent) -> AppendResult:
        """In one transaction: append ``record`` (a PayloadsErased naming ``positions``) and
        destroy those events' payload bytes (secure_delete, then a TRUNCATE checkpoint of the
        WAL).

        Only the payload is destroyed: every other column and the hash stay, and the digest
        the hash commits to stays in the row (schema 2 stored it all along; a schema-4 row gets
        it now, with codec ERASED), so the chain still verifies. A framed payload's frame is
        re-packed without it and deleted. Schema-1 rows (stored before digests existed) and
        erasure records themselves cannot be erased; asking raises :class:`LogError` and
        changes nothing. Erasing an already erased event is allowed (a no-op for it).
        """
        return self._erase(positions, record.payload, lambda: self.append([record]).positions)

    def erase_imported(self, positions: Sequence[int], record: ImportedEvent) -> AppendResult:
        """:meth:`erase`, the record being another log's PayloadsErased (the team replica),
        its positions already translated to this log's, appended with
        :meth:`append_imported`."""
        if record.type != "PayloadsErased" or record.payload is None:
            raise LogError("an erasure is recorded by a PayloadsErased event")
        payload = _codec.decode(record.type, record.schema, record.payload)

        def store() -> list[int]:
            ((position, appended),) = self.append_imported([record])
            return [position] if appended else []

        return self._erase(positions, payload, store)

    def _erase(
        self, positions: Sequence[int], payload: Event, store: Callable[[], list[int]]
    ) -> AppendResult:
        wanted = sorted(set(positions))
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
            rows = self._check_erasable(wanted)
            recorded = store()
            if not recorded:  # this very record is stored: already done
                return AppendResult(positions=[], duplicates=1, wal_cleared=None)
            (erased_by,) = recorded
            conn.executemany(
                "INSERT OR IGNORE INTO erasures (position, erased_by) VALUES (?, ?)",
                [(p, erased_by) for p in wanted],
            )
            read = payload_reader(self.db)
            old_rows: list[tuple[int]] = []
            new_rows: list[tuple[bytes, int]] = []
            frames: dict[int, str] = {}
            for position, (stream, digest, codec, cell) in rows.items():
                if codec == ERASED:  # already erased
                    continue
                if digest is not None:  # schema 2: its digest and codec stay
                    old_rows.append((position,))
                    continue
                try:
                    stored = read(codec, cell)
                except (LogError, TypeError) as exc:
                    # Its digest, which the chain commits to, cannot be computed: erasing it
                    # would leave a row verify could never check again.
                    raise LogError(
                        f"cannot erase position {position}: its payload is unreadable ({exc});"
                        " skillopsctl verify reports the damage"
                    ) from exc
                if codec == FRAMED:
                    frames[decode_ref(cell)[0]] = stream
                new_rows.append((hashlib.sha256(stored).digest(), position))
            conn.executemany("UPDATE events SET data = x'' WHERE position = ?", old_rows)
            conn.executemany(
                f"UPDATE events SET codec = {ERASED}, digest = ?, data = x'' WHERE position = ?",
                new_rows,
            )
            by_stream: dict[str, set[int]] = {}
            for frame, stream in frames.items():
                by_stream.setdefault(stream, set()).add(frame)
            for stream, touched in sorted(by_stream.items()):
                self._repack(stream, touched)
            self.db.frames.forget()
        # The WAL still holds the pages as they were before: copy and truncate it.
        cleared = self.db.checkpoint_truncate() if not self.db.in_write else None
        return AppendResult(positions=recorded, duplicates=0, wal_cleared=cleared)

    def pack(self, settled_before: str) -> int:
        """Move payloads of the common types stored one per row into frames of their stream
        (as appends frame them: see _store); the rows moved.

        Live capture appends a line at a time, one payload per row. A stream's such payloads
        are packed once they fill a frame (FRAME_TARGET bytes), or, fewer, once the newest of
        them was recorded before ``settled_before`` (an ISO time: the stream went quiet). Rows of
        streams still filling wait for a later call; a watermark spares rescanning the rest.
        Only the storage changes: hashes commit to payload digests, not to where bytes live.
        """
        with self.db.write() as conn:
            start = scalar(conn, "SELECT position FROM payload_packing WHERE id = 1") or 0
            pending: dict[str, list[tuple[int, str, int, bytes]]] = {}
            for position, stream, recorded_at, codec, cell in conn.execute(
                "SELECT position, stream, recorded_at, codec, data FROM events"
                " WHERE position > ? AND digest IS NULL AND prev_hash = x''"
                f" AND codec >= 0 AND length(data) > 0 AND NOT ({RARE_TYPES}) ORDER BY position",
                (start,),
            ):
                pending.setdefault(stream, []).append((position, recorded_at, codec, cell))
            head = self.head()
            read = payload_reader(self.db)
            dictionary = self.db.codecs.shipped_id() if self.dictionary else None
            waiting: list[int] = []
            moved: list[tuple[bytes, int]] = []
            for stream, found in pending.items():
                rows: list[tuple[int, str, int, bytes]] = []
                payloads: list[bytes] = []
                for row in found:
                    try:
                        payloads.append(read(row[2], row[3]))
                    except (LogError, TypeError):
                        continue  # damaged: stays where it is, for verify to report
                    rows.append(row)
                if not rows:
                    continue
                settled = rows[-1][1] < settled_before
                ranges = split([len(p) for p in payloads], 0 if settled else FRAME_TARGET)
                for a, b in ranges:
                    refs = self.db.frames.write(stream, payloads[a:b], dictionary, PACK_LEVEL)
                    moved.extend((ref, row[0]) for ref, row in zip(refs, rows[a:b], strict=True))
                end = ranges[-1][1] if ranges else 0
                if not settled and end < len(rows):
                    waiting.append(rows[end][0])
            conn.executemany(
                f"UPDATE events SET codec = {FRAMED}, data = ? WHERE position = ?", moved
            )
            mark = min(waiting) - 1 if waiting else head
            conn.execute(
                "INSERT OR REPLACE INTO payload_packing (id, position) VALUES (1, ?)", (mark,)
            )
        return len(moved)

    def recompress(self, settled_before: str, budget: int = 64 * 1024 * 1024) -> int:
        """Compress again at PACK_LEVEL the frames appends wrote at a faster level, of streams
        quiet since ``settled_before``; about ``budget`` uncompressed bytes per call. Returns
        the frames rewritten.

        A frame's bytes stay the same once decompressed: no reference, hash or cached copy
        changes. Capture writes level 1 to keep within its time budget; this brings a
        backfill's frames to what packing writes (1.4 MB less on the real corpus).
        """
        done = 0
        with self.db.write() as conn:
            quiet: dict[str, bool] = {}
            candidates: list[tuple[Any, ...]] = conn.execute(
                "SELECT id, stream, length(data) FROM payload_frames WHERE level < ? ORDER BY id",
                (PACK_LEVEL,),
            ).fetchall()
            dictionary = self.db.codecs.shipped_id() if self.dictionary else None
            codec = self.db.codecs.codec_of(dictionary)
            compressor = self.db.codecs.compressor(dictionary, PACK_LEVEL)
            for frame, stream, size in candidates:
                if stream not in quiet:
                    newest = scalar(
                        conn,
                        "SELECT recorded_at FROM events WHERE stream = ?"
                        " ORDER BY stream_version DESC LIMIT 1",
                        (stream,),
                    )
                    quiet[stream] = newest is not None and newest < settled_before
                if not quiet[stream]:
                    continue
                try:
                    data = self.db.frames.frame(frame)
                except LogError:
                    continue  # damaged: left as it is, for verify to report
                packed = compressor.compress(data)
                if len(packed) < min(size, len(data)):
                    conn.execute(
                        "UPDATE payload_frames SET codec = ?, level = ?, data = ? WHERE id = ?",
                        (codec, PACK_LEVEL, packed, frame),
                    )
                else:  # the fast level did as well (it happens): keep those bytes
                    conn.execute(
                        "UPDATE payload_frames SET level = ? WHERE id = ?", (PACK_LEVEL, frame)
                    )
                done += 1
                budget -= len(data)
                if budget <= 0:
                    break
        return done

    def _repack(self, stream: str, touched: set[int]) -> None:
        """Rewrite each frame of ``stream`` in ``touched`` with only the payloads events still
        point at, or drop it (one pass over the stream's rows for all of them)."""
        conn = self.db.conn
        members: dict[int, list[tuple[int, int, int]]] = {f: [] for f in touched}
        for position, cell in conn.execute(
            f"SELECT position, data FROM events WHERE stream = ? AND codec = {FRAMED}", (stream,)
        ):
            ident, offset, length = decode_ref(cell)
            if ident in members:
                members[ident].append((offset, length, position))  # (offset, length, position)
        dictionary = self.db.codecs.shipped_id() if self.dictionary else None
        for frame, kept in sorted(members.items()):
            if kept:
                kept.sort()
                data = self.db.frames.frame(frame)
                payloads = [data[offset : offset + length] for offset, length, _ in kept]
                refs = self.db.frames.write(stream, payloads, dictionary, PACK_LEVEL)
                conn.executemany(
                    "UPDATE events SET data = ? WHERE position = ?",
                    [(ref, position) for ref, (_, _, position) in zip(refs, kept, strict=True)],
                )
            conn.execute("DELETE FROM payload_frames WHERE id = ?", (frame,))

    def _check_erasable(self, wanted: list[int]) -> dict[int, tuple[str, bytes | None, int, bytes]]:
        """``position -> (stream, digest, codec, data)`` of rows that may be erased."""
        found: dict[int, tuple[str, str, bool, bytes | None, int, bytes]] = {}
        for start in range(0, len(wanted), _ID_CHUNK):
            chunk = wanted[start : start + _ID_CHUNK]
            marks = ",".join("?" * len(chunk))
            for position, type_name, stream, prev_hash, digest, codec, data in self.db.conn.execute(
                f"SELECT position, type, stream, prev_hash, digest, codec, data FROM events"
                f" WHERE position IN ({marks})",
                chunk,
            ):
                found[position] = (type_name, stream, prev_hash == b"", digest, codec, data)
        rows: dict[int, tuple[str, bytes | None, int, bytes]] = {}
        for position in wanted:
            if position not in found:
                raise LogError(f"cannot erase position {position}: no such event")
            type_name, stream, chained_by_digest, digest, codec, data = found[position]
            if type_name == "PayloadsErased":
                raise LogError(f"cannot erase position {position}: it records an erasure")
            if not chained_by_digest:
                raise LogError(
                    f"cannot erase position {position}: stored before schema 2, its hash"
                    " covers the payload bytes, so erasing it could not be verified"
                )
            rows[position] = (stream, digest, codec, data)
        return rows

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
        """Rows as events; a payload that cannot be read back comes with its ``fault``
        instead of raising, so one damaged event never hides the rest from a reader."""
        decompress = payload_reader(self.db)
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
            fault = None
            try:
                payload = decompress(codec, data) if data else b""
            except (LogError, TypeError) as exc:  # TypeError: a cell of the wrong type
                payload, fault = b"", str(exc)
            yield RecordedEvent(
                position,
                event_id,
                stream,
                version,
                type_name,
                schema,
                at,
                payload,
                h,
                bool(erased),
                fault,
            )


def stream_payloads(db: Database, stream: str, type_name: str) -> Iterator[tuple[int, int, bytes]]:
    """``(position, schema, uncompressed payload)`` of one stream's events of one type, in
    version order.

    Erased events are skipped. For hot readers that decode only a few fields themselves.
    Raises :class:`CorruptEventError` at a payload that cannot be read back.
    """
    decompress = payload_reader(db)
    rows = db.conn.execute(
        "SELECT position, schema, codec, data FROM events WHERE stream = ? AND type = ?"
        " AND length(data) > 0 ORDER BY stream_version",
        (stream, type_name),
    )
    for position, schema, codec, data in rows:
        try:
            payload = decompress(codec, data)
        except (LogError, TypeError) as exc:
            raise CorruptEventError(position, str(exc)) from exc
        yield position, schema, payload


def payload_reader(db: Database) -> Callable[[int, bytes], bytes]:
    """``read(codec, cell)``: the uncompressed payload of a row's codec and data cell.

    Raises a :class:`LogError` (``CodecError``, ``FrameError``) for a damaged payload;
    callers that know the position turn it into a :class:`CorruptEventError`.
    """
    decompress = db.codecs.decompress
    frames = db.frames

    def read(codec: int, cell: bytes) -> bytes:
        if codec == FRAMED:
            return frames.payload(cell)
        return decompress(codec, cell)

    return read


def events_at(conn: apsw.Connection, positions: Iterable[int]) -> dict[int, Event]:
    """The decoded payloads of the events at ``positions`` (erased ones are left out).

    For projections that keep an event's position instead of a copy of its payload. Raises
    :class:`CorruptEventError` at a payload that cannot be read back.
    """
    codecs = Codecs(conn)
    frames = Frames(conn, codecs)
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
            try:
                if codec == FRAMED:
                    payload = frames.payload(data)
                else:
                    payload = codecs.decompress(codec, data)
                found[position] = _codec.decode(type_name, schema, payload)
            except (LogError, TypeError) as exc:
                raise CorruptEventError(position, str(exc)) from exc
    return found


def _framed(stream: str, type_name: str) -> str | None:
    """The stream whose frames hold a payload of this type; ``None``: stored in its row."""
    return stream if type_name in COMMON_TYPES else None
