"""``skillopsctl log``: the raw events, for debugging."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import click
import msgspec

from .._params import count_range
from ..events import EVENT_TYPES, CorruptEventError, EventLog, LogError, RecordedEvent
from ._app import AppContext, cli, db_option, json_option, pass_app
from ._output import emit_json_array, plain


def _row(event: RecordedEvent) -> dict[str, Any]:
    return {
        "position": event.position,
        "event_id": event.event_id,
        "stream": event.stream,
        "stream_version": event.stream_version,
        "type": event.type,
        "schema": event.schema,
        "recorded_at": event.recorded_at,
        "hash": event.hash.hex(),
        # An erased payload (forget, retention) is gone; its PayloadsErased says why.
        "erased": event.erased,
        # A damaged one (row, frame or dictionary) cannot be read back: why, not the payload.
        "unreadable": event.fault,
        "payload": None if event.erased or event.fault is not None else plain(event.payload),
    }


@cli.command("log")
@db_option
@click.option(
    "--from",
    "start",
    type=count_range(),
    default=1,
    show_default=True,
    help="First position to show.",
)
@click.option(
    "--type",
    "types",
    multiple=True,
    type=click.Choice(sorted(EVENT_TYPES)),
    help="Only events of this type (repeatable).",
)
@click.option("--stream", default=None, help="Only events of this stream.")
@click.option("--limit", type=count_range(), default=None, help="At most N events.")
@json_option
@pass_app
def log_command(
    app: AppContext,
    start: int,
    types: tuple[str, ...],
    stream: str | None,
    limit: int | None,
    as_json: bool,
) -> None:
    """Print stored events in position order.

    An event whose stored payload cannot be read back (a damaged frame, which carries a
    checksum, or a row or dictionary that no longer decodes) is listed as unreadable, with
    why, and the command exits 1 after the rest. Only verify proves each payload against
    the chain: a byte changed in a payload stored alone, uncompressed, reads back changed.
    """
    db = app.db()
    log = EventLog(db)
    unreadable: list[int] = []

    def rows() -> Iterator[dict[str, Any]]:
        with db.read():
            for event in log.read(after=start - 1, types=types or None, stream=stream, limit=limit):
                try:
                    row = _row(event)
                except LogError as exc:  # stored bytes that decompress but do not decode
                    why = exc.reason if isinstance(exc, CorruptEventError) else str(exc)
                    row = _row(msgspec.structs.replace(event, data=b"", fault=why))
                if row["unreadable"] is not None:
                    unreadable.append(event.position)
                yield row

    if as_json:
        emit_json_array(rows())
    else:
        enc = msgspec.json.Encoder()
        for row in rows():
            if row["erased"]:
                payload = "(erased)"
            elif row["unreadable"] is not None:
                payload = f"(unreadable: {row['unreadable']})"
            else:
                payload = enc.encode(row["payload"]).decode()
            click.echo(
                f"{row['position']:>8}  {row['recorded_at']}"
                f"  {row['stream']}@{row['stream_version']}  {row['type']}  {payload}"
            )
    if unreadable:
        click.echo(
            f"skillopsctl: {len(unreadable)} events unreadable (first at position"
            f" {unreadable[0]}); skillopsctl verify names the first fault",
            err=True,
        )
        raise click.exceptions.Exit(1)
