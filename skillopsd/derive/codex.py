"""Codex rollouts → spans.

Per turn (``turn_id``) a ``CHAIN`` → ``LLM`` (one per model response: the reasoning, messages
and calls between two inputs; ``token_count`` gives its usage) → ``TOOL`` / ``SKILL`` children
for ``function_call``, ``custom_tool_call`` and ``web_search_call``. Outcomes come from
``exec_command_end`` / ``patch_apply_end`` where persisted, else from the output text; calls
left pending by ``turn_aborted`` were stopped by the user. A read of an advertised skill's
``SKILL.md`` is a ``SKILL`` span. ``spawn_agent`` child threads (their own rollout files)
nest under the spawning call; a forked child's replay of its parent's history is skipped.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from ._ids import span_id
from ._input import Record, count, mapping
from ._outcome import (
    codex_exec_end,
    codex_exec_header,
    codex_mcp_end,
    codex_outcome,
    codex_output_text,
    codex_poll_outcome,
    result_text,
)
from ._skills import skill_md_folder
from ._summary import Summary
from ._tree import Span, SpanTree, clip, keep_output, set_arguments

_MODEL_ITEMS = {
    "reasoning",
    "function_call",
    "custom_tool_call",
    "web_search_call",
    "local_shell_call",
}
_CALL_ITEMS = {"function_call", "custom_tool_call", "web_search_call", "local_shell_call"}
_OUTPUT_ITEMS = {"function_call_output", "custom_tool_call_output"}
_SKILL_PATH = re.compile(r"([^\s'\"`;|&<>()]*?/)?([A-Za-z0-9_.\-]+)/SKILL\.md")
_ADVERTISED = re.compile(r"^- ([^:\n]+?): .*?\(file: ([^)\n]*SKILL\.md)\)", re.MULTILINE)
_INJECTED = (
    "<environment_context>",
    "# AGENTS.md instructions",
    "<permissions instructions>",
    "<skills_instructions>",
    "<turn_aborted>",
    "<user_instructions>",
    "<subagent_notification>",
)
_USAGE = (
    ("input_tokens", "gen_ai.usage.input_tokens"),
    ("output_tokens", "gen_ai.usage.output_tokens"),
    ("cached_input_tokens", "gen_ai.usage.cache_read.input_tokens"),
)
_decoder = msgspec.json.Decoder()


def _message_text(payload: dict[str, Any]) -> str:
    return result_text(payload.get("content"))


def _arguments(payload: dict[str, Any]) -> Any:
    raw = payload.get("arguments")
    if isinstance(raw, str):
        try:
            return _decoder.decode(raw)
        except (msgspec.DecodeError, RecursionError):
            return raw
    return raw if raw is not None else payload.get("input")


def _exec_output(text: str) -> str:
    """The command's own output inside unified-exec text (after its ``Output:`` line)."""
    marker = text.find("\nOutput:\n")
    return text[marker + len("\nOutput:\n") :] if marker >= 0 else text


class _Thread:
    """Walks one Codex thread (the session's own, or a spawned child's) into spans."""

    def __init__(
        self,
        tree: SpanTree,
        summary: Summary,
        parent: Span | None,
        thread_id: str,
        spawned: dict[str, Span],
        advertised: dict[str, str],
    ) -> None:
        self.tree = tree
        self.summary = summary
        self.parent = parent
        self.thread_id = thread_id
        self.spawned = spawned  # child thread id -> spawn_agent call
        self.advertised = advertised  # skill name -> SKILL.md path, when a list was given
        self.chain: Span | None = None
        self.turns = 0
        self.llm: Span | None = None  # the model response being read
        self.last_llm: Span | None = None  # the latest response of the current turn
        self.llm_count = 0
        self.model: str | None = None
        self.calls: dict[str, Span] = {}
        self.pending_searches: list[Span] = []
        self.ended: set[str] = set()  # calls with an authoritative end event
        # Unified-exec processes still running (session id -> the exec_command that started
        # them): their exit code arrives later, in a write_stdin poll's output.
        self.processes: dict[str, Span] = {}
        self.running: set[str] = set()  # call ids of those commands
        # The thread's cumulative usage as of the last token_count: a token_count that does not
        # move it repeats an earlier response (a new turn, a compaction), it is not a new one.
        self.total: dict[str, Any] | None = None

    def _new_chain(self, turn_id: str, timestamp: str | None) -> Span:
        chain = self.tree.add(
            "CHAIN", f"{self.thread_id}:turn:{turn_id}", "turn", self.parent, timestamp
        )
        if "skillops.turn" not in chain.attributes:
            self.turns += 1
            chain.name = f"{'subagent turn' if self.parent else 'turn'} {self.turns}"
            chain.attributes["skillops.turn"] = self.turns
            chain.attributes["gen_ai.operation.name"] = "invoke_agent"
            chain.attributes["gen_ai.conversation.id"] = self.thread_id
        if chain is not self.chain:
            self.last_llm = None
        self.chain = chain
        self.llm = None
        return chain

    def _ensure_chain(self, record: Record, timestamp: str | None) -> Span:
        if self.chain is None:
            return self._new_chain(f"{record.source_id}:{record.offset}", timestamp)
        return self.chain

    def walk(self, records: list[Record]) -> None:
        own, replayed = _split_replay(records, self.thread_id)
        self.total = _last_total(replayed)
        for record in own:
            value = record.value
            timestamp = value.get("timestamp") if isinstance(value.get("timestamp"), str) else None
            payload = mapping(value.get("payload"))
            kind = value.get("type")
            self.summary.see({}, timestamp)
            if kind == "session_meta":
                if self.summary.cwd is None and isinstance(payload.get("cwd"), str):
                    self.summary.cwd = payload["cwd"]
            elif kind == "turn_context":
                if isinstance(payload.get("turn_id"), str):
                    self._new_chain(payload["turn_id"], timestamp)
                if isinstance(payload.get("model"), str):
                    self.model = payload["model"]
            elif kind == "response_item":
                self._item(record, payload, timestamp)
            elif kind == "event_msg":
                self._event(record, payload, timestamp)
            if self.chain is not None:
                self.chain.touch(timestamp)

    # --- response items ----------------------------------------------------------------

    def _item(self, record: Record, payload: dict[str, Any], timestamp: str | None) -> None:
        item = payload.get("type")
        if item == "message":
            role = payload.get("role")
            text = _message_text(payload)
            if role == "assistant":
                llm = self._llm(record, timestamp)
                previous = llm.attributes.get("gen_ai.output.text")
                llm.attributes["gen_ai.output.text"] = clip(
                    text if not previous else f"{previous}\n{text}"
                )
            else:
                self.llm = None
                if "<skills_instructions>" in text:
                    for name, path in _ADVERTISED.findall(text):
                        self.advertised[name.strip()] = path.strip()
                if role == "user" and text and not text.lstrip().startswith(_INJECTED):
                    chain = self._ensure_chain(record, timestamp)
                    chain.attributes.setdefault("gen_ai.prompt", clip(text, 2000))
                    if self.parent is None:
                        self.summary.prompt(text)
        elif item in _MODEL_ITEMS:
            llm = self._llm(record, timestamp)
            if item in _CALL_ITEMS:
                self._call(record, payload, llm, timestamp)
        elif item in _OUTPUT_ITEMS:
            self.llm = None
            call_id = payload.get("call_id")
            span = self.calls.get(call_id) if isinstance(call_id, str) else None
            if span is None:
                self.summary.error(record, f"output for unknown call {call_id!r}")
                return
            text = codex_output_text(payload.get("output"))
            span.touch(timestamp)
            if span.attributes.get("gen_ai.tool.name") == "write_stdin":
                self._poll(span, text, timestamp)
            else:
                keep_output(span, _exec_output(text))
                if call_id not in self.ended:
                    span.outcome = codex_outcome(text)
                    self._started(span, text)
            if span.outcome not in ("success", None):
                span.attributes["skillops.result.error"] = clip(text, 2000)
            if span.kind == "SKILL":
                span.attributes["skill.content_hash"] = self.tree.skill_body(_exec_output(text))
            if span.name == "spawn_agent":
                self._link_child(span, text)

    def _started(self, span: Span, text: str) -> None:
        """Note a command whose output says it is still running."""
        session = codex_exec_header(text).session_id
        if session is not None and span.outcome is None:
            self.processes[session] = span
            self.running.add(str(span.attributes.get("gen_ai.tool.call.id")))
            span.attributes["skillops.exec.session_id"] = session

    def _poll(self, poll: Span, text: str, timestamp: str | None) -> None:
        """A ``write_stdin`` output: the poll's own outcome, and the exit of what it polled.

        The exit code belongs to the command that started the process; the poll succeeded
        unless the router refused it.
        """
        if str(poll.attributes.get("gen_ai.tool.call.id")) not in self.ended:
            poll.outcome = codex_poll_outcome(text)
        exit_code = codex_exec_header(text).exit_code
        arguments = _decoder_safe(poll.attributes.get("gen_ai.tool.call.arguments"))
        session = arguments.get("session_id") if isinstance(arguments, dict) else None
        command = self.processes.get(str(session)) if session is not None else None
        if command is not None:  # the command's output goes on in its polls
            keep_output(command, _exec_output(text), more=True)
        if exit_code is None or command is None:
            return
        del self.processes[str(session)]
        call_id = str(command.attributes.get("gen_ai.tool.call.id"))
        self.running.discard(call_id)
        command.touch(timestamp)
        if call_id not in self.ended:  # exec_command_end (0.118-0.128) already said so
            command.outcome = "success" if exit_code == 0 else "failure"
        if command.outcome == "failure":
            command.attributes["skillops.result.error"] = clip(text, 2000)

    def _llm(self, record: Record, timestamp: str | None) -> Span:
        if self.llm is None:
            chain = self._ensure_chain(record, timestamp)
            self.llm_count += 1
            key = f"{self.thread_id}:{chain.span_id}:{self.llm_count}"
            llm = self.tree.add("LLM", key, self.model or "model", chain, timestamp)
            llm.attributes["gen_ai.operation.name"] = "chat"
            llm.attributes["gen_ai.system"] = "openai"
            if self.model:
                llm.attributes["gen_ai.request.model"] = self.model
            self.llm = llm
            self.last_llm = llm
        self.llm.touch(timestamp)
        return self.llm

    def _call(
        self, record: Record, payload: dict[str, Any], llm: Span, timestamp: str | None
    ) -> None:
        item = payload.get("type")
        if item == "web_search_call":
            call_id = str(payload.get("id") or f"web_search:{record.source_id}:{record.offset}")
            name = "web_search"
            arguments: Any = payload.get("action") or {}
        else:
            call_id = str(payload.get("call_id") or f"call:{record.source_id}:{record.offset}")
            name = str(payload["name"]) if isinstance(payload.get("name"), str) else str(item)
            arguments = _arguments(payload)
        skill, folder = self._skill_read(arguments) if item == "function_call" else (None, None)
        span = self.tree.add(
            "SKILL" if skill else "TOOL", f"call:{call_id}", skill or name, llm, timestamp
        )
        span.attributes["gen_ai.operation.name"] = "execute_tool"
        span.attributes["gen_ai.tool.name"] = str(name)
        span.attributes["gen_ai.tool.call.id"] = str(call_id)
        set_arguments(span, arguments)
        if skill:
            span.attributes["skill.name"] = skill
            span.attributes["skill.activation"] = "path"
            if folder:
                span.attributes["skill.directory"] = folder
            self.summary.skill(skill)
        else:
            self.summary.tool()
        self.calls[str(call_id)] = span
        if item == "web_search_call":
            if payload.get("status") == "completed":
                span.outcome = "success"
            self.pending_searches.append(span)

    def _skill_read(self, arguments: Any) -> tuple[str | None, str | None]:
        """The skill a command reads the ``SKILL.md`` of, and its folder when one can be told
        (the advertised file's, else the path read, from the call's ``workdir`` or the
        session's cwd when relative)."""
        text = arguments if isinstance(arguments, str) else msgspec.json.encode(arguments).decode()
        if "SKILL.md" not in text:
            return None, None
        workdir = arguments.get("workdir") if isinstance(arguments, dict) else None
        base = workdir if isinstance(workdir, str) else self.summary.cwd
        for match in _SKILL_PATH.finditer(text):
            name = match.group(2)
            read = skill_md_folder(match.group(0), base)
            if not self.advertised:
                return name, read
            if name in self.advertised:
                return name, skill_md_folder(self.advertised[name]) or read
            for advertised, path in self.advertised.items():
                if path.endswith(f"/{name}/SKILL.md"):
                    return advertised, skill_md_folder(path) or read
        return None, None

    def _link_child(self, span: Span, text: str) -> None:
        try:
            value = _decoder.decode(text)
        except (msgspec.DecodeError, RecursionError):
            return
        if isinstance(value, dict) and isinstance(value.get("agent_id"), str):
            self.spawned[value["agent_id"]] = span
            span.attributes["gen_ai.agent.id"] = value["agent_id"]

    def _usage(self, info: Any) -> None:
        """Add one model response's usage to the response it belongs to.

        Codex writes ``token_count`` again without a new response (after a user message, after
        ``compacted`` with ``last_token_usage`` all zeros): only a moved total is a response.
        """
        if not isinstance(info, dict) or not isinstance(info.get("last_token_usage"), dict):
            return
        last = info["last_token_usage"]
        total = info.get("total_token_usage")
        if isinstance(total, dict):
            if total == self.total:
                return
            self.total = total
        target = self.llm or self.last_llm
        if target is None:
            return
        for source, attr in _USAGE:
            value = count(last.get(source))
            if value is not None:
                before = target.attributes.get(attr)
                if isinstance(total, dict) and isinstance(before, int):
                    target.attributes[attr] = before + value  # a second response, same span
                else:
                    target.attributes[attr] = value

    # --- events ------------------------------------------------------------------------

    def _event(self, record: Record, payload: dict[str, Any], timestamp: str | None) -> None:
        event = payload.get("type")
        call_id = payload.get("call_id")
        span = self.calls.get(call_id) if isinstance(call_id, str) else None
        if event == "task_started" and isinstance(payload.get("turn_id"), str):
            self._new_chain(payload["turn_id"], timestamp)
        elif event == "token_count":
            self._usage(payload.get("info"))
        elif event == "exec_command_end" and span is not None:
            outcome = codex_exec_end(payload.get("status"), payload.get("exit_code"))
            if outcome is not None:
                span.outcome = outcome
                self.ended.add(call_id)  # type: ignore[arg-type]
        elif event == "mcp_tool_call_end" and span is not None:
            outcome = codex_mcp_end(payload.get("result"))
            if outcome is not None:
                span.outcome = outcome
                self.ended.add(call_id)  # type: ignore[arg-type]
        elif event == "patch_apply_end" and span is not None:
            success = payload.get("success")
            if isinstance(success, bool):
                span.outcome = "success" if success else "failure"
                self.ended.add(call_id)  # type: ignore[arg-type]
        elif event == "web_search_end":
            target = span or (self.pending_searches.pop(0) if self.pending_searches else None)
            if target is not None:
                target.outcome = target.outcome or "success"
                target.touch(timestamp)
        elif event == "collab_agent_spawn_end" and span is not None:
            child = payload.get("new_thread_id")
            if isinstance(child, str):
                self.spawned[child] = span
        elif event == "turn_aborted":
            turn = payload.get("turn_id")
            aborted = self.chain
            if isinstance(turn, str):  # the event names its turn; it may not be the latest
                key = span_id(self.tree.session_id, "CHAIN", f"{self.thread_id}:turn:{turn}")
                aborted = self.tree.spans.get(key, aborted)
            if aborted is None:
                return
            aborted.attributes["skillops.turn.aborted"] = str(payload.get("reason"))
            for call_id, pending in self.calls.items():
                llm = self.tree.spans.get(pending.parent or "")
                if call_id in self.running:  # it returned; its process outlives the turn
                    continue
                if pending.outcome is None and llm is not None and llm.parent == aborted.span_id:
                    pending.outcome = "blocked"
                    pending.attributes["skillops.result.error"] = "turn aborted by the user"
        elif (
            event == "thread_name_updated"
            and isinstance(payload.get("thread_name"), str)
            and self.parent is None
        ):
            self.summary.title = payload["thread_name"]


def _split_replay(records: list[Record], thread_id: str) -> tuple[list[Record], list[Record]]:
    """A thread's own records, and the parent history a forked child replays first.

    The replay follows a second ``session_meta``; the child's own work starts with its first
    turn, whose UUIDv7 turn id sorts after the child's thread id (replayed turns are older).
    """
    metas = [i for i, r in enumerate(records) if r.value.get("type") == "session_meta"]
    if len(metas) < 2:
        return records, []
    start = metas[1]
    for i in range(start, len(records)):
        value = records[i].value
        payload = mapping(value.get("payload"))
        turn = payload.get("turn_id")
        if (
            value.get("type") in ("turn_context", "event_msg")
            and isinstance(turn, str)
            and (turn >= thread_id)
        ):
            return records[:start] + records[i:], records[start:i]
    return records[:start], records[start:]


def _last_total(records: list[Record]) -> dict[str, Any] | None:
    """The cumulative usage of the last ``token_count`` in ``records`` (a replayed history)."""
    for record in reversed(records):
        payload = mapping(record.value.get("payload"))
        if record.value.get("type") == "event_msg" and payload.get("type") == "token_count":
            total = mapping(payload.get("info")).get("total_token_usage")
            if isinstance(total, dict):
                return total
    return None


def _decoder_safe(text: Any) -> Any:
    """``text`` decoded as JSON, or ``None``."""
    if not isinstance(text, str):
        return None
    try:
        return _decoder.decode(text)
    except msgspec.DecodeError:
        return None


def derive_codex(
    tree: SpanTree,
    summary: Summary,
    root_thread: str,
    threads: list[tuple[str, str, list[Record]]],
) -> None:
    """Fold a Codex session: ``threads`` are (thread id, parent thread id, records)."""
    spawned: dict[str, Span] = {}
    advertised: dict[str, str] = {}
    done: set[str] = set()
    # Parents before children, so each child finds the call that spawned it.
    pending = sorted(threads, key=lambda t: (t[0] != root_thread, t[0]))
    while pending:
        progressed = False
        for thread in list(pending):
            thread_id, parent_id, records = thread
            if (
                thread_id != root_thread
                and parent_id
                and parent_id not in done
                and any(t[0] == parent_id for t in pending)
            ):
                continue
            parent = spawned.get(thread_id) if thread_id != root_thread else None
            _Thread(tree, summary, parent, thread_id, spawned, advertised).walk(records)
            done.add(thread_id)
            pending.remove(thread)
            progressed = True
        if not progressed:  # a cycle in parent links: take the rest as they come
            for thread_id, _parent, records in pending:
                _Thread(tree, summary, spawned.get(thread_id), thread_id, spawned, advertised).walk(
                    records
                )
            break
