"""``skillopsctl status``: where the database is and how far each projection has got."""

from __future__ import annotations

import click
import msgspec

from ._app import AppContext, cli, db_option, json_option, pass_app
from ._output import emit_json, table


class ProjectionStatus(msgspec.Struct):
    checkpoint: int
    lag: int
    version: int


class Status(msgspec.Struct):
    db: str
    size_bytes: int
    events: int
    head: int
    projections: dict[str, ProjectionStatus]


def _human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


@cli.command()
@db_option
@json_option
@pass_app
def status(app: AppContext, as_json: bool) -> None:
    """Database location and size, event count, and each projection's checkpoint and lag.

    Status does not catch projections up, so the lag shows what a running daemon has not
    yet folded.
    """
    db = app.db()
    states = app.engine().states()
    with db.read() as conn:
        head = conn.execute("SELECT max(position) FROM events").fetchone()[0] or 0
    report = Status(
        db=str(db.path),
        size_bytes=db.size_bytes(),
        # Positions are gapless from 1 (``verify`` proves it), so the head is the count.
        events=head,
        head=head,
        projections={
            s.name: ProjectionStatus(checkpoint=s.checkpoint, lag=s.lag, version=s.version)
            for s in states
        },
    )
    if as_json:
        emit_json(report)
        return
    click.echo(f"database  {report.db} ({_human_size(report.size_bytes)})")
    click.echo(f"events    {report.events} (head {report.head})")
    click.echo()
    table(
        [[n, str(p.checkpoint), str(p.lag)] for n, p in report.projections.items()],
        ["projection", "checkpoint", "lag"],
    )
