"""Printing: JSON for scripts, aligned text for people."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import click
import msgspec

_json = msgspec.json.Encoder()


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


def table(rows: list[list[str]], headers: list[str]) -> None:
    """Print rows as left-aligned columns under ``headers``."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    for row in [headers, *rows]:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
