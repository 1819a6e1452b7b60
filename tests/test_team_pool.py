"""Pooled experiments (issue 23 item 3) against a real PostgreSQL, through the real CLI: one
A/B test fed by every machine of a team, routed on the pool, decided once.

Each machine is its own temporary HOME with its own log; they meet only on the server
(``skillopsctl sync --to``). Executions are recorded with ``skill record`` (the agent-neutral
path; tests/test_experiments_e2e.py covers which captured sessions count in a machine's own
test, which is what each machine contributes to the pool)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from threading import Barrier
from typing import Any

import msgspec
import psycopg
import pytest

from skillopsd.events import Database, EventLog, NewEvent
from skillopsd.events.types import (
    PoolShare,
    SkillChallengerStarted,
    SkillExecutionRecorded,
    SkillManaged,
    SkillPromoted,
    TeamDecision,
)
from skillopsd.team.pool import TeamTest, decide, snapshot
from skillopsd.versions.store import record_manual

from ._daemon import daemon_env, db_path
from ._postgres import Server, _free_port, start_server
from ._skill_sessions import T0, claude_session, skill_dir
from .conftest import console_script

pytestmark = pytest.mark.slow

CHAMPION = "Tidy the imports.\n\n1. Sort them.\n2. Remove the unused ones."
CHALLENGER = "Tidy the imports.\n\n1. Run `ruff check --fix`.\n2. Run the tests."
OLDER = "Tidy the imports (an older wording)."
OTHER = "Tidy the imports, and nothing else."


@pytest.fixture(scope="module")
def team_server() -> Iterator[Server]:
    yield from start_server()


@pytest.fixture
def team_url(team_server: Server) -> str:
    return team_server.new_database()


class Machine:
    """One developer's machine: a HOME, its log, the real CLI (with the team URL or not)."""

    def __init__(self, root: Path, name: str, url: str | None) -> None:
        self.root = root / name
        self.home = self.root / "home"
        self.home.mkdir(parents=True)
        extra = {"SKILLOPS_SYNC_URL": url} if url else {}
        self.env = daemon_env(self.home, **extra)
        if not url:
            self.env.pop("SKILLOPS_SYNC_URL", None)
        self.records = 0

    def run(self, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [console_script("skillopsctl"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == code, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr, done.stderr
        return done

    def ctl(self, *args: str, code: int = 0) -> str:
        done = self.run(*args, code=code)
        return done.stdout + done.stderr

    def json(self, *args: str, code: int = 0) -> Any:
        return json.loads(self.run(*args, "--json", code=code).stdout)

    def manage(self, champion: str = CHAMPION) -> None:
        folder = skill_dir(self.root / "skills", "tidy", champion)
        self.ctl("skill", "import", "tidy", "--from", str(folder))
        self.ctl("policy", "set", "bandit", "min_per_arm=3")

    def challenge(self, body: str = CHALLENGER) -> str:
        path = self.root / f"challenger-{abs(hash(body))}.md"
        path.write_text(f"---\nname: tidy\ndescription: test\n---\n\n{body}\n")
        out = self.ctl("skill", "add-challenger", "tidy", str(path))
        return out.split()[1]  # "challenger vN (hash) of tidy"

    def record(self, tag: str, success: bool, n: int = 1) -> str:
        """``n`` executions of ``tag``: the last through ``skill record`` (which routes),
        the ones before it straight into the log (what ``skill record`` appends, faster)."""
        outcome = "success" if success else "failure"
        db = Database.open(db_path(self.home))
        try:
            for _ in range(n - 1):
                self.records += 1
                record_manual(db, "tidy", tag, outcome, None, None, f"r{self.records}")
        finally:
            db.close()
        self.records += 1
        return self.ctl(
            "skill", "record", "tidy", "--version", tag, f"--{outcome}", "--id", f"r{self.records}"
        )

    def sync(self, url: str) -> str:
        report = self.json("sync", "--to", url)
        return str(report["machine"])

    def events(self, kind: str) -> list[dict[str, Any]]:
        found = self.json("log", "--type", kind)
        return [e["payload"] for e in found]

    def versions(self) -> dict[str, Any]:
        return self.json("skill", "versions", "tidy")  # type: ignore[no-any-return]


def _team_tests(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT test_id, champion, challenger, outcome, decided_by, record"
            " FROM skillops_team_tests ORDER BY started_at"
        ).fetchall()


def _champion_hash(machine: Machine) -> str:
    report = machine.versions()
    (champ,) = [v for v in report["versions"] if v["role"] == "champion"]
    return str(champ["content_hash"])


def _body_hash(machine: Machine, tag: str) -> str:
    (found,) = [v for v in machine.versions()["versions"] if v["tag"] == tag]
    return str(found["content_hash"])


def test_three_machines_below_the_threshold_decide_once_on_their_pool(
    tmp_path: Path, team_url: str
) -> None:
    a, b, c = (Machine(tmp_path, name, team_url) for name in "abc")
    for m in (a, b, c):
        m.manage()
    # C has seen another challenger first: the same body is v3 there, v2 on A and B.
    c.challenge(OTHER)
    c.ctl("skill", "rollback", "tidy", "v1")  # ends that test
    tags = {"a": a.challenge(), "b": b.challenge(), "c": c.challenge()}
    assert tags == {"a": "v2", "b": "v2", "c": "v3"}
    assert len({_body_hash(m, tags[n]) for n, m in zip("abc", (a, b, c), strict=True)}) == 1
    # A fourth machine runs the same challenger against an older champion: another test.
    d = Machine(tmp_path, "d", team_url)
    d.manage(OLDER)
    d.challenge()
    d.record("v2", True, 2)

    # Two failures of the champion and two successes of the challenger each: below the
    # minimum of 3 per arm on every machine.
    for m in (a, b, c):
        m.record("v1", False, 2)
        m.record(tags["a" if m is a else "b" if m is b else "c"], True, 2)
    assert a.versions()["champion"] == "v1"
    machines = {name: m.sync(team_url) for name, m in zip("abcd", (a, b, c, d), strict=True)}

    # A reads the pool (6 vs 6 executions), crosses, writes the team's decision and adopts it.
    out = a.ctl("skill", "route", "tidy")
    assert "promoted v2 (team)" in out, out
    rows = _team_tests(team_url)
    decided = [r for r in rows if r[3] is not None]
    assert len(decided) == 1, rows
    decision = msgspec.json.decode(bytes(decided[0][5]), type=TeamDecision)
    assert decision.outcome == "promote" and decision.decided_by == machines["a"]
    assert {s.machine for s in decision.shares} == {machines[n] for n in "abc"}  # not D
    assert all(
        (s.champion_executions, s.champion_successes, s.challenger_executions) == (2, 0, 2)
        for s in decision.shares
    )
    # B (its daemon) and C (the CLI) record the same decision, C naming its own tag.
    subprocess.run(
        [console_script("skillopsd"), "--once"], env=b.env, check=True, capture_output=True
    )
    assert "promoted v3 (team)" in c.ctl("skill", "route", "tidy")
    for m in (a, b, c):
        (promoted,) = [p for p in m.events("SkillPromoted") if p["author"] == "team"]
        assert promoted["team"]["test_id"] == decision.test_id
        assert promoted["team"]["decided_by"] == machines["a"]
        assert _champion_hash(m) == decision.challenger_hash
        # The test is over here: routing goes back to the champion alone.
        assert m.ctl("skill", "verify", "tidy").count("recompute exactly") == 1
    # D's test (another champion) is untouched, and still open on the server.
    assert d.versions()["champion"] == "v1"
    assert any(r[3] is None and r[1] == _body_hash(d, "v1") for r in _team_tests(team_url))
    # Every pooled routing A made names the pool and each machine's counts; verify recomputed
    # them from the events alone (the server was not asked).
    routed = [p for p in a.events("SkillRouted") if p.get("pool") == "team"]
    assert routed and all(
        sum(s["challenger_executions"] for s in p["shares"]) == p["arms"][1]["executions"]
        for p in routed
    )


def test_server_down_routes_on_local_counts_and_decides_nothing_until_it_is_back(
    tmp_path: Path, team_url: str
) -> None:
    dead = f"postgresql://skillops@127.0.0.1:{_free_port()}/nothing"
    m = Machine(tmp_path, "a", dead)
    m.manage()
    m.challenge()
    started = time.monotonic()
    # Enough for a local-only machine to decide (5 vs 5 at min_per_arm=3)...
    m.record("v1", False, 5)
    m.record("v2", True, 5)
    assert time.monotonic() - started < 60
    # ...but a team machine decides only on the pool: the test goes on, routed on its own
    # counts, and the routing says so.
    report = m.versions()
    assert report["champion"] == "v1" and report["pool"]["pool"] == "local"
    assert "did not answer" in m.ctl("skill", "versions", "tidy")
    newest = m.events("SkillRouted")[-1]
    assert newest["pool"] == "local" and "cannot reach" in newest["pool_note"]
    assert [(x["executions"], x["successes"]) for x in newest["arms"]] == [(5, 0), (5, 5)]
    assert "***" not in newest["pool_note"] or "@" in newest["pool_note"]
    assert "recompute exactly" in m.ctl("skill", "verify", "tidy")
    # The server back: the pool (this machine alone here) decides, once.
    m.env["SKILLOPS_SYNC_URL"] = team_url
    assert "promoted v2 (team)" in m.ctl("skill", "route", "tidy")
    assert len([r for r in _team_tests(team_url) if r[3] == "promote"]) == 1
    assert m.ctl("skill", "verify", "tidy").startswith(f"{len(m.events('SkillRouted'))} routing")
    # Without a team URL the same story on a local-only machine decides as it always has.
    local = Machine(tmp_path, "b", None)
    local.manage()
    local.challenge()
    local.record("v1", False, 5)
    out = local.record("v2", True, 5)
    assert "decision: promoted v2" in out and "(team)" not in out
    assert all(p.get("pool") is None for p in local.events("SkillRouted"))


def test_a_server_that_never_answers_does_not_stall_routing(tmp_path: Path) -> None:
    # Accepts the connection and says nothing (a hung server, a black-holed network).
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        m = Machine(tmp_path, "a", f"postgresql://skillops@127.0.0.1:{port}/x")
        m.manage()
        m.challenge()
        started = time.monotonic()
        done = m.run("skill", "route", "tidy")
        took = time.monotonic() - started
    assert took < 30, took
    assert "team pool unavailable" in done.stderr and "next: v1" in done.stdout
    assert m.events("SkillRouted")[-1]["pool"] == "local"


def test_two_machines_crossing_at_once_take_one_decision(tmp_path: Path, team_url: str) -> None:
    machines = [Machine(tmp_path, name, team_url) for name in "ab"]
    for m in machines:
        m.manage()
        m.challenge()
        m.record("v1", False, 3)  # 3 vs 3 here; 6 vs 6 together
        m.record("v2", True, 3)
        m.sync(team_url)
    procs = [
        subprocess.Popen(
            [console_script("skillopsctl"), "skill", "route", "tidy"],
            env=m.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for m in machines
    ]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0 and "Traceback" not in err, (out, err)
    rows = [r for r in _team_tests(team_url) if r[3] is not None]
    assert len(rows) == 1, rows
    deciders = set()
    for m in machines:
        (promoted,) = [p for p in m.events("SkillPromoted") if p["author"] == "team"]
        deciders.add(promoted["team"]["decided_by"])
    assert deciders == {rows[0][4]}


def _append(machine: Machine, event: object) -> None:
    db = Database.open(db_path(machine.home))
    try:
        EventLog(db).append([NewEvent("skill:tidy", event)])  # type: ignore[arg-type]
    finally:
        db.close()


def test_a_forged_team_decision_is_not_adopted_and_verify_flags_one_in_a_log(
    tmp_path: Path, team_url: str
) -> None:
    a, b = Machine(tmp_path, "a", team_url), Machine(tmp_path, "b", team_url)
    for m in (a, b):
        m.manage()
        m.challenge()
        m.record("v1", True, 1)
        m.record("v2", True, 1)
        m.sync(team_url)
    (row,) = _team_tests(team_url)
    champion, challenger = row[1], row[2]
    # Someone with write access to the server writes a promotion the counts do not give.
    forged = TeamDecision(
        test_id=row[0],
        skill="tidy",
        champion_hash=champion,
        challenger_hash=challenger,
        started_at="2026-01-01T00:00:00Z",
        decided_by="f" * 32,
        outcome="promote",
        reason="trust me",
        shares=[
            PoolShare(
                machine="f" * 32,
                champion_executions=1,
                champion_successes=1,
                challenger_executions=1,
                challenger_successes=1,
            )
        ],
        blocks=[[1, 1, 1, 1]],
        guardrails=[],
        params={
            "min_per_arm": 3,
            "promote_bar": 0.998,
            "retire_bar": 0.95,
            "horizon": 300,
            "block": 20,
        },
    )
    with psycopg.connect(team_url) as conn:
        conn.execute(
            "UPDATE skillops_team_tests SET outcome = 'promote', decided_by = %s,"
            " decided_at = now(), record = %s WHERE test_id = %s",
            (forged.decided_by, msgspec.json.encode(forged), row[0]),
        )
    for m in (a, b):
        out = m.json("skill", "route", "tidy")
        assert out["decisions"] == [] and "not adopted" in out["pool_note"], out
        assert m.versions()["champion"] == "v1"
    # The same forgery appended to a log by hand: skill verify names it and exits 1.
    _append(
        a,
        SkillPromoted(
            skill="tidy",
            version_hash=challenger,
            previous_hash=champion,
            reason="forged",
            author="team",
            team=forged,
        ),
    )
    out = a.ctl("skill", "verify", "tidy", code=1)
    assert "its counts give continue" in out, out


def test_verify_recomputes_a_pooled_routing_and_flags_a_forged_share(
    tmp_path: Path, team_url: str
) -> None:
    a, b = Machine(tmp_path, "a", team_url), Machine(tmp_path, "b", team_url)
    for m in (a, b):
        m.manage()
        m.challenge()
    b.record("v2", True, 2)
    b.sync(team_url)
    a.record("v1", True, 1)  # routed on the pool: B's two and A's one
    newest = a.events("SkillRouted")[-1]
    assert newest["pool"] == "team"
    assert [(x["executions"], x["successes"]) for x in newest["arms"]] == [(1, 1), (2, 2)]
    # verify recomputes it without the server (a URL that answers nothing).
    a.env["SKILLOPS_SYNC_URL"] = f"postgresql://skillops@127.0.0.1:{_free_port()}/nothing"
    assert "recompute exactly" in a.ctl("skill", "verify", "tidy")
    # A pooled routing claiming other counts for this machine than its log holds is named.
    forged = dict(newest)
    forged["shares"] = [dict(s) for s in newest["shares"]]
    forged["shares"][0]["champion_executions"] = 5
    forged["shares"][0]["champion_successes"] = 5
    _append(a, msgspec.convert(forged, type=_routed_type(), strict=False))
    out = a.ctl("skill", "verify", "tidy", code=1)
    assert "this machine's share recorded champion 5/5" in out, out


def _routed_type() -> type:
    from skillopsd.events.types import SkillRouted

    return SkillRouted


def _session(m: Machine, native: str, start: datetime) -> Path:
    return claude_session(
        m.home,
        session=native,
        skill="tidy",
        skill_dir=m.root / "skills" / "tidy",
        body=CHAMPION,
        prompt="Please tidy the imports of slug.py",
        tools=["Edit", "Bash"],
        final="Done.",
        start=start,
    )


def _capture(m: Machine) -> None:
    subprocess.run(
        [console_script("skillopsd"), "--once"],
        env=m.env,
        check=True,
        capture_output=True,
        timeout=300,
    )


def test_the_pool_counts_what_each_machine_counts_and_a_session_once(
    tmp_path: Path, team_url: str
) -> None:
    a, b = Machine(tmp_path, "a", team_url), Machine(tmp_path, "b", team_url)
    for m in (a, b):
        m.manage()
        m.challenge()
    # B: a session from before the test (backfilled now) and one from after it began.
    _session(b, "00000001-0000-4000-8000-00000000000b", T0)
    fresh = _session(
        b, "00000002-0000-4000-8000-00000000000b", datetime.now(UTC) + timedelta(seconds=5)
    )
    # A holds a copy of B's fresh transcript (a shared folder): the same session.
    copy = a.home / fresh.relative_to(b.home)
    copy.parent.mkdir(parents=True)
    shutil.copy(fresh, copy)
    _capture(b)
    b.sync(team_url)
    _capture(a)
    machines = {"a": a.sync(team_url), "b": b.sync(team_url)}
    a.ctl("skill", "route", "tidy")
    newest = a.events("SkillRouted")[-1]
    assert newest["pool"] == "team"
    shares = {s["machine"]: s for s in newest["shares"]}
    # B's old session is not in its test; its fresh one is A's copy: counted once, for A.
    assert shares[machines["a"]]["champion_executions"] == 1
    assert shares[machines["b"]]["champion_executions"] == 0
    assert [x["executions"] for x in newest["arms"]] == [1, 0]
    pool = a.versions()["pool"]
    assert (pool["pool"], pool["machines"], pool["champion_executions"]) == ("team", 2, 1)
    assert "pooled test" in a.ctl("skill", "versions", "tidy")
    # ...while B counts both sessions all time, and the fresh one in its test.
    v1 = {v["tag"]: v for v in b.versions()["versions"]}["v1"]
    assert (v1["executions"], v1["experiment_executions"]) == (2, 1)


def test_a_machine_cannot_add_executions_of_a_body_it_never_recorded(
    tmp_path: Path, team_url: str
) -> None:
    a = Machine(tmp_path, "a", team_url)
    a.manage()
    a.challenge()
    champion, challenger = _body_hash(a, "v1"), _body_hash(a, "v2")
    # A liar's log, written by hand: it manages the skill and tests the same pair, but holds
    # no version of either body, and claims twenty successes of the challenger.
    liar = tmp_path / "liar" / "skillops.db"
    liar.parent.mkdir()
    db = Database.open(liar)
    try:
        EventLog(db).append(
            [
                NewEvent("skill:tidy", SkillManaged(skill="tidy", champion_hash=champion)),
                NewEvent(
                    "skill:tidy",
                    SkillChallengerStarted(
                        skill="tidy",
                        version_hash=challenger,
                        champion_hash=champion,
                        test_id="forged",
                    ),
                ),
                *(
                    NewEvent(
                        "skill:tidy",
                        SkillExecutionRecorded(
                            skill="tidy",
                            version_hash=challenger,
                            session_id="",
                            outcome="success",
                            source="manual",
                            execution_id=f"manual:{n}",
                        ),
                    )
                    for n in range(20)
                ),
            ]
        )
    finally:
        db.close()
    report = json.loads(
        subprocess.run(
            [console_script("skillopsctl"), "--db", str(liar), "sync", "--to", team_url, "--json"],
            capture_output=True,
            text=True,
            check=True,
            env=a.env,
        ).stdout
    )
    a.record("v1", True, 1)
    newest = a.events("SkillRouted")[-1]
    shares = {s["machine"]: s for s in newest["shares"]}
    # The liar is in the test (named, for everyone to see), with nothing counted.
    assert shares[report["machine"]]["challenger_executions"] == 0
    assert [x["executions"] for x in newest["arms"]] == [1, 0]


def _race(url: str, test: TeamTest, writers: int) -> set[str | None]:
    """``writers`` threads write different decisions of ``test`` at one instant."""
    barrier = Barrier(writers)

    def write(n: int) -> str | None:
        proposal = TeamDecision(
            test_id=test.test_id,
            skill=test.skill,
            champion_hash=test.champion,
            challenger_hash=test.challenger,
            started_at=test.started_at,
            decided_by=f"m{n}",
            outcome="promote" if n % 2 else "retire",
            reason=f"machine {n}",
            shares=[],
            blocks=[],
            guardrails=[],
            params={},
        )
        barrier.wait()
        return decide(url, proposal).decided_by

    with ThreadPoolExecutor(writers) as pool:
        return set(pool.map(write, range(writers)))


def test_many_machines_deciding_at_the_same_instant_write_one_decision(team_url: str) -> None:
    """The server's side of the race, many times over: every writer gets back the one row."""
    for round_ in range(5):
        champion, challenger = f"{round_:02d}" + "c" * 62, f"{round_:02d}" + "d" * 62
        started = f"2026-12-01T00:00:0{round_}.000000Z"
        snap = snapshot(team_url, "race", "m0", (champion, challenger, started))
        (test,) = [t for t in snap.tests if t.challenger == challenger]
        got = _race(team_url, test, 8)
        assert len(got) == 1, got
        rows = [r for r in _team_tests(team_url) if r[2] == challenger]
        assert len(rows) == 1 and rows[0][4] in got
