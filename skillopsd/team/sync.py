"""Push the local log to a team PostgreSQL: one stream per machine, checked link by link.

The server's own rows are the checkpoint: each transaction locks the machine's row, reads
the last position and hash the server holds for it, and appends the next links only if each
one's hash, recomputed from that hash, its header and its payload digest with the log's own
chain function, is the hash the log stored. So a sync killed at any moment resumes where the
server stands, a second sync sends nothing twice (the key is (machine, position)), and a
machine whose chain breaks is refused at the break with nothing of it stored past it.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

import msgspec
import psycopg
from psycopg.conninfo import conninfo_to_dict

from .._defaults import TEAM_URL_ENV
from ..events import (
    GENESIS_HASH,
    ChainLink,
    Database,
    LogError,
    chain_links,
    decode_payload,
    link_hash,
)
from ..events.types import PayloadsErased
from .content import Content, outgoing
from .stall import Watchdog, lock_timeout_ms
from .urls import SCHEMES, redact_url, scrub
from .urls import check_userinfo as userinfo_fault

__all__ = ["SCHEMES", "redact_url", "scrub"]  # re-exported: callers import them from here

URL_ENV = TEAM_URL_ENV
BATCH = 500

# Created once per server, under an advisory lock (machines syncing at once race otherwise).
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS skillops_machines (
        machine   TEXT PRIMARY KEY,
        label     TEXT NOT NULL,
        refused   TEXT,
        last_sync TIMESTAMPTZ
    )""",
    """CREATE TABLE IF NOT EXISTS skillops_events (
        machine        TEXT     NOT NULL REFERENCES skillops_machines (machine),
        position       BIGINT   NOT NULL,
        event_id       TEXT     NOT NULL,
        stream         TEXT     NOT NULL,
        stream_version BIGINT   NOT NULL,
        type           TEXT     NOT NULL,
        schema         INTEGER  NOT NULL,
        recorded_at    TEXT     NOT NULL,
        link           SMALLINT NOT NULL,
        codec          INTEGER  NOT NULL,
        digest         BYTEA    NOT NULL,
        hash           BYTEA    NOT NULL,
        content        TEXT     NOT NULL
            CHECK (content IN ('exact', 'derived', 'withheld', 'erased')),
        payload        BYTEA,
        PRIMARY KEY (machine, position),
        CHECK ((payload IS NULL) = (content IN ('withheld', 'erased')))
    )""",
    # Stored as sent, never compressed by the server: an erased payload's bytes are not
    # hidden in a compressed copy, and what was sent can be checked byte for byte.
    "ALTER TABLE skillops_events ALTER COLUMN payload SET STORAGE EXTERNAL",
    "CREATE INDEX IF NOT EXISTS skillops_events_by_type ON skillops_events (type)",
)
# Pooled experiments (team/pool.py): one row per team test of a skill's champion and
# challenger bodies, its decision written once (the first machine whose pooled rule crosses);
# at most one open test per pair. A separate step: a machine's role that may not create
# tables still syncs into a server set up before these existed.
_POOL_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS skillops_team_tests (
        test_id    TEXT PRIMARY KEY,
        skill      TEXT NOT NULL,
        champion   TEXT NOT NULL,
        challenger TEXT NOT NULL,
        started_at TEXT NOT NULL,
        opened_by  TEXT NOT NULL,
        outcome    TEXT,
        decided_by TEXT,
        decided_at TIMESTAMPTZ,
        record     BYTEA,
        CHECK ((outcome IS NULL) = (record IS NULL))
    )""",
    "CREATE UNIQUE INDEX IF NOT EXISTS skillops_team_tests_open"
    " ON skillops_team_tests (skill, champion, challenger) WHERE outcome IS NULL",
    # A pooled read takes one skill's stream of every machine.
    "CREATE INDEX IF NOT EXISTS skillops_events_by_stream"
    " ON skillops_events (stream, machine, position)",
)
_COLUMNS = (
    "machine, position, event_id, stream, stream_version, type, schema, recorded_at,"
    " link, codec, digest, hash, content, payload"
)
_SCHEMA_LOCK = 0x736B696C  # any fixed key: "skil"


class SyncError(Exception):
    """The server cannot be reached or refused a statement: one line."""


class SyncRefused(Exception):
    """This machine's chain breaks (or differs from what the server holds): one line."""


class SyncReport(msgspec.Struct):
    """``sync --json``: what one sync did."""

    machine: str
    label: str
    server: str
    content: str
    local_events: int
    held_before: int
    sent: int
    held: int
    exact: int
    derived: int
    withheld: int
    erased: int
    erased_on_server: int
    refused: str | None = None
    # Events the server already held, sent under a narrower --content than this one: they
    # stay as they were sent (a re-sync never re-sends a stored link).
    kept_narrower: int = 0


def machine_id(db: Database) -> str | None:
    """This log's stable id: the hash of its first event (None for an empty log).

    Deterministic and stored nowhere new: the first link never changes (the log is never
    rewritten), differs between any two logs, and a copy of a log is the same stream (if the
    copy diverges, the server refuses it at the first differing link).
    """
    first = next(chain_links(db, after=0, limit=1), None)
    return None if first is None else first.hash.hex()[:32]


def check_userinfo(url: str) -> None:
    """SyncError when libpq would misread ``url``'s user or password (an unencoded ``@`` or
    ``/``): it would take a piece of the password for a host and quote it back."""
    why = userinfo_fault(url)
    if why is not None:
        raise SyncError(f"{redact_url(url)}: {why}")


def connect(
    url: str, *, application: str = "skillops sync"
) -> psycopg.Connection[tuple[object, ...]]:
    check_userinfo(url)
    try:
        # A lock held on the server (VACUUM FULL) ends the wait with the server's own message;
        # the user's own options (``?options=…``) are kept.
        given = str(conninfo_to_dict(url).get("options") or "")
        options = f"{given} -c lock_timeout={lock_timeout_ms()}".strip()
        return psycopg.connect(
            url, connect_timeout=10, application_name=application, options=options
        )
    except (psycopg.Error, ValueError) as exc:  # ValueError: psycopg's own URL parsing
        # psycopg's message may quote the URL it could not parse: redacted too.
        message = scrub(first_line(exc), url)
        raise SyncError(f"cannot connect to {redact_url(url)}: {message}") from exc


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def ensure_schema(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """Create the tables unless they exist (a machine's role needs no right to create or
    alter them once they do)."""
    with conn.transaction():
        ready = conn.execute(
            "SELECT to_regclass('skillops_machines') IS NOT NULL"
            " AND to_regclass('skillops_events') IS NOT NULL"
        ).fetchone()
        if ready is not None and ready[0]:
            return
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
        for statement in _SCHEMA:
            conn.execute(statement)


def ensure_pool_schema(conn: psycopg.Connection[tuple[object, ...]]) -> bool:
    """Create the pooled experiments' table and indexes unless they exist; False when this
    role may not (the pool is then unavailable, the sync goes on)."""
    try:
        with conn.transaction():
            ready = conn.execute(
                "SELECT to_regclass('skillops_team_tests') IS NOT NULL"
                " AND to_regclass('skillops_events_by_stream') IS NOT NULL"
            ).fetchone()
            if ready is not None and ready[0]:
                return True
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            for statement in _POOL_SCHEMA:
                conn.execute(statement)
    except psycopg.errors.InsufficientPrivilege:
        return False
    return True


def sync(
    db: Database,
    url: str,
    content: Content,
    *,
    batch: int = BATCH,
    progress: Callable[[int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    say: Callable[[str], None] | None = None,
    count_narrower: bool = False,
) -> SyncReport:
    """Send every link the server lacks, ``batch`` per transaction; see the module doc.

    ``should_stop`` is asked between transactions: a sync stopped there has stored whole
    batches only, and the next one resumes after them.

    Raises :class:`SyncError` (server) or, after storing every good link before the break,
    returns a report whose ``refused`` says where and why the chain broke.
    """
    machine = machine_id(db)
    label = socket.gethostname()
    # Positions are gapless from 1 (``verify`` proves it): the head is the count, without
    # the scan count(*) would make on every pass of a daemon's sync.
    local = db.conn.execute("SELECT coalesce(max(position), 0) FROM events").fetchone()
    report = SyncReport(
        machine=machine or "",
        label=label,
        server=redact_url(url),
        content=content.value,
        local_events=int(local[0]) if local else 0,
        held_before=0,
        sent=0,
        held=0,
        exact=0,
        derived=0,
        withheld=0,
        erased=0,
        erased_on_server=0,
    )
    conn = connect(url)
    watchdog = Watchdog(conn, redact_url(url), say)
    try:
        report.server = watchdog.server = server_name(conn)
        watchdog.__enter__()
        ensure_schema(conn)
        ensure_pool_schema(conn)
        if machine is None:
            return report
        with conn.transaction():
            conn.execute(
                "INSERT INTO skillops_machines (machine, label) VALUES (%s, %s)"
                " ON CONFLICT (machine) DO NOTHING",
                (machine, label),
            )
        first = True
        while True:
            with conn.transaction():
                done = _one_batch(conn, db, machine, label, content, batch, report, first)
            first = False
            watchdog.progress()
            if progress is not None:
                progress(report.held)
            if done or (should_stop is not None and should_stop()):
                break
        if count_narrower and report.held_before:
            report.kept_narrower = _narrower(conn, machine, content, report.held_before)
    except psycopg.Error as exc:
        if watchdog.stalled is not None:
            raise SyncError(watchdog.stalled) from exc
        raise SyncError(f"{report.server}: {scrub(first_line(exc), url)}") from exc
    finally:
        watchdog.__exit__(None, None, None)
        conn.close()
    return report


def _narrower(
    conn: psycopg.Connection[tuple[object, ...]], machine: str, content: Content, upto: int
) -> int:
    """How many of the first ``upto`` events of ``machine`` on the server hold less than
    ``content`` would send now (one indexed scan of that machine's rows, ``skillopsctl sync``
    only: the daemon's passes do not pay it)."""
    if content is Content.ALL:
        where = "content IN ('derived', 'withheld')"
    elif content is Content.DERIVED:
        # A transcript line is withheld under derived too.
        where = "content = 'withheld' AND type <> 'TranscriptLineCaptured'"
    else:
        return 0
    row = conn.execute(
        f"SELECT count(*) FROM skillops_events WHERE machine = %s AND position <= %s AND {where}",
        (machine, upto),
    ).fetchone()
    return int(row[0]) if row else 0  # type: ignore[call-overload]


def server_name(conn: psycopg.Connection[tuple[object, ...]]) -> str:
    info = conn.info
    host = info.host if not info.host.startswith("/") else "localhost"
    return f"{info.user}@{host}:{info.port}/{info.dbname}"


def _one_batch(
    conn: psycopg.Connection[tuple[object, ...]],
    db: Database,
    machine: str,
    label: str,
    content: Content,
    batch: int,
    report: SyncReport,
    first: bool,
) -> bool:
    """One transaction: the next ``batch`` links after the server's head; True when done."""
    conn.execute("SELECT 1 FROM skillops_machines WHERE machine = %s FOR UPDATE", (machine,))
    row = conn.execute(
        "SELECT position, hash FROM skillops_events WHERE machine = %s"
        " ORDER BY position DESC LIMIT 1",
        (machine,),
    ).fetchone()
    head, prev = (0, GENESIS_HASH) if row is None else (int(row[0]), bytes(row[1]))  # type: ignore[call-overload,arg-type]
    if first:
        report.held_before = head
    report.held = head
    with db.read():
        if head:
            mine = next(chain_links(db, after=head - 1, limit=1), None)
            if mine is None or mine.position != head:
                return _refuse(
                    conn,
                    machine,
                    report,
                    f"the server holds {head} events of machine {machine} but this log has"
                    f" only {report.local_events}: it is not the log that was synced",
                )
            if mine.hash != prev:
                return _refuse(
                    conn,
                    machine,
                    report,
                    f"this log differs at position {head} from what the server holds for"
                    f" machine {machine}",
                )
        links = list(chain_links(db, after=head, limit=batch))
    rows: list[tuple[object, ...]] = []
    erasures: list[int] = []
    broken: str | None = None
    for link in links:
        why = _fault(link, head + len(rows) + 1, prev)
        if why is not None:
            broken = f"machine {machine}: chain breaks at position {link.position}: {why}"
            break
        if link.type == "PayloadsErased" and link.payload is not None:
            try:
                erased = decode_payload(link.type, link.schema, link.payload)
            except LogError as exc:
                broken = f"machine {machine}: position {link.position}: {exc}"
                break
            if isinstance(erased, PayloadsErased):
                erasures.extend(erased.positions)
        rows.append(_row(machine, link, content, report))
        prev = link.hash
    if rows:
        with conn.cursor().copy(f"COPY skillops_events ({_COLUMNS}) FROM STDIN") as copy:
            for values in rows:
                copy.write_row(values)
    if erasures:
        cur = conn.execute(
            "UPDATE skillops_events SET payload = NULL, content = 'erased'"
            " WHERE machine = %s AND position = ANY(%s) AND content <> 'erased'",
            (machine, sorted(set(erasures))),
        )
        report.erased_on_server += max(cur.rowcount, 0)
    report.sent += len(rows)
    report.held = head + len(rows)
    if broken is not None:
        return _refuse(conn, machine, report, broken)
    conn.execute(
        "UPDATE skillops_machines SET refused = NULL, label = %s, last_sync = now()"
        " WHERE machine = %s",
        (label, machine),
    )
    return not links


def _fault(link: ChainLink, expected: int, prev: bytes) -> str | None:
    if link.position != expected:
        return f"position gap (expected {expected})"
    if link.fault is not None:
        return link.fault
    if link_hash(link, prev) != link.hash:
        return "its hash does not match its header and payload digest"
    return None


def _row(machine: str, link: ChainLink, content: Content, report: SyncReport) -> tuple[object, ...]:
    if link.erased or link.payload is None:
        kind, payload = "erased", None
    else:
        kind, payload = outgoing(content, link.type, link.schema, link.payload)
    if kind == "exact":
        report.exact += 1
    elif kind == "derived":
        report.derived += 1
    elif kind == "withheld":
        report.withheld += 1
    else:
        report.erased += 1
    return (
        machine,
        link.position,
        link.event_id,
        link.stream,
        link.stream_version,
        link.type,
        link.schema,
        link.recorded_at,
        link.link,
        link.codec,
        link.digest,
        link.hash,
        kind,
        payload,
    )


def _refuse(
    conn: psycopg.Connection[tuple[object, ...]], machine: str, report: SyncReport, why: str
) -> bool:
    conn.execute("UPDATE skillops_machines SET refused = %s WHERE machine = %s", (why, machine))
    report.refused = why
    return True
