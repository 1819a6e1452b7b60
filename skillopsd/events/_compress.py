"""Per-row payload compression: zstandard, with a dictionary stored in the database.

Each payload is compressed alone so that one row can be read alone and erased alone. The
``codec`` column says how: ``RAW`` (stored as is), ``ZSTD`` (plain zstd) or an id ``>= 2``
naming a row of ``payload_dictionaries`` (zstd with that dictionary). A dictionary is never
updated or deleted (triggers), so a row compressed with it decompresses forever.

New rows use the dictionary shipped with the package (``payloads.zdict``), copied into the
database the first time it is used: the database stays self-contained and its copy never
changes. It was trained once, offline, on skeletons of the public corpus' payloads (JSON keys,
record types, tool names: strings shared across users, never one session's content; see
tools/payload_dictionary.py, which rebuilds it), so it costs nothing at capture time and
holds nothing a user could need erased. Dictionaries an older version trained per database
stay readable.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path
from typing import Any

import apsw
import zstandard

from .errors import LogError

RAW = 0
ZSTD = 1
FIRST_DICTIONARY = 2
# zstd level, measured on the real corpus (per row, shipped dictionary, 104.7 MB of payloads):
# level 1 stores 41.5 MB, level 3 40.9 MB in 1.7x the time, level 7 37.6 MB in 4x; capture
# speed is the tighter budget.
LEVEL = 1
DICTIONARY_FILE = Path(__file__).with_name("payloads.zdict")
# Payloads smaller than this are stored raw: a zstd frame header would outweigh the gain.
MIN_COMPRESS = 64
# The most bytes one stored payload may decompress to. No payload skillops writes comes
# near it (a line is at most --max-line-bytes, itself at most MAX_PAYLOAD / 16, and a
# document at most 16 times that), so a larger claim is corruption: it is refused before any
# memory is asked for, where zstd would allocate what the frame header says (2^40 bytes:
# MemoryError).
MAX_PAYLOAD = 1024 * 1024 * 1024


@cache
def shipped_dictionary() -> tuple[bytes, bytes]:
    """``(bytes, sha256)`` of the dictionary shipped with the package."""
    data = DICTIONARY_FILE.read_bytes()
    return data, hashlib.sha256(data).digest()


class CodecError(LogError):
    """A stored payload cannot be decompressed with the codec its row names."""


def bounded_decompress(
    dctx: zstandard.ZstdDecompressor, stored: bytes, limit: int, at_least: int = 0
) -> bytes:
    """``stored`` decompressed, never asking for more than ``limit`` bytes of memory.

    zstd allocates what a frame's header claims; a claim beyond ``limit`` (or short of
    ``at_least``, the bytes a reference needs) is refused without decompressing, and a
    frame without a claim is cut off at ``limit``. Raises :class:`CodecError`.
    """
    try:
        claimed = zstandard.frame_content_size(stored)
    except zstandard.ZstdError as exc:
        raise CodecError(f"not a zstd frame: {exc}") from exc
    if claimed > limit:
        raise CodecError(f"its header claims {claimed} bytes, more than the {limit} allowed")
    if 0 <= claimed < at_least:
        raise CodecError(f"its header claims {claimed} bytes, fewer than the {at_least} referenced")
    try:
        # max_output_size only binds a frame without a claim (-1); a claimed size is exact.
        return dctx.decompress(stored, max_output_size=limit if claimed < 0 else 0)
    except zstandard.ZstdError as exc:
        raise CodecError(str(exc)) from exc
    except MemoryError as exc:  # the limit fits no memory this machine has left
        raise CodecError(f"cannot allocate {max(claimed, limit)} bytes") from exc


class Codecs:
    """Compressors and decompressors of one database (dictionaries are loaded once: immutable)."""

    def __init__(self, conn: apsw.Connection) -> None:
        self._conn = conn
        self._plain_c = zstandard.ZstdCompressor(level=LEVEL, write_checksum=False)
        self._plain_d = zstandard.ZstdDecompressor()
        self._dicts: dict[int, tuple[zstandard.ZstdCompressor, zstandard.ZstdDecompressor]] = {}

    def shipped_id(self) -> int:
        """The id of the shipped dictionary in this database, copying it in on first use.

        Must run inside a write transaction: the copy commits (or rolls back) with the
        append that first uses it. Asked of the database each time (one row of a tiny
        table), so a rolled-back copy is never remembered.
        """
        data, sha = shipped_dictionary()
        found: int | None = _scalar(
            self._conn, "SELECT id FROM payload_dictionaries WHERE sha256 = ?", (sha,)
        )
        if found is None:
            newest = _scalar(self._conn, "SELECT max(id) FROM payload_dictionaries")
            found = FIRST_DICTIONARY if newest is None else newest + 1
            self._conn.execute(
                "INSERT INTO payload_dictionaries (id, sha256, data) VALUES (?, ?, ?)",
                (found, sha, data),
            )
        return found

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

    def compressor(self, dictionary: int | None, level: int) -> zstandard.ZstdCompressor:
        """A new compressor of payload frames at ``level``, with dictionary ``dictionary``
        (None: plain zstd).

        Frames carry zstd's content checksum: a damaged byte that still decompresses would
        otherwise be read back as altered text (derived, exported) until ``verify`` ran. Four
        bytes per frame of up to a MiB; frames written before this have none and read as
        before.
        """
        if dictionary is None:
            return zstandard.ZstdCompressor(level=level, write_checksum=True)
        zdict = self._zdict(dictionary)
        return zstandard.ZstdCompressor(level=level, dict_data=zdict, write_checksum=True)

    @staticmethod
    def codec_of(dictionary: int | None) -> int:
        """The codec a payload compressed with ``dictionary`` (None: none) is stored under."""
        return ZSTD if dictionary is None else dictionary

    def decompress(self, codec: int, stored: bytes) -> bytes:
        """The uncompressed payload of a row; raises :class:`CodecError` if it cannot be."""
        return self.decompress_bounded(codec, stored, MAX_PAYLOAD)

    def decompress_bounded(self, codec: int, stored: bytes, limit: int, at_least: int = 0) -> bytes:
        """:meth:`decompress`, refusing a payload larger than ``limit`` or shorter than
        ``at_least`` bytes (see :func:`bounded_decompress`)."""
        if codec == RAW:
            return stored
        if codec == ZSTD:
            dctx = self._plain_d
        elif isinstance(codec, int) and codec >= FIRST_DICTIONARY:
            dctx = self._pair(codec)[1]
        else:
            raise CodecError(f"unknown codec {codec}")
        try:
            return bounded_decompress(dctx, stored, limit, at_least)
        except CodecError as exc:
            raise CodecError(f"cannot decompress (codec {codec}): {exc}") from exc

    def _pair(self, dictionary: int) -> tuple[zstandard.ZstdCompressor, zstandard.ZstdDecompressor]:
        pair = self._dicts.get(dictionary)
        if pair is None:
            zdict = self._zdict(dictionary)
            try:
                pair = (
                    zstandard.ZstdCompressor(level=LEVEL, dict_data=zdict, write_checksum=False),
                    zstandard.ZstdDecompressor(dict_data=zdict),
                )
            except zstandard.ZstdError as exc:
                raise CodecError(f"dictionary {dictionary} is unusable: {exc}") from exc
            self._dicts[dictionary] = pair
        return pair

    def _zdict(self, dictionary: int) -> zstandard.ZstdCompressionDict:
        row = self._conn.execute(
            "SELECT data FROM payload_dictionaries WHERE id = ?", (dictionary,)
        ).fetchone()
        if row is None or not isinstance(row[0], bytes):
            raise CodecError(f"dictionary {dictionary} is missing")
        try:
            return zstandard.ZstdCompressionDict(row[0])
        except zstandard.ZstdError as exc:
            raise CodecError(f"dictionary {dictionary} is unusable: {exc}") from exc


def _scalar(conn: apsw.Connection, sql: str, args: tuple[object, ...] = ()) -> Any:
    row = conn.execute(sql, args).fetchone()
    return None if row is None else row[0]
