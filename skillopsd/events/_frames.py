"""Payload frames: the payloads of consecutive events of one stream, compressed together.

A transcript's lines share most of their bytes with their neighbours (keys, ids, paths, the
same tool output quoted twice), which per-row compression cannot see: the corpus' line
payloads compress to 0.38x one by one and to 0.17x in frames of 1 MiB. So the payloads of
one stream's events are stored concatenated in one ``payload_frames`` row, and each event row
keeps a reference (frame id, offset, length) in its ``data`` cell with ``codec = FRAMED``.

Frames never weaken the proof: the chain commits to each event's payload digest, not to
where its bytes live, so verify reads each payload out of its frame and checks it against the
event's hash. A frame belongs to one stream (forgetting a session or a source removes its
frames whole); erasing some events of a frame re-packs the rest into a new frame and deletes
the old one (``secure_delete`` zeroes it). Frame ids are ``AUTOINCREMENT``: never reused, so
a reader's cache of a frame by id can never serve another frame's bytes.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import apsw
import zstandard

from ._compress import MAX_PAYLOAD, RAW, CodecError, Codecs

# Codecs of event rows beyond those of _compress (which are >= 0).
FRAMED = -1  # ``data`` is a frame reference
ERASED = -2  # the payload was erased; ``digest`` keeps what the chain commits to
# Uncompressed bytes per frame: larger frames compress better (0.21x at 64 KiB, 0.19x at
# 256 KiB, 0.17x at 1 MiB on the corpus' lines at level 3) but reading one event decompresses
# its whole frame; 1 MiB decompresses in about a millisecond.
FRAME_TARGET = 1024 * 1024
# A stream's payloads in one batch below this stay one per row (a live line, a decision):
# they are packed later, with their neighbours, by EventLog.pack.
FRAME_MIN = 8 * 1024
# zstd levels: appends (capture's hot path, which must stay within 2x its floor) use level 1;
# packing, in the background, level 3 (1 MiB frames of the corpus' lines: 17.1 MB at level 1,
# 15.6 MB at level 3, in 0.15 s and 0.22 s).
FRAME_LEVEL = 1
PACK_LEVEL = 3
# The most bytes a frame may decompress to: a frame closes at the payload that takes it past
# FRAME_TARGET, and a short tail may join it (split), so it never holds more than
# FRAME_TARGET and two payloads; a header claiming more is corruption, refused unread.
FRAME_LIMIT = FRAME_TARGET + 2 * MAX_PAYLOAD
# Decompressed frames a reader keeps (by bytes): sequential readers touch a few at a time.
_CACHE_BYTES = 32 * 1024 * 1024


class FrameError(CodecError):
    """A frame reference or frame cannot be resolved."""


def encode_ref(frame: int, offset: int, length: int) -> bytes:
    """A frame reference: three unsigned LEB128 varints (7 bytes for a typical line)."""
    return _uvarint(frame) + _uvarint(offset) + _uvarint(length)


def _uvarint(value: int) -> bytes:
    # The short forms first: this runs three times per captured line.
    if value < 0x80:
        return bytes((value,))
    if value < 0x4000:
        return bytes(((value & 0x7F) | 0x80, value >> 7))
    if value < 0x200000:
        return bytes(((value & 0x7F) | 0x80, ((value >> 7) & 0x7F) | 0x80, value >> 14))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_ref(ref: bytes) -> tuple[int, int, int]:
    """``(frame, offset, length)`` of a reference; raises :class:`FrameError` if malformed."""
    values: list[int] = []
    value = shift = 0
    for byte in ref:
        if byte < 0x80:  # a value's last byte (runs for every payload read)
            values.append(value | byte << shift)
            value = shift = 0
            continue
        value |= (byte & 0x7F) << shift
        shift += 7
        if shift > 63:
            break
    if len(values) != 3 or shift or not ref or ref[-1] & 0x80:
        raise FrameError("malformed frame reference")
    return values[0], values[1], values[2]


def split(sizes: Sequence[int], minimum: int = FRAME_MIN) -> list[tuple[int, int]]:
    """Index ranges ``[start, end)`` of consecutive payloads to frame together.

    Only runs of two or more payloads totalling at least ``minimum`` bytes are framed; a
    frame closes once it holds FRAME_TARGET bytes. Payloads outside every range stay one per
    row.
    """
    ranges: list[tuple[int, int]] = []
    if len(sizes) < 2 or sum(sizes) < minimum:
        return ranges
    start = total = 0
    for i, size in enumerate(sizes):
        total += size
        if total >= FRAME_TARGET:
            ranges.append((start, i + 1))
            start, total = i + 1, 0
    if start < len(sizes):
        if ranges and (len(sizes) - start < 2 or total < minimum):
            ranges[-1] = (ranges[-1][0], len(sizes))  # a small tail joins the last frame
        else:
            ranges.append((start, len(sizes)))
    return [(a, b) for a, b in ranges if b - a >= 2]


class Frames:
    """Reading and writing the frames of one connection."""

    def __init__(self, conn: apsw.Connection, codecs: Codecs) -> None:
        self._conn = conn
        self._codecs = codecs
        self._compressors: dict[tuple[int | None, int], zstandard.ZstdCompressor] = {}
        self._cache: OrderedDict[int, bytes] = OrderedDict()
        self._cached = 0
        # The frame the last payload came from: a stream's payloads are read in a row, and
        # most come from the frame before (no cache look-up, no reordering for them).
        self._last: tuple[int, bytes] = (0, b"")

    def frame(self, frame: int, at_least: int = 0) -> bytes:
        """The uncompressed bytes of frame ``frame``, which must hold ``at_least`` bytes.

        Decompression is bounded: a frame whose header claims more than FRAME_LIMIT bytes,
        or fewer than the reference reading it needs, is refused before memory is asked for.
        """
        data = self._cache.get(frame)
        if data is not None:
            self._cache.move_to_end(frame)
            if len(data) < at_least:
                raise FrameError(f"reference beyond the end of frame {frame}")
            return data
        row = self._conn.execute(
            "SELECT codec, data FROM payload_frames WHERE id = ?", (frame,)
        ).fetchone()
        if row is None:
            raise FrameError(f"frame {frame} is missing")
        codec, stored = row
        if not isinstance(codec, int) or not isinstance(stored, bytes):
            raise FrameError(f"frame {frame} is malformed")
        try:
            data = self._codecs.decompress_bounded(codec, stored, FRAME_LIMIT, at_least)
        except CodecError as exc:
            raise FrameError(f"frame {frame}: {exc}") from exc
        if len(data) < at_least:
            raise FrameError(f"reference beyond the end of frame {frame}")
        self._cache[frame] = data
        self._cached += len(data)
        while self._cached > _CACHE_BYTES and len(self._cache) > 1:
            _, dropped = self._cache.popitem(last=False)
            self._cached -= len(dropped)
        return data

    def payload(self, ref: bytes) -> bytes:
        """The payload a reference points at."""
        frame, offset, length = decode_ref(ref)
        end = offset + length
        last, data = self._last
        if frame == last and end <= len(data):
            return data[offset:end]
        if end > FRAME_LIMIT:
            raise FrameError(f"reference beyond the end of frame {frame}")
        data = self.frame(frame, end)
        self._last = (frame, data)
        return data[offset:end]

    def write(
        self,
        stream: str,
        payloads: Sequence[bytes],
        dictionary: int | None,
        level: int = FRAME_LEVEL,
    ) -> list[bytes]:
        """Store ``payloads`` as one frame of ``stream``; their references, in order.

        Runs inside the caller's write transaction.
        """
        return self.write_many([(stream, payloads)], dictionary, level)[0]

    def write_many(
        self,
        frames: Sequence[tuple[str, Sequence[bytes]]],
        dictionary: int | None,
        level: int = FRAME_LEVEL,
    ) -> list[list[bytes]]:
        """Store each ``(stream, payloads)`` as one frame; each frame's references, in order.

        (Compressing a batch's frames in a thread pool was measured slower than one by one:
        a batch holds one to three frames.)
        """
        compressor = self._compressors.get((dictionary, level))
        if compressor is None:
            compressor = self._compressors[(dictionary, level)] = self._codecs.compressor(
                dictionary, level
            )
        joined = [b"".join(payloads) for _, payloads in frames]
        packed = [compressor.compress(data) for data in joined]
        codec = self._codecs.codec_of(dictionary)
        out: list[list[bytes]] = []
        for (stream, payloads), data, squeezed in zip(frames, joined, packed, strict=True):
            stored = (codec, squeezed) if len(squeezed) < len(data) else (RAW, data)
            self._conn.execute(
                "INSERT INTO payload_frames (stream, codec, level, data) VALUES (?, ?, ?, ?)",
                (stream, stored[0], level, stored[1]),
            )
            prefix = _uvarint(self._conn.last_insert_rowid())
            refs = []
            offset = 0
            for payload in payloads:
                length = len(payload)
                refs.append(prefix + _uvarint(offset) + _uvarint(length))
                offset += length
            out.append(refs)
        return out

    def forget(self) -> None:
        """Drop every cached frame (after an erasure: no erased byte stays in memory)."""
        self._cache.clear()
        self._cached = 0
        self._last = (0, b"")
