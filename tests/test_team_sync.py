"""``skillopsctl sync --to postgresql://…`` against a real PostgreSQL, through the real CLI."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import apsw
import msgspec
import psycopg
import pytest

from skillopsd.events import (
    GENESIS_HASH,
    ChainLink,
    Database,
    EventLog,
    NewEvent,
    link_hash,
)
from skillopsd.events.types import AnnotationAdded
from skillopsd.team.content import DECISION_TYPES

from ._capture_helpers import FIXTURES, claude_project
from ._daemon import daemon_env, db_path
from ._postgres import Server, start_server
from .conftest import console_script, ctl_command, run_ctl

pytestmark = pytest.mark.slow

MARKER = b"ZQX-team-marker-7731"
SKILL_SESSION = "4438ec3f-cef8-537e-8237-ef36ba665ed7"


@pytest.fixture(scope="session")
def team_server() -> Iterator[Server]:
    yield from start_server()


@pytest.fixture
def team_url(team_server: Server) -> str:
    return team_server.new_database()


def _machine(tmp_path: Path, name: str, events: int) -> Path:
    """A machine's log of ``events`` annotations (each its own stream)."""
    path = tmp_path / name / "skillops.db"
    path.parent.mkdir(parents=True)
    _annotate(path, events, name)
    return path


def _annotate(path: Path, events: int, tag: str, start: int = 0) -> None:
    db = Database.open(path)
    try:
        EventLog(db).append(
            [
                NewEvent(
                    stream=f"annotation:{tag}:{i}",
                    payload=AnnotationAdded(
                        annotation_id=f"{tag}-{i}", session_id=f"s{i % 7}", label="good"
                    ),
                )
                for i in range(start, start + events)
            ]
        )
    finally:
        db.close()


def _sync(path: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_ctl("--db", str(path), "sync", "--to", url, *args, "--json", timeout=300)


def _popen(path: Path, url: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*ctl_command(), "--db", str(path), "sync", "--to", url, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _report(done: subprocess.CompletedProcess[str]) -> dict[str, object]:
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert isinstance(report, dict)
    return report


def _counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT machine, count(*), count(DISTINCT position), max(position)"
            " FROM skillops_events GROUP BY machine"
        ).fetchall()
    for machine, count, distinct, top in rows:
        assert count == distinct == top, f"machine {machine}: gaps or duplicates"
    return {str(machine): int(count) for machine, count, _, _ in rows}


def _verified(url: str) -> dict[str, int]:
    """Every machine's chain on the server, walked from genesis: events per machine."""
    checked: dict[str, int] = {}
    with psycopg.connect(url) as conn:
        machines = [r[0] for r in conn.execute("SELECT machine FROM skillops_machines")]
        for machine in machines:
            prev = GENESIS_HASH
            rows = conn.execute(
                "SELECT position, event_id, stream, stream_version, type, schema, recorded_at,"
                " link, codec, digest, hash FROM skillops_events WHERE machine = %s"
                " ORDER BY position",
                (machine,),
            )
            n = 0
            for row in rows:
                link = ChainLink(*row[:9], bytes(row[9]), bytes(row[10]), None)
                assert link.position == n + 1
                assert link_hash(link, prev) == link.hash, f"{machine} at {link.position}"
                prev = link.hash
                n += 1
            checked[str(machine)] = n
    return checked


def test_sync_twice_sends_nothing_twice(tmp_path: Path, team_url: str) -> None:
    path = _machine(tmp_path, "a", 120)
    first = _report(_sync(path, team_url))
    assert (first["sent"], first["held"], first["held_before"]) == (120, 120, 0)
    again = _report(_sync(path, team_url))
    assert (again["sent"], again["held"], again["held_before"]) == (0, 120, 120)
    _annotate(path, 10, "a", start=120)
    # The URL from the environment, as a daemon's unit would give it.
    done = run_ctl("--db", str(path), "sync", "--json", env={"SKILLOPS_SYNC_URL": team_url})
    more = _report(done)
    assert (more["sent"], more["held"]) == (10, 130)
    assert _counts(team_url) == {str(first["machine"]): 130}
    assert _verified(team_url) == {str(first["machine"]): 130}


def test_three_machines_at_once(tmp_path: Path, team_url: str) -> None:
    paths = [_machine(tmp_path, name, 400 + 37 * i) for i, name in enumerate("abc")]
    procs = [_popen(p, team_url, "--batch", "50", "--json") for p in paths]
    # The same machine twice at once: the second waits on the first's lock, never repeats it.
    twin = _popen(paths[0], team_url, "--batch", "50")
    reports = []
    _, err = twin.communicate(timeout=300)
    assert twin.returncode == 0, err
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        reports.append(json.loads(out))
    want = {r["machine"]: 400 + 37 * i for i, r in enumerate(reports)}
    assert len(want) == 3
    assert _counts(team_url) == want
    assert _verified(team_url) == want


def test_kill_9_mid_sync_then_resume(tmp_path: Path, team_url: str) -> None:
    total = 4000
    path = _machine(tmp_path, "k", total)
    proc = _popen(path, team_url, "--batch", "10")
    _wait_for(team_url, proc, 50)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the sync ended before it could be killed"
    partial = sum(_counts(team_url).values())
    assert 0 < partial < total
    done = _report(_sync(path, team_url))
    assert done["held_before"] == partial
    assert done["sent"] == total - partial
    assert _verified(team_url) == {done["machine"]: total}


def test_server_restarted_mid_sync_then_resume(tmp_path: Path, team_server: Server) -> None:
    team_url = team_server.new_database()
    total = 4000
    path = _machine(tmp_path, "r", total)
    proc = _popen(path, team_url, "--batch", "10")
    _wait_for(team_url, proc, 50)
    team_server.restart()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    partial = sum(_counts(team_url).values())
    assert 0 < partial < total
    done = _report(_sync(path, team_url))
    assert (done["held_before"], done["sent"]) == (partial, total - partial)
    assert _verified(team_url) == {done["machine"]: total}


def _wait_for(url: str, proc: subprocess.Popen[str], events: int) -> None:
    """Until the server holds ``events`` of the running sync (it must still be running)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if sum(_counts(url).values()) >= events:
                return
        except psycopg.errors.UndefinedTable:
            pass
        time.sleep(0.02)
    raise AssertionError(f"the sync ended (or stalled) before {events} events reached the server")


def _tamper(path: Path, position: int) -> None:
    """Change one stored payload behind the log's back (as a disk or a hand might)."""
    conn = apsw.Connection(str(path))
    conn.execute("DROP TRIGGER events_no_update")
    other = msgspec.msgpack.encode(
        AnnotationAdded(annotation_id="forged", session_id="s0", label="bad")
    )
    conn.execute("UPDATE events SET data = ?, codec = 0 WHERE position = ?", (other, position))
    conn.close()


def test_tampered_log_refused_others_accepted(tmp_path: Path, team_url: str) -> None:
    bad = _machine(tmp_path, "bad", 60)
    good = _machine(tmp_path, "good", 60)
    _tamper(bad, 25)
    procs = [_popen(p, team_url, "--batch", "7") for p in (bad, good)]
    (_, err_bad), (_, err_good) = (p.communicate(timeout=300) for p in procs)
    assert procs[1].returncode == 0, err_good
    assert procs[0].returncode == 1, err_bad
    assert "Traceback" not in err_bad
    assert len(err_bad.strip().splitlines()) == 1
    assert "chain breaks at position 25" in err_bad
    counts = _counts(team_url)
    assert sorted(counts.values()) == [24, 60]  # nothing of it past the break
    again = _sync(bad, team_url)
    assert again.returncode == 1 and "position 25" in again.stderr
    assert sorted(_counts(team_url).values()) == [24, 60]
    with psycopg.connect(team_url) as conn:
        refused = conn.execute("SELECT refused FROM skillops_machines WHERE refused IS NOT NULL")
        assert [r[0] for r in refused] == [err_bad.strip().removeprefix("skillopsctl sync: ")]


def test_a_restricted_role_syncs_into_existing_tables(tmp_path: Path, team_url: str) -> None:
    """A machine's role that may only read, insert and update the tables is enough."""
    _report(_sync(_machine(tmp_path, "owner", 5), team_url))
    with psycopg.connect(team_url, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS machine_role")
        conn.execute("CREATE ROLE machine_role LOGIN")
        conn.execute(
            "GRANT SELECT, INSERT, UPDATE ON skillops_machines, skillops_events TO machine_role"
        )
    limited = team_url.replace("//skillops@", "//machine_role@")
    report = _report(_sync(_machine(tmp_path, "limited", 8), limited))
    assert report["sent"] == 8
    assert sorted(_counts(team_url).values()) == [5, 8]


def test_an_empty_log_sends_nothing(tmp_path: Path, team_url: str) -> None:
    path = tmp_path / "empty.db"
    Database.open(path).close()
    done = run_ctl("--db", str(path), "sync", "--to", team_url)
    assert done.returncode == 0, done.stderr
    assert "nothing to sync" in done.stdout


def test_server_unreachable_is_one_line(tmp_path: Path) -> None:
    path = _machine(tmp_path, "u", 3)
    done = run_ctl("--db", str(path), "sync", "--to", "postgresql://u:secretpw@127.0.0.1:1/x")
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert "secretpw" not in done.stderr and "cannot connect" in done.stderr
    missing = run_ctl("--db", str(path), "sync", env={"SKILLOPS_SYNC_URL": ""})
    assert missing.returncode == 2 and "--to" in missing.stderr


# --- what leaves the machine, on a captured session -----------------------------------------


def _captured_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    text = (FIXTURES / "claude_skill.jsonl").read_bytes()
    assert "Café Déjà Vu".encode() in text
    text = text.replace("Café Déjà Vu".encode(), "Café Déjà Vu ".encode() + MARKER)
    (claude_project(home) / f"{SKILL_SESSION}.jsonl").write_bytes(text)
    done = subprocess.run(
        [console_script("skillopsd"), "--once"],
        env=daemon_env(home),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return home


def _payloads(url: str) -> list[tuple[str, str, bytes | None]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT type, content, payload FROM skillops_events ORDER BY position")
        return [(t, c, None if p is None else bytes(p)) for t, c, p in rows]


def _database_files(server: Server, url: str) -> bytes:
    """Every byte of the database's own files on the server's disk, after a checkpoint."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")
        row = conn.execute(
            "SELECT oid FROM pg_database WHERE datname = current_database()"
        ).fetchone()
    assert row is not None
    directory = server.base / "data" / "base" / str(row[0])
    return b"".join(p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file())


def test_content_choices_on_the_servers_bytes(tmp_path: Path, team_server: Server) -> None:
    home = _captured_home(tmp_path)
    path = db_path(home)
    derived, everything, none = (team_server.new_database() for _ in range(3))
    report = _report(_sync(path, derived))  # the default
    assert report["content"] == "derived" and report["withheld"] > 0 and report["derived"] > 0
    rows = _payloads(derived)
    assert not any(p is not None and MARKER in p for _, _, p in rows)
    assert all(c == "withheld" for t, c, _ in rows if t == "TranscriptLineCaptured")
    assert any(t == "SpanDerived" and p is not None for t, _, p in rows)
    assert MARKER not in _database_files(team_server, derived)
    # The control: with --content all the marker does reach the server, and its disk.
    _report(_sync(path, everything, "--content", "all"))
    assert any(p is not None and MARKER in p for _, _, p in _payloads(everything))
    assert MARKER in _database_files(team_server, everything)
    _report(_sync(path, none, "--content", "none"))
    for type_name, content, payload in _payloads(none):
        assert (payload is not None) == (type_name in DECISION_TYPES), (type_name, content)
    assert _verified(derived) == _verified(everything) == _verified(none)


def test_forget_then_sync_erases_on_the_server(tmp_path: Path, team_server: Server) -> None:
    team_url = team_server.new_database()
    home = _captured_home(tmp_path)
    path = db_path(home)
    _report(_sync(path, team_url, "--content", "all"))
    assert any(p is not None and MARKER in p for _, _, p in _payloads(team_url))
    forgot = run_ctl("forget", SKILL_SESSION, "--reason", "test", env=daemon_env(home))
    assert forgot.returncode == 0, forgot.stderr
    report = _report(_sync(path, team_url, "--content", "all"))
    assert report["erased_on_server"] > 0
    rows = _payloads(team_url)
    assert not any(p is not None and MARKER in p for _, _, p in rows)
    assert sum(c == "erased" for _, c, _ in rows) == report["erased_on_server"]
    machine = report["machine"]
    assert _verified(team_url) == {machine: report["local_events"]}
    # A machine that erased before its first sync sends those payloads as erased.
    fresh = _report(_sync(path, team_server.new_database(), "--content", "all"))
    assert fresh["erased"] == report["erased_on_server"]


def test_a_wider_content_later_says_what_stays_as_sent(tmp_path: Path, team_server: Server) -> None:
    """A re-sync never re-sends a stored link: events first sent under a narrower --content
    stay so on the server, and the sync line says how many (review G19)."""
    url = team_server.new_database()
    path = db_path(_captured_home(tmp_path))
    first = _report(_sync(path, url, "--content", "none"))
    assert first["kept_narrower"] == 0 and first["withheld"] > 0
    derived = _report(_sync(path, url))
    lines = sum(1 for t, _, _ in _payloads(url) if t == "TranscriptLineCaptured")
    assert derived["sent"] == 0 and derived["kept_narrower"] == first["withheld"] - lines
    wider = _report(_sync(path, url, "--content", "all"))
    assert wider["kept_narrower"] == first["withheld"]
    done = run_ctl("--db", str(path), "sync", "--to", url, "--content", "all")
    assert f"{first['withheld']} events already there stay as they were sent" in done.stdout
    # A machine whose events all went as this --content would send them hears nothing more.
    again = run_ctl("--db", str(path), "sync", "--to", url, "--content", "none")
    assert "stay as they were sent" not in again.stdout
