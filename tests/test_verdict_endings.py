"""How sessions end, on real-shaped records of all four agents: the verdict, its one-line
reason and its deciding spans (issue 16 items 1, 2, 4 and 5).

Each case is a transcript written where its agent writes it under a temporary HOME, captured
and derived by the real ``skillopsctl ingest``, and read back with ``sessions --json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from skillopsd.cli import cli
from skillopsd.derive._outcome import claude_outcome
from skillopsd.derive.gemini import gemini_outcome

CWD = "/w/repo"


# --- Claude Code ------------------------------------------------------------------------


class Claude:
    """A Claude Code session file, record by record."""

    def __init__(self, sid: str) -> None:
        self.sid = sid
        self.rows: list[dict[str, Any]] = []

    def _row(self, kind: str, message: dict[str, Any], **extra: Any) -> None:
        n = len(self.rows)
        self.rows.append(
            {
                "type": kind,
                "message": message,
                "uuid": f"{self.sid[:8]}-{n:04d}",
                "parentUuid": f"{self.sid[:8]}-{n - 1:04d}" if n else None,
                "timestamp": f"2026-06-01T10:{n // 60:02d}:{n % 60:02d}.000Z",
                "sessionId": self.sid,
                "cwd": CWD,
                "version": "2.1.90",
                **extra,
            }
        )

    def prompt(self, text: str) -> Claude:
        self._row("user", {"role": "user", "content": text})
        return self

    def say(self, text: str) -> Claude:
        n = len(self.rows)
        content = [{"type": "text", "text": text}]
        self._row(
            "assistant", {"id": f"msg_{n}", "role": "assistant", "model": "m", "content": content}
        )
        return self

    def call(self, call_id: str, tool: str, **tool_input: Any) -> Claude:
        n = len(self.rows)
        block = {"type": "tool_use", "id": call_id, "name": tool, "input": tool_input}
        message = {"id": f"msg_{n}", "role": "assistant", "model": "m", "content": [block]}
        self._row("assistant", message)
        return self

    def result(self, call_id: str, text: str, *, error: bool = False) -> Claude:
        block = {"type": "tool_result", "tool_use_id": call_id, "content": text, "is_error": error}
        self._row("user", {"role": "user", "content": [block]})
        return self

    def interrupt(self) -> Claude:
        self._row("user", {"role": "user", "content": "[Request interrupted by user]"})
        return self

    def write(self, home: Path) -> None:
        folder = home / ".claude" / "projects" / "-w-repo"
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / f"{self.sid}.jsonl", "w") as f:
            for row in self.rows:
                f.write(json.dumps(row) + "\n")


def _sid(n: int) -> str:
    return f"4e1f0000-0000-4000-8000-{n:012d}"


_NO_CHANGE = (
    "<tool_use_error>No changes to make: old_string and new_string are exactly the same."
    "</tool_use_error>"
)
_DENIED = (
    "Permission for this tool use was denied. The tool use was rejected (eg. if it was a file"
    " edit, the new_string was NOT written to the file). Try a different approach or report the"
    " limitation to complete your task."
)


def _claude_cases() -> list[tuple[str, Claude, str | None, str]]:
    c = []
    # A failed Edit retried as Write of the same file, which worked: resolved.
    c.append(
        (
            "edit retried as write",
            Claude(_sid(1))
            .prompt("fix the typo")
            .call("t1", "Edit", file_path=f"{CWD}/a.go", old_string="x", new_string="y")
            .result(
                "t1",
                "<tool_use_error>String to replace not found in file.</tool_use_error>",
                error=True,
            )
            .call("t2", "Write", file_path=f"{CWD}/a.go", content="package a\n")
            .result("t2", "File created successfully")
            .say("Fixed."),
            "success",
            "",
        )
    )
    # A failed Edit of one file is not resolved by a Write of another.
    c.append(
        (
            "edit of another file",
            Claude(_sid(2))
            .prompt("fix the typo")
            .call("t1", "Edit", file_path=f"{CWD}/a.go", old_string="x", new_string="y")
            .result(
                "t1",
                "<tool_use_error>String to replace not found in file.</tool_use_error>",
                error=True,
            )
            .call("t2", "Write", file_path=f"{CWD}/b.go", content="package b\n")
            .result("t2", "File created successfully")
            .say("Done."),
            "failure",
            "failure: Edit a.go failed in the last turn, nothing of the same kind passed after it",
        )
    )
    # An edit that would change nothing is no failure of the session.
    c.append(
        (
            "no-op edit",
            Claude(_sid(3))
            .prompt("tidy")
            .call("t1", "Edit", file_path=f"{CWD}/a.go", old_string="x", new_string="x")
            .result("t1", _NO_CHANGE, error=True)
            .say("Already tidy."),
            "success",
            "",
        )
    )
    # A blocked deliverable followed by a TodoWrite is not a success.
    c.append(
        (
            "block hidden by todo",
            Claude(_sid(4))
            .prompt("push it")
            .call("t1", "Bash", command="git push origin main")
            .result(
                "t1",
                "The user doesn't want to proceed with this tool use. The tool use was rejected",
            )
            .call("t2", "TodoWrite", todos=[{"content": "push", "status": "completed"}])
            .result("t2", "Todos have been modified successfully"),
            "abandoned",
            "abandoned: git push origin main was blocked in turn 1 (The user doesn't want to"
            " proceed with this tool use. The tool use was rejected), nothing came after it",
        )
    )
    # A subagent's call denied by a permission rule: blocked, not failed.
    c.append(
        (
            "permission denied",
            Claude(_sid(5))
            .prompt("deploy")
            .call("t1", "Bash", command="cd /w/repo && GOOS=linux make deploy")
            .result("t1", _DENIED, error=True),
            "abandoned",
            "abandoned: GOOS=linux make deploy was blocked in turn 1 (Permission for this tool"
            " use was denied.",
        )
    )
    # Claude Code refusing a call itself.
    c.append(
        (
            "refused by claude code",
            Claude(_sid(6))
            .prompt("wait for CI")
            .call("t1", "Bash", command="sleep 30; gh pr checks 66")
            .result(
                "t1",
                "<tool_use_error>Blocked: sleep 30 followed by: gh pr checks 66. To wait for a"
                " condition, use Monitor</tool_use_error>",
                error=True,
            ),
            "abandoned",
            "abandoned: gh pr checks 66 was blocked in turn 1 (<tool_use_error>Blocked: sleep 30",
        )
    )
    # The file ends while a call waits for its result: unfinished, the call decides.
    c.append(
        (
            "pending at the end",
            Claude(_sid(7))
            .prompt("commit and push")
            .call("t1", "Bash", command="git add -A && git commit -m x && git push 2>&1 | tail -3"),
            "unfinished",
            # The whole script: any of its commands may be what waits (review K10).
            "unfinished: the file ends while git add -A && git commit -m x && git push 2>&1 |"
            " tail -3 is still waiting for its result in turn 1",
        )
    )
    # Calls done, no final answer, no interrupt: unfinished.
    c.append(
        (
            "no final answer",
            Claude(_sid(8))
            .prompt("run the tests")
            .call("t1", "Bash", command="go test ./...")
            .result("t1", "ok  \tpkg\t0.1s"),
            "unfinished",
            "unfinished: turn 1 has no final answer",
        )
    )
    # The user interrupted the last turn while a command ran.
    c.append(
        (
            "interrupted",
            Claude(_sid(9))
            .prompt("run the slow tests")
            .call("t1", "Bash", command="go test -run Slow ./...")
            .interrupt(),
            "abandoned",
            "abandoned: the user interrupted turn 1 while go test -run Slow ./... was running",
        )
    )
    # /exit typed after the answer is no turn of the work.
    c.append(
        (
            "exit after the work",
            Claude(_sid(10))
            .prompt("run the tests")
            .call("t1", "Bash", command="cd /w/repo && go test ./...")
            .result("t1", "Exit code 1\n--- FAIL: TestX", error=True)
            .call("t2", "Bash", command="go test ./... -count=1")
            .result("t2", "ok")
            .say("All green.")
            .prompt("<command-name>/exit</command-name>\n<command-message>exit</command-message>"),
            "success",
            "",
        )
    )
    # A built-in command typed first is a turn of the tree (``CHAIN turn 1``, ``turns 2``):
    # the reason names the turn the tree names, not the ordinal among the turns of the work.
    c.append(
        (
            "command turn first",
            Claude(_sid(12))
            .prompt("<command-name>/model</command-name>\n<command-message>model</command-message>")
            .prompt("push it")
            .call("t1", "Bash", command="git push"),
            "unfinished",
            "unfinished: the file ends while git push is still waiting for its result in turn 2",
        )
    )
    # The last test run failed and nothing of its kind passed after it.
    c.append(
        (
            "unresolved test",
            Claude(_sid(11))
            .prompt("make it pass")
            .call("t1", "Bash", command="GOOS=windows go test ./...")
            .result("t1", "Exit code 1\n--- FAIL: TestPath", error=True)
            .call("t2", "Bash", command="git -C /w/repo status --short")
            .result("t2", " M a.go")
            .say("Still failing on Windows paths."),
            "failure",
            "failure: GOOS=windows go test ./... failed in the last turn, nothing of the same"
            " kind passed after it",
        )
    )

    # Review K12: a failure in the last turn that did work stays a failure when the user ends
    # with thanks, or with a question the agent answers only by looking.
    def failed(n: int) -> Claude:
        return (
            Claude(_sid(n))
            .prompt("make go test pass")
            .call("t1", "Bash", command="go test ./pkg")
            .result("t1", "Exit code 1\n--- FAIL: TestX", error=True)
            .say("I could not make TestX pass.")
        )

    c.append(
        (
            "failure then thanks",
            failed(40).prompt("ok thanks, I'll handle it myself").say("Sorry I couldn't fix it."),
            "failure",
            "failure: go test ./pkg failed in turn 1 (the last turn that did work),"
            " nothing of the same kind passed after it",
        )
    )
    c.append(
        (
            "failure then a look",
            failed(41)
            .prompt("show me git status")
            .call("t2", "Bash", command="git status")
            .result("t2", "On branch main\nnothing to commit")
            .call("t3", "Read", file_path=f"{CWD}/pkg/x_test.go")
            .result("t3", "package pkg")
            .call("t4", "TodoWrite", todos=[])
            .result("t4", "Todos have been modified successfully")
            .say("Clean tree; TestX still fails."),
            "failure",
            "failure: go test ./pkg failed in turn 1 (the last turn that did work)",
        )
    )
    # ... but a last turn that did other work, and passed, is what the session ended on.
    c.append(
        (
            "failure then other work",
            failed(42)
            .prompt("leave it; update the README instead")
            .call("t2", "Edit", file_path=f"{CWD}/README.md", old_string="a", new_string="b")
            .result("t2", "The file README.md has been updated.")
            .say("Updated the README."),
            "success",
            "",
        )
    )
    c.append(
        (
            "success then thanks",
            Claude(_sid(43))
            .prompt("make go test pass")
            .call("t1", "Bash", command="go test ./pkg")
            .result("t1", "ok  \tpkg\t0.1s")
            .say("All tests pass.")
            .prompt("thanks!")
            .say("You're welcome."),
            "success",
            "",
        )
    )
    return c


# --- Codex ------------------------------------------------------------------------------


def _codex(home: Path, n: int, rows: list[dict[str, Any]]) -> str:
    thread = f"019f0000-0000-7000-8000-{n:012d}"
    day = home / ".codex" / "sessions" / "2026" / "06" / "02"
    day.mkdir(parents=True, exist_ok=True)
    meta = {"type": "session_meta", "payload": {"id": thread, "cwd": CWD, "cli_version": "0.130"}}
    with open(day / f"rollout-2026-06-02T00-00-{n:02d}-{thread}.jsonl", "w") as f:
        for i, row in enumerate([meta, *rows]):
            f.write(json.dumps({"timestamp": f"2026-06-02T00:{n:02d}:{i:02d}.000Z", **row}) + "\n")
    return thread


def _item(payload: dict[str, Any]) -> dict[str, Any]:
    return {"type": "response_item", "payload": payload}


def _codex_turn(prompt: str) -> list[dict[str, Any]]:
    return [
        {"type": "turn_context", "payload": {"turn_id": "t1", "model": "gpt-5.4"}},
        _item(
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": prompt}]}
        ),
    ]


def _codex_answer(text: str) -> dict[str, Any]:
    return _item(
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": text}]}
    )


def _patch(call_id: str, path: str) -> dict[str, Any]:
    patch = f"*** Begin Patch\n*** Update File: {path}\n@@\n-a\n+b\n*** End Patch\n"
    return _item(
        {"type": "custom_tool_call", "name": "apply_patch", "input": patch, "call_id": call_id}
    )


def _patch_out(call_id: str, ok: bool) -> dict[str, Any]:
    text = "Success. Updated the following files:\nM a.go" if ok else "error: patch failed"
    return _item(
        {
            "type": "custom_tool_call_output",
            "call_id": call_id,
            "output": json.dumps({"output": text, "metadata": {"exit_code": 0 if ok else 1}}),
        }
    )


def _plan(call_id: str) -> list[dict[str, Any]]:
    return [
        _item(
            {
                "type": "function_call",
                "name": "update_plan",
                "arguments": json.dumps({"plan": [{"step": "x", "status": "completed"}]}),
                "call_id": call_id,
            }
        ),
        _item({"type": "function_call_output", "call_id": call_id, "output": "Plan updated"}),
    ]


def _exec(call_id: str, cmd: str, code: int | None, text: str = "") -> list[dict[str, Any]]:
    rows = [
        _item(
            {
                "type": "function_call",
                "name": "exec_command",
                "arguments": json.dumps({"cmd": cmd, "workdir": CWD}),
                "call_id": call_id,
            }
        )
    ]
    if code is not None:
        output = (
            f"Chunk ID: 1\nWall time: 0.5 seconds\nProcess exited with code {code}\n"
            f"Output:\n{text}\n"
        )
        rows.append(_item({"type": "function_call_output", "call_id": call_id, "output": output}))
    return rows


def _codex_cases() -> list[tuple[str, list[dict[str, Any]], str | None, str]]:
    return [
        (
            "failed patch, patched again",
            [
                *_codex_turn("fix"),
                _patch("p1", "a.go"),
                _patch_out("p1", False),
                _patch("p2", f"{CWD}/a.go"),
                _patch_out("p2", True),
                _codex_answer("Done."),
            ],
            "success",
            "",
        ),
        (
            "sandbox refused a socket",
            [
                *_codex_turn("review"),
                *_exec(
                    "e1",
                    "go test ./...",
                    1,
                    "panic: listen tcp6 [::1]:0: bind: operation not permitted",
                ),
                _codex_answer("Review: one finding."),
            ],
            "success",
            "",
        ),
        (
            "a program that is not there",
            [
                *_codex_turn("try it"),
                *_exec("e1", "./bin/tool --help", 127, "zsh: command not found: ./bin/tool"),
                _codex_answer("There is no such binary; nothing to run."),
            ],
            "success",
            "",
        ),
        (
            "plan after a failure does not hide it",
            [
                *_codex_turn("build"),
                *_exec("e1", "rm -f out; go build -o out ./cmd", 1, "undefined: x"),
                *_plan("u1"),
                _codex_answer("The build fails."),
            ],
            "failure",
            "failure: go build -o out ./cmd failed in the last turn, nothing of the same kind"
            " passed after it",
        ),
        (
            "pending command",
            [*_codex_turn("deploy"), *_exec("e1", "make deploy", None)],
            "unfinished",
            "unfinished: the file ends while make deploy is still waiting for its result in turn 1",
        ),
    ]


# --- Gemini CLI -------------------------------------------------------------------------


def _gemini(home: Path, n: int, calls: list[dict[str, Any]], answer: str) -> str:
    sid = f"9e000000-0000-4000-8000-{n:012d}"
    messages: list[dict[str, Any]] = [
        {"id": f"u{n}", "timestamp": "2026-03-01T10:00:00.000Z", "type": "user", "content": "look"},
        {
            "id": f"g{n}",
            "timestamp": "2026-03-01T10:00:05.000Z",
            "type": "gemini",
            "content": "Let me look.",
            "model": "gemini-2.5-pro",
            "toolCalls": calls,
        },
    ]
    if answer:
        messages.append(
            {
                "id": f"a{n}",
                "timestamp": "2026-03-01T10:00:09.000Z",
                "type": "gemini",
                "content": answer,
            }
        )
    doc = {
        "sessionId": sid,
        "projectHash": "ab" * 32,
        "startTime": "2026-03-01T10:00:00.000Z",
        "lastUpdated": "2026-03-01T10:00:09.000Z",
        "messages": messages,
    }
    chats = home / ".gemini" / "tmp" / "proj" / "chats"
    chats.mkdir(parents=True, exist_ok=True)
    (chats / f"session-2026-03-01T10-00-{sid[:8]}{n}.json").write_text(json.dumps(doc, indent=2))
    return sid


def _gemini_call(
    call_id: str, name: str, args: dict[str, Any], status: str, error: str = ""
) -> dict[str, Any]:
    response = {"error": error} if error else {"output": "ok"}
    return {
        "id": call_id,
        "name": name,
        "args": args,
        "result": [{"functionResponse": {"id": call_id, "name": name, "response": response}}],
        "status": status,
        "timestamp": "2026-03-01T10:00:06.000Z",
    }


_OUTSIDE = (
    'Path not in workspace: Attempted path "/etc/hosts" resolves outside the allowed workspace'
    " directories: /w/repo or the project temp directory: /h/.gemini/tmp/repo"
)


def _gemini_cases() -> list[tuple[str, list[dict[str, Any]], str, str | None, str]]:
    return [
        (
            "path not in workspace",
            [_gemini_call("r1", "read_file", {"absolute_path": "/etc/hosts"}, "error", _OUTSIDE)],
            "I am restricted from accessing it.",
            "abandoned",
            "abandoned: read_file was blocked in turn 1 (Path not in workspace:",
        ),
        (
            "no-op replace",
            [
                _gemini_call(
                    "r1",
                    "replace",
                    {"file_path": "a.md", "old_string": "x", "new_string": "x"},
                    "error",
                    "No changes to apply. The old_string and new_string are identical in file:"
                    " a.md",
                )
            ],
            "Nothing to change.",
            "success",
            "",
        ),
    ]


# --- Copilot CLI ------------------------------------------------------------------------


def _copilot(home: Path, n: int, events: list[tuple[str, dict[str, Any]]]) -> str:
    sid = f"c0000000-0000-4000-8000-{n:012d}"
    folder = home / ".copilot" / "session-state" / sid
    folder.mkdir(parents=True, exist_ok=True)
    rows = [("session.start", {"sessionId": sid, "context": {"cwd": CWD}}), *events]
    with open(folder / "events.jsonl", "w") as f:
        for i, (kind, data) in enumerate(rows):
            row = {
                "type": kind,
                "data": data,
                "id": f"{sid[:8]}-{i:04d}",
                "timestamp": f"2026-07-01T10:00:{i:02d}.000Z",
                "parentId": f"{sid[:8]}-{i - 1:04d}" if i else None,
            }
            f.write(json.dumps(row) + "\n")
    return sid


def _copilot_shell(call_id: str, command: str, code: int) -> list[tuple[str, dict[str, Any]]]:
    request = {"toolCallId": call_id, "name": "powershell", "arguments": {"command": command}}
    return [
        (
            "assistant.message",
            {"messageId": f"m{call_id}", "content": "", "toolRequests": [request]},
        ),
        (
            "tool.execution_start",
            {"toolCallId": call_id, "toolName": "powershell", "arguments": {"command": command}},
        ),
        (
            "tool.execution_complete",
            {
                "toolCallId": call_id,
                "success": True,
                "result": {"content": f"out\n<shellId: 1 completed with exit code {code}>"},
            },
        ),
    ]


def _copilot_cases() -> list[tuple[str, list[tuple[str, dict[str, Any]]], str | None, str]]:
    prompt = ("user.message", {"content": "run the tests", "interactionId": "i1"})
    answer = ("assistant.message", {"messageId": "fin", "content": "Done.", "toolRequests": []})
    return [
        (
            "powershell retried and passed",
            [
                prompt,
                *_copilot_shell("a", "cd C:\\w; npm test 2>&1 | Select-Object -Last 5", 1),
                *_copilot_shell("b", "npm test; Write-Host done", 0),
                answer,
            ],
            "success",
            "",
        ),
        (
            "powershell failed last",
            [
                prompt,
                *_copilot_shell("a", "$env:CI=1; npm test 2>&1 | Select-Object -Last 5", 1),
                answer,
            ],
            "failure",
            "failure: npm test 2>&1 failed in the last turn",
        ),
    ]


@pytest.fixture(scope="module")
def verdicts(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, tuple[dict[str, Any], str | None, str]]:
    home = tmp_path_factory.mktemp("endings")
    expected: dict[str, tuple[str, str | None, str]] = {}  # native id -> (case, verdict, reason)
    for name, session, verdict, reason in _claude_cases():
        session.write(home)
        expected[session.sid] = (name, verdict, reason)
    for n, (name, rows, verdict, reason) in enumerate(_codex_cases()):
        expected[_codex(home, n, rows)] = (name, verdict, reason)
    for n, (name, calls, answer, verdict, reason) in enumerate(_gemini_cases()):
        expected[_gemini(home, n, calls, answer)] = (name, verdict, reason)
    for n, (name, events, verdict, reason) in enumerate(_copilot_cases()):
        expected[_copilot(home, n, events)] = (name, verdict, reason)
    db = home / "v.db"
    runner = CliRunner()
    for args in (
        [str(home / ".claude"), str(home / ".codex")],
        ["--agent", "gemini", str(home / ".gemini")],
        ["--agent", "copilot", str(home / ".copilot")],
    ):
        result = runner.invoke(cli, ["--db", str(db), "ingest", *args])
        assert result.exit_code == 0, result.output
    listed = runner.invoke(cli, ["--db", str(db), "sessions", "--json"])
    assert listed.exit_code == 0, listed.output
    by_native = {s["native_session_id"]: s for s in json.loads(listed.output)}
    return {
        name: (by_native[native], verdict, reason)
        for native, (name, verdict, reason) in expected.items()
    }


CASES = (
    [c[0] for c in _claude_cases()]
    + [c[0] for c in _codex_cases()]
    + [c[0] for c in _gemini_cases()]
    + [c[0] for c in _copilot_cases()]
)


@pytest.mark.parametrize("case", CASES)
def test_each_ending_gets_its_verdict_and_reason(
    verdicts: dict[str, tuple[dict[str, Any], str | None, str]], case: str
) -> None:
    session, verdict, reason = verdicts[case]
    assert session["verdict"] == verdict, session["verdict_reason"]
    if verdict in (None, "success"):
        assert session["verdict_reason"] is None and session["verdict_spans"] == []
    else:
        assert session["verdict_reason"].startswith(reason), session["verdict_reason"]
        assert "\n" not in session["verdict_reason"]
        assert session["verdict_spans"]


@pytest.mark.parametrize(
    "text",
    [
        _DENIED,
        "Permission for this tool use was denied: it requires interactive approval, and"
        " permission prompts are not available in this session.",
        "Permission for this action has been denied. Reason: deleting files outside the repo.",
        "Permission for this action was denied by the Claude Code auto mode classifier. Reason: x",
        "<tool_use_error>Blocked: sleep 30 followed by: gh run watch</tool_use_error>",
    ],
)
def test_claude_refusals_are_blocked(text: str) -> None:
    outcome = claude_outcome(is_error=True, text=text, tool_use_result=None, denial_kind=None)
    assert outcome == "blocked"


@pytest.mark.parametrize(
    ("text", "outcome"),
    [
        (_OUTSIDE, "blocked"),
        ("File path must be within one of the workspace directories: /w/repo", "blocked"),
        ("File path is outside the workspace\n\nRequested path: /etc/x", "blocked"),
        (
            "Access denied: Path '/etc/x' is outside the workspace and not in allowed paths.",
            "blocked",
        ),
        ("Tool execution denied by policy. Writes to .env are not allowed.", "blocked"),
        ("File path '/w/repo/.env' is ignored by configured ignore patterns.", "blocked"),
        ("Failed to edit, 0 occurrences found for old_string in a.md.", "failure"),
    ],
)
def test_gemini_refusals_are_blocked_other_errors_fail(text: str, outcome: str) -> None:
    assert gemini_outcome("read_file", "error", text) == outcome
