"""Recording a person's judgement: the one code path behind ``skillopsctl annotate`` and the
dashboard's annotate form, so both check the same things and append the same events."""

from __future__ import annotations

import uuid

from .events import Database, EventLog, LogError, NewEvent
from .events.types import AnnotationAdded, AnnotationRetracted
from .projections import engine_for
from .projections.annotations import find_annotation
from .projections.session_views import find_session, spans_of

LABELS = ("good", "bad", "blocked", "neutral")


class AnnotationRefused(Exception):
    """Nothing was appended; the message says why in one line."""


class UnknownTarget(AnnotationRefused):
    """The session, skill, span or annotation named does not exist (or is not in scope)."""


def annotation_stream(session_id: str) -> str:
    """The stream of a session's annotations (apart from its derived events)."""
    return f"annotation:{session_id}"


def add_annotation(
    db: Database,
    session: str,
    label: str,
    *,
    author: str,
    note: str = "",
    skill: str | None = None,
    span_id: str | None = None,
) -> AnnotationAdded:
    """Append an ``AnnotationAdded`` for ``session`` (our id, the agent's, or a unique prefix)."""
    if label not in LABELS:
        raise AnnotationRefused(f"label must be one of {', '.join(LABELS)}, not {label!r}")
    with db.read() as conn:
        found = find_session(conn, session)
        if found is None:
            raise UnknownTarget(f"unknown session {session!r} (see skillopsctl sessions)")
        sid = found.session_id
        if skill is not None and skill not in found.skills:
            loaded = ", ".join(found.skills) or "none"
            raise UnknownTarget(f"session {sid} did not load skill {skill!r} (loaded: {loaded})")
        if span_id is not None:
            ids = [s.span_id for s in spans_of(conn, sid)]
            matches = [i for i in ids if i == span_id] or [i for i in ids if i.startswith(span_id)]
            if len(matches) != 1:
                raise UnknownTarget(f"span {span_id!r} is not in session {sid}")
            span_id = matches[0]
    event = AnnotationAdded(
        annotation_id=uuid.uuid4().hex,
        session_id=sid,
        label=label,  # type: ignore[arg-type]
        note=note,
        author=author,
        skill=skill,
        span_id=span_id,
    )
    _append(db, annotation_stream(sid), event)
    return event


def retract_annotation(
    db: Database, annotation_id: str, *, author: str, reason: str
) -> tuple[AnnotationRetracted, str]:
    """Append an ``AnnotationRetracted`` withdrawing an earlier annotation (which stays in the
    log); returns it and the session the annotation was on."""
    if not reason.strip():
        raise AnnotationRefused("--retract needs --reason")
    with db.read() as conn:
        found = find_annotation(conn, annotation_id)
    if found is None:
        raise UnknownTarget(f"unknown annotation {annotation_id!r} (see skillopsctl annotations)")
    if found.retracted:
        raise UnknownTarget(f"annotation {found.annotation_id} is already retracted")
    event = AnnotationRetracted(annotation_id=found.annotation_id, author=author, reason=reason)
    _append(db, annotation_stream(found.session_id), event)
    return event, found.session_id


def _append(db: Database, stream: str, event: AnnotationAdded | AnnotationRetracted) -> None:
    try:
        EventLog(db).append([NewEvent(stream, event)])
        engine_for(db).catch_up()
    except LogError as exc:
        raise AnnotationRefused(f"cannot record the annotation: {exc}") from exc
