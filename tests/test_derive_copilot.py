"""GitHub Copilot CLI: the store, and derivation checked against the real sessions.

The table below was made by reading the raw files (``tool.execution_start`` /
``tool.execution_complete`` pairs, each shell output's last line, ``assistant.message``
``outputTokens`` and ``session.shutdown`` ``modelMetrics``), not by running the deriver.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skillopsd.derive import Derivation, SourceLines, derive_session, skill_content_hash
from skillopsd.derive.copilot import TOKENS_FROM_SHUTDOWN, TOKENS_LEGACY
from skillopsd.deriving import SessionDeriver
from skillopsd.events import Database
from skillopsd.events.types import SpanDerived, TokenUsage
from skillopsd.sources import STORES, Capturer, resolve_roots
from skillopsd.sources._store import decode_head

from ._capture_helpers import as_lines, captured, file_lines
from .conftest import SHARED

COPILOT = SHARED / "corpus" / "agents" / "copilot"
SID = "5e55a0b1-0000-4000-8000-000000000001"


class Expected:
    def __init__(
        self,
        turns: int,
        outcomes: dict[str | None, int],
        tokens: tuple[int | None, int | None, int | None, int | None],
        subagents: int = 0,
    ) -> None:
        self.turns = turns
        self.outcomes = outcomes
        self.tokens = TokenUsage(
            input=tokens[0], output=tokens[1], cache_read=tokens[2], cache_creation=tokens[3]
        )
        self.subagents = subagents


# file -> turns, call outcomes, tokens (input incl. cached, output, cache read, cache write).
# Input and cache counts exist only in session.shutdown: missing when a run has none.
CORPUS = {
    "1afc31c8": Expected(1, {}, (0, 0, 0, 0)),
    "2426852d": Expected(1, {}, (12847, 101, 0, 0)),
    "31b0eadb": Expected(1, {"success": 2}, (40503, 187, 31836, 0)),
    "487fbe81": Expected(1, {}, (15517, 45, 0, 0)),
    "7f268ba1": Expected(1, {}, (15528, 39, 0, 0)),
    "832dd140": Expected(1, {}, (12845, 461, 0, 0)),
    "96ef38f0": Expected(2, {"success": 11}, (186809, 2848, 151738, 0)),
    "a87dbaec": Expected(1, {}, (0, 0, 0, 0)),
    # No shutdown (taken mid-session); a failed view and a bash that exited 1; 17 commands
    # piped through tail/head (git push, bd create, …) whose output has no sign: unknown.
    "c3f091b3": Expected(4, {"success": 42, "failure": 2, None: 17}, (None, 41776, None, None)),
    # Resumed after its only shutdown; 4 task calls denied by a preToolUse hook; 2 failed
    # views and 6 PowerShell commands that exited non-zero; 3 Pester runs whose summary says
    # "Failed: 1" or more (a cmdlet sets no exit status) and 1 whose output has no summary;
    # 1 background command never seen to finish; 3 subagents.
    "e07fc822": Expected(
        8,
        {"success": 189, "failure": 11, "blocked": 4, None: 2},
        (None, 167840, None, None),
        subagents=3,
    ),
}


def _corpus_file(prefix: str) -> Path:
    (path,) = COPILOT.glob(f"{prefix}*.jsonl")
    return path


def _derive_file(path: Path) -> Derivation:
    sid = path.stem
    return derive_session("copilot", sid, [SourceLines("s", str(path), sid, "", file_lines(path))])


def _calls(d: Derivation) -> list[SpanDerived]:
    return [s for s in d.spans if s.kind in ("TOOL", "SKILL")]


# What the token figures cover, as the raw files show: output per assistant.message, input and
# cache only in each run's session.shutdown.
_NOTES = {
    "c3f091b3": "output only, per response: Copilot reports input and cache tokens at shutdown,"
    " and 1 of 1 runs have no session.shutdown (still running, or cut off)",
    "e07fc822": "output only, per response: Copilot reports input and cache tokens at shutdown,"
    " and 1 of 2 runs have no session.shutdown (still running, or cut off)",
}


@pytest.mark.parametrize("prefix", sorted(CORPUS))
def test_every_copilot_session_says_what_its_tokens_cover(prefix: str) -> None:
    d = _derive_file(_corpus_file(prefix))
    assert d.session.tokens_note == _NOTES.get(prefix, TOKENS_FROM_SHUTDOWN)
    assert (d.session.tokens.input is None) == (prefix in _NOTES)


def test_a_run_whose_shutdown_reports_no_usage_says_so() -> None:
    d = _stream(
        ("user.message", {"content": "hi"}),
        ("assistant.message", {"messageId": "m1", "content": "ok", "outputTokens": 3}),
        ("session.shutdown", {"shutdownType": "routine", "modelMetrics": {}}),
    )
    assert d.session.tokens == TokenUsage(output=3)
    assert d.session.tokens_note == (
        "output only, per response: no session.shutdown reported input or cache tokens"
    )


@pytest.mark.parametrize("prefix", sorted(CORPUS))
def test_corpus_sessions_as_read_from_the_raw_files(prefix: str) -> None:
    expected = CORPUS[prefix]
    d = _derive_file(_corpus_file(prefix))
    assert d.errors == []
    assert d.session.turns == expected.turns
    assert Counter(s.outcome for s in _calls(d)) == Counter(expected.outcomes)
    assert d.session.tokens == expected.tokens
    subagents = [s for s in d.spans if s.kind == "CHAIN" and s.parent_span_id is not None]
    assert len(subagents) == expected.subagents


def test_the_corpus_table_covers_every_event_stream_file() -> None:
    assert {p.name[:8] for p in COPILOT.glob("*.jsonl")} == set(CORPUS)


def test_subagent_work_nests_under_its_task_call() -> None:
    d = _derive_file(_corpus_file("e07fc822"))
    by_id = {s.span_id: s for s in d.spans}
    subagents = [s for s in d.spans if s.kind == "CHAIN" and s.parent_span_id is not None]
    raw = [json.loads(line) for _o, line in file_lines(_corpus_file("e07fc822"))]
    inner = {
        r["data"]["toolCallId"]: r["agentId"]
        for r in raw
        if r["type"] == "tool.execution_start" and "agentId" in r
    }
    assert len(inner) == 76
    for chain in subagents:
        task = by_id[str(chain.parent_span_id)]
        assert task.attributes["gen_ai.tool.name"] == "task"
        assert chain.attributes["gen_ai.agent.id"] == task.attributes["gen_ai.tool.call.id"]
    calls = {str(s.attributes["gen_ai.tool.call.id"]): s for s in _calls(d)}
    for call_id, agent in inner.items():
        llm = by_id[str(calls[call_id].parent_span_id)]
        chain = by_id[str(llm.parent_span_id)]
        assert chain.attributes["gen_ai.agent.id"] == agent


def test_output_tokens_sum_to_the_shutdown_in_single_run_files() -> None:
    for path in sorted(COPILOT.glob("*.jsonl")):
        raw = [json.loads(line) for _o, line in file_lines(path)]
        shutdowns = [r for r in raw if r["type"] == "session.shutdown"]
        resumed = any(r["type"] == "session.resume" for r in raw)
        if len(shutdowns) != 1 or resumed:
            continue
        reported = sum(
            m["usage"]["outputTokens"] for m in shutdowns[0]["data"]["modelMetrics"].values()
        )
        assert _derive_file(path).session.tokens.output == reported, path.name


# --- behaviour the corpus does not show, on minimal event streams -------------------------


def _event(kind: str, data: dict[str, Any], i: int, **extra: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "data": data,
        "id": f"e{i:04d}",
        "timestamp": f"2026-07-01T10:00:{i % 60:02d}.000Z",
        "parentId": f"e{i - 1:04d}" if i else None,
        **extra,
    }


def _stream(*events: tuple[str, dict[str, Any]] | tuple[str, dict[str, Any], str]) -> Derivation:
    rows = [_event("session.start", {"sessionId": SID, "context": {"cwd": "/w"}}, 0)]
    for i, event in enumerate(events, 1):
        extra = {"agentId": event[2]} if len(event) == 3 else {}
        rows.append(_event(event[0], event[1], i, **extra))
    return derive_session("copilot", SID, [SourceLines("s", "/e.jsonl", SID, "", as_lines(rows))])


def _ask(*calls: tuple[str, str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    requests = [
        {"toolCallId": c, "name": n, "arguments": a, "type": "function"} for c, n, a in calls
    ]
    return (
        "assistant.message",
        {
            "messageId": f"m-{calls[0][0] if calls else 'x'}",
            "content": "",
            "toolRequests": requests,
        },
    )


def _done(call_id: str, content: str = "ok", **extra: Any) -> tuple[str, dict[str, Any]]:
    data: dict[str, Any] = {"toolCallId": call_id, "success": True, "result": {"content": content}}
    data.update(extra)
    return ("tool.execution_complete", data)


def _failed(call_id: str, code: str, message: str) -> tuple[str, dict[str, Any]]:
    return (
        "tool.execution_complete",
        {"toolCallId": call_id, "success": False, "error": {"code": code, "message": message}},
    )


def _prompt(text: str = "do it", interaction: str = "i1") -> tuple[str, dict[str, Any]]:
    return ("user.message", {"content": text, "interactionId": interaction})


def _outcomes(d: Derivation) -> dict[str, str | None]:
    return {str(s.attributes["gen_ai.tool.call.id"]): s.outcome for s in _calls(d)}


def test_denials_rejections_and_aborts_are_blocked() -> None:
    d = _stream(
        _prompt(),
        _ask(("a", "bash", {"command": "rm -rf x"}), ("b", "edit", {"path": "f"})),
        (
            "permission.completed",
            {"toolCallId": "a", "result": {"kind": "denied-interactively-by-user"}},
        ),
        _failed("a", "failure", "Permission denied"),
        _failed("b", "rejected", "The user rejected this tool call."),
        _ask(("c", "view", {"path": "/w/x"}), ("d", "bash", {"command": "sleep 100"})),
        ("tool.execution_start", {"toolCallId": "d", "toolName": "bash"}),
        _done("c"),
        ("abort", {"reason": "user_initiated"}),
    )
    assert _outcomes(d) == {"a": "blocked", "b": "blocked", "c": "success", "d": "blocked"}
    (turn,) = [s for s in d.spans if s.kind == "CHAIN"]
    assert turn.attributes["skillops.turn.aborted"] == "user_initiated"


def test_other_error_codes_are_failures() -> None:
    d = _stream(_prompt(), _ask(("a", "view", {"path": "/nope"})), _failed("a", "failure", "x"))
    assert _outcomes(d) == {"a": "failure"}


@settings(max_examples=150, deadline=None)
@given(
    code=st.integers(min_value=-255, max_value=255),
    output=st.text(st.characters(blacklist_categories=["Cs"]), max_size=200),
    era=st.sampled_from(["shell", "legacy"]),
    tool=st.sampled_from(["bash", "powershell"]),
)
def test_a_shell_that_exited_non_zero_failed_whatever_success_says(
    code: int, output: str, era: str, tool: str
) -> None:
    tail = (
        f"<shellId: 3 completed with exit code {code}>"
        if era == "shell"
        else (f"<exited with exit code {code}>")
    )
    d = _stream(_prompt(), _ask(("a", tool, {"command": "make"})), _done("a", f"{output}\n{tail}"))
    assert _outcomes(d) == {"a": "success" if code == 0 else "failure"}


def test_a_background_command_owns_the_exit_its_read_reports() -> None:
    d = _stream(
        _prompt(),
        _ask(("a", "bash", {"command": "make test", "mode": "async"})),
        _done("a", "<command started in background with shellId: t1>"),
        _ask(("b", "read_bash", {"shellId": "t1"})),
        _done("b", "running\n<command with shellId: t1 is still running after 10 seconds.>"),
        _ask(("c", "read_bash", {"shellId": "t1"})),
        _done("c", "FAILED 2 tests\n<shellId: t1 completed with exit code 2>"),
    )
    assert _outcomes(d) == {"a": "failure", "b": "success", "c": "success"}


def test_a_background_command_never_seen_to_finish_is_unknown() -> None:
    d = _stream(
        _prompt(),
        _ask(("a", "powershell", {"command": "watch"})),
        _done("a", "<command started in background with shellId: w>"),
        ("abort", {"reason": "user_initiated"}),
    )
    assert _outcomes(d) == {"a": None}


BODY = "---\nname: tidy\ndescription: keep it tidy\n---\n\n# Tidy\n\nAlways tidy up.\n"


def test_skill_tool_and_skill_invoked_hash_like_every_agent() -> None:
    d = _stream(
        _prompt(),
        _ask(("s", "skill", {"skill": "tidy"})),
        (
            "skill.invoked",
            {"name": "tidy", "path": "/w/.github/skills/tidy/SKILL.md", "content": BODY},
        ),
        _done("s", "Skill loaded"),
    )
    (skill,) = [s for s in d.spans if s.kind == "SKILL"]
    assert skill.attributes["skill.name"] == "tidy"
    assert skill.attributes["skill.activation"] == "tool"
    assert skill.attributes["skill.content_hash"] == skill_content_hash(BODY)
    assert skill.attributes["skillops.tool.kind"] == "skill"
    assert d.session.skills == ["tidy"] and d.session.tools == 0


def test_a_whole_read_of_an_advertised_skill_md_is_a_skill_load() -> None:
    numbered = "\n".join(f"{i}. {line}" for i, line in enumerate(BODY.split("\n"), 1))
    advertised = "<skill>\n<available_skills>\n<skill>\n  <name>tidy</name>\n</skill>\n"
    d = _stream(
        ("system.message", {"role": "system", "content": advertised}),
        _prompt(),
        _ask(
            ("r", "view", {"path": "/w/.github/skills/tidy/SKILL.md"}),
            ("p", "view", {"path": "/w/.github/skills/tidy/SKILL.md", "view_range": [1, 3]}),
            ("o", "view", {"path": "/w/.github/skills/other/SKILL.md"}),
        ),
        _done("r", numbered),
        _done("p", "1. ---"),
        _done("o", "1. x"),
    )
    kinds = {str(s.attributes["gen_ai.tool.call.id"]): s.kind for s in _calls(d)}
    assert kinds == {"r": "SKILL", "p": "TOOL", "o": "TOOL"}
    (skill,) = [s for s in d.spans if s.kind == "SKILL"]
    assert skill.attributes["skill.content_hash"] == skill_content_hash(BODY)
    assert skill.attributes["skill.activation"] == "path"
    # Deriver 13: the folder it was read from (two projects' skills of one name differ by it).
    assert skill.attributes["skill.directory"] == "/w/.github/skills/tidy"


def test_a_windows_skill_read_keeps_its_folder() -> None:
    numbered = "\n".join(f"{i}. {line}" for i, line in enumerate(BODY.split("\n"), 1))
    advertised = "<skill>\n<available_skills>\n<skill>\n  <name>tidy</name>\n</skill>\n"
    d = _stream(
        ("system.message", {"role": "system", "content": advertised}),
        _prompt(),
        _ask(("r", "view", {"path": "C:\\Users\\ann\\repo\\.github\\skills\\tidy\\SKILL.md"})),
        _done("r", numbered),
    )
    (skill,) = [s for s in d.spans if s.kind == "SKILL"]
    assert skill.attributes["skill.directory"] == "C:\\Users\\ann\\repo\\.github\\skills\\tidy"


def test_turns_follow_typed_prompts_not_injected_messages() -> None:
    d = _stream(
        _prompt("first", "i1"),
        ("user.message", {"content": "", "source": "system", "interactionId": "i1"}),
        ("user.message", {"content": "<system_reminder>deferred tools</system_reminder>"}),
        _prompt("second, typed while it works", "i1"),
        ("user.message", {"content": "", "interactionId": "i2"}),  # autopilot continues
        ("assistant.message", {"messageId": "m", "content": "done", "outputTokens": 7}),
    )
    chains = [s for s in d.spans if s.kind == "CHAIN"]
    assert [c.attributes.get("gen_ai.prompt") for c in chains] == [
        "first",
        "second, typed while it works",
        None,
    ]
    (llm,) = [s for s in d.spans if s.kind == "LLM"]
    assert llm.parent_span_id == chains[-1].span_id
    assert d.session.tokens == TokenUsage(output=7)


# --- the store ------------------------------------------------------------------------------


def test_roots_default_and_copilot_home(tmp_path: Path) -> None:
    store = STORES["copilot"]
    home = tmp_path
    assert store.default_roots({}, home) == [
        home / ".copilot" / "session-state",
        home / ".copilot" / "history-session-state",
    ]
    moved = tmp_path / "elsewhere"
    roots = resolve_roots(env={"HOME": str(home), "COPILOT_HOME": str(moved)}, home=home)
    assert [r.path for r in roots if r.agent == "copilot"] == [
        moved / "session-state",
        moved / "history-session-state",
    ]


@pytest.mark.parametrize(
    ("relative", "claimed"),
    [
        ("abc/events.jsonl", True),
        ("abc.jsonl", True),
        ("abc.json", True),
        ("abc/workspace.yaml", False),
        ("abc/other.jsonl", False),
        ("abc/checkpoints/events.jsonl", False),
    ],
)
def test_claims(relative: str, claimed: bool) -> None:
    assert STORES["copilot"].claims(Path(relative)) is claimed


def test_session_of_and_sniff_on_every_corpus_file() -> None:
    store = STORES["copilot"]
    for path in sorted(COPILOT.glob("*.jsonl")):
        head = decode_head(path.read_bytes()[: 1024 * 1024])
        assert store.sniff(head)
        assert not any(s.sniff(head) for s in STORES.values() if s is not store)
        # Named as the CLI names it (<id>/events.jsonl): the id comes from session.start.
        assert store.session_of(Path("x/events.jsonl"), head).session == path.stem
    document = json.loads((COPILOT / "06141331-92e8-4e9e-8bbb-9b7a729eb01a.json").read_text())
    assert store.sniff([document])  # Claude's test (a sessionId) must not take it first
    assert next(s.agent for s in STORES.values() if s.sniff([document])) == "copilot"
    assert store.session_of(Path("x.json"), [document]).session == document["sessionId"]
    assert store.session_of(Path(f"/s/{SID}/events.jsonl"), []).session == SID
    assert store.session_of(Path(f"/s/{SID}.jsonl"), []).session == SID


# --- the legacy single-document era -----------------------------------------------------------

LEGACY = COPILOT / "06141331-92e8-4e9e-8bbb-9b7a729eb01a.json"


def _derive_document(document: dict[str, Any]) -> Derivation:
    # The whole document as one record: what a capture of documents hands the deriver.
    line = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
    sid = document["sessionId"]
    return derive_session("copilot", sid, [SourceLines("s", str(LEGACY), sid, "", [(0, line)])])


def test_legacy_document_as_read_from_the_raw_file() -> None:
    document = json.loads(LEGACY.read_text())
    d = _derive_document(document)
    assert d.errors == []
    # 1 prompt; 91 assistant chat messages and 2 responses written to the timeline only (after
    # the last chat message: "Now I'll create…" and the answer that ends the session); 59
    # completed calls in the timeline (3 of them not yet in chatMessages), all "success", one
    # bash that exited 127, one ``cargo test --release 2>&1 | tail -50`` whose exit 0 is the
    # tail's and whose output says "error: could not compile", and one ``cargo clippy … | grep
    # -E "(warning|error)" | head`` that printed nothing (unknown). No model, no tokens.
    assert d.session.turns == 1
    assert Counter(s.kind for s in d.spans) == Counter({"CHAIN": 1, "LLM": 93, "TOOL": 59})
    answers = [s for s in d.spans if s.kind == "LLM" and s.start == "2025-10-11T12:16:24.384Z"]
    assert [str(s.attributes["gen_ai.output.text"])[:11] for s in answers] == ["已為 Makefile"]
    assert Counter(s.outcome for s in _calls(d)) == Counter({"success": 56, "failure": 2, None: 1})
    exited, compiled = [s for s in _calls(d) if s.outcome == "failure"]
    assert exited.attributes["gen_ai.tool.call.id"] == "toolu_01UDjjrcnFs5EMdZT9r8MgNR"
    assert "skillops.result.masked" not in exited.attributes
    assert compiled.attributes["skillops.result.masked"] == "cargo test --release"
    assert str(compiled.attributes["skillops.result.summary"]).startswith(
        "error: could not compile `vibe_coding_tracker`"
    )
    assert d.session.tokens == TokenUsage()
    assert d.session.tokens_note == TOKENS_LEGACY
    assert d.session.started_at == "2025-10-11T11:40:20.882Z"
    chat_ids = {c["id"] for m in document["chatMessages"] for c in (m.get("tool_calls") or [])}
    ids = {str(s.attributes["gen_ai.tool.call.id"]) for s in _calls(d)}
    assert len(ids - chat_ids) == 3
    assert all(s.start is not None for s in _calls(d))


def _capture_and_derive(db: Database, path: Path) -> Derivation:
    Capturer(db).capture_file(path, STORES["copilot"])
    deriver = SessionDeriver(db)
    (key,) = deriver.all_sessions()
    assert key.agent == "copilot"
    return derive_session(key.agent, key.native_id, deriver.sources_of(key))


def test_legacy_document_captured_as_a_document(db: Database, tmp_path: Path) -> None:
    target = tmp_path / ".copilot" / "history-session-state" / LEGACY.name
    target.parent.mkdir(parents=True)
    shutil.copy(LEGACY, target)
    captured = _capture_and_derive(db, target)
    whole = _derive_document(json.loads(LEGACY.read_text()))
    assert msgspec.json.encode(captured.spans) == msgspec.json.encode(whole.spans)
    assert captured.session.native_session_id == "06141331-92e8-4e9e-8bbb-9b7a729eb01a"


def test_legacy_document_growing_by_rewrites_stores_each_record_once(
    db: Database, tmp_path: Path
) -> None:
    """The 2025 CLI rewrote the document on every message: replay that, capturing each time."""
    final = json.loads(LEGACY.read_text())
    target = tmp_path / ".copilot" / "history-session-state" / LEGACY.name
    target.parent.mkdir(parents=True)
    chat, timeline = final["chatMessages"], final["timeline"]
    steps = 12
    for step in range(1, steps + 1):
        doc = {
            "sessionId": final["sessionId"],
            "startTime": final["startTime"],
            "chatMessages": chat[: len(chat) * step // steps],
            "timeline": timeline[: len(timeline) * step // steps],
        }
        target.write_text(json.dumps(doc, indent=4))
        grown = _capture_and_derive(db, target)
        calls = {str(s.attributes["gen_ai.tool.call.id"]) for s in _calls(grown)}
        ids = {c["id"] for m in doc["chatMessages"] for c in m.get("tool_calls") or []}
        ids |= {e["callId"] for e in doc["timeline"] if e["type"] == "tool_call_completed"}
        assert calls == ids
    whole = _derive_document(final)
    assert msgspec.json.encode(grown.spans) == msgspec.json.encode(whole.spans)
    lines = captured(db)
    records = len(chat) + len(timeline)
    # Every chat message and timeline entry once, plus the document's own fields.
    assert records <= len(lines) <= records + steps
    assert sum(len(e.line) for e in lines) < 2 * LEGACY.stat().st_size
