"""The team replica: every machine's events on the team server, merged into one local log.

A team view (``skillopsctl --team URL …``) reads a local SQLite database per server, a log
like any other, so every command and every projection reads it exactly as it reads this
machine's log. Each command first pulls what the server gained since the last pull:

- one query of each machine's head; when no head moved, nothing else is asked or written;
- a moved machine's new rows are checked link by link against the chain it synced (a row
  whose hash does not follow stops that machine there, as a break stops its sync);
- the new rows of every machine are merged in one deterministic order: by ``recorded_at``,
  then machine id, then position, each machine's own order kept (its events never pass
  one another), and appended with their original ids and times (``append_imported``);
- a row whose payload did not come (``withheld``, ``erased``) is stored erased, with the
  digest its chain commits to; a ``PayloadsErased`` a machine synced is applied to the
  replica (its positions translated), so an erasure synced after a pull removes those
  bytes from the replica at the next pull.

Streams: ``skill:NAME`` streams pool (a skill is one identity on every machine: its
versions, decisions and executions fold together); every other stream is a machine's own
(transcript files, sessions, annotations, evals, policies) and is stored as
``MACHINE/STREAM``, so two machines' files at one path never merge. An event id two
machines both hold (the same fact: a skill version by its body hash, a session derived
from the same transcript on both) is stored once, under the machine the merge brings first.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import heapq
import os
import re
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import apsw
import msgspec
import psycopg
from psycopg.conninfo import conninfo_to_dict

from ..events import (
    GENESIS_HASH,
    ChainLink,
    CodecError,
    CorruptEventError,
    Database,
    DatabaseOpenError,
    EventLog,
    ImportedEvent,
    LogError,
    content_id,
    decode_payload,
    link_hash,
    utc_now,
)
from ..events.types import PayloadsErased, SkillExecutionRecorded, SkillVersionCreated
from .stall import Watchdog, progress
from .sync import (
    SCHEMES,
    SyncError,
    check_userinfo,
    connect,
    first_line,
    redact_url,
    scrub,
    server_name,
)

# Events appended per replica transaction: a killed pull keeps every finished one.
BATCH = 5000
# Rows fetched from the server per round trip, per machine.
FETCH = 2000
POOLED_PREFIX = "skill:"
T = TypeVar("T", str, str | None)
_MACHINE_ID = re.compile(r"[0-9a-f]{32}")  # what sync.machine_id gives
_MANUAL = "manual:"  # the execution key of ``skill record --id KEY``: manual:KEY

_TABLES = """
CREATE TABLE IF NOT EXISTS team_server (
    id INTEGER PRIMARY KEY CHECK (id = 1), server TEXT NOT NULL, pulled_at TEXT
);
CREATE TABLE IF NOT EXISTS team_machines (
    machine TEXT PRIMARY KEY, label TEXT NOT NULL, refused TEXT,
    pulled INTEGER NOT NULL DEFAULT 0, hash BLOB NOT NULL DEFAULT x'',
    seen INTEGER NOT NULL DEFAULT 0, broken TEXT
);
CREATE TABLE IF NOT EXISTS team_links (
    machine TEXT NOT NULL, machine_position INTEGER NOT NULL, position INTEGER NOT NULL,
    content TEXT NOT NULL, first INTEGER NOT NULL,
    PRIMARY KEY (machine, machine_position)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS team_links_by_position ON team_links (position, first);
CREATE TABLE IF NOT EXISTS team_tags (
    skill TEXT NOT NULL, version_hash TEXT NOT NULL, tag INTEGER NOT NULL,
    PRIMARY KEY (skill, version_hash)
) WITHOUT ROWID;
"""

_ROW = (
    "position, event_id, stream, stream_version, type, schema, recorded_at, link, codec,"
    " digest, hash, content, payload"
)


class ReplicaDiverged(Exception):
    """The server no longer holds what the replica pulled (a reset or another server)."""


# What makes a replica unusable, so that it is made again from the server. Not a busy
# database (another command folding its projections) nor a full disk: those say so.
_DAMAGED = (
    DatabaseOpenError,
    CorruptEventError,
    CodecError,
    apsw.CorruptError,
    apsw.NotADBError,
    ReplicaDiverged,
)


class MachineHead(msgspec.Struct, frozen=True):
    machine: str
    label: str
    refused: str | None
    head: int


class PullReport(msgspec.Struct):
    """What one pull did (``bench/team.py`` and the tests read it)."""

    server: str
    replica: str
    machines: int = 0
    changed: int = 0
    rows: int = 0
    appended: int = 0
    shared: int = 0
    erased: int = 0
    new: bool = False
    # The server has no skillops tables: no machine ever synced to it (or the URL names
    # another database).
    bare: bool = False
    rebuilt: str | None = None
    broken: list[str] = []
    refused: list[str] = []


def server_identity(url: str) -> str:
    """``user@host:port/dbname`` of ``url`` (no password), what names its replica."""
    text = url.strip()
    check_userinfo(text)
    if not text.lower().startswith(SCHEMES) and ("://" in text or "=" not in text):
        # Not libpq's URI nor its key=value form (``host=… dbname=…``): libpq's own answer
        # ("missing "=" after …") would not say what to give.
        raise SyncError(
            f"not a PostgreSQL URL ({redact_url(text)}): expected"
            " postgresql://USER[:PASSWORD]@HOST[:PORT]/DB"
        )
    try:
        info = conninfo_to_dict(url)
    except (psycopg.Error, ValueError) as exc:
        raise SyncError(
            f"not a PostgreSQL URL ({redact_url(url)}): {scrub(first_line(exc), url)}"
        ) from exc
    user = str(info.get("user") or os.environ.get("PGUSER") or _login())
    host = str(info.get("host") or info.get("hostaddr") or os.environ.get("PGHOST") or "localhost")
    port = str(info.get("port") or os.environ.get("PGPORT") or "5432")
    dbname = str(info.get("dbname") or os.environ.get("PGDATABASE") or user)
    return f"{user}@{host}:{port}/{dbname}"


def _login() -> str:
    import getpass

    return getpass.getuser()


def replica_path(url: str) -> Path:
    """``$XDG_CACHE_HOME/skillops/team/<hash of the server's identity>.db``."""
    base = os.environ.get("XDG_CACHE_HOME")
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".cache"
    digest = hashlib.sha256(server_identity(url).encode()).hexdigest()[:20]
    return root / "skillops" / "team" / f"{digest}.db"


def open_replica(
    url: str,
    *,
    path: Path | None = None,
    notify: Callable[[str], None] | None = None,
) -> tuple[Database, PullReport]:
    """The replica of ``url``'s server, pulled up to date; ``notify`` hears what a user
    should know (a new or rebuilt replica, a machine stopped at a break).

    A replica that cannot be opened or read (deleted, damaged, or the server no longer
    holding what it pulled) is made again from the server. Raises :class:`SyncError` when
    the server cannot be reached: the replica is not shown stale.
    """
    target = path or replica_path(url)
    say = notify or (lambda _line: None)
    identity = server_identity(url)
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(target.parent, 0o700)
    with _pull_lock(target):
        conn = connect(url, application="skillops team")
        watchdog = Watchdog(conn, identity, say)
        db: Database | None = None
        try:
            existed = target.exists()
            rebuilt: str | None = None
            with watchdog:
                try:
                    db = _open(target, identity)
                    report = pull(db, conn)
                except _DAMAGED as exc:
                    if db is not None:
                        with contextlib.suppress(apsw.Error):
                            db.close()
                    rebuilt = first_line(exc)
                    discard(target)
                    db = _open(target, identity)
                    report = pull(db, conn)
        except psycopg.Error as exc:
            if watchdog.stalled is not None:
                raise SyncError(watchdog.stalled) from exc
            raise SyncError(f"{redact_url(url)}: {scrub(first_line(exc), url)}") from exc
        finally:
            conn.close()
    report.replica = str(target)
    report.new = not existed
    report.rebuilt = rebuilt
    if report.bare:
        say(
            f"no machine has synced to {report.server} (it has no skillops tables: is the"
            " database name right?)"
        )
    elif rebuilt is not None:
        say(f"team replica {target} could not be used ({rebuilt}): made again from the server")
    elif report.new:
        say(
            f"team replica {target}: {report.appended:,} events of {report.machines}"
            f" machine{'' if report.machines == 1 else 's'} pulled from {report.server}"
        )
    for line in dict.fromkeys(report.broken):
        say(line)
    for why in report.refused:
        say(f"the server refused {why}: only what it stored before that is shown")
    return db, report


@contextlib.contextmanager
def _pull_lock(target: Path) -> Iterator[None]:
    """One pull per replica at a time (others wait, then find nothing new)."""
    fd = os.open(f"{target}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _open(target: Path, identity: str) -> Database:
    db = Database.open(target, create=True, create_dirs=True)
    try:
        with db.read() as conn:  # the usual case, without taking the write lock
            ready = conn.execute(
                "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name IN"
                " ('team_server', 'team_machines', 'team_links', 'team_tags')"
            ).fetchone()
            row = None
            if ready and ready[0] == 4:
                row = conn.execute("SELECT server FROM team_server WHERE id = 1").fetchone()
        if row is not None and row[0] == identity:
            return db
        with db.write() as conn:
            conn.execute(_TABLES)
            row = conn.execute("SELECT server FROM team_server WHERE id = 1").fetchone()
            if row is None:
                conn.execute("INSERT INTO team_server (id, server) VALUES (1, ?)", (identity,))
            elif row[0] != identity:
                raise ReplicaDiverged(f"it replicates {row[0]}, not {identity}")
    except BaseException:
        db.close()
        raise
    return db


def discard(target: Path) -> None:
    """Remove a replica (its WAL and shared memory too): it is made again from the server."""
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{target}{suffix}")


def has_tables(conn: psycopg.Connection[tuple[Any, ...]]) -> bool:
    """Whether any machine has synced to this server (its tables exist)."""
    ready = conn.execute(
        "SELECT to_regclass('skillops_machines') IS NOT NULL"
        " AND to_regclass('skillops_events') IS NOT NULL"
    ).fetchone()
    return ready is not None and bool(ready[0])


def heads(conn: psycopg.Connection[tuple[Any, ...]]) -> list[MachineHead]:
    """Every machine on the server and the last position it holds of it (one query)."""
    if not has_tables(conn):
        return []  # no machine has synced to this server yet
    rows = conn.execute(
        "SELECT m.machine, m.label, m.refused, coalesce((SELECT e.position FROM skillops_events e"
        " WHERE e.machine = m.machine ORDER BY e.position DESC LIMIT 1), 0)"
        " FROM skillops_machines m ORDER BY m.machine"
    ).fetchall()
    return [
        MachineHead(str(m), _shown(str(label), 64), _shown(refused), int(head))
        for m, label, refused, head in rows
    ]


def _shown(text: T, limit: int = 300) -> T:
    """``text`` as it may reach a terminal: what a machine wrote on the server (its label,
    why it was refused) could hold escape sequences; every control or format character
    becomes ``?``, and a long text is cut."""
    if text is None:
        return text
    clean = "".join("?" if unicodedata.category(c)[0] == "C" else c for c in str(text))
    return clean if len(clean) <= limit else f"{clean[: limit - 1]}…"  # type: ignore[return-value]


class _Known(msgspec.Struct):
    label: str
    refused: str | None
    pulled: int
    hash: bytes
    seen: int
    broken: str | None


def pull(db: Database, conn: psycopg.Connection[tuple[Any, ...]]) -> PullReport:
    """Bring the replica ``db`` up to the server's state (see the module doc)."""
    report = PullReport(server=server_name(conn), replica=str(db.path))
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    with conn.transaction():  # one snapshot of the server for the whole pull
        report.bare = not has_tables(conn)
        machines = []
        for m in heads(conn):
            if _MACHINE_ID.fullmatch(m.machine):
                machines.append(m)
            else:  # not written by skillopsctl sync: its streams could pass for another's
                report.broken.append(
                    f"the server lists a machine whose id is none ({_shown(m.machine, 40)!r}):"
                    " nothing of it is shown"
                )
        report.machines = len(machines)
        with db.read() as lite:
            known = {
                str(r[0]): _Known(str(r[1]), r[2], int(r[3]), bytes(r[4]), int(r[5]), r[6])
                for r in lite.execute(
                    "SELECT machine, label, refused, pulled, hash, seen, broken FROM team_machines"
                )
            }
        gone = sorted(set(known) - {m.machine for m in machines})
        if gone:
            raise ReplicaDiverged(f"the server no longer holds machine {gone[0]}")
        moved = [m for m in machines if _moved(m, known.get(m.machine))]
        report.changed = len(moved)
        for m in machines:
            k = known.get(m.machine)
            if k is not None and k.broken:
                report.broken.append(k.broken)
            if m.refused:
                report.refused.append(m.refused)
        if not moved:
            return report
        for m in moved:
            _check_still_holds(conn, m, known.get(m.machine))
        _merge(db, conn, moved, known, report)
    if report.erased:
        # Erased payloads' pages must leave the replica's WAL too.
        db.checkpoint_truncate()
    return report


def _moved(m: MachineHead, k: _Known | None) -> bool:
    if k is None:
        return True
    return m.head != k.seen or m.label != k.label or m.refused != k.refused


def _check_still_holds(
    conn: psycopg.Connection[tuple[Any, ...]], m: MachineHead, k: _Known | None
) -> None:
    if k is None or k.pulled == 0:
        return
    if m.head < k.pulled:
        raise ReplicaDiverged(
            f"the server holds {m.head} events of machine {m.machine}, the replica pulled"
            f" {k.pulled}"
        )
    row = conn.execute(
        "SELECT hash FROM skillops_events WHERE machine = %s AND position = %s",
        (m.machine, k.pulled),
    ).fetchone()
    if row is None or bytes(row[0]) != k.hash:
        raise ReplicaDiverged(f"machine {m.machine} differs at position {k.pulled} on the server")


class _Row(msgspec.Struct, frozen=True):
    machine: str
    position: int
    event_id: str
    stream: str
    stream_version: int
    type: str
    schema: int
    recorded_at: str
    link: int
    codec: int
    digest: bytes
    hash: bytes
    content: str
    payload: bytes | None


def _rows(
    conn: psycopg.Connection[tuple[Any, ...]], m: MachineHead, after: int, index: int
) -> Iterator[_Row]:
    cursor = conn.cursor(name=f"skillops_team_{index}")
    cursor.itersize = FETCH
    cursor.execute(
        f"SELECT {_ROW} FROM skillops_events WHERE machine = %s AND position > %s"
        " AND position <= %s ORDER BY position",
        (m.machine, after, m.head),
    )
    try:
        for row in cursor:
            progress()  # the server answers: the watchdog waits on
            yield _Row(
                m.machine,
                int(row[0]),
                str(row[1]),
                str(row[2]),
                int(row[3]),
                str(row[4]),
                int(row[5]),
                str(row[6]),
                int(row[7]),
                int(row[8]),
                bytes(row[9]),
                bytes(row[10]),
                str(row[11]),
                None if row[12] is None else bytes(row[12]),
            )
    finally:
        cursor.close()


def _checked(
    rows: Iterator[_Row], k: _Known, on_break: Callable[[_Row, str], None]
) -> Iterator[_Row]:
    """``rows`` while each one's hash follows from the previous one's (the chain the machine
    synced); stops at the first that does not."""
    expected = k.pulled + 1
    prev = k.hash if k.pulled else GENESIS_HASH
    for row in rows:
        why = None
        if row.position != expected:
            why = f"position gap (expected {expected})"
        elif link_hash(_link(row), prev) != row.hash:
            why = "its hash does not follow from the previous one"
        elif row.content == "exact" and (
            row.payload is None or hashlib.sha256(row.payload).digest() != row.digest
        ):
            why = "its payload does not match its digest"
        if why is not None:
            on_break(row, why)
            return
        prev = row.hash
        expected += 1
        yield row


def _link(row: _Row) -> ChainLink:
    return ChainLink(
        row.position,
        row.event_id,
        row.stream,
        row.stream_version,
        row.type,
        row.schema,
        row.recorded_at,
        row.link,
        row.codec,
        row.digest,
        row.hash,
        None,
    )


def replica_stream(machine: str, stream: str) -> str:
    """Where a machine's stream lives in the replica: ``skill:`` streams pool, the rest are
    the machine's own."""
    return stream if stream.startswith(POOLED_PREFIX) else f"{machine}/{stream}"


def _merge(
    db: Database,
    conn: psycopg.Connection[tuple[Any, ...]],
    moved: list[MachineHead],
    known: dict[str, _Known],
    report: PullReport,
) -> None:
    state = {
        m.machine: known.get(m.machine) or _Known(m.label, m.refused, 0, GENESIS_HASH, 0, None)
        for m in moved
    }

    def on_break(row: _Row, why: str) -> None:
        line = (
            f"machine {row.machine} ({state[row.machine].label}): its chain on the server"
            f" breaks at position {row.position} ({why}): nothing of it after that is shown"
        )
        state[row.machine].broken = line
        report.broken.append(line)

    streams = [
        _checked(_rows(conn, m, state[m.machine].pulled, i), state[m.machine], on_break)
        for i, m in enumerate(moved)
    ]
    merged = heapq.merge(*streams, key=lambda r: (r.recorded_at, r.machine, r.position))
    log = EventLog(db)
    pending: list[_Row] = []

    def flush() -> None:
        if not pending:
            return
        placed = log.append_imported([_retagged(db, _imported(r)) for r in pending])
        _link_rows(db, pending, placed, report)
        for row in pending:
            state[row.machine].pulled = row.position
            state[row.machine].hash = row.hash
        pending.clear()

    for row in merged:
        report.rows += 1
        if row.type == "PayloadsErased" and row.payload is not None:
            with db.write():
                flush()
                _erasure(db, log, row, report)
                state[row.machine].pulled = row.position
                state[row.machine].hash = row.hash
                _save(db, moved, state)
            continue
        pending.append(row)
        if len(pending) >= BATCH:
            with db.write():
                flush()
                _save(db, moved, state)
    with db.write():
        flush()
        for m in moved:
            state[m.machine].seen = m.head
            state[m.machine].label = m.label
            state[m.machine].refused = m.refused
        _save(db, moved, state)
        db.conn.execute("UPDATE team_server SET pulled_at = ? WHERE id = 1", (utc_now(),))


def _imported(row: _Row) -> ImportedEvent:
    return _machines_own(
        row.machine,
        ImportedEvent(
            event_id=row.event_id,
            stream=replica_stream(row.machine, row.stream),
            type=row.type,
            schema=row.schema,
            recorded_at=row.recorded_at,
            payload=row.payload if row.content in ("exact", "derived") else None,
            digest=row.digest,
        ),
    )


def _machines_own(machine: str, event: ImportedEvent) -> ImportedEvent:
    """An execution recorded by hand (``skill record --id KEY``) as its machine's own: its
    key is the machine's (two machines' ``--id 1`` are two executions, as in the pooled
    test), while a session's execution keeps its id and counts once on the team."""
    if event.type != "SkillExecutionRecorded" or event.payload is None:
        return event
    try:
        record = decode_payload(event.type, event.schema, event.payload)
    except LogError:
        return event  # folded by no projection: unreadable, as it was sent
    if not isinstance(record, SkillExecutionRecorded):
        return event
    key = record.execution_id
    if record.session_id or not key.startswith(_MANUAL):
        return event
    scoped = msgspec.structs.replace(
        record, execution_id=f"{_MANUAL}{machine}:{key[len(_MANUAL) :]}"
    )
    return msgspec.structs.replace(
        event,
        event_id=content_id("team", machine, event.event_id),
        payload=msgspec.msgpack.encode(scoped),
    )


def _retagged(db: Database, event: ImportedEvent) -> ImportedEvent:
    """A skill version with the team's tag: a body already tagged in the replica keeps its
    tag, a new one gets the next (each machine numbers its own versions, so two machines'
    different bodies may both be its v1). Tags are the replica's, in merge order."""
    if event.type != "SkillVersionCreated" or event.payload is None:
        return event
    try:
        version = decode_payload(event.type, event.schema, event.payload)
    except LogError:
        return event  # folded by no projection: unreadable, as it was sent
    if not isinstance(version, SkillVersionCreated):
        return event
    conn = db.conn
    row = conn.execute(
        "SELECT tag FROM team_tags WHERE skill = ? AND version_hash = ?",
        (version.skill, version.version_hash),
    ).fetchone()
    if row is None:
        top = conn.execute(
            "SELECT max(tag) FROM team_tags WHERE skill = ?", (version.skill,)
        ).fetchone()
        tag = (top[0] if top and top[0] is not None else 0) + 1
        conn.execute(
            "INSERT INTO team_tags (skill, version_hash, tag) VALUES (?, ?, ?)",
            (version.skill, version.version_hash, tag),
        )
    else:
        tag = int(row[0])
    if tag == version.tag:
        return event
    retagged = msgspec.structs.replace(version, tag=tag)
    return msgspec.structs.replace(event, payload=msgspec.msgpack.encode(retagged))


def _link_rows(
    db: Database, rows: list[_Row], placed: list[tuple[int, bool]], report: PullReport
) -> None:
    db.conn.executemany(
        "INSERT OR REPLACE INTO team_links (machine, machine_position, position, content, first)"
        " VALUES (?, ?, ?, ?, ?)",
        [
            (r.machine, r.position, position, r.content, int(appended))
            for r, (position, appended) in zip(rows, placed, strict=True)
        ],
    )
    appended = sum(a for _, a in placed)
    report.appended += appended
    report.shared += len(placed) - appended


def _erasure(db: Database, log: EventLog, row: _Row, report: PullReport) -> None:
    """A machine's ``PayloadsErased``: erase the replica's copies of what it names."""
    assert row.payload is not None
    try:
        record = decode_payload(row.type, row.schema, row.payload)
    except LogError:
        record = None
    positions: list[int] = []
    if isinstance(record, PayloadsErased) and record.positions:
        positions = _translate(db, row.machine, record.positions)
    if not isinstance(record, PayloadsErased) or not positions:
        placed = log.append_imported([_imported(row)])
        _link_rows(db, [row], placed, report)
        return
    translated = msgspec.structs.replace(record, positions=positions)
    imported = msgspec.structs.replace(_imported(row), payload=msgspec.msgpack.encode(translated))
    done = log.erase_imported(positions, imported)
    if done.positions:
        report.erased += len(positions)
        placed = [(done.positions[0], True)]
    else:
        (existing,) = log.append_imported([imported])
        placed = [existing]
    _link_rows(db, [row], placed, report)


def _translate(db: Database, machine: str, positions: list[int]) -> list[int]:
    """The replica positions of a machine's positions (erasure records left out: they are
    never erased)."""
    found: set[int] = set()
    wanted = sorted(set(positions))
    for start in range(0, len(wanted), 5000):
        chunk = wanted[start : start + 5000]
        marks = ",".join("?" * len(chunk))
        for (position,) in db.conn.execute(
            f"SELECT l.position FROM team_links l JOIN events e ON e.position = l.position"
            f" WHERE l.machine = ? AND l.machine_position IN ({marks})"
            " AND e.type <> 'PayloadsErased'",
            (machine, *chunk),
        ):
            found.add(int(position))
    return sorted(found)


def _save(db: Database, moved: list[MachineHead], state: dict[str, _Known]) -> None:
    db.conn.executemany(
        "INSERT INTO team_machines (machine, label, refused, pulled, hash, seen, broken)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (machine) DO UPDATE SET"
        " label = excluded.label, refused = excluded.refused, pulled = excluded.pulled,"
        " hash = excluded.hash, seen = excluded.seen, broken = excluded.broken",
        [
            (
                m.machine,
                state[m.machine].label,
                state[m.machine].refused,
                state[m.machine].pulled,
                state[m.machine].hash,
                state[m.machine].seen,
                state[m.machine].broken,
            )
            for m in moved
        ],
    )
