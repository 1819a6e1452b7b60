"""``skillopsctl --team URL …``: every machine's events on a real PostgreSQL, read back.

Each machine is a temporary HOME with real-shaped skill sessions captured by the real
``skillopsd --once`` and pushed by the real ``skillopsctl sync``; the team views are read by
the real CLI on another HOME (its own cache, where the replica lives).
"""

from __future__ import annotations

import json
import sqlite3
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apsw
import msgspec
import psycopg
import pytest

from skillopsd.events import Database, EventLog, NewEvent
from skillopsd.events.types import AnnotationAdded
from skillopsd.projections.sessions import _session_end
from skillopsd.projections.verdict import VerdictPolicy, verdict

from ._agents import AGENTS_CORPUS
from ._capture_helpers import extract_corpus
from ._daemon import daemon_env
from ._postgres import Server, start_server
from .conftest import console_script, ctl_command
from .test_skill_folders import INFRA, WEB, Projects
from .test_skills_acceptance import TRIAGE, Home

pytestmark = pytest.mark.slow

MARKER = "ZQX-team-view-marker-4417"


@pytest.fixture(scope="module")
def team_server() -> Iterator[Server]:
    yield from start_server()


@pytest.fixture
def team_url(team_server: Server) -> str:
    return team_server.new_database()


class Machine(Home):
    """A developer's machine: its HOME, its sessions (native ids unique to it), its log."""

    def __init__(self, root: Path, name: str, first: int) -> None:
        root.mkdir(parents=True)
        super().__init__(root)
        self.name = name
        self.sessions = first  # native ids count on from here: no two machines share one
        self.skill("triage", TRIAGE)

    def sync(self, url: str, *args: str) -> dict[str, Any]:
        done = subprocess.run(
            [*ctl_command(), "sync", "--to", url, *args, "--json"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert isinstance(report, dict)
        return report


class Viewer:
    """Someone reading the team views: a HOME of its own (no log of its own)."""

    def __init__(self, root: Path, url: str) -> None:
        self.home = root / "viewer"
        self.home.mkdir()
        self.url = url
        self.env = daemon_env(self.home)
        self.env.pop("XDG_CACHE_HOME", None)

    def run(self, *args: str, url: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*ctl_command(), "--team", url or self.url, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    def ok(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = self.run(*args)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
        return done

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json").stdout)

    def replica(self) -> Path:
        found = sorted((self.home / ".cache" / "skillops" / "team").glob("*.db"))
        assert len(found) == 1, found
        return found[0]

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(f"file:{self.replica()}?mode=ro", uri=True)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()


def _local(machine: Machine, *args: str) -> Any:
    return machine.json(*args)


def _server_rows(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM skillops_events").fetchone()
    assert row is not None
    return int(row[0])


def _skill_row(rows: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(r for r in rows if r["skill"] == name)


def _two_machines(tmp_path: Path) -> tuple[Machine, Machine]:
    a = Machine(tmp_path / "a", "a", 0)
    a.session("triage", "Label issues. v1", final="needs-info", tools=["Read"])
    a.session("triage", "Label issues. v2", final="needs-info", tools=["Read", "Bash"])
    a.session("other", "Another skill.", final="done", tools=["Read"])
    a.capture()
    b = Machine(tmp_path / "b", "b", 100)
    b.session("triage", "Label issues. v2", final="ready-to-implement", tools=["Read", "Edit"])
    b.session(
        "triage", "Label issues. v2", final="needs-info", tools=["exec_command"], agent="codex"
    )
    b.capture()
    return a, b


def test_team_views_pool_every_machine(tmp_path: Path, team_url: str) -> None:
    a, b = _two_machines(tmp_path)
    sent_a = a.sync(team_url)  # --content derived, the default
    sent_b = b.sync(team_url, "--content", "all")
    viewer = Viewer(tmp_path, team_url)

    first = viewer.run("skills", "--json")
    assert first.returncode == 0, first.stderr
    assert "team replica" in first.stderr and "2 machines" in first.stderr
    team = json.loads(first.stdout)
    local_a, local_b = _local(a, "skills"), _local(b, "skills")
    for name in ("triage", "other"):
        want = sum(
            _skill_row(rows, name)["sessions"]
            for rows in (local_a, local_b)
            if any(r["skill"] == name for r in rows)
        )
        assert _skill_row(team, name)["sessions"] == want, name
    assert _skill_row(team, "triage")["sessions"] == 4

    sessions = viewer.json("sessions")
    mine = {s["native_session_id"]: s for s in _local(a, "sessions") + _local(b, "sessions")}
    assert {s["native_session_id"] for s in sessions} == set(mine)
    machines = {s["native_session_id"]: s["machine_id"] for s in sessions}
    for s in _local(a, "sessions"):
        assert machines[s["native_session_id"]] == sent_a["machine"]
    for s in _local(b, "sessions"):
        assert machines[s["native_session_id"]] == sent_b["machine"]
    assert all(s["machine"] == sent_a["label"] for s in sessions)
    table = viewer.ok("sessions").stdout
    assert "machine" in table.splitlines()[0] and sent_b["machine"][:6] in table

    # Derived content carries no message text: titles are gone for a's sessions only.
    titles = {s["native_session_id"]: s["title"] for s in sessions}
    assert all(titles[s["native_session_id"]] is None for s in _local(a, "sessions"))
    assert any(titles[s["native_session_id"]] for s in _local(b, "sessions"))

    shown = viewer.json("skill", "show", "triage")
    local_shown = [_local(m, "skill", "show", "triage") for m in (a, b)]
    executions = sum(len(v["sessions"]) for v in shown["versions"])
    assert executions == sum(len(v["sessions"]) for s in local_shown for v in s["versions"]) == 4
    # One version by its body hash, pooled from both machines.
    by_hash = {v["content_hash"]: len(v["sessions"]) for v in shown["versions"]}
    v2 = next(v["content_hash"] for v in local_shown[1]["versions"])
    assert by_hash[v2] == 3

    versions = viewer.json("skill", "versions", "triage")
    assert sorted(len(v["sessions"]) if isinstance(v["sessions"], list) else v["sessions"]
                  for v in versions["versions"]) == [1, 3]  # fmt: skip
    of_a = {s["native_session_id"] for s in _local(a, "sessions")}
    one = next(s for s in sessions if s["native_session_id"] in of_a)
    detail = viewer.ok("session", "show", one["session_id"]).stdout
    assert one["machine_id"] in detail and "content   derived" in detail
    other = next(s for s in sessions if s["native_session_id"] not in of_a)
    detail = viewer.ok("session", "show", other["session_id"]).stdout
    assert other["machine_id"] in detail and "content   derived" not in detail
    viewer.ok("usage", "daily")

    check = viewer.json("rebuild", "--check")
    assert check["match"] is True

    replica = viewer.replica()
    assert stat.S_IMODE(replica.stat().st_mode) == 0o600
    assert stat.S_IMODE(replica.parent.stat().st_mode) == 0o700
    # Every server row is linked once; the replica holds each distinct event once.
    linked = viewer.query("SELECT count(*) FROM team_links")[0][0]
    assert linked == _server_rows(team_url) == sent_a["held"] + sent_b["held"]


def test_a_second_pull_adds_exactly_the_new_events(tmp_path: Path, team_url: str) -> None:
    a, b = _two_machines(tmp_path)
    a.sync(team_url)
    b.sync(team_url)
    viewer = Viewer(tmp_path, team_url)
    viewer.ok("skills")
    before = viewer.query("SELECT count(*), max(position) FROM events")[0]
    # Nothing changed: nothing is written (the replica's head stays).
    quiet = viewer.ok("skills")
    assert quiet.stderr == ""
    assert viewer.query("SELECT count(*), max(position) FROM events")[0] == before
    b.session("triage", "Label issues. v3", final="needs-info", tools=["Grep"])
    b.capture()
    more = b.sync(team_url)
    assert more["sent"] > 0
    rows = viewer.json("skills")
    assert _skill_row(rows, "triage")["sessions"] == 5
    # b numbers its own versions (v3's body is its v2); the team's tags are the replica's own,
    # one per body, in merge order.
    local = {
        v["tag"]: v["content_hash"] for v in _local(b, "skill", "versions", "triage")["versions"]
    }
    assert sorted(local) == ["v1", "v2"]
    team = {
        v["tag"]: v["content_hash"] for v in viewer.json("skill", "versions", "triage")["versions"]
    }
    assert sorted(team) == ["v1", "v2", "v3"] and team["v3"] == local["v2"]
    assert team["v2"] == local["v1"]
    after = viewer.query("SELECT count(*), max(position) FROM events")[0]
    assert after[0] - before[0] == more["sent"]
    assert viewer.query("SELECT count(*) FROM team_links")[0][0] == _server_rows(team_url)
    assert viewer.json("rebuild", "--check")["match"] is True


def _payloads(path: Path) -> list[tuple[str, bytes]]:
    """Every readable payload of the replica, decompressed (type, bytes)."""
    db = Database.open(path, create=False)
    try:
        with db.read():
            return [(e.type, e.data) for e in EventLog(db).read() if not e.erased]
    finally:
        db.close()


def test_a_forget_synced_removes_the_bytes_from_the_replica(tmp_path: Path, team_url: str) -> None:
    a = Machine(tmp_path / "a", "a", 0)
    native = a.session(
        "triage", "Label issues.", final="needs-info", tools=["Read"], prompt=f"triage {MARKER}"
    )
    a.session("triage", "Label issues.", final="needs-info", tools=["Read"])
    a.capture()
    a.sync(team_url, "--content", "all")
    viewer = Viewer(tmp_path, team_url)
    sid = a.session_id(native)
    assert MARKER in viewer.ok("session", "show", sid, "--json").stdout
    assert any(MARKER.encode() in data for _, data in _payloads(viewer.replica()))

    a.ctl("forget", sid, "--reason", "secret in the prompt")
    report = a.sync(team_url, "--content", "all")
    assert report["erased_on_server"] > 0
    assert sid not in {s["session_id"] for s in viewer.json("sessions")}
    assert not any(MARKER.encode() in data for _, data in _payloads(viewer.replica()))
    raw = b"".join(
        p.read_bytes()
        for p in viewer.replica().parent.iterdir()
        if p.name.endswith((".db", "-wal"))
    )
    assert MARKER.encode() not in raw
    gone = viewer.ok("session", "show", sid).stdout
    assert "forgotten" in gone
    assert viewer.json("rebuild", "--check")["match"] is True


def test_content_none_contributes_labels_only(tmp_path: Path, team_url: str) -> None:
    a, _ = _two_machines(tmp_path)
    a.sync(team_url)
    c = Machine(tmp_path / "c", "c", 200)
    native = c.session("triage", "Label issues.", final="needs-info", tools=["Read"])
    c.capture()
    sid = c.session_id(native)
    c.ctl("annotate", sid, "--label", "bad", "--note", "wrong label", "--skill", "triage")
    sent = c.sync(team_url, "--content", "none")
    viewer = Viewer(tmp_path, team_url)
    assert _skill_row(viewer.json("skills"), "triage")["sessions"] == 2  # a's only
    assert sid not in {s["session_id"] for s in viewer.json("sessions")}
    readable = viewer.query(
        "SELECT e.type FROM events e JOIN team_links l ON l.position = e.position"
        f" WHERE l.machine = '{sent['machine']}' AND length(e.data) > 0"
    )
    assert {t for (t,) in readable} == {"AnnotationAdded"}
    assert (
        viewer.query(f"SELECT count(*) FROM team_links WHERE machine = '{sent['machine']}'")[0][0]
        == sent["held"]
    )


def test_eval_run_on_derived_content_is_not_graded_and_records_nothing(
    tmp_path: Path, team_url: str
) -> None:
    a, b = _two_machines(tmp_path)
    a.sync(team_url)  # derived: no message text
    b.sync(team_url, "--content", "all")
    viewer = Viewer(tmp_path, team_url)
    held = _server_rows(team_url)
    done = viewer.run("eval", "run", "triage", "--skill-dir", str(a.skills / "triage"), "--json")
    assert done.returncode in (0, 1), done.stderr
    report = json.loads(done.stdout)
    assert report["recorded"] is False
    a_sessions = {s["session_id"] for s in _local(a, "sessions")}
    graded = not_graded = 0
    for version in report["versions"]:
        for case in version["cases"]:
            graded += case["graded"]
            not_graded += case["not_graded"]
            if case["not_graded"]:
                assert case["not_graded_reasons"] == ["content withheld on the team server"]
    assert not_graded == 2  # a's two triage sessions: neither passed nor failed
    assert graded == 2  # b's, whose text came
    for version in report["versions"]:
        for case in version["cases"]:
            assert not any(sid in " ".join(case["details"]) for sid in a_sessions)
    plain = viewer.run("eval", "run", "triage", "--skill-dir", str(a.skills / "triage"))
    assert "nothing recorded" in plain.stdout
    # Nothing written: not on the server, not in the replica.
    assert _server_rows(team_url) == held
    assert viewer.query("SELECT count(*) FROM events WHERE type = 'EvalRunCompleted'") == [(0,)]


def test_unreachable_server_write_commands_and_db_are_one_line(
    tmp_path: Path, team_url: str
) -> None:
    viewer = Viewer(tmp_path, team_url)
    bad = viewer.run("skills", url="postgresql://u:secretpw@127.0.0.1:1/x")
    assert bad.returncode == 2
    assert len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr
    assert "secretpw" not in bad.stderr and "127.0.0.1:1" in bad.stderr
    # psycopg quotes a URL it cannot parse, and a key=value string names the password:
    # neither reaches the screen.
    for url in (
        "postgresql://u:secretpw@[::1",
        "host=127.0.0.1 port=1 password=secretpw",
        "http://u:secretpw@127.0.0.1/x",
        "db.example.com",
        "postgresql://u:p@secretpw@127.0.0.1:1/x",  # libpq would take secretpw@… for a host
    ):
        bad = viewer.run("skills", url=url)
        assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
        assert "secretpw" not in bad.stderr and "Traceback" not in bad.stderr
        if not url.startswith("postgresql") and ("://" in url or "=" not in url):
            assert "expected postgresql://USER[:PASSWORD]@HOST[:PORT]/DB" in bad.stderr
        if "p@secretpw" in url:
            assert "write it as %40" in bad.stderr
    for args in (
        ("annotate", "x", "--label", "good"),
        ("promote", "triage", "--to", "v1"),
        ("forget", "x", "--reason", "r"),
        ("policy", "set", "gate", "min_sessions=1"),
        ("sync", "--to", team_url),
        ("verify",),
    ):
        done = viewer.run(*args)
        assert done.returncode == 2, (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "does not run on a team view" in done.stderr
    both = viewer.run("--db", str(tmp_path / "x.db"), "skills")
    assert both.returncode == 2 and "not both" in both.stderr
    # The environment names the server as --team does; an empty server is no error.
    env = {**viewer.env, "SKILLOPS_TEAM_URL": team_url}
    done = subprocess.run(
        [*ctl_command(), "sessions", "--json"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


def _bare(viewer: Viewer, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``skillopsctl ARGS`` in the viewer's HOME, without the ``--team`` that run() puts first."""
    return subprocess.run(
        [*ctl_command(), *args],
        env={**viewer.env, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_team_after_the_command_name_and_the_environment(tmp_path: Path, team_url: str) -> None:
    """``--team URL`` is taken after a team command's name as before it; a typed ``--team``
    wins over $SKILLOPS_TEAM_URL (``--team ''`` is this machine's log); a command that is no
    team view says so, and how to run it here when only the environment named the server."""
    a = Machine(tmp_path / "a", "a", 0)
    a.session("triage", "Label issues.", final="needs-info", tools=["Read"])
    a.capture()
    a.sync(team_url)
    viewer = Viewer(tmp_path, team_url)
    before = viewer.json("sessions")
    assert len(before) == 1
    for args in (
        ("sessions", "--team", team_url, "--json"),
        ("skills", "--json", "--team", team_url),
        ("skill", "show", "triage", "--team", team_url, "--json"),
        ("skill", "versions", "triage", "--team", team_url, "--json"),
        ("session", "show", before[0]["session_id"], "--team", team_url, "--json"),
        ("usage", "daily", "--team", team_url, "--json"),
        ("eval", "run", "triage", "--team", team_url, "--json"),
        ("rebuild", "--check", "--team", team_url, "--json"),
        ("skill", "diff", "triage", "v1", "v1", "--team", team_url),
        ("skill", "evidence", "triage", "--team", team_url, "--json"),
        ("annotations", "--team", team_url, "--json"),
        ("lineage", "triage", "--team", team_url, "--json"),
    ):
        done = _bare(viewer, *args)
        # eval run: the one session came without text, so nothing is graded (3)
        assert done.returncode in (0, 3), (args, done.stderr)
        assert "Traceback" not in done.stderr, (args, done.stderr)
        assert "No such option" not in done.stderr, (args, done.stderr)
    after = json.loads(_bare(viewer, "sessions", "--team", team_url, "--json").stdout)
    assert after == before
    check = json.loads(_bare(viewer, "rebuild", "--check", "--team", team_url, "--json").stdout)
    assert check["match"] is True
    # A typed --team wins over the environment, before or after the command name.
    wrong = "postgresql://u:secretpw@127.0.0.1:1/x"
    for args in (
        ("--team", team_url, "sessions", "--json"),
        ("sessions", "--team", team_url, "--json"),
    ):
        done = _bare(viewer, *args, SKILLOPS_TEAM_URL=wrong)
        assert done.returncode == 0, (args, done.stderr)
        assert json.loads(done.stdout) == before
    # After the command name it wins over the one before it too.
    done = _bare(viewer, "--team", wrong, "sessions", "--team", team_url, "--json")
    assert done.returncode == 0 and json.loads(done.stdout) == before, done.stderr
    # The environment alone names the server, read before or after the command name.
    done = _bare(viewer, "sessions", "--json", SKILLOPS_TEAM_URL=team_url)
    assert done.returncode == 0 and json.loads(done.stdout) == before, done.stderr
    # --team '' is this machine's log, which does not exist here; the server is not asked, and
    # a read-only command creates no database (review K2): one line, exit 2.
    for args in (("--team", "", "sessions", "--json"), ("sessions", "--team", "", "--json")):
        done = _bare(viewer, *args, SKILLOPS_TEAM_URL=wrong)
        assert done.returncode == 2 and done.stdout == "", (args, done.stderr)
        assert "skillops.db: no database yet" in done.stderr and "secretpw" not in done.stderr
        assert not (viewer.home / ".local" / "share" / "skillops" / "skillops.db").exists()
    # A command that is no team view: typed --team is refused; from the environment the
    # refusal says how to run it on this machine's log.
    done = _bare(viewer, "--team", team_url, "status")
    assert done.returncode == 2 and "does not run on a team view (--team)" in done.stderr
    done = _bare(viewer, "status", SKILLOPS_TEAM_URL=team_url)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "unset SKILLOPS_TEAM_URL to run it here" in done.stderr
    done = _bare(viewer, "verify", "--team", team_url)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    # Given --db and --team, in any order and place: one line, nothing read.
    for args in (
        ("--db", str(tmp_path / "x.db"), "sessions", "--team", team_url),
        ("sessions", "--team", team_url, "--db", str(tmp_path / "x.db")),
    ):
        done = _bare(viewer, *args)
        assert done.returncode == 2 and "not both" in done.stderr, (args, done.stderr)
    assert not (tmp_path / "x.db").exists()


def test_same_path_and_session_id_on_two_machines(tmp_path: Path, team_url: str) -> None:
    """Two machines with a transcript at one path, of one session id, different content:
    their files stay apart; the session id is one session in the view, from one machine."""
    first = Machine(tmp_path / "m", "first", 0)
    native = first.session("triage", "Label issues.", final="needs-info", tools=["Read"])
    first.capture()
    one = first.sync(team_url)
    (tmp_path / "m").rename(tmp_path / "m-first")
    second = Machine(tmp_path / "m", "second", 0)  # the same HOME path, the same native id
    again = second.session("triage", "Label issues.", final="done", tools=["Read", "Bash"])
    assert again == native
    second.capture()
    two = second.sync(team_url)
    assert one["machine"] != two["machine"]
    viewer = Viewer(tmp_path, team_url)
    sessions = viewer.json("sessions")
    assert [s["native_session_id"] for s in sessions] == [native]
    assert sessions[0]["machine_id"] in (one["machine"], two["machine"])
    sources = viewer.query("SELECT DISTINCT stream FROM events WHERE stream LIKE '%/source:%'")
    assert len(sources) == 2 and len({s.split("/", 1)[0] for (s,) in sources}) == 2
    assert viewer.json("rebuild", "--check")["match"] is True


def _annotations(path: Path, events: int, tag: str) -> None:
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
                for i in range(events)
            ]
        )
    finally:
        db.close()


def test_pulling_while_a_machine_syncs(tmp_path: Path, team_url: str) -> None:
    a, _ = _two_machines(tmp_path)
    a.sync(team_url)
    busy = tmp_path / "busy.db"
    _annotations(busy, 3000, "busy")
    proc = subprocess.Popen(
        [*ctl_command(), "--db", str(busy), "sync", "--to", team_url, "--batch", "20"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    viewer = Viewer(tmp_path, team_url)
    pulls = 0
    while proc.poll() is None or pulls == 0:
        viewer.ok("skills")
        pulls += 1
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    viewer.ok("skills")
    assert viewer.query("SELECT count(*) FROM team_links")[0][0] == _server_rows(team_url)
    assert viewer.query("SELECT count(*) FROM events WHERE type = 'AnnotationAdded'") == [(3000,)]
    assert viewer.json("rebuild", "--check")["match"] is True


def test_a_deleted_or_damaged_replica_is_made_again(tmp_path: Path, team_url: str) -> None:
    a, _ = _two_machines(tmp_path)
    a.sync(team_url)
    viewer = Viewer(tmp_path, team_url)
    want = viewer.json("skills")
    replica = viewer.replica()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{replica}{suffix}").unlink(missing_ok=True)
    done = viewer.ok("skills", "--json")
    assert json.loads(done.stdout) == want and "team replica" in done.stderr
    with open(replica, "r+b") as fh:  # a damaged header: not a database any more
        fh.write(b"\xff" * 100)
    done = viewer.ok("skills", "--json")
    assert json.loads(done.stdout) == want
    assert "could not be used" in done.stderr and "made again" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert viewer.json("rebuild", "--check")["match"] is True
    # Damaged pages inside: found when opened, pulled or read; never a traceback, and the
    # command after it shows the views again.
    size = replica.stat().st_size
    with open(replica, "r+b") as fh:
        for offset in range(16384, size, 16384 * 3):
            fh.seek(offset)
            fh.write(b"\xff" * 4096)
    done = viewer.run("skills", "--json")
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    if done.returncode == 0:
        assert json.loads(done.stdout) == want and "made again" in done.stderr
    else:
        assert done.returncode == 2 and "pulls it anew" in done.stderr, done.stderr
        assert json.loads(viewer.ok("skills", "--json").stdout) == want
    assert viewer.json("rebuild", "--check")["match"] is True


def test_a_refused_machine_contributes_what_was_stored_before_its_break(
    tmp_path: Path, team_url: str
) -> None:
    bad, good = tmp_path / "bad.db", tmp_path / "good.db"
    _annotations(bad, 60, "bad")
    _annotations(good, 40, "good")
    conn = apsw.Connection(str(bad))  # a payload changed behind the log's back
    conn.execute("DROP TRIGGER events_no_update")
    forged = msgspec.msgpack.encode(AnnotationAdded(annotation_id="f", session_id="s", label="bad"))
    conn.execute("UPDATE events SET data = ?, codec = 0 WHERE position = 25", (forged,))
    conn.close()
    for path, code in ((bad, 1), (good, 0)):
        done = subprocess.run(
            [*ctl_command(), "--db", str(path), "sync", "--to", team_url],
            capture_output=True,
            text=True,
        )
        assert done.returncode == code, done.stderr
    viewer = Viewer(tmp_path, team_url)
    done = viewer.ok("skills")
    assert "refused" in done.stderr and "position 25" in done.stderr
    assert viewer.query("SELECT count(*) FROM events WHERE type = 'AnnotationAdded'") == [(64,)]
    assert viewer.json("rebuild", "--check")["match"] is True


def test_the_real_corpus_on_two_machines(tmp_path: Path, team_url: str) -> None:
    """The real corpus split between two machines (Claude Code on one, Codex on the other):
    every session is in the team view with its machine, its calls, tokens and verdict as its
    own machine shows them, whatever content the machine sent."""
    homes = {name: tmp_path / name for name in ("claude", "codex")}
    extract_corpus(homes["claude"])
    homes["codex"].mkdir()
    (homes["claude"] / ".codex").rename(homes["codex"] / ".codex")
    local: dict[str, list[dict[str, Any]]] = {}
    machine: dict[str, str] = {}
    for (name, home), content in zip(homes.items(), ("derived", "all"), strict=True):
        env = daemon_env(home)
        subprocess.run(
            [console_script("skillopsd"), "--once"], env=env, check=True, capture_output=True
        )
        listed = subprocess.run(
            [*ctl_command(), "sessions", "--json"], env=env, capture_output=True, text=True
        )
        local[name] = json.loads(listed.stdout)
        sent = subprocess.run(
            [*ctl_command(), "sync", "--to", team_url, "--content", content, "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert sent.returncode == 0, sent.stderr
        machine[name] = json.loads(sent.stdout)["machine"]
    assert len(local["claude"]) > 10 and len(local["codex"]) > 10
    viewer = Viewer(tmp_path, team_url)
    team = {s["session_id"]: s for s in viewer.json("sessions")}
    for name, sessions in local.items():
        for s in sessions:
            got = team.pop(s["session_id"])
            assert got["machine_id"] == machine[name]
            for key in ("outcomes", "tokens", "verdict", "turns", "tools", "skills"):
                assert got[key] == s[key], (name, s["session_id"], key)
    assert team == {}
    # Tokens and cost per month: the team's are the sum of the machines'.
    months: dict[str, list[float]] = {}
    for home in homes.values():
        report = subprocess.run(
            [*ctl_command(), "usage", "monthly", "--json"],
            env=daemon_env(home),
            capture_output=True,
            text=True,
        )
        for row in json.loads(report.stdout)["monthly"]:
            total = months.setdefault(row["period"], [0, 0.0, 0])
            total[0] += row["totalTokens"]
            total[1] += row["totalCost"]
            total[2] += row["responses"]
    pooled = {row["period"]: row for row in viewer.json("usage", "monthly")["monthly"]}
    assert set(pooled) == set(months)
    for period, (tokens, cost, responses) in months.items():
        assert pooled[period]["totalTokens"] == tokens
        assert pooled[period]["responses"] == responses
        assert pooled[period]["totalCost"] == pytest.approx(cost, rel=1e-9)
    assert viewer.json("rebuild", "--check")["match"] is True


def test_a_server_started_anew_makes_the_replica_again(tmp_path: Path, team_url: str) -> None:
    """The same URL, another history (the tables dropped, machines synced again): the
    replica does not mix the two, it is made again, with one line saying so."""
    a, b = _two_machines(tmp_path)
    a.sync(team_url)
    viewer = Viewer(tmp_path, team_url)
    assert _skill_row(viewer.json("skills"), "triage")["sessions"] == 2
    with psycopg.connect(team_url, autocommit=True) as conn:
        conn.execute("DROP TABLE skillops_events, skillops_machines")
    b.sync(team_url)
    done = viewer.ok("skills", "--json")
    assert "made again" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert _skill_row(json.loads(done.stdout), "triage")["sessions"] == 2  # b's only
    assert {s["machine_id"] for s in viewer.json("sessions")} == {b.sync(team_url)["machine"]}


def test_rows_changed_on_the_server_stop_that_machine_there(tmp_path: Path, team_url: str) -> None:
    """Someone with write access to the server changes a stored payload: the replica checks
    every row against the chain the machine synced and takes nothing of it from there on."""
    one, two = tmp_path / "one.db", tmp_path / "two.db"
    _annotations(one, 30, "one")
    _annotations(two, 20, "two")
    for path in (one, two):
        done = subprocess.run(
            [*ctl_command(), "--db", str(path), "sync", "--to", team_url, "--content", "all"],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
    forged = msgspec.msgpack.encode(AnnotationAdded(annotation_id="f", session_id="s", label="bad"))
    with psycopg.connect(team_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT machine FROM skillops_events GROUP BY machine HAVING count(*) = 30"
        ).fetchone()
        assert row is not None
        conn.execute(
            "UPDATE skillops_events SET payload = %s WHERE machine = %s AND position = 12",
            (forged, row[0]),
        )
    viewer = Viewer(tmp_path, team_url)
    done = viewer.ok("skills")
    assert f"machine {row[0]}" in done.stderr and "position 12" in done.stderr
    assert "does not match its digest" in done.stderr
    assert viewer.query("SELECT count(*) FROM events") == [(11 + 20,)]
    labels = viewer.query("SELECT count(*) FROM events WHERE type = 'AnnotationAdded'")
    assert labels == [(31,)]
    # Said on every command while it lasts; the rest of the views go on.
    again = viewer.ok("skills")
    assert "position 12" in again.stderr and len(again.stderr.strip().splitlines()) == 1


def _with_password(url: str, password: str) -> str:
    return url.replace("://skillops@", f"://skillops:{password}@", 1)


def test_commands_at_once_pull_once(tmp_path: Path, team_url: str) -> None:
    """Five team commands started at once on no replica, then again after a machine synced
    more: one of them makes the replica, each event is stored once, every one answers as
    the others do and as one run alone would."""
    a, b = _two_machines(tmp_path)
    a.sync(team_url)
    b.sync(team_url)
    viewer = Viewer(tmp_path, team_url)
    commands = [
        ("skills", "--json"),
        ("skills", "--json"),
        ("sessions", "--json"),
        ("skill", "show", "triage", "--json"),
        ("rebuild", "--check", "--json"),
    ]

    def at_once() -> list[subprocess.CompletedProcess[str]]:
        procs = [
            subprocess.Popen(
                [*ctl_command(), "--team", team_url, *args],
                env=viewer.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for args in commands
        ]
        done = []
        for args, proc in zip(commands, procs, strict=True):
            out, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, (args, err)
            assert "Traceback" not in err
            done.append(subprocess.CompletedProcess(args, proc.returncode, out, err))
        return done

    first = at_once()
    made = [d for d in first if "team replica" in d.stderr]
    assert len(made) == 1 and "2 machines" in made[0].stderr, [d.stderr for d in first]
    assert first[0].stdout == first[1].stdout
    assert json.loads(first[4].stdout)["match"] is True
    assert viewer.query("SELECT count(*) FROM team_links")[0][0] == _server_rows(team_url)

    b.session("triage", "Label issues. v2", final="needs-info", tools=["Read"])
    b.capture()
    b.sync(team_url)
    second = at_once()
    assert all(d.stderr == "" for d in second), [d.stderr for d in second]
    assert second[0].stdout == second[1].stdout
    assert _skill_row(json.loads(second[0].stdout), "triage")["sessions"] == 5
    assert len(json.loads(second[2].stdout)) == len(json.loads(first[2].stdout)) + 1
    assert json.loads(second[4].stdout)["match"] is True
    assert viewer.query("SELECT count(*) FROM team_links")[0][0] == _server_rows(team_url)
    alone = viewer.ok("skills", "--json")
    assert alone.stdout == second[0].stdout and alone.stderr == ""


def test_a_server_down_is_one_line_and_the_replica_is_kept(
    tmp_path: Path, team_server: Server, team_url: str
) -> None:
    """The server stops after a replica was pulled: every team command is one line naming
    the server (never its password), exit 2, nothing shown stale and the replica untouched;
    once the server is back the same replica answers as before, pulled on."""
    a, _ = _two_machines(tmp_path)
    a.sync(team_url)
    secret = "hunter2-never-shown"
    url = _with_password(team_url, secret)  # the server trusts: the password is not asked
    viewer = Viewer(tmp_path, url)
    want = viewer.json("skills")
    replica = viewer.replica()
    before = replica.read_bytes()
    stopped = team_server.pg_ctl("-m", "fast", "-w", "stop")
    assert stopped.returncode == 0, stopped.stderr
    try:
        for args in (("skills",), ("skill", "show", "triage"), ("sessions",), ("rebuild",)):
            done = viewer.run(*args)
            assert done.returncode == 2, (args, done.stdout, done.stderr)
            assert done.stdout == ""
            assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
            assert secret not in done.stderr and "skillops:***@" in done.stderr
            assert done.stderr.startswith("skillopsctl: --team: cannot connect to")
    finally:
        team_server.start()
    assert replica.read_bytes() == before
    done = viewer.ok("skills", "--json")
    assert json.loads(done.stdout) == want and done.stderr == ""
    assert viewer.json("rebuild", "--check")["match"] is True


def _linked(replica: Path) -> int:
    """Rows the replica has linked so far (0 while it is being made)."""
    try:
        conn = sqlite3.connect(f"file:{replica}?mode=ro", uri=True, timeout=0.05)
        try:
            return int(conn.execute("SELECT count(*) FROM team_links").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def test_a_pull_killed_midway_goes_on_at_the_next_command(tmp_path: Path, team_url: str) -> None:
    """``kill -9`` while the replica is being pulled: what it committed stays, the next
    command pulls the rest (nothing twice, nothing missing), and the views equal those of a
    replica pulled in one go."""
    for tag, events in (("one", 14000), ("two", 9000)):
        path = tmp_path / f"{tag}.db"
        _annotations(path, events, tag)
        done = subprocess.run(
            [*ctl_command(), "--db", str(path), "sync", "--to", team_url, "--batch", "5000"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
    total = _server_rows(team_url)
    viewer = Viewer(tmp_path, team_url)
    replica = viewer.home / ".cache" / "skillops" / "team"
    proc = subprocess.Popen(
        [*ctl_command(), "--team", team_url, "skills", "--json"],
        env=viewer.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    partial = 0
    try:
        while proc.poll() is None and partial == 0:
            found = sorted(replica.glob("*.db"))
            partial = _linked(found[0]) if found else 0
    finally:
        proc.kill()
        proc.wait(timeout=60)
    assert partial > 0 or proc.returncode == 0, "the pull never committed a batch"
    linked = _linked(viewer.replica())
    if proc.returncode == -9:
        assert linked < total  # killed before the pull's end
    again = viewer.ok("skills", "--json")
    assert "made again" not in again.stderr
    assert viewer.query("SELECT count(*) FROM team_links")[0][0] == total
    assert viewer.query("SELECT count(*) FROM events WHERE type = 'AnnotationAdded'") == [(total,)]
    check = viewer.json("rebuild", "--check")
    assert check["match"] is True
    # Everything was on the server before the first pull: the resumed pull merges the rest
    # in the order one pull would have, so a replica pulled in one go is the same log.
    (tmp_path / "fresh").mkdir()
    fresh = Viewer(tmp_path / "fresh", team_url)
    assert fresh.ok("skills", "--json").stdout == again.stdout
    assert fresh.json("rebuild", "--check")["digest"] == check["digest"]


def test_executions_recorded_by_hand_on_two_machines_all_count(
    tmp_path: Path, team_url: str
) -> None:
    """Two machines test one challenger of a managed skill and record executions by hand
    with the same ``--id``s: in the team's ``skill versions`` each machine's are its own
    (as the pooled test counts them), so every version's executions are the machines' sum;
    the view writes no store folder beside the replica."""
    from .test_team_pool import Machine as Managing

    machines = [Managing(tmp_path, name, team_url) for name in ("ma", "mb")]
    for m in machines:
        m.manage()
        m.challenge()
    machines[0].record("v1", True, 2)
    machines[0].record("v2", True, 1)
    machines[1].record("v1", False, 1)
    machines[1].record("v2", True, 2)
    want: dict[str, list[int]] = {}
    for m in machines:
        for v in m.versions()["versions"]:
            total = want.setdefault(v["content_hash"], [0, 0])
            total[0] += v["executions"]
            total[1] += v["successes"]
        m.sync(team_url)
    assert sorted(want.values()) == [[3, 2], [3, 3]]
    viewer = Viewer(tmp_path, team_url)
    shown = viewer.json("skill", "versions", "tidy")
    got = {v["content_hash"]: [v["executions"], v["successes"]] for v in shown["versions"]}
    assert got == want
    assert shown["manifest"] is None
    assert sorted(p.name for p in viewer.replica().parent.iterdir() if p.is_dir()) == []
    assert viewer.json("rebuild", "--check")["match"] is True
    # A second pull of the same rows changes nothing (each stored once, under its machine).
    again = viewer.json("skill", "versions", "tidy")
    assert again == shown


def test_what_a_machine_wrote_on_the_server_cannot_drive_the_terminal(
    tmp_path: Path, team_url: str
) -> None:
    """A machine's label and refusal are text someone wrote on the server: escape sequences
    and bidi overrides in them reach no terminal; a machine whose id is not one sync gives
    (it could name another machine's streams) is left out, with one line."""
    a, _ = _two_machines(tmp_path)
    sent = a.sync(team_url)
    evil = "\x1b]52;c;Y3VybCBldmlsLnNofHNo\x07box\x1b[2J\u202e" + "x" * 500
    with psycopg.connect(team_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE skillops_machines SET label = %s, refused = %s WHERE machine = %s",
            (evil, f"chain breaks at position 9: {evil}", sent["machine"]),
        )
        conn.execute(
            "INSERT INTO skillops_machines (machine, label) VALUES (%s, 'x')",
            (f"{sent['machine']}/../\x1b[31m",),
        )
    viewer = Viewer(tmp_path, team_url)
    for args in (("sessions",), ("sessions", "--json"), ("skills",), ("session", "show", "")):
        if args[-1] == "":
            first = viewer.json("sessions")[0]["session_id"]
            args = ("session", "show", first)
        done = viewer.ok(*args)
        for shown in (done.stdout, done.stderr):
            assert "\x1b" not in shown and "\x07" not in shown and "\u202e" not in shown, args
            assert "\\u001b" not in shown and "\\u202e" not in shown, args  # nor in JSON
        assert "whose id is none" in done.stderr and "nothing of it is shown" in done.stderr
    sessions = viewer.json("sessions")
    assert len(sessions) == 3  # a's sessions, all there
    # The label is kept, its control characters shown as "?", cut to 64 characters.
    label = ("?]52;c;Y3VybCBldmlsLnNofHNo?box?[2J?" + "x" * 500)[:63] + "…"
    assert {s["machine"] for s in sessions} == {label}


def _split_corpus(tmp_path: Path) -> dict[str, Path]:
    """The real corpus split file by file between two machines (every other transcript
    file, sorted by path, to each; plus the Copilot and Gemini corpus on the second), each
    captured by the real daemon."""
    homes = {name: extract_corpus(tmp_path / name) for name in ("a", "b")}
    files = sorted(p.relative_to(homes["a"]) for p in homes["a"].rglob("*.jsonl"))
    for i, path in enumerate(files):
        (homes["b" if i % 2 == 0 else "a"] / path).unlink()
    for home in homes.values():
        subprocess.run(
            [console_script("skillopsd"), "--once"],
            env=daemon_env(home),
            check=True,
            capture_output=True,
        )
    agents = sorted(str(p) for p in AGENTS_CORPUS.iterdir() if p.is_dir())
    subprocess.run(
        [*ctl_command(), "ingest", *agents],
        env=daemon_env(homes["b"]),
        check=True,
        capture_output=True,
    )
    return homes


def _without_text(db: Path, session_id: str) -> tuple[str | None, str | None]:
    """The verdict and reason ``session_id``'s machine derives, from its own log, without the
    text ``--content derived`` withholds (the command a call ran, its error, a narrower run):
    where the machine's reason quotes it, a team view names "a call"."""
    conn = apsw.Connection(
        f"file:{db}?mode=ro", flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI
    )
    try:
        end, _counts = _session_end(conn, session_id)
        row = conn.execute("SELECT \"values\" FROM p_policies WHERE name = 'verdict'").fetchone()
    finally:
        conn.close()
    policy = VerdictPolicy.from_values(json.loads(row[0])) if row else VerdictPolicy()
    calls = [msgspec.structs.replace(c, what="", why="", narrower="") for c in end.calls]
    judged = verdict(msgspec.structs.replace(end, calls=calls), policy)
    return judged.value, judged.reason


def test_derived_team_view_judges_every_session_as_its_machine(
    tmp_path: Path, team_url: str
) -> None:
    """G4: under ``--content derived`` (the default) each session's verdict in the team view
    is its machine's, and so is its reason, but for the quoted call text derived content
    does not send; pooled verdict counts are the sum of the machines'. Machine a judges by a
    stricter verdict policy of its own (any failed call fails a session): the team view
    judges a's sessions by it and b's by b's (the default)."""
    homes = _split_corpus(tmp_path)
    strict = subprocess.run(
        [*ctl_command(), "policy", "set", "verdict", "failure_share=0"],
        env=daemon_env(homes["a"]),
        capture_output=True,
        text=True,
    )
    assert strict.returncode == 0, strict.stderr
    local: dict[str, dict[str, Any]] = {}
    for home in homes.values():
        listed = subprocess.run(
            [*ctl_command(), "sessions", "--json", "--limit", "1000"],
            env=daemon_env(home),
            capture_output=True,
            text=True,
            check=True,
        )
        for s in json.loads(listed.stdout):
            local[s["session_id"]] = {**s, "home": home}
        done = subprocess.run(
            [*ctl_command(), "sync", "--to", team_url, "--json"],
            env=daemon_env(home),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
    verdicts = {s["verdict"] for s in local.values()}
    assert {"success", "unfinished", "abandoned"} <= verdicts, verdicts
    viewer = Viewer(tmp_path, team_url)
    team = {s["session_id"]: s for s in viewer.json("sessions", "--limit", "1000")}
    assert set(team) == set(local)
    quoted = 0
    for sid, mine in local.items():
        got = team[sid]
        assert got["verdict"] == mine["verdict"], (
            sid,
            mine["verdict_reason"],
            got["verdict_reason"],
        )
        db = mine["home"] / ".local" / "share" / "skillops" / "skillops.db"
        value, reason = _without_text(db, sid)
        assert value == mine["verdict"]
        assert got["verdict_reason"] == reason, (sid, mine["verdict_reason"])
        quoted += reason != mine["verdict_reason"]
        assert got["verdict_spans"] == mine["verdict_spans"], sid
    # a's policy changed some of its verdicts; b, under the default, has sessions that policy
    # would fail, and the team view does not fail them.
    failed = {m["home"].name for m in local.values() if m["verdict"] == "failure"}
    assert failed == {"a"}, failed
    b_db = homes["b"] / ".local" / "share" / "skillops" / "skillops.db"
    conn = apsw.Connection(
        f"file:{b_db}?mode=ro", flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI
    )
    try:
        stricter = VerdictPolicy(failure_share=0.0)
        would = [
            sid
            for sid, m in local.items()
            if m["home"].name == "b"
            and verdict(_session_end(conn, sid)[0], stricter).value == "failure"
        ]
    finally:
        conn.close()
    assert would, "b has no session a's policy would fail: the check proves nothing"
    # Most reasons quote nothing and are the machine's word for word.
    assert quoted < len(local) // 4, quoted
    # The interrupted last turns (a Claude Code "exit", Gemini's cancel) survive derived.
    abandoned = [s for s in local.values() if s["verdict"] == "abandoned"]
    assert abandoned and all(team[s["session_id"]]["verdict"] == "abandoned" for s in abandoned)


def test_derived_team_view_keeps_two_projects_same_name_skills_apart(
    tmp_path: Path, team_url: str
) -> None:
    """G5: the folder a skill was loaded from survives ``--content derived`` (sent as the path,
    like the session's cwd), so the team view marks a name two projects' skills share as each
    machine does, and never compares their bodies as versions."""
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
    one = Projects(tmp_path / "one")
    web = tmp_path / "work" / "webapp" / ".claude" / "skills" / "deploy"
    infra = tmp_path / "work" / "infra" / ".claude" / "skills" / "deploy"
    one.load(web, WEB)
    one.load(infra, INFRA)
    one.capture()
    two = Projects(tmp_path / "two")
    two.sessions = 100
    two.load(web, WEB)
    two.capture()
    for machine in (one, two):
        sent = subprocess.run(
            [*ctl_command(), "sync", "--to", team_url],
            env=machine.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert sent.returncode == 0, sent.stderr
    projects = sorted(str(tmp_path / "work" / p) for p in ("webapp", "infra"))
    assert [s["projects"] for s in one.json("skills")] == [projects]
    viewer = Viewer(tmp_path, team_url)
    listed = viewer.json("skills")
    assert [(s["skill"], s["projects"]) for s in listed] == [("deploy", projects)]
    assert "deploy names 2 different skills" in viewer.ok("skills").stdout
    report = viewer.json("skill", "show", "deploy")
    assert report["projects"] == projects
    assert "not compared" in report["reading"] and " vs " not in report["reading"]
    assert "loaded from" in viewer.ok("skill", "show", "deploy").stdout
    versions = viewer.json("skill", "versions", "deploy")
    assert sorted(tuple(v["projects"]) for v in versions["versions"]) == [
        (projects[0],),
        (projects[1],),
    ]


def test_eval_run_that_graded_nothing_on_derived_machines_is_no_failure(
    tmp_path: Path, team_url: str
) -> None:
    """G13: every machine synced derived, so no grader that reads text can judge a session:
    each version is "not graded", not FAILED, no run id is shown for runs not recorded, one
    line says why, and the exit status is 3 (nothing graded), not the regression status 1."""
    a, b = _two_machines(tmp_path)
    a.sync(team_url)
    b.sync(team_url)
    viewer = Viewer(tmp_path, team_url)
    skill_dir = str(a.skills / "triage")
    done = viewer.run("eval", "run", "triage", "--skill-dir", skill_dir)
    assert done.returncode == 3, (done.stdout, done.stderr)
    assert "FAILED" not in done.stdout and " run " not in done.stdout, done.stdout
    assert "not graded" in done.stdout
    lines = done.stderr.strip().splitlines()
    assert lines[-1] == (
        "skillopsctl: eval run: nothing could be graded: the team server holds no message"
        " text of 4 sessions (their machines sync --content derived), which these graders"
        " read; no case failed"
    ), done.stderr
    report = json.loads(
        viewer.run("eval", "run", "triage", "--skill-dir", skill_dir, "--json").stdout
    )
    assert report["graded"] is False and report["recorded"] is False
    assert [v["graded"] for v in report["versions"]] == [False, False]
    assert viewer.query("SELECT count(*) FROM events WHERE type = 'EvalRunCompleted'") == [(0,)]
    # One machine's text on the server: its sessions are graded, and a failing case is 1.
    c = Machine(tmp_path / "c", "c", 200)
    c.session("triage", "Label issues. v2", final="ready-to-implement", tools=["Read"])
    c.capture()
    c.sync(team_url, "--content", "all")
    failing = viewer.run("eval", "run", "triage", "--skill-dir", skill_dir)
    assert failing.returncode == 1, (failing.stdout, failing.stderr)
    assert "FAILED" in failing.stdout and "nothing could be graded" not in failing.stderr


def test_team_search_says_derived_machines_sent_no_text(tmp_path: Path, team_url: str) -> None:
    """G14: ``--team sessions --search`` over derived machines says the server holds no title
    or prompt of theirs, instead of a bare "no sessions"; with one machine's text there, its
    matches are listed and the line goes to stderr."""
    a, b = _two_machines(tmp_path)
    a.sync(team_url)
    viewer = Viewer(tmp_path, team_url)
    assert _local(a, "sessions", "--search", "triage")  # the machine finds them
    done = viewer.ok("sessions", "--search", "triage")
    assert " ".join(done.stdout.split()) == (
        "no sessions: --search reads titles and prompts, which the team server does not hold"
        " for 3 sessions of 1 machine (synced with --content derived or none): those cannot"
        " match"
    ), done.stdout
    b.sync(team_url, "--content", "all")
    found = viewer.ok("sessions", "--search", "triage")
    assert "3 sessions of 1 machine" in found.stderr
    assert len(viewer.json("sessions", "--search", "triage")) == 2  # b's two


def test_read_only_commands_run_on_the_team_view(tmp_path: Path, team_url: str) -> None:
    """G16: ``skill diff`` (by the team's tags), ``annotations``, ``lineage`` and ``skill
    evidence`` write nothing and read what the server holds: they run on the team view; a
    command that reads only what this machine holds is refused saying so, not that "each
    machine changes only its own log"."""
    a, b = _two_machines(tmp_path)
    sid = next(s["session_id"] for s in a.json("sessions") if "triage" in s["skills"])
    a.ctl("annotate", sid, "--label", "bad", "--skill", "triage", "--note", "wrong label")
    a.sync(team_url)
    b.sync(team_url, "--content", "all")
    viewer = Viewer(tmp_path, team_url)
    held = _server_rows(team_url)
    tags = {
        v["tag"]: v["content_hash"] for v in viewer.json("skill", "versions", "triage")["versions"]
    }
    assert set(tags) == {"v1", "v2"}
    diff = viewer.ok("skill", "diff", "triage", "v1", "v2").stdout.splitlines()
    assert diff[0] == f"--- triage v1 ({tags['v1'][:12]})"
    assert diff[1] == f"+++ triage v2 ({tags['v2'][:12]})"
    assert "-Label issues. v1" in diff and "+Label issues. v2" in diff
    noted = viewer.json("annotations")
    assert [(n["session_id"], n["label"], n["note"]) for n in noted] == [
        (sid, "bad", "wrong label")
    ]
    kinds = {e["kind"] for e in viewer.json("lineage", "triage")}
    assert {"version", "annotation"} <= kinds, kinds
    shown = viewer.ok("skill", "evidence", "triage", "--limit", "10").stdout
    assert shown.count("session ") == 4
    # a's three sessions came without text (two of them triage), b's with it.
    assert shown.count("not on the team server (its machine synced --content derived)") == 2
    assert "prompt   Please triage issue 41" in shown
    assert _server_rows(team_url) == held
    for args in (("status",), ("log",), ("skill", "list")):
        done = viewer.run(*args)
        assert done.returncode == 2, (args, done.stderr)
        assert "reads what only this machine holds" in done.stderr, done.stderr
        assert "changes only its own log" not in done.stderr


def test_two_machines_testing_different_challengers_show_both_tests(
    tmp_path: Path, team_url: str
) -> None:
    """G23: two machines test one champion against different challengers: the team's
    ``skill versions`` lists both tests (each with its machine and counts) and marks both
    challengers, rather than the newest test with the other challenger as a bystander."""
    machines = []
    for name in ("y1", "y2"):
        m = Machine(tmp_path / name, name, 0)
        source = m.skills / "tidy"
        source.mkdir(parents=True)
        head = "---\nname: tidy\ndescription: tidy things\n---\n# tidy\n"
        (source / "SKILL.md").write_text(head + "Tidy the code.\n")
        challenger = tmp_path / name / "challenger.md"
        challenger.write_text(head + f"Tidy the code, challenger from {name}.\n")
        live = m.home / ".claude" / "skills" / "tidy"
        live.parent.mkdir(parents=True)
        m.ctl("skill", "import", "tidy", "--from", str(source), "--live", str(live))
        m.ctl("skill", "add-challenger", "tidy", str(challenger))
        m.ctl("skill", "record", "tidy", "--version", "v1", "--success", "--id", "1")
        m.ctl("skill", "record", "tidy", "--version", "v2", "--failure", "--id", "2")
        mine = m.json("skill", "versions", "tidy")
        assert (mine["champion"], mine["challenger"]) == ("v1", "v2")
        sent = m.sync(team_url)
        machines.append((sent["machine"], mine))
    viewer = Viewer(tmp_path, team_url)
    report = viewer.json("skill", "versions", "tidy")
    hashes = {v["content_hash"]: v for v in report["versions"]}
    tests = report["tests"]
    assert len(tests) == 2, tests
    champion = {t["champion_hash"] for t in tests}
    assert len(champion) == 1  # one champion body, v1 on both machines
    assert hashes[champion.pop()]["role"] == "champion"
    for machine, mine in machines:
        own = {v["tag"]: v["content_hash"] for v in mine["versions"]}
        test = next(t for t in tests if t["challenger_hash"] == own["v2"])
        assert [name.split()[-1] for name in test["machines"]] == [machine[:6]]
        assert (test["champion_successes"], test["champion_executions"]) == (1, 1)
        assert (test["challenger_successes"], test["challenger_executions"]) == (0, 1)
        row = hashes[own["v2"]]
        assert row["role"] == "challenger"
        assert (row["experiment_successes"], row["experiment_executions"]) == (0, 1)
    champ_row = next(v for v in report["versions"] if v["role"] == "champion")
    assert (champ_row["experiment_successes"], champ_row["experiment_executions"]) == (2, 2)
    shown = viewer.ok("skill", "versions", "tidy").stdout
    assert "2 open tests: the team's machines test different challengers" in shown
    assert shown.count(" vs ") == 2
