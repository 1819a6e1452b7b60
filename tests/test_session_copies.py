"""Copies of one session count once (reviewer finding F4), end to end: the real
``skillopsd --once`` on a temporary HOME and the real ``skillopsctl``.

Claude Code writes a resumed or forked session as a new file under a new session id that
repeats the earlier history with the same message, request and tool-use ids; a user can copy
a transcript by hand (``sed`` of its id) or edit a byte of it. ``sessions`` lists each file;
the gate, ``skill show``, ``eval run`` and the A/B test's executions count the conversation
once."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from ._skill_sessions import T0, claude_session, codex_session, skill_dir
from .test_skills_acceptance import Home

pytestmark = pytest.mark.slow

BODY = "Tidy the imports.\n\n1. Sort them.\n2. Remove the unused ones."
EVALS = """\
version: 1
suites:
  - name: basic
    cases:
      - name: says-done
        graders:
          - {type: text, on: final_message, contains: ["Don"]}
"""


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home(tmp_path)


def _write(home: Home, agent: str, native: str, root: Path, *, final: str, hours: float) -> Path:
    write = claude_session if agent == "claude" else codex_session
    return write(
        root,
        session=native,
        skill="tidy",
        skill_dir=home.skills / "tidy",
        body=BODY,
        prompt="Please tidy the imports of slug.py",
        tools=["Edit", "Bash"] if agent == "claude" else ["apply_patch", "exec_command"],
        final=final,
        start=T0 + timedelta(hours=hours),
    )


def _native(agent: str, n: int) -> str:
    return (
        f"{n:08d}-0000-4000-8000-00000000000d"
        if agent == "claude"
        else f"019e{n:04d}-0000-7000-8000-00000000000d"
    )


def _sed(path: Path, old: str, new: str, edit: tuple[str, str] | None = None) -> Path:
    """What the reviewer did: the transcript under another session id (and file name)."""
    text = path.read_text().replace(old, new)
    if edit is not None:
        assert edit[0] in text
        text = text.replace(edit[0], edit[1], 1)
    copy = path.with_name(path.name.replace(old, new))
    copy.write_text(text)
    return copy


def _sessions(home: Home) -> dict[str, dict[str, Any]]:
    return {s["native_session_id"]: s for s in home.json("sessions")}


def _version_sessions(home: Home) -> list[str]:
    report = home.json("skill", "show", "tidy")
    (v1,) = report["versions"]
    return sorted(v1["sessions"])


@pytest.mark.parametrize("agent", ["claude", "codex"])
@pytest.mark.parametrize("edit", [False, True], ids=["sed", "sed-and-one-byte"])
def test_copies_of_one_session_are_one_session_to_the_gate(
    home: Home, agent: str, edit: bool
) -> None:
    skill_dir(home.skills, "tidy", BODY, EVALS)
    one = _native(agent, 1)
    original = _write(home, agent, one, home.home, final="Done.", hours=0)
    home.capture()
    home.ctl("policy", "set", "gate", "min_sessions=3")
    run = home.json("eval", "run", "tidy")
    assert [len(v["sessions"]) for v in run["versions"]] == [1]
    assert "counts 1 distinct session(s)" in home.ctl("promote", "tidy", "--to", "v1", code=1)

    # Two copies under new session ids; with ``edit`` one byte of the answer differs, so the
    # files are not byte-identical, but every response and call id is the original's.
    copies = [_native(agent, n) for n in (2, 3)]
    for native in copies:
        _sed(original, one, native, ("Done.", "Dona.") if edit else None)
    home.capture()
    listed = _sessions(home)
    assert set(listed) >= {one, *copies}  # every file is listed, as it is
    canonical = listed[one]["session_id"]
    assert listed[one]["copy_of"] is None
    assert [listed[n]["copy_of"] for n in copies] == [canonical, canonical]
    home.env = {**home.env, "COLUMNS": "250"}
    assert home.ctl("sessions").count(f"(copy of {canonical[:8]})") == 2
    assert "copy of" in home.ctl("session", "show", listed[copies[0]]["session_id"])

    run = home.json("eval", "run", "tidy")
    assert [v["sessions"] for v in run["versions"]] == [[canonical]]
    refused = home.ctl("promote", "tidy", "--to", "v1", code=1)
    assert "counts 1 distinct session(s)" in refused and "2 more needed" in refused, refused
    assert _version_sessions(home) == [canonical]
    (skill,) = [s for s in home.json("skills") if s["skill"] == "tidy"]
    assert skill["sessions"] == 1
    # A copy cannot be graded on its own as if it were another session.
    named = home.ctl("eval", "run", "tidy", "--session", listed[copies[0]]["session_id"], code=2)
    assert "is a copy of" in named
    if agent == "claude":  # responses carry ids: each counted once, for the one that counts
        periods = {r["period"] for r in home.json("usage", "session")["session"]}
        assert one in periods and not periods & set(copies)
    home.ctl("rebuild", "--check")


def _resume(home: Home, tmp: Path, earlier: Path, old: str, new: str) -> Path:
    """A resumed Claude Code session: a new file under ``new`` that repeats ``earlier``'s
    history (same ids) and goes on with a turn of its own."""
    more = claude_session(
        tmp,
        session=new,
        skill="tidy",
        skill_dir=home.skills / "tidy",
        body=BODY,
        prompt="Now run the tests again",
        tools=["Bash"],
        final="Done, all green.",
        start=T0 + timedelta(hours=2),
    )
    history = earlier.read_text().replace(old, new).splitlines(keepends=True)
    history = [line for line in history if '"type": "last-prompt"' not in line]
    resumed = earlier.with_name(f"{new}.jsonl")
    resumed.write_text("".join(history) + more.read_text())
    return resumed


def test_a_resumed_session_counts_once_with_its_newest_end(home: Home, tmp_path: Path) -> None:
    folder = skill_dir(home.skills, "tidy", BODY, None)
    first = _native("claude", 1)
    earlier = _write(home, "claude", first, home.home, final="It still fails.", hours=0)
    other = _write(home, "claude", _native("claude", 5), home.home, final="Done.", hours=5)
    home.capture()
    home.ctl("skill", "import", "tidy", "--from", str(folder))
    home.ctl("skill", "route", "tidy", "--settle-seconds", "0")
    (v1,) = home.json("skill", "versions", "tidy")["versions"]
    assert v1["executions"] == 2

    # The user resumes the first session: a new file repeating its history, then more work.
    later = _native("claude", 9)
    _resume(home, tmp_path / "scratch", earlier, first, later)
    home.capture()
    listed = _sessions(home)
    assert listed[first]["copy_of"] == listed[later]["session_id"]
    assert listed[later]["copy_of"] is None and listed[other.stem]["copy_of"] is None
    assert _version_sessions(home) == sorted(
        [listed[later]["session_id"], listed[other.stem]["session_id"]]
    )
    home.ctl("skill", "route", "tidy", "--settle-seconds", "0")
    (v1,) = home.json("skill", "versions", "tidy")["versions"]
    # The earlier part's record is corrected to unknown (a copy), the continuation counts:
    # two conversations, two executions, never three.
    assert v1["executions"] == 2, v1
    newest: dict[str, dict[str, Any]] = {}
    for e in home.json("log", "--type", "SkillExecutionRecorded"):
        newest[e["payload"]["session_id"]] = e["payload"]
    assert newest[listed[first]["session_id"]]["source"] == "copy"
    assert newest[listed[first]["session_id"]]["outcome"] is None
    assert newest[listed[later]["session_id"]]["source"] == "verdict"
    home.ctl("rebuild", "--check")


def test_a_fork_that_went_its_own_way_is_a_session_of_its_own(home: Home, tmp_path: Path) -> None:
    # Two resumes of one session, each with its own turn: both hold the original's history
    # and their own work, so the original is a copy (of the first by rank) and both count.
    skill_dir(home.skills, "tidy", BODY, None)
    first = _native("claude", 1)
    earlier = _write(home, "claude", first, home.home, final="Done.", hours=0)
    forks = [_native("claude", 7), _native("claude", 8)]
    for n, fork in enumerate(forks):
        _resume(home, tmp_path / f"scratch{n}", earlier, first, fork)
    home.capture()
    listed = _sessions(home)
    assert listed[first]["copy_of"] in {listed[f]["session_id"] for f in forks}
    assert [listed[f]["copy_of"] for f in forks] == [None, None]
    assert _version_sessions(home) == sorted(listed[f]["session_id"] for f in forks)


def test_ids_in_a_session_never_make_an_unrelated_one_a_copy(home: Home) -> None:
    # Distinct sessions of the same task (their own ids) are never copies of each other.
    skill_dir(home.skills, "tidy", BODY, None)
    for n in range(4):
        _write(home, "claude", _native("claude", n + 1), home.home, final="Done.", hours=n)
        _write(home, "codex", _native("codex", n + 1), home.home, final="Done.", hours=n)
    home.capture()
    listed = _sessions(home)
    assert len(listed) == 8 and all(s["copy_of"] is None for s in listed.values())
    assert len(_version_sessions(home)) == 8
    assert re.search(r"\b8\b", home.ctl("skill", "show", "tidy"))
