"""Sessions end to end: ingest, queries, export, policy, rederive, and a live daemon."""

from __future__ import annotations

import json
import time
from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner

from skillopsd.cli import cli
from skillopsd.derive import DERIVER_VERSION, derive_session, session_id
from skillopsd.derive import _outcome as outcome_rules
from skillopsd.deriving import SessionDeriver
from skillopsd.events import Database, EventLog, verify_chain
from skillopsd.projections import engine_for

from ._capture_helpers import (
    CLAUDE_AGENT,
    CLAUDE_SESSION,
    FIXTURES,
    claude_project,
    extract_corpus,
    file_lines,
    layout_claude_pair,
)
from ._daemon import DaemonProcess, daemon_env, db_path
from .conftest import run_ctl


@pytest.fixture
def ingested(tmp_path: Path) -> Path:
    """A database holding every real fixture, the subagent pair laid out as Claude does."""
    home = tmp_path / "home"
    layout_claude_pair(home)
    path = tmp_path / "s.db"
    runner = CliRunner()
    for args in (
        [str(home / ".claude")],
        [
            str(FIXTURES / n)
            for n in (
                "claude_skill.jsonl",
                "claude_reasoning.jsonl",
                "claude_injected_skill.jsonl",
                "codex_skill.jsonl",
                "codex_narrated_skill.jsonl",
                "codex_worktree_skill.jsonl",
            )
        ],
    ):
        result = runner.invoke(cli, ["--db", str(path), "ingest", *args])
        assert result.exit_code == 0, result.output
    return path


def _ctl(path: Path, *args: str) -> object:
    result = CliRunner().invoke(cli, ["--db", str(path), *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_sessions_json_shape_and_filters(ingested: Path) -> None:
    sessions = _ctl(ingested, "sessions", "--json")
    assert len(sessions) == 7
    keys = {
        "session_id",
        "agent",
        "native_session_id",
        "title",
        "cwd",
        "started_at",
        "ended_at",
        "turns",
        "tools",
        "skills",
        "outcomes",
        "verdict",
        "tokens",
        "deriver_version",
    }
    for s in sessions:
        assert keys <= s.keys()
        assert set(s["outcomes"]) == {"success", "failure", "blocked", "unknown"}
        assert set(s["tokens"]) == {"input", "output", "cache_read", "cache_creation", "note"}
        assert s["session_id"] == session_id(s["agent"], s["native_session_id"])
        assert s["started_at"].endswith("Z") and s["started_at"] <= s["ended_at"]
    started = [s["started_at"] for s in sessions]
    assert started == sorted(started, reverse=True)
    codex = _ctl(ingested, "sessions", "--agent", "codex", "--json")
    assert {s["agent"] for s in codex} == {"codex"} and len(codex) == 3
    for s in codex:
        assert s["tokens"]["cache_creation"] is None
    regex = _ctl(ingested, "sessions", "--skill", "regex-rules", "--json")
    assert {s["agent"] for s in regex} == {"claude", "codex"}
    blocked = _ctl(ingested, "sessions", "--verdict", "abandoned", "--json")
    assert [s["outcomes"]["blocked"] for s in blocked] == [1]
    assert len(_ctl(ingested, "sessions", "--limit", "2", "--json")) == 2
    assert _ctl(ingested, "sessions", "--since", "2099-01-01", "--json") == []
    assert len(_ctl(ingested, "sessions", "--since", "3650d", "--json")) == 7
    human = CliRunner().invoke(cli, ["--db", str(ingested), "sessions"])
    assert human.exit_code == 0 and "regex-rules" in human.output


def test_session_show_by_either_id(ingested: Path) -> None:
    by_native = _ctl(ingested, "session", "show", CLAUDE_SESSION, "--json")
    ours = by_native["session"]["session_id"]
    assert _ctl(ingested, "session", "show", ours, "--json") == by_native
    spans = by_native["spans"]
    assert {
        "span_id",
        "trace_id",
        "parent_span_id",
        "kind",
        "name",
        "start",
        "end",
        "outcome",
        "attributes",
    } <= spans[0].keys()
    ids = {s["span_id"] for s in spans}
    assert all(s["parent_span_id"] is None or s["parent_span_id"] in ids for s in spans)
    agent = next(s for s in spans if s["name"] == "Agent")
    assert agent["attributes"]["gen_ai.agent.id"] == CLAUDE_AGENT
    assert any(s["parent_span_id"] == agent["span_id"] and s["kind"] == "CHAIN" for s in spans)
    text = CliRunner().invoke(cli, ["--db", str(ingested), "session", "show", ours])
    assert text.exit_code == 0 and "✓ TOOL Agent" in text.output
    missing = CliRunner().invoke(cli, ["--db", str(ingested), "session", "show", "nope"])
    assert missing.exit_code == 1
    assert missing.output.strip().count("\n") == 0 and "unknown session 'nope'" in missing.output


def test_export_jsonl(ingested: Path) -> None:
    result = CliRunner().invoke(cli, ["--db", str(ingested), "export", "jsonl"])
    assert result.exit_code == 0
    rows = [json.loads(line) for line in result.output.splitlines()]
    sessions = _ctl(ingested, "sessions", "--json")
    assert {r["session_id"] for r in rows} == {s["session_id"] for s in sessions}
    assert all(set(r) >= {"span_id", "trace_id", "parent_span_id", "kind", "outcome"} for r in rows)
    one = CliRunner().invoke(
        cli, ["--db", str(ingested), "export", "jsonl", "--session", CLAUDE_SESSION]
    )
    shown = _ctl(ingested, "session", "show", CLAUDE_SESSION, "--json")
    assert len(one.output.splitlines()) == len(shown["spans"])


def test_policy_changes_verdicts_and_nothing_else(ingested: Path) -> None:
    def state() -> tuple[dict[str, str | None], list[object]]:
        sessions = _ctl(ingested, "sessions", "--json")
        verdicts = {s["session_id"]: s["verdict"] for s in sessions}
        rest = sorted(
            json.dumps({k: v for k, v in s.items() if k != "verdict"}, sort_keys=True)
            for s in sessions
        )
        return verdicts, rest

    before, rest_before = state()
    assert "abandoned" in before.values()
    # Every failure counts: no fixture failed, so only the verdicts may move (and none does);
    # tests/test_verdict.py shows policies flipping verdicts of real-shaped sessions.
    _ctl(ingested, "policy", "set", "verdict", "failure_share=0.0", "--json")
    after, rest_after = state()
    assert rest_after == rest_before
    assert after == before
    check = CliRunner().invoke(cli, ["--db", str(ingested), "rebuild", "--check"])
    assert check.exit_code == 0, check.output
    assert state()[0] == after
    bad = CliRunner().invoke(cli, ["--db", str(ingested), "policy", "set", "verdict", "bogus=1"])
    assert bad.exit_code == 2 and "bogus" in bad.output


def test_rederive_is_a_replay(ingested: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = Database.open(ingested)
    log = EventLog(db)
    engine = engine_for(db)
    engine.catch_up()
    others_before = [
        (e.position, e.hash)
        for e in log.read(with_data=False)
        if e.type not in ("SessionDerived", "SpanDerived", "DeriveErrorRecorded")
    ]
    blocked = dict(db.conn.execute("SELECT session_id, blocked FROM p_sessions").fetchall())
    assert SessionDeriver(db).stale() == set()
    # A new deriver version whose rules call every rejection a failure instead.
    monkeypatch.setattr(outcome_rules, "_CLAUDE_BLOCKED", ())
    monkeypatch.setattr(outcome_rules, "_CLAUDE_DENIED", outcome_rules.re.compile("$^"))
    new = DERIVER_VERSION + 1
    deriver = SessionDeriver(db, deriver_version=new, derive=derive_session)
    stale = deriver.stale()
    assert len(stale) == 7
    first = deriver.derive(stale)
    assert first.sessions == 7 and first.appended > 0
    engine.catch_up()
    changed = dict(db.conn.execute("SELECT session_id, blocked FROM p_sessions").fetchall())
    flipped = [s for s in blocked if blocked[s] != changed[s]]
    assert flipped and all(blocked[s] > changed[s] for s in flipped)
    assert {v for (v,) in db.conn.execute("SELECT DISTINCT deriver_version FROM p_sessions")} == {
        new
    }
    head = log.head()
    again = deriver.derive(deriver.stale())
    assert again.appended == 0 and log.head() == head
    forced = deriver.derive(deriver.all_sessions())  # even forced: nothing new to say
    assert forced.appended == 0 and log.head() == head
    others_after = [
        (e.position, e.hash)
        for e in log.read(with_data=False)
        if e.type not in ("SessionDerived", "SpanDerived", "DeriveErrorRecorded")
    ]
    assert others_after == others_before
    assert verify_chain(db).ok
    d1 = engine.digest()
    engine.rebuild()
    assert engine.digest() == d1


@pytest.mark.slow
def test_live_session_counts_while_growing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    project = claude_project(home)
    source = FIXTURES / "claude_injected_skill.jsonl"
    lines = file_lines(source)
    native = "5101a53f-28dd-4030-be70-a9bf552de00b"
    target = project / f"{native}.jsonl"
    env = daemon_env(home)
    daemon = DaemonProcess(home, "--derive-interval", "0.2", env=env)

    def expected(upto: int) -> dict[str, int]:
        d = derive_session("claude", native, [_prefix(source, upto)])
        return {
            "tools": d.session.tools,
            "calls": sum(1 for s in d.spans if s.kind in ("TOOL", "SKILL")),
            "done": sum(1 for s in d.spans if s.kind in ("TOOL", "SKILL") and s.outcome),
        }

    def shown() -> dict[str, int] | None:
        result = run_ctl("sessions", "--json", env=env)
        if result.returncode != 0:
            return None
        rows = [s for s in json.loads(result.stdout) if s["native_session_id"] == native]
        if not rows:
            return None
        o = rows[0]["outcomes"]
        return {
            "tools": rows[0]["tools"],
            "calls": sum(o.values()),
            "done": o["success"] + o["failure"] + o["blocked"],
        }

    try:
        half = len(lines) // 2
        with open(target, "wb") as fh:
            for i, (_offset, line) in enumerate(lines):
                fh.write(line + b"\n")
                fh.flush()
                if i + 1 == half:
                    want = expected(half)
                    deadline = time.monotonic() + 20
                    while shown() != want:
                        assert time.monotonic() < deadline, (shown(), want, daemon.logs()[-3000:])
                        time.sleep(0.1)
        want = expected(len(lines))
        deadline = time.monotonic() + 20
        while shown() != want:
            assert time.monotonic() < deadline, (shown(), want)
            time.sleep(0.1)
    finally:
        assert daemon.stop() == 0, daemon.logs()
    assert db_path(home).exists()


def _prefix(path: Path, upto: int):
    from skillopsd.derive import SourceLines

    return SourceLines("x", str(path), "", "", file_lines(path)[:upto])


def test_daemon_rederives_after_an_upgrade(tmp_path: Path) -> None:
    """At start the daemon derives again what an older deriver left (as rederive does)."""
    home = tmp_path / "home"
    layout_claude_pair(home)
    env = daemon_env(home)
    path = db_path(home)
    path.parent.mkdir(parents=True)
    db = Database.open(path)
    from skillopsd.sources import Capturer, capture_all, discover, resolve_roots

    capture_all(Capturer(db), list(discover(resolve_roots(env={"HOME": str(home)}))))
    old = SessionDeriver(db, deriver_version=0)
    assert old.derive(old.all_sessions()).sessions == 1
    engine_for(db).catch_up()
    assert db.conn.execute("SELECT deriver_version FROM p_sessions").fetchall() == [(0,)]
    db.close()
    result = run_ctl("rederive", "--json", env=env)
    report = json.loads(result.stdout)
    assert report["sessions"] == 1 and report["appended"] > 0
    assert json.loads(run_ctl("rederive", "--json", env=env).stdout)["appended"] == 0
    one = run_ctl("rederive", "--session", CLAUDE_SESSION, "--json", env=env)
    assert json.loads(one.stdout)["sessions"] == 1 and json.loads(one.stdout)["appended"] == 0
    bad = run_ctl("rederive", "--session", "nope", env=env)
    assert bad.returncode == 1 and "unknown session" in bad.stderr


def test_daemon_start_derives_sessions_of_an_older_deriver(tmp_path: Path) -> None:
    home = tmp_path / "home"
    layout_claude_pair(home)
    path = db_path(home)
    path.parent.mkdir(parents=True)
    db = Database.open(path)
    from skillopsd.sources import Capturer, capture_all, discover, resolve_roots

    capture_all(Capturer(db), list(discover(resolve_roots(env={"HOME": str(home)}))))
    old = SessionDeriver(db, deriver_version=0)
    old.derive(old.all_sessions())
    db.close()
    daemon = DaemonProcess(home, "--once")
    assert daemon.wait(60) == 0, daemon.logs()
    sessions = json.loads(run_ctl("sessions", "--json", env=daemon_env(home)).stdout)
    assert [s["deriver_version"] for s in sessions] == [DERIVER_VERSION]


@pytest.mark.slow
def test_a_new_session_is_derived_soon_after_a_long_backfill(tmp_path: Path) -> None:
    # The live passes are spaced by their own cost; the backfill's derivation of every
    # session (seconds on the real corpus) once held the first live session back nine times
    # as long.
    home = extract_corpus(tmp_path / "home")
    env = daemon_env(home)
    daemon = DaemonProcess(home, env=env)
    try:
        daemon.wait_for(lambda: '"following"' in daemon.logs(), timeout=120)
        native = "5101a53f-28dd-4030-be70-a9bf552de00b"
        target = claude_project(home) / f"{native}.jsonl"
        target.write_bytes((FIXTURES / "claude_injected_skill.jsonl").read_bytes())
        started = time.monotonic()

        def shown() -> bool:
            result = run_ctl("sessions", "--json", env=env)
            return result.returncode == 0 and any(
                s["native_session_id"] == native for s in json.loads(result.stdout)
            )

        daemon.wait_for(shown, timeout=60, interval=0.2)
        # The default --derive-interval is 1 s; a live pass of one small session is fast.
        assert time.monotonic() - started < 10, daemon.logs()[-3000:]
    finally:
        assert daemon.stop() == 0


def test_a_deriver_bug_is_recorded_not_raised(ingested: Path) -> None:
    db = Database.open(ingested)

    def broken(agent: str, native: str, sources: list, *, deriver_version: int):
        if native == CLAUDE_SESSION:
            raise KeyError("boom")
        return derive_session(agent, native, sources, deriver_version=deriver_version)

    deriver = SessionDeriver(db, deriver_version=DERIVER_VERSION + 1, derive=broken)
    result = deriver.derive(deriver.all_sessions())
    assert result.sessions == 6 and result.errors >= 1
    errors = [e.payload for e in EventLog(db).read(types=["DeriveErrorRecorded"])]
    assert any("deriver failed: KeyError" in e.message for e in errors)
    engine_for(db).catch_up()
    assert session_id("claude", CLAUDE_SESSION) in {k.session_id for k in deriver.stale()}


def test_a_derivation_the_log_cannot_store_is_recorded_not_raised(ingested: Path) -> None:
    # Whatever the deriver returns, storing it must not stop the other sessions: here an
    # attribute no 64-bit encoding holds, as a number read from a record once did.
    db = Database.open(ingested)

    def unstorable(agent: str, native: str, sources: list, *, deriver_version: int):
        d = derive_session(agent, native, sources, deriver_version=deriver_version)
        if native != CLAUDE_SESSION:
            return d
        span = msgspec.structs.replace(d.spans[0], attributes={"n": 2**70})
        return msgspec.structs.replace(d, spans=[span, *d.spans[1:]])

    deriver = SessionDeriver(db, deriver_version=5, derive=unstorable)
    result = deriver.derive(deriver.all_sessions())
    assert result.sessions == 6 and result.errors >= 1
    errors = [e.payload for e in EventLog(db).read(types=["DeriveErrorRecorded"])]
    assert any("deriver failed: OverflowError" in e.message for e in errors)


def test_capture_only_then_rederive(tmp_path: Path) -> None:
    home = tmp_path / "home"
    layout_claude_pair(home)
    env = daemon_env(home)
    daemon = DaemonProcess(home, "--once", "--no-derive", env=env)
    assert daemon.wait(60) == 0, daemon.logs()
    assert json.loads(run_ctl("sessions", "--json", env=env).stdout) == []
    one = json.loads(run_ctl("rederive", "--session", CLAUDE_SESSION, "--json", env=env).stdout)
    assert one["sessions"] == 1 and one["appended"] > 0
    assert json.loads(run_ctl("rederive", "--json", env=env).stdout)["sessions"] == 0
    (session,) = json.loads(run_ctl("sessions", "--json", env=env).stdout)
    assert session["native_session_id"] == CLAUDE_SESSION
