"""Per-row payload compression: zstandard, optionally with a dictionary stored in the database.

Each payload is compressed alone so that one row can be read alone and erased alone. The
``codec`` column says how: ``RAW`` (stored as is), ``ZSTD`` (plain zstd) or an id ``>= 2``
naming a row of ``payload_dictionaries`` (zstd with that dictionary). A dictionary is never
updated or deleted (triggers), so a row compressed with it decompresses forever.

The dictionary is trained once per database, from that database's own first payloads, after
they have been reduced to a *skeleton*: only short strings (JSON keys, tool names, roles)
seen in several different streams survive, every other string becomes empty. A dictionary is
kept for ever, so what it holds could not be erased later; the skeleton keeps one session's
own text (a secret, a path, a prompt) out of it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import apsw
import msgspec
import zstandard

RAW = 0
ZSTD = 1
FIRST_DICTIONARY = 2
# zstd level: measured on the real corpus (per-row, with the dictionary), level 1 stores
# 5% more than level 3 in two thirds of the time; capture speed is the tighter budget.
LEVEL = 1
DICTIONARY_BYTES = 64 * 1024
# A string survives into the training skeleton only if it is this short and appears in at
# least this many streams (sessions, sources): common vocabulary, not one session's content.
SKELETON_MAX_CHARS = 32
SKELETON_MIN_STREAMS = 3
# Payloads smaller than this are stored raw: a zstd frame header would outweigh the gain.
MIN_COMPRESS = 64

_json = msgspec.json.Decoder()
_json_out = msgspec.json.Encoder()
_msgpack = msgspec.msgpack.Decoder()
_msgpack_out = msgspec.msgpack.Encoder()


class CodecError(Exception):
    """A stored payload cannot be decompressed with the codec its row names."""


class Codecs:
    """Compressors and decompressors of one database (dictionaries are loaded once: immutable)."""

    def __init__(self, conn: apsw.Connection) -> None:
        self._conn = conn
        self._plain_c = zstandard.ZstdCompressor(level=LEVEL, write_checksum=False)
        self._plain_d = zstandard.ZstdDecompressor()
        self._dicts: dict[int, tuple[zstandard.ZstdCompressor, zstandard.ZstdDecompressor]] = {}

    def newest_dictionary(self) -> int | None:
        """The id new rows are compressed with (None: plain zstd); asked of the database."""
        newest: int | None = _scalar(self._conn, "SELECT max(id) FROM payload_dictionaries")
        return newest

    def compress(self, data: bytes, dictionary: int | None) -> tuple[int, bytes]:
        """``(codec, stored bytes)`` for one payload; raw when compression does not pay."""
        if len(data) < MIN_COMPRESS:
            return RAW, data
        if dictionary is None:
            packed = self._plain_c.compress(data)
            codec = ZSTD
        else:
            packed = self._pair(dictionary)[0].compress(data)
            codec = dictionary
        if len(packed) >= len(data):
            return RAW, data
        return codec, packed

    def decompress(self, codec: int, stored: bytes) -> bytes:
        """The uncompressed payload of a row; raises :class:`CodecError` if it cannot be."""
        if codec == RAW:
            return stored
        try:
            if codec == ZSTD:
                return self._plain_d.decompress(stored)
            if codec >= FIRST_DICTIONARY:
                return self._pair(codec)[1].decompress(stored)
        except zstandard.ZstdError as exc:
            raise CodecError(f"cannot decompress (codec {codec}): {exc}") from exc
        raise CodecError(f"unknown codec {codec}")

    def _pair(self, dictionary: int) -> tuple[zstandard.ZstdCompressor, zstandard.ZstdDecompressor]:
        pair = self._dicts.get(dictionary)
        if pair is None:
            row = self._conn.execute(
                "SELECT data FROM payload_dictionaries WHERE id = ?", (dictionary,)
            ).fetchone()
            if row is None or not isinstance(row[0], bytes):
                raise CodecError(f"dictionary {dictionary} is missing")
            try:
                zdict = zstandard.ZstdCompressionDict(row[0])
                pair = (
                    zstandard.ZstdCompressor(level=LEVEL, dict_data=zdict, write_checksum=False),
                    zstandard.ZstdDecompressor(dict_data=zdict),
                )
            except zstandard.ZstdError as exc:
                raise CodecError(f"dictionary {dictionary} is unusable: {exc}") from exc
            self._dicts[dictionary] = pair
        return pair

    def train(self, samples: Iterable[tuple[str, bytes]]) -> int | None:
        """Train a dictionary on skeletons of ``(stream, payload)`` samples and store it.

        Must run inside a write transaction. Returns the new id, or None when the samples
        are too few or too alike to train on (the caller simply keeps plain zstd).
        """
        pairs = list(samples)
        skeletons: list[bytes | bytearray | memoryview] = list(skeletonize(pairs))
        if len(skeletons) < 64:
            return None
        try:
            zdict = zstandard.train_dictionary(DICTIONARY_BYTES, skeletons, level=LEVEL)
        except zstandard.ZstdError:
            return None
        data = zdict.as_bytes()
        newest = _scalar(self._conn, "SELECT max(id) FROM payload_dictionaries")
        new_id = FIRST_DICTIONARY if newest is None else newest + 1
        self._conn.execute(
            "INSERT INTO payload_dictionaries (id, sha256, data) VALUES (?, ?, ?)",
            (new_id, hashlib.sha256(data).digest(), data),
        )
        return new_id


def _scalar(conn: apsw.Connection, sql: str) -> Any:
    row = conn.execute(sql).fetchone()
    return None if row is None else row[0]


def skeletonize(samples: list[tuple[str, bytes]]) -> list[bytes]:
    """Each msgpack payload with only common short strings kept (see the module docstring)."""
    decoded: list[tuple[str, Any]] = []
    for stream, data in samples:
        try:
            value = _msgpack.decode(data)
        except msgspec.DecodeError:
            continue
        decoded.append((stream, _expand(value)))
    streams: dict[str, set[str]] = {}

    def count(value: Any, stream: str) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                count(key, stream)
                count(item, stream)
        elif isinstance(value, list):
            for item in value:
                count(item, stream)
        elif isinstance(value, _Json):
            count(value.value, stream)
        elif isinstance(value, str) and len(value) <= SKELETON_MAX_CHARS:
            streams.setdefault(value, set()).add(stream)

    for stream, value in decoded:
        count(value, stream)
    common = {s for s, seen in streams.items() if len(seen) >= SKELETON_MIN_STREAMS}

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {(k if k in common else ""): strip(v) for k, v in value.items()}
        if isinstance(value, list):
            return [strip(v) for v in value]
        if isinstance(value, str):
            return value if value in common else ""
        if isinstance(value, _Json):
            return _json_out.encode(strip(value.value))
        if isinstance(value, bytes):
            return b""
        return value

    return [_msgpack_out.encode(strip(value)) for _, value in decoded]


class _Json:
    """A bytes field that held JSON (a transcript line): skeletonized inside, stored as bytes."""

    def __init__(self, value: Any) -> None:
        self.value = value


def _expand(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _expand(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v) for v in value]
    if isinstance(value, bytes):
        try:
            return _Json(_json.decode(value))
        except (msgspec.DecodeError, RecursionError):
            return value
    return value
