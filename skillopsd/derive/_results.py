"""What each tool call returned, read again from a session's captured records by call id.

The derived spans keep a call's outcome and, for a call that did not succeed, the first
2,000 characters of why; they do not keep what a successful call returned (tool output is
most of a transcript's bytes: keeping it again in the derived stream would double the log).
An exporter that wants the result reads it here, from the same captured (and, at capture,
redacted) lines the spans were derived from, with each agent's own reading of a result's
text. Keys are the calls' ``gen_ai.tool.call.id`` as the derivers set it.

Only the lines that can hold a result are decoded (a byte test first): this runs over every
exported session's lines.
"""

from __future__ import annotations

from typing import Any

from . import gemini
from ._input import Record, SourceLines, mapping, records
from ._outcome import codex_output_text, result_text
from .copilot import captured_document

# Bytes a line holding a result contains, per agent (None: every line is read).
_MARKERS: dict[str, tuple[bytes, ...] | None] = {
    "claude": (b'"tool_result"',),
    "codex": (b'_call_output"',),
    "copilot": (b"tool.execution_complete", b'"$', b'"timeline"'),
    "gemini": None,
}
_CODEX_OUTPUTS = ("function_call_output", "custom_tool_call_output")


def call_results(agent: str, sources: list[SourceLines]) -> dict[str, str]:
    """Call id -> the text the call returned, for every call of the session that has one."""
    markers = _MARKERS.get(agent)
    files: list[tuple[str, list[Record]]] = []
    for source in sorted(sources, key=lambda s: (s.path, s.source_id)):
        if markers is not None:
            lines = [(o, line) for o, line in source.lines if any(m in line for m in markers)]
            source = SourceLines(source.source_id, source.path, "", "", lines)
        recs, _bad = records(source)  # what cannot be read was reported when it was derived
        files.append((source.path, recs))
    if agent == "claude":
        return _claude(files)
    if agent == "codex":
        return _codex(files)
    if agent == "copilot":
        return _copilot(files)
    if agent == "gemini":
        return _gemini(files)
    return {}


def _claude(files: list[tuple[str, list[Record]]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for _path, recs in files:
        for record in recs:
            value = record.value
            if value.get("type") == "progress":  # a subagent's message mirrored in its parent
                value = mapping(mapping(value.get("data")).get("message"))
            content = mapping(value.get("message")).get("content")
            if not isinstance(content, list):
                continue
            for block in content:
                if not isinstance(block, dict) or block.get("type") != "tool_result":
                    continue
                call_id = block.get("tool_use_id")
                if isinstance(call_id, str):
                    _keep(out, call_id, result_text(block.get("content")))
    return out


def _codex(files: list[tuple[str, list[Record]]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for _path, recs in files:
        for record in recs:
            if record.value.get("type") != "response_item":
                continue
            payload = mapping(record.value.get("payload"))
            call_id = payload.get("call_id")
            if payload.get("type") in _CODEX_OUTPUTS and isinstance(call_id, str):
                _keep(out, call_id, codex_output_text(payload.get("output")))
    return out


def _copilot(files: list[tuple[str, list[Record]]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for _path, recs in files:
        document = captured_document(recs)
        documents = [document] if document is not None else []
        for record in recs:
            value = record.value
            if isinstance(value.get("timeline"), list):  # a whole legacy document, one record
                documents.append(value)
            elif value.get("type") == "tool.execution_complete":
                data = mapping(value.get("data"))
                call_id = data.get("toolCallId")
                content = mapping(data.get("result")).get("content")
                if isinstance(call_id, str) and isinstance(content, str):
                    _keep(out, call_id, content)
        for doc in documents:
            for entry in doc.get("timeline") or []:
                entry = mapping(entry)
                call_id = entry.get("callId")
                log = mapping(entry.get("result")).get("log")
                if entry.get("type") == "tool_call_completed" and isinstance(call_id, str):
                    _keep(out, call_id, log if isinstance(log, str) else "")
    return out


def _gemini(files: list[tuple[str, list[Record]]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for path, recs in files:
        for message in gemini.load(path, recs).messages.values():
            for call in message.value.get("toolCalls") or []:
                if not isinstance(call, dict):
                    continue
                call_id = call.get("id")
                if not isinstance(call_id, str) or not call_id:
                    # The id the deriver gives a call recorded without one.
                    where = message.record
                    call_id = f"{where.source_id}:{where.offset}:{call.get('name') or 'tool'}"
                text, _error = gemini.result_text(call.get("result"))
                _keep(out, call_id, text)
    return out


def _keep(out: dict[str, str], call_id: str, text: Any) -> None:
    """The last non-empty result of a call wins (a resumed file repeats what it had)."""
    if isinstance(text, str) and (text or call_id not in out):
        out[call_id] = text
