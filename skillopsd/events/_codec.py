"""Encoding event payloads, and upcasting old schemas on read."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from .errors import EventDecodeError
from .types import EVENT_TYPES, Event

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

_encoder = msgspec.msgpack.Encoder()
_raw_decoder = msgspec.msgpack.Decoder()
_decoders: dict[str, msgspec.msgpack.Decoder[Any]] = {
    name: msgspec.msgpack.Decoder(cls) for name, cls in EVENT_TYPES.items()
}
# (type name, stored schema) -> function turning that schema's fields into the next one's.
_upcasters: dict[tuple[str, int], Upcaster] = {}


def register_upcaster(type_name: str, from_schema: int) -> Callable[[Upcaster], Upcaster]:
    """Register the step that lifts ``type_name`` payloads from ``from_schema`` to the next."""

    def decorate(fn: Upcaster) -> Upcaster:
        _upcasters[(type_name, from_schema)] = fn
        return fn

    return decorate


def encode(event: Event) -> bytes:
    """Encode a payload once; these exact bytes are stored and hashed."""
    return _encoder.encode(event)


def encode_all(events: list[Event]) -> list[bytes]:
    """:func:`encode` of each of ``events`` (an append's, without a call per event)."""
    encode_one = _encoder.encode
    return [encode_one(event) for event in events]


def decode(type_name: str, schema: int, data: bytes) -> Event:
    """Decode stored bytes into the current Struct, upcasting from an older schema if needed."""
    cls = EVENT_TYPES.get(type_name)
    if cls is None:
        raise EventDecodeError(f"unknown event type {type_name!r}")
    try:
        if schema == cls.SCHEMA:
            return _decoders[type_name].decode(data)
        if schema > cls.SCHEMA:
            raise EventDecodeError(
                f"{type_name} schema {schema} is newer than this code ({cls.SCHEMA})"
            )
        fields = _raw_decoder.decode(data)
        for version in range(schema, cls.SCHEMA):
            step = _upcasters.get((type_name, version))
            if step is None:
                raise EventDecodeError(f"no upcaster for {type_name} schema {version}")
            fields = step(fields)
        fields["type"] = type_name
        return msgspec.convert(fields, cls)
    except msgspec.MsgspecError as exc:
        raise EventDecodeError(f"cannot decode {type_name} (schema {schema}): {exc}") from exc
