"""``skillopsctl annotate`` and ``annotations``: a reviewer's verdict beside the derived one."""

from __future__ import annotations

import getpass

import click

from ..annotating import (
    LABELS,
    AnnotationRefused,
    UnknownTarget,
    add_annotation,
    retract_annotation,
)
from ..projections.annotations import list_annotations
from ..projections.session_views import find_session
from ._app import (
    AppContext,
    NotFound,
    UsageFailure,
    cli,
    db_option,
    json_option,
    pass_app,
    team_option,
)
from ._output import echo, emit_json, emit_json_array, table
from ._time import SINCE, stamps, utc_option


@cli.command("annotate")
@db_option
@click.argument("session", required=False, metavar="SESSION")
@click.option("--label", type=click.Choice(LABELS), default=None, help="Your verdict.")
@click.option("--note", default="", help="Why.")
@click.option("--skill", default=None, help="The skill this judges (it must have loaded).")
@click.option("--span", "span_id", default=None, help="The span this judges (in the session).")
@click.option("--author", default=None, help="Who judges (default: the OS user).")
@click.option("--retract", "retract_id", default=None, metavar="ANNOTATION_ID")
@click.option("--reason", default=None, help="Why the annotation is retracted.")
@json_option
@pass_app
def annotate(
    app: AppContext,
    session: str | None,
    label: str | None,
    note: str,
    skill: str | None,
    span_id: str | None,
    author: str | None,
    retract_id: str | None,
    reason: str | None,
    as_json: bool,
) -> None:
    """Label SESSION good|bad|blocked|neutral, or --retract an earlier annotation."""
    who = author or getpass.getuser()
    db = app.db()
    app.caught_up()
    try:
        if retract_id is not None:
            retracted, sid = retract_annotation(db, retract_id, author=who, reason=reason or "")
            if as_json:
                emit_json({"retracted": retracted.annotation_id, "session_id": sid})
            else:
                echo(f"retracted annotation {retracted.annotation_id} on {sid}")
            return
        if session is None or label is None:
            raise UsageFailure("annotate needs SESSION and --label (or --retract ID --reason T)")
        added = add_annotation(
            db, session, label, author=who, note=note, skill=skill, span_id=span_id
        )
    except UnknownTarget as exc:
        raise NotFound(str(exc)) from exc
    except AnnotationRefused as exc:
        raise UsageFailure(str(exc)) from exc
    if as_json:
        emit_json(added)
    else:
        echo(f"annotation {added.annotation_id} on {added.session_id}: {label}")


@cli.command("annotations")
@db_option
@team_option
@click.option("--session", default=None, help="Only this session's annotations.")
@click.option("--skill", default=None, help="Only annotations of this skill or its sessions.")
@click.option("--since", type=SINCE, default=None, help="Recorded since (7d, 12h, or ISO).")
@utc_option
@json_option
@pass_app
def annotations_command(
    app: AppContext,
    session: str | None,
    skill: str | None,
    since: str | None,
    utc: bool,
    as_json: bool,
) -> None:
    """Annotations, newest first; retracted ones are marked, never hidden."""
    db = app.db()
    app.caught_up()
    with db.read() as conn:
        sid = None
        if session is not None:
            found = find_session(conn, session)
            sid = found.session_id if found else session
        rows = list_annotations(conn, session_id=sid, skill=skill, since=since)
    if as_json:
        emit_json_array(rows)
        return
    if not rows:
        scope = [f"session {session}" if session else "", f"skill {skill}" if skill else ""]
        where = " of " + " and ".join(x for x in scope if x) if session or skill else ""
        when = " in that window" if since else ""
        echo(f"no annotations{where}{when} (skillopsctl annotate SESSION --label L adds one)")
        return
    at, zone = stamps([a.at for a in rows], utc)
    table(
        [
            [
                when,
                a.annotation_id[:12],
                a.session_id,
                a.label + (" (retracted)" if a.retracted else ""),
                a.skill or "-",
                a.author,
                (a.note or a.retract_reason or "").replace("\n", " "),
            ]
            for a, when in zip(rows, at, strict=True)
        ],
        [f"recorded ({zone})", "id", "session", "label", "skill", "author", "note"],
        flex=6,
        text=(4, 5, 6),
    )
