"""``eval replay`` end to end: the real ``skillopsctl`` runs a stub agent (tests/stub_agent.py,
no model) that loads the project skill from its scratch folder and writes a real-shaped
transcript into its store under a temporary HOME; the replay captures it, grades it and
compares the versions on the same tasks. Also: a hanging agent is cut at its timeout with its
children, a crash and a silent agent are recorded, Ctrl-C keeps what finished, and an agent
command this harness was not written for (a shell line writing a Codex rollout) works."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from math import comb
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from skillopsd.replay import build_argv, paired, sign_test
from skillopsd.replay.agents import TemplateError

from ._daemon import daemon_env
from .conftest import console_script

STUB = Path(__file__).parent / "stub_agent.py"
CLAUDE = f"{sys.executable} {STUB} -p {{prompt}} --output-format stream-json --verbose"
CODEX = f"{sys.executable} {STUB} exec --json {{prompt}}"


def skill_md(body: str) -> str:
    return f"---\nname: triage\ndescription: label an issue\n---\n\n# triage\n\n{body}\n"


V1 = "stub: answer=ready-to-implement; tools=Read"
V2 = "stub: answer=needs-info; tools=Read,Bash"


def evals(cases: list[tuple[str, str]], timeout: float = 30, extra: str = "") -> str:
    lines = ["version: 1", "suites:", "  - name: labels", "    cases:"]
    for name, prompt in cases:
        lines += [
            f"      - name: {name}",
            f"        run: {{prompt: {json.dumps(prompt)}, timeout: {timeout}{extra}}}",
            "        graders:",
            "          - {type: text, contains: [needs-info]}",
            "          - {type: skill_invocation, expectSkills: [triage]}",
        ]
    return "\n".join(lines) + "\n"


class Bench:
    """A temporary HOME with skill ``triage`` managed (v1 champion, v2 challenger)."""

    def __init__(self, root: Path, evals_text: str, v1: str = V1, v2: str | None = V2) -> None:
        self.root = root
        self.home = root / "home"
        self.home.mkdir()
        self.env = daemon_env(self.home)
        self.skill = root / "skills" / "triage"
        self.skill.mkdir(parents=True, exist_ok=True)
        (self.skill / "SKILL.md").write_text(skill_md(v1))
        (self.skill / "evals.yaml").write_text(evals_text)
        self.ctl("skill", "import", "triage", "--from", str(self.skill))
        if v2 is not None:
            (root / "v2.md").write_text(skill_md(v2))
            self.ctl(
                "skill", "add-challenger", "triage", str(root / "v2.md"), "--author", "machine"
            )

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [console_script("skillopsctl"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def ctl(self, *args: str, code: int = 0) -> str:
        done = self.run(*args)
        assert done.returncode == code, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr, done.stderr
        return done.stdout

    def replay(self, *args: str, code: int = 0, command: str = CLAUDE) -> dict[str, Any]:
        out = self.ctl(
            "eval", "replay", "triage", "--agent-command", command, "--json", *args, code=code
        )
        return json.loads(out)


CASES = [(f"issue-{n}", f"triage issue {n}: it is slow somewhere") for n in range(6)]


@pytest.mark.slow
def test_v1_fails_v2_passes_paired_answer_gate_lineage_and_show(tmp_path: Path) -> None:
    bench = Bench(tmp_path, evals(CASES))
    result = bench.replay("--jobs", "2")
    assert len(result["runs"]) == 12 and not result["interrupted"]
    assert {r["status"] for r in result["runs"]} == {"completed"}
    assert all(r["session_id"] for r in result["runs"])
    by_version = {v: [c for c in result["cells"] if c["version"] == v] for v in ("v1", "v2")}
    assert [(c["passed"], c["runs"]) for c in by_version["v1"]] == [(0, 1)] * 6
    assert [(c["passed"], c["runs"]) for c in by_version["v2"]] == [(1, 1)] * 6
    assert by_version["v2"][0]["low"] == pytest.approx(0.2065, abs=1e-3)
    (comparison,) = result["comparisons"]
    assert (comparison["challenger_only"], comparison["baseline_only"]) == (6, 0)
    assert comparison["p_value"] == pytest.approx(2 / 64)
    assert comparison["sentence"] == (
        "v2 passed 6 cases v1 failed, v1 passed 0 that v2 failed: p = 0.031, v2 is better at 5 %"
    )
    assert result["regressions"] == []
    # Every session is the version the replay gave the agent, captured like any other.
    sessions = json.loads(bench.ctl("sessions", "--json"))
    assert len(sessions) == 12 and {s["agent"] for s in sessions} == {"claude"}
    # eval run grades each run case on the replays of its own task only (a replay of another
    # case would fail its graders for nothing): the same verdicts as the replay.
    graded = json.loads(bench.ctl("eval", "run", "triage", "--json", code=1))
    verdicts = {v["tag"]: v for v in graded["versions"]}
    assert verdicts["v2"]["passed"] and not verdicts["v1"]["passed"]
    assert [(c["graded"], c["passed"]) for c in verdicts["v2"]["cases"]] == [(1, True)] * 6
    assert [(c["graded"], c["passed"]) for c in verdicts["v1"]["cases"]] == [(1, False)] * 6
    # The gate clears v2 on the replay's evidence (six distinct graded sessions); a dry run
    # says so and records nothing ...
    dry = bench.run("promote", "triage", "--to", "v2", "--dry-run")
    assert dry.returncode == 0 and dry.stdout.startswith("dry run: would promote triage v2")
    assert "GateEvaluated" not in bench.ctl("log", "--type", "GateEvaluated", "--json")
    refused = bench.run("promote", "triage", "--to", "v1", "--dry-run")
    assert refused.returncode == 1 and "dry run: would refuse" in refused.stderr
    promoted = bench.run("promote", "triage", "--to", "v2", "--json")
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    # ... and lineage and skill show carry the replay.
    lineage = bench.ctl("lineage", "triage")
    assert "replay" in lineage and result["replay_id"][:12] in lineage
    show = bench.ctl("skill", "show", "triage")
    assert "replay" in show and "6/6" in show
    # Replays are projections of the log like everything else: rebuilding gives the same.
    bench.ctl("rebuild", "--check")


@pytest.mark.slow
def test_human_output_is_a_table_and_the_sentence(tmp_path: Path) -> None:
    bench = Bench(tmp_path, evals(CASES[:2]))
    md = tmp_path / "replay.md"
    done = bench.run("eval", "replay", "triage", "--agent-command", CLAUDE, "--markdown", str(md))
    assert done.returncode == 0, done.stderr
    body = md.read_text().splitlines()
    assert "| suite | case | v1 passed/runs [95% CI] | v2 passed/runs [95% CI] |" in body
    assert "| labels | issue-0 | 0/1 0% [0–79] | 1/1 100% [21–100] |" in body
    assert "**v2 passed 2 cases v1 failed, v1 passed 0 that v2 failed: p = 0.5," in md.read_text()
    lines = done.stdout.splitlines()
    assert lines[1].split()[:2] == ["SUITE", "CASE"]
    assert "0/1 0% [0–79]" in lines[2] and "1/1 100% [21–100]" in lines[2]
    assert "v2 passed 2 cases v1 failed, v1 passed 0 that v2 failed: p = 0.5" in done.stdout
    assert "[4/4] labels/issue-1 v2 #1: completed" in done.stderr


@pytest.mark.slow
def test_a_regression_exits_1_and_repeat_pairs_runs(tmp_path: Path) -> None:
    bench = Bench(tmp_path, evals(CASES[:2]), v1=V2, v2=V1)
    result = bench.replay("--repeat", "2", code=1)
    assert len(result["runs"]) == 8
    assert result["regressions"] == [
        "labels/issue-0: v1 passed every run, v2 none",
        "labels/issue-1: v1 passed every run, v2 none",
    ]
    assert result["comparisons"][0]["sentence"].startswith(
        "v2 passed 0 runs v1 failed, v1 passed 4 that v2 failed: p = 0.12"
    )


@pytest.mark.slow
def test_codex_default_commands_and_project_skill_folder(tmp_path: Path) -> None:
    bench = Bench(tmp_path, evals(CASES[:1]))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("claude", "codex"):
        wrapper = bin_dir / name
        wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} {STUB} "$@"\n')
        wrapper.chmod(0o755)
    bench.env["PATH"] = f"{bin_dir}{os.pathsep}{bench.env['PATH']}"
    for agent in ("claude", "codex"):
        out = json.loads(bench.ctl("eval", "replay", "triage", "--agent", agent, "--json"))
        assert [r["status"] for r in out["runs"]] == ["completed", "completed"]
        assert out["command"] == (
            "claude -p {prompt} --output-format stream-json --verbose"
            if agent == "claude"
            else "codex exec --json {prompt}"
        )
        assert [c["passed"] for c in out["cells"]] == [0, 1]
    sessions = json.loads(bench.ctl("sessions", "--json"))
    assert sorted(s["agent"] for s in sessions) == ["claude", "claude", "codex", "codex"]


@pytest.mark.slow
def test_hang_is_cut_at_its_timeout_with_its_children(tmp_path: Path) -> None:
    bench = Bench(tmp_path, evals(CASES[:1], timeout=1.5), v2="stub: mode=hang")
    pidfile = tmp_path / "pids"
    bench.env["STUB_PIDFILE"] = str(pidfile)
    began = time.monotonic()
    result = bench.replay()
    took = time.monotonic() - began
    hung = next(r for r in result["runs"] if r["version"] == "v2")
    assert hung["status"] == "timeout" and not hung["passed"]
    assert "1.5 s timeout" in hung["error"]
    assert 1400 <= hung["wall_ms"] < 8000 and took < 30
    # The partial transcript it wrote before hanging is still captured and linked.
    assert hung["session_id"]
    for pid in map(int, pidfile.read_text().split()):
        assert not _alive(pid), f"process {pid} of the hung agent survived the timeout"


@pytest.mark.slow
def test_crash_silence_and_a_missing_binary_are_recorded_not_dropped(tmp_path: Path) -> None:
    bench = Bench(tmp_path, evals(CASES[:1]), v1="stub: mode=crash", v2="stub: mode=silent")
    result = bench.replay(code=1)  # no run completed
    crash, silent = sorted(result["runs"], key=lambda r: r["version"])
    assert (crash["status"], crash["exit_status"]) == ("failed", 3)
    assert "the model connection was reset" in crash["error"] and crash["session_id"]
    assert (silent["status"], silent["exit_status"], silent["session_id"]) == (
        "no-transcript",
        0,
        None,
    )
    assert "no claude transcript" in silent["error"]
    missing = bench.replay(command="no-such-agent-binary -p {prompt}", code=1)
    assert {r["status"] for r in missing["runs"]} == {"error"}
    assert "cannot run 'no-such-agent-binary'" in missing["runs"][0]["error"]
    # All of them are events: the log holds every run, whatever its end.
    events = bench.ctl("log", "--type", "ReplayRunCompleted", "--json")
    assert events.count("ReplayRunCompleted") >= 4


@pytest.mark.slow
def test_fixture_setup_and_a_hostile_prompt_stay_literal(tmp_path: Path) -> None:
    fixture = tmp_path / "skills" / "triage" / "fixtures" / "app"
    fixture.mkdir(parents=True)
    (fixture / "ANSWER.txt").write_text("needs-info from the fixture")
    prompt = "triage $(touch PWNED) `touch PWNED2`; rm -rf ~ 'quoted' \"double\""
    text = evals(
        [("fixture", prompt)], extra=", fixture: fixtures/app, setup: ['echo set >> ANSWER.txt']"
    )
    bench = Bench(tmp_path, text, v1="stub: answer=@ANSWER.txt; tools=Read")
    result = bench.replay("--versions", "v1")
    (run,) = result["runs"]
    assert run["passed"], run
    session = json.loads(bench.ctl("session", "show", run["session_id"], "--json"))
    attributes = [span["attributes"] for span in session["spans"]]
    assert prompt in [a.get("gen_ai.prompt") for a in attributes]
    # The answer came from the fixture's copy, after setup appended to it.
    assert "needs-info from the fixtureset" in [a.get("gen_ai.output.text") for a in attributes]
    assert not list(tmp_path.rglob("PWNED*"))
    # The fixture itself is never touched: every run gets a fresh copy.
    assert (fixture / "ANSWER.txt").read_text() == "needs-info from the fixture"


@pytest.mark.slow
def test_an_agent_command_the_stub_was_not_written_for(tmp_path: Path) -> None:
    """A shell one-liner (not the stub) that writes a Codex rollout naming {workdir}."""
    script = tmp_path / "agent.sh"
    script.write_text(
        "#!/bin/sh\n"
        'd="$CODEX_HOME/sessions/2026/01/02"; [ -n "$CODEX_HOME" ] || d="$HOME/.codex/sessions/2026/01/02"\n'  # noqa: E501
        'mkdir -p "$d"; id=$(cat /proc/sys/kernel/random/uuid)\n'
        'f="$d/rollout-2026-01-02T03-04-05-$id.jsonl"\n'
        'skill=$(cat "$1/.agents/skills/triage/SKILL.md" | tail -n 1)\n'
        'printf \'{"timestamp":"2026-01-02T03:04:05.000Z","type":"session_meta","payload":{"id":"%s","cwd":"%s","originator":"codex_exec","cli_version":"0.1","source":"exec"}}\\n\' "$id" "$1" > "$f"\n'  # noqa: E501
        'printf \'{"timestamp":"2026-01-02T03:04:06.000Z","type":"response_item","payload":{"type":"message","role":"user","content":[{"type":"input_text","text":"%s"}]}}\\n\' "$2" >> "$f"\n'  # noqa: E501
        'printf \'{"timestamp":"2026-01-02T03:04:07.000Z","type":"response_item","payload":{"type":"message","role":"assistant","content":[{"type":"output_text","text":"%s"}],"phase":"final_answer"}}\\n\' "$skill" >> "$f"\n'  # noqa: E501
        'printf \'{"timestamp":"2026-01-02T03:04:07.500Z","type":"event_msg","payload":{"type":"task_complete","turn_id":"t"}}\\n\' >> "$f"\n'  # noqa: E501
    )
    script.chmod(0o755)
    text = (
        "version: 1\nsuites:\n  - name: s\n    cases:\n      - name: c\n"
        "        run: {prompt: hello, timeout: 20}\n"
        "        graders:\n          - {type: text, contains: [needs-info]}\n"
    )
    bench = Bench(tmp_path, text, v1="answer ready", v2="answer needs-info")
    result = bench.replay("--agent", "codex", command=f"{script} {{workdir}} {{prompt}}")
    assert [r["status"] for r in result["runs"]] == ["completed", "completed"]
    assert [r["passed"] for r in result["runs"]] == [False, True]
    assert all(r["session_id"] for r in result["runs"])


@pytest.mark.slow
def test_ctrl_c_stops_the_agents_and_keeps_what_finished(tmp_path: Path) -> None:
    cases = [("quick", "triage quick"), ("stuck", "triage stuck"), ("later", "triage later")]
    bench = Bench(
        tmp_path,
        evals(cases, timeout=300),
        v1="stub: when=stuck; mode=hang\nstub: answer=needs-info",
        v2=None,
    )
    pidfile = tmp_path / "pids"
    bench.env["STUB_PIDFILE"] = str(pidfile)
    proc = subprocess.Popen(
        [
            console_script("skillopsctl"),
            "eval",
            "replay",
            "triage",
            "--agent-command",
            CLAUDE,
            "--json",
        ],
        env=bench.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert pidfile.exists()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    result = json.loads(out)
    assert result["interrupted"] and result["eval_runs"] == {}
    statuses = {r["case"]: r["status"] for r in result["runs"]}
    # The run never started is recorded too, as interrupted, not dropped.
    assert statuses == {"quick": "completed", "stuck": "interrupted", "later": "interrupted"}
    assert "not started" in next(r for r in result["runs"] if r["case"] == "later")["error"]
    for pid in map(int, pidfile.read_text().split()):
        assert not _alive(pid)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--agent-command", "my-agent --task"], "never passes the task"),
        (["--agent-command", "my-agent '{prompt}"], "No closing quotation"),
        (["--agent-command", ""], "is empty"),
        (["--versions", "v9"], "unknown version 'v9'"),
        (["--repeat", "0"], "0"),
    ],
)
def test_bad_usage_is_one_line_exit_2(tmp_path: Path, args: list[str], words: str) -> None:
    bench = Bench(tmp_path, evals(CASES[:1]))
    done = bench.run("eval", "replay", "triage", *args)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert words in done.stderr and len(done.stderr.strip().splitlines()) <= 4


@pytest.mark.slow
def test_no_run_case_and_a_missing_fixture_name_where(tmp_path: Path) -> None:
    text = "version: 1\nsuites:\n- name: s\n  cases:\n  - name: c\n    graders:\n    - {type: outcome, expect: success}\n"  # noqa: E501
    bench = Bench(tmp_path, text)
    line = bench.run("eval", "replay", "triage").stderr.strip()
    assert "no case has a run:" in line
    (bench.skill / "evals.yaml").write_text(evals(CASES[:1], extra=", fixture: nowhere"))
    done = bench.run("eval", "replay", "triage", "--agent-command", CLAUDE)
    assert done.returncode == 2
    assert "suite 'labels', case 'issue-0', field 'run.fixture': no folder" in done.stderr


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead, only not yet reaped
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[1].split()[0] != "Z"
    except OSError:
        return False


# --- the pieces ---------------------------------------------------------------------------


def _brute(b: int, c: int) -> float:
    """Two-sided exact p by enumerating every outcome at least as extreme."""
    n = b + c
    if n == 0:
        return 1.0
    observed = abs(b - c)
    return min(1.0, sum(comb(n, k) for k in range(n + 1) if abs(2 * k - n) >= observed) / 2**n)


@given(st.integers(0, 40), st.integers(0, 40))
def test_sign_test_is_the_exact_binomial(b: int, c: int) -> None:
    p = sign_test(b, c)
    assert p == pytest.approx(_brute(b, c))
    assert p == sign_test(c, b) and 0 < p <= 1


def test_the_issue_sentence() -> None:
    pairs = [(False, True)] * 7 + [(True, False)] + [(True, True)] * 2
    result = paired("v1", "v2", pairs)
    assert result.sentence == (
        "v2 passed 7 cases v1 failed, v1 passed 1 that v2 failed: p = 0.07,"
        " not yet conclusive at 5 %"
    )
    assert (result.pairs, result.both_passed, result.both_failed) == (10, 2, 0)
    assert paired("v1", "v2", [(True, True)] * 3).sentence.endswith("no evidence either way")
    assert "nothing to compare" in paired("v1", "v2", []).sentence
    assert paired("v1", "v2", [(True, False)] * 6).sentence.endswith("v1 is better at 5 %")


@given(st.text(min_size=1))
def test_the_prompt_is_one_argument_whatever_it_holds(prompt: str) -> None:
    argv = build_argv("agent -p {prompt} --cwd {workdir}", prompt, Path("/w d"))
    assert argv == ["agent", "-p", prompt, "--cwd", "/w d"]


def test_templates_without_prompt_are_refused() -> None:
    with pytest.raises(TemplateError):
        build_argv("agent --go", "p", Path("/w"))


@pytest.mark.slow
def test_skill_evidence_for_an_editing_agent(tmp_path: Path) -> None:
    bench = Bench(
        tmp_path,
        evals(CASES[:2]),
        v1="stub: when=issue 0; answer=ready-to-implement; tools=Read,Bash; mode=fail\n"
        "stub: answer=needs-info; tools=Read",
        v2=None,
    )
    result = bench.replay(code=1)
    bad = next(r for r in result["runs"] if r["case"] == "issue-0")
    good = next(r for r in result["runs"] if r["case"] == "issue-1")
    bench.ctl("annotate", bad["session_id"], "--label", "bad", "--note", "label was wrong")
    everything = json.loads(bench.ctl("skill", "evidence", "triage", "--json"))
    assert {e["session_id"] for e in everything} == {bad["session_id"], good["session_id"]}
    (failing,) = json.loads(bench.ctl("skill", "evidence", "triage", "--failures", "--json"))
    assert failing["session_id"] == bad["session_id"] and failing["version"] == "v1"
    assert failing["first_prompt"] == "triage issue 0: it is slow somewhere"
    assert [c["name"] for c in failing["failing_calls"]] == ["Bash"]
    assert "FAILED tests/test_app.py::test_slug" in failing["failing_calls"][0]["error"]
    assert [(x["label"], x["note"]) for x in failing["labels"]] == [("bad", "label was wrong")]
    (case,) = failing["failed_cases"]
    assert case["case"] == "issue-0" and "lacks ['needs-info']" in case["details"][0]
    text = bench.ctl("skill", "evidence", "triage", "--failures")
    # The failed call is listed, marked "deciding" when the verdict rests on it.
    assert re.search(r"  (failed  |deciding) Bash: Exit code 1", text) and "label    bad" in text
    if failing["verdict"] != "success":
        # Wrapped to the terminal (G17), said once after the verdict word.
        assert failing["verdict_reason"] and failing["verdict_reason"] in " ".join(text.split())
    assert "eval     labels/issue-0 failed" in text and "issue-1" not in text
    assert len(json.loads(bench.ctl("skill", "evidence", "triage", "--limit", "1", "--json"))) == 1
    done = bench.run("skill", "evidence", "nope")
    assert done.returncode != 0 and len(done.stderr.strip().splitlines()) == 1


@given(st.text())
def test_a_skill_name_never_leaves_the_scratch_folder(name: str) -> None:
    from skillopsd.replay import skill_path

    work = Path("/scratch/work")
    for agent in ("claude", "codex"):
        path = skill_path(agent, work, name)
        assert path.parent.parent.parent.parent == work
        assert path.parent.name not in ("", ".", "..") and "/" not in path.parent.name


def gate_evals(match: bool = True, plain: bool = False) -> str:
    """Three `run` cases (with a `match` selecting live sessions too, when asked), and a case
    without `run` grading every session, when asked."""
    lines = ["version: 1", "suites:", "  - name: labels", "    cases:"]
    for n in range(3):
        lines += [
            f"      - name: issue-{n}",
            f'        run: {{prompt: "triage issue {n}: it is slow", timeout: 30}}',
            *(["        match: {prompt: triage}"] if match else []),
            "        graders:",
            "          - {type: text, contains: [needs-info]}",
        ]
    if plain:
        lines += [
            "      - name: uses-the-skill",
            "        graders:",
            "          - {type: skill_invocation, expectSkills: [triage]}",
        ]
    return "\n".join(lines) + "\n"


def live_session(bench: Bench, body: str, n: int) -> None:
    """A session a user ran by hand (not a replay) with ``body`` as the project skill."""
    work = bench.root / f"live-{n}"
    (work / ".claude" / "skills" / "triage").mkdir(parents=True)
    (work / ".claude" / "skills" / "triage" / "SKILL.md").write_text(skill_md(body))
    done = subprocess.run(
        [sys.executable, str(STUB), "-p", f"triage live issue {n}"],
        cwd=work,
        env=bench.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    bench.ctl("ingest", str(bench.home / ".claude" / "projects"))


def dry(bench: Bench, tag: str = "v2") -> subprocess.CompletedProcess[str]:
    done = bench.run("promote", "triage", "--to", tag, "--dry-run")
    assert "Traceback" not in done.stderr, done.stderr
    return done


@pytest.mark.slow
def test_a_second_replay_and_live_sessions_keep_a_passing_replay_clearing(tmp_path: Path) -> None:
    # The run cases' `match` selects the first replay's sessions and the live ones too: the
    # newest replay graded only its own, and that is the evidence for a run case.
    bench = Bench(tmp_path, gate_evals())
    bench.replay("--versions", "v2")
    assert dry(bench).returncode == 0
    bench.replay("--versions", "v2")
    second = dry(bench)
    assert second.returncode == 0, second.stderr
    assert "the newest replay of v2" in second.stdout and "over 3 distinct" in second.stdout
    live_session(bench, V2, 1)
    live_session(bench, V1, 2)
    assert len(json.loads(bench.ctl("sessions", "--json"))) == 8
    with_live = dry(bench)
    assert with_live.returncode == 0, with_live.stderr
    # A failed replay refuses its version, and a newer failure is never outweighed: v1's
    # live session, then its failing replay.
    failed = bench.replay("--versions", "v1", code=1)
    assert not any(r["passed"] for r in failed["runs"])
    refused = dry(bench, "v1")
    assert refused.returncode == 1 and "failed" in refused.stderr, refused.stderr


@pytest.mark.slow
def test_cases_without_run_still_need_an_eval_run_beside_the_replay(tmp_path: Path) -> None:
    bench = Bench(tmp_path, gate_evals(match=False, plain=True))
    live_session(bench, V2, 1)
    bench.replay("--versions", "v2")
    refused = dry(bench)
    assert refused.returncode == 1 and "1 case(s) without `run`" in refused.stderr
    # An eval run grades the case without run on every session (live and replayed) ...
    bench.ctl("eval", "run", "triage", "--json")
    assert dry(bench).returncode == 0
    # ... and a newer replay still clears on it: the replay's new sessions are its own.
    bench.replay("--versions", "v2")
    cleared = dry(bench)
    assert cleared.returncode == 0, cleared.stderr
    assert "and eval run" in cleared.stdout
    # A live session captured since the eval run: the case without run has not graded it.
    live_session(bench, V2, 2)
    stale = dry(bench)
    assert stale.returncode == 1 and "did not grade 1 session(s)" in stale.stderr, stale.stderr
