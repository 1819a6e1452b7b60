"""Human annotations of sessions: every label, its retraction, and the newest standing one.

Annotations are human input, so nothing derived ever touches them: a rederive, a rebuild or
the forgetting of another session replays them unchanged from their events.
"""

from __future__ import annotations

import apsw
import msgspec

from ..events import RecordedEvent
from ..events.types import AnnotationAdded, AnnotationRetracted
from ._engine import Projection

_SCHEMA = """
CREATE TABLE p_annotations (
    annotation_id TEXT PRIMARY KEY, session_id TEXT NOT NULL, label TEXT NOT NULL,
    note TEXT NOT NULL, author TEXT NOT NULL, skill TEXT, span_id TEXT,
    position INTEGER NOT NULL, at TEXT NOT NULL, retracted_position INTEGER,
    retracted_at TEXT, retract_reason TEXT, retract_author TEXT
);
CREATE INDEX p_annotations_by_session ON p_annotations (session_id, position);
"""


class Annotations(Projection):
    """``AnnotationAdded`` / ``AnnotationRetracted`` as rows."""

    name = "annotations"
    version = 1
    tables = ("p_annotations",)
    handles = frozenset({"AnnotationAdded", "AnnotationRetracted"})

    def create(self, conn: apsw.Connection) -> None:
        conn.execute(_SCHEMA)

    def apply(self, conn: apsw.Connection, event: RecordedEvent) -> None:
        payload = event.payload
        if isinstance(payload, AnnotationAdded):
            conn.execute(
                "INSERT OR IGNORE INTO p_annotations (annotation_id, session_id, label, note,"
                " author, skill, span_id, position, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    payload.annotation_id,
                    payload.session_id,
                    payload.label,
                    payload.note,
                    payload.author,
                    payload.skill,
                    payload.span_id,
                    event.position,
                    event.recorded_at,
                ),
            )
        elif isinstance(payload, AnnotationRetracted):
            conn.execute(
                "UPDATE p_annotations SET retracted_position = ?, retracted_at = ?,"
                " retract_reason = ?, retract_author = ? WHERE annotation_id = ?"
                " AND retracted_position IS NULL",
                (
                    event.position,
                    event.recorded_at,
                    payload.reason,
                    payload.author,
                    payload.annotation_id,
                ),
            )


class AnnotationView(msgspec.Struct):
    """One annotation as ``annotations --json`` prints it."""

    annotation_id: str
    session_id: str
    label: str
    note: str
    author: str
    skill: str | None
    span_id: str | None
    at: str
    position: int
    retracted: bool
    retracted_at: str | None = None
    retract_reason: str | None = None


_COLUMNS = (
    "annotation_id, session_id, label, note, author, skill, span_id, at, position,"
    " retracted_position IS NOT NULL, retracted_at, retract_reason"
)


def _view(row: tuple[object, ...]) -> AnnotationView:
    return AnnotationView(*row)  # type: ignore[arg-type]


def list_annotations(
    conn: apsw.Connection,
    *,
    session_id: str | None = None,
    skill: str | None = None,
    since: str | None = None,
) -> list[AnnotationView]:
    """Annotations newest first; ``skill`` selects those naming it or on sessions that loaded it."""
    where: list[str] = []
    args: list[object] = []
    if session_id:
        where.append("session_id = ?")
        args.append(session_id)
    if skill:
        where.append(
            "(skill = ? OR (skill IS NULL AND session_id IN"
            " (SELECT session_id FROM p_session_skills WHERE skill = ?)))"
        )
        args.extend([skill, skill])
    if since:
        where.append("at >= ?")
        args.append(since)
    sql = f"SELECT {_COLUMNS} FROM p_annotations"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY position DESC"
    return [_view(r) for r in conn.execute(sql, args)]


def find_annotation(conn: apsw.Connection, annotation_id: str) -> AnnotationView | None:
    """An annotation by id (or a unique prefix of at least 6 characters)."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM p_annotations WHERE annotation_id = ?", (annotation_id,)
    ).fetchall()
    if not rows and len(annotation_id) >= 6:
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM p_annotations WHERE annotation_id LIKE ? LIMIT 2",
            (annotation_id.replace("%", "").replace("_", "") + "%",),
        ).fetchall()
    return _view(rows[0]) if len(rows) == 1 else None


def newest_labels(
    conn: apsw.Connection, session_ids: list[str], *, skill: str | None = None
) -> dict[str, str]:
    """The newest unretracted label of each session (of ``skill``'s, or general, if given)."""
    out: dict[str, str] = {}
    if not session_ids:
        return out
    extra = " AND (skill IS NULL OR skill = ?)" if skill else ""
    for start in range(0, len(session_ids), 500):
        chunk = session_ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            f"SELECT session_id, label FROM p_annotations WHERE session_id IN ({marks})"
            f" AND retracted_position IS NULL{extra} ORDER BY position",
            [*chunk, *([skill] if skill else [])],
        )
        for sid, label in rows:
            out[sid] = label  # ordered by position: the newest wins
    return out
