"""The chain's links as stored rows, for checking them elsewhere (a team server).

A link carries what its hash commits to (the header and the payload's digest), never the
compressed cell: a receiver recomputes the hash from the previous link's hash with the very
functions the local verifier uses, whether or not the payload itself is sent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import msgspec

from ._chain import GENESIS_HASH, event_hash_v2, event_hash_v4
from ._db import Database
from ._frames import ERASED
from ._log import payload_reader
from .errors import LogError

__all__ = ["GENESIS_HASH", "ChainLink", "chain_links", "link_hash"]

# Hash formats a link can have (see _chain): 2 commits to the codec, 4 does not.
LINK_V2 = 2
LINK_V4 = 4


class ChainLink(msgspec.Struct, frozen=True):
    """One stored event as its link of the chain.

    ``payload`` is the uncompressed payload (None when erased or unreadable); ``fault`` says
    why a link cannot be trusted as read (schema-1 row, unreadable or mismatching payload).
    """

    position: int
    event_id: str
    stream: str
    stream_version: int
    type: str
    schema: int
    recorded_at: str
    link: int
    codec: int
    digest: bytes
    hash: bytes
    payload: bytes | None
    erased: bool = False
    fault: str | None = None


def link_hash(link: ChainLink, prev_hash: bytes) -> bytes:
    """The hash ``link`` must have after ``prev_hash``, recomputed from its header and digest."""
    header = (
        link.position,
        link.event_id,
        link.stream,
        link.stream_version,
        link.type,
        link.schema,
        link.recorded_at,
    )
    if link.link == LINK_V2:
        return event_hash_v2(prev_hash, *header, link.codec, link.digest)
    return event_hash_v4(prev_hash, *header, link.digest)


def chain_links(db: Database, *, after: int = 0, limit: int = 500) -> Iterator[ChainLink]:
    """Up to ``limit`` links after position ``after``, in position order.

    A schema-4 row's digest is computed from its payload here (that is what its hash commits
    to), so a payload changed behind the log's back gives a link whose hash does not match.
    """
    read = payload_reader(db)
    rows: list[tuple[Any, ...]] = db.conn.execute(
        "SELECT position, event_id, stream, stream_version, type, schema, recorded_at,"
        " codec, digest, prev_hash, hash, CAST(data AS BLOB) FROM events"
        " WHERE position > ? ORDER BY position LIMIT ?",
        (after, limit),
    ).fetchall()
    for row in rows:
        (position, event_id, stream, version, type_name, schema, at) = row[:7]
        codec, digest, prev_hash, stored_hash, data = row[7:]
        head = (position, event_id, stream, version, type_name, schema, at)
        if not _well_typed(row):
            yield ChainLink(
                position, str(event_id), str(stream), 0, str(type_name), 0, str(at), LINK_V4, 0,
                b"", b"", None, fault="a column holds a value of the wrong type",
            )  # fmt: skip
            continue
        if digest is None and prev_hash != b"":
            yield ChainLink(
                *head, LINK_V4, 0, b"", stored_hash, None,
                fault="a schema-1 row (its hash covers its raw bytes): it cannot be sent"
                " without them",
            )  # fmt: skip
            continue
        if codec == ERASED or (digest is not None and data == b""):
            link = LINK_V4 if codec == ERASED else LINK_V2
            yield ChainLink(*head, link, codec, digest, stored_hash, None, erased=True)
            continue
        try:
            payload = read(codec, data)
        except (LogError, TypeError) as exc:
            yield ChainLink(
                *head, LINK_V4, codec, digest or b"", stored_hash, None,
                fault=f"its payload cannot be read ({exc})",
            )  # fmt: skip
            continue
        actual = hashlib.sha256(payload).digest()
        if digest is None:
            yield ChainLink(*head, LINK_V4, 0, actual, stored_hash, payload)
            continue
        fault = None if actual == digest else "its payload does not match its digest"
        yield ChainLink(*head, LINK_V2, codec, digest, stored_hash, payload, fault=fault)


_TYPES: tuple[type | tuple[type, ...], ...] = (
    int,
    str,
    str,
    int,
    str,
    int,
    str,
    int,
    (bytes, type(None)),
    bytes,
    bytes,
    bytes,
)


def _well_typed(row: tuple[Any, ...]) -> bool:
    """Whether every column holds the type the schema declares (a hand-edited row may not)."""
    return all(isinstance(value, kind) for value, kind in zip(row, _TYPES, strict=True))
