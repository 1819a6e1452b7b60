"""The server's side of a pooled experiment: every machine's record of one skill, the team
tests of it, and the one decision each test gets.

A pooled test is a row of ``skillops_team_tests``: a skill, its champion and challenger
*bodies* (hashes, never a machine's own tags) and the start of the first machine's test that
opened it. At most one test per (skill, champion, challenger) is open at a time (a partial
unique index), and its decision is written by one ``UPDATE … WHERE outcome IS NULL``: of two
machines whose pooled rule crosses at the same moment exactly one writes it, and every
machine then records that row. The pool itself is read from the synced events
(``skillops_events``) of the skill's stream; what they count is decided by
``versions/pooled.py``, which never touches the server.

Every call is short and bounded (a connect timeout, a statement timeout, and a watchdog
that cuts a call the server stopped answering after :data:`STALL_BOUND`), and a server that
failed is not asked again for :data:`RETRY_AFTER` seconds: an absent or slow server means a
machine routes on its own counts, never a stalled daemon.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import msgspec
import psycopg

from ..events import RecordedEvent, content_id
from ..events.types import TeamDecision
from .stall import Watchdog
from .sync import ensure_pool_schema, ensure_schema, first_line, redact_url, scrub

CONNECT_TIMEOUT = 3  # seconds (libpq's minimum is 2)
STATEMENT_TIMEOUT_MS = 5000
# A server that stops answering mid-call (frozen, a dropped VPN) cannot enforce its statement
# timeout: the watchdog cuts the connection after this many seconds of the whole call.
STALL_BOUND = 2 * STATEMENT_TIMEOUT_MS / 1000
RETRY_AFTER = 30.0
# What a machine's skill stream needs to be folded (its routings are not: they are many).
_FOLDED = (
    "SkillVersionCreated",
    "SkillManaged",
    "SkillUnmanaged",
    "SkillChallengerStarted",
    "SkillExecutionRecorded",
    "SkillPromoted",
    "SkillRetired",
    "SkillRolledBack",
)
_failed: dict[str, float] = {}  # url -> monotonic time of its last failure


class PoolUnavailable(Exception):
    """The server did not answer, or cannot hold a pooled test: one line, why."""


class TeamTest(msgspec.Struct, frozen=True, kw_only=True):
    """One row of ``skillops_team_tests``."""

    test_id: str
    skill: str
    champion: str
    challenger: str
    started_at: str
    opened_by: str
    outcome: str | None = None
    decided_by: str | None = None
    decided_at: str | None = None  # ISO 8601 UTC, the server's clock
    decision: TeamDecision | None = None


class Snapshot(msgspec.Struct, frozen=True, kw_only=True):
    """What the server holds for one skill: every other machine's stream, the team tests."""

    machines: dict[str, list[RecordedEvent]]
    tests: list[TeamTest]


def test_id(skill: str, champion: str, challenger: str, started_at: str) -> str:
    """A team test's key: the skill, both bodies and the start of the test that opened it."""
    return content_id("team-test", skill, champion, challenger, started_at)


def _instant(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def bind(tests: list[TeamTest], champion: str, challenger: str, started_at: str) -> TeamTest | None:
    """The team test a machine's test of (champion, challenger) begun at ``started_at`` belongs
    to: the oldest one of the pair still open when it began (open now, or decided after).
    A machine that was offline while the team decided adopts that decision; a test begun
    after it is a re-test, with a test of its own."""
    began = _instant(started_at)
    for test in sorted(tests, key=lambda t: (t.started_at, t.test_id)):
        if (test.champion, test.challenger) != (champion, challenger):
            continue
        if test.outcome is None:
            return test
        decided = _instant(test.decided_at or "")
        if began is None or decided is None or decided > began:
            return test
    return None


def _connect(url: str) -> psycopg.Connection[tuple[object, ...]]:
    failed = _failed.get(url)
    if failed is not None and time.monotonic() - failed < RETRY_AFTER:
        raise PoolUnavailable(
            f"{redact_url(url)} did not answer {time.monotonic() - failed:.0f} s ago"
        )
    try:
        return psycopg.connect(
            url,
            connect_timeout=CONNECT_TIMEOUT,
            application_name="skillops pool",
            options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}"
            f" -c lock_timeout={STATEMENT_TIMEOUT_MS}",
        )
    except (psycopg.Error, ValueError) as exc:
        _failed[url] = time.monotonic()
        raise PoolUnavailable(
            f"cannot reach {redact_url(url)}: {scrub(first_line(exc), url)}"
        ) from exc


def _iso(value: object) -> str | None:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    return None


def _tests(conn: psycopg.Connection[tuple[object, ...]], skill: str) -> list[TeamTest]:
    out = []
    for row in conn.execute(
        "SELECT test_id, skill, champion, challenger, started_at, opened_by, outcome,"
        " decided_by, decided_at, record FROM skillops_team_tests WHERE skill = %s"
        " ORDER BY started_at, test_id",
        (skill,),
    ):
        record = row[9]
        decision: TeamDecision | None = None
        if isinstance(record, bytes | memoryview):
            try:
                decision = msgspec.json.decode(bytes(record), type=TeamDecision)
            except msgspec.DecodeError:
                decision = None  # a row no rule wrote: never adopted (versions/pooled.py)
        out.append(
            TeamTest(
                test_id=str(row[0]),
                skill=str(row[1]),
                champion=str(row[2]),
                challenger=str(row[3]),
                started_at=str(row[4]),
                opened_by=str(row[5]),
                outcome=None if row[6] is None else str(row[6]),
                decided_by=None if row[7] is None else str(row[7]),
                decided_at=_iso(row[8]),
                decision=decision,
            )
        )
    return out


def _streams(
    conn: psycopg.Connection[tuple[object, ...]], skill: str, me: str
) -> dict[str, list[RecordedEvent]]:
    """Every other machine's events of the skill's stream whose payload the server holds;
    machines whose chain the server refused are left out."""
    out: dict[str, list[RecordedEvent]] = {}
    rows = conn.execute(
        "SELECT e.machine, e.position, e.event_id, e.stream, e.stream_version, e.type,"
        " e.schema, e.recorded_at, e.payload, e.hash FROM skillops_events e"
        " JOIN skillops_machines m ON m.machine = e.machine"
        " WHERE e.stream = %s AND e.machine <> %s AND m.refused IS NULL"
        " AND e.type = ANY(%s) AND e.payload IS NOT NULL ORDER BY e.machine, e.position",
        (f"skill:{skill}", me, list(_FOLDED)),
    )
    for row in rows:
        out.setdefault(str(row[0]), []).append(
            RecordedEvent(
                position=int(row[1]),  # type: ignore[call-overload]
                event_id=str(row[2]),
                stream=str(row[3]),
                stream_version=int(row[4]),  # type: ignore[call-overload]
                type=str(row[5]),
                schema=int(row[6]),  # type: ignore[call-overload]
                recorded_at=str(row[7]),
                data=bytes(row[8]),  # type: ignore[call-overload]
                hash=bytes(row[9]),  # type: ignore[call-overload]
            )
        )
    return out


def snapshot(
    url: str, skill: str, me: str, opening: tuple[str, str, str] | None = None
) -> Snapshot:
    """The pool of ``skill`` on the server. ``opening`` (champion, challenger, start) of the
    test running here: a team test of that pair is opened with this start unless one is open
    (the caller binds its test to the right one, see ``versions/pooled.bind``)."""
    conn = _connect(url)
    watchdog = Watchdog(conn, redact_url(url), bound=STALL_BOUND)
    try:
        watchdog.__enter__()
        ensure_schema(conn)
        if not ensure_pool_schema(conn):
            raise PoolUnavailable(
                f"{redact_url(url)} has no skillops_team_tests table and this role may not"
                " create it (a sync by a role that may create tables does)"
            )
        with conn.transaction():
            tests = _tests(conn, skill)
            if opening is not None and bind(tests, *opening) is None:
                champion, challenger, started = opening
                conn.execute(
                    "INSERT INTO skillops_team_tests (test_id, skill, champion, challenger,"
                    " started_at, opened_by) VALUES (%s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT DO NOTHING",
                    (
                        test_id(skill, champion, challenger, started),
                        skill,
                        champion,
                        challenger,
                        started,
                        me,
                    ),
                )
                tests = _tests(conn, skill)
            machines = _streams(conn, skill, me)
        return Snapshot(machines=machines, tests=tests)
    except psycopg.Error as exc:
        _failed[url] = time.monotonic()
        if watchdog.stalled is not None:
            raise PoolUnavailable(watchdog.stalled) from exc
        raise PoolUnavailable(f"{redact_url(url)}: {scrub(first_line(exc), url)}") from exc
    finally:
        watchdog.__exit__(None, None, None)
        conn.close()


def decide(url: str, decision: TeamDecision) -> TeamTest:
    """Write ``decision`` as its test's decision unless one is written; the row as it now
    stands (the caller records that one, whoever wrote it)."""
    conn = _connect(url)
    watchdog = Watchdog(conn, redact_url(url), bound=STALL_BOUND)
    try:
        watchdog.__enter__()
        with conn.transaction():
            conn.execute(
                "UPDATE skillops_team_tests SET outcome = %s, decided_by = %s,"
                " decided_at = now(), record = %s WHERE test_id = %s AND outcome IS NULL",
                (
                    decision.outcome,
                    decision.decided_by,
                    msgspec.json.encode(decision),
                    decision.test_id,
                ),
            )
            found = [t for t in _tests(conn, decision.skill) if t.test_id == decision.test_id]
        if not found:
            raise PoolUnavailable(f"team test {decision.test_id} is not on the server")
        return found[0]
    except psycopg.Error as exc:
        _failed[url] = time.monotonic()
        if watchdog.stalled is not None:
            raise PoolUnavailable(watchdog.stalled) from exc
        raise PoolUnavailable(f"{redact_url(url)}: {scrub(first_line(exc), url)}") from exc
    finally:
        watchdog.__exit__(None, None, None)
        conn.close()
