"""Acceptance, end to end: real ``skillopsd --once`` on a temporary HOME holding real-shaped
Claude Code and Codex transcripts, and the real ``skillopsctl``: the seed's two stories (each
with min_sessions 1 and 3), one suite grading both agents through tool kinds, and a gate that
holds against attempts to game it."""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from skillopsd.events import Database

from ._daemon import daemon_env, db_path
from ._skill_sessions import T0, claude_session, codex_session, skill_dir
from .conftest import console_script

pytestmark = pytest.mark.slow

TRIAGE = """\
version: 1
suites:
  - name: triage-correctness
    cases:
      - name: ambiguous-feature-needs-info
        match: {prompt: "triage"}
        graders:
          - type: outcome
            expect: success
          - type: text
            on: final_message
            contains: ["needs-info"]
            reject: ["ready-to-implement"]
"""

VERIFY = """\
version: 1
suites:
  - name: verifies-changes
    cases:
      - name: edits-then-runs-tests
        graders:
          - {type: skill_invocation, expectSkills: [guard-tests]}
          - {type: tool_sequence, sequence: [Edit, Bash]}
          - {type: tool_constraint, expectTools: [Bash], rejectTools: [WebFetch]}
          - {type: behavior, maxTools: 10}
"""


class Home:
    """A temporary HOME with skills, transcripts, the daemon and the CLI."""

    def __init__(self, root: Path) -> None:
        self.home = root / "home"
        self.home.mkdir()
        self.skills = root / "skills"
        self.env = daemon_env(self.home)
        self.sessions = 0

    def skill(self, name: str, evals: str | None) -> Path:
        return skill_dir(self.skills, name, "placeholder body", evals)

    def session(
        self,
        skill: str,
        body: str,
        *,
        final: str,
        tools: list[str],
        prompt: str = "Please triage issue 41",
        agent: str = "claude",
    ) -> str:
        """Write one transcript (each later than the last); returns its native id."""
        self.sessions += 1
        n = self.sessions
        start = T0 + timedelta(hours=n)
        if agent == "claude":
            native = f"{n:08d}-0000-4000-8000-000000000000"
            write = claude_session
        else:
            native = f"019e{n:04d}-0000-7000-8000-000000000000"
            write = codex_session
        write(
            self.home,
            session=native,
            skill=skill,
            skill_dir=self.skills / skill,
            body=body,
            prompt=prompt,
            tools=tools,
            final=final,
            start=start,
        )
        return native

    def capture(self) -> None:
        subprocess.run(
            [console_script("skillopsd"), "--once"],
            env=self.env,
            check=True,
            capture_output=True,
            timeout=120,
        )

    def ctl(self, *args: str, code: int = 0) -> str:
        result = subprocess.run(
            [console_script("skillopsctl"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == code, (args, result.stdout, result.stderr)
        if code:
            lines = result.stderr.strip().splitlines()
            assert len(lines) <= 1 and "Traceback" not in result.stderr, result.stderr
        return result.stdout + result.stderr

    def json(self, *args: str, code: int = 0) -> Any:
        result = subprocess.run(
            [console_script("skillopsctl"), *args, "--json"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == code, (args, result.stdout, result.stderr)
        return json.loads(result.stdout)

    def session_id(self, native: str) -> str:
        rows = self.json("sessions")
        return next(s["session_id"] for s in rows if s["native_session_id"] == native)


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home(tmp_path)


@pytest.mark.parametrize("min_sessions", [1, 3])
def test_story_triage_fail_then_pass_with_an_annotation(home: Home, min_sessions: int) -> None:
    home.skill("triage", TRIAGE)
    bad = home.session("triage", "Label issues. v1", final="ready-to-implement", tools=["Read"])
    home.capture()
    bad_id = home.session_id(bad)
    note = home.json(
        "annotate", bad_id, "--label", "bad", "--note", "needed info", "--skill", "triage"
    )
    # The label sits beside the derived verdict, never replaces it.
    row = next(s for s in home.json("sessions") if s["session_id"] == bad_id)
    assert (row["verdict"], row["label"]) == ("success", "bad")

    failed = home.json("eval", "run", "triage", code=1)
    assert failed["passed"] is False and [v["tag"] for v in failed["versions"]] == ["v1"]
    case = failed["versions"][0]["cases"][0]
    assert (case["suite"], case["case"], case["passed"], case["graded"]) == (
        "triage-correctness",
        "ambiguous-feature-needs-info",
        False,
        1,
    )
    assert "ready-to-implement" in " ".join(case["details"])
    refused = home.ctl("promote", "triage", "--to", "v1", code=1)
    assert "no eval run of v1" not in refused and "failed" in refused

    home.ctl("policy", "set", "gate", f"min_sessions={min_sessions}")
    good = [
        home.session(
            "triage",
            "Label issues. v2: ask for info when ambiguous",
            final="Label: needs-info",
            tools=["Read"],
        )
        for _ in range(min_sessions)
    ]
    home.capture()
    # Only a full run (every session, every suite) can clear the gate: v1 still fails in it.
    subset = home.json("eval", "run", "triage", "--last", str(min_sessions))
    assert subset["passed"] is True and subset["scope"] == f"--last {min_sessions}"
    assert "subset runs never clear it" in home.ctl("promote", "triage", "--to", "v2", code=1)
    passed = home.json("eval", "run", "triage", code=1)
    assert [v["tag"] for v in passed["versions"]] == ["v1", "v2"]
    version = passed["versions"][1]
    assert version["tag"] == "v2" and version["passed"]
    assert sorted(version["sessions"]) == sorted(home.session_id(n) for n in good)
    assert version["cases"][0]["graded"] == min_sessions
    out = home.ctl("promote", "triage", "--to", "v2")
    assert "promoted triage v2" in out

    timeline = home.json("lineage", "triage")
    kinds = [(e["kind"], e.get("tag"), e.get("passed")) for e in timeline]
    assert kinds[0] == ("promotion", "v2", None)
    assert ("eval_run", "v1", False) in kinds and ("eval_run", "v2", True) in kinds
    assert kinds.index(("eval_run", "v2", True)) < kinds.index(("eval_run", "v1", False))
    annotation = next(e for e in timeline if e["kind"] == "annotation")
    assert (annotation["label"], annotation["session_id"]) == ("bad", bad_id)
    assert annotation["at"] and all(e["at"] for e in timeline)
    assert note["annotation_id"]

    report = home.json("skill", "show", "triage")
    by_tag = {v["tag"]: v for v in report["versions"]}
    assert len(by_tag["v2"]["sessions"]) == min_sessions and by_tag["v2"]["eval"]["passed"]
    assert by_tag["v1"]["labels"]["bad"]["k"] == 1 and by_tag["v1"]["eval"]["passed"] is False
    assert report["champion"] == by_tag["v2"]["content_hash"]
    assert report["reading"].startswith("v2 vs v1: ")
    assert "newest evals: v2 passed, v1 failed" in report["reading"]
    shown = home.ctl("skill", "show", "triage")
    assert "success [95%]" in shown and "reading: v2 vs v1" in shown


@pytest.mark.parametrize("min_sessions", [1, 3])
def test_story_verify_edits_by_running_tests(home: Home, min_sessions: int) -> None:
    home.skill("guard-tests", VERIFY)
    home.session(
        "guard-tests",
        "Edit carefully.",
        final="done",
        tools=["Read", "Edit"],
        prompt="fix the slug bug",
    )
    home.capture()
    # No run yet: the refusal says what to run and how many sessions are still needed.
    none = home.ctl("promote", "guard-tests", "--to", "v1", code=1)
    assert "skillopsctl eval run guard-tests" in none
    assert "at least 3 sessions" in none and "1 captured so far, 2 more needed" in none
    failed = home.json("eval", "run", "guard-tests", code=1)
    details = " ".join(failed["versions"][0]["cases"][0]["details"])
    assert "tool_sequence" in details and "expected tools not used: ['Bash']" in details

    home.ctl("policy", "set", "gate", f"min_sessions={min_sessions}")
    for _ in range(min_sessions):
        home.session(
            "guard-tests",
            "Edit carefully, then run the tests.",
            final="done",
            tools=["Read", "Edit", "Bash"],
            prompt="fix the slug bug",
        )
    home.capture()
    # Over every session, grouped by the version each loaded; v1 as the baseline shows the fix.
    both = home.json("eval", "run", "guard-tests", "--baseline", "v1", code=1)
    by_tag = {v["tag"]: v for v in both["versions"]}
    assert by_tag["v1"]["passed"] is False and by_tag["v2"]["passed"] is True
    n = min_sessions
    assert by_tag["v2"]["flips"] == [
        {
            "suite": "verifies-changes",
            "case": "edits-then-runs-tests",
            "direction": "fail→pass",
            "before": "0/1",  # v1 was graded over its one session
            "after": f"{n}/{n}",
        }
    ]
    # That run included a failing version, but the gate reads v2's own newest run.
    assert "promoted guard-tests v2" in home.ctl("promote", "guard-tests", "--to", "v2")
    text = home.ctl("eval", "run", "guard-tests", "--last", str(min_sessions))
    assert "SUITE" in text and "PASSED/GRADED" in text and f"{min_sessions}/{min_sessions}" in text


def test_one_suite_grades_claude_and_codex_through_tool_kinds(home: Home) -> None:
    suite = VERIFY.replace("[Edit, Bash]", "[edit, shell]").replace(
        "expectTools: [Bash], rejectTools: [WebFetch]", "expectTools: [shell], rejectTools: [web]"
    )
    home.skill("guard-tests", suite)
    body = "Edit, then run the tests."
    home.session("guard-tests", body, final="done", tools=["Read", "Edit", "Bash"])
    home.session(
        "guard-tests", body, final="done", tools=["apply_patch", "exec_command"], agent="codex"
    )
    home.capture()
    overview = home.json("skills")
    assert overview[0]["skill"] == "guard-tests"
    assert overview[0]["agents"] == {"claude": 1, "codex": 1}
    result = home.json("eval", "run", "guard-tests")
    [version] = result["versions"]
    assert result["passed"] and version["tag"] == "v1" and len(version["sessions"]) == 2
    assert version["cases"][0]["graded"] == 2
    # The same suite fails a Codex session that never ran the tests.
    home.session("guard-tests", body, final="done", tools=["apply_patch"], agent="codex")
    home.capture()
    again = home.json("eval", "run", "guard-tests", code=1)
    [case] = again["versions"][0]["cases"]
    assert (case["passed_sessions"], case["graded"]) == (2, 3)
    assert "['apply_patch']" not in case["details"][0] and "shell" in case["details"][0]


def test_the_gate_holds_against_attempts_to_game_it(home: Home) -> None:
    skill = home.skill(
        "triage", TRIAGE + VERIFY.split("suites:\n", 1)[1].replace("[guard-tests]", "[triage]")
    )
    body = "Label issues; ask for info when ambiguous; run the tests."
    good = [
        home.session("triage", body, final="needs-info", tools=["Edit", "Bash"]) for _ in range(3)
    ]
    lazy = home.session("triage", body, final="needs-info", tools=["Edit"])
    home.capture()
    good_ids = [home.session_id(n) for n in good]
    picks = [a for sid in good_ids for a in ("--session", sid)]
    home.ctl("policy", "set", "gate", "min_sessions=3")

    # A narrower file, run and then put back: the run is not under the suite as it is now.
    full = (skill / "evals.yaml").read_text()
    (skill / "evals.yaml").write_text(TRIAGE)
    home.json("eval", "run", "triage")
    (skill / "evals.yaml").write_text(full)
    assert "earlier evals.yaml" in home.ctl("promote", "triage", "--to", "v1", code=1)

    # An older pass over three good sessions, then a newer failing run over all four.
    home.json("eval", "run", "triage", *picks)
    home.json("eval", "run", "triage", code=1)
    assert "failed; an older pass does not count" in home.ctl(
        "promote", "triage", "--to", "v1", code=1
    )

    # Hand-picked sessions, re-run however often, or one suite:
    # subsets never clear the gate, nor outweigh the newer full failure.
    for _ in range(3):
        home.json("eval", "run", "triage", "--session", good_ids[0])
    narrow = home.json("eval", "run", "triage", "--suite", "triage-correctness")
    assert narrow["passed"] and narrow["versions"][0]["cases"][0]["graded"] == 4
    assert "failed; an older pass does not count" in home.ctl(
        "promote", "triage", "--to", "v1", code=1
    )
    # --no-record grades and prints, and records nothing.
    before = len(home.json("log", "--type", "EvalRunCompleted"))
    assert home.json("eval", "run", "triage", *picks, "--no-record")["recorded"] is False
    assert len(home.json("log", "--type", "EvalRunCompleted")) == before

    # Refusals are recorded, with the evidence they used.
    gates = [e for e in home.json("lineage", "triage") if e["kind"] == "gate"]
    assert len(gates) == 3 and not any(g["cleared"] for g in gates)
    recorded = [e["payload"] for e in home.json("log", "--type", "GateEvaluated")]
    refused = recorded[2]
    assert refused["min_sessions"] == 3 and refused["run_passed"] is False and refused["run_id"]

    # Forcing needs a reason and is marked forever; the subset that passed still clears nothing.
    home.ctl("promote", "triage", "--to", "v1", "--force-no-eval", code=2)
    home.ctl("promote", "triage", "--to", "v1", "--force-no-eval", "--reason", "hotfix")
    home.json("eval", "run", "triage", *picks)
    assert "refused" in home.ctl("promote", "triage", "--to", "v1", code=1)
    # An honest way through: a better version, three good sessions, one full run.
    fixed = "Label issues; ask for info when ambiguous; always run the tests."
    for _ in range(3):
        home.session("triage", fixed, final="needs-info", tools=["Edit", "Bash"])
    home.capture()
    full_run = home.json("eval", "run", "triage", code=1)  # v1's lazy session still fails
    assert {v["tag"]: v["passed"] for v in full_run["versions"]} == {"v1": False, "v2": True}
    assert "gate cleared" in home.ctl("promote", "triage", "--to", "v2")
    promotions = [e for e in home.json("lineage", "triage") if e["kind"] == "promotion"]
    assert [p["forced"] for p in promotions] == [False, True]
    assert lazy


def test_a_store_error_is_exit_2_never_no_passing_eval(home: Home, tmp_path: Path) -> None:
    broken = tmp_path / "broken.db"
    broken.write_bytes(b"this is not a database" * 100)
    out = home.ctl("--db", str(broken), "promote", "triage", "--to", "v1", code=2)
    assert "no passing" not in out and "refused" not in out and "Traceback" not in out
    # A readable log whose eval-run table cannot be read: an error, not a refusal.
    home.skill("triage", TRIAGE)
    home.session("triage", "v1", final="needs-info", tools=["Read"])
    home.capture()
    home.json("eval", "run", "triage")
    db = Database.open(db_path(home.home))
    db.conn.execute("DROP TABLE p_eval_runs")
    db.close()
    out = home.ctl("promote", "triage", "--to", "v1", code=2)
    assert "store error" in out and "refused" not in out
    assert not [e for e in home.json("log", "--type", "GateEvaluated")]
