"""Experiments that cannot be fooled (issue 17), end to end: the real ``skillopsd --once`` on a
temporary HOME holding real-shaped transcripts, and the real ``skillopsctl``.

Each test is one way a user, by accident or on purpose, could make a test or the gate count
what it must not: sessions from before the test, a hand-picked subset, another suite file,
copies of one good transcript, a record made twice, a value no agent could report."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ._skill_sessions import T0, claude_session, skill_dir
from .test_skills_acceptance import Home

pytestmark = pytest.mark.slow

BODY = "Tidy the imports.\n\n1. Sort them.\n2. Remove the unused ones."
BODY2 = "Tidy the imports.\n\n1. Run `ruff check --fix`.\n2. Run the tests before you answer."


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home(tmp_path)


def _session(
    home: Home, body: str, start: datetime, *, final: str = "Done.", ended: bool = True
) -> str:
    """One Claude session of ``tidy`` loading ``body``; without its end marker if not ``ended``."""
    home.sessions += 1
    native = f"{home.sessions:08d}-0000-4000-8000-00000000000b"
    path = claude_session(
        home.home,
        session=native,
        skill="tidy",
        skill_dir=home.skills / "tidy",
        body=body,
        prompt="Please tidy the imports of slug.py",
        tools=["Edit", "Bash"],
        final=final,
        start=start,
    )
    if not ended:  # the agent's own end (last-prompt) is what settles a session at once
        lines = path.read_text().splitlines(keepends=True)
        assert json.loads(lines[-1])["type"] == "last-prompt"
        path.write_text("".join(lines[:-1]))
    return native


def _by_tag(home: Home) -> dict[str, dict[str, object]]:
    report = home.json("skill", "versions", "tidy")
    return {v["tag"]: v for v in report["versions"]}


def test_a_backfill_of_old_sessions_never_counts_in_a_test_started_today(home: Home) -> None:
    folder = skill_dir(home.skills, "tidy", BODY)
    # Forty days of history, backfilled today, without the agents' end markers: they ended
    # long ago, so they settle from their own last timestamp, not from when we captured them.
    for n in range(6):
        _session(home, BODY, T0 + timedelta(hours=n), ended=False)
    home.capture()
    home.ctl("skill", "import", "tidy", "--from", str(folder))
    assert _by_tag(home)["v1"]["executions"] == 6
    challenger = home.skills / "v2.md"
    challenger.write_text(f"---\nname: tidy\ndescription: test\n---\n\n{BODY2}\n")
    home.ctl("skill", "add-challenger", "tidy", str(challenger))
    # More old sessions turn up (another machine's backfill) after the test began.
    for n in range(6, 10):
        _session(home, BODY, T0 + timedelta(hours=n), ended=False)
    home.capture()
    home.ctl("skill", "route", "tidy", "--settle-seconds", "0")
    v1 = _by_tag(home)["v1"]
    assert (v1["executions"], v1["experiment_executions"]) == (10, 0)

    # A session that started after the challenger joined counts in the test; all-time beside.
    _session(home, BODY, datetime.now(UTC) + timedelta(seconds=5))
    home.capture()
    home.ctl("skill", "route", "tidy", "--settle-seconds", "0")
    v1 = _by_tag(home)["v1"]
    assert (v1["executions"], v1["experiment_executions"], v1["experiment_successes"]) == (
        11,
        1,
        1,
    )
