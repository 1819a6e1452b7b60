"""The SHA-256 hash chain over stored events, and its verification."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import apsw
import msgspec

from ._compress import FIRST_DICTIONARY, RAW, CodecError
from ._db import RARE_TYPES, Database, expected_triggers
from ._frames import ERASED, FRAMED, FrameError, decode_ref

GENESIS_HASH = bytes(32)
_header = msgspec.msgpack.Encoder()
_fields = msgspec.msgpack.Decoder()
# Marks the schema-2 header, so no schema-1 header can ever hash like a schema-2 one.
_V2 = "skillops/2"
_V4 = "skillops/4"


def event_hash(
    prev_hash: bytes,
    position: int,
    event_id: str,
    stream: str,
    stream_version: int,
    type_name: str,
    schema: int,
    recorded_at: str,
    data: bytes,
) -> bytes:
    """Schema-1 rows: sha256(prev_hash ‖ canonical header ‖ payload bytes)."""
    header = (position, event_id, stream, stream_version, type_name, schema, recorded_at)
    return _link(prev_hash, (*header, len(data)), data)


def event_hash_v2(
    prev_hash: bytes,
    position: int,
    event_id: str,
    stream: str,
    stream_version: int,
    type_name: str,
    schema: int,
    recorded_at: str,
    codec: int,
    digest: bytes,
) -> bytes:
    """Schema-2 rows: sha256(prev_hash ‖ header ‖ sha256(uncompressed payload)).

    The header fixes every stored column but the payload, which the digest stands for:
    erasing the payload leaves the hash checkable.
    """
    header = (_V2, position, event_id, stream, stream_version, type_name, schema, recorded_at)
    return _link(prev_hash, (*header, codec), digest)


def event_hash_v4(
    prev_hash: bytes,
    position: int,
    event_id: str,
    stream: str,
    stream_version: int,
    type_name: str,
    schema: int,
    recorded_at: str,
    digest: bytes,
) -> bytes:
    """Schema-4 rows: as schema 2 without the codec, which says where the payload's bytes
    live (in the row, in a frame, erased), not what they are: packing a payload into a frame
    leaves the hash as it was."""
    header = (_V4, position, event_id, stream, stream_version, type_name, schema, recorded_at)
    # _link's bytes in one call: this runs once per appended event, on ~150 bytes.
    return hashlib.sha256(prev_hash + _header.encode(header) + digest).digest()


def _link(prev_hash: bytes, header: tuple[object, ...], tail: bytes) -> bytes:
    """sha256(prev_hash ‖ msgpack(header) ‖ tail): one link of the chain, in every format."""
    h = hashlib.sha256(prev_hash)
    h.update(_header.encode(header))
    h.update(tail)
    return h.digest()


class ChainReport(msgspec.Struct, frozen=True):
    """The result of walking the chain: ``ok``, or the first bad position and why.

    ``bad_position`` is None for a fault that has no position (an altered trigger, a
    dictionary no event uses).
    """

    ok: bool
    events: int
    head: int
    head_hash: str
    bad_position: int | None = None
    reason: str | None = None
    # SQLite's own check of the file's structure run first: "integrity_check" (pages,
    # b-trees, and every index entry against its row), or "quick_check" (no index contents).
    structure: str = "integrity_check"


class _Bad(Exception):
    """One verification failure: where and why."""

    def __init__(self, position: int | None, reason: str) -> None:
        super().__init__(reason)
        self.position = position
        self.reason = reason


def _typed(position: int, column: str, value: Any, kind: type, sql: str) -> None:
    if not isinstance(value, kind):
        found = "NULL" if value is None else type(value).__name__.replace("str", "TEXT")
        raise _Bad(position, f"column {column} holds {found}, expected {sql}")


def verify_chain(
    db: Database, anchors: Mapping[int, bytes] | None = None, *, quick: bool = False
) -> ChainReport:
    """Check the file's structure, then walk every event from position 1 and prove the
    whole log, including its end.

    First SQLite's ``PRAGMA integrity_check`` (``quick_check`` when ``quick``: it skips
    matching every index entry against its row, which duplicate prevention relies on for
    the unique index on ``event_id``), whose first message is the report. Then the schema's
    triggers, positions, stream versions, every hash, every payload against its digest (an
    erased payload against an erasure record instead), each dictionary against its hash,
    the head anchor, and ``anchors`` (position -> hash a user kept elsewhere). Never raises
    for a corrupt database: every fault becomes a report.
    """
    walk = _Walk(db, dict(anchors or {}), "quick_check" if quick else "integrity_check")
    try:
        with db.read():
            walk.structure()
            walk.run()
    except _Bad as bad:
        return walk.report(bad.position, bad.reason)
    except UnicodeDecodeError:
        return walk.report(walk.expected_position, "a TEXT column holds invalid UTF-8")
    except (apsw.Error, msgspec.MsgspecError, ValueError, TypeError, KeyError) as exc:
        return walk.report(walk.expected_position, f"cannot read the database: {exc}")
    return walk.report(None, None)


class _Walk:
    def __init__(self, db: Database, anchors: dict[int, bytes], check: str) -> None:
        self.db = db
        self.conn = db.conn
        self.anchors = anchors
        self.check = check
        # Where a cut tail begins (the head anchor is past the last row), else None.
        self.cut: tuple[int, int] | None = None
        self.orphaned: list[int] = []  # erased positions whose record a cut tail took
        self.prev = GENESIS_HASH
        self.expected_position = 1
        self.count = 0
        self.dictionaries: dict[int, str | None] = {}  # id -> None if sound, else the fault
        self.frame_streams: dict[int, str] = {}
        self.frame_sizes: dict[int, int] = {}
        self.frame_spans: dict[int, list[tuple[int, int, int]]] = {}

    def report(self, position: int | None, reason: str | None) -> ChainReport:
        return ChainReport(
            ok=reason is None,
            events=self.count,
            head=self.count,
            head_hash=self.prev.hex(),
            bad_position=position,
            reason=reason,
            structure=self.check,
        )

    def structure(self) -> None:
        """SQLite's check of pages, b-trees and (not quick) index contents: its first message."""
        try:
            first = self.conn.execute(f"PRAGMA {self.check}(1)").fetchone()
        except apsw.Error as exc:
            raise _Bad(None, f"the database file is damaged: {exc}") from exc
        if first is None or first[0] != "ok":
            message = "no answer" if first is None else first[0]
            raise _Bad(None, f"the database file is damaged ({self.check}): {message}")

    def _cut_tail(self) -> None:
        """Note a cut tail before the walk: an erasure whose record was cut with it is then
        blamed on the cut, not on the erased event it left unexplained."""
        anchor = self.conn.execute("SELECT position FROM chain_head WHERE id = 1").fetchone()
        row = self.conn.execute("SELECT max(position) FROM events").fetchone()
        last = row[0] if row is not None and isinstance(row[0], int) else 0
        if anchor is not None and isinstance(anchor[0], int) and anchor[0] > last:
            self.cut = (last, anchor[0])

    def _unexplained_erasure(self, position: int) -> None:
        """An erased payload no PayloadsErased names: a fault at its position, unless the
        tail was cut (the record may have been cut with it): then the walk goes on, checking
        the row by the digest it keeps, and the cut is reported where it is."""
        if self.cut is None:
            raise _Bad(position, "payload is empty but no PayloadsErased event names it")
        self.orphaned.append(position)

    def run(self) -> None:
        self._cut_tail()
        self._check_dictionaries()
        self._load_frames()
        erasable = self._erasure_records()
        stream_versions: dict[str, int] = {}
        rows = self.conn.execute(
            "SELECT position, event_id, stream, stream_version, type, schema, recorded_at,"
            " codec, digest, typeof(data), CAST(data AS BLOB), prev_hash, hash"
            " FROM events ORDER BY position"
        )
        for row in rows:
            position = row[0]
            if not isinstance(position, int) or position != self.expected_position:
                raise _Bad(
                    self.expected_position,
                    f"position gap: expected {self.expected_position}, found {position}",
                )
            stream, version = row[2], row[3]
            _typed(position, "stream", stream, str, "TEXT")
            _typed(position, "stream_version", version, int, "INTEGER")
            want = stream_versions.get(stream, 0) + 1
            if version != want:
                raise _Bad(position, f"stream {stream!r} version {version}, expected {want}")
            digest = self._check_row(row, erasable)
            stream_versions[stream] = version
            self.prev = digest
            anchor = self.anchors.get(position)
            if anchor is not None and anchor != digest:
                raise _Bad(position, "hash differs from the anchor given on the command line")
            self.expected_position += 1
            self.count += 1
        self._check_head()
        beyond = sorted(p for p in self.anchors if p > self.count)
        if beyond:
            raise _Bad(
                self.count + 1,
                f"the log ends at position {self.count}, before the anchored position"
                f" {beyond[0]}: events were removed",
            )
        for fault in self.dictionaries.values():
            if fault is not None:
                raise _Bad(None, fault)
        self._check_frames()
        # Last: a fault at a position says more than a missing guard does.
        self._check_triggers()

    def _check_row(self, row: tuple[Any, ...], erasable: set[int]) -> bytes:
        (position, event_id, stream, version, type_name, schema, recorded_at) = row[:7]
        codec, digest, data_type, data, prev_hash, stored_hash = row[7:]
        # The payload is read as BLOB whatever it holds (a TEXT cell of invalid UTF-8 would
        # not even decode); its declared type is checked here.
        if data_type != "blob":
            raise _Bad(position, f"column data holds {data_type.upper()}, expected BLOB")
        _typed(position, "event_id", event_id, str, "TEXT")
        _typed(position, "type", type_name, str, "TEXT")
        _typed(position, "schema", schema, int, "INTEGER")
        _typed(position, "recorded_at", recorded_at, str, "TEXT")
        _typed(position, "codec", codec, int, "INTEGER")
        _typed(position, "data", data, bytes, "BLOB")
        _typed(position, "prev_hash", prev_hash, bytes, "BLOB")
        _typed(position, "hash", stored_hash, bytes, "BLOB")
        if digest is None and prev_hash != b"":  # schema 1: the hash covers the raw payload
            if prev_hash != self.prev:
                raise _Bad(position, "prev_hash does not match the hash of the previous event")
            if codec != RAW:
                raise _Bad(position, f"a schema-1 row with codec {codec}")
            expected = event_hash(
                self.prev, position, event_id, stream, version, type_name, schema, recorded_at, data
            )
            if stored_hash != expected:
                raise _Bad(position, "stored hash does not match the event's content")
            return expected
        header = (position, event_id, stream, version, type_name, schema, recorded_at)
        if digest is None:  # schema 4 with its payload: the digest is recomputed from it
            if data == b"":
                if position in erasable:
                    raise _Bad(position, "erased payload without its digest")
                raise _Bad(position, "payload is empty but no PayloadsErased event names it")
            payload = self._payload(position, stream, codec, data)
            expected = event_hash_v4(self.prev, *header, hashlib.sha256(payload).digest())
            if stored_hash != expected:
                raise _Bad(
                    position,
                    "stored hash does not match the event's content (header or payload digest)",
                )
            return expected
        if codec == ERASED:  # schema 4, erased: the row keeps the digest the chain commits to
            _typed(position, "digest", digest, bytes, "BLOB")
            if prev_hash != b"":
                raise _Bad(position, "prev_hash does not match the hash of the previous event")
            if data != b"":
                raise _Bad(position, "an erased event still holds a payload")
            if position not in erasable:
                self._unexplained_erasure(position)
            expected = event_hash_v4(self.prev, *header, digest)
            if stored_hash != expected:
                raise _Bad(position, "stored hash does not match the event's content")
            return expected
        _typed(position, "digest", digest, bytes, "BLOB")
        if prev_hash != b"":
            raise _Bad(position, "prev_hash does not match the hash of the previous event")
        expected = event_hash_v2(self.prev, *header, codec, digest)
        if stored_hash != expected:
            raise _Bad(position, "stored hash does not match the event's content")
        if data == b"":
            if position not in erasable:
                self._unexplained_erasure(position)
            return expected
        if codec < 0:  # its hash covers its codec: a schema-2 row is never framed or marked
            raise _Bad(position, f"a schema-2 row with codec {codec}")
        payload = self._payload(position, stream, codec, data)
        if hashlib.sha256(payload).digest() != digest:
            raise _Bad(position, "payload does not match its digest")
        return expected

    def _payload(self, position: int, stream: str, codec: int, data: bytes) -> bytes:
        """A schema-4 row's payload, read out of its frame (recording the bytes it covers)."""
        if codec == FRAMED:
            try:
                frame, offset, length = decode_ref(data)
            except FrameError as exc:
                raise _Bad(position, str(exc)) from exc
            owner = self.frame_streams.get(frame)
            if owner is None:
                raise _Bad(position, f"frame {frame} is missing")
            if owner != stream:
                raise _Bad(position, f"frame {frame} belongs to another stream")
            try:
                whole = self.db.frames.frame(frame)
            except CodecError as exc:  # its message names the frame
                raise _Bad(position, str(exc)) from exc
            if offset + length > len(whole):
                raise _Bad(position, f"reference beyond the end of frame {frame}")
            self.frame_sizes[frame] = len(whole)
            self.frame_spans.setdefault(frame, []).append((offset, length, position))
            return whole[offset : offset + length]
        if codec >= FIRST_DICTIONARY:
            fault = self.dictionaries.get(codec, f"dictionary {codec} is missing")
            if fault is not None:
                raise _Bad(position, fault)
        try:
            return self.db.codecs.decompress(codec, data)
        except CodecError as exc:
            raise _Bad(position, str(exc)) from exc

    def _load_frames(self) -> None:
        for ident, stream in self.conn.execute("SELECT id, stream FROM payload_frames"):
            if not isinstance(ident, int) or not isinstance(stream, str):
                raise _Bad(None, f"frame {ident} is malformed")
            self.frame_streams[ident] = stream

    def _check_frames(self) -> None:
        """Every frame is read whole by its events: no byte an erasure removed lingers."""
        for frame in sorted(self.frame_streams):
            spans = sorted(self.frame_spans.get(frame, []))
            if not spans:
                raise _Bad(None, f"frame {frame} holds payloads no event points at")
            end = 0
            for offset, length, position in spans:
                if offset < end:
                    raise _Bad(position, f"two events point at the same bytes of frame {frame}")
                if offset > end:
                    raise _Bad(
                        None, f"frame {frame} holds bytes no event points at ({end}..{offset})"
                    )
                end = offset + length
            if end != self.frame_sizes[frame]:
                raise _Bad(None, f"frame {frame} holds bytes no event points at (from {end})")

    def _check_triggers(self) -> None:
        want = expected_triggers()
        tables = {"events", "erasures", "payload_dictionaries", "chain_head"}
        found = {
            name: (table, sql)
            for name, table, sql in self.conn.execute(
                "SELECT name, tbl_name, sql FROM sqlite_schema WHERE type = 'trigger'"
            )
        }
        for name, sql in sorted(want.items()):
            if name not in found:
                raise _Bad(None, f"trigger {name} is missing: the log is not protected")
            if found[name][1] != sql:
                raise _Bad(None, f"trigger {name} was altered")
        for name, (table, _) in sorted(found.items()):
            if table in tables and name not in want:
                raise _Bad(None, f"unexpected trigger {name} on {table}")

    def _check_dictionaries(self) -> None:
        # Cells are read as BLOB and their declared type checked: a TEXT cell of invalid
        # UTF-8 would raise on reading, and be blamed on the first event.
        for ident, sha_type, sha, data_type, data in self.conn.execute(
            "SELECT id, typeof(sha256), CAST(sha256 AS BLOB), typeof(data), CAST(data AS BLOB)"
            " FROM payload_dictionaries ORDER BY id"
        ):
            fault = None
            if sha_type != "blob" or data_type != "blob":
                fault = f"dictionary {ident} is not stored as a BLOB"
            elif hashlib.sha256(data).digest() != sha:
                fault = f"dictionary {ident} does not match its recorded sha256"
            self.dictionaries[ident] = fault

    def _erasure_records(self) -> set[int]:
        """Positions named by PayloadsErased events (each is itself checked in the walk)."""
        named: set[int] = set()
        for data, codec in self.conn.execute(
            "SELECT CAST(data AS BLOB), codec FROM events WHERE type = 'PayloadsErased'"
            f" AND {RARE_TYPES} AND typeof(data) = 'blob'"
        ):
            try:
                if codec == FRAMED:
                    data = self.db.frames.payload(data)
                    codec = RAW
                fields = _fields.decode(self.db.codecs.decompress(codec, data))
                named.update(p for p in fields.get("positions", []) if isinstance(p, int))
            except (CodecError, msgspec.MsgspecError, AttributeError, TypeError):
                continue  # the walk reports this row at its own position
        return named

    def _check_head(self) -> None:
        row = self.conn.execute(
            "SELECT position, typeof(hash), CAST(hash AS BLOB) FROM chain_head WHERE id = 1"
        ).fetchone()
        if row is None:
            if self.count:
                raise _Bad(None, "the head anchor (chain_head) is missing")
            return
        position, anchor_type, anchor = row
        if not isinstance(position, int) or anchor_type != "blob":
            raise _Bad(None, "the head anchor (chain_head) is malformed")
        if position > self.count:
            taken = ""
            if self.orphaned:
                named = ", ".join(map(str, self.orphaned[:5]))
                more = "…" if len(self.orphaned) > 5 else ""
                taken = f" (with them the record of the erasure of position {named}{more})"
            raise _Bad(
                self.count + 1,
                f"the log ends at position {self.count} but its head anchor is at {position}:"
                f" events were removed from the end{taken}",
            )
        if position < self.count:
            raise _Bad(
                position + 1,
                f"events after the head anchor ({position}) were added outside the log",
            )
        if anchor != self.prev:
            raise _Bad(position, "the head anchor's hash does not match the last event")
