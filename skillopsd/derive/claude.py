"""Claude Code transcripts → spans.

Per turn a ``CHAIN`` (the user's prompt) → ``LLM`` (one per API response, ``message.id``; the
records of one response are grouped and the last one's usage is the final count) → ``TOOL``
and ``SKILL`` children (one per ``tool_use``). Subagents of every era nest under the call that
spawned them: 2.1.x ``subagents/agent-<id>.jsonl`` and 2.0.x ``agent-<id>.jsonl`` files are
linked by the spawning call's ``toolUseResult.agentId`` (or, failing that, by their prompt);
1.0.x inline ``isSidechain`` chains by their prompt. When a 2.1.12–2.1.42 subagent has no file
(copied or synced sessions), its messages are read from the ``agent_progress`` records that
mirror them in the parent file; a subagent with a file is read from the file only.

Tokens: a subagent's final response is in its own file, but neither the ``agent_progress``
mirror nor the parent file has it: its usage is only in the spawning call's result
(``toolUseResult.usage``). When the subagent has no file of its own and none of the responses
read for it reports that same usage, that usage becomes one ``LLM`` span of its own
(``skillops.usage.source = tool_result``) under the subagent, counted once however often the
result is written.

Titles: a custom or AI title, else a ``summary`` record whose ``leafUuid`` is a record of this
session (summaries name the conversation they summarise, often another one), else a plan's
heading for a plan-mode session (``Implement the following plan:``), else the first prompt.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import msgspec

from ..pricing.prices import CACHE_WRITE_1H
from ._builtins import is_builtin
from ._input import Record, count, mapping
from ._outcome import (
    TURN_STOPPERS,
    claude_not_run,
    claude_outcome,
    claude_skill_not_loaded,
    result_text,
)
from ._skills import injected_body, loaded_body, unsubstituted
from ._summary import Summary
from ._tree import Span, SpanTree, clip, keep_output, set_arguments

_SPAWN_TOOLS = {"Task", "Agent"}
_COMMAND_NAME = re.compile(r"<command-name>/?([^<\s]+)</command-name>")
_COMMAND_ARGS = re.compile(r"<command-args>(.*?)</command-args>", re.DOTALL)
_PLAN_PROMPT = "Implement the following plan:"
_NOT_A_PROMPT = (
    "[Request interrupted by user",
    "<local-command-stdout>",
    "<local-command-caveat>",
    "Caveat: The messages below were generated",
)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            b["text"]
            for b in content
            if isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)
        )
    return ""


def _usage_attributes(usage: dict[str, Any]) -> dict[str, Any]:
    """OpenTelemetry GenAI usage: ``input_tokens`` includes cached input, as Codex reports it.

    Anthropic's ``input_tokens`` counts only the uncached part; cache reads and writes are
    added to it, and kept as their own attributes for the breakdown.
    """
    out: dict[str, Any] = {}
    uncached = count(usage.get("input_tokens"))
    read = count(usage.get("cache_read_input_tokens"))
    written = count(usage.get("cache_creation_input_tokens"))
    if uncached is not None:
        out["gen_ai.usage.input_tokens"] = uncached + (read or 0) + (written or 0)
    output = count(usage.get("output_tokens"))
    if output is not None:
        out["gen_ai.usage.output_tokens"] = output
    if read is not None:
        out["gen_ai.usage.cache_read.input_tokens"] = read
    if written is not None:
        out["gen_ai.usage.cache_creation.input_tokens"] = written
        # Writes kept for an hour cost more than 5-minute ones (pricing/ reads the split).
        hour = count(mapping(usage.get("cache_creation")).get("ephemeral_1h_input_tokens"))
        if hour:
            out[CACHE_WRITE_1H] = min(hour, written)
    return out


class _Progress:
    """One subagent's messages as ``agent_progress`` records mirrored them in the parent file."""

    def __init__(self, agent_id: str | None, call_id: str | None, prompt: str) -> None:
        self.agent_id = agent_id
        self.call_id = call_id
        self.prompt = prompt
        self.records: list[Record] = []
        self.seen: set[str] = set()

    def add(self, record: Record, message: dict[str, Any]) -> None:
        """Add one mirrored message; a message mirrored again is read once."""
        inner = mapping(message.get("message"))
        key = message.get("uuid")
        if not isinstance(key, str):
            key = msgspec.json.encode([message.get("type"), inner.get("id"), inner]).decode()
        if key in self.seen:
            return
        self.seen.add(key)
        self.records.append(Record(record.source_id, record.offset, record.index, message))


class _Shared:
    """What the threads of one session share: calls by id, spawned subagents, progress."""

    def __init__(self) -> None:
        self.calls: dict[str, Span] = {}  # tool_use id -> its span, every thread
        self.spawned: dict[str, Span] = {}  # agentId -> the call that spawned it
        self.prompts: dict[str, Span] = {}  # Task/Agent prompt text -> the call
        self.progress: dict[str, _Progress] = {}  # agentId (or spawning call id) -> messages
        self.uuids: set[str] = set()  # every record uuid of the session
        self.summaries: list[tuple[str, str]] = []  # (summary, leafUuid), in file order
        # Spawning call id -> the subagent's final response as its result reports it.
        self.finals: dict[str, _Final] = {}


class _Final(msgspec.Struct, frozen=True):
    """A subagent's final response, known only from the result of the call that spawned it."""

    call: Span
    agent_id: str
    usage: dict[str, Any]
    model: str | None
    prompt: str | None
    timestamp: str | None


class _Thread:
    """Walks one conversation thread (the main one, or one subagent's) into spans."""

    def __init__(
        self,
        tree: SpanTree,
        summary: Summary,
        parent: Span | None,
        key: str,
        agent_id: str | None,
        shared: _Shared,
    ) -> None:
        self.tree = tree
        self.summary = summary
        self.parent = parent
        self.key = key
        self.agent_id = agent_id
        self.shared = shared
        self.chain: Span | None = None
        self.turn = 0
        self.messages: dict[str, Span] = {}
        self.tools: dict[str, Span] = {}
        # Results written before their call (real files have them): applied when it appears.
        self.early: dict[str, tuple[Record, dict[str, Any], str | None]] = {}
        self.pending_command: str | None = None
        self.pending_args: str | None = None  # what the user typed after that command
        # The ``args`` of each Skill call: its injected body holds them in its $ARGUMENTS.
        self.skill_args: dict[str, str] = {}
        # Calls still waiting when the conversation was compacted: their result is lost, so a
        # later interrupt did not stop them (their outcome stays unknown).
        self.lost: set[str] = set()

    def _new_chain(self, record: Record, timestamp: str | None, prompt: str) -> Span:
        self.turn += 1
        uuid = record.value.get("uuid") or f"{record.source_id}:{record.offset}:{record.index}"
        chain = self.tree.add(
            "CHAIN",
            f"{self.key}:{uuid}",
            f"{'subagent turn' if self.parent else 'turn'} {self.turn}",
            self.parent,
            timestamp,
        )
        chain.attributes["gen_ai.operation.name"] = "invoke_agent"
        chain.attributes["skillops.turn"] = self.turn
        if prompt:
            chain.attributes["gen_ai.prompt"] = clip(prompt, 2000)
            if self.parent is None:
                command = _COMMAND_NAME.search(prompt)
                self.summary.prompt(prompt, command=f"/{command.group(1)}" if command else None)
        if self.agent_id:
            chain.attributes["gen_ai.agent.id"] = self.agent_id
        self.chain = chain
        return chain

    def _ensure_chain(self, record: Record, timestamp: str | None) -> Span:
        return self.chain or self._new_chain(record, timestamp, "")

    def walk(self, records: Iterable[Record]) -> None:
        for record in records:
            value = record.value
            kind = value.get("type")
            timestamp = value.get("timestamp") if isinstance(value.get("timestamp"), str) else None
            self.summary.see(value, timestamp)
            uuid = value.get("uuid")
            if isinstance(uuid, str):
                self.shared.uuids.add(uuid)
            if kind == "user":
                self._user(record, timestamp)
            elif kind == "assistant":
                self._assistant(record, timestamp)
            elif kind == "progress":
                self._progress(record)
            elif kind == "system" and value.get("subtype") == "compact_boundary":
                self._compacted()
            elif kind == "summary":
                text, leaf = value.get("summary"), value.get("leafUuid")
                if isinstance(text, str) and isinstance(leaf, str) and text.strip():
                    self.shared.summaries.append((text.strip(), leaf))
            if self.chain is not None and kind in ("user", "assistant", "system", "attachment"):
                self.chain.touch(timestamp)
        for call_id, (record, _block, _ts) in self.early.items():
            self.summary.error(record, f"tool_result for unknown tool_use {call_id!r}")

    def _progress(self, record: Record) -> None:
        """Keep a subagent message mirrored by ``agent_progress`` (read once all files are)."""
        value = record.value
        data = mapping(value.get("data"))
        if data.get("type") != "agent_progress":
            return
        message = mapping(data.get("message"))
        if message.get("type") not in ("user", "assistant"):
            return
        agent = data.get("agentId") if isinstance(data.get("agentId"), str) else None
        call = value.get("parentToolUseID")
        call_id = call if isinstance(call, str) else None
        key = agent or call_id
        if key is None:
            self.summary.error(record, "agent_progress without agentId or parentToolUseID")
            return
        stream = self.shared.progress.get(key)
        if stream is None:
            prompt = data.get("prompt")
            stream = _Progress(agent, call_id, prompt if isinstance(prompt, str) else "")
            self.shared.progress[key] = stream
        stream.add(record, message)

    def _compacted(self) -> None:
        for call_id, span in self.tools.items():
            if span.outcome is None:
                self.lost.add(call_id)
                span.attributes["skillops.result.lost"] = True

    # --- user records ------------------------------------------------------------------

    def _user(self, record: Record, timestamp: str | None) -> None:
        value = record.value
        message = mapping(value.get("message"))
        content = message.get("content")
        results = (
            [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]
            if isinstance(content, list)
            else []
        )
        if results:
            for block in results:
                self._result(record, block, timestamp)
            return
        text = _text_of(content)
        if value.get("isMeta"):
            self._meta(record, text, timestamp)
            return
        if value.get("isCompactSummary") or value.get("isVisibleInTranscriptOnly"):
            # The summary a compaction writes is context for the model, not a new prompt.
            if self.chain is not None:
                self.chain.attributes["skillops.compacted"] = True
            self._compacted()
            return
        if text.startswith(TURN_STOPPERS):
            self._stop_pending(text)
            return
        if text.startswith("<local-command-stdout>"):
            self.pending_command = None  # a built-in command ran locally: no prompt follows
        if not text or text.startswith(_NOT_A_PROMPT):
            return
        command = _COMMAND_NAME.search(text)
        self.pending_command = command.group(1) if command else None
        given = _COMMAND_ARGS.search(text) if command else None
        self.pending_args = given.group(1) if given else None
        self._new_chain(record, timestamp, text)

    def _stop_pending(self, text: str) -> None:
        """The user or a hook stopped the turn: calls of it still without a result were stopped."""
        if self.chain is None:
            return
        chain_id = self.chain.span_id
        if text.startswith("[Request interrupted by user"):  # the verdict reads it (_ending.py)
            self.chain.attributes["skillops.turn.aborted"] = "interrupted"
        for call_id, span in self.tools.items():
            if call_id in self.lost:
                continue
            llm = self.tree.spans.get(span.parent or "")
            if span.outcome is None and llm is not None and llm.parent == chain_id:
                span.outcome = "blocked"
                span.attributes["skillops.result.error"] = clip(text, 2000)

    def _result(self, record: Record, block: dict[str, Any], timestamp: str | None) -> None:
        value = record.value
        call_id = block.get("tool_use_id")
        span = self.tools.get(call_id) if isinstance(call_id, str) else None
        if span is None:
            if isinstance(call_id, str):
                self.early[call_id] = (record, block, timestamp)
            else:
                self.summary.error(record, "tool_result without a tool_use_id")
            return
        tur = value.get("toolUseResult")
        text = result_text(block.get("content"))
        span.touch(timestamp)
        keep_output(span, text)
        not_run = claude_not_run(text)
        if not_run is not None:
            # Cancelled before it started because a parallel call failed: it never ran, so
            # it neither failed nor succeeded (outcome unknown), and says why.
            span.outcome = None
            span.attributes["skillops.not_run"] = not_run
            span.attributes["skillops.result.error"] = clip(text, 2000)
            return
        span.outcome = claude_outcome(
            is_error=bool(block.get("is_error")),
            text=text,
            tool_use_result=tur,
            denial_kind=value.get("toolDenialKind"),
        )
        if span.outcome != "success":
            span.attributes["skillops.result.error"] = clip(text or str(tur), 2000)
        if span.kind == "SKILL" and span.outcome == "failure" and claude_skill_not_loaded(text):
            # The skill never loaded: the call stays, as a failed tool call.
            span.kind = "TOOL"
            requested = span.attributes.pop("skill.name", None)
            span.attributes.pop("skill.activation", None)
            if requested is not None:
                span.attributes["skillops.skill.requested"] = requested
        if isinstance(tur, dict) and isinstance(tur.get("agentId"), str):
            self.shared.spawned[tur["agentId"]] = span
            span.attributes["gen_ai.agent.id"] = tur["agentId"]
            usage = tur.get("usage")
            if isinstance(usage, dict) and isinstance(call_id, str):
                model, prompt = tur.get("resolvedModel"), tur.get("prompt")
                self.shared.finals.setdefault(
                    call_id,
                    _Final(
                        span,
                        tur["agentId"],
                        usage,
                        model if isinstance(model, str) else None,
                        prompt if isinstance(prompt, str) else None,
                        timestamp,
                    ),
                )

    def _meta(self, record: Record, text: str, timestamp: str | None) -> None:
        source = record.value.get("sourceToolUseID")
        linked = self.tools.get(source) if isinstance(source, str) else None
        if linked is not None and linked.kind == "SKILL":
            directory, body = loaded_body(text)
            body = unsubstituted(text, body, self.skill_args.get(str(source)))
            linked.attributes["skill.content_hash"] = self.tree.skill_body(body)
            if directory:
                linked.attributes["skill.directory"] = directory
            return
        command, self.pending_command = self.pending_command, None
        args, self.pending_args = self.pending_args, None
        injected = injected_body(text)
        if injected is not None:
            # A user-typed slash command loaded a skill from a folder.
            directory, body = injected
            body = unsubstituted(text, body, args)
            name = command or directory.rstrip("/").rsplit("/", 1)[-1]
            self._slash(record, timestamp, name, "injection", body, directory)
        elif command is not None and text.strip() and not text.startswith(_NOT_A_PROMPT):
            if is_builtin("claude", command):
                # Claude Code's own command (/init, /review…) prompting the model: not a skill.
                chain = self._ensure_chain(record, timestamp)
                chain.attributes["skillops.command"] = f"/{command}"
                return
            # A plugin, user or bundled slash command injected as a prompt (no folder line).
            self._slash(record, timestamp, command, "command", text, None)

    def _slash(
        self,
        record: Record,
        timestamp: str | None,
        name: str,
        activation: str,
        body: str,
        directory: str | None,
    ) -> None:
        chain = self._ensure_chain(record, timestamp)
        uuid = record.value.get("uuid") or f"{record.source_id}:{record.offset}"
        span = self.tree.add("SKILL", f"{self.key}:injection:{uuid}", name, chain, timestamp)
        span.attributes["skill.name"] = name
        span.attributes["skill.activation"] = activation
        span.attributes["skill.content_hash"] = self.tree.skill_body(body)
        if directory:
            span.attributes["skill.directory"] = directory
        span.outcome = "success"

    # --- assistant records -------------------------------------------------------------

    def _assistant(self, record: Record, timestamp: str | None) -> None:
        value = record.value
        message = mapping(value.get("message"))
        chain = self._ensure_chain(record, timestamp)
        mid = message.get("id") if isinstance(message.get("id"), str) else None
        key = str(mid or value.get("uuid") or f"{record.source_id}:{record.offset}")
        model = message.get("model") if isinstance(message.get("model"), str) else None
        llm = self.messages.get(key)
        if llm is None:
            llm = self.tree.add("LLM", f"{self.key}:{key}", model or "model", chain, timestamp)
            llm.attributes["gen_ai.operation.name"] = "chat"
            llm.attributes["gen_ai.system"] = "anthropic"
            if model:
                llm.attributes["gen_ai.request.model"] = model
            if mid:
                llm.attributes["gen_ai.response.id"] = mid
            self.messages[key] = llm
        llm.touch(timestamp)
        usage = message.get("usage")
        if isinstance(usage, dict) and model != "<synthetic>":
            # The records of one response repeat its usage; the last one is final.
            llm.attributes.update(_usage_attributes(usage))
        if value.get("isApiErrorMessage") or value.get("error"):
            llm.attributes["skillops.api_error"] = True
        content = message.get("content")
        if not isinstance(content, list):
            return
        for block in content:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "text" and isinstance(block.get("text"), str):
                previous = llm.attributes.get("gen_ai.output.text")
                text = block["text"] if not previous else f"{previous}\n{block['text']}"
                llm.attributes["gen_ai.output.text"] = clip(text)
            elif block.get("type") == "tool_use":
                self._tool_use(record, block, llm, timestamp)

    def _tool_use(
        self, record: Record, block: dict[str, Any], llm: Span, timestamp: str | None
    ) -> None:
        call_id = block.get("id")
        name = str(block["name"]) if isinstance(block.get("name"), str) else "unknown"
        if not isinstance(call_id, str):
            self.summary.error(record, "tool_use without an id")
            return
        if call_id in self.shared.calls:
            return  # one call, however often it is written
        tool_input = mapping(block.get("input"))
        is_skill = name == "Skill"
        span = self.tree.add(
            "SKILL" if is_skill else "TOOL", f"call:{call_id}", name, llm, timestamp
        )
        span.attributes["gen_ai.operation.name"] = "execute_tool"
        span.attributes["gen_ai.tool.name"] = name
        span.attributes["gen_ai.tool.call.id"] = call_id
        set_arguments(span, tool_input)
        if is_skill:
            skill = tool_input.get("skill") or tool_input.get("command") or "unknown"
            span.name = str(skill)
            span.attributes["skill.name"] = str(skill)
            span.attributes["skill.activation"] = "tool"
            args = tool_input.get("args")
            if isinstance(args, str):
                self.skill_args[call_id] = args
        else:
            self.summary.tool()
        attribution = record.value.get("attributionSkill")
        if isinstance(attribution, str) and attribution and not is_skill:
            span.attributes["skill.name"] = attribution
        if name in _SPAWN_TOOLS:
            prompt = tool_input.get("prompt")
            if isinstance(prompt, str):
                self.shared.prompts.setdefault(prompt.strip(), span)
        self.tools[call_id] = span
        self.shared.calls[call_id] = span
        early = self.early.pop(call_id, None)
        if early is not None:
            self._result(*early)


def _first_prompt(records: list[Record]) -> str:
    for record in records:
        if record.value.get("type") == "user":
            message = record.value.get("message")
            if isinstance(message, dict):
                text = _text_of(message.get("content")).strip()
                if text:
                    return text
    return ""


def _inline_sidechains(records: list[Record]) -> tuple[list[Record], list[list[Record]]]:
    """Split a 1.0.x main file into its own records and its inline subagent chains."""
    main = [r for r in records if not r.value.get("isSidechain")]
    side = [r for r in records if r.value.get("isSidechain")]
    chains: list[list[Record]] = []
    index: dict[str, int] = {}
    for record in side:
        parent = record.value.get("parentUuid")
        if isinstance(parent, str) and parent in index:
            n = index[parent]
        else:
            n = len(chains)
            chains.append([])
        chains[n].append(record)
        uuid = record.value.get("uuid")
        if isinstance(uuid, str):
            index[uuid] = n
    return main, chains


def _plan_heading(prompt: str) -> str | None:
    """The heading of the plan a plan-mode session implements."""
    plan = prompt[len(_PLAN_PROMPT) :] if prompt.startswith(_PLAN_PROMPT) else ""
    for line in plan.splitlines():
        heading = line.strip().lstrip("#").strip()
        if heading:
            return heading.removeprefix("Plan:").strip() or heading
    return None


def _progress_records(stream: _Progress) -> list[Record]:
    """The mirrored messages, led by the prompt when the mirror did not include it."""
    records = stream.records
    first = records[0].value if records else {}
    if not stream.prompt or (
        first.get("type") == "user" and _text_of(mapping(first.get("message")).get("content"))
    ):
        return records
    lead = records[0]
    prompt = {
        "type": "user",
        "uuid": f"prompt:{stream.agent_id or stream.call_id}",
        "timestamp": first.get("timestamp"),
        "message": {"role": "user", "content": stream.prompt},
    }
    return [Record(lead.source_id, lead.offset, lead.index, prompt), *records]


# What a response's request fixed: the same in every record of it, while the output count
# grows as it streams, so these tell one response from another.
_REQUEST_KEYS = (
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_creation.input_tokens",
)


def _final_response(tree: SpanTree, below: dict[str | None, list[Span]], final: _Final) -> bool:
    """Count a subagent's final response unless a response read for it is that response;
    whether the subagent is known by that response alone (none of its messages were read).

    ``below`` holds each span's children. A response read for the subagent with the same
    request figures is the final one, its usage possibly caught mid-stream: the result's is
    its last word, as the last record of a response is."""
    usage = _usage_attributes(final.usage)
    if not usage:
        return False
    chains: list[Span] = []
    todo = [final.call]
    while todo:
        span = todo.pop()
        if span.kind == "LLM" and all(
            span.attributes.get(k) == usage.get(k) for k in _REQUEST_KEYS
        ):
            span.attributes.update(usage)
            return False  # the mirror or an inline chain held the final response
        if span.kind == "CHAIN" and span.parent == final.call.span_id:
            chains.append(span)
        todo.extend(below.get(span.span_id, []))
    # Under the subagent's last turn when its messages were read, else under a turn of its own.
    parent = max(chains, key=lambda c: _turn(c), default=None)
    call_id = final.call.attributes.get("gen_ai.tool.call.id")
    if parent is None:
        key = f"agent:{final.agent_id}:final-turn:{call_id}"
        parent = tree.add("CHAIN", key, "subagent turn 1", final.call, final.timestamp)
        parent.attributes["gen_ai.operation.name"] = "invoke_agent"
        parent.attributes["gen_ai.agent.id"] = final.agent_id
        parent.attributes["skillops.turn"] = 1
        if final.prompt:
            parent.attributes["gen_ai.prompt"] = clip(final.prompt, 2000)
    key = f"agent:{final.agent_id}:final:{call_id}"
    llm = tree.add("LLM", key, final.model or "model", parent, None)
    llm.start = llm.end = final.timestamp
    llm.attributes["gen_ai.operation.name"] = "chat"
    llm.attributes["gen_ai.system"] = "anthropic"
    llm.attributes["gen_ai.agent.id"] = final.agent_id
    if final.model:
        llm.attributes["gen_ai.request.model"] = final.model
    llm.attributes["skillops.usage.source"] = "tool_result"
    llm.attributes.update(usage)
    below.setdefault(parent.span_id, []).append(llm)
    if not chains:
        below.setdefault(final.call.span_id, []).append(parent)
    return not chains


def _turn(chain: Span) -> int:
    turn = chain.attributes.get("skillops.turn")
    return turn if isinstance(turn, int) else 0


def is_session(files: list[tuple[str, list[Record]]]) -> bool:
    """Whether the files hold a conversation; a file of only ``summary`` records does not."""
    return any(r.value.get("type") != "summary" for _path, records in files for r in records)


def derive_claude(tree: SpanTree, summary: Summary, files: list[tuple[str, list[Record]]]) -> None:
    """Fold a Claude Code session's files (``(path, records)``, main file first) into ``tree``."""
    shared = _Shared()
    subagents: list[tuple[str, str | None, list[Record]]] = []
    for path, records in files:
        agent_ids = {r.value.get("agentId") for r in records if r.value.get("agentId")}
        if agent_ids and all(
            r.value.get("isSidechain") for r in records if "isSidechain" in r.value
        ):
            subagents.append((path, sorted(str(a) for a in agent_ids)[0], records))
            continue
        main, chains = _inline_sidechains(records)
        _Thread(tree, summary, None, "main", None, shared).walk(main)
        for n, chain in enumerate(chains):
            subagents.append((f"{path}#sidechain{n}", None, chain))
    with_file = {sub_id for _key, sub_id, _records in subagents if sub_id}
    for key, sub_id, records in subagents:
        parent: Span | None = shared.spawned.get(sub_id) if sub_id else None
        if parent is None:
            parent = shared.prompts.get(_first_prompt(records))
        thread = _Thread(tree, summary, parent, f"agent:{sub_id or key}", sub_id, shared)
        thread.walk(records)
    for stream in shared.progress.values():
        call = shared.calls.get(stream.call_id or "")
        agent_id: str | None = stream.agent_id
        if agent_id is None and call is not None:
            linked = call.attributes.get("gen_ai.agent.id")
            agent_id = linked if isinstance(linked, str) else None
        if agent_id in with_file or not stream.records:
            continue  # the subagent's own file is the whole record of it
        parent = (
            call or shared.spawned.get(agent_id or "") or shared.prompts.get(stream.prompt.strip())
        )
        key = f"agent:{agent_id}" if agent_id else f"agent:progress:{stream.call_id}"
        _Thread(tree, summary, parent, key, agent_id, shared).walk(_progress_records(stream))
    alone = 0  # subagents known only by their final response
    below: dict[str | None, list[Span]] = {}
    for span in tree.spans.values():
        below.setdefault(span.parent, []).append(span)
    for final in shared.finals.values():
        if final.agent_id not in with_file:
            alone += _final_response(tree, below, final)
    if alone:
        summary.tokens_note = (
            f"{alone} subagent{'s' if alone > 1 else ''} without a transcript of"
            f" {'their' if alone > 1 else 'its'} own: only the final response is counted"
            " (from the Task result)"
        )
    # Skills are what loaded: a Skill call whose skill was unknown is a failed tool call.
    summary.skills = []
    for span in tree.spans.values():
        name = span.attributes.get("skill.name")
        if span.kind == "SKILL" and isinstance(name, str):
            summary.skill(name)
    if summary.title is None:
        summary.title = next(
            (text for text, leaf in reversed(shared.summaries) if leaf in shared.uuids), None
        ) or _plan_heading(summary.first_prompt or "")
