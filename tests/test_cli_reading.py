"""The CLI as a person reads it (issue 8): layout, times, ids, bounds, policy, refusals."""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import click
import msgspec
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from skillopsd.cli import cli
from skillopsd.cli._output import cells, compact, cut, plural, table
from skillopsd.cli._reason import first_reason
from skillopsd.cli._time import WHEN, to_stored
from skillopsd.cli.policy import SETTINGS, check_value
from skillopsd.events import Database, EventLog, NewEvent
from skillopsd.events.types import PolicySet
from skillopsd.projections.verdict import VerdictPolicy

from ._capture_helpers import FIXTURES, layout_claude_pair
from .conftest import run_ctl

ZONE = "America/New_York"


@pytest.fixture(scope="module")
def corpus_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every real fixture ingested once; tests that write use a copy (:func:`db_copy`)."""
    base = tmp_path_factory.mktemp("reading")
    home = base / "home"
    layout_claude_pair(home)
    path = base / "s.db"
    files = [str(home / ".claude"), *(str(p) for p in sorted(FIXTURES.glob("c*_*.jsonl")))]
    files = [f for f in files if "subagent" not in f]
    result = CliRunner().invoke(cli, ["--db", str(path), "ingest", *files])
    assert result.exit_code == 0, result.output
    Database.open(path).close()  # checkpoint nothing; the file is complete after ingest
    return path


@pytest.fixture
def db_copy(corpus_db: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy.db"
    db = Database.open(corpus_db)
    db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    shutil.copy(corpus_db, target)
    return target


def _json(path: Path, *args: str) -> object:
    result = CliRunner().invoke(cli, ["--db", str(path), *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _ctl(path: Path, *args: str, **env: str) -> tuple[int, str, str]:
    done = run_ctl("--db", str(path), *args, env={"COLUMNS": "100", **env})
    return done.returncode, done.stdout, done.stderr


def _head(path: Path) -> int:
    db = Database.open(path)
    try:
        with db.read():
            return EventLog(db).head()
    finally:
        db.close()


# --- sessions: tokens, width, local time -------------------------------------------------


def test_sessions_table_fits_100_columns_in_local_time(corpus_db: Path) -> None:
    sessions = _json(corpus_db, "sessions", "--json")
    assert isinstance(sessions, list) and len(sessions) >= 7
    code, out, err = _ctl(corpus_db, "sessions", TZ=ZONE)
    assert code == 0, err
    lines = out.splitlines()
    assert all(cells(line) <= 100 for line in lines), max(lines, key=cells)
    header, rows = lines[0], lines[1:]
    assert len(rows) == len(sessions)
    starts = {s["session_id"][:8]: s for s in sessions}
    zones = set()
    for line in rows:
        day, clock, agent, short = line.split()[:4]
        s = starts[short]
        local = datetime.fromisoformat(s["started_at"]).astimezone(ZoneInfo(ZONE))
        assert f"{day} {clock}" == local.strftime("%Y-%m-%d %H:%M")
        assert agent == s["agent"]
        zones.add(local.tzname())
        # tokens: input (cached input included) plus output, in at most five characters
        total = (s["tokens"]["input"] or 0) + (s["tokens"]["output"] or 0)
        assert compact(total) in line.split()
        title = " ".join((s["title"] or "-").split())
        cell = line[header.index("title") :]
        assert cell == title or (cell.endswith("…") and title.startswith(cell[:-1].rstrip()))
    assert header.startswith(f"started ({'/'.join(sorted(zones))})")
    code, out, _ = _ctl(corpus_db, "sessions", "--utc", TZ=ZONE)
    first = out.splitlines()[1]
    assert out.startswith("started (UTC)")
    utc = datetime.fromisoformat(starts[first.split()[3]]["started_at"])
    assert first.startswith(utc.strftime("%Y-%m-%d %H:%M"))


def test_long_titles_and_skill_lists_are_cut_with_an_ellipsis(db_copy: Path) -> None:
    result = CliRunner().invoke(cli, ["--db", str(db_copy), "sessions"], env={"COLUMNS": "100"})
    cut_titles = [line for line in result.output.splitlines() if line.endswith("…")]
    # The Codex fixtures' prompts are far longer than what is left of 100 columns.
    assert cut_titles
    # A cut leaves at most one cell unused (a space or a wide character at the cut point),
    # unless it stopped before a number it would have cut in two (``[qvr-run-key: 7…``).
    titles = {
        s["session_id"][:8]: " ".join((s["title"] or "-").split())
        for s in _json(db_copy, "sessions", "--json")
    }
    for line in cut_titles:
        assert cells(line) <= 100
        if cells(line) < 99:
            shown = line.split("  ")[-1].strip().removesuffix("…")
            title = titles[line.split()[3]]
            assert title.startswith(shown)
            assert re.match(r"\s*[$+\-]?[0-9]", title[len(shown) :]), (line, title)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.lists(st.text(min_size=0, max_size=40), min_size=4, max_size=4),
        min_size=0,
        max_size=6,
    ),
    width=st.integers(min_value=60, max_value=160),
)
def test_table_never_exceeds_the_width_when_the_fixed_columns_fit(
    rows: list[list[str]], width: int
) -> None:
    rows = [[cut(r[0], 8), cut(r[1], 8), r[2], r[3]] for r in rows]
    runner = CliRunner()

    @click.command()
    def show() -> None:
        table([list(r) for r in rows], ["a", "b", "c", "title"], caps={2: 14}, flex=3, width=width)

    out = runner.invoke(show).output
    assert all(cells(line) <= width for line in out.splitlines())
    assert len(out.splitlines()) == len(rows) + 1  # one line per row, whatever the text


@given(st.integers(min_value=0, max_value=10**15))
def test_compact_numbers_are_short_and_close(value: int) -> None:
    text = compact(value)
    assert len(text) <= 5
    scale = {"k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
    shown = float(text[:-1]) * scale[text[-1]] if text[-1] in scale else float(text)
    assert abs(shown - value) <= max(0.05 * value, 0.5)


def test_plurals() -> None:
    assert [plural(n, "session") for n in (0, 1, 2, 1234)] == [
        "0 sessions",
        "1 session",
        "2 sessions",
        "1,234 sessions",
    ]


# --- session show ---------------------------------------------------------------------------


def test_session_show_reads_without_none_and_says_why(corpus_db: Path) -> None:
    sessions = _json(corpus_db, "sessions", "--json")
    assert isinstance(sessions, list)
    reasons = 0
    for s in sessions:
        code, out, err = _ctl(corpus_db, "session", "show", s["session_id"], TZ=ZONE)
        assert code == 0, err
        assert "None" not in out
        tokens = next(line for line in out.splitlines() if line.startswith("tokens"))
        assert not re.search(r"\d{4}", tokens.replace(",", ";")), tokens
        shown = _json(corpus_db, "session", "show", s["session_id"], "--json")
        assert isinstance(shown, dict)
        lines = out.splitlines()
        bad = [sp for sp in shown["spans"] if sp["outcome"] in ("failure", "blocked")]
        marked = [i for i, line in enumerate(lines) if re.match(r"\s*[✗⊘] ", line)]
        assert len(marked) == len(bad)
        for i, span in zip(marked, bad, strict=True):
            assert lines[i + 1].lstrip().startswith("↳ ")
            why = first_reason(span["attributes"].get("skillops.result.error"))
            expected = why or "(no reason recorded)"
            text = lines[i + 1].split("↳ ", 1)[1]
            assert text == expected or expected.startswith(text[:-1])
            reasons += 1
        start = datetime.fromisoformat(s["started_at"]).astimezone(ZoneInfo(ZONE))
        assert start.strftime("%Y-%m-%d %H:%M:%S") in out
    assert reasons >= 1  # the fixtures hold a blocked call


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Exit code 1\n(eval):1: no matches found: --include=*.go", "exit 1: (eval):1: no matc"),
        (
            "Command: /bin/zsh -lc 'go test ./...'\nChunk ID: e2893f\nWall time: 0.0000 seconds\n"
            "Process exited with code 1\nOriginal token count: 860\nOutput:\n# example.com/x\n",
            "exit 1: # example.com/x",
        ),
        ("Exit code: 2\nWall time: 0.1 seconds\nOutput:\n\n", "exit 2"),
        (
            "<tool_use_error>File has not been read yet. Read it first.</tool_use_error>",
            "File has not been read yet. Read it first.",
        ),
        ('{"output":"ls: x: No such file\\n","metadata":{"exit_code":1}}', "exit 1: ls: x: No"),
        ("apply_patch verification failed: Failed to find expected lines", "apply_patch verif"),
        ("Command not found: foo", "Command not found: foo"),
        ("", None),
        (None, None),
    ],
)
def test_first_reason_of_real_shapes(text: str | None, reason: str | None) -> None:
    got = first_reason(text)
    assert got == reason or (reason is not None and got is not None and got.startswith(reason))


@given(st.text())
def test_first_reason_is_one_line_or_none(text: str) -> None:
    got = first_reason(text)
    assert got is None or (got and "\n" not in got and "\r" not in got)


# --- ids ------------------------------------------------------------------------------------


def test_an_ambiguous_prefix_lists_its_matches(corpus_db: Path) -> None:
    sessions = _json(corpus_db, "sessions", "--agent", "codex", "--json")
    assert isinstance(sessions, list)
    natives = sorted(s["native_session_id"] for s in sessions)
    # Codex ids are UUIDv7: two of the fixtures share their first six characters.
    first, second = natives[-2:]
    prefix = first[: next(i for i, (a, b) in enumerate(zip(first, second, strict=True)) if a != b)]
    assert len(prefix) >= 6
    matching = [s for s in sessions if s["native_session_id"].startswith(prefix)]
    for command in (["session", "show"], ["export", "jsonl", "--session"], ["rederive"]):
        args = [*command, prefix] if command != ["rederive"] else ["rederive", "--session", prefix]
        code, out, err = _ctl(corpus_db, *args)
        assert code == 1 and out == "", (command, err)
        assert err.count("\n") == 1 and "ambiguous" in err
        assert all(s["session_id"] in err for s in matching)
    unique = matching[0]["native_session_id"][: len(prefix) + 6]
    assert (
        _json(corpus_db, "session", "show", unique, "--json")["session"]["session_id"]
        == (matching[0]["session_id"])
    )
    code, _, err = _ctl(corpus_db, "session", "show", "019")
    assert code == 1 and "at least 6 characters" in err


# --- --since / --until ------------------------------------------------------------------------


def test_since_accepts_what_its_help_shows_and_local_times(corpus_db: Path) -> None:
    everything = _json(corpus_db, "sessions", "--json")
    assert isinstance(everything, list)
    for spelling in ("3650d", "3650D", "520w", "3650 days"):
        assert len(_json(corpus_db, "sessions", "--since", spelling, "--json")) == len(everything)
    code, _, err = _ctl(corpus_db, "sessions", "--since", "3M")
    assert code == 2 and "ambiguous" in err
    target = everything[len(everything) // 2]
    start = datetime.fromisoformat(target["started_at"])
    local = start.astimezone(ZoneInfo(ZONE)).replace(tzinfo=None)
    naive = (local - timedelta(seconds=1)).isoformat(timespec="seconds")
    after = (local + timedelta(seconds=1)).isoformat(timespec="seconds")

    def ids(*args: str) -> set[str]:
        code, out, err = _ctl(corpus_db, "sessions", "--json", *args, TZ=ZONE)
        assert code == 0, err
        return {s["session_id"] for s in json.loads(out)}

    assert target["session_id"] in ids("--since", naive)
    assert target["session_id"] not in ids("--since", after)
    assert target["session_id"] in ids("--until", after)
    assert target["session_id"] not in ids("--until", naive)
    window = ids("--since", naive, "--until", after)
    assert target["session_id"] in window
    assert window == {
        s["session_id"] for s in everything if naive <= _local(s["started_at"]) < after
    }
    # export honours the window, with --session too
    code, out, err = _ctl(corpus_db, "export", "jsonl", "--session", target["session_id"])
    spans = out.splitlines()
    assert code == 0 and spans
    code, out, err = _ctl(
        corpus_db, "export", "jsonl", "--session", target["session_id"], "--since", after, TZ=ZONE
    )
    assert code == 0 and out == "" and "outside --since/--until" in err
    code, out, _ = _ctl(
        corpus_db, "export", "jsonl", "--session", target["session_id"], "--since", naive, TZ=ZONE
    )
    assert out.splitlines() == spans
    code, out, _ = _ctl(corpus_db, "export", "jsonl", "--since", naive, "--until", after, TZ=ZONE)
    assert {json.loads(line)["session_id"] for line in out.splitlines()} == window


def _local(stored: str) -> str:
    moment = datetime.fromisoformat(stored).astimezone(ZoneInfo(ZONE)).replace(tzinfo=None)
    return moment.isoformat(timespec="seconds")


@given(st.text(max_size=30))
def test_a_time_bound_is_stored_text_or_a_usage_error(text: str) -> None:
    try:
        value = WHEN.convert(text, None, None)
    except click.BadParameter as exc:
        assert "\n" not in exc.format_message()
    else:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", value)


@given(st.integers(min_value=0, max_value=10**30), st.sampled_from("smhdwSHDW"))
def test_any_span_back_is_a_bound_or_a_usage_error(number: int, unit: str) -> None:
    try:
        value = WHEN.convert(f"{number}{unit}", None, None)
    except click.BadParameter:
        return
    assert value <= to_stored(datetime.now(UTC))


# --- policy --------------------------------------------------------------------------------


def test_the_settings_table_matches_the_policy_the_projection_reads() -> None:
    defaults = msgspec.to_builtins(VerdictPolicy())
    assert {k: s.default for k, s in SETTINGS["verdict"].items()} == defaults
    for key, setting in SETTINGS["verdict"].items():
        assert check_value("verdict", key, str(setting.default)) == setting.default


@pytest.mark.parametrize(
    "pair",
    [
        "failure_share=2",
        "failure_share=nan",
        "failure_share=inf",
        "failure_share=-0.1",
        "tail_turns=-1",
        "unresolved_min=0",
        "tail_turns=1.5",
        "tail_turns=" + "9" * 40,
        "failure_share=" + "9" * 400,
        "tail_turns=",
        "bogus=1",
        "=1",
        "tail_turns",
    ],
)
def test_policy_set_refuses_bad_values_and_records_nothing(db_copy: Path, pair: str) -> None:
    head = _head(db_copy)
    code, out, err = _ctl(db_copy, "policy", "set", "verdict", pair)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert _head(db_copy) == head


def test_policy_set_updates_only_the_keys_given(db_copy: Path) -> None:
    fresh = _json(db_copy, "policy", "show", "verdict", "--json")
    assert fresh["position"] is None and fresh["values"] == msgspec.to_builtins(VerdictPolicy())
    _json(db_copy, "policy", "set", "verdict", "tail_turns=3", "--json")
    after = _json(db_copy, "policy", "set", "verdict", "failure_share=0.5", "--json")
    assert after["values"] == {"failure_share": 0.5, "tail_turns": 3, "unresolved_min": 1}
    assert after["set"] == {"failure_share": 0.5, "tail_turns": 3}
    shown = _json(db_copy, "policy", "show", "--json")
    assert [p for p in shown if p["name"] == "verdict"] == [after]
    assert {p["name"] for p in shown} == {"verdict", "gate", "bandit"}
    text = CliRunner().invoke(cli, ["--db", str(db_copy), "policy", "show"]).output
    assert re.search(r"^tail_turns\s+3\s+set\s", text, re.MULTILINE)
    assert re.search(r"^unresolved_min\s+1\s+default\s", text, re.MULTILINE)
    assert re.search(r"^failure_share\s+0\.5\s+set\s", text, re.MULTILINE)


def test_policy_show_tells_a_stored_invalid_value_and_set_replaces_it(db_copy: Path) -> None:
    db = Database.open(db_copy)
    EventLog(db).append(
        [NewEvent("policy:verdict", PolicySet(name="verdict", values={"failure_share": 2}))]
    )
    db.close()
    result = CliRunner().invoke(cli, ["--db", str(db_copy), "policy", "show", "verdict"])
    # what the projection computes with (a policy that does not validate falls back to the
    # defaults), and a warning naming the stored value
    assert re.search(r"^failure_share\s+0\.8\s", result.output, re.MULTILINE)
    assert "not valid" in result.output
    after = _json(db_copy, "policy", "set", "verdict", "tail_turns=2", "--json")
    assert after["values"] == {"failure_share": 0.8, "tail_turns": 2, "unresolved_min": 1}
    assert after["invalid"] == {}


# --- ingest ----------------------------------------------------------------------------------


def test_ingest_with_agent_refuses_a_file_of_no_such_records(db_copy: Path, tmp_path: Path) -> None:
    head = _head(db_copy)
    codex_file = FIXTURES / "codex_skill.jsonl"
    for agent, path in (("claude", "/bin/true"), ("codex", "/bin/true"), ("claude", codex_file)):
        code, out, err = _ctl(db_copy, "ingest", "--agent", agent, str(path))
        assert code == 1 and out == "", err
        assert err.count("\n") == 1 and str(path) in err and agent in err
        assert _head(db_copy) == head
    missing = tmp_path / "fresh.db"
    code, _, _ = _ctl(missing, "ingest", "--agent", "claude", "/bin/true")
    assert code == 1 and not missing.exists()
    code, out, _ = _ctl(
        missing, "ingest", "--agent", "claude", str(FIXTURES / "claude_skill.jsonl")
    )
    assert code == 0 and "from 1 file," in out and "derived 1 session" in out


# --- the database file -------------------------------------------------------------------------


def test_read_only_commands_on_a_missing_database_create_nothing(tmp_path: Path) -> None:
    path = tmp_path / "typo.db"
    for args in (
        ["sessions"],
        ["session", "show", "abcdef"],
        ["export", "jsonl"],
        ["log"],
        ["verify"],
        ["status"],
        ["rebuild"],
        ["rederive"],
        ["policy", "show"],
    ):
        code, out, err = _ctl(path, *args)
        assert code == 2 and out == "", (args, out)
        assert err.count("\n") == 1 and f"{path}: no database there" in err, (args, err)
        assert list(tmp_path.iterdir()) == []


def test_an_empty_file_adopted_as_a_database_is_private(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    path.touch(mode=0o644)
    path.chmod(0o644)
    # A read-only command refuses it (issue 18): it would otherwise write a schema into it.
    code, _, err = _ctl(path, "status")
    assert code == 2 and "not a skillops database" in err, err
    assert path.stat().st_size == 0 and path.stat().st_mode & 0o777 == 0o644
    # A command that writes adopts it, and makes it private.
    code, _, err = _ctl(path, "policy", "set", "gate", "min_sessions=3")
    assert code == 0, err
    assert path.stat().st_mode & 0o777 == 0o600


# --- daemon install -----------------------------------------------------------------------------


def test_daemon_install_checks_its_db_first(tmp_path: Path) -> None:
    config = tmp_path / "config"
    unit = config / "systemd" / "user" / "skillopsd.service"
    env = {"XDG_CONFIG_HOME": str(config), "USER": "somebody-else"}
    not_db = tmp_path / "notes.txt"
    not_db.write_text("hello\n")
    for bad in (tmp_path / "no" / "x.db", not_db):
        done = run_ctl("daemon", "install", "--db", str(bad), env=env)
        assert done.returncode == 2 and "no unit written" in done.stderr
        assert done.stderr.count("\n") == 1
        assert not unit.exists()
    done = run_ctl("daemon", "install", "--db", "relative.db", env=env)
    assert done.returncode == 0, done.stderr
    exec_start = next(line for line in unit.read_text().splitlines() if line.startswith("Exec"))
    assert exec_start.endswith(f"--db {Path.cwd() / 'relative.db'}")
    me = pwd.getpwuid(os.getuid()).pw_name
    assert f"loginctl enable-linger {me}" in done.stdout


# --- rebuild and plurals ---------------------------------------------------------------------


def test_rebuild_reports_events_replayed(db_copy: Path) -> None:
    head = _head(db_copy)
    report = _json(db_copy, "rebuild", "--json")
    assert report["events_replayed"] == head
    _code, out, _ = _ctl(db_copy, "rebuild")
    assert f"from {head:,} events replayed" in out
    assert re.match(r"rebuilt \d+ projections? ", out)


def test_first_reason_prefers_the_line_that_reads_like_an_error() -> None:
    text = (
        "Command: /bin/zsh -lc 'go test ./...'\nProcess exited with code 1\nOutput:\n"
        "ok  \tgithub.com/x/a\t0.451s\n--- FAIL: TestB (0.00s)\nFAIL\tgithub.com/x/b\t0.1s\n"
    )
    assert first_reason(text) == "exit 1: --- FAIL: TestB (0.00s)"
    assert first_reason("Exit code 1\nOn branch main\nnothing to commit, working tree clean") == (
        "exit 1: nothing to commit, working tree clean"
    )
    # without an exit code the text is the reason itself: its first line
    assert first_reason("Task not found\nerror: other") == "Task not found"
