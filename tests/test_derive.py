"""The deriver on real transcripts: parity with the tool calls, nesting, outcomes, skills."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skillopsd.derive import SourceLines, derive_session, session_id
from skillopsd.derive._outcome import claude_outcome, codex_exec_end, codex_outcome
from skillopsd.derive._skills import content_hash, injected_body, unsubstituted
from skillopsd.events.types import SpanDerived, TokenUsage

from ._capture_helpers import (
    CLAUDE_AGENT,
    CLAUDE_SESSION,
    FIXTURES,
    as_lines,
    extract_corpus,
    file_lines,
)


def _source(path: Path, session: str, parent: str = "", source_id: str | None = None):
    return SourceLines(source_id or path.name, str(path), session, parent, file_lines(path))


def _records(path: Path) -> list[dict]:
    out = []
    for _offset, line in file_lines(path):
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            decoder, text, pos = json.JSONDecoder(), line.decode(), 0
            while pos < len(text):
                value, pos = decoder.raw_decode(text, pos)
                out.append(value)
    return out


def _claude_call_ids(path: Path) -> set[str]:
    ids = set()
    for r in _records(path):
        if r.get("type") == "assistant" and isinstance(r["message"].get("content"), list):
            ids |= {b["id"] for b in r["message"]["content"] if b.get("type") == "tool_use"}
    return ids


def _codex_call_ids(path: Path, thread: str) -> set[str]:
    """Call ids of a rollout, less a forked child's replay of its parent (reference, §4)."""
    records = _records(path)
    metas = [i for i, r in enumerate(records) if r.get("type") == "session_meta"]
    if len(metas) > 1:
        own = next(
            i
            for i in range(metas[1], len(records))
            if isinstance(records[i].get("payload"), dict)
            and str(records[i]["payload"].get("turn_id", "")) >= thread
        )
        records = records[: metas[1]] + records[own:]
    ids = set()
    for r in records:
        p = r.get("payload") if isinstance(r.get("payload"), dict) else {}
        if r.get("type") == "response_item" and p.get("type") in (
            "function_call",
            "custom_tool_call",
        ):
            ids.add(p["call_id"])
        elif r.get("type") == "response_item" and p.get("type") == "web_search_call":
            ids.add(p.get("id") or f"web_search#{sum(i.startswith('web_search#') for i in ids)}")
    return ids


def _check_tree(spans: list[SpanDerived]) -> dict[str, SpanDerived]:
    by_id = {s.span_id: s for s in spans}
    assert len(by_id) == len(spans), "span ids are unique"
    assert len({s.trace_id for s in spans}) <= 1, "one trace per session"
    for span in spans:
        assert span.parent_span_id is None or span.parent_span_id in by_id
        if span.kind == "CHAIN":
            parent = by_id.get(span.parent_span_id or "")
            assert parent is None or parent.kind in ("TOOL", "SKILL")
        if span.kind == "LLM":
            assert by_id[span.parent_span_id or ""].kind == "CHAIN"
        if span.kind in ("TOOL", "SKILL"):
            assert by_id[span.parent_span_id or ""].kind in ("LLM", "CHAIN")
            assert span.attributes.get("gen_ai.tool.call.id") or span.attributes.get(
                "skill.activation"
            ) in ("injection", "command")
    return by_id


def _call_spans(spans: list[SpanDerived]) -> Counter[str]:
    """Spans per call id; web searches without an id are numbered in order, as the test does."""
    out: Counter[str] = Counter()
    searches = 0
    for s in spans:
        call = s.attributes.get("gen_ai.tool.call.id")
        if call is None:
            continue
        if str(call).startswith("web_search:"):
            call = f"web_search#{searches}"
            searches += 1
        out[str(call)] += 1
    return out


def _outcomes(spans: list[SpanDerived]) -> dict[str | None, int]:
    return dict(Counter(s.outcome for s in spans if s.kind in ("TOOL", "SKILL")))


def _first(path: Path, key: str) -> str:
    return next(r[key] for r in _records(path) if r.get(key))


CLAUDE_FIXTURES = {
    # fixture: (outcomes, skills, activation)
    "claude_skill": ({"success": 1}, ["slugify-title"], "tool"),
    "claude_reasoning": ({"success": 1}, ["regex-rules"], "tool"),
    # qvr audit status | head: no sign either way, unknown (review H3)
    "claude_injected_skill": (
        {"success": 2, "blocked": 1, None: 1},
        ["optimize-skill-loop"],
        "injection",
    ),
}
CODEX_FIXTURES = {
    "codex_skill": ({"success": 1}, ["code-review"]),
    "codex_narrated_skill": ({"success": 3}, ["skillops-sql"]),
    "codex_worktree_skill": ({"success": 1}, ["regex-rules"]),
}


@pytest.mark.parametrize("name", sorted(CLAUDE_FIXTURES))
def test_claude_fixtures(name: str) -> None:
    path = FIXTURES / f"{name}.jsonl"
    native = _first(path, "sessionId")
    d = derive_session("claude", native, [_source(path, native)])
    _check_tree(d.spans)
    calls = _call_spans(d.spans)
    assert set(calls) == _claude_call_ids(path) and set(calls.values()) <= {1}
    outcomes, skills, activation = CLAUDE_FIXTURES[name]
    assert _outcomes(d.spans) == outcomes
    assert d.session.skills == skills
    (skill,) = [s for s in d.spans if s.kind == "SKILL"]
    assert skill.attributes["skill.activation"] == activation
    # The hash is of the body the agent loaded: the isMeta injection, trailer stripped.
    bodies = [
        injected_body(
            r["message"]["content"][0]["text"]
            if isinstance(r["message"]["content"], list)
            else r["message"]["content"]
        )
        for r in _records(path)
        if r.get("isMeta") and "Base directory for this skill" in str(r)
    ]
    assert skill.attributes["skill.content_hash"] == content_hash(bodies[0][1])
    assert d.session.session_id == session_id("claude", native)
    assert d.session.tokens.input is not None and d.session.tokens.output is not None
    assert d.errors == []


@pytest.mark.parametrize("name", sorted(CODEX_FIXTURES))
def test_codex_fixtures(name: str) -> None:
    path = FIXTURES / f"{name}.jsonl"
    native = _records(path)[0]["payload"]["id"]
    d = derive_session("codex", native, [_source(path, native)])
    _check_tree(d.spans)
    calls = _call_spans(d.spans)
    assert set(calls) == _codex_call_ids(path, native) and set(calls.values()) <= {1}
    outcomes, skills = CODEX_FIXTURES[name]
    assert _outcomes(d.spans) == outcomes
    assert d.session.skills == skills
    (skill,) = [s for s in d.spans if s.kind == "SKILL"]
    assert skill.attributes["skill.activation"] == "path"
    assert d.session.tokens.cache_creation is None  # Codex does not report it: null, not 0
    assert d.session.tokens.input and d.session.tokens.output


def test_same_skill_body_hashes_alike_across_agents() -> None:
    """regex-rules loaded by Claude (injection) and by Codex (SKILL.md read): one version."""
    hashes = {}
    for name, agent in (("claude_reasoning", "claude"), ("codex_worktree_skill", "codex")):
        path = FIXTURES / f"{name}.jsonl"
        native = (
            _first(path, "sessionId") if agent == "claude" else _records(path)[0]["payload"]["id"]
        )
        d = derive_session(agent, native, [_source(path, native)])
        (skill,) = [s for s in d.spans if s.kind == "SKILL"]
        hashes[agent] = skill.attributes["skill.content_hash"]
    assert hashes["claude"] == hashes["codex"]


def test_claude_subagent_nests_under_its_spawning_call() -> None:
    parent = FIXTURES / "claude_subagent_parent.jsonl"
    child = FIXTURES / "claude_subagent_child.jsonl"
    sources = [
        SourceLines("p", f"/p/{CLAUDE_SESSION}.jsonl", CLAUDE_SESSION, "", file_lines(parent)),
        SourceLines(
            "c",
            f"/p/{CLAUDE_SESSION}/subagents/agent-{CLAUDE_AGENT}.jsonl",
            CLAUDE_SESSION,
            "",
            file_lines(child),
        ),
    ]
    d = derive_session("claude", CLAUDE_SESSION, sources)
    by_id = _check_tree(d.spans)
    assert set(_call_spans(d.spans)) == _claude_call_ids(parent) | _claude_call_ids(child)
    (agent_call,) = [s for s in d.spans if s.name == "Agent"]
    assert agent_call.attributes["gen_ai.agent.id"] == CLAUDE_AGENT
    child_calls = {
        s.span_id
        for s in d.spans
        if s.attributes.get("gen_ai.tool.call.id") in _claude_call_ids(child)
    }
    assert child_calls
    for span_id in child_calls:  # every subagent call sits in the Agent call's subtree
        node = by_id[span_id]
        while node.parent_span_id and node.span_id != agent_call.span_id:
            node = by_id[node.parent_span_id]
        assert node.span_id == agent_call.span_id
    assert d.session.turns == 1  # the subagent's turn is not a turn of the session


def test_claude_inline_sidechain_of_1_0_nests_by_prompt() -> None:
    """1.0.x: the subagent's records are inline with isSidechain, linked by the Task prompt."""
    sid = "s-inline"
    rows = [
        {
            "type": "user",
            "uuid": "u1",
            "parentUuid": None,
            "isSidechain": False,
            "sessionId": sid,
            "timestamp": "2025-01-01T00:00:00Z",
            "message": {"role": "user", "content": "go"},
        },
        {
            "type": "assistant",
            "uuid": "a1",
            "parentUuid": "u1",
            "isSidechain": False,
            "sessionId": sid,
            "timestamp": "2025-01-01T00:00:01Z",
            "message": {
                "id": "m1",
                "model": "claude-x",
                "content": [
                    {
                        "type": "tool_use",
                        "id": "t1",
                        "name": "Task",
                        "input": {"prompt": "find the bug", "description": "d"},
                    }
                ],
            },
        },
        {
            "type": "user",
            "uuid": "s1",
            "parentUuid": None,
            "isSidechain": True,
            "sessionId": sid,
            "timestamp": "2025-01-01T00:00:02Z",
            "message": {"role": "user", "content": "find the bug"},
        },
        {
            "type": "assistant",
            "uuid": "s2",
            "parentUuid": "s1",
            "isSidechain": True,
            "sessionId": sid,
            "timestamp": "2025-01-01T00:00:03Z",
            "message": {
                "id": "m2",
                "model": "claude-x",
                "content": [
                    {"type": "tool_use", "id": "t2", "name": "Bash", "input": {"command": "false"}}
                ],
            },
        },
        {
            "type": "user",
            "uuid": "s3",
            "parentUuid": "s2",
            "isSidechain": True,
            "sessionId": sid,
            "timestamp": "2025-01-01T00:00:04Z",
            "message": {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t2",
                        "content": "Exit code 1\n",
                        "is_error": True,
                    }
                ],
            },
        },
        {
            "type": "user",
            "uuid": "u2",
            "parentUuid": "a1",
            "isSidechain": False,
            "sessionId": sid,
            "timestamp": "2025-01-01T00:00:05Z",
            "message": {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "found it"}],
            },
        },
    ]
    lines = as_lines(rows)
    d = derive_session("claude", sid, [SourceLines("x", "/p/s-inline.jsonl", sid, "", lines)])
    by_id = _check_tree(d.spans)
    (task,) = [s for s in d.spans if s.name == "Task"]
    (bash,) = [s for s in d.spans if s.name == "Bash"]
    assert bash.outcome == "failure" and task.outcome == "success"
    chain = by_id[by_id[bash.parent_span_id].parent_span_id]
    assert chain.kind == "CHAIN" and chain.parent_span_id == task.span_id


def test_deriving_twice_is_byte_identical() -> None:
    path = FIXTURES / "claude_injected_skill.jsonl"
    native = _first(path, "sessionId")
    a = derive_session("claude", native, [_source(path, native)])
    b = derive_session("claude", native, [_source(path, native)])
    assert msgspec.msgpack.encode(a) == msgspec.msgpack.encode(b)


@pytest.fixture(scope="module")
def corpus_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return extract_corpus(tmp_path_factory.mktemp("corpus-derive"))


def test_every_corpus_session_has_one_span_per_call(corpus_home: Path) -> None:
    sessions = 0
    totals: Counter[str | None] = Counter()
    for dirpath, _dirs, files in os.walk(corpus_home):
        for name in files:
            path = Path(dirpath) / name
            if ".claude" in path.parts:
                native = _first(path, "sessionId")
                d = derive_session("claude", native, [_source(path, native)])
                expected = _claude_call_ids(path)
            else:
                native = _records(path)[0]["payload"]["id"]
                d = derive_session("codex", native, [_source(path, native)])
                expected = _codex_call_ids(path, native)
            _check_tree(d.spans)
            calls = _call_spans(d.spans)
            assert set(calls) == expected, path.name
            assert all(n == 1 for n in calls.values()), path.name
            for span in d.spans:
                if span.kind == "LLM":
                    tokens = [v for k, v in span.attributes.items() if k.startswith("gen_ai.usage")]
                    assert all(isinstance(v, int) for v in tokens)
            totals.update(s.outcome for s in d.spans if s.kind in ("TOOL", "SKILL"))
            sessions += 1
    assert sessions == 82
    # The corpus holds rejected, interrupted and failing calls, and cut-off ones.
    assert totals["blocked"] > 0 and totals["failure"] > 0 and totals[None] > 0
    assert totals["success"] > 10 * totals["failure"]


# --- outcome wordings, every era -----------------------------------------------------------

REJECT_2X = (
    "The user doesn't want to proceed with this tool use. The tool use was rejected (eg. if it "
    "was a file edit, the new_string was NOT written to the file). STOP what you are doing and "
    "wait for the user to tell you how to proceed."
)


@pytest.mark.parametrize(
    ("text", "is_error", "tur", "denial", "expected"),
    [
        (REJECT_2X, True, "Error: " + REJECT_2X, None, "blocked"),
        (
            REJECT_2X + " To tell you how to proceed, the user said:\nuse yarn",
            True,
            "User rejected tool use",
            None,
            "blocked",
        ),
        (
            REJECT_2X + "\nNote: The user's next message may contain a correction",
            True,
            "User rejected tool use",
            None,
            "blocked",
        ),
        (
            "The user doesn't want to take this action right now. STOP what you are doing.",
            True,
            None,
            None,
            "blocked",
        ),
        (
            "[Request interrupted by user for tool use]",
            True,
            "Error: [Request interrupted by user for tool use]",
            None,
            "blocked",
        ),
        (
            "Permission to use Bash with command rm -rf / has been denied.",
            True,
            None,
            "permission-rule",
            "blocked",
        ),
        (
            "Permission to use Bash with command rm -rf / has been denied.",
            True,
            None,
            None,
            "blocked",
        ),
        ("Operation stopped by hook: no pushes on Friday", True, None, None, "blocked"),
        ("PreToolUse:Bash hook error: [guard.sh]: rm is not allowed", True, None, None, "blocked"),
        # Claude Code refusing a long sleep itself (real corpus wording): it never ran.
        (
            "<tool_use_error>Blocked: sleep 30 followed by: gh pr view 66 --json x. To wait for"
            " a condition, use Monitor with an until-loop</tool_use_error>",
            True,
            None,
            None,
            "blocked",
        ),
        # ... but a command's own output that says "Blocked:" is its output.
        ("Blocked: 3 tests skipped\nExit code 1", True, None, None, "failure"),
        ("Exit code 1\nFAIL", True, "Error: Exit code 1", None, "failure"),
        ("Exit code 128\nfatal: not a git repository", False, None, None, "failure"),
        (
            "<tool_use_error>File has not been read yet. Read it first</tool_use_error>",
            True,
            "Error: File has not been read yet.",
            None,
            "failure",
        ),
        ("<tool_use_error>Unknown skill: nope</tool_use_error>", True, None, None, "failure"),
        ("<tool_use_error>Sibling tool call errored</tool_use_error>", True, None, None, "failure"),
        (
            "<tool_use_error>Cancelled: parallel tool call Bash(x) errored</tool_use_error>",
            True,
            None,
            None,
            "failure",
        ),
        ("EISDIR: illegal operation on a directory, read", True, None, None, "failure"),
        ("File content (31125 tokens) exceeds maximum allowed tokens", True, None, None, "failure"),
        (
            "Launching skill: slugify-title",
            False,
            {"success": True, "commandName": "x"},
            None,
            "success",
        ),
        ("ok", False, None, None, "success"),  # is_error absent: success
        ("Exit code 0\nfine", False, None, None, "success"),
    ],
)
def test_claude_outcome_wordings(
    text: str, is_error: bool, tur: object, denial: str | None, expected: str
) -> None:
    assert (
        claude_outcome(is_error=is_error, text=text, tool_use_result=tur, denial_kind=denial)
        == expected
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("exec command rejected by user", "blocked"),
        ("patch rejected by user", "blocked"),
        ("This action was rejected due to unacceptable risk.", "blocked"),
        ("sandbox denied exec error: operation not permitted", "blocked"),
        (
            "Chunk ID: 1\nWall time: 0.1 seconds\nProcess exited with code 2\nOutput:\nboom",
            "failure",
        ),
        ("Process exited with code 0\nOutput:\nfine", "success"),
        ("Exit code: 1\nWall time: 0.2 seconds\nOutput:\nerr", "failure"),
        ("Exit code: 0\nOutput:\nDone!", "success"),
        ("apply_patch verification failed: Failed to find expected lines", "failure"),
        ('{"output":"x","metadata":{"exit_code":3,"duration_seconds":0.1}}', "failure"),
        ('{"output":"x","metadata":{"exit_code":0,"duration_seconds":0.1}}', "success"),
        ("Plan updated", "success"),
    ],
)
def test_codex_outcome_wordings(text: str, expected: str) -> None:
    assert codex_outcome(text) == expected


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        ("declined", -1, "blocked"),
        ("failed", 1, "failure"),
        ("completed", 0, "success"),
        ("completed", 2, "failure"),
        (None, None, None),
    ],
)
def test_codex_exec_command_end(status: str | None, code: int | None, expected: str | None) -> None:
    assert codex_exec_end(status, code) == expected


def test_codex_structured_ends_and_interrupts_win_over_text() -> None:
    thread = "019f0000-0000-7000-8000-000000000001"
    rows = [
        {"type": "session_meta", "payload": {"id": thread, "cwd": "/w"}},
        {
            "type": "turn_context",
            "payload": {"turn_id": "019f0000-0000-7000-8000-0000000000aa", "model": "gpt-5"},
        },
        {
            "type": "response_item",
            "payload": {
                "type": "function_call",
                "name": "exec_command",
                "arguments": '{"cmd":"rm x"}',
                "call_id": "c1",
            },
        },
        {
            "type": "response_item",
            "payload": {
                "type": "custom_tool_call",
                "name": "apply_patch",
                "input": "*** Begin Patch",
                "call_id": "c2",
            },
        },
        {
            "type": "response_item",
            "payload": {
                "type": "function_call",
                "name": "exec_command",
                "arguments": '{"cmd":"sleep 99"}',
                "call_id": "c3",
            },
        },
        {
            "type": "response_item",
            "payload": {
                "type": "web_search_call",
                "status": "completed",
                "action": {"type": "search", "query": "q"},
            },
        },
        {
            "type": "response_item",
            "payload": {
                "type": "function_call_output",
                "call_id": "c1",
                "output": "exec command rejected by user",
            },
        },
        {
            "type": "event_msg",
            "payload": {
                "type": "exec_command_end",
                "call_id": "c1",
                "status": "declined",
                "exit_code": -1,
            },
        },
        {
            "type": "response_item",
            "payload": {
                "type": "custom_tool_call_output",
                "call_id": "c2",
                "output": "Exit code: 0",
            },
        },
        {
            "type": "event_msg",
            "payload": {"type": "patch_apply_end", "call_id": "c2", "success": False},
        },
        {"type": "event_msg", "payload": {"type": "turn_aborted", "reason": "interrupted"}},
    ]
    lines = as_lines(rows)
    d = derive_session("codex", thread, [SourceLines("x", "/r.jsonl", thread, "", lines)])
    _check_tree(d.spans)
    by_call = {s.attributes.get("gen_ai.tool.call.id"): s for s in d.spans if s.kind == "TOOL"}
    assert by_call["c1"].outcome == "blocked"
    assert by_call["c2"].outcome == "failure"
    assert by_call["c3"].outcome == "blocked"  # pending when the user aborted the turn
    (search,) = [s for s in d.spans if s.name == "web_search"]
    assert search.outcome == "success" and search.attributes["gen_ai.tool.call.id"]


def test_claude_compaction_summary_is_not_a_turn() -> None:
    sid = "s-compact"
    rows = [
        {
            "type": "user",
            "uuid": "u1",
            "sessionId": sid,
            "timestamp": "2025-01-01T00:00:00Z",
            "message": {"role": "user", "content": "refactor it"},
        },
        {
            "type": "assistant",
            "uuid": "a1",
            "sessionId": sid,
            "timestamp": "2025-01-01T00:00:01Z",
            "message": {
                "id": "m1",
                "model": "claude-x",
                "content": [{"type": "text", "text": "ok"}],
                "usage": {"input_tokens": 10, "output_tokens": 5},
            },
        },
        {
            "type": "system",
            "subtype": "compact_boundary",
            "uuid": "c1",
            "parentUuid": None,
            "logicalParentUuid": "a1",
            "sessionId": sid,
            "timestamp": "2025-01-01T00:00:02Z",
            "compactMetadata": {"trigger": "auto", "preTokens": 160000},
        },
        {
            "type": "user",
            "uuid": "u2",
            "parentUuid": "c1",
            "isCompactSummary": True,
            "sessionId": sid,
            "timestamp": "2025-01-01T00:00:03Z",
            "message": {
                "role": "user",
                "content": "This session is being continued from a previous conversation...",
            },
        },
        {
            "type": "assistant",
            "uuid": "a2",
            "sessionId": sid,
            "timestamp": "2025-01-01T00:00:04Z",
            "message": {
                "id": "m2",
                "model": "claude-x",
                "content": [{"type": "text", "text": "go"}],
                "usage": {"input_tokens": 7, "output_tokens": 3},
            },
        },
    ]
    lines = as_lines(rows)
    d = derive_session("claude", sid, [SourceLines("x", "/p/s.jsonl", sid, "", lines)])
    assert d.session.turns == 1
    assert d.session.tokens.input == 17 and d.session.tokens.output == 8
    assert d.session.tokens.cache_read is None


def test_every_claude_skill_call_in_the_corpus_has_the_hash_of_its_body(corpus_home: Path) -> None:
    """Folder skills come with "Base directory…", bundled ones bare: both are hashed."""
    checked = 0
    for path in sorted((corpus_home / ".claude").rglob("*.jsonl")):
        records = _records(path)
        bodies = {}
        args: dict[str, str] = {}
        for r in records:
            content = (r.get("message") or {}).get("content")
            for block in content if isinstance(content, list) else []:
                if isinstance(block, dict) and block.get("name") == "Skill":
                    args[block.get("id", "")] = (block.get("input") or {}).get("args") or ""
            if r.get("isMeta") and r.get("sourceToolUseID"):
                content = r["message"]["content"]
                text = (
                    content
                    if isinstance(content, str)
                    else "".join(b.get("text", "") for b in content if isinstance(b, dict))
                )
                bodies[r["sourceToolUseID"]] = text
        if not bodies:
            continue
        native = _first(path, "sessionId")
        d = derive_session("claude", native, [_source(path, native)])
        for span in d.spans:
            call = span.attributes.get("gen_ai.tool.call.id")
            if span.kind == "SKILL" and call in bodies:
                text = bodies[call]
                body = injected_body(text)[1] if injected_body(text) else text
                # Its arguments, where the skill's $ARGUMENTS held them, are put back.
                body = unsubstituted(text, body, args.get(call))
                assert span.attributes["skill.content_hash"] == content_hash(body)
                checked += 1
    assert checked >= 5


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        ({"Err": "timeout"}, "failure"),
        ({"Ok": {"content": [], "isError": True}}, "failure"),
        ({"Ok": {"content": []}}, "success"),
        (None, None),
    ],
)
def test_codex_mcp_tool_call_end(result: object, expected: str | None) -> None:
    from skillopsd.derive._outcome import codex_mcp_end

    assert codex_mcp_end(result) == expected


def test_claude_turn_stopped_by_a_hook_blocks_its_pending_calls() -> None:
    sid = "s-hook"
    rows = [
        {
            "type": "user",
            "uuid": "u1",
            "sessionId": sid,
            "timestamp": "2025-01-01T00:00:00Z",
            "message": {"role": "user", "content": "push it"},
        },
        {
            "type": "assistant",
            "uuid": "a1",
            "sessionId": sid,
            "timestamp": "2025-01-01T00:00:01Z",
            "message": {
                "id": "m1",
                "model": "claude-x",
                "content": [
                    {
                        "type": "tool_use",
                        "id": "t1",
                        "name": "Bash",
                        "input": {"command": "git push"},
                    },
                    {"type": "tool_use", "id": "t2", "name": "Bash", "input": {"command": "ls"}},
                ],
            },
        },
        {
            "type": "user",
            "uuid": "u2",
            "sessionId": sid,
            "timestamp": "2025-01-01T00:00:02Z",
            "message": {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "t2", "content": "a\nb"}],
            },
        },
        {
            "type": "user",
            "uuid": "u3",
            "sessionId": sid,
            "timestamp": "2025-01-01T00:00:03Z",
            "message": {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Operation stopped by hook: no pushes on Friday"}
                ],
            },
        },
    ]
    d = derive_session("claude", sid, [SourceLines("x", "/p/s.jsonl", sid, "", as_lines(rows))])
    outcomes = {s.attributes["gen_ai.tool.call.id"]: s.outcome for s in d.spans if s.kind == "TOOL"}
    assert outcomes == {"t1": "blocked", "t2": "success"}
    assert d.session.turns == 1


def _with_ints(value: object, number: int) -> object:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return number
    if isinstance(value, dict):
        return {k: _with_ints(v, number) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_ints(v, number) for v in value]
    return value


@given(
    number=st.one_of(
        st.integers(min_value=2**53, max_value=2**200),
        st.integers(min_value=-(2**200), max_value=-1),
    )
)
@settings(max_examples=10, deadline=None)
def test_any_integer_in_any_record_leaves_a_storable_derivation(number: int) -> None:
    # JSON numbers are unbounded, the log's encoding is 64-bit: a token count of 2**70 in one
    # record stopped every session from being derived, on every start.
    for name in (*sorted(CLAUDE_FIXTURES), *sorted(CODEX_FIXTURES)):
        path = FIXTURES / f"{name}.jsonl"
        agent = "claude" if name.startswith("claude") else "codex"
        lines = [
            (offset, json.dumps(_with_ints(json.loads(line), number)).encode())
            for offset, line in file_lines(path)
        ]
        native = "n"
        d = derive_session(agent, native, [SourceLines(name, str(path), native, "", lines)])
        for event in (d.session, *d.spans, *d.errors):
            msgspec.msgpack.decode(msgspec.msgpack.encode(event))
        assert d.spans, name
        # None of those numbers is a token count: no usage is reported, none is made up.
        assert d.session.tokens == TokenUsage(), name
