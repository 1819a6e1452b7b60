"""The SHA-256 hash chain over stored events, and its verification."""

from __future__ import annotations

import hashlib

import msgspec

from ._db import Database

GENESIS_HASH = bytes(32)
_header = msgspec.msgpack.Encoder()


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
    """sha256(prev_hash ‖ canonical header ‖ payload bytes); the header fixes every column."""
    h = hashlib.sha256(prev_hash)
    h.update(
        _header.encode(
            (position, event_id, stream, stream_version, type_name, schema, recorded_at, len(data))
        )
    )
    h.update(data)
    return h.digest()


class ChainReport(msgspec.Struct, frozen=True):
    """The result of walking the chain: ``ok``, or the first bad position and why."""

    ok: bool
    events: int
    head: int
    head_hash: str
    bad_position: int | None = None
    reason: str | None = None


def verify_chain(db: Database) -> ChainReport:
    """Walk every event from position 1 and check positions, stream versions and hashes."""
    prev = GENESIS_HASH
    expected_position = 1
    stream_versions: dict[str, int] = {}
    count = 0
    with db.read() as conn:
        rows = conn.execute(
            "SELECT position, event_id, stream, stream_version, type, schema, recorded_at,"
            " data, prev_hash, hash FROM events ORDER BY position"
        )
        for position, event_id, stream, version, type_name, schema, recorded_at, data, p, h in rows:
            reason = None
            if position != expected_position:
                reason = f"position gap: expected {expected_position}, found {position}"
                position = expected_position
            elif p != prev:
                reason = "prev_hash does not match the hash of the previous event"
            elif version != stream_versions.get(stream, 0) + 1:
                want = stream_versions.get(stream, 0) + 1
                reason = f"stream {stream!r} version {version}, expected {want}"
            elif h != event_hash(
                prev, position, event_id, stream, version, type_name, schema, recorded_at, data
            ):
                reason = "stored hash does not match the event's content"
            if reason is not None:
                return ChainReport(
                    ok=False,
                    events=count,
                    head=count,
                    head_hash=prev.hex(),
                    bad_position=position,
                    reason=reason,
                )
            stream_versions[stream] = version
            prev = h
            expected_position += 1
            count += 1
    return ChainReport(ok=True, events=count, head=count, head_hash=prev.hex())
