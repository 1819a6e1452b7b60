"""Gemini CLI sessions → spans.

A file is read into its conversation first: a legacy document from its captured document
lines (:mod:`skillopsd.documents`), a ``.jsonl`` file as the CLI's own loader reads it
(metadata line, messages appended again under their ``id`` where the last copy wins in the
first one's place, ``$set`` merged into the metadata and replacing every message when it
carries ``messages``, ``$rewindTo`` dropping that message and all after it, or all of them
for an unknown id). A resumed legacy session's ``.jsonl`` repeats its messages: the files of
one session are merged by message id.

Per ``user`` message a ``CHAIN`` (a ``[Function Response: …]`` user message of the era
without tool records continues the turn) → ``LLM`` per ``gemini`` message (tokens as
reported: input is ``promptTokenCount`` plus tool-use prompt tokens and includes cached
input, output is candidates plus thoughts, the thoughts also apart in
``skillops.usage.reasoning_tokens``) → ``TOOL`` / ``SKILL`` per recorded tool call.
Outcomes: ``cancelled`` is blocked (a user denial, an interrupt), and so is an ``error`` that is a
refusal (``Path not in workspace``, a policy denial); any other ``error`` is a failure, and a
``run_shell_command`` whose output reports a non-zero exit code or a signal is a failure
though its status says ``success``. Skills: ``activate_skill`` (its body is the
``<instructions>`` it returned) and reads of a ``SKILL.md``. A subagent's file
(``chats/<parent session>/<agent id>.jsonl``) nests under the call that names its agent id.
"""

from __future__ import annotations

import re
from pathlib import PurePath
from typing import Any

import msgspec

from .. import documents
from ..events.types import Outcome
from ..pricing.prices import REASONING_TOKENS
from ._input import Record, mapping
from ._outcome import gemini_refused
from ._skills import content_hash, skill_md_folder
from ._summary import Summary
from ._tree import Span, SpanTree, clip, keep_output, set_arguments

SHELL_TOOL = "run_shell_command"
_SKILL_TOOL = "activate_skill"
_READ_TOOLS = ("read_file", "read_many_files")
_EXIT_CODE = re.compile(r"^Exit Code: (-?\d+)\s*$", re.MULTILINE)
_SIGNAL = re.compile(r"^Signal: (\S+)\s*$", re.MULTILINE)
_INSTRUCTIONS = re.compile(r"<instructions>\n?(.*)\n\s*</instructions>", re.DOTALL)
_SKILL_PATH = re.compile(r"([A-Za-z0-9_.\-]+)[/\\]SKILL\.md\Z")
_FUNCTION_RESPONSE = "[Function Response:"
_CANCELLED_REQUEST = "Request cancelled."


class Message(msgspec.Struct):
    """A message of a conversation and the captured record it was last read from."""

    record: Record
    value: dict[str, Any]


class Conversation(msgspec.Struct):
    """One file's conversation, as the CLI would load it."""

    path: str
    meta: dict[str, Any]
    messages: dict[str, Message]
    subagent: bool


def _is_message(value: dict[str, Any]) -> bool:
    return isinstance(value.get("id"), str) and isinstance(value.get("type"), str)


def load(path: str, records: list[Record]) -> Conversation:
    """The conversation held by one file's captured records."""
    parts = PurePath(path).parts
    subagent = len(parts) >= 3 and parts[-3] == "chats"
    convo = Conversation(path=path, meta={}, messages={}, subagent=subagent)
    doc = documents.Document(meta={}, collections={}, removed=[])
    where: dict[str, Record] = {}  # message id -> the document line it came from
    for record in records:
        value = record.value
        if documents.is_document_line(value):
            documents.apply(doc, value)
            body = value.get(documents.RECORD)
            if isinstance(body, dict) and body.get("in") == "messages":
                where[str(body.get("id"))] = record
            continue
        _load_line(convo, record, value)
    if doc.meta or doc.collections:
        convo.meta = {**doc.meta, **convo.meta}
        for ident, message in doc.collections.get("messages", {}).items():
            if isinstance(message, dict) and ident in where:
                key = message["id"] if isinstance(message.get("id"), str) else ident
                convo.messages[key] = Message(where[ident], message)
    subagent = convo.meta.get("kind") == "subagent"
    convo.subagent = convo.subagent or subagent
    return convo


def _load_line(convo: Conversation, record: Record, value: dict[str, Any]) -> None:
    """One line of an appended ``.jsonl`` conversation, as the CLI's loader applies it."""
    if isinstance(value.get("$rewindTo"), str):
        ids = list(convo.messages)
        target = value["$rewindTo"]
        keep = ids[: ids.index(target)] if target in convo.messages else []
        convo.messages = {i: convo.messages[i] for i in keep}
    elif _is_message(value):
        convo.messages[value["id"]] = Message(record, value)
    elif isinstance(value.get("$set"), dict):
        update = value["$set"]
        if isinstance(update.get("messages"), list):
            convo.messages = {
                m["id"]: Message(record, m)
                for m in update["messages"]
                if isinstance(m, dict) and _is_message(m)
            }
        convo.meta.update({k: v for k, v in update.items() if k != "messages"})
    elif "sessionId" in value or "projectHash" in value:
        convo.meta.update({k: v for k, v in value.items() if k != "messages"})
        for m in value.get("messages") or []:  # a whole legacy record on one line
            if isinstance(m, dict) and _is_message(m):
                convo.messages[m["id"]] = Message(record, m)


def is_session(files: list[tuple[str, list[Record]]]) -> bool:
    """Whether the files hold a conversation (a prompt or a model response)."""
    return any(
        m.value.get("type") in ("user", "gemini")
        for path, recs in files
        for m in load(path, recs).messages.values()
    )


def text_of(content: Any) -> str:
    """The text of a message's content: a string or a Part list."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        content = [content]
    if isinstance(content, list):
        return "".join(
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


def result_text(result: Any) -> tuple[str, bool]:
    """(text, whether it is an error) of a tool call's ``result`` Part list."""
    texts: list[str] = []
    error = False
    for part in result if isinstance(result, list) else [result]:
        if not isinstance(part, dict):
            continue
        response = mapping(mapping(part.get("functionResponse")).get("response"))
        if "error" in response:
            error = True
            texts.append(str(response["error"]))
        elif "output" in response:
            out = response["output"]
            texts.append(out if isinstance(out, str) else msgspec.json.encode(out).decode())
        elif isinstance(part.get("text"), str):
            texts.append(part["text"])
    return "\n".join(texts), error


def gemini_outcome(name: str, status: Any, text: str) -> Outcome | None:
    """A recorded call's outcome; None for a status that is not final."""
    if status == "cancelled":
        return "blocked"
    if status == "error":
        # Refused by the workspace boundary or a policy: the request never ran.
        return "blocked" if gemini_refused(text) else "failure"
    if status != "success":
        return None
    if name == SHELL_TOOL:
        codes = _EXIT_CODE.findall(text)
        if codes and int(codes[-1]) != 0:
            return "failure"
        if not codes and _SIGNAL.search(text):  # killed by a signal: no exit code
            return "failure"
    return "success"


_TOKENS = (
    ("gen_ai.usage.input_tokens", ("input", "tool")),
    ("gen_ai.usage.output_tokens", ("output", "thoughts")),
    ("gen_ai.usage.cache_read.input_tokens", ("cached",)),
)


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


class _Walker:
    """Builds the spans of one conversation (the main one, or a subagent's under its call)."""

    def __init__(self, tree: SpanTree, summary: Summary, thread: str, parent: Span | None) -> None:
        self.tree = tree
        self.summary = summary
        self.thread = thread
        self.parent = parent
        self.chain: Span | None = None
        self.turns = 0
        self.calls: dict[str, Span] = {}  # agent id -> the call that started it

    def _new_chain(self, key: str, timestamp: str | None) -> Span:
        self.turns += 1
        name = f"{'subagent turn' if self.parent else 'turn'} {self.turns}"
        chain = self.tree.add("CHAIN", f"{self.thread}:turn:{key}", name, self.parent, timestamp)
        chain.attributes["skillops.turn"] = self.turns
        chain.attributes["gen_ai.operation.name"] = "invoke_agent"
        chain.attributes["gen_ai.conversation.id"] = self.thread
        self.chain = chain
        return chain

    def _ensure_chain(self, key: str, timestamp: str | None) -> Span:
        return self.chain if self.chain is not None else self._new_chain(key, timestamp)

    def walk(self, messages: list[Message]) -> None:
        for message in messages:
            value = message.value
            timestamp = value.get("timestamp") if isinstance(value.get("timestamp"), str) else None
            kind = value.get("type")
            ident = str(value.get("id"))
            if kind == "user":
                self._user(value, ident, timestamp)
            elif kind == "gemini":
                self._model(message, ident, timestamp)
            elif kind == "info" and text_of(value.get("content")).strip() == _CANCELLED_REQUEST:
                if self.chain is not None:
                    self.chain.attributes["skillops.turn.aborted"] = "cancelled"
                    self.chain.touch(timestamp)
            elif kind == "error" and self.chain is not None:
                self.chain.attributes["skillops.api_error"] = True
                self.chain.attributes["skillops.result.error"] = clip(
                    text_of(value.get("content")), 2000
                )
                self.chain.touch(timestamp)
            else:
                continue  # notices and warnings: no part of a turn
            if self.parent is None:
                self.summary.see(value, timestamp)

    def _user(self, value: dict[str, Any], ident: str, timestamp: str | None) -> None:
        text = text_of(value.get("content"))
        if text.startswith(_FUNCTION_RESPONSE) and self.chain is not None:
            self.chain.touch(timestamp)  # a tool result, before calls were recorded
            return
        shown = text_of(value.get("displayContent")) or text
        chain = self._new_chain(ident, timestamp)
        if shown.strip():
            chain.attributes["gen_ai.prompt"] = clip(shown, 2000)
        if self.parent is None:
            self.summary.prompt(shown)

    def _model(self, message: Message, ident: str, timestamp: str | None) -> None:
        value = message.value
        chain = self._ensure_chain(f"{message.record.source_id}:{message.record.offset}", timestamp)
        model = value.get("model") if isinstance(value.get("model"), str) else None
        llm = self.tree.add(
            "LLM", f"{self.thread}:message:{ident}", model or "model", chain, timestamp
        )
        llm.attributes["gen_ai.operation.name"] = "chat"
        llm.attributes["gen_ai.system"] = "gcp.gemini"
        llm.attributes["gen_ai.response.id"] = ident
        if model:
            llm.attributes["gen_ai.request.model"] = model
        text = text_of(value.get("content"))
        if text:
            llm.attributes["gen_ai.output.text"] = clip(text)
        tokens = value.get("tokens")
        if isinstance(tokens, dict):
            for attribute, fields in _TOKENS:
                counts = [_count(tokens.get(f)) for f in fields]
                if counts[0] is not None:  # the main count reported: the others add to it
                    llm.attributes[attribute] = sum(c for c in counts if c is not None)
            thoughts = _count(tokens.get("thoughts"))
            if thoughts and _count(tokens.get("output")) is not None:
                # Part of the output above, reported apart: ccusage's output leaves it out.
                llm.attributes[REASONING_TOKENS] = thoughts
        chain.touch(timestamp)
        for call in value.get("toolCalls") or []:
            if isinstance(call, dict):
                self._call(message, call, llm)

    def _call(self, message: Message, call: dict[str, Any], llm: Span) -> None:
        name = str(call.get("name") or "tool")
        call_id = call.get("id")
        if not isinstance(call_id, str) or not call_id:
            call_id = f"{message.record.source_id}:{message.record.offset}:{name}"
        args = mapping(call.get("args"))
        text, _error = result_text(call.get("result"))
        skill = _skill_name(name, args)
        span = self.tree.add(
            "SKILL" if skill else "TOOL", f"call:{call_id}", skill or name, llm, llm.start
        )
        span.attributes["gen_ai.operation.name"] = "execute_tool"
        span.attributes["gen_ai.tool.name"] = name
        span.attributes["gen_ai.tool.call.id"] = call_id
        set_arguments(span, args)
        timestamp = call.get("timestamp")
        span.touch(timestamp if isinstance(timestamp, str) else None)
        llm.touch(span.end)
        if self.chain is not None:
            self.chain.touch(span.end)
        keep_output(span, text)
        span.outcome = gemini_outcome(name, call.get("status"), text)
        if span.outcome in ("failure", "blocked"):
            span.attributes["skillops.result.error"] = clip(text, 2000)
        agent = call.get("agentId")
        if isinstance(agent, str) and agent:
            span.attributes["gen_ai.agent.id"] = agent
            self.calls[agent] = span
        if skill:
            span.attributes["skill.name"] = skill
            span.attributes["skill.activation"] = "tool" if name == _SKILL_TOOL else "path"
            folder = _skill_folder(name, args, self.summary.cwd)
            if folder:
                span.attributes["skill.directory"] = folder
            body = _skill_body(name, text)
            if body is not None and span.outcome == "success":
                span.attributes["skill.content_hash"] = content_hash(body)
            self.summary.skill(skill)
        else:
            self.summary.tool()


def _skill_name(name: str, args: dict[str, Any]) -> str | None:
    if name == _SKILL_TOOL:
        skill = args.get("name") or args.get("skill")
        return str(skill) if skill else _SKILL_TOOL
    if name in _READ_TOOLS:
        path = args.get("file_path") or args.get("absolute_path") or args.get("path")
        if isinstance(path, str):
            match = _SKILL_PATH.search(path)
            if match:
                return match.group(1)
    return None


def _skill_folder(name: str, args: dict[str, Any], cwd: str | None) -> str | None:
    """The folder of the ``SKILL.md`` a read tool loaded (``activate_skill`` names none)."""
    if name not in _READ_TOOLS:
        return None
    path = args.get("file_path") or args.get("absolute_path") or args.get("path")
    return skill_md_folder(path, cwd) if isinstance(path, str) else None


def _skill_body(name: str, text: str) -> str | None:
    if name != _SKILL_TOOL:
        return text
    match = _INSTRUCTIONS.search(text)
    return match.group(1) if match else None


def _merged(files: list[Conversation]) -> list[Message]:
    """The messages of one conversation kept in several files, each id once (the last copy)."""
    merged: dict[str, Message] = {}
    for convo in files:
        for ident, message in convo.messages.items():
            merged[ident] = message
    return list(merged.values())


def derive_gemini(
    tree: SpanTree, summary: Summary, native_id: str, files: list[tuple[str, list[Record]]]
) -> None:
    """Add the spans of one Gemini CLI session (its files, main first) to ``tree``."""
    convos = [load(path, recs) for path, recs in files]
    main = [c for c in convos if not c.subagent]
    walker = _Walker(tree, summary, native_id, None)
    walker.walk(_merged(main))
    for convo in main:
        meta = convo.meta
        for field in ("startTime", "lastUpdated"):
            if isinstance(meta.get(field), str):
                summary.see({}, meta[field])
        if isinstance(meta.get("summary"), str) and meta["summary"].strip():
            summary.title = meta["summary"].strip()
        dirs = meta.get("directories")
        if summary.cwd is None and isinstance(dirs, list) and dirs and isinstance(dirs[0], str):
            summary.cwd = dirs[0]
    by_agent: dict[str, list[Conversation]] = {}
    for convo in convos:
        if convo.subagent:
            agent = convo.meta.get("sessionId")
            key = agent if isinstance(agent, str) and agent else convo.path
            by_agent.setdefault(key, []).append(convo)
    for agent, parts in sorted(by_agent.items()):
        parent = walker.calls.get(agent)
        sub = _Walker(tree, summary, agent, parent)
        sub.walk(_merged(parts))
