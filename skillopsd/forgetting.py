"""Forgetting: which events hold a session's or a file's lines and what was derived from them.

What a forget erases (the payload bytes; the envelopes stay, so the chain still verifies):

- the lines: every ``TranscriptLineCaptured`` and ``CaptureErrorRecorded`` of the files
  (sources) in scope, every generation;
- everything derived from them: every ``SessionDerived``, ``SpanDerived`` and
  ``DeriveErrorRecorded`` (every deriver version) of each session those files belong to,
  Codex child threads merged into it included. Forgetting one file of a session erases the
  whole derivation, which is then derived again from the files that remain.

What it keeps, and why:

- ``SourceFileTracked`` / ``Moved`` / ``Reset``: a file's identity, path and offsets, not its
  content; capture keeps its place in the file, so the erased bytes are not captured again.
- Human annotations (``AnnotationAdded``): they are not derived from the lines, and human
  input is never lost. A note that quotes a secret is not erased by ``forget``; that would
  need erasing the annotation itself (not offered yet).
- ``SessionPurged`` and every event of other sessions.

Lines appended to a file after it was forgotten are new content: they are captured and
derive the session again (its tombstone stays).

Later projections must fold ``PayloadsErased`` as ``sessions`` does (delete what the erased
events had folded, keep a tombstone): lineage (not built yet) should show the erasure in a
skill's timeline, and eval results (``EvalRunCompleted`` grader details) quoting a forgotten
session's text are not in scope of a forget today.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import msgspec

from .derive import session_id
from .deriving import SessionDeriver, SessionKey, session_stream
from .events import Database, EventLog, NewEvent
from .events.types import PayloadsErased, TranscriptLineCaptured
from .sources import path_text, source_stream

ERASURE_STREAM = "erasures"
_LINE_TYPES = ("TranscriptLineCaptured", "CaptureErrorRecorded")
_DERIVED_TYPES = ("SessionDerived", "SpanDerived", "DeriveErrorRecorded")


class ForgetPlan(msgspec.Struct):
    """What a forget erases: the positions and what they are."""

    scope: str
    session_ids: list[str]
    source_ids: list[str]
    positions: list[int]
    lines: int = 0
    capture_errors: int = 0
    derived: int = 0
    bytes: int = 0


class Erased(msgspec.Struct):
    """What :func:`execute` did: its ``PayloadsErased`` records, and whether the WAL was
    truncated after each (False: a reader held it; the old pages leave it at the next
    checkpoint)."""

    records: list[int]
    wal_cleared: bool = True


class ForgetReport(msgspec.Struct):
    """What a retention pass did."""

    plan: ForgetPlan
    erased: Erased


def default_author() -> str:
    """Who is forgetting: the login name of the process's user."""
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return os.environ.get("USER", "") or str(os.getuid())


def _prefix_match(values: Iterable[str], ident: str) -> set[str]:
    return {v for v in values if v.startswith(ident)}


def resolve_session(deriver: SessionDeriver, ident: str) -> SessionKey | None:
    """A session by our id, the agent's id, or a unique prefix of either (as ``session show``).

    A Codex child thread's own id finds the session it belongs to. Every session with a
    tracked file is found, derived or not, forgotten or not.
    """
    by_id: dict[str, SessionKey] = {}
    for key, files in deriver.files_by_session().items():
        by_id[key.session_id] = key
        by_id[key.native_id] = key
        for _source, native in files:
            by_id.setdefault(native, key)
            by_id.setdefault(session_id(key.agent, native), key)
    if ident in by_id:
        return by_id[ident]
    if len(ident) < 6:
        return None
    found = {by_id[v] for v in _prefix_match(by_id, ident)}
    return found.pop() if len(found) == 1 else None


def resolve_sources(db: Database, ident: str) -> list[str]:
    """Source ids of a file given as its source id or a path it was captured under.

    A path is compared as capture stored it (:func:`path_text`): the real name of a file that
    is not UTF-8 (``name\xff.jsonl`` as the shell gives it) and its escaped spelling both find it.
    """
    ident = path_text(ident)
    paths = {ident, path_text(os.path.abspath(os.path.expanduser(ident)))}
    with db.read() as conn:
        if conn.execute("SELECT 1 FROM capture_sources WHERE source_id = ?", (ident,)).fetchone():
            return [ident]
        found: set[str] = set()
        for event in EventLog(db).read(types=("SourceFileTracked", "SourceFileMoved")):
            payload = event.payload
            named = {getattr(payload, k, None) for k in ("path", "old_path", "new_path")}
            if named & paths:
                found.add(getattr(payload, "source_id"))  # noqa: B009 (both types have it)
    return sorted(found)


def _sessions_of(key: SessionKey, files: list[tuple[str, str]]) -> tuple[list[str], list[str]]:
    """(session ids whose derivations are erased, source ids) of one session and its files."""
    sessions = {key.session_id} | {session_id(key.agent, native) for _s, native in files}
    return sorted(sessions), sorted(s for s, _n in files)


def plan(
    db: Database,
    scope: str,
    session_ids: Iterable[str],
    source_ids: Iterable[str],
    *,
    upto: int | None = None,
) -> ForgetPlan:
    """The not yet erased events holding the lines of ``source_ids`` and the derivations of
    ``session_ids`` (up to position ``upto``)."""
    sessions = sorted(set(session_ids))
    sources = sorted(set(source_ids))
    out = ForgetPlan(scope=scope, session_ids=sessions, source_ids=sources, positions=[])
    log = EventLog(db)
    with db.read():
        wanted: list[tuple[str, tuple[str, ...]]]
        wanted = [(source_stream(s), _LINE_TYPES) for s in sources]
        wanted += [(session_stream(s), _DERIVED_TYPES) for s in sessions]
        for stream, types in wanted:
            for event in log.read(stream=stream, types=types, upto=upto):
                if event.erased:
                    continue
                out.positions.append(event.position)
                out.bytes += len(event.data)
                if event.type == "TranscriptLineCaptured":
                    out.lines += 1
                elif event.type == "CaptureErrorRecorded":
                    out.capture_errors += 1
                else:
                    out.derived += 1
    out.positions.sort()
    return out


def plan_session(db: Database, deriver: SessionDeriver, key: SessionKey) -> ForgetPlan:
    """Everything a forget of one session erases."""
    sessions, sources = _sessions_of(key, deriver.files_of(key))
    return plan(db, "session", sessions, sources)


def plan_sources(db: Database, deriver: SessionDeriver, source_ids: list[str]) -> ForgetPlan:
    """Everything a forget of some files erases: their lines, their sessions' derivations."""
    sessions: set[str] = set()
    groups = deriver.files_by_session()
    for source in source_ids:
        key = deriver.key_of(source)
        if key is not None:
            sessions.update(_sessions_of(key, groups.get(key, []))[0])
    return plan(db, "source", sessions, source_ids)


def execute(db: Database, planned: ForgetPlan, *, reason: str, author: str) -> Erased:
    """Erase what ``planned`` names and record why.

    Anything of the same scope appended while the plan was made (a capture or derivation
    racing the forget) and older than the record is erased by a further record, so nothing
    older than the forget survives it. (Derivations that finish after it are dropped by the
    deriver, which checks for a newer erasure in the transaction it appends in.)
    """
    log = EventLog(db)
    out = Erased(records=[])
    current = planned
    for _attempt in range(5):
        if not current.positions:
            break
        record = PayloadsErased(
            positions=current.positions,
            reason=reason,
            author=author,
            scope=current.scope,
            session_ids=current.session_ids,
            source_ids=current.source_ids,
        )
        result = log.erase(current.positions, NewEvent(ERASURE_STREAM, record))
        out.records.extend(result.positions)
        out.wal_cleared = out.wal_cleared and result.wal_cleared is not False
        if not result.positions:
            break
        upto = max(result.positions)
        current = plan(db, planned.scope, planned.session_ids, planned.source_ids, upto=upto)
    return out


# --- retention ---------------------------------------------------------------------------


class Expired(msgspec.Struct, frozen=True):
    """A session whose newest captured line is older than the retention cut-off."""

    key: SessionKey
    files: list[tuple[str, str]]
    newest: str


def _newest_captured_at(db: Database, source_id: str) -> str | None:
    """``captured_at`` of a file's newest line that is not erased (None: no such line)."""
    row = db.conn.execute(
        "SELECT position FROM events WHERE stream = ? AND type = 'TranscriptLineCaptured'"
        " ORDER BY stream_version DESC LIMIT 1",
        (source_stream(source_id),),
    ).fetchone()
    if row is None:
        return None
    (event,) = EventLog(db).read(after=row[0] - 1, upto=row[0])
    if event.erased:
        # Forgets erase every line of a file at once, so nothing older is left either.
        return None
    payload = event.payload
    assert isinstance(payload, TranscriptLineCaptured)
    return payload.captured_at


def expired(db: Database, deriver: SessionDeriver, cutoff: str) -> list[Expired]:
    """Sessions with lines left whose newest captured line was captured before ``cutoff``."""
    out = []
    groups = deriver.files_by_session()
    with db.read():
        for key in sorted(groups):
            stamps = [_newest_captured_at(db, s) for s, _n in groups[key]]
            present = [s for s in stamps if s is not None]
            if present and max(present) < cutoff:
                out.append(Expired(key, groups[key], max(present)))
    return out


def retention_cutoff(days: float, now: datetime | None = None) -> str:
    """The ISO 8601 UTC time ``days`` before ``now``, as ``captured_at`` is written."""
    moment = (now or datetime.now(UTC)) - timedelta(days=days)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def forget_expired(db: Database, deriver: SessionDeriver, days: float) -> ForgetReport:
    """Forget every session whose newest captured line is older than ``days`` (scope retention).

    One record per session, as a ``forget`` of it would write: each says what it erased.
    """
    cutoff = retention_cutoff(days)
    total = ForgetPlan(scope="retention", session_ids=[], source_ids=[], positions=[])
    erased = Erased(records=[])
    for item in expired(db, deriver, cutoff):
        sessions, sources = _sessions_of(item.key, item.files)
        planned = plan(db, "retention", sessions, sources)
        reason = f"retention: newest line captured {item.newest}, more than {days:g} days ago"
        done = execute(db, planned, reason=reason, author="skillopsd")
        erased.records += done.records
        erased.wal_cleared = erased.wal_cleared and done.wal_cleared
        total.session_ids += planned.session_ids
        total.source_ids += planned.source_ids
        total.positions += planned.positions
        total.lines += planned.lines
        total.capture_errors += planned.capture_errors
        total.derived += planned.derived
        total.bytes += planned.bytes
    return ForgetReport(plan=total, erased=erased)


__all__ = [
    "ERASURE_STREAM",
    "Erased",
    "Expired",
    "ForgetPlan",
    "ForgetReport",
    "default_author",
    "execute",
    "expired",
    "forget_expired",
    "plan",
    "plan_session",
    "plan_sources",
    "resolve_session",
    "resolve_sources",
    "retention_cutoff",
]
