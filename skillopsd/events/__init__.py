"""The event log: typed events, appends, reads, the hash chain and its verification."""

from __future__ import annotations

from ._chain import ChainReport, verify_chain
from ._codec import decode as decode_payload
from ._codec import register_upcaster
from ._compress import MAX_PAYLOAD, CodecError
from ._db import RARE_TYPES, SCHEMA_VERSION, Database
from ._links import GENESIS_HASH, ChainLink, chain_links, link_hash
from ._log import (
    AppendResult,
    EncodedEvent,
    EventLog,
    ImportedEvent,
    NewEvent,
    RecordedEvent,
    content_id,
    encode_event,
    events_at,
    payload_reader,
    stream_payloads,
    utc_now,
)
from .errors import (
    ConcurrencyError,
    CorruptEventError,
    DatabaseOpenError,
    EventDecodeError,
    EventErasedError,
    LogBusyError,
    LogError,
    StorageError,
    storage_error,
)
from .types import EVENT_TYPES, AnyEvent, Event

__all__ = [
    "EVENT_TYPES",
    "GENESIS_HASH",
    "MAX_PAYLOAD",
    "RARE_TYPES",
    "SCHEMA_VERSION",
    "AnyEvent",
    "AppendResult",
    "ChainLink",
    "ChainReport",
    "CodecError",
    "ConcurrencyError",
    "CorruptEventError",
    "Database",
    "DatabaseOpenError",
    "EncodedEvent",
    "Event",
    "EventDecodeError",
    "EventErasedError",
    "EventLog",
    "ImportedEvent",
    "LogBusyError",
    "LogError",
    "NewEvent",
    "RecordedEvent",
    "StorageError",
    "chain_links",
    "content_id",
    "decode_payload",
    "encode_event",
    "events_at",
    "link_hash",
    "payload_reader",
    "register_upcaster",
    "storage_error",
    "stream_payloads",
    "utc_now",
    "verify_chain",
]
