"""Claude Code transcripts → spans.

Per turn a ``CHAIN`` (the user's prompt) → ``LLM`` (one per API response, ``message.id``; the
records of one response are grouped and the last one's usage is the final count) → ``TOOL``
and ``SKILL`` children (one per ``tool_use``). Subagents of every era nest under the call that
spawned them: 2.1.x ``subagents/agent-<id>.jsonl`` and 2.0.x ``agent-<id>.jsonl`` files are
linked by the spawning call's ``toolUseResult.agentId`` (or, failing that, by their prompt);
1.0.x inline ``isSidechain`` chains by their prompt.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from ._input import Record, mapping
from ._outcome import TURN_STOPPERS, claude_outcome, result_text
from ._skills import content_hash, injected_body, loaded_body
from ._summary import Summary
from ._tree import Span, SpanTree, as_json, clip

_SPAWN_TOOLS = {"Task", "Agent"}
_COMMAND_NAME = re.compile(r"<command-name>/?([^<\s]+)</command-name>")
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
    out: dict[str, Any] = {}
    for source, target in (
        ("input_tokens", "gen_ai.usage.input_tokens"),
        ("output_tokens", "gen_ai.usage.output_tokens"),
        ("cache_read_input_tokens", "gen_ai.usage.cache_read.input_tokens"),
        ("cache_creation_input_tokens", "gen_ai.usage.cache_creation.input_tokens"),
    ):
        value = usage.get(source)
        if isinstance(value, int) and not isinstance(value, bool):
            out[target] = value
    return out


class _Thread:
    """Walks one conversation thread (the main one, or one subagent's) into spans."""

    def __init__(
        self,
        tree: SpanTree,
        summary: Summary,
        parent: Span | None,
        key: str,
        agent_id: str | None,
        spawned: dict[str, Span],
        prompts: dict[str, Span],
    ) -> None:
        self.tree = tree
        self.summary = summary
        self.parent = parent
        self.key = key
        self.agent_id = agent_id
        self.spawned = spawned  # agentId -> the call that spawned it
        self.prompts = prompts  # Task/Agent prompt text -> the call
        self.chain: Span | None = None
        self.turn = 0
        self.messages: dict[str, Span] = {}
        self.tools: dict[str, Span] = {}
        # Results written before their call (real files have them): applied when it appears.
        self.early: dict[str, tuple[Record, dict[str, Any], str | None]] = {}
        self.pending_command: str | None = None

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
            if kind == "user":
                self._user(record, timestamp)
            elif kind == "assistant":
                self._assistant(record, timestamp)
            if self.chain is not None and kind in ("user", "assistant", "system", "attachment"):
                self.chain.touch(timestamp)
        for call_id, (record, _block, _ts) in self.early.items():
            self.summary.error(record, f"tool_result for unknown tool_use {call_id!r}")

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
            return
        if text.startswith(TURN_STOPPERS):
            self._stop_pending(text)
            return
        if not text or text.startswith(_NOT_A_PROMPT):
            return
        command = _COMMAND_NAME.search(text)
        self.pending_command = command.group(1) if command else None
        self._new_chain(record, timestamp, text)

    def _stop_pending(self, text: str) -> None:
        """The user or a hook stopped the turn: calls of it still without a result were stopped."""
        if self.chain is None:
            return
        chain_id = self.chain.span_id
        if text.startswith("[Request interrupted by user"):  # the verdict reads it (_ending.py)
            self.chain.attributes["skillops.turn.aborted"] = "interrupted"
        for span in self.tools.values():
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
        span.outcome = claude_outcome(
            is_error=bool(block.get("is_error")),
            text=text,
            tool_use_result=tur,
            denial_kind=value.get("toolDenialKind"),
        )
        span.touch(timestamp)
        if span.outcome != "success":
            span.attributes["skillops.result.error"] = clip(text or str(tur), 2000)
        if isinstance(tur, dict) and isinstance(tur.get("agentId"), str):
            self.spawned[tur["agentId"]] = span
            span.attributes["gen_ai.agent.id"] = tur["agentId"]

    def _meta(self, record: Record, text: str, timestamp: str | None) -> None:
        source = record.value.get("sourceToolUseID")
        linked = self.tools.get(source) if isinstance(source, str) else None
        if linked is not None and linked.kind == "SKILL":
            directory, body = loaded_body(text)
            linked.attributes["skill.content_hash"] = content_hash(body)
            if directory:
                linked.attributes["skill.directory"] = directory
            return
        injected = injected_body(text)
        if injected is None:
            return
        # A user-typed slash command: the skill loads without a Skill tool call.
        directory, body = injected
        name = self.pending_command or directory.rstrip("/").rsplit("/", 1)[-1]
        chain = self._ensure_chain(record, timestamp)
        uuid = record.value.get("uuid") or f"{record.source_id}:{record.offset}"
        span = self.tree.add("SKILL", f"{self.key}:injection:{uuid}", name, chain, timestamp)
        span.attributes["skill.name"] = name
        span.attributes["skill.activation"] = "injection"
        span.attributes["skill.content_hash"] = content_hash(body)
        span.attributes["skill.directory"] = directory
        span.outcome = "success"
        self.summary.skill(name)

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
        tool_input = mapping(block.get("input"))
        is_skill = name == "Skill"
        span = self.tree.add(
            "SKILL" if is_skill else "TOOL", f"call:{call_id}", name, llm, timestamp
        )
        span.attributes["gen_ai.operation.name"] = "execute_tool"
        span.attributes["gen_ai.tool.name"] = name
        span.attributes["gen_ai.tool.call.id"] = call_id
        span.attributes["gen_ai.tool.call.arguments"] = as_json(tool_input)
        if is_skill:
            skill = tool_input.get("skill") or tool_input.get("command") or "unknown"
            span.name = str(skill)
            span.attributes["skill.name"] = str(skill)
            span.attributes["skill.activation"] = "tool"
            self.summary.skill(str(skill))
        else:
            self.summary.tool()
        attribution = record.value.get("attributionSkill")
        if isinstance(attribution, str) and attribution and not is_skill:
            span.attributes["skill.name"] = attribution
        if name in _SPAWN_TOOLS:
            prompt = tool_input.get("prompt")
            if isinstance(prompt, str):
                self.prompts.setdefault(prompt.strip(), span)
        self.tools[call_id] = span
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


def derive_claude(tree: SpanTree, summary: Summary, files: list[tuple[str, list[Record]]]) -> None:
    """Fold a Claude Code session's files (``(path, records)``, main file first) into ``tree``."""
    spawned: dict[str, Span] = {}
    prompts: dict[str, Span] = {}
    subagents: list[tuple[str, str | None, list[Record]]] = []
    for path, records in files:
        agent_ids = {r.value.get("agentId") for r in records if r.value.get("agentId")}
        if agent_ids and all(
            r.value.get("isSidechain") for r in records if "isSidechain" in r.value
        ):
            agent_id = sorted(str(a) for a in agent_ids)[0]
            subagents.append((path, agent_id, records))
            continue
        main, chains = _inline_sidechains(records)
        _Thread(tree, summary, None, "main", None, spawned, prompts).walk(main)
        for n, chain in enumerate(chains):
            subagents.append((f"{path}#sidechain{n}", None, chain))
    for key, sub_id, records in subagents:
        parent: Span | None = spawned.get(sub_id) if sub_id else None
        if parent is None:
            parent = prompts.get(_first_prompt(records))
        thread = _Thread(tree, summary, parent, f"agent:{sub_id or key}", sub_id, spawned, prompts)
        thread.walk(records)
