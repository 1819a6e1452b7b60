"""Codex derivation against real rollouts: token totals, router errors, long-running commands."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skillopsd.derive import Derivation, SourceLines, derive_session
from skillopsd.derive._outcome import codex_outcome
from skillopsd.events.types import SpanDerived

from ._capture_helpers import as_lines, extract_corpus, file_lines

THREAD = "019f0000-0000-7000-8000-000000000001"
TURN = "019f0000-0000-7000-8000-0000000000aa"
TS = "2026-05-14T19:25:{:02d}.000Z"


@pytest.fixture(scope="module")
def corpus_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return extract_corpus(tmp_path_factory.mktemp("corpus-codex"))


def _decode(path: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    decoder = json.JSONDecoder()
    for _offset, line in file_lines(path):
        text, pos = line.decode("utf-8", "replace"), 0
        while pos < len(text):
            while pos < len(text) and text[pos].isspace():
                pos += 1
            if pos < len(text):
                value, pos = decoder.raw_decode(text, pos)
                out.append(value)
    return out


def _rollouts(home: Path) -> list[Path]:
    return sorted((home / ".codex").rglob("rollout-*.jsonl"))


def _derive_rows(rows: list[dict[str, Any]]) -> Derivation:
    for i, row in enumerate(rows):
        row.setdefault("timestamp", TS.format(i % 60))
    source = SourceLines("x", "/r.jsonl", THREAD, "", as_lines(rows))
    return derive_session("codex", THREAD, [source])


def _by_call(spans: list[SpanDerived]) -> dict[str, SpanDerived]:
    return {
        str(s.attributes["gen_ai.tool.call.id"]): s
        for s in spans
        if s.kind in ("TOOL", "SKILL") and "gen_ai.tool.call.id" in s.attributes
    }


def _meta() -> dict[str, Any]:
    return {
        "type": "session_meta",
        "payload": {"id": THREAD, "cwd": "/w", "originator": "codex-tui", "cli_version": "0.130.0"},
    }


def _turn(turn: str = TURN) -> dict[str, Any]:
    return {"type": "turn_context", "payload": {"turn_id": turn, "model": "gpt-5.4"}}


def _call(call_id: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "response_item",
        "payload": {
            "type": "function_call",
            "name": name,
            "arguments": json.dumps(arguments),
            "call_id": call_id,
        },
    }


def _output(call_id: str, output: str) -> dict[str, Any]:
    return {
        "type": "response_item",
        "payload": {"type": "function_call_output", "call_id": call_id, "output": output},
    }


def _usage(inp: int, cached: int, out: int) -> dict[str, int]:
    return {
        "input_tokens": inp,
        "cached_input_tokens": cached,
        "output_tokens": out,
        "reasoning_output_tokens": 0,
        "total_tokens": inp + out,
    }


def _token_count(total: dict[str, int], last: dict[str, int]) -> dict[str, Any]:
    return {
        "type": "event_msg",
        "payload": {
            "type": "token_count",
            "info": {
                "total_token_usage": total,
                "last_token_usage": last,
                "model_context_window": 258400,
            },
        },
    }


def _reasoning() -> dict[str, Any]:
    return {"type": "response_item", "payload": {"type": "reasoning", "summary": []}}


# --- 3. token totals ----------------------------------------------------------------------


def test_compaction_token_count_does_not_zero_the_last_response() -> None:
    """The record sequence around ``compacted`` in a real 0.118 rollout (8c3e4d9d5603)."""
    first = _usage(224722, 224512, 1301)
    total = _usage(15208239, 13936896, 69031)
    zeros = {**_usage(0, 0, 0), "total_tokens": 12965}
    after = _usage(23001, 7936, 83)
    total2 = {k: total[k] + after[k] for k in total}
    rows = [
        _meta(),
        _turn(),
        _reasoning(),
        {
            "type": "response_item",
            "payload": {
                "type": "custom_tool_call",
                "status": "completed",
                "call_id": "p1",
                "name": "apply_patch",
                "input": "*** Begin Patch\n*** End Patch",
            },
        },
        _token_count(total, first),
        {
            "type": "response_item",
            "payload": {
                "type": "custom_tool_call_output",
                "call_id": "p1",
                "output": '{"output":"Success. Updated the following files:\\nM a.go\\n",'
                '"metadata":{"exit_code":0,"duration_seconds":0.0}}',
            },
        },
        {"type": "compacted", "payload": {"message": "", "replacement_history": []}},
        _turn(),  # the same turn goes on after the compaction
        _token_count(total, zeros),
        {"type": "event_msg", "payload": {"type": "context_compacted"}},
        _reasoning(),
        _call("c1", "exec_command", {"cmd": "gofmt -w a.go"}),
        _token_count(total2, after),
    ]
    d = _derive_rows(rows)
    llms = [s for s in d.spans if s.kind == "LLM"]
    assert [s.attributes["gen_ai.usage.input_tokens"] for s in llms] == [224722, 23001]
    # A session of one thread whose history starts here: its totals are the responses'.
    assert d.session.tokens.input == first["input_tokens"] + after["input_tokens"]
    assert d.session.tokens.output == first["output_tokens"] + after["output_tokens"]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(1, 300_000),  # input
            st.integers(0, 300_000),  # cached (clipped to input)
            st.integers(1, 5_000),  # output
            st.sampled_from(["tool", "answer"]),
            st.integers(0, 2),  # repeats of the same token_count after it
            st.booleans(),  # a compaction after the response
        ),
        min_size=1,
        max_size=12,
    )
)
def test_totals_equal_the_rollouts_own_total(responses: list[tuple[Any, ...]]) -> None:
    """However the responses, repeats and compactions fall, totals are the final total."""
    rows: list[dict[str, Any]] = [_meta(), _turn()]
    total = _usage(0, 0, 0)
    for i, (inp, cached, out, kind, repeats, compact) in enumerate(responses):
        last = _usage(inp, min(cached, inp), out)
        total = {k: total[k] + last[k] for k in total}
        rows.append(_reasoning())
        if kind == "tool":
            rows.append(_call(f"c{i}", "exec_command", {"cmd": "true"}))
            rows.append(_token_count(total, last))
            rows.append(_output(f"c{i}", "Chunk ID: a\nProcess exited with code 0\nOutput:\n"))
        else:
            rows.append(
                {
                    "type": "response_item",
                    "payload": {
                        "type": "message",
                        "role": "assistant",
                        "content": [{"type": "output_text", "text": "done"}],
                    },
                }
            )
            rows.append(_token_count(total, last))
            rows.append(
                {"type": "event_msg", "payload": {"type": "user_message", "message": "more"}}
            )
        rows.extend(_token_count(total, last) for _ in range(repeats))
        if compact:
            rows.append({"type": "compacted", "payload": {"message": ""}})
            rows.append(_turn())
            rows.append(_token_count(total, {**_usage(0, 0, 0), "total_tokens": 999}))
    d = _derive_rows(rows)
    assert d.session.tokens.input == total["input_tokens"]
    assert d.session.tokens.output == total["output_tokens"]
    assert d.session.tokens.cache_read == total["cached_input_tokens"]


def _final_total(records: list[dict[str, Any]]) -> dict[str, int]:
    infos = [
        r["payload"]["info"]
        for r in records
        if r.get("type") == "event_msg"
        and r["payload"].get("type") == "token_count"
        and r["payload"].get("info")
    ]
    return infos[-1]["total_token_usage"]


def _replay_total(records: list[dict[str, Any]], thread: str) -> dict[str, int] | None:
    """For a forked child: the usage its replay of the parent's history ends on."""
    metas = [i for i, r in enumerate(records) if r.get("type") == "session_meta"]
    if len(metas) < 2:
        return None
    own = next(
        i
        for i in range(metas[1], len(records))
        if records[i].get("type") in ("turn_context", "event_msg")
        and str(records[i]["payload"].get("turn_id", "")) >= thread
    )
    return _final_total(records[:own])


def test_every_real_rollout_totals_its_own_final_usage(corpus_home: Path) -> None:
    singles = children = 0
    for path in _rollouts(corpus_home):
        records = _decode(path)
        native = records[0]["payload"]["id"]
        d = derive_session(
            "codex", native, [SourceLines("x", str(path), native, "", file_lines(path))]
        )
        final = dict(_final_total(records))
        replayed = _replay_total(records, native)
        if replayed is None:
            singles += 1
        else:  # a forked child's own work: its final total less the history it replayed
            children += 1
            final = {k: final[k] - replayed[k] for k in final}
        tokens = d.session.tokens
        assert (tokens.input, tokens.output, tokens.cache_read) == (
            final["input_tokens"],
            final["output_tokens"],
            final["cached_input_tokens"],
        ), path.name
    assert singles == 29 and children == 5


# --- 4. tool-router errors ----------------------------------------------------------------

SANDBOX_CREATE = (
    "exec_command failed for `/bin/zsh -lc 'go mod tidy'`: CreateProcess { message: \"Codex("
    'Sandbox(Denied { output: ExecToolCallOutput { exit_code: 1, stdout: StreamOutput { text: \\"'
    '\\", truncated_after_lines: None }, stderr: StreamOutput { text: \\"go: open /Users/soph/Li'
)
SANDBOX_DENIED = (
    "exec_command failed for `/bin/zsh -lc 'env GOCACHE=/tmp/go-build go mod tidy'`: "
    'SandboxDenied { message: "go: downloading golang.org/x/term v0.37.0\\ngo: github.com/'
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (SANDBOX_CREATE, "blocked"),
        (SANDBOX_DENIED, "blocked"),
        ("`npm test` rejected: blocked by policy", "blocked"),
        ("`rm -rf dist` rejected: policy forbids commands starting with `rm`", "blocked"),
        ("aborted by user after 12.3s", "blocked"),
        ("collab spawn failed: agent thread limit reached (max 6)", "failure"),
        ("resources/list failed: unknown MCP server 'nonexistent'", "failure"),
        (
            "write_stdin failed: stdin is closed for this session; rerun exec_command with "
            "tty=true to keep stdin open",
            "failure",
        ),
        ("write_stdin failed: Unknown process id 0", "failure"),
        (
            "failed to parse function arguments: duplicate field `yield_time_ms` at line 1 "
            "column 118",
            "failure",
        ),
        ("apply_patch verification failed: Failed to find expected lines in a.go", "failure"),
        # A command's own output that says "failed" is not a router error.
        (
            "Chunk ID: 1\nWall time: 0.1 seconds\nProcess exited with code 0\nOutput:\n"
            "build failed: retrying\nok\n",
            "success",
        ),
        # Nor does a command's output speak for its process: only the header does.
        (
            "Chunk ID: 1\nProcess exited with code 0\nOutput:\nProcess exited with code 1\n",
            "success",
        ),
        ('{"resources":[]}', "success"),
        ('{"status":{},"timed_out":true}', "success"),
    ],
)
def test_codex_router_errors(text: str, expected: str) -> None:
    assert codex_outcome(text) == expected


def test_router_errors_in_a_rollout() -> None:
    rows = [
        _meta(),
        _turn(),
        _call("c1", "exec_command", {"cmd": "go mod tidy"}),
        _call("c2", "spawn_agent", {"message": "look"}),
        _call("c3", "list_mcp_resources", {"server": "nonexistent"}),
        _output("c1", SANDBOX_CREATE),
        _output("c2", "collab spawn failed: agent thread limit reached (max 6)"),
        _output("c3", "resources/list failed: unknown MCP server 'nonexistent'"),
    ]
    calls = _by_call(_derive_rows(rows).spans)
    assert [calls[c].outcome for c in ("c1", "c2", "c3")] == ["blocked", "failure", "failure"]
    assert all(str(calls[c].attributes["skillops.result.error"]) for c in ("c1", "c2", "c3"))


# --- 5. a long-running command's exit belongs to the command ------------------------------

RUNNING = (
    "Chunk ID: f9ad1c\nWall time: 1.0016 seconds\nProcess running with session ID 34270\n"
    "Original token count: 0\nOutput:\n"
)
EXITED_1 = (
    "Chunk ID: 4f1dce\nWall time: 0.0000 seconds\nProcess exited with code 1\n"
    "Original token count: 80\nOutput:\ngo: cannot find module providing package x\n"
)


def _long_running(*, end_event: bool, poll_output: str = EXITED_1) -> dict[str, SpanDerived]:
    rows = [
        _meta(),
        _turn(),
        _call("c1", "exec_command", {"cmd": "go get x", "yield_time_ms": 1000}),
        _output("c1", RUNNING),
        _call("c2", "write_stdin", {"session_id": 34270, "chars": "", "yield_time_ms": 1000}),
        _output("c2", poll_output),
    ]
    if end_event:  # 0.118-0.128 also persist the command's end, under its own call id
        rows.append(
            {
                "type": "event_msg",
                "payload": {
                    "type": "exec_command_end",
                    "call_id": "c1",
                    "process_id": "34270",
                    "source": "unified_exec_startup",
                    "exit_code": 1,
                    "status": "failed",
                },
            }
        )
    return _by_call(_derive_rows(rows).spans)


@pytest.mark.parametrize("end_event", [False, True], ids=["0.130", "0.118"])
def test_exit_in_a_poll_belongs_to_the_command(end_event: bool) -> None:
    calls = _long_running(end_event=end_event)
    assert calls["c1"].outcome == "failure"
    assert calls["c2"].outcome == "success"
    assert "exited with code 1" in str(calls["c1"].attributes["skillops.result.error"])
    assert "skillops.result.error" not in calls["c2"].attributes
    assert calls["c1"].end is not None and calls["c1"].end >= str(calls["c2"].start)


def test_a_failed_poll_fails_and_the_command_stays_open() -> None:
    calls = _long_running(end_event=False, poll_output="write_stdin failed: stdin is closed")
    assert calls["c2"].outcome == "failure"
    assert calls["c1"].outcome is None  # still running as far as the rollout tells


def test_a_running_command_is_not_stopped_by_an_interrupt_after_it_returned() -> None:
    rows = [
        _meta(),
        _turn(),
        _call("c1", "exec_command", {"cmd": "npm run dev"}),
        _output("c1", RUNNING),
        _call("c2", "exec_command", {"cmd": "sleep 99"}),
        {"type": "event_msg", "payload": {"type": "turn_aborted", "reason": "interrupted"}},
    ]
    calls = _by_call(_derive_rows(rows).spans)
    assert calls["c1"].outcome is None and calls["c2"].outcome == "blocked"


def _header(output: str) -> str:
    return output.split("\nOutput:")[0]


def test_every_real_poll_gives_its_exit_to_the_command(corpus_home: Path) -> None:
    """Over the corpus: an exit a poll reports lands on the command that started the process."""
    polls = failed = 0
    for path in _rollouts(corpus_home):
        records = _decode(path)
        native = records[0]["payload"]["id"]
        source = SourceLines("x", str(path), native, "", file_lines(path))
        calls = _by_call(derive_session("codex", native, [source]).spans)
        arguments: dict[str, dict[str, Any]] = {}
        started: dict[str, str] = {}  # session id -> call id, as the rollout says
        for r in records:
            p = r.get("payload") if isinstance(r.get("payload"), dict) else {}
            if p.get("type") == "function_call":
                arguments[p["call_id"]] = json.loads(p["arguments"])
            if p.get("type") != "function_call_output" or p["call_id"] not in calls:
                continue
            header = _header(str(p["output"]))
            running = re.search(r"^Process running with session ID (\d+)$", header, re.M)
            exited = re.search(r"^Process exited with code (-?\d+)$", header, re.M)
            span = calls[p["call_id"]]
            if span.name != "write_stdin" and running:
                started[running.group(1)] = p["call_id"]
            elif span.name == "write_stdin":
                refused = str(p["output"]).startswith("write_stdin failed")
                assert span.outcome == ("failure" if refused else "success"), path.name
                session = str(arguments[p["call_id"]].get("session_id"))
                if exited and session in started:
                    command = calls[started.pop(session)]
                    code = int(exited.group(1))
                    assert command.outcome == ("success" if code == 0 else "failure"), path.name
                    polls += 1
                    failed += code != 0
    # The 0.118-0.130 rollouts hold 170 such polls, dozens reporting a failure.
    assert polls > 150 and failed > 20


def test_a_skill_read_carries_the_folder_it_was_read_from() -> None:
    """Deriver 13: the folder of the SKILL.md read (absolute, from the call's workdir or the
    session's cwd when relative; the advertised file's when the list names it), so two
    projects' skills of one name are told apart (reviewer F15)."""
    body = "Chunk ID: 1\nProcess exited with code 0\nOutput:\n# Deploy\n"
    d = _derive_rows(
        [
            _meta(),
            _turn(),
            _call("a", "exec_command", {"cmd": "cat /work/infra/.codex/skills/deploy/SKILL.md"}),
            _output("a", body),
            _call(
                "r", "exec_command", {"cmd": "cat .agents/skills/lint/SKILL.md", "workdir": "/p"}
            ),
            _output("r", body),
            _call("c", "exec_command", {"cmd": "sed -n 1,200p ./review/SKILL.md"}),
            _output("c", body),
            _call(
                "h", "exec_command", {"cmd": "cat ~/.codex/skills/tidy/SKILL.md", "workdir": "~"}
            ),
            _output("h", body),
        ]
    )
    folders = {
        str(s.attributes["gen_ai.tool.call.id"]): s.attributes.get("skill.directory")
        for s in d.spans
        if s.kind == "SKILL"
    }
    assert folders == {
        "a": "/work/infra/.codex/skills/deploy",
        "r": "/p/.agents/skills/lint",
        "c": "/w/review",  # relative to the session's cwd
        "h": None,  # no absolute folder can be told
    }
