"""Printing: JSON for scripts, aligned text for people."""

from __future__ import annotations

import itertools
import re
import shutil
import sys
import textwrap
import unicodedata
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from contextlib import suppress
from functools import lru_cache
from typing import IO, Any

import click
import msgspec

from .._terminal import safe

_json = msgspec.json.Encoder()
ELLIPSIS = "…"


def _decode_bytes(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict):
        return {k: _decode_bytes(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode_bytes(v) for v in value]
    return value


def plain(obj: Any) -> Any:
    """``obj`` as JSON-ready builtins with bytes shown as UTF-8 text."""
    return _decode_bytes(msgspec.to_builtins(obj, builtin_types=(bytes,)))


def echo(text: str = "", *, err: bool = False, nl: bool = True) -> None:
    """Print a line for people: every human line goes through here (or :func:`table`,
    :func:`say`), so nothing it quotes can drive the terminal (:func:`safe`)."""
    click.echo(safe(text), err=err, nl=nl)


def _writes(stream: IO[str], text: str) -> bool:
    """Whether ``stream``'s encoding can write ``text`` (Latin-1 or cp1252 cannot write ✓)."""
    return _encodes(getattr(stream, "encoding", None) or "utf-8", text)


@lru_cache(maxsize=64)
def _encodes(encoding: str, text: str) -> bool:
    try:
        text.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def fit_encoding() -> None:
    """On a terminal whose encoding cannot write every character (a Latin-1 or EUC locale,
    Windows' cp1252 when output is redirected), show ``?`` for those it cannot instead of
    dying mid-table (review K1); JSON is written as UTF-8 bytes whatever the encoding."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None and not _writes(stream, "✓…→"):
            with suppress(ValueError):
                reconfigure(errors="replace")


def glyph(fancy: str, plain: str) -> str:
    """``fancy`` where standard output can write it, else ``plain`` (its ASCII stand-in)."""
    return fancy if _writes(sys.stdout, fancy) else plain


def emit_json(obj: Any) -> None:
    """Print one JSON document, on one line (so also a line of JSON Lines). As bytes: JSON is
    UTF-8 (RFC 8259), whatever the terminal's encoding."""
    click.echo(_json.encode(plain(obj)))


def emit_json_array(items: Iterable[Any]) -> None:
    """Print a JSON array item by item, so a long listing never sits in memory whole."""
    first = True
    try:
        click.echo("[", nl=False)
        for item in items:
            click.echo((b"" if first else b",") + b"\n" + _json.encode(plain(item)), nl=False)
            first = False
        click.echo("\n]" if not first else "]")
    finally:
        # A reader that stops early (``| head``) ends the listing here: a generator reading
        # inside a transaction ends it now, while the database is still open.
        close = getattr(items, "close", None)
        if close is not None:
            close()


def plural(count: int, noun: str, plural_form: str | None = None) -> str:
    """``1 session``, ``2 sessions``, ``1,024 events``."""
    word = noun if count == 1 else (plural_form or f"{noun}s")
    return f"{count:,} {word}"


def number(value: int | None) -> str:
    """An exact count with thousands separators (``-`` when unknown)."""
    return "-" if value is None else f"{value:,}"


def compact(value: float | None) -> str:
    """The one count format, at most five characters: ``950``, ``12.3k``, ``866k``, ``24.5M``
    (one decimal below 100 of a unit; ``-`` when unknown)."""
    if value is None:
        return "-"
    if value < 999.5:
        return f"{value:.0f}"
    scaled = float(value)
    for unit in ("k", "M", "G", "T"):
        scaled /= 1000
        if round(scaled, 1) < 100:
            return f"{scaled:.1f}{unit}"
        if round(scaled) < 1000:
            return f"{scaled:.0f}{unit}"
    return f"{scaled:.0f}T"


def duration(ms: float | None) -> str:
    """The one duration format: ``12.0s``, ``4.5m``, ``50.2h`` (``-`` when unknown)."""
    if ms is None:
        return "-"
    seconds = ms / 1000
    if round(seconds, 1) < 60:
        return f"{seconds:.1f}s"
    if round(seconds / 60, 1) < 60:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


def mean_of(value: float | None, n: int, unit: str = "") -> str:
    """A mean with how many reported it (missing is missing, never 0): ``24.5M (n=3)``."""
    if value is None:
        return "-"
    return f"{duration(value) if unit == 'ms' else compact(value)} (n={n})"


def cells(text: str) -> int:
    """Terminal columns ``text`` takes (wide East Asian characters take two)."""
    if text.isascii():
        return len(text)
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def cut(text: str, width: int) -> str:
    """``text`` made :func:`safe` in at most ``width`` columns, ending in ``…`` when something
    was cut (an escape shown for a control character counts at its printed width)."""
    # Every character takes a column or two: a text longer than ``width`` cannot fit, and
    # making safe or measuring all of it (a whole tool argument) would be wasted. (Removing
    # CSI sequences shortens; a head of 4 × width + 64 leaves room for plenty.)
    limit = 4 * max(width, 0) + 64
    whole = len(text) <= limit
    text = safe(text if whole else text[:limit])
    if whole and len(text) <= width and cells(text) <= width:
        return text
    if width <= 0:
        return ""
    out: list[str] = []
    used = 0
    for char in text:
        w = cells(char)
        if used + w > width - 1:
            break
        out.append(char)
        used += w
    kept = "".join(out)
    following = text[len(kept) : len(kept) + 1]
    if kept[-1:].isdigit() and (following.isalnum() or following in (".", ",", "%")):
        # Cut inside a number: ``(n=41)`` must not read ``(n=4…``, nor ``12.3k`` ``12.3…``.
        kept = _PARTIAL_NUMBER.sub("", kept)
    return kept.rstrip() + glyph(ELLIPSIS, "~")


_PARTIAL_NUMBER = re.compile(r"[$+\-]?[0-9.,]*\Z")


def squeeze(head: str, middle: str, tail: str, width: int) -> str:
    """``head + middle + tail`` in at most ``width`` columns: the middle is cut first, then
    the head; the tail (a short mark) is kept whole."""
    head, middle, tail = cut(head, width), cut(middle, width), safe(tail)
    room = width - cells(tail)
    if cells(head) + cells(middle) <= room:
        return head + middle + tail
    if cells(head) + 4 > room:  # not even a few characters of the middle: it goes
        return cut(head, room) + tail
    return head + cut(middle, room - cells(head)) + tail


def terminal_width() -> int:
    """Columns to fit: ``$COLUMNS`` or the terminal's, 100 when output is piped; never < 80."""
    return max(MIN_WIDTH, shutil.get_terminal_size(fallback=(100, 24)).columns)


MIN_WIDTH = 80
_EMPTY = ("", "-")


def _pad(text: str, width: int) -> str:
    return text + " " * (width - cells(text))


def fit(widths: list[int], floors: list[int], room: int, first: int | None = None) -> list[int]:
    """Column widths summing to at most ``room``: ``first`` gives way first, down to its
    floor, then always the widest column (ties share the cut), each down to its floor."""
    out = list(widths)
    excess = sum(out) - room
    if excess <= 0:
        return out
    if first is not None and out[first] > floors[first]:
        take = min(excess, out[first] - floors[first])
        out[first] -= take
        excess -= take
    while excess > 0:
        candidates = [i for i, w in enumerate(out) if w > floors[i]]
        if not candidates:
            break
        widest = max(candidates, key=lambda i: (out[i], i))
        others = [out[i] for i in candidates if i != widest]
        step = max(1, out[widest] - max(others, default=floors[widest]))
        take = min(excess, step, out[widest] - floors[widest])
        out[widest] -= take
        excess -= take
    return out


def layout(
    rows: list[list[str]],
    headers: list[str],
    *,
    total: int,
    text: Collection[int] | None = None,
    flex: int | None = None,
    min_flex: int = 12,
    key: int | None = None,
    optional: Sequence[int] = (),
) -> tuple[list[int], list[int], int]:
    """Which columns to show, their widths and the gap, so a line fits ``total`` columns.

    In order, until it fits: a column with no value in any row is left out; the ``text``
    columns (default: ``flex``, else all but ``key``) give way (``flex`` first, down to
    ``min_flex``; the others down to 10); the gap narrows to one space; the ``optional``
    columns are left out, the last first; text columns go down to 4; then ``key`` (what
    tells rows apart) down to the width at which its values stay distinct
    (:func:`distinct_width`); then any column but ``key`` down to its header (at least 6);
    then any column down to 3. Numbers and times are cut last.
    """
    natural = [cells(h) for h in headers]
    for row in rows:
        natural = [max(w, cells(c)) for w, c in zip(natural, row, strict=True)]
    shown = list(range(len(headers)))
    if text is None:
        text = range(len(headers)) if flex is None else (flex,)
    texts = set(text) - {key}
    if flex is not None:
        texts.add(flex)
    gap = 2

    def width(ws: list[int]) -> int:
        return sum(ws[i] for i in shown) + gap * (len(shown) - 1)

    def shrink(ws: list[int], floor: Callable[[int], int], first: int | None = None) -> list[int]:
        sub = [ws[i] for i in shown]
        floors = [min(ws[i], floor(i)) for i in shown]
        at = shown.index(first) if first is not None and first in shown else None
        fitted = fit(sub, floors, total - gap * (len(shown) - 1), at)
        out = list(ws)
        for i, w in zip(shown, fitted, strict=True):
            out[i] = w
        return out

    ws = list(natural)
    if width(ws) <= total:
        return shown, ws, gap
    empty = [i for i in shown if rows and all(r[i] in _EMPTY for r in rows)]
    if len(empty) < len(shown):
        shown = [i for i in shown if i not in empty]

    def text_floor(i: int) -> int:
        if i not in texts:
            return natural[i]
        return min_flex if i == flex else 10

    ws = shrink(ws, text_floor, flex)
    if width(ws) > total:
        gap = 1
    # An optional column goes before a text column is cut below its floor; the others then
    # start again from their natural widths, into the room it leaves.
    for i in reversed(optional):
        if width(ws) <= total or len(shown) == 1:
            break
        if i in shown:
            shown = [j for j in shown if j != i]
            gap = 2
            ws = shrink(list(natural), text_floor, flex)
            if width(ws) > total:
                gap = 1
    if width(ws) > total:
        ws = shrink(ws, lambda i: 4 if i in texts else natural[i])
    if width(ws) > total and key is not None:
        floor = max(distinct_width([r[key] for r in rows]), min(6, natural[key]))
        ws = shrink(ws, lambda i: floor if i == key else ws[i])
    if width(ws) > total:
        ws = shrink(ws, lambda i: ws[i] if i == key else max(6, cells(headers[i])))
    if width(ws) > total:
        ws = shrink(ws, lambda i: 3)
    return shown, ws, gap


def _shared(a: str, b: str) -> int:
    """How many leading characters ``a`` and ``b`` share."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def unique_prefix(ids: Iterable[str], at_least: int) -> int:
    """How many leading characters tell ``ids`` apart (at least ``at_least``), as git shortens
    hashes: a listing shows each id as ``id[:n]`` and no two rows read alike."""
    unique = sorted(set(ids))
    shared = max((_shared(a, b) for a, b in itertools.pairwise(unique)), default=0)
    return max(at_least, shared + 1)


def distinct_width(values: Iterable[str]) -> int:
    """The fewest columns at which :func:`cut` leaves different ``values`` different."""
    unique = sorted(set(values))
    if len(unique) < 2:
        return 1
    widest = max(cells(v) for v in unique)
    # Two values differ at the first character they do not share: below that they cannot.
    shared = max(_shared(a, b) for a, b in itertools.pairwise(unique))
    for width in range(max(1, shared + 1), widest + 1):
        if len({cut(v, width) for v in unique}) == len(unique):
            return width
    return widest


def say(text: str, *, indent: int = 2, width: int | None = None) -> None:
    """Print prose wrapped to the terminal, continuation lines indented."""
    total = width or terminal_width()
    shown = safe(text)

    def wrap(characters: int) -> list[str]:
        return textwrap.wrap(
            shown,
            characters,
            subsequent_indent=" " * indent,
            break_long_words=True,
            break_on_hyphens=False,
        )

    lines = wrap(total)
    if any(cells(line) > total for line in lines):
        # Wide characters (中) take two columns: wrap at fewer characters, the most that fit.
        fits, over = max(indent + 1, total // 2), total
        while over - fits > 1:
            middle = (fits + over) // 2
            if all(cells(line) <= total for line in wrap(middle)):
                fits = middle
            else:
                over = middle
        lines = wrap(fits)
    for line in lines or [""]:
        click.echo(cut(line, total))  # cut makes it safe


def table(
    rows: list[list[str]],
    headers: list[str],
    *,
    caps: Mapping[int, int] | None = None,
    flex: int | None = None,
    text: Collection[int] | None = None,
    width: int | None = None,
    min_flex: int = 12,
    key: int | None = None,
    optional: Sequence[int] = (),
) -> None:
    """Print rows as left-aligned columns under ``headers``, every line within ``width``
    (default :func:`terminal_width`); cut cells end in ``…`` (see :func:`layout`: ``key``
    is cut last and never into two equal labels; ``optional`` columns are left out before
    numbers and times are cut).

    ``caps`` bounds columns by index whatever the width.
    """
    total = width or terminal_width()
    # One line per row, nothing in it the terminal acts on; long cells are cut (safely) first.
    rows = [[" ".join(cut(c, total).split()) for c in row] for row in rows]
    headers = [" ".join(safe(h).split()) for h in headers]
    for index, cap in (caps or {}).items():
        for row in rows:
            row[index] = cut(row[index], cap)
    shown, widths, gap = layout(
        rows,
        headers,
        total=total,
        text=text,
        flex=flex,
        min_flex=min_flex,
        key=key,
        optional=optional,
    )
    sep = " " * gap
    for row in [headers, *rows]:
        line = sep.join(_pad(cut(row[i], widths[i]), widths[i]) for i in shown)
        click.echo(line.rstrip())  # every cell went through cut: safe


def usd(value: float | None, *, unpriced: int = 0) -> str:
    """A cost in dollars and cents (``-`` when nothing was priced; ``+`` when some was not)."""
    if value is None:
        return "-"
    text = f"${value:,.2f}" if value >= 0.005 or value == 0 else f"${value:.4f}"
    return text + ("+" if unpriced else "")


def compact_usd(value: float | None, *, unpriced: int = 0) -> str:
    """A cost in at most six characters: ``$0.42``, ``$6.09``, ``$101``, ``$1.2k`` (``-``: none)."""
    if value is None:
        return "-"
    mark = "+" if unpriced else ""
    if value < 10:
        return f"${value:.2f}{mark}"
    if round(value) < 1000:
        return f"${value:.0f}{mark}"
    return "$" + compact(round(value)) + mark
