"""Tool spans carry what the call returned, on real sessions of all four agents.

The derived spans keep no successful result; the exporter reads it from the captured lines.
These tests read the raw transcript files themselves (an oracle independent of the
exporter's per-agent reading) and compare with what ``skillopsctl export otlp`` writes.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from skillopsd.export._otlp import RESULT_HEAD, RESULT_TAIL, cut_result

from ._agents import agent_corpus, gemini_files, layout_gemini
from ._capture_helpers import FIXTURES, claude_project, codex_path, layout_claude_pair
from ._export_helpers import CODEX_FAILURE, FAILURES_AND_BLOCKS, derived, home_with, run_once
from .conftest import run_ctl

AGENTS = ("claude", "codex", "copilot", "gemini")
# A crafted Claude session (real records of a fixture, one result made huge with a secret).
BIG_SESSION = "7d1c2a4e-5b6f-4a8b-9c0d-1e2f3a4b5c6d"
SECRET = "ghp_" + "Zq8Rt2Lm9Xc4Vb7Nk1Pw6Hy3Jd5Fg0Ss8Ta2Ue"
HEAD_MARK = "HEAD-OF-A-LONG-RESULT"
TAIL_MARK = "exit status 7 at the very end"


def _big_claude_session(project: Path) -> Path:
    """``claude_skill`` under a new id, its first tool result 300,000 characters long."""
    lines = (FIXTURES / "claude_skill.jsonl").read_text().splitlines()
    old_id = json.loads(lines[0])["sessionId"]
    out = []
    done = False
    for line in lines:
        record = json.loads(line.replace(old_id, BIG_SESSION))
        content = record.get("message", {}).get("content")
        if not done and isinstance(content, list):
            for block in content:
                if isinstance(block, dict) and block.get("type") == "tool_result":
                    filler = "é0123456789abcdef\n" * (300_000 // 18)
                    block["content"] = f"{HEAD_MARK} {SECRET}\n{filler}{SECRET} {TAIL_MARK}"
                    block["is_error"] = False
                    done = True
        out.append(json.dumps(record, ensure_ascii=False))
    assert done, "the fixture has no tool result any more"
    path = project / f"{BIG_SESSION}.jsonl"
    path.write_text("\n".join(out) + "\n")
    return path


def _lay_out(home: Path) -> None:
    home_with(home, (FAILURES_AND_BLOCKS, CODEX_FAILURE))  # real Claude Code and Codex
    layout_claude_pair(home)  # a Claude Code subagent in its own file
    shutil.copy(FIXTURES / "codex_skill.jsonl", codex_path(home))
    _big_claude_session(claude_project(home))
    state = home / ".copilot" / "session-state"
    state.mkdir(parents=True)
    corpus = agent_corpus("copilot")
    for path in sorted(corpus.glob("*.jsonl")):
        (state / path.stem).mkdir()
        shutil.copy(path, state / path.stem / "events.jsonl")
    legacy = home / ".copilot" / "history-session-state"
    legacy.mkdir()
    for path in sorted(corpus.glob("*.json")):
        shutil.copy(path, legacy / path.name)
    agent_corpus("gemini")
    for path in gemini_files():
        layout_gemini(home, path)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("results-home")
    _lay_out(home)
    run_once(home)
    return home


def _values(path: Path) -> Iterator[Any]:
    """Every JSON value of a raw transcript file (a document, or one a line)."""
    text = path.read_text(errors="replace")
    try:
        yield json.loads(text)
        return
    except json.JSONDecodeError:
        pass
    for line in text.splitlines():
        try:
            yield json.loads(line)
        except json.JSONDecodeError:
            continue


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(b["text"] for b in content if isinstance(b, dict) and "text" in b)
    return ""


def _gemini_text(result: Any) -> str:
    texts = []
    for part in result if isinstance(result, list) else [result]:
        response = (part or {}).get("functionResponse", {}).get("response", {})
        if "error" in response:
            texts.append(str(response["error"]))
        elif "output" in response:
            out = response["output"]
            texts.append(out if isinstance(out, str) else json.dumps(out, separators=(",", ":")))
    return "\n".join(texts)


def _walk(value: Any, found: dict[str, set[str]]) -> None:
    """Results anywhere in a value, by call id, in each agent's own record shape."""
    if isinstance(value, list):
        for v in value:
            _walk(v, found)
        return
    if not isinstance(value, dict):
        return
    kind = value.get("type")
    if kind == "tool_result" and isinstance(value.get("tool_use_id"), str):  # Claude Code
        found.setdefault(value["tool_use_id"], set()).add(_text(value.get("content")))
    elif kind in ("function_call_output", "custom_tool_call_output"):  # Codex
        output = value.get("output")
        if isinstance(output, str):
            found.setdefault(value["call_id"], set()).add(output)
    elif kind == "tool.execution_complete":  # Copilot CLI
        data = value.get("data", {})
        content = (data.get("result") or {}).get("content")
        if isinstance(content, str):
            found.setdefault(data["toolCallId"], set()).add(content)
    elif kind == "tool_call_completed" and isinstance(value.get("callId"), str):  # Copilot legacy
        found.setdefault(value["callId"], set()).add((value.get("result") or {}).get("log", ""))
    for call in value.get("toolCalls") or [] if isinstance(value.get("toolCalls"), list) else []:
        if isinstance(call, dict) and isinstance(call.get("id"), str) and "result" in call:
            found.setdefault(call["id"], set()).add(_gemini_text(call["result"]))  # Gemini CLI
    for v in value.values():
        if isinstance(v, (dict, list)):
            _walk(v, found)


_MASK = re.compile(r"\[REDACTED(?::[a-z\-]+)?\]")


_CUT = re.compile(r"\n… \[\d+ characters cut by skillops\] …\n")


def _same(exported: str, raw: str) -> bool:
    """``exported`` is ``raw`` as capture stored it (equal but for what it redacted), its
    middle cut when long."""

    def pattern(text: str) -> str:
        return ".*?".join(map(re.escape, _MASK.split(text)))

    pieces = _CUT.split(exported)
    if len(pieces) == 1:
        return re.fullmatch(pattern(exported), raw, re.DOTALL) is not None
    head, tail = pieces
    return (
        len(raw) > RESULT_HEAD + RESULT_TAIL
        and re.match(pattern(head), raw, re.DOTALL) is not None
        and re.search(pattern(tail) + r"\Z", raw, re.DOTALL) is not None
    )


def _raw_results(home: Path) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for folder in (".claude", ".codex", ".copilot", ".gemini"):
        for path in sorted((home / folder).rglob("*.json*")):
            for value in _values(path):
                _walk(value, found)
    return found


def _export(home: Path, out: Path, *extra: str) -> tuple[list[dict[str, Any]], str]:
    done = run_ctl("export", "otlp", "--out", str(out), *extra, env={"HOME": str(home)})
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith("exported ") and done.stderr.count("\n") == 1, done.stderr
    text = out.read_text()
    spans = [
        span
        for line in text.splitlines()
        for rs in json.loads(line)["resourceSpans"]
        for ss in rs["scopeSpans"]
        for span in ss["spans"]
    ]
    return spans, text


def _attrs(span: dict[str, Any]) -> dict[str, Any]:
    return {a["key"]: next(iter(a["value"].values())) for a in span.get("attributes", [])}


pytestmark = pytest.mark.slow


def test_every_agents_tool_spans_carry_their_result_and_arguments(
    home: Path, tmp_path: Path
) -> None:
    raw = _raw_results(home)
    spans, _text_out = _export(home, tmp_path / "all.jsonl")
    by_id = {s["spanId"]: s for s in spans}
    sessions = derived(home)
    assert {s.agent for s, _ in sessions.values()} == set(AGENTS)
    carried = dict.fromkeys(AGENTS, 0)
    for session, derived_spans in sessions.values():
        for d in derived_spans:
            if d.kind not in ("TOOL", "SKILL"):
                continue
            a = _attrs(by_id[d.span_id])
            arguments = d.attributes.get("gen_ai.tool.call.arguments")
            if arguments:
                assert a["input.value"] == arguments
                try:
                    json.loads(arguments)
                except json.JSONDecodeError:
                    assert a["input.mime_type"] == "text/plain"  # a raw patch, a cut argument
                else:
                    assert a["input.mime_type"] == "application/json"
            call_id = d.attributes.get("gen_ai.tool.call.id")
            texts = raw.get(str(call_id), set())
            if any(SECRET in t for t in texts):
                continue  # redacted at capture: the next test
            if not any(texts):
                # No result in the transcript: at most why the call has none (a refusal).
                assert a.get("output.value", "") == d.attributes.get("skillops.result.error", "")
                continue
            where = f"{session.agent} {d.name} {call_id}"
            assert "output.value" in a, where
            assert a["output.mime_type"] == "text/plain"
            output = a["output.value"]
            if _MASK.search(output) is None:
                assert int(a["skillops.result.chars"]) in {len(t) for t in texts}, where
            assert any(_same(output, t) for t in texts), where
            carried[session.agent] += d.outcome == "success"
    # Successful calls of every agent carry their result (not only failures' reasons).
    assert all(n >= 5 for n in carried.values()), carried


def test_a_huge_result_is_cut_in_the_middle_and_was_redacted_at_capture(
    home: Path, tmp_path: Path
) -> None:
    spans, text = _export(home, tmp_path / "big.jsonl")
    assert SECRET not in text  # redacted at capture: the export reads what the log holds
    big = [
        _attrs(s)
        for s in spans
        if HEAD_MARK in _attrs(s).get("output.value", "")
        and _attrs(s).get("openinference.span.kind") in ("TOOL", "AGENT")
    ]
    assert len(big) == 1
    a = big[0]
    output = a["output.value"]
    chars = int(a["skillops.result.chars"])
    assert chars > 290_000
    assert len(output) < RESULT_HEAD + RESULT_TAIL + 100
    assert output.startswith(HEAD_MARK)
    assert output.endswith(TAIL_MARK)
    assert f"… [{chars - RESULT_HEAD - RESULT_TAIL} characters cut by skillops] …" in output
    assert "[REDACTED" in output  # the secret at each end, masked
    # Every request still fits within the default batch limit.
    assert max(len(line) for line in text.splitlines()) < 12 * 1024 * 1024


def test_no_content_leaves_out_every_result(home: Path, tmp_path: Path) -> None:
    raw = _raw_results(home)
    spans, text = _export(home, tmp_path / "bare.jsonl", "--no-content")
    assert spans
    for s in spans:
        keys = set(_attrs(s))
        assert not keys & {"input.value", "output.value", "skillops.result.chars"}
        assert not keys & {"input.mime_type", "output.mime_type"}
    distinctive = {
        t[:60] for texts in raw.values() for t in texts if len(t) > 60 and t[:60].strip()
    }
    assert len(distinctive) > 50
    leaked = [t for t in distinctive if json.dumps(t)[1:-1] in text]
    assert not leaked, leaked[:3]


@given(st.text(max_size=40_000, alphabet=st.characters(codec="utf-8")))
def test_cut_result_keeps_both_ends_and_says_how_much_it_cut(text: str) -> None:
    out = cut_result(text)
    if len(text) <= RESULT_HEAD + RESULT_TAIL:
        assert out == text
        return
    assert out.startswith(text[:RESULT_HEAD])
    assert out.endswith(text[-RESULT_TAIL:])
    assert f"[{len(text) - RESULT_HEAD - RESULT_TAIL} characters cut by skillops]" in out
