"""Gemini CLI derivation over every real session of the corpus, checked against the raw files.

The table was written by reading each file (its ``toolCalls`` statuses and ``tokens``), not
from the deriver's output: input tokens are the sum of ``tokens.input`` (promptTokenCount,
which includes cached input; ``tool`` is 0 throughout), output tokens the sum of ``output``
plus ``thoughts``, cache reads the sum of ``cached``.
"""

from __future__ import annotations

import copy
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import pytest

from skillopsd.derive import derive_session, skill_content_hash
from skillopsd.deriving import SessionDeriver
from skillopsd.events import Database
from skillopsd.events.types import SpanDerived
from skillopsd.sources import STORES, Capturer

from ._agents import (
    gemini_chats,
    gemini_document,
    gemini_files,
    layout_gemini,
    write_document,
)

GEMINI = STORES["gemini"]

# file -> (turns, calls by outcome, (input, output, cache_read) tokens, model responses)
TABLE: dict[str, tuple[int, dict[str, int], tuple[int, int, int] | None, int]] = {
    "0ab84937": (3, {"success": 12}, (202586, 2152 + 2141, 48951), 6),  # JSONL, rewritten ids
    "15f05963": (1, {"success": 6, "blocked": 1}, (93484, 1767 + 861, 71057), 7),
    "18f475c0": (1, {"success": 4, "failure": 1}, (50933, 428 + 389, 34456), 6),
    "2e84f1a4": (1, {"success": 1}, (24912, 350 + 149, 0), 2),
    "677ceb30": (2, {"success": 6}, (39356, 562 + 713, 23737), 5),
    "8a20078e": (1, {"success": 7}, (76348, 9325 + 11616, 39826), 3),
    "914f3c63": (1, {"success": 2}, (62714, 700 + 2216, 36652), 3),
    "94feec1f": (1, {"success": 1}, (12739, 41 + 79, 5693), 2),
    "9640edb1": (1, {"success": 1}, (12742, 42 + 162, 5680), 2),
    "9b407c5c": (3, {"success": 1}, (51248, 156 + 1358, 46090), 4),
    "a324af07": (1, {"success": 1}, (12740, 42 + 76, 5705), 2),
    "cdb14b05": (4, {"success": 38, "blocked": 2}, (1658567, 5317 + 6984, 1408642), 38),
    "cf708092": (1, {"success": 1}, (12768, 41 + 0, 5737), 2),
    "d6f69999": (1, {}, (388878, 4422 + 4643, 278423), 10),  # a tool result as a user message
    "e557a820": (3, {"success": 3}, (59104, 110 + 303, 11940), 4),
    "eefc44a3": (1, {}, (466642, 3302 + 3642, 326620), 18),
    "f7633853": (1, {"success": 13}, (190718, 975 + 1561, 168654), 15),
    "faff42ab": (2, {"success": 2}, (48965, 70 + 232, 35330), 4),
}
NOT_SESSIONS = {"29eb990e"}  # a single warning: no prompt, no model turn


def _capture(db: Database, home: Path, files: list[Path]) -> list[Path]:
    capturer = Capturer(db)
    paths = [layout_gemini(home, f) for f in files]
    for path in paths:
        capturer.capture_file(path, GEMINI)
    return paths


def _derive(db: Database, native: str) -> tuple[Any, list[SpanDerived]]:
    deriver = SessionDeriver(db)
    key = next(k for k in deriver.all_sessions() if k.native_id == native)
    derivation = derive_session(key.agent, key.native_id, deriver.sources_of(key))
    return derivation, derivation.spans


@pytest.fixture(scope="module")
def corpus_db(tmp_path_factory: pytest.TempPathFactory) -> Database:
    tmp = tmp_path_factory.mktemp("gemini")
    db = Database.open(tmp / "db")
    _capture(db, tmp / "home", gemini_files())
    return db


def test_the_table_covers_every_gemini_file() -> None:
    assert {f.name[:8] for f in gemini_files()} == set(TABLE) | NOT_SESSIONS


@pytest.mark.parametrize("source", gemini_files(), ids=lambda p: p.name[:8])
def test_every_real_session_derives_as_read_from_the_raw_file(
    source: Path, corpus_db: Database
) -> None:
    derivation, spans = _derive(corpus_db, source.stem)
    short = source.name[:8]
    if short in NOT_SESSIONS:
        assert not derivation.is_session
        return
    turns, outcomes, tokens, responses = TABLE[short]
    calls = [s for s in spans if s.kind in ("TOOL", "SKILL")]
    assert derivation.session.turns == turns
    assert dict(Counter(s.outcome for s in calls)) == outcomes
    assert sum(1 for s in spans if s.kind == "LLM") == responses
    usage = derivation.session.tokens
    assert (usage.input, usage.output, usage.cache_read) == tokens
    assert usage.cache_creation is None  # not reported: absent, not zero
    # Every call is one span with the agent's id, under a model response of this session.
    ids = [s.attributes["gen_ai.tool.call.id"] for s in calls]
    assert len(ids) == len(set(ids))
    by_id = {s.span_id: s for s in spans}
    assert all(by_id[s.parent_span_id].kind == "LLM" for s in calls if s.parent_span_id)
    assert derivation.errors == []


def test_cancelled_calls_are_blocked_with_the_reason_a_user_denial_and_an_interrupt(
    corpus_db: Database,
) -> None:
    _derivation, spans = _derive(corpus_db, "cdb14b05-cceb-4354-a9d8-8c9182ece8bf")
    blocked = [s for s in spans if s.outcome == "blocked"]
    reasons = sorted(str(s.attributes["skillops.result.error"]) for s in blocked)
    assert reasons == [
        "[Operation Cancelled] Reason: Operation cancelled",
        "[Operation Cancelled] Reason: User denied execution.",
    ]
    assert {s.attributes["skillops.tool.kind"] for s in blocked} == {"shell"}


def test_an_edit_that_failed_is_a_failure_with_its_error(corpus_db: Database) -> None:
    _derivation, spans = _derive(corpus_db, "18f475c0-690f-4bc9-b84e-88a0a1e9518f")
    (failed,) = [s for s in spans if s.outcome == "failure"]
    assert failed.attributes["gen_ai.tool.name"] == "replace"
    assert failed.attributes["skillops.tool.kind"] == "edit"
    assert "Expected 1 occurrence but found 4" in str(failed.attributes["skillops.result.error"])


def _shell_session(tmp_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The real one-shell-call session, and that call."""
    source = next(f for f in gemini_files() if f.name.startswith("94feec1f"))
    doc = gemini_document(source)
    call = next(c for m in doc["messages"] for c in m.get("toolCalls") or [])
    return doc, call


@pytest.mark.parametrize(
    ("tail", "outcome"),
    [
        ("Exit Code: 1\nProcess Group PGID: 4242", "failure"),  # v0.30+: only when non-zero
        ("Error: (none)\nExit Code: 0\nSignal: (none)", "success"),  # January 2026 form
        ("Error: (none)\nExit Code: 127\nSignal: (none)", "failure"),
        ("Signal: 15\nProcess Group PGID: 4242", "failure"),  # killed: no exit code
        ("Process Group PGID: 4242", "success"),
    ],
)
def test_a_shell_command_that_exited_non_zero_fails_whatever_its_status(
    tmp_path: Path, db: Database, tail: str, outcome: str
) -> None:
    doc, call = _shell_session(tmp_path)
    assert call["name"] == "run_shell_command" and call["status"] == "success"
    response = call["result"][0]["functionResponse"]["response"]
    response["output"] = f"Output: hello\n{tail}"
    path = gemini_chats(tmp_path) / "session-2026-03-17T00-00-94feec1f.json"
    write_document(path, doc)
    Capturer(db).capture_file(path, GEMINI)
    _derivation, spans = _derive(db, doc["sessionId"])
    (span,) = [s for s in spans if s.kind == "TOOL"]
    assert span.outcome == outcome


def test_jsonl_rewrites_rewinds_and_set_messages_are_read_as_the_cli_loads_them(
    tmp_path: Path, db: Database
) -> None:
    source = next(f for f in gemini_files() if f.suffix == ".jsonl")
    lines = source.read_bytes().splitlines()
    records = [msgspec.json.decode(line) for line in lines]
    messages = [r for r in records if "id" in r and "type" in r]
    users = [m for m in messages if m["type"] == "user"]
    # The user rewinds to their last prompt: it and everything after it are gone.
    rewound = [*lines, msgspec.json.encode({"$rewindTo": users[-1]["id"]})]
    path = gemini_chats(tmp_path) / "session-2026-04-23T00-00-0ab84937.jsonl"
    path.write_bytes(b"\n".join(rewound) + b"\n")
    Capturer(db).capture_file(path, GEMINI)
    derivation, spans = _derive(db, source.stem)
    assert derivation.session.turns == 2
    kept = {m["id"] for m in messages[: messages.index(users[-1])]}
    calls = {c["id"] for m in messages if m["id"] in kept for c in m.get("toolCalls") or []}
    assert {s.attributes["gen_ai.tool.call.id"] for s in spans if s.kind == "TOOL"} == calls


def test_a_resumed_legacy_session_migrated_to_jsonl_is_one_session_without_doubles(
    tmp_path: Path, db: Database
) -> None:
    """The CLI resumes a ``.json`` session by copying its messages into a ``.jsonl``."""
    source = next(f for f in gemini_files() if f.name.startswith("f7633853"))
    doc = gemini_document(source)
    legacy = gemini_chats(tmp_path) / "session-2026-01-15T09-00-f7633853.json"
    write_document(legacy, doc)
    meta = {k: v for k, v in doc.items() if k != "messages"}
    extra = copy.deepcopy(doc["messages"][-1])
    extra["id"] = "resumed-answer"
    lines = [meta, *doc["messages"], {"$set": {"sessionId": doc["sessionId"]}}, extra]
    migrated = legacy.with_suffix(".jsonl")
    migrated.write_bytes(b"".join(msgspec.json.encode(r) + b"\n" for r in lines))
    capturer = Capturer(db)
    capturer.capture_file(legacy, GEMINI)
    capturer.capture_file(migrated, GEMINI)
    derivation, spans = _derive(db, doc["sessionId"])
    turns, outcomes, _tokens, responses = TABLE["f7633853"]
    assert derivation.session.turns == turns
    assert sum(1 for s in spans if s.kind == "LLM") == responses + 1
    assert sum(1 for s in spans if s.kind == "TOOL") == sum(outcomes.values()) + len(
        extra.get("toolCalls") or []
    )


SKILL_BODY = "---\nname: color-doc\ndescription: colors\n---\n\n# Color doc\n\nUse blue.\n"


def test_skills_from_activate_skill_and_from_reading_a_skill_md_hash_like_other_agents(
    tmp_path: Path, db: Database
) -> None:
    source = next(f for f in gemini_files() if f.name.startswith("faff42ab"))
    doc = gemini_document(source)
    model = next(m for m in doc["messages"] if m.get("toolCalls"))
    template = model["toolCalls"][0]
    body = SKILL_BODY.split("---\n", 2)[2]

    def call(ident: str, name: str, args: dict[str, Any], output: str) -> dict[str, Any]:
        response = {"functionResponse": {"id": ident, "name": name, "response": {"output": output}}}
        return {**template, "id": ident, "name": name, "args": args, "result": [response]}

    # What activate-skill.ts returns: the body inside <instructions>.
    activated = (
        '<activated_skill name="color-doc">\n  <instructions>\n'
        f"    {body}\n  </instructions>\n</activated_skill>"
    )
    model["toolCalls"] = [
        call("activate_skill_1", "activate_skill", {"name": "color-doc"}, activated),
        call(
            "read_file_2",
            "read_file",
            {"file_path": "/p/.gemini/skills/color-doc/SKILL.md"},
            SKILL_BODY,
        ),
    ]
    path = gemini_chats(tmp_path) / "session-2026-01-10T00-00-faff42ab.json"
    write_document(path, doc)
    Capturer(db).capture_file(path, GEMINI)
    derivation, spans = _derive(db, doc["sessionId"])
    skills = [s for s in spans if s.kind == "SKILL"]
    assert [s.attributes["skill.activation"] for s in skills] == ["tool", "path"]
    assert {s.attributes["skill.name"] for s in skills} == {"color-doc"}
    assert {s.attributes["skill.content_hash"] for s in skills} == {skill_content_hash(SKILL_BODY)}
    assert {s.attributes["skillops.tool.kind"] for s in skills} == {"skill"}
    assert derivation.session.skills == ["color-doc"]
    # Deriver 13: a read names its folder; activate_skill names none.
    assert [s.attributes.get("skill.directory") for s in skills] == [
        None,
        "/p/.gemini/skills/color-doc",
    ]


def test_a_subagent_file_nests_under_the_call_that_started_it(tmp_path: Path, db: Database) -> None:
    parent_source = next(f for f in gemini_files() if f.name.startswith("2e84f1a4"))
    doc = gemini_document(parent_source)
    model = next(m for m in doc["messages"] if m.get("toolCalls"))
    agent_id = "5a1c3c1e-0000-4000-8000-00000000a9e7"
    model["toolCalls"][0]["agentId"] = agent_id
    parent = gemini_chats(tmp_path) / "session-2026-01-22T00-00-2e84f1a4.json"
    write_document(parent, doc)
    # The subagent's own conversation: a real session's messages, in a subagent's file.
    child_doc = gemini_document(next(f for f in gemini_files() if f.name.startswith("94feec1f")))
    meta = {"sessionId": agent_id, "projectHash": doc["projectHash"], "kind": "subagent"}
    child = gemini_chats(tmp_path) / doc["sessionId"] / f"{agent_id}.jsonl"
    child.parent.mkdir()
    child.write_bytes(
        b"".join(msgspec.json.encode(r) + b"\n" for r in [meta, *child_doc["messages"]])
    )
    capturer = Capturer(db)
    capturer.capture_file(parent, GEMINI)
    capturer.capture_file(child, GEMINI)
    derivation, spans = _derive(db, doc["sessionId"])
    by_id = {s.span_id: s for s in spans}
    (spawner,) = [s for s in spans if s.attributes.get("gen_ai.agent.id") == agent_id]
    nested = [s for s in spans if s.kind == "CHAIN" and s.parent_span_id == spawner.span_id]
    assert len(nested) == 1 and nested[0].name == "subagent turn 1"
    assert derivation.session.turns == 1  # the subagent's turn is not a turn of the session
    child_call = next(c["id"] for m in child_doc["messages"] for c in m.get("toolCalls") or [])
    child_calls = [s for s in spans if s.attributes.get("gen_ai.tool.call.id") == child_call]
    assert child_calls, "the subagent's call is in the tree"
    span = child_calls[0]
    while span.parent_span_id:
        span = by_id[span.parent_span_id]
    assert span.kind == "CHAIN" and span.parent_span_id is None


def test_deriving_twice_is_byte_identical_and_rederive_appends_nothing(
    corpus_db: Database,
) -> None:
    deriver = SessionDeriver(corpus_db)
    keys = deriver.all_sessions()
    first = [derive_session(k.agent, k.native_id, deriver.sources_of(k)) for k in sorted(keys)]
    again = [derive_session(k.agent, k.native_id, deriver.sources_of(k)) for k in sorted(keys)]
    assert msgspec.msgpack.encode(first) == msgspec.msgpack.encode(again)
