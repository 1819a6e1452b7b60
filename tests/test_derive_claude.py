"""Claude Code derivation defects of issue 8, each on real-shaped records.

Subagents mirrored in ``agent_progress`` records, titles, outcomes that are not failures,
skills that never loaded, slash commands, token fields, and the one skill-body hash.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skillopsd._redact import redact_text
from skillopsd.derive import DERIVER_VERSION, SourceLines, derive_session
from skillopsd.derive._outcome import claude_outcome
from skillopsd.derive._skills import normalize_skill_body, skill_content_hash
from skillopsd.deriving import SessionDeriver
from skillopsd.events import Database, EventLog, NewEvent
from skillopsd.events.types import AnnotationAdded, PolicySet, SessionDerived, SpanDerived
from skillopsd.sources import Capturer, capture_all, expand_paths

from ._capture_helpers import CLAUDE_AGENT, CLAUDE_SESSION, FIXTURES, as_lines, file_lines
from .conftest import run_ctl

PARENT = FIXTURES / "claude_subagent_parent.jsonl"
CHILD = FIXTURES / "claude_subagent_child.jsonl"
SPAWN_CALL = "toolu_014yRHqJbrnA7VKTpNXCWZz4"


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for _offset, line in file_lines(path)]


def _mirror(child: dict[str, Any], n: int) -> dict[str, Any]:
    """A subagent record as Claude Code 2.1.12–2.1.42 mirrors it into the parent file."""
    inner = {k: child[k] for k in ("type", "message", "uuid", "timestamp") if k in child}
    for key in ("requestId", "toolUseResult"):
        if key in child:
            inner[key] = child[key]
    return {
        "parentUuid": f"progress-{n - 1}" if n else None,
        "isSidechain": False,
        "userType": "external",
        "cwd": child.get("cwd"),
        "sessionId": CLAUDE_SESSION,
        "version": "2.1.19",
        "gitBranch": "main",
        "type": "progress",
        "data": {
            "message": inner,
            "normalizedMessages": [],
            "type": "agent_progress",
            "prompt": _rows(CHILD)[0]["message"]["content"],
            "agentId": CLAUDE_AGENT,
        },
        "toolUseID": f"agent_msg_{n:04d}",
        "parentToolUseID": SPAWN_CALL,
        "uuid": f"progress-{n}",
        "timestamp": child["timestamp"],
    }


def _parent_with_progress(*, repeat: int = 1) -> list[dict[str, Any]]:
    """The real parent file with the real child's messages mirrored before the Agent result."""
    rows = _rows(PARENT)
    at = next(
        i
        for i, r in enumerate(rows)
        if r.get("type") == "user" and SPAWN_CALL in json.dumps(r.get("message"))
    )
    mirrored = [_mirror(r, n) for n, r in enumerate(_rows(CHILD) * repeat)]
    return rows[:at] + mirrored + rows[at:]


def _derive(rows_by_path: dict[str, list[dict[str, Any]]], sid: str = CLAUDE_SESSION):
    sources = [SourceLines(p, p, sid, "", as_lines(rows)) for p, rows in rows_by_path.items()]
    return derive_session("claude", sid, sources)


def _calls(spans: list[SpanDerived]) -> Counter[str]:
    return Counter(
        str(s.attributes["gen_ai.tool.call.id"])
        for s in spans
        if "gen_ai.tool.call.id" in s.attributes
    )


def _child_file() -> str:
    return f"/p/{CLAUDE_SESSION}/subagents/agent-{CLAUDE_AGENT}.jsonl"


# --- 1. subagents streamed inside the parent file -----------------------------------------


def test_subagent_mirrored_in_agent_progress_is_derived_like_its_file() -> None:
    from_file = _derive({"/p/main.jsonl": _rows(PARENT), _child_file(): _rows(CHILD)})
    # Mirrored twice over: every message and call still counts once.
    from_progress = _derive({"/p/main.jsonl": _parent_with_progress(repeat=2)})
    assert set(_calls(from_progress.spans).values()) == {1}
    assert _calls(from_progress.spans) == _calls(from_file.spans)
    assert len(_calls(from_progress.spans)) == 4  # the Agent call and its 3 WebFetch calls
    by_id = {s.span_id: s for s in from_progress.spans}
    (agent,) = [s for s in from_progress.spans if s.name == "Agent"]
    for span in from_progress.spans:
        if span.name == "WebFetch":
            node = span
            while node.parent_span_id and node.span_id != agent.span_id:
                node = by_id[node.parent_span_id]
            assert node.span_id == agent.span_id, "nested under the spawning call"
    # Same spans, same ids, same tokens as from the file: the subagent counts in the totals.
    assert {s.span_id for s in from_progress.spans} == {s.span_id for s in from_file.spans}
    assert from_progress.session.tokens == from_file.session.tokens
    parent_only = _derive({"/p/main.jsonl": _rows(PARENT)})
    assert from_progress.session.tokens.output > (parent_only.session.tokens.output or 0)
    assert from_progress.session.turns == 1 and from_progress.errors == []


def test_subagent_file_wins_over_its_mirror() -> None:
    from_file = _derive({"/p/main.jsonl": _rows(PARENT), _child_file(): _rows(CHILD)})
    both = _derive({"/p/main.jsonl": _parent_with_progress(), _child_file(): _rows(CHILD)})
    assert _calls(both.spans) == _calls(from_file.spans)
    assert set(_calls(both.spans).values()) == {1}
    assert both.session.tokens == from_file.session.tokens
    assert len(both.spans) == len(from_file.spans)


# --- 2. titles ----------------------------------------------------------------------------


def _turn(sid: str, uuid: str, text: str, ts: str = "2025-06-01T00:00:00Z") -> dict[str, Any]:
    return {
        "type": "user",
        "uuid": uuid,
        "parentUuid": None,
        "isSidechain": False,
        "sessionId": sid,
        "version": "2.0.30",
        "timestamp": ts,
        "message": {"role": "user", "content": text},
    }


def test_summary_titles_only_a_session_holding_its_leaf() -> None:
    sid = "s-title"
    rows = [
        {"type": "summary", "summary": "Other conversation", "leafUuid": "elsewhere"},
        {"type": "summary", "summary": "Fix the flaky retry test", "leafUuid": "u1"},
        {"type": "summary", "summary": "Leaf in no file", "leafUuid": "gone"},
        _turn(sid, "u1", "the retry test fails one run in ten, fix it"),
    ]
    assert _derive({"/p/s.jsonl": rows}, sid).session.title == "Fix the flaky retry test"
    foreign = [rows[0], rows[2], rows[3]]
    title = _derive({"/p/s.jsonl": foreign}, sid).session.title
    assert title == "the retry test fails one run in ten, fix it"


def test_plan_mode_session_is_titled_by_its_plan() -> None:
    sid = "s-plan"
    prompt = (
        "Implement the following plan:\n\n# Plan: Retry transient fetch errors\n\n"
        "## Context\nFetch fails on 502.\n"
    )
    row = _turn(sid, "u1", prompt)
    row["planContent"] = prompt.split("\n\n", 1)[1]
    assert _derive({"/p/s.jsonl": [row]}, sid).session.title == "Retry transient fetch errors"


def test_a_file_of_only_summaries_is_not_a_session() -> None:
    rows = [{"type": "summary", "summary": "Some title", "leafUuid": "x"}]
    assert _derive({"/p/s.jsonl": rows}, "s-sum").is_session is False
    assert _derive({"/p/s.jsonl": [*rows, _turn("s-sum", "u", "hi")]}, "s-sum").is_session


# --- 6. outcomes --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Claude requested permissions to use Bash, but you haven't granted it yet.",
        "Claude requested permissions to write to /repo/a.py, but you haven't granted it yet.",
    ],
)
def test_claude_1_0_permission_not_granted_is_blocked(text: str) -> None:
    assert claude_outcome(is_error=True, text=text, tool_use_result=None, denial_kind=None) == (
        "blocked"
    )


def _assistant(sid: str, uuid: str, mid: str, blocks: list[dict[str, Any]], ts: str) -> dict:
    return {
        "type": "assistant",
        "uuid": uuid,
        "sessionId": sid,
        "version": "2.1.19",
        "timestamp": ts,
        "message": {"id": mid, "model": "claude-opus-4-5", "role": "assistant", "content": blocks},
    }


def _results(sid: str, uuid: str, results: list[tuple[str, str, bool]], ts: str) -> dict:
    return {
        "type": "user",
        "uuid": uuid,
        "sessionId": sid,
        "timestamp": ts,
        "message": {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": c, "content": t, "is_error": e}
                for c, t, e in results
            ],
        },
        "toolUseResult": "Error: " + results[0][1],
    }


def _bash(call: str, command: str) -> dict[str, Any]:
    return {"type": "tool_use", "id": call, "name": "Bash", "input": {"command": command}}


def test_sibling_cancelled_call_never_ran() -> None:
    sid = "s-sib"
    rows = [
        _turn(sid, "u1", "run both"),
        _assistant(
            sid, "a1", "m1", [_bash("t1", "false"), _bash("t2", "ls")], "2025-06-01T00:00:01Z"
        ),
        _results(
            sid,
            "r1",
            [
                ("t1", "Exit code 1", True),
                ("t2", "<tool_use_error>Sibling tool call errored</tool_use_error>", True),
            ],
            "2025-06-01T00:00:02Z",
        ),
    ]
    spans = {
        s.attributes["gen_ai.tool.call.id"]: s
        for s in _derive({"/p": rows}, sid).spans
        if s.kind == "TOOL"
    }
    assert spans["t1"].outcome == "failure"
    assert spans["t2"].outcome is None
    assert spans["t2"].attributes["skillops.not_run"] == "sibling_error"


def test_interrupt_does_not_block_a_call_lost_to_an_earlier_compaction() -> None:
    sid = "s-lost"
    rows = [
        _turn(sid, "u1", "long job", "2025-06-01T10:00:00Z"),
        _assistant(sid, "a1", "m1", [_bash("t1", "make all")], "2025-06-01T10:00:01Z"),
        {
            "type": "system",
            "subtype": "compact_boundary",
            "uuid": "c1",
            "parentUuid": None,
            "logicalParentUuid": "a1",
            "sessionId": sid,
            "timestamp": "2025-06-01T10:02:00Z",
            "compactMetadata": {"trigger": "auto", "preTokens": 167000},
        },
        {
            **_turn(sid, "u2", "This session is being continued...", "2025-06-01T10:02:01Z"),
            "isCompactSummary": True,
        },
        _assistant(sid, "a2", "m2", [_bash("t2", "make test")], "2025-06-01T10:15:00Z"),
        _turn(sid, "u3", "[Request interrupted by user]", "2025-06-01T10:16:00Z"),
    ]
    spans = {
        s.attributes["gen_ai.tool.call.id"]: s
        for s in _derive({"/p": rows}, sid).spans
        if s.kind == "TOOL"
    }
    assert spans["t1"].outcome is None  # its result was lost to the compaction: unknown
    assert spans["t2"].outcome == "blocked"  # pending when the user interrupted


# --- 7. skills that never loaded; slash commands --------------------------------------------


@pytest.mark.parametrize(
    ("skill", "error"),
    [
        ("commit", "<tool_use_error>Unknown skill: commit</tool_use_error>"),
        ("model", "<tool_use_error>Skill model is not a prompt-based skill</tool_use_error>"),
    ],
)
def test_a_skill_that_never_loaded_is_not_a_skill_of_the_session(skill: str, error: str) -> None:
    sid = "s-unknown"
    call = {"type": "tool_use", "id": "t1", "name": "Skill", "input": {"skill": skill}}
    rows = [
        _turn(sid, "u1", "commit this"),
        _assistant(sid, "a1", "m1", [call], "2025-06-01T00:00:01Z"),
        _results(sid, "r1", [("t1", error, True)], "2025-06-01T00:00:02Z"),
    ]
    d = _derive({"/p": rows}, sid)
    assert d.session.skills == []
    (span,) = [s for s in d.spans if s.attributes.get("gen_ai.tool.call.id") == "t1"]
    assert span.kind == "TOOL" and span.outcome == "failure"
    assert span.attributes["skillops.skill.requested"] == skill
    assert d.session.tools == 1


def _command(sid: str, uuid: str, name: str, args: str = "") -> dict[str, Any]:
    text = f"<command-message>{name}</command-message>\n<command-name>/{name}</command-name>"
    if args:
        text += f"\n<command-args>{args}</command-args>"
    return _turn(sid, uuid, text)


def _meta(sid: str, uuid: str, text: str, **extra: Any) -> dict[str, Any]:
    row = _turn(sid, uuid, "")
    row["message"]["content"] = [{"type": "text", "text": text}]
    return {**row, "isMeta": True, **extra}


def test_slash_command_injected_as_a_prompt_is_a_command_skill_span() -> None:
    sid = "s-cmd"
    body = "# Write a plan\n\nBreak the work into bite-sized tasks.\n"
    rows = [
        _command(sid, "u1", "superpowers:write-plan"),
        _meta(sid, "u2", body),
        _command(sid, "u3", "model"),
        _turn(sid, "u4", "<local-command-stdout>Set model to opus</local-command-stdout>"),
        _meta(sid, "u5", "A session-scoped Stop hook is now active"),
    ]
    d = _derive({"/p": rows}, sid)
    (span,) = [s for s in d.spans if s.kind == "SKILL"]
    assert span.name == "superpowers:write-plan"
    assert span.attributes["skill.activation"] == "command"
    assert span.attributes["skill.content_hash"] == skill_content_hash(body)
    assert d.session.skills == ["superpowers:write-plan"]


# --- 9. token fields ----------------------------------------------------------------------


def test_claude_input_tokens_include_cached_input() -> None:
    sid = "s-tok"
    usage = {
        "input_tokens": 3,
        "cache_creation_input_tokens": 853,
        "cache_read_input_tokens": 11074,
        "output_tokens": 42,
    }
    row = _assistant(sid, "a1", "m1", [{"type": "text", "text": "ok"}], "2025-06-01T00:00:01Z")
    row["message"]["usage"] = usage
    d = _derive({"/p": [_turn(sid, "u1", "hi"), row]}, sid)
    (llm,) = [s for s in d.spans if s.kind == "LLM"]
    assert llm.attributes["gen_ai.usage.input_tokens"] == 3 + 853 + 11074
    assert llm.attributes["gen_ai.usage.cache_read.input_tokens"] == 11074
    assert llm.attributes["gen_ai.usage.cache_creation.input_tokens"] == 853
    assert d.session.tokens.input == 3 + 853 + 11074 and d.session.tokens.output == 42


# --- 8. one skill-body normalization ------------------------------------------------------

SECRET = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
SKILL_MD = (
    "---\r\nname: code-review\r\ndescription: Checks a deploy before it ships\r\n---\r\n\r\n"
    "# Code review\r\n\r\nAuthenticate with `GITHUB_TOKEN=" + SECRET + "`, then run\r\n"
    "`make verify` and read its summary.\r\n"
)


def _claude_skill_session(sid: str, skill_dir: Path) -> list[dict[str, Any]]:
    """The skill loaded through the Skill tool (2.1.3x trailer) and by slash activation."""
    body = SKILL_MD.split("---\r\n", 2)[2].replace("\r\n", "\n").lstrip("\n")
    call = {
        "type": "tool_use",
        "id": "toolu_skill1",
        "name": "Skill",
        "input": {"skill": "code-review", "args": "staging"},
    }
    launched = _results(sid, "r1", [("toolu_skill1", "Launching skill: code-review", False)], "t")
    launched["toolUseResult"] = {"success": True, "commandName": "code-review"}
    head = f"Base directory for this skill: {skill_dir}\n\n"
    return [
        _turn(sid, "u1", "check the deploy"),
        _assistant(sid, "a1", "m1", [call], "2025-06-01T00:00:01Z"),
        launched,
        _meta(sid, "u2", head + body + "\n\nARGUMENTS: staging", sourceToolUseID="toolu_skill1"),
        _command(sid, "u3", "code-review", "prod"),
        _meta(sid, "u4", head + body + "\n\n\nARGUMENTS: prod"),
    ]


def _codex_skill_rollout(skill_md: Path) -> list[dict[str, Any]]:
    """The real Codex rollout, its SKILL.md read pointed at this skill file."""
    rows = [json.loads(line) for _o, line in file_lines(FIXTURES / "codex_skill.jsonl")]
    for row in rows:
        payload = row.get("payload", {})
        if payload.get("type") == "function_call":
            payload["arguments"] = json.dumps({"cmd": f"cat {skill_md}", "workdir": "/w"})
        elif payload.get("type") == "function_call_output":
            payload["output"] = (
                "Chunk ID: dd2008\nWall time: 0.0000 seconds\nProcess exited with code 0\n"
                "Original token count: 80\nOutput:\n" + skill_md.read_text()
            )
    return rows


def test_skill_on_disk_and_every_load_of_it_hash_alike(tmp_path: Path) -> None:
    skill_dir = tmp_path / "skills" / "code-review"
    skill_dir.mkdir(parents=True)
    skill_md = skill_dir / "SKILL.md"
    skill_md.write_bytes(SKILL_MD.encode())
    on_disk = skill_content_hash(skill_md.read_bytes().decode())
    assert SECRET not in normalize_skill_body(SKILL_MD)

    home = tmp_path / "home"
    project = home / ".claude" / "projects" / "-w"
    project.mkdir(parents=True)
    sid = "6f2b3c1e-0000-4000-8000-00000000a001"
    claude_file = project / f"{sid}.jsonl"
    claude_file.write_text(
        "".join(json.dumps(r) + "\n" for r in _claude_skill_session(sid, skill_dir))
    )
    codex_rows = _codex_skill_rollout(skill_md)
    codex_id = codex_rows[0]["payload"]["id"]
    day = home / ".codex" / "sessions" / "2026" / "06" / "02"
    day.mkdir(parents=True)
    codex_file = day / f"rollout-2026-06-02T00-20-34-{codex_id}.jsonl"
    codex_file.write_text("".join(json.dumps(r) + "\n" for r in codex_rows))

    db = Database.open(tmp_path / "s.db")
    try:
        capture_all(Capturer(db, redact_secrets=True), list(expand_paths([home], None)))
        deriver = SessionDeriver(db)
        hashes: dict[str, str] = {}
        for key in deriver.all_sessions():
            for source in deriver.sources_of(key):
                assert SECRET.encode() not in b"".join(line for _o, line in source.lines)
            d = derive_session(key.agent, key.native_id, deriver.sources_of(key))
            for span in d.spans:
                if span.kind == "SKILL":
                    activation = str(span.attributes["skill.activation"])
                    hashes[f"{key.agent}:{activation}"] = str(span.attributes["skill.content_hash"])
    finally:
        db.close()
    assert set(hashes) == {"claude:tool", "claude:injection", "codex:path"}
    assert set(hashes.values()) == {on_disk}


_text = st.text(
    st.characters(
        min_codepoint=9, max_codepoint=0x2FF, blacklist_categories=["Cs"], blacklist_characters="\r"
    ),
    max_size=80,
)


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(_text, min_size=1, max_size=6),
    secret=st.sampled_from(["", SECRET, "password=hunter2hunter2", "sk-ant-" + "x" * 30]),
    args=st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
)
def test_normalization_is_the_same_for_a_file_and_a_captured_load(
    lines: list[str], secret: str, args: str
) -> None:
    body = "\n".join(lines) + (f"\nuse {secret} here" if secret else "")
    on_disk = "---\nname: x\n---\n" + body.replace("\n", "\r\n")
    # What capture stores: masked, and with the arguments trailer Claude appends.
    loaded = redact_text(body.strip() + f"\n\nARGUMENTS: {args}")
    assert skill_content_hash(on_disk) == skill_content_hash(loaded)
    assert normalize_skill_body(normalize_skill_body(on_disk)) == normalize_skill_body(on_disk)


# --- rederive: a database derived at version 1 is corrected -------------------------------


def _v1_session(sid: str, native: str, **fields: Any) -> SessionDerived:
    """What deriver version 1 stored for a session (values observed running version 1)."""
    return SessionDerived(
        session_id=sid, agent="claude", native_session_id=native, deriver_version=1, **fields
    )


def test_rederive_corrects_sessions_derived_at_version_1(tmp_path: Path) -> None:
    home = tmp_path / "home"
    project = home / ".claude" / "projects" / "-w"
    project.mkdir(parents=True)
    (project / f"{CLAUDE_SESSION}.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in _parent_with_progress())
    )
    only_summaries = "0b5e2a57-0000-4000-8000-00000000b001"
    (project / f"{only_summaries}.jsonl").write_text(
        json.dumps({"type": "summary", "summary": "Other conversation", "leafUuid": "zz"}) + "\n"
    )
    titled = "0b5e2a57-0000-4000-8000-00000000c001"
    (project / f"{titled}.jsonl").write_text(
        json.dumps({"type": "summary", "summary": "Other conversation", "leafUuid": "zz"})
        + "\n"
        + json.dumps(_turn(titled, "u1", "rename the flag"))
        + "\n"
    )
    path = tmp_path / "s.db"
    db = Database.open(path)
    try:
        capture_all(Capturer(db, redact_secrets=True), list(expand_paths([home], None)))
        keys = {k.native_id: k.session_id for k in SessionDeriver(db).all_sessions()}
        main_id = keys[CLAUDE_SESSION]
        kept = [
            NewEvent(
                "annotation:a1",
                AnnotationAdded(annotation_id="a1", session_id=main_id, label="good", author="me"),
            ),
            NewEvent(
                "policy:verdict",
                PolicySet(name="verdict", values={"failure_share": 0.5}, author="me"),
            ),
        ]
        old = [
            # Version 1 read no agent_progress: only the Agent call, no subagent tokens.
            _v1_session(main_id, CLAUDE_SESSION, title="how do i do /remote-control", tools=1),
            _v1_session(keys[only_summaries], only_summaries, title="Other conversation"),
            _v1_session(keys[titled], titled, title="Other conversation", turns=1),
        ]
        log = EventLog(db)
        log.append([*kept, *(NewEvent(f"session:{s.session_id}", s) for s in old)])
        with db.read():
            before = [
                (e.position, e.hash) for e in log.read(types=["AnnotationAdded", "PolicySet"])
            ]
    finally:
        db.close()

    result = run_ctl("--db", str(path), "rederive", "--json")
    assert result.returncode == 0, result.stderr
    listed = run_ctl("--db", str(path), "sessions", "--json")
    assert listed.returncode == 0, listed.stderr
    sessions = {s["native_session_id"]: s for s in json.loads(listed.stdout)}
    assert set(sessions) == {CLAUDE_SESSION, titled}  # the summaries-only file is gone
    main = sessions[CLAUDE_SESSION]
    assert main["tools"] == 4 and main["deriver_version"] == DERIVER_VERSION
    assert sessions[titled]["title"] == "rename the flag"
    fresh = _derive({"/p/main.jsonl": _parent_with_progress()})
    assert main["tokens"]["input"] == fresh.session.tokens.input
    db = Database.open(path)
    try:
        with db.read():
            after = [
                (e.position, e.hash)
                for e in EventLog(db).read(types=["AnnotationAdded", "PolicySet"])
            ]
    finally:
        db.close()
    assert after == before  # annotations and policy untouched
    again = run_ctl("--db", str(path), "rederive", "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["appended"] == 0


PLACEHOLDER_MD = (
    "---\nname: deploy\ndescription: Deploys\n---\n\n"
    "# Deploy\n\nDeploy the service to the environment the user named: $ARGUMENTS\n"
    "Then check its health on the dashboard.\n"
)


def test_a_skill_loaded_with_arguments_in_its_placeholder_is_one_version_without_them(
    tmp_path: Path,
) -> None:
    """Claude Code writes a skill's $ARGUMENTS already replaced by what the user typed: every
    argument was a new "version" of an unchanged skill, and the user's words were stored as a
    skill body (and sent to a team server as one; review H1)."""
    skill_dir = tmp_path / "skills" / "deploy"
    skill_dir.mkdir(parents=True)
    (skill_dir / "SKILL.md").write_text(PLACEHOLDER_MD)
    on_disk = skill_content_hash(PLACEHOLDER_MD)
    body = PLACEHOLDER_MD.split("---\n", 2)[2].lstrip("\n")
    head = f"Base directory for this skill: {skill_dir}\n\n"
    private = [
        "prod-eu with the customer list in /home/dev/acme-churn-2026.csv",
        "prod, tell Dana the layoffs go out Friday",
    ]
    home = tmp_path / "home"
    project = home / ".claude" / "projects" / "-w"
    project.mkdir(parents=True)
    for n, args in enumerate(["staging", *private]):
        sid = f"6f2b3c1e-0000-4000-8000-00000000b00{n}"
        rows = [
            _command(sid, "u1", "deploy", args),
            _meta(sid, "u2", head + body.replace("$ARGUMENTS", args)),
        ]
        if n == 2:  # the model's Skill call, its args in the body too
            call = {
                "type": "tool_use",
                "id": "toolu_d",
                "name": "Skill",
                "input": {"skill": "deploy", "args": args},
            }
            rows = [
                _turn(sid, "u1", "deploy it"),
                _assistant(sid, "a1", "m1", [call], "2025-06-01T00:00:01Z"),
                _meta(
                    sid, "u2", head + body.replace("$ARGUMENTS", args), sourceToolUseID="toolu_d"
                ),
            ]
        (project / f"{sid}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    # A skill without the placeholder gets the arguments as a trailer: its body stays whole,
    # even where the argument's words are in it ("staging").
    plain = "# Deploy\n\nDeploy to staging first.\n"
    sid = "6f2b3c1e-0000-4000-8000-00000000b009"
    rows = [
        _command(sid, "u1", "deploy", "staging"),
        _meta(sid, "u2", head + plain + "\n\nARGUMENTS: staging"),
    ]
    (project / f"{sid}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    db_file = tmp_path / "s.db"
    done = run_ctl("--db", str(db_file), "ingest", str(home))
    assert done.returncode == 0, done.stderr
    versions = json.loads(
        run_ctl("--db", str(db_file), "skill", "versions", "deploy", "--json").stdout
    )["versions"]
    hashes = {v["content_hash"] for v in versions}
    shown = [(v["tag"], v["content_hash"][:8]) for v in versions]
    assert hashes == {on_disk, skill_content_hash(plain)}, shown
    db = Database.open(db_file)
    try:
        bodies = [
            e.payload.body  # type: ignore[attr-defined]
            for e in EventLog(db).read(types=["SkillVersionCreated"])
        ]
    finally:
        db.close()
    assert len(bodies) == 2 and not any(p in b for p in private for b in bodies), bodies
    assert any("$ARGUMENTS" in b for b in bodies)
    assert any("Deploy to staging first." in b for b in bodies)
