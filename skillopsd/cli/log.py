"""``skillopsctl log``: the raw events, for debugging."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import click
import msgspec

from .._params import count_range
from ..events import EVENT_TYPES, EventLog, LogError, RecordedEvent
from ._app import AppContext, UsageFailure, cli, db_option, json_option, pass_app
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
        "payload": None if event.erased else plain(event.payload),
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
    """Print stored events in position order."""
    db = app.db()
    log = EventLog(db)

    def rows() -> Iterator[dict[str, Any]]:
        with db.read():
            for event in log.read(after=start - 1, types=types or None, stream=stream, limit=limit):
                try:
                    yield _row(event)
                except LogError as exc:
                    raise UsageFailure(f"position {event.position}: {exc}") from exc

    if as_json:
        emit_json_array(rows())
        return
    enc = msgspec.json.Encoder()
    for row in rows():
        payload = "(erased)" if row["erased"] else enc.encode(row["payload"]).decode()
        click.echo(
            f"{row['position']:>8}  {row['recorded_at']}  {row['stream']}@{row['stream_version']}"
            f"  {row['type']}  {payload}"
        )
