"""``skillopsctl annotate`` and ``annotations``: a reviewer's verdict beside the derived one."""

from __future__ import annotations

import getpass
import uuid

import click

from ..events import EventLog, LogError, NewEvent
from ..events.types import AnnotationAdded, AnnotationRetracted
from ..projections.annotations import find_annotation, list_annotations
from ..projections.session_views import find_session, spans_of
from ._app import AppContext, NotFound, UsageFailure, cli, db_option, json_option, pass_app
from ._output import emit_json, emit_json_array, table
from ._time import SINCE, stamps, utc_option

LABELS = ("good", "bad", "blocked", "neutral")


def annotation_stream(session_id: str) -> str:
    """The stream of a session's annotations (apart from its derived events)."""
    return f"annotation:{session_id}"


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
    if retract_id is not None:
        if not reason or not reason.strip():
            raise UsageFailure("--retract needs --reason")
        with db.read() as conn:
            found = find_annotation(conn, retract_id)
        if found is None:
            raise NotFound(f"unknown annotation {retract_id!r} (see skillopsctl annotations)")
        if found.retracted:
            raise NotFound(f"annotation {found.annotation_id} is already retracted")
        event = AnnotationRetracted(annotation_id=found.annotation_id, author=who, reason=reason)
        _append(app, annotation_stream(found.session_id), event)
        if as_json:
            emit_json({"retracted": found.annotation_id, "session_id": found.session_id})
        else:
            click.echo(f"retracted annotation {found.annotation_id} on {found.session_id}")
        return
    if session is None or label is None:
        raise UsageFailure("annotate needs SESSION and --label (or --retract ID --reason T)")
    with db.read() as conn:
        found_session = find_session(conn, session)
        if found_session is None:
            raise NotFound(f"unknown session {session!r} (see skillopsctl sessions)")
        sid = found_session.session_id
        if skill is not None and skill not in found_session.skills:
            loaded = ", ".join(found_session.skills) or "none"
            raise NotFound(f"session {sid} did not load skill {skill!r} (loaded: {loaded})")
        if span_id is not None:
            ids = [s.span_id for s in spans_of(conn, sid)]
            matches = [i for i in ids if i == span_id] or [i for i in ids if i.startswith(span_id)]
            if len(matches) != 1:
                raise NotFound(f"span {span_id!r} is not in session {sid}")
            span_id = matches[0]
    event_added = AnnotationAdded(
        annotation_id=uuid.uuid4().hex,
        session_id=sid,
        label=label,  # type: ignore[arg-type]
        note=note,
        author=who,
        skill=skill,
        span_id=span_id,
    )
    _append(app, annotation_stream(sid), event_added)
    if as_json:
        emit_json(event_added)
    else:
        click.echo(f"annotation {event_added.annotation_id} on {sid}: {label}")


def _append(app: AppContext, stream: str, event: AnnotationAdded | AnnotationRetracted) -> None:
    try:
        EventLog(app.db()).append([NewEvent(stream, event)])
        app.caught_up()
    except LogError as exc:
        raise UsageFailure(f"cannot record the annotation: {exc}") from exc


@cli.command("annotations")
@db_option
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
        click.echo(f"no annotations{where}{when} (skillopsctl annotate SESSION --label L adds one)")
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
