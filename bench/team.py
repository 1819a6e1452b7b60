"""Teams at scale: simulated machines' logs synced into a real PostgreSQL, and the pooled view.

Each machine's log holds ``--sessions`` real skill sessions: the qvr fixtures (a Claude Code
and a Codex session of the ``slugify-title`` skill) captured and derived once by the real
``skillopsd --once``, then copied with fresh ids (the native session id, the derived
session id, the source id, the trace and span ids, the ids the agent gave its responses and
tool calls) so every copy is its own session on its own machine, and appended with
``EventLog.append`` (so each machine has its own chain and its own first event, hence its own
machine id).

Measured, each into a fresh database on the server, with ``--content derived`` (the default):

- one machine after another (the whole team; events/s per machine as the table grows);
- N machines at once, for each N in ``--concurrency`` (separate processes, as separate
  machines would be; on a small box the clients share its cores with the server);
- the floor: the same rows (made beforehand) sent by ``COPY`` one machine after another,
  no chain check, no content choice, one transaction per machine;
- the server's size (table and indexes) per event;
- the pooled view: ``skillopsctl --team URL skill show SKILL`` cold (no replica yet) and
  warm (nothing new; then one machine with one new session), beside its floor (the same
  ``skill show`` on the replica read as a local log), when this tree has team views;
  otherwise the server-side reads a replica needs (every machine's head, one machine's new
  rows, everything), said as such.

    python bench/team.py                       # 50 machines x 300 sessions, its own server
    python bench/team.py --url postgresql://…  # a server you run (it gets bench databases)
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import itertools
import multiprocessing
import multiprocessing.pool
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import msgspec
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _corpus import home_env, program

from skillopsd.events import Database, EventLog, NewEvent, chain_links, decode_payload
from skillopsd.events.types import SessionDerived, SourceFileTracked, SpanDerived
from skillopsd.team import Content, machine_id, sync
from skillopsd.team.sync import _COLUMNS, SyncReport, _row, ensure_schema

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO.parent / "shared" / "fixtures" / "qvr"
TEMPLATES = {
    "claude": ("claude_skill.jsonl", ".claude/projects/-home-u-proj"),
    "codex": ("codex_skill.jsonl", ".codex/sessions/2026/06/27"),
}
SKILL = "slugify-title"
_AGENT_IDS = ("gen_ai.response.id", "gen_ai.tool.call.id")


class Template(msgspec.Struct):
    """One captured and derived session: its events, and the ids a copy must change."""

    events: list[tuple[str, str, int, bytes]]  # (stream, type, schema, payload)
    ids: list[str]  # every id of the session, each replaced by one of the same length
    skills: list[str] = []  # the skills the session loaded


# --- the machines' logs ---------------------------------------------------------------------


def templates(work: Path) -> tuple[list[Template], list[NewEvent]]:
    """The fixture sessions as the real daemon stores them; and the events shared by every
    session of the skill (its version), which a machine stores once."""
    home = work / "template-home"
    for agent, (name, folder) in TEMPLATES.items():
        target = home / folder
        target.mkdir(parents=True)
        text = (FIXTURES / name).read_bytes()
        stem = "rollout-2026-06-27T15-53-04-" if agent == "codex" else ""
        session = _native_id(text)
        shutil.copy(FIXTURES / name, target / f"{stem}{session}.jsonl")
    done = subprocess.run(
        [program("skillopsd"), "--once"], env=home_env(home), capture_output=True, timeout=300
    )
    if done.returncode != 0:
        sys.exit(f"team bench: skillopsd --once failed: {done.stderr.decode()[-500:]}")
    db = Database.open(home / ".local" / "share" / "skillops" / "skillops.db", create=False)
    try:
        links = list(chain_links(db, after=0, limit=1_000_000))
    finally:
        db.close()
    decoded = []
    native: dict[str, str] = {}  # a derived session id, a source id -> the native session id
    for link in links:
        assert link.payload is not None
        event = decode_payload(link.type, link.schema, link.payload)
        decoded.append((link, link.payload, event))
        if isinstance(event, SourceFileTracked):
            native[event.source_id] = event.session
        elif isinstance(event, SessionDerived):
            native[event.session_id] = event.native_session_id
    shared: list[NewEvent] = []
    by_session: dict[str, Template] = {}
    for link, payload, event in decoded:
        key: str | None = None
        if isinstance(event, SourceFileTracked):
            key = event.session
        elif isinstance(event, SessionDerived):
            key = event.native_session_id
        elif isinstance(event, SpanDerived):
            key = native.get(event.session_id)
        elif link.stream.startswith("source:"):
            key = native.get(link.stream.removeprefix("source:"))
        if key is None:
            shared.append(NewEvent(stream=link.stream, payload=event))
            continue
        template = by_session.setdefault(key, Template(events=[], ids=[key]))
        template.events.append((link.stream, link.type, link.schema, payload))
        ids = template.ids
        if isinstance(event, SourceFileTracked):
            ids.append(event.source_id)
        if isinstance(event, SessionDerived):
            ids += [event.session_id, *event.span_ids]
            template.skills = list(event.skills)
        if isinstance(event, SpanDerived):
            ids += [event.session_id, event.trace_id, event.span_id]
            # The ids the agent gave its responses and tool calls: a copy keeping them would
            # be a copy of one conversation (projections.copies), counted once.
            for name in _AGENT_IDS:
                value = event.attributes.get(name)
                if isinstance(value, str) and len(value) >= 8:
                    ids.append(value)
    for template in by_session.values():
        template.ids = sorted(set(template.ids), key=len, reverse=True)
    if len(by_session) != len(TEMPLATES):
        sys.exit(f"team bench: expected {len(TEMPLATES)} template sessions, got {len(by_session)}")
    return list(by_session.values()), shared


def _native_id(text: bytes) -> str:
    """The session id a fixture names (Claude: sessionId; Codex: the session_meta id)."""
    for key in (b'"sessionId":"', b'"id":"'):
        at = text.find(key)
        if at >= 0:
            start = at + len(key)
            return text[start : start + 36].decode()
    raise SystemExit("team bench: a fixture without a session id")


def _fresh(old: str, seed: str) -> str:
    """An id of the same length and alphabet as ``old``, unique to ``seed``."""
    if len(old) == 36 and old.count("-") == 4:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, seed))
    digest = uuid.uuid5(uuid.NAMESPACE_URL, seed).hex * 2
    return digest[: len(old)]


def build_machine(
    path: Path, machine: int, sessions: int, kinds: list[Template], shared: list[NewEvent]
) -> int:
    """A machine's log of ``sessions`` sessions (alternating the templates); its events."""
    db = Database.open(path, fsync_commits=False)
    try:
        log = EventLog(db)
        batch: list[NewEvent] = []
        total = 0
        for n in range(sessions):
            template = kinds[n % len(kinds)]
            swaps = [
                (old.encode(), _fresh(old, f"{machine}/{n}/{old}").encode()) for old in template.ids
            ]
            for stream, type_name, schema, payload in template.events:
                for old, new in swaps:
                    payload = payload.replace(old, new)
                    stream = stream.replace(old.decode(), new.decode())
                event = decode_payload(type_name, schema, payload)
                batch.append(NewEvent(stream=stream, payload=event))
            if n == 0:
                batch += shared  # the skill's version: once per machine, after its first use
            if len(batch) >= 5000:
                total += len(log.append(batch).positions)
                batch = []
        if batch:
            total += len(log.append(batch).positions)
        return total
    finally:
        db.close()


# --- the server ---------------------------------------------------------------------------------


class Cluster(msgspec.Struct):
    url: str
    postmaster: int | None  # known when this bench started the server: its CPU is measured


@contextlib.contextmanager
def server(url: str | None) -> Iterator[Cluster]:
    """``url``, or a throwaway cluster as the tests start one (tests/_postgres.py)."""
    if url:
        yield Cluster(url, None)
        return
    sys.path.insert(0, str(REPO))
    from tests._postgres import server_bin, start_server

    if server_bin() is None:
        sys.exit("team bench: no PostgreSQL binaries (apt-get install postgresql), or give --url")
    started = start_server()
    running = next(started)
    pid = int((running.base / "data" / "postmaster.pid").read_text().split()[0])
    try:
        yield Cluster(running.url(), pid)
    finally:
        with contextlib.suppress(StopIteration):
            next(started)


def server_cpu(postmaster: int | None) -> float:
    """CPU seconds the server has used: the postmaster, its live children, and the children
    it has reaped (each sync's backend ends with its connection)."""
    if postmaster is None:
        return float("nan")
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rpartition(")")[2].split()
            pid, ppid = int(stat.parent.name), int(fields[1])
            if pid == postmaster:
                total += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
            elif ppid == postmaster:
                total += int(fields[11]) + int(fields[12])
    return total / tick


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


_names = itertools.count(1)


def fresh_database(url: str, tag: str) -> str:
    """A new, empty database on the server of ``url``; its URL."""
    name = f"skillops_bench_{os.getpid()}_{next(_names)}_{tag}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    base, _, _ = url.rpartition("/")
    query = url.partition("?")[2]
    return f"{base}/{name}" + (f"?{query}" if query else "")


def _pool(processes: int) -> multiprocessing.pool.Pool:
    """Forked workers with the default SIGTERM: the pool ends them with it when it closes
    (this bench's own handler, inherited, would unwind a worker mid-wait and hang it)."""
    context = multiprocessing.get_context("fork")
    return context.Pool(
        processes, initializer=signal.signal, initargs=(signal.SIGTERM, signal.SIG_DFL)
    )


def _sync_one(args: tuple[str, str]) -> tuple[int, float]:
    path, url = args
    db = Database.open(path, create=False)
    try:
        started = time.perf_counter()
        report = sync(db, url, Content.DERIVED)
        return report.sent, time.perf_counter() - started
    finally:
        db.close()


def one_after_another(paths: list[Path], url: str) -> tuple[int, float, list[float]]:
    """Every machine synced in turn: events, seconds, events/s of each machine."""
    total, rates = 0, []
    started = time.perf_counter()
    for path in paths:
        sent, seconds = _sync_one((str(path), url))
        total += sent
        rates.append(sent / seconds)
    return total, time.perf_counter() - started, rates


def at_once(paths: list[Path], url: str) -> tuple[int, float]:
    """Every machine in ``paths`` synced by its own process, all started together."""
    with psycopg.connect(url) as conn:
        ensure_schema(conn)  # as a team's first machine would: not part of the race
    started = time.perf_counter()
    with _pool(len(paths)) as pool:
        results = pool.map(_sync_one, [(str(p), url) for p in paths])
    return sum(sent for sent, _ in results), time.perf_counter() - started


def floor(paths: list[Path], url: str) -> tuple[int, float]:
    """The same rows by COPY, one transaction per machine, made before the clock starts."""
    prepared = []
    for path in paths:
        db = Database.open(path, create=False)
        try:
            machine = machine_id(db) or ""
            report = SyncReport(machine, "", "", "derived", 0, 0, 0, 0, 0, 0, 0, 0, 0)
            rows = [
                _row(machine, link, Content.DERIVED, report)
                for link in chain_links(db, after=0, limit=10_000_000)
            ]
        finally:
            db.close()
        prepared.append((machine, rows))
    with psycopg.connect(url) as conn:
        ensure_schema(conn)
        started = time.perf_counter()
        for machine, rows in prepared:
            with conn.transaction():
                conn.execute(
                    "INSERT INTO skillops_machines (machine, label) VALUES (%s, 'floor')",
                    (machine,),
                )
                with conn.cursor().copy(f"COPY skillops_events ({_COLUMNS}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
        seconds = time.perf_counter() - started
    return sum(len(rows) for _, rows in prepared), seconds


def server_size(url: str) -> tuple[int, int, dict[str, int]]:
    """(events, table bytes with TOAST, bytes of each index) of skillops_events."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM skillops_events), pg_table_size('skillops_events')"
        ).fetchone()
        indexes = conn.execute(
            "SELECT indexrelid::regclass::text, pg_relation_size(indexrelid) FROM pg_index"
            " WHERE indrelid = 'skillops_events'::regclass ORDER BY 1"
        ).fetchall()
    assert row is not None
    return int(row[0]), int(row[1]), {str(name): int(size) for name, size in indexes}


# --- the pooled view ----------------------------------------------------------------------------


def has_team_views() -> bool:
    return importlib.util.find_spec("skillopsd.team.replica") is not None


def timed_show(url: str, cache: Path, *extra: str) -> tuple[float, str]:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    return _timed([program("skillopsctl"), "--team", url, "skill", "show", SKILL, *extra], env)


def timed_local_show(replica: Path) -> float:
    """The same ``skill show`` on the replica read as a local log (``SKILLOPS_DB``): what the
    team path adds (importing the driver, connecting, asking every head) is the difference."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("SKILLOPS_TEAM_URL", "SKILLOPS_SYNC_URL")
    }
    env["SKILLOPS_DB"] = str(replica)
    return _timed([program("skillopsctl"), "skill", "show", SKILL], env)[0]


def _timed(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(
        command,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"team bench: skill show failed: {done.stderr.strip()[-500:]}")
    return seconds, done.stdout


def shown_sessions(url: str, cache: Path) -> int:
    """The sessions the pooled ``skill show`` counts (every machine's, each once)."""
    _, out = timed_show(url, cache, "--json")
    report = msgspec.json.decode(out)
    return sum(len(v["sessions"]) for v in report["versions"])


def server_reads(url: str, machine: str, head: int) -> tuple[float, float, float, int]:
    """What a replica asks the server: every machine's head (warm, nothing new), one
    machine's rows after a point (one new session), and every row (cold); seconds each."""
    with psycopg.connect(url) as conn:
        started = time.perf_counter()
        heads = conn.execute(
            "SELECT m.machine, (SELECT max(position) FROM skillops_events e"
            " WHERE e.machine = m.machine) FROM skillops_machines m"
        ).fetchall()
        warm = time.perf_counter() - started
        started = time.perf_counter()
        conn.execute(
            "SELECT position, event_id, stream, stream_version, type, schema, recorded_at, link,"
            " codec, digest, hash, content, payload FROM skillops_events"
            " WHERE machine = %s AND position > %s ORDER BY position",
            (machine, head - 25),
        ).fetchall()
        one = time.perf_counter() - started
        started = time.perf_counter()
        rows = 0
        with conn.cursor(name="cold") as cursor:
            cursor.itersize = 5000
            cursor.execute(
                "SELECT position, event_id, stream, stream_version, type, schema, recorded_at,"
                " link, codec, digest, hash, content, payload FROM skillops_events"
                " ORDER BY machine, position"
            )
            for _ in cursor:
                rows += 1
        cold = time.perf_counter() - started
    assert len(heads) > 0
    return warm, one, cold, rows


# --- main ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--machines", type=int, default=50)
    parser.add_argument("--sessions", type=int, default=300, help="sessions per machine")
    parser.add_argument(
        "--concurrency",
        default="5,10,25,50",
        help="machines syncing at once, comma-separated (each at most --machines)",
    )
    parser.add_argument("--url", default=None, help="a PostgreSQL you run (default: start one)")
    parser.add_argument("--repeat", type=int, default=3, help="warm skill show runs")
    args = parser.parse_args()
    # A stop (SIGTERM) unwinds like Ctrl-C: the server this started is stopped and removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    levels = sorted({min(int(n), args.machines) for n in args.concurrency.split(",") if n})

    with tempfile.TemporaryDirectory(prefix="skillops-team-bench-") as tmp:
        work = Path(tmp)
        kinds, shared = templates(work)
        per_session = sum(len(t.events) for t in kinds) / len(kinds)
        started = time.perf_counter()
        paths = [work / f"machine-{m:03d}.db" for m in range(args.machines)]
        jobs = [(path, m, args.sessions, kinds, shared) for m, path in enumerate(paths)]
        with _pool(os.cpu_count() or 1) as pool:
            events = sum(pool.starmap(build_machine, jobs))
        built = time.perf_counter() - started
        sessions = args.machines * args.sessions
        print(
            f"machines: {args.machines} x {args.sessions} sessions = {sessions:,} sessions,"
            f" {events:,} events ({per_session:.0f} per session; built in {built:.1f} s,"
            f" {events / built:,.0f} events/s)"
        )
        with server(args.url) as cluster:
            base = cluster.url
            url = fresh_database(base, "floor")
            copied, floor_s = floor(paths, url)
            print(
                f"floor (COPY of the same rows, one machine after another): {copied:,} events"
                f" in {floor_s:.2f} s, {copied / floor_s:,.0f} events/s"
            )
            team = fresh_database(base, "team")
            cpu = server_cpu(cluster.postmaster), time.process_time()
            sent, seconds, rates = one_after_another(paths, team)
            spent = server_cpu(cluster.postmaster) - cpu[0], time.process_time() - cpu[1]
            assert sent == events, (sent, events)
            tenth = max(1, len(rates) // 10)
            print(
                f"sync, one machine after another: {sent:,} events in {seconds:.2f} s,"
                f" {sent / seconds:,.0f} events/s (first tenth of the machines"
                f" {statistics.mean(rates[:tenth]):,.0f}/s each, last tenth"
                f" {statistics.mean(rates[-tenth:]):,.0f}/s)"
            )
            print(f"ratio sync/floor: {floor_s / seconds:.2f}x")
            print(_cpu_line(sent, *spent))
            for n in levels:
                target = fresh_database(base, f"c{n}")
                cpu = server_cpu(cluster.postmaster), children_cpu()
                sent, wall = at_once(paths[:n], target)
                spent = server_cpu(cluster.postmaster) - cpu[0], children_cpu() - cpu[1]
                print(
                    f"sync, {n} machines at once: {sent:,} events in {wall:.2f} s,"
                    f" {sent / wall:,.0f} events/s; {_cpu_line(sent, *spent)}"
                )
            rows, table, each = server_size(team)
            indexes = sum(each.values())
            print(
                f"server: {rows:,} events, table {table / 2**20:.1f} MiB + indexes"
                f" {indexes / 2**20:.1f} MiB = {(table + indexes) / rows:.0f} bytes per event"
                f" (indexes: {', '.join(f'{n} {b / 2**20:.1f} MiB' for n, b in each.items())})"
            )
            pooled(team, paths, work, args.repeat, kinds, args.sessions)


def _cpu_line(events: int, server: float, clients: float) -> str:
    """CPU per event on each side: what bounds the rate once clients are other machines."""
    line = f"CPU per 1,000 events: clients {clients / events * 1000:.3f} s"
    if server == server:  # not NaN: this bench started the server
        line += (
            f", server {server / events * 1000:.3f} s (one server core takes"
            f" {events / server:,.0f} events/s)"
        )
    return line


def pooled(
    url: str,
    paths: list[Path],
    work: Path,
    repeat: int,
    kinds: list[Template],
    sessions: int,
) -> None:
    if has_team_views():
        cache = work / "cache"
        cold, _ = timed_show(url, cache)
        warm = statistics.median(timed_show(url, cache)[0] for _ in range(repeat))
        (replica,) = (cache / "skillops" / "team").glob("*.db")
        local = statistics.median(timed_local_show(replica) for _ in range(repeat))
        counted = shown_sessions(url, cache)
        _one_more_session(paths[0], url, kinds)
        grown, _ = timed_show(url, cache)
        if shown_sessions(url, cache) != counted + 1:
            sys.exit("team bench: the pooled skill show did not count the new session")
        print(
            f"skillopsctl --team skill show {SKILL} over {counted:,} sessions: cold (no"
            f" replica) {cold:.2f} s; warm {warm:.2f} s (median of {repeat}); after one machine"
            f" synced one more session {grown:.2f} s (target <= 1 s)"
        )
        print(
            f"floor: the same skill show on the replica as a local log {local:.2f} s (median of"
            f" {repeat}); ratio floor/warm {local / warm:.2f}x"
        )
        # Every machine's sessions that loaded the skill, each once.
        want = len(paths) * sum(SKILL in kinds[n % len(kinds)].skills for n in range(sessions))
        if counted != want:
            sys.exit(f"team bench: the pooled skill show counted {counted:,} of {want:,}")
        return
    db = Database.open(paths[0], create=False)
    try:
        machine = machine_id(db) or ""
        row = db.conn.execute("SELECT max(position) FROM events").fetchone()
        head = int(row[0]) if row else 0
    finally:
        db.close()
    warm, one, cold, rows = server_reads(url, machine, head)
    print(
        "team views are not in this tree: the server-side reads a pooled skill show needs"
        f" instead: every machine's head {warm * 1000:.1f} ms (warm, nothing new); one"
        f" machine's last session {one * 1000:.1f} ms; every row ({rows:,}) {cold:.2f} s"
        " (cold replica, fetch only)"
    )


def _one_more_session(path: Path, url: str, kinds: list[Template]) -> None:
    db = Database.open(path, fsync_commits=False)
    try:
        template = kinds[0]
        swaps = [(old, _fresh(old, f"extra/{old}")) for old in template.ids]
        batch = []
        for stream, type_name, schema, payload in template.events:
            for old, new in swaps:
                payload = payload.replace(old.encode(), new.encode())
                stream = stream.replace(old, new)
            event = decode_payload(type_name, schema, payload)
            batch.append(NewEvent(stream=stream, payload=event))
        EventLog(db).append(batch)
        sync(db, url, Content.DERIVED)
    finally:
        db.close()


if __name__ == "__main__":
    main()
