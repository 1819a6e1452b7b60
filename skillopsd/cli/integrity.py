"""``skillopsctl verify`` and ``rebuild``: prove the log intact and the projections replayable."""

from __future__ import annotations

import sys

import click
import msgspec

from ..events import verify_chain
from ._app import AppContext, cli, db_option, json_option, pass_app, team_option
from ._output import echo, emit_json, plural


def _anchor(value: str) -> tuple[int, bytes]:
    position, sep, digest = value.partition(":")
    try:
        if not sep or not position.isdigit() or int(position) < 1:
            raise ValueError
        raw = bytes.fromhex(digest)
        if len(raw) != 32:
            raise ValueError
    except ValueError:
        raise click.BadParameter(
            f"{value!r}: expected POSITION:HASH (a position >= 1 and a 64-digit hex hash)"
        ) from None
    return int(position), raw


class _Anchor(click.ParamType):
    name = "POSITION:HASH"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> object:
        if isinstance(value, tuple):
            return value
        try:
            return _anchor(str(value))
        except click.BadParameter as exc:
            self.fail(exc.message, param, ctx)


@cli.command()
@db_option
@click.option(
    "--anchor",
    "anchors",
    multiple=True,
    type=_Anchor(),
    help="A head hash kept elsewhere (from verify --json): the event at POSITION must still"
    " have HASH, so nothing up to it changed (repeatable).",
)
@click.option(
    "--quick",
    is_flag=True,
    help="Check the file's structure with SQLite's quick_check instead of integrity_check"
    " (skips matching each index entry against its row; for very large databases).",
)
@json_option
@pass_app
def verify(
    app: AppContext, anchors: tuple[tuple[int, bytes], ...], quick: bool, as_json: bool
) -> None:
    """Prove the whole log; exit 0 if intact, 1 with the first bad position and why.

    Checks the file's structure (SQLite's integrity_check; quick_check with --quick), then
    the hash chain, every payload against its digest, frames, dictionaries, the head anchor
    and the protective triggers.
    """
    given: dict[int, bytes] = {}
    for position, digest in anchors:
        if given.setdefault(position, digest) != digest:
            raise click.BadParameter(f"two different hashes for position {position}")
    report = verify_chain(app.db(), given, quick=quick)
    if as_json:
        emit_json(report)
    elif report.ok:
        echo(
            f"ok: {report.events} events, chain intact (head hash {report.head_hash}),"
            f" file structure sound ({report.structure})"
        )
    else:
        where = "" if report.bad_position is None else f"position {report.bad_position}: "
        echo(
            f"{where}{report.reason} ({report.events} events before it are intact)",
            err=True,
        )
    if not report.ok:
        sys.exit(1)


class RebuildReport(msgspec.Struct):
    events_replayed: int  # the log's length, once, however many projections read each event
    projections: int
    digest: str
    check: bool = False
    digest_before: str | None = None
    digest_second: str | None = None
    match: bool | None = None


@cli.command()
@db_option
@team_option
@click.option(
    "--check",
    is_flag=True,
    help="Rebuild twice; exit 1 unless both digests equal the incremental one.",
)
@json_option
@pass_app
def rebuild(app: AppContext, check: bool, as_json: bool) -> None:
    """Drop every projection and replay the log from position 0."""
    engine = app.caught_up()
    before = engine.digest() if check else None
    engine.rebuild()
    with engine.db.read():
        replayed = engine.log.head()
    first = engine.digest()
    count = len(engine.projections)
    report = RebuildReport(events_replayed=replayed, projections=count, digest=first)
    if check:
        engine.rebuild()
        second = engine.digest()
        report = RebuildReport(
            events_replayed=replayed,
            projections=count,
            digest=first,
            check=True,
            digest_before=before,
            digest_second=second,
            match=before == first == second,
        )
    if as_json:
        emit_json(report)
    else:
        echo(f"rebuilt {plural(count, 'projection')} from {plural(replayed, 'event')} replayed")
        echo(f"digest {first}")
        if check:
            echo(f"incremental {before}")
            echo(f"second      {report.digest_second}")
            echo(
                "check: digests match" if report.match else "check: DIGESTS DIFFER",
                err=not report.match,
            )
    if check and not report.match:
        sys.exit(1)
