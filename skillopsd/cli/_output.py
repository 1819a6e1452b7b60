"""Printing: JSON for scripts, aligned text for people."""

from __future__ import annotations

import shutil
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

import click
import msgspec

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


def emit_json(obj: Any) -> None:
    """Print one JSON document."""
    click.echo(_json.encode(plain(obj)).decode())


def emit_json_array(items: Iterable[Any]) -> None:
    """Print a JSON array item by item, so a long listing never sits in memory whole."""
    first = True
    click.echo("[", nl=False)
    for item in items:
        click.echo(("" if first else ",") + "\n" + _json.encode(plain(item)).decode(), nl=False)
        first = False
    click.echo("\n]" if not first else "]")


def plural(count: int, noun: str, plural_form: str | None = None) -> str:
    """``1 session``, ``2 sessions``, ``1,024 events``."""
    word = noun if count == 1 else (plural_form or f"{noun}s")
    return f"{count:,} {word}"


def number(value: int | None) -> str:
    """An exact count with thousands separators (``-`` when unknown)."""
    return "-" if value is None else f"{value:,}"


def compact(value: int | None) -> str:
    """A count in at most five characters: ``950``, ``12.3k``, ``4.1M`` (``-`` when unknown)."""
    if value is None:
        return "-"
    if value < 1000:
        return str(value)
    scaled = float(value)
    for unit in ("k", "M", "G", "T"):
        scaled /= 1000
        if round(scaled, 1) < 10:
            return f"{scaled:.1f}{unit}"
        if round(scaled) < 1000:
            return f"{scaled:.0f}{unit}"
    return f"{scaled:.0f}T"


def cells(text: str) -> int:
    """Terminal columns ``text`` takes (wide East Asian characters take two)."""
    if text.isascii():
        return len(text)
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def cut(text: str, width: int) -> str:
    """``text`` in at most ``width`` columns, ending in ``…`` when something was cut."""
    # Every character takes a column or two: a text longer than ``width`` cannot fit, and
    # measuring all of it (a whole tool argument) would be wasted.
    if len(text) <= width and cells(text) <= width:
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
    return "".join(out).rstrip() + ELLIPSIS


def terminal_width() -> int:
    """Columns to fit: the terminal's (or ``$COLUMNS``), else 100 when output is piped."""
    return shutil.get_terminal_size(fallback=(100, 24)).columns


def _pad(text: str, width: int) -> str:
    return text + " " * (width - cells(text))


def table(
    rows: list[list[str]],
    headers: list[str],
    *,
    caps: Mapping[int, int] | None = None,
    flex: int | None = None,
    width: int | None = None,
    min_flex: int = 12,
) -> None:
    """Print rows as left-aligned columns under ``headers``.

    ``caps`` bounds columns (by index; longer values are cut with ``…``). Column ``flex``
    takes what is left of ``width`` after the others (never less than ``min_flex``).
    """
    rows = [[" ".join(c.split()) for c in row] for row in rows]  # one line per row
    for index, cap in (caps or {}).items():
        for row in rows:
            row[index] = cut(row[index], cap)
    widths = [cells(h) for h in headers]
    for row in rows:
        widths = [max(w, cells(c)) for w, c in zip(widths, row, strict=True)]
    if flex is not None:
        total = width or terminal_width()
        others = sum(w for i, w in enumerate(widths) if i != flex) + 2 * (len(widths) - 1)
        room = max(min_flex, total - others)
        widths[flex] = min(widths[flex], room)
        for row in rows:
            row[flex] = cut(row[flex], room)
    for row in [headers, *rows]:
        click.echo("  ".join(_pad(c, w) for c, w in zip(row, widths, strict=True)).rstrip())


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
