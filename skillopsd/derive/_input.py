"""What the deriver reads: the captured lines of one session's files, as JSON records."""

from __future__ import annotations

import json
from typing import Any

import msgspec

_decoder = msgspec.json.Decoder()
_splitter = json.JSONDecoder()
_encoder = msgspec.json.Encoder()


class SourceLines(msgspec.Struct, frozen=True):
    """The captured lines of one transcript file, in file order."""

    source_id: str
    path: str
    # The native id of the thread the file holds (a Codex child thread's own id), if known.
    session: str
    parent_session: str
    lines: list[tuple[int, bytes]]


class Record(msgspec.Struct, frozen=True):
    """One JSON record of a transcript and where it was read."""

    source_id: str
    offset: int
    index: int  # position of the record within its line (lines may hold several)
    value: dict[str, Any]


class Unreadable(msgspec.Struct, frozen=True):
    """A line (or its tail) that is not JSON at all."""

    source_id: str
    offset: int
    message: str


def records(source: SourceLines) -> tuple[list[Record], list[Unreadable]]:
    """Decode every line; a line holding several records run together yields each of them."""
    out: list[Record] = []
    bad: list[Unreadable] = []
    for offset, line in source.lines:
        try:
            value = _decoder.decode(line)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            if not line.strip():
                continue  # a blank line (tested here: strip() copies every line)
            # Not JSON, invalid UTF-8 inside a string, or nested too deep: read leniently.
            values, error = _split(line)
            for i, v in enumerate(values):
                if isinstance(v, dict):
                    out.append(Record(source.source_id, offset, i, v))
            if error:
                bad.append(Unreadable(source.source_id, offset, error))
            continue
        if isinstance(value, dict):
            out.append(Record(source.source_id, offset, 0, value))
    return out, bad


def _split(line: bytes) -> tuple[list[Any], str | None]:
    """Read a line as a sequence of JSON values (``{…}{…}``); report what cannot be read."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        text = line.decode("utf-8", "replace")
        error: str | None = f"invalid UTF-8 at byte {exc.start}"
    else:
        error = None
    values: list[Any] = []
    pos = 0
    while pos < len(text):
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            break
        start = pos
        try:
            value, pos = _splitter.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            return values, f"not JSON from character {pos}: {exc.msg}"
        except ValueError as exc:  # JSON Python will not read: an integer of 4,300 digits or more
            return values, f"JSON value at character {pos} cannot be read: {str(exc).split(';')[0]}"
        except RecursionError:
            return values, f"JSON nested too deep from character {pos}"
        try:
            _encoder.encode(value)  # a lone surrogate (``"\\ud800"``) could never be stored
        except (msgspec.EncodeError, UnicodeEncodeError, RecursionError) as exc:
            return values, f"JSON value at character {start} cannot be stored: {exc}"
        values.append(value)
    return values, error


def mapping(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one (records drift between versions)."""
    return value if isinstance(value, dict) else {}


# JSON allows integers of any size, the log stores 64-bit ones. A count is taken only when it
# is exact in every JSON reader (n < 2**53): nothing real comes near, and sums of a session's
# counts stay far inside 64 bits, so one absurd number cannot stop a session being derived.
# A negative number is no count either (it would subtract from a session's totals).
_MAX_COUNT = 2**53


def count(value: Any) -> int | None:
    """``value`` if it is an integer a count can be (not a bool, not negative, not absurd)."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < _MAX_COUNT:
        return value
    return None
