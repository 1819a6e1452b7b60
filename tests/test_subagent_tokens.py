"""A subagent's final response is counted once, from the spawning call's result when only it has it.

Claude Code writes a subagent's final response to the subagent's own file; the
``agent_progress`` mirror in the parent file (2.1.12–2.1.42) stops before it, and a session
copied without its ``subagents/`` folder has none of the subagent's messages: the response's
usage is then only in ``toolUseResult.usage`` on the parent's record of the Task/Agent result.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from skillopsd.derive import derive_session
from skillopsd.derive._input import SourceLines
from skillopsd.events.types import TokenUsage

from ._capture_helpers import CLAUDE_SESSION, as_lines
from ._export_helpers import home_with, run_once
from .conftest import run_ctl
from .test_derive_claude import CHILD, PARENT, SPAWN_CALL, _child_file, _mirror, _rows

FINAL = "msg_01Bo7gHpjJxPeNPALVSigFc5"  # the child's last response, reported by the result
FINAL_USAGE = {"input": 4 + 18603 + 5397, "output": 446, "read": 18603, "written": 5397}


def _derive(rows_by_path: dict[str, list[dict[str, Any]]]):  # type: ignore[no-untyped-def]
    sources = [
        SourceLines(p, p, CLAUDE_SESSION, "", as_lines(rows)) for p, rows in rows_by_path.items()
    ]
    return derive_session("claude", CLAUDE_SESSION, sources)


def _mirrored_before_result(child_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = _rows(PARENT)
    at = next(
        i
        for i, r in enumerate(rows)
        if r.get("type") == "user" and SPAWN_CALL in json.dumps(r.get("message"))
    )
    return rows[:at] + [_mirror(r, n) for n, r in enumerate(child_rows)] + rows[at:]


def _without_final(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if (r.get("message") or {}).get("id") != FINAL]


def _from_result(spans: list[Any]) -> list[Any]:
    return [s for s in spans if s.attributes.get("skillops.usage.source") == "tool_result"]


def _plus(tokens: TokenUsage, add: dict[str, int]) -> TokenUsage:
    return TokenUsage(
        input=(tokens.input or 0) + add["input"],
        output=(tokens.output or 0) + add["output"],
        cache_read=(tokens.cache_read or 0) + add["read"],
        cache_creation=(tokens.cache_creation or 0) + add["written"],
    )


def test_mirror_without_the_final_response_counts_it_from_the_result() -> None:
    from_file = _derive({"/p/main.jsonl": _rows(PARENT), _child_file(): _rows(CHILD)})
    streamed = _derive({"/p/main.jsonl": _mirrored_before_result(_without_final(_rows(CHILD)))})
    assert streamed.session.tokens == from_file.session.tokens
    (final,) = _from_result(streamed.spans)
    assert final.attributes["gen_ai.usage.output_tokens"] == 446
    assert final.attributes["gen_ai.request.model"] == "claude-haiku-4-5-20251001"
    # It sits under the subagent's turn, itself under the Agent call that spawned it.
    by_id = {s.span_id: s for s in streamed.spans}
    turn = by_id[final.parent_span_id]
    assert turn.kind == "CHAIN" and by_id[turn.parent_span_id].name == "Agent"
    assert streamed.errors == []


def test_a_subagent_with_its_own_file_is_not_counted_again() -> None:
    from_file = _derive({"/p/main.jsonl": _rows(PARENT), _child_file(): _rows(CHILD)})
    assert _from_result(from_file.spans) == []
    child_without_final = _derive(
        {"/p/main.jsonl": _rows(PARENT), _child_file(): _without_final(_rows(CHILD))}
    )
    # The file is the subagent's record, even a file cut short: nothing is added from the result.
    assert _from_result(child_without_final.spans) == []


def test_a_mirror_holding_the_final_response_is_not_counted_twice() -> None:
    from_file = _derive({"/p/main.jsonl": _rows(PARENT), _child_file(): _rows(CHILD)})
    full = _derive({"/p/main.jsonl": _mirrored_before_result(_rows(CHILD) * 2)})
    assert _from_result(full.spans) == []
    assert full.session.tokens == from_file.session.tokens


def test_a_final_response_mirrored_mid_stream_takes_the_results_count() -> None:
    """The mirror caught the final response's first record (1 output token so far): the same
    response, so it is not counted again, and the result's usage is its final count."""
    from_file = _derive({"/p/main.jsonl": _rows(PARENT), _child_file(): _rows(CHILD)})
    child = _rows(CHILD)
    (last,) = [r for r in child if (r.get("message") or {}).get("id") == FINAL]
    last["message"]["usage"]["output_tokens"] = 1
    streamed = _derive({"/p/main.jsonl": _mirrored_before_result(child)})
    assert _from_result(streamed.spans) == []
    assert streamed.session.tokens == from_file.session.tokens


def test_an_agent_resumed_by_a_second_call_counts_both_final_responses() -> None:
    rows = _rows(PARENT)
    at = next(i for i, r in enumerate(rows) if isinstance(r.get("toolUseResult"), dict))
    call_at = next(
        i for i, r in enumerate(rows) if SPAWN_CALL in json.dumps(r.get("message")) and i < at
    )
    again_call = json.loads(json.dumps(rows[call_at]).replace(SPAWN_CALL, "toolu_again"))
    again_call["uuid"], again_call["message"]["id"] = "again-call", "msg_again"
    again_call["message"]["usage"] = {"input_tokens": 1, "output_tokens": 1}
    again = json.loads(json.dumps(rows[at]).replace(SPAWN_CALL, "toolu_again"))
    again["uuid"] = "again-result"
    again["toolUseResult"]["usage"] = {"input_tokens": 7, "output_tokens": 100}
    once = _derive({"/p/main.jsonl": rows})
    twice = _derive({"/p/main.jsonl": [*rows, again_call, again]})
    assert len(_from_result(twice.spans)) == 2
    assert (twice.session.tokens.output or 0) == (once.session.tokens.output or 0) + 1 + 100


def test_a_subagent_with_no_messages_at_all_counts_its_final_response() -> None:
    """A session copied without its subagents/ folder: the parent file alone."""
    rows = _rows(PARENT)
    alone = _derive({"/p/main.jsonl": rows})
    without = [r for r in rows if not isinstance(r.get("toolUseResult"), dict)]
    no_usage = _derive({"/p/main.jsonl": without})
    assert alone.session.tokens == _plus(no_usage.session.tokens, FINAL_USAGE)
    (final,) = _from_result(alone.spans)
    by_id = {s.span_id: s for s in alone.spans}
    turn = by_id[final.parent_span_id]
    assert turn.kind == "CHAIN" and by_id[turn.parent_span_id].name == "Agent"
    assert str(turn.attributes["gen_ai.prompt"]).startswith('Is there a "remote control" feature')
    assert alone.session.tokens_note == (
        "1 subagent without a transcript of its own: only the final response is counted"
        " (from the Task result)"
    )
    assert no_usage.session.tokens_note is None


def test_a_result_written_again_counts_once() -> None:
    rows = _rows(PARENT)
    at = next(i for i, r in enumerate(rows) if isinstance(r.get("toolUseResult"), dict))
    once = _derive({"/p/main.jsonl": rows})
    again = _derive({"/p/main.jsonl": [*rows[: at + 1], rows[at], *rows[at + 1 :], rows[at]]})
    assert len(_from_result(again.spans)) == 1
    assert again.session.tokens == once.session.tokens


@pytest.mark.parametrize(
    "usage",
    [None, {}, {"output_tokens": "many"}, [1, 2], {"output_tokens": -5}, {"input_tokens": True}],
)
def test_a_result_with_unusable_usage_adds_nothing(usage: object) -> None:
    rows = _rows(PARENT)
    for row in rows:
        if isinstance(row.get("toolUseResult"), dict):
            row["toolUseResult"]["usage"] = usage
    derived = _derive({"/p/main.jsonl": rows})
    assert _from_result(derived.spans) == []
    assert derived.errors == []


def _hand_count(path: Path) -> tuple[int, int]:
    """Output tokens of a Claude file counted the plain way: every response once (its last
    record), plus every Task/Agent result's usage."""
    responses: dict[str, int] = {}
    results: dict[str, int] = {}
    for line in path.read_text().splitlines():
        row = json.loads(line)
        message = row.get("message") or {}
        if row.get("type") == "assistant" and message.get("model") != "<synthetic>":
            usage = message.get("usage") or {}
            if "output_tokens" in usage:
                responses[message.get("id") or row["uuid"]] = usage["output_tokens"]
        result = row.get("toolUseResult")
        if isinstance(result, dict) and isinstance(result.get("usage"), dict):
            results[result["agentId"]] = result["usage"]["output_tokens"]
    return sum(responses.values()), sum(results.values())


@pytest.mark.slow
def test_a_real_session_counts_its_subagents_in_the_cli(tmp_path: Path) -> None:
    """b9954e8e…: 14 Explore/general-purpose subagents, whose files were not kept.

    Counted by hand: 60,378 output tokens in the session's own responses, 21,793 in the 14
    subagents' final responses (a quarter of the session's output, missing before).
    """
    native = "b9954e8e-b63a-4a5c-8e73-777034b2a6a6"
    home = home_with(tmp_path / "home", (native,))
    (path,) = home.rglob(f"{native}.jsonl")
    assert _hand_count(path) == (60_378, 21_793)
    run_once(home)
    env = {"HOME": str(home)}
    (row,) = json.loads(run_ctl("sessions", "--json", env=env).stdout)
    assert row["tokens"]["output"] == 82_171
    shown = run_ctl("session", "show", native[:8], env=env).stdout
    assert "out 82,171" in shown
    assert shown.count("from the Task result") == 14
