"""The session verdict says how a session ended: success, unresolved failure, or abandoned."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from skillopsd.cli import cli
from skillopsd.derive._ending import call_kind, is_probe
from skillopsd.projections.verdict import VERDICTS, Call, SessionEnd, VerdictPolicy, verdict

THREAD = "019f0000-0000-7000-8000-0000000000{:02x}"
TURN = "019f0000-0000-7000-8000-0000000001{:02x}"
EXIT = "Chunk ID: 1\nWall time: 0.5 seconds\nProcess exited with code {}\nOutput:\n{}\n"


def _call(call_id: str, cmd: str) -> dict[str, Any]:
    return {
        "type": "response_item",
        "payload": {
            "type": "function_call",
            "name": "exec_command",
            "arguments": json.dumps({"cmd": cmd, "workdir": "/w", "yield_time_ms": 1000}),
            "call_id": call_id,
        },
    }


def _out(call_id: str, code: int, text: str = "") -> dict[str, Any]:
    return {
        "type": "response_item",
        "payload": {
            "type": "function_call_output",
            "call_id": call_id,
            "output": EXIT.format(code, text),
        },
    }


def _prompt(text: str) -> dict[str, Any]:
    return {
        "type": "response_item",
        "payload": {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": text}],
        },
    }


def _turn(n: int) -> dict[str, Any]:
    return {"type": "turn_context", "payload": {"turn_id": TURN.format(n), "model": "gpt-5.4"}}


def _answer(text: str) -> dict[str, Any]:
    return {
        "type": "response_item",
        "payload": {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": text}],
        },
    }


ABORTED = {"type": "event_msg", "payload": {"type": "turn_aborted", "reason": "interrupted"}}

# Each a real-shaped Codex 0.130 rollout (after the session_meta) and the verdict it earns.
SESSIONS: dict[str, tuple[list[dict[str, Any]], str]] = {
    # Tests failed, the agent fixed the code, the same kind of call then passed.
    "fixed": (
        [
            _turn(1),
            _prompt("make the tests pass"),
            _call("a", "go test ./..."),
            _out("a", 1, "--- FAIL: TestPlan (0.00s)"),
            _call("b", "gofmt -w a.go"),
            _out("b", 0),
            _call("c", "cd /w && go test ./... -count=1"),
            _out("c", 0, "ok"),
            _answer("All green."),
        ],
        "success",
    ),
    # The build still fails when the session ends.
    "unresolved": (
        [
            _turn(1),
            _prompt("bump go-git to v6"),
            _call("a", "go get github.com/go-git/go-git/v6@v6.0.0-alpha.3"),
            _out("a", 0),
            _call("b", "go build ./..."),
            _out("b", 1, "undefined: plumbing.Hash"),
            _answer("The build fails on the new API; I stopped here."),
        ],
        "failure",
    ),
    # A grep that found nothing is an answer, not a failure.
    "probe": (
        [
            _turn(1),
            _prompt("is flock used?"),
            _call("a", "grep -rn flock internal"),
            _out("a", 1),
            _answer("No."),
        ],
        "success",
    ),
    # The user interrupted the last turn while it was working.
    "interrupted": (
        [
            _turn(1),
            _prompt("write the FAQ"),
            _call("a", "sed -n '1,200p' README.md"),
            _out("a", 0, "# git-sync"),
            _call("b", "sed -n '1,280p' internal/syncer/syncer.go"),
            ABORTED,
        ],
        "abandoned",
    ),
    # Interrupted after the answer, on a bare "exit": the user left, the work was done.
    "left": (
        [
            _turn(1),
            _prompt("fix the URL check"),
            _call("a", "go test ./internal/validation"),
            _out("a", 0, "ok"),
            _answer("Fixed."),
            _turn(2),
            _prompt("exit"),
            ABORTED,
        ],
        "success",
    ),
    # Blocked by the sandbox, then the user approved another way in a later turn.
    "worked around": (
        [
            _turn(1),
            _prompt("tidy the modules"),
            _call("a", "go mod tidy"),
            {
                "type": "response_item",
                "payload": {
                    "type": "function_call_output",
                    "call_id": "a",
                    "output": "exec_command failed for `/bin/zsh -lc 'go mod tidy'`: "
                    'CreateProcess { message: "Codex(Sandbox(Denied { output: ExecToolCallOutput',
                },
            },
            _answer("The sandbox blocked the module download."),
            _turn(2),
            _prompt("use GOMODCACHE=/tmp/mod"),
            _call("b", "env GOMODCACHE=/tmp/mod go mod tidy"),
            _out("b", 0),
            _answer("Done."),
        ],
        "success",
    ),
    # The last thing that happened: the user's refusal.
    "refused": (
        [
            _turn(1),
            _prompt("push it"),
            _call("a", "git push origin main"),
            {
                "type": "response_item",
                "payload": {
                    "type": "function_call_output",
                    "call_id": "a",
                    "output": "exec command rejected by user",
                },
            },
        ],
        "abandoned",
    ),
}


def _write(home: Path, i: int, rows: list[dict[str, Any]]) -> None:
    thread = THREAD.format(i)
    day = home / ".codex" / "sessions" / "2026" / "06" / "02"
    day.mkdir(parents=True, exist_ok=True)
    meta = {"type": "session_meta", "payload": {"id": thread, "cwd": "/w", "cli_version": "0.130"}}
    with open(day / f"rollout-2026-06-02T00-00-{i:02d}-{thread}.jsonl", "w") as f:
        for n, row in enumerate([meta, *rows]):
            f.write(json.dumps({"timestamp": f"2026-06-02T00:{i:02d}:{n:02d}.000Z", **row}) + "\n")


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("verdict-home")
    for i, (rows, _expected) in enumerate(SESSIONS.values()):
        _write(home, i, rows)
    db = home / "v.db"
    result = CliRunner().invoke(cli, ["--db", str(db), "ingest", str(home / ".codex")])
    assert result.exit_code == 0, result.output
    return db


def _verdicts(db: Path) -> dict[str, str | None]:
    result = CliRunner().invoke(cli, ["--db", str(db), "sessions", "--json"])
    assert result.exit_code == 0, result.output
    by_thread = {s["native_session_id"]: s["verdict"] for s in json.loads(result.output)}
    return {name: by_thread[THREAD.format(i)] for i, name in enumerate(SESSIONS)}


def test_each_ending_gets_its_verdict(database: Path) -> None:
    assert _verdicts(database) == {name: expected for name, (_r, expected) in SESSIONS.items()}


def test_policy_moves_verdicts_and_a_retired_key_is_ignored(database: Path) -> None:
    def policy(*pairs: str) -> None:
        args = ["--db", str(database), "policy", "set", "verdict", *pairs]
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output

    policy("unresolved_min=2")  # one unresolved failure is no longer enough
    assert _verdicts(database)["unresolved"] == "success"
    policy("unresolved_min=1", "failure_share=0.0")  # then any failure fails the session
    after = _verdicts(database)
    assert after["fixed"] == "failure" and after["probe"] == "success"  # a probe is no setback
    assert after["interrupted"] == "abandoned"  # the end still decides first
    policy("failure_share=0.8")
    assert _verdicts(database) == {name: expected for name, (_r, expected) in SESSIONS.items()}
    bad = CliRunner().invoke(
        cli, ["--db", str(database), "policy", "set", "verdict", "tail_turns=0"]
    )
    assert bad.exit_code == 2 and "tail_turns" in bad.output
    # A PolicySet stored by the earlier rule still applies what it can.
    assert VerdictPolicy.from_values({"blocked_min": 2, "failure_share": 0.5}) == VerdictPolicy(
        failure_share=0.5
    )
    with pytest.raises(msgspec.ValidationError):
        VerdictPolicy.from_values({"bogus": 1})


_CALL = st.builds(
    Call,
    span_id=st.uuids().map(str),
    outcome=st.sampled_from(["success", "failure", "blocked"]),
    turns_from_end=st.integers(0, 3),
    resolved=st.booleans(),
    harmless=st.booleans(),
    bookkeeping=st.booleans(),
    what=st.text(max_size=20),
    turn=st.integers(1, 9),
)


@given(
    st.lists(_CALL, max_size=30),
    st.booleans(),
    st.sampled_from([None, "answered", "pending", "silent"]),
    st.integers(1, 5),
)
def test_rule_properties(calls: list[Call], interrupted: bool, ending: str | None, m: int) -> None:
    policy = VerdictPolicy(unresolved_min=m, failure_share=1.0)
    end = SessionEnd(
        calls=calls, last_turn=4, last_turn_span="t", interrupted=interrupted, end=ending
    )
    got = verdict(end, policy)
    deciding = [c for c in calls if not c.bookkeeping]
    assert got.value in (*VERDICTS, None)
    # Every verdict but success says why, naming spans of the session.
    if got.value not in ("success", None):
        assert got.reason and got.reason.startswith(f"{got.value}: ") and "\n" not in got.reason
        assert got.spans and set(got.spans) <= {c.span_id for c in calls} | {"t"}
    else:
        assert got.reason is None and got.spans == []
    if interrupted:
        assert got.value == "abandoned"
    elif deciding and deciding[-1].outcome == "blocked":
        assert got.value == "abandoned" and got.spans == [deciding[-1].span_id]
    elif ending in ("pending", "silent"):
        assert got.value == "unfinished"
    elif not deciding:
        assert got.value is None
    else:
        unresolved = [
            c
            for c in deciding
            if c.outcome == "failure"
            and not c.harmless
            and c.turns_from_end == 0
            and not c.resolved
        ]
        assert got.value == ("failure" if len(unresolved) >= m else "success")
        assert got.value != "failure" or set(got.spans) <= {c.span_id for c in unresolved}
    # Bookkeeping calls never decide: dropping them changes nothing.
    plain = msgspec.structs.replace(end, calls=deciding)
    assert verdict(plain, policy) == got


@pytest.mark.parametrize(
    ("tool", "cmd", "kind", "probe"),
    [
        ("exec_command", "go test ./...", "exec_command:go test", False),
        (
            "exec_command",
            "cd /w && GOFLAGS=-mod=mod go test -run X ./a",
            "exec_command:go test",
            False,
        ),
        (
            "exec_command",
            "git diff --stat && git status --short && go test ./...",
            "exec_command:go test",
            False,
        ),
        ("exec_command", "go test ./... && git diff --stat", "exec_command:git diff", False),
        ("exec_command", "VAR=$(go env GOPATH) && grep -rn x $VAR", "exec_command:grep", True),
        ("Bash", "GOOS=windows go test ./...", "Bash:go test", False),
        ("Bash", "git -C /w/repo branch -a", "Bash:git branch", True),
        ("Bash", "cd /w && rm -f out; go test -c", "Bash:go test", False),
        ("Bash", "go test ./... || true", "Bash:go test", False),
        ("Bash", "timeout 60 env A=1 go vet ./...", "Bash:go vet", False),
        ("Bash", "python3 -m pytest -x tests", "Bash:python3 -m pytest", False),
        (
            "Bash",
            "git add a && git commit -q -F - <<'EOF'\nfix: $(not run) && rm x\nEOF\ngit push",
            "Bash:git push",
            False,
        ),
        ("Bash", "ls 2>/dev/null; cat a 2>&1 >/dev/null", "Bash:cat", True),
        # A pipeline is named by its last stage that is not a filter (F21): tee passes on what
        # echo wrote; a pipeline of filters only is named by its last.
        ("Bash", "echo x | tee out.txt", "Bash:echo", False),
        ("Bash", "cat a.txt | tee b.txt", "Bash:tee", False),
        (
            "powershell",
            "cd C:\\w; git log -5 2>&1 | Select-Object -Last 1",
            "powershell:git log",
            True,
        ),
        ("powershell", "Get-Content a.txt > b.txt", "powershell:Get-Content", False),
        ("powershell", "$u = gh issue create --title 'x'", "powershell:gh issue", False),
        ("powershell", "npm test; Write-Host done", "powershell:npm test", False),
        ("exec_command", "rg -n 'a|b' internal", "exec_command:rg", True),
        (
            "exec_command",
            "git rev-parse --abbrev-ref @{u} 2>&1",
            "exec_command:git rev-parse",
            True,
        ),
        (
            "exec_command",
            "sleep 30; gh pr view 66 --json statusCheckRollup",
            "exec_command:gh pr",
            True,
        ),
        ("exec_command", "sed -i s/a/b/ f.go", "exec_command:sed", False),
        ("exec_command", "cat a > b", "exec_command:cat", False),
        ("Bash", "npm run build | tail -5", "Bash:npm run", False),
        ("Bash", "set -o pipefail; npm run build | tail -5", "Bash:npm run", False),
        ("Read", None, "Read", True),
        ("apply_patch", None, "edit:a", False),
        ("Edit", None, "edit:a", False),
        ("write_file", None, "edit:a", False),
        ("TodoWrite", None, "TodoWrite", False),
    ],
)
def test_call_kind_and_probe(tool: str, cmd: str | None, kind: str, probe: bool) -> None:
    key = "cmd" if tool == "exec_command" else "command"
    arguments = json.dumps({key: cmd} if cmd else {"file_path": "/a"})
    assert call_kind(tool, arguments) == kind
    assert is_probe(tool, arguments) is probe
