"""Experiments that cannot be fooled (issue 17), end to end: the real ``skillopsd --once`` on a
temporary HOME holding real-shaped transcripts, and the real ``skillopsctl``.

Each test is one way a user, by accident or on purpose, could make a test or the gate count
what it must not: sessions from before the test, a hand-picked subset, another suite file,
copies of one good transcript, a record made twice, a value no agent could report."""

from __future__ import annotations

import json
import os
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


STRICT = """\
version: 1
suites:
  - name: runs-the-tests
    cases:
      - name: edits-then-tests
        graders:
          - {type: tool_sequence, sequence: [Edit, Bash]}
          - {type: text, on: final_message, contains: ["Done."]}
"""
LAX = """\
version: 1
suites:
  - name: anything
    cases:
      - name: anything
        graders:
          - {type: behavior, maxTools: 1000}
"""


def test_the_gate_uses_its_suite_of_record_and_counts_copies_once(home: Home) -> None:
    folder = skill_dir(home.skills, "tidy", BODY, STRICT)
    first = _session(home, BODY, T0, final="Done.")
    _session(home, BODY, T0 + timedelta(hours=1), final="It still fails.")
    home.capture()
    home.ctl("policy", "set", "gate", "min_sessions=2")
    assert home.json("eval", "run", "tidy", code=1)["suite_path"] == str(folder / "evals.yaml")

    # A lax evals.yaml beside the SKILL.md a newer session loaded is not the suite now.
    lax = skill_dir(home.skills.parent / "elsewhere", "tidy", BODY, LAX)
    home.sessions += 1
    claude_session(
        home.home,
        session=f"{home.sessions:08d}-0000-4000-8000-00000000000b",
        skill="tidy",
        skill_dir=lax,
        body=BODY,
        prompt="Please tidy the imports of slug.py",
        tools=["Edit", "Bash"],
        final="Done.",
        start=T0 + timedelta(hours=2),
    )
    home.capture()
    again = home.json("eval", "run", "tidy", code=1)
    assert again["suite_path"] == str(folder / "evals.yaml")
    # A throwaway run of another file passes, and neither clears the gate...
    assert home.json("eval", "run", "tidy", "--skill-dir", str(lax))["passed"] is True
    refused = home.ctl("promote", "tidy", "--to", "v1", code=1)
    assert "another suite file" in refused
    # ...nor may promote be pointed at it.
    assert "suite of record" in home.ctl(
        "promote", "tidy", "--to", "v1", "--skill-dir", str(lax), code=2
    )

    # Copies of one good transcript under new names are one session to the gate.
    source = next((home.home / ".claude" / "projects").rglob(f"{first}.jsonl"))
    strict2 = skill_dir(home.skills.parent / "v2", "tidy", BODY2, None)
    home.sessions += 1
    good = claude_session(
        home.home,
        session=f"{home.sessions:08d}-0000-4000-8000-00000000000b",
        skill="tidy",
        skill_dir=strict2,
        body=BODY2,
        prompt="Please tidy the imports of slug.py",
        tools=["Edit", "Bash"],
        final="Done.",
        start=T0 + timedelta(hours=3),
    )
    for n in range(3):
        (good.parent / f"{n:08d}-copy-4000-8000-00000000000c.jsonl").write_bytes(good.read_bytes())
    home.capture()
    assert source.exists()
    run = home.json("eval", "run", "tidy", code=1)
    v2 = next(v for v in run["versions"] if v["tag"] == "v2")
    # (the same bytes are one session to the deriver already; the gate also dedups by bytes)
    assert v2["passed"] and len(v2["sessions"]) == 1
    out = home.ctl("promote", "tidy", "--to", "v2", code=1)
    assert "counts 1 distinct session(s)" in out and "1 more needed" in out, out


def test_only_full_runs_of_the_managed_suite_change_executions(home: Home) -> None:
    folder = skill_dir(home.skills, "tidy", BODY, STRICT)
    sids = [_session(home, BODY, T0 + timedelta(hours=n), final="Done.") for n in range(3)]
    home.capture()
    home.ctl("skill", "import", "tidy", "--from", str(folder))

    def sources() -> set[str]:
        state = home.json("skill", "route", "tidy", "--settle-seconds", "0")
        assert state["skill"] == "tidy"
        report = home.json("log", "--type", "SkillExecutionRecorded")
        newest: dict[str, str] = {}
        for e in report:
            newest[e["payload"]["session_id"]] = e["payload"]["source"]
        return set(newest.values())

    assert sources() == {"verdict"}
    lax = skill_dir(home.skills.parent / "elsewhere", "tidy", BODY, LAX)
    home.json("eval", "run", "tidy", "--skill-dir", str(lax))  # a throwaway file
    home.json("eval", "run", "tidy", "--session", home.session_id(sids[0]))  # a subset
    assert sources() == {"verdict"}
    home.json("eval", "run", "tidy")  # the managed skill's own evals.yaml, every session
    assert sources() == {"eval"}


def test_promote_remembers_the_suite_of_its_first_full_run(home: Home) -> None:
    skill_dir(home.skills, "tidy", BODY, None)  # loaded from here, no evals.yaml beside it
    for n in range(3):
        _session(home, BODY, T0 + timedelta(hours=n), final="Done.")
    home.capture()
    suites = skill_dir(home.skills.parent / "suites", "tidy", BODY, STRICT)
    home.ctl("promote", "tidy", "--to", "v1", code=2)  # no suite at all: say where to look
    home.json("eval", "run", "tidy", "--skill-dir", str(suites))
    assert "gate cleared" in home.ctl("promote", "tidy", "--to", "v1")


def test_the_rules_edges_through_the_cli(home: Home) -> None:
    folder = skill_dir(home.skills, "tidy", BODY, STRICT)
    home.ctl("skill", "import", "tidy", "--from", str(folder))
    challenger = home.skills / "v2.md"
    challenger.write_text(f"---\nname: tidy\ndescription: test\n---\n\n{BODY2}\n")
    home.ctl("skill", "add-challenger", "tidy", str(challenger))

    # A retried record counts once; an impossible cost is one line, exit 2, nothing stored.
    for _ in range(2):
        home.ctl("skill", "record", "tidy", "--version", "v2", "--success", "--id", "ci-41")
    assert "recorded already" in home.ctl(
        "skill", "record", "tidy", "--version", "v2", "--success", "--id", "ci-41"
    )
    out = home.ctl(
        "skill", "record", "tidy", "--version", "v2", "--success", "--tokens", str(10**20), code=2
    )
    assert "--tokens" in out and "Traceback" not in out
    assert _by_tag(home)["v2"]["experiment_executions"] == 1

    # A bad record already in a log (written by an older version, or by hand) is skipped
    # with an error event, never a skill that can no longer sync.
    from skillopsd.events import Database, EventLog, NewEvent
    from skillopsd.events.types import SkillExecutionRecorded

    from ._daemon import db_path

    db = Database.open(db_path(home.home))
    state = json.loads(home.ctl("skill", "versions", "tidy", "--json"))
    v2 = next(v["content_hash"] for v in state["versions"] if v["tag"] == "v2")
    EventLog(db).append(
        [
            NewEvent(
                "skill:tidy",
                SkillExecutionRecorded(
                    skill="tidy",
                    version_hash=v2,
                    session_id="",
                    outcome="success",
                    duration_ms=-5,
                    source="manual",
                    execution_id="manual:bad",
                ),
            )
        ]
    )
    db.close()
    home.ctl("skill", "route", "tidy")
    rejected = home.json("log", "--type", "SkillRecordRejected")
    assert len(rejected) == 1 and "duration_ms=-5" in rejected[0]["payload"]["reason"]
    assert _by_tag(home)["v2"]["experiment_executions"] == 1

    # The horizon ends the test even when the gate refuses the promotion (no eval run here).
    home.ctl("policy", "set", "bandit", "min_per_arm=2", "promote_bar=0.6", "horizon=4")
    home.ctl("skill", "record", "tidy", "--version", "v2", "--success")
    for _ in range(2):
        home.ctl("skill", "record", "tidy", "--version", "v1", "--failure")
    report = home.json("skill", "versions", "tidy")
    assert report["challenger"] is None and report["champion"] == "v1"
    ended = [e for e in home.json("lineage", "tidy") if e["kind"] == "retirement"]
    assert ended and ended[0]["decision"] == "inconclusive" and "gate" in ended[0]["reason"]
    assert "promote/retire decision(s) too" in home.ctl("skill", "verify", "tidy")


def test_every_champion_change_is_a_decision_in_lineage(home: Home) -> None:
    folder = skill_dir(home.skills, "tidy", BODY, None)
    live = folder / "SKILL.md"
    home.ctl("skill", "import", "tidy", "--from", str(folder))
    challenger = home.skills / "v2.md"
    challenger.write_text(f"---\nname: tidy\ndescription: test\n---\n\n{BODY2}\n")
    home.ctl("skill", "add-challenger", "tidy", str(challenger))

    # A rollback may only return to a former champion; a mere challenger needs the gate.
    out = home.ctl("skill", "rollback", "tidy", "v2", code=2)
    assert "never champion" in out and "promote" in out
    home.ctl("skill", "rollback", "tidy", "v2", "--force-no-eval", code=2)  # needs --reason
    home.ctl("skill", "rollback", "tidy", "v2", "--force-no-eval", "--reason", "hotfix")
    # promote puts the champion in the live file at once (no daemon pass needed).
    assert BODY2 in live.read_text()
    home.ctl("skill", "rollback", "tidy", "v1", "--reason", "v2 broke CI")
    assert BODY in live.read_text() and BODY2 not in live.read_text()
    home.ctl("promote", "tidy", "--to", "v2", "--force-no-eval", "--reason", "try it")
    assert BODY2 in live.read_text()
    changes = [
        (e["kind"], e.get("reason", ""))
        for e in home.json("lineage", "tidy")
        if e["kind"] in ("rollback", "promotion")
    ]
    assert changes[1] == ("rollback", "rollback to v1 (a former champion): v2 broke CI")
    assert changes[2] == ("rollback", "forced without eval: rollback to v2: hotfix")

    # A torn save (no frontmatter yet) is never imported; the finished file is, once still.
    third = home.skills / "v3.md"
    third.write_text("---\nname: tidy\ndescription: test\n---\n\nA third body.\n")
    home.ctl("skill", "add-challenger", "tidy", str(third))
    live.write_text("Tidy the imp")  # half-written
    old = live.stat().st_mtime - 10
    os.utime(live, (old, old))
    assert "no frontmatter naming the skill" in home.ctl("skill", "route", "tidy")
    assert home.json("skill", "versions", "tidy")["challenger"] == "v3"
    live.write_text("---\nname: tidy\ndescription: test\n---\n\nEdited by hand.\n")
    os.utime(live, (old, old))
    assert "imported a hand edit" in home.ctl("skill", "route", "tidy")
    report = home.json("skill", "versions", "tidy")
    assert report["champion"] == "v4" and report["challenger"] is None  # the test ended
    edit = next(e for e in home.json("lineage", "tidy") if e["kind"] == "promotion")
    assert "edited by hand" in edit["reason"] and "ends the test of v3" in edit["reason"]


def test_one_policy_reader_set_merges_reset_and_lineage(home: Home) -> None:
    skill_dir(home.skills, "tidy", BODY, STRICT)
    _session(home, BODY, T0)
    home.capture()
    home.ctl("policy", "set", "bandit", "min_per_arm=5")
    out = home.ctl("policy", "set", "bandit", "horizon=100")
    # The echo is what is in force: the earlier key kept, defaults marked.
    assert "min_per_arm=5," in out and "horizon=100," in out and "retire_bar=0.95 (default)" in out
    shown = home.json("policy", "show", "bandit")
    assert shown["set"] == {"min_per_arm": 5, "horizon": 100} and shown["position"] is not None
    home.ctl("policy", "set", "gate", "min_sessions=2")
    assert "set at log position" in home.ctl("policy", "show", "gate")
    # Reset one key, then the whole policy.
    home.ctl("policy", "reset", "bandit", "horizon")
    assert home.json("policy", "show", "bandit")["set"] == {"min_per_arm": 5}
    home.ctl("policy", "reset", "bandit")
    assert home.json("policy", "show", "bandit")["set"] == {}
    assert "no key" in home.ctl("policy", "reset", "bandit", "bogus", code=2)
    # The gate reads the same reader: min_sessions=2 is what the refusal counts against.
    home.json("eval", "run", "tidy")
    assert "min_sessions is 2" in home.ctl("promote", "tidy", "--to", "v1", code=1)
    changes = [e["reason"] for e in home.json("lineage", "tidy") if e["kind"] == "policy"]
    assert changes[0] == "policy bandit: all defaults"
    assert "policy gate: min_sessions=2" in changes


def test_while_a_test_runs_the_gate_counts_only_sessions_of_the_test(home: Home) -> None:
    folder = skill_dir(home.skills, "tidy", BODY, STRICT)
    _session(home, BODY, T0)
    for n in range(3):  # v2 was tried by hand months ago
        _session(home, BODY2, T0 + timedelta(hours=1 + n), final="Done.")
    home.capture()
    home.ctl("skill", "import", "tidy", "--from", str(folder))
    challenger = home.skills / "v2.md"
    challenger.write_text(f"---\nname: tidy\ndescription: test\n---\n\n{BODY2}\n")
    home.ctl("skill", "add-challenger", "tidy", str(challenger))
    assert home.json("eval", "run", "tidy")["passed"]
    refused = home.ctl("promote", "tidy", "--to", "v2", code=1)
    assert "3 graded session(s) are not sessions of v2 in the running test" in refused
