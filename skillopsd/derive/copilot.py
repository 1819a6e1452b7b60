"""GitHub Copilot CLI event streams → spans.

Each prompt the user typed is a ``CHAIN`` (an autopilot continuation, a new interaction with
no prompt, is one too) → ``LLM`` per ``assistant.message`` (``outputTokens`` is its usage) →
``TOOL`` / ``SKILL`` per tool request, ended by ``tool.execution_complete``. Outcomes:
``success: false`` with code ``denied`` / ``rejected`` (or a denied permission request) is
blocked, any other code a failure; a shell that reported a non-zero exit failed whatever
``success`` says; calls still waiting when the user aborts were stopped by them. Events
of a subagent carry ``agentId`` (= the spawning ``task`` call's id) and nest under that call.
Input and cache tokens are reported only per run, in ``session.shutdown``: they become the
session's totals when every run of the file ended with one, and are missing otherwise. Every
Copilot session says so in its ``tokens_note``; a legacy document has no token counts at all.
"""

from __future__ import annotations

import re
from typing import Any

from .. import documents
from ..events.types import TokenUsage
from ._input import Record, mapping
from ._skills import skill_md_folder
from ._summary import Summary
from ._tree import Span, SpanTree, clip, keep_output, set_arguments

# Shell tools report success even when the command failed: the exit is the output's last line.
_SHELLS = {"bash", "powershell"}
_SHELL_READS = {"read_bash", "read_powershell"}
_EXIT = re.compile(
    r"<(?:shellId: (?P<shell>[^\s>]+) completed with|exited with) exit code (?P<code>-?\d+)>\s*\Z"
)
_BACKGROUND = re.compile(r"<command started in background with shellId: (?P<shell>[^\s>]+)>\s*\Z")
_BLOCKED_CODES = {"denied", "rejected"}
TOKENS_FROM_SHUTDOWN = (
    "output per response; input and cache are per-run totals from each run's session.shutdown"
)
TOKENS_LEGACY = "none: Copilot's legacy history JSON records no token counts"
# permission.completed result kinds that refused the call (the SDK's schema lists them all).
_DENIED_PERMISSION = re.compile(r"\A(?:denied|cancelled)")
# Messages the CLI injects as the user: not prompts and not turns of their own.
_INJECTED = ("<system_reminder>", "<current_datetime>")
_ADVERTISED = re.compile(r"<skill>\s*<name>([^<\n]+)</name>")
_SKILL_PATH = re.compile(r"([A-Za-z0-9_.\-]+)[/\\]SKILL\.md\Z")
# ``view`` numbers every line ("12. text"): the body is the text after the numbers.
_VIEW_LINE = re.compile(r"^\d+\. ?", re.MULTILINE)
_USAGE_FIELDS = (
    ("inputTokens", "input"),
    ("cacheReadTokens", "cache_read"),
    ("cacheWriteTokens", "cache_creation"),
)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


class _Walker:
    """Folds one session's events (its main agent's and its subagents') into spans."""

    def __init__(self, tree: SpanTree, summary: Summary) -> None:
        self.tree = tree
        self.summary = summary
        self.chain: Span | None = None  # the main agent's current turn
        self.turns = 0
        self.interactions: set[str] = set()
        self.subagents: dict[str, Span] = {}  # spawning call id -> the subagent's CHAIN
        self.llms: dict[str, Span] = {}  # messageId -> span
        self.last_llm: dict[str, Span] = {}  # agent ("" = main) -> its latest response
        self.calls: dict[str, Span] = {}
        self.completed: set[str] = set()
        self.denied: dict[str, str] = {}  # call id -> the permission result that refused it
        self.shells: dict[str, Span] = {}  # background shell id -> the call that started it
        self.model: str | None = None
        self.advertised: set[str] = set()
        self.runs = 0
        self.shutdowns = 0
        self.usage: dict[str, int] = {}

    # --- dispatch ------------------------------------------------------------------------

    def walk(self, records: list[Record]) -> None:
        for record in records:
            value = record.value
            kind = value.get("type")
            data = mapping(value.get("data"))
            timestamp = _str(value.get("timestamp"))
            self.summary.see({}, timestamp)
            agent = _str(value.get("agentId")) or _str(data.get("parentToolCallId")) or ""
            handler = _HANDLERS.get(kind) if isinstance(kind, str) else None
            if handler is not None:
                handler(self, record, data, timestamp, agent)
            chain = self.subagents.get(agent) if agent else self.chain
            if chain is not None:
                chain.touch(timestamp)

    # --- session lifecycle ---------------------------------------------------------------

    def _start(self, record: Record, data: dict[str, Any], ts: str | None, agent: str) -> None:
        self.runs += 1
        context = mapping(data.get("context"))
        if self.summary.cwd is None and isinstance(context.get("cwd"), str):
            self.summary.cwd = context["cwd"]
        self.model = _str(data.get("selectedModel")) or self.model

    def _model_change(self, record: Record, data: dict[str, Any], ts: str | None, a: str) -> None:
        self.model = _str(data.get("newModel")) or self.model

    def _shutdown(self, record: Record, data: dict[str, Any], ts: str | None, a: str) -> None:
        self.shutdowns += 1
        for metrics in mapping(data.get("modelMetrics")).values():
            usage = mapping(mapping(metrics).get("usage"))
            for source, name in _USAGE_FIELDS:
                value = _int(usage.get(source))
                if value is not None:
                    self.usage[name] = self.usage.get(name, 0) + value

    def _system(self, record: Record, data: dict[str, Any], ts: str | None, a: str) -> None:
        content = _str(data.get("content")) or ""
        if "<available_skills>" in content:
            self.advertised.update(name.strip() for name in _ADVERTISED.findall(content))

    # --- turns ---------------------------------------------------------------------------

    def _new_chain(self, record: Record, ts: str | None, interaction: str | None) -> Span:
        self.turns += 1
        key = _str(record.value.get("id")) or f"{record.source_id}:{record.offset}"
        chain = self.tree.add("CHAIN", f"turn:{key}", f"turn {self.turns}", None, ts)
        chain.attributes["gen_ai.operation.name"] = "invoke_agent"
        chain.attributes["skillops.turn"] = self.turns
        if interaction:
            self.interactions.add(interaction)
            chain.attributes["gen_ai.conversation.id"] = interaction
        self.chain = chain
        return chain

    def _user(self, record: Record, data: dict[str, Any], ts: str | None, agent: str) -> None:
        content = _str(data.get("content")) or ""
        interaction = _str(data.get("interactionId"))
        if agent:  # the spawning call's prompt, as the subagent received it
            chain = self._subagent(agent, record, ts)
            chain.attributes.setdefault("gen_ai.prompt", clip(content, 2000))
            return
        typed = (
            content.strip()
            and data.get("source") != "system"
            and not content.lstrip().startswith(_INJECTED)
        )
        if typed or (interaction and interaction not in self.interactions) or self.chain is None:
            chain = self._new_chain(record, ts, interaction)
            if typed:
                chain.attributes["gen_ai.prompt"] = clip(content, 2000)
                self.summary.prompt(content)

    def _turn_start(self, record: Record, data: dict[str, Any], ts: str | None, a: str) -> None:
        interaction = _str(data.get("interactionId"))
        if not a and (self.chain is None or (interaction and interaction not in self.interactions)):
            self._new_chain(record, ts, interaction)

    def _subagent(self, call_id: str, record: Record, ts: str | None) -> Span:
        chain = self.subagents.get(call_id)
        if chain is None:
            parent = self.calls.get(call_id)
            chain = self.tree.add("CHAIN", f"agent:{call_id}", "subagent", parent, ts)
            chain.attributes["gen_ai.operation.name"] = "invoke_agent"
            chain.attributes["gen_ai.agent.id"] = call_id
            self.subagents[call_id] = chain
        return chain

    def _subagent_started(
        self, record: Record, data: dict[str, Any], ts: str | None, a: str
    ) -> None:
        call_id = _str(data.get("toolCallId"))
        if call_id is None:
            return
        chain = self._subagent(call_id, record, ts)
        name = _str(data.get("agentName"))
        if name:
            chain.name = f"subagent {name}"
            chain.attributes["gen_ai.agent.name"] = name

    def _context(self, record: Record, ts: str | None, agent: str) -> Span:
        if agent:
            return self._subagent(agent, record, ts)
        return self.chain or self._new_chain(record, ts, None)

    # --- model responses -----------------------------------------------------------------

    def _assistant(self, record: Record, data: dict[str, Any], ts: str | None, agent: str) -> None:
        chain = self._context(record, ts, agent)
        message_id = _str(data.get("messageId")) or _str(record.value.get("id")) or ""
        model = _str(data.get("model")) or self.model
        llm = self.tree.add("LLM", f"message:{message_id}", model or "model", chain, ts)
        llm.touch(ts)
        llm.attributes["gen_ai.operation.name"] = "chat"
        llm.attributes["gen_ai.system"] = "github_copilot"
        if model:
            llm.attributes["gen_ai.request.model"] = model
        if message_id:
            llm.attributes["gen_ai.response.id"] = message_id
        content = _str(data.get("content"))
        if content:
            llm.attributes["gen_ai.output.text"] = clip(content)
        tokens = _int(data.get("outputTokens"))
        if tokens is not None:
            llm.attributes["gen_ai.usage.output_tokens"] = tokens
        self.llms[message_id] = llm
        self.last_llm[agent] = llm
        for request in data.get("toolRequests") or []:
            request = mapping(request)
            call_id = _str(request.get("toolCallId"))
            if call_id:
                self._call(call_id, _str(request.get("name")), request.get("arguments"), llm, ts)

    # --- tool calls ----------------------------------------------------------------------

    def _call(
        self, call_id: str, name: str | None, arguments: Any, llm: Span, ts: str | None
    ) -> Span:
        span = self.calls.get(call_id)
        if span is not None:
            return span
        name = name or "unknown"
        args = mapping(arguments)
        skill = self._skill(name, args)
        span = self.tree.add(
            "SKILL" if skill else "TOOL", f"call:{call_id}", skill or name, llm, ts
        )
        span.attributes["gen_ai.operation.name"] = "execute_tool"
        span.attributes["gen_ai.tool.name"] = name
        span.attributes["gen_ai.tool.call.id"] = call_id
        set_arguments(span, arguments if arguments is not None else {})
        if skill:
            span.attributes["skill.name"] = skill
            span.attributes["skill.activation"] = "tool" if name == "skill" else "path"
            read = _str(args.get("path")) if name == "view" else None
            folder = skill_md_folder(read, self.summary.cwd) if read else None
            if folder:
                span.attributes["skill.directory"] = folder
            self.summary.skill(skill)
        else:
            self.summary.tool()
        self.calls[call_id] = span
        return span

    def _skill(self, name: str, args: dict[str, Any]) -> str | None:
        """The skill a call loads: the ``skill`` tool's, or a whole read of an advertised
        skill's ``SKILL.md`` (a ``view_range`` reads a part, which loads nothing)."""
        if name == "skill":
            return _str(args.get("skill")) or _str(args.get("name")) or "unknown"
        path = _str(args.get("path"))
        if name != "view" or path is None or args.get("view_range") is not None:
            return None
        match = _SKILL_PATH.search(path)
        if match is None:
            return None
        skill = match.group(1)
        return skill if not self.advertised or skill in self.advertised else None

    def _tool_start(self, record: Record, data: dict[str, Any], ts: str | None, agent: str) -> None:
        call_id = _str(data.get("toolCallId"))
        if call_id is None:
            self.summary.error(record, "tool.execution_start without a toolCallId")
            return
        span = self.calls.get(call_id)
        if span is None:  # no request seen (a file taken mid-session): hang it on the latest
            llm = self.last_llm.get(agent)
            parent = llm or self._context(record, ts, agent)
            span = self._call(
                call_id, _str(data.get("toolName")), data.get("arguments"), parent, ts
            )
        span.touch(ts)

    def _tool_complete(self, record: Record, data: dict[str, Any], ts: str | None, a: str) -> None:
        call_id = _str(data.get("toolCallId"))
        span = self.calls.get(call_id) if call_id else None
        if span is None or call_id is None:
            self.summary.error(record, f"tool.execution_complete for unknown call {call_id!r}")
            return
        self.completed.add(call_id)
        span.touch(ts)
        tool = str(span.attributes.get("gen_ai.tool.name"))
        if data.get("success") is False:
            error = mapping(data.get("error"))
            code = _str(error.get("code")) or ""
            message = _str(error.get("message")) or code or "failed"
            blocked = code in _BLOCKED_CODES or call_id in self.denied
            span.outcome = "blocked" if blocked else "failure"
            span.attributes["skillops.result.error"] = clip(message, 2000)
            if code:
                span.attributes["skillops.result.code"] = code
            return
        text = _str(mapping(data.get("result")).get("content")) or ""
        keep_output(span, text)
        if call_id in self.denied:  # refused, whatever the call reported
            span.outcome = "blocked"
            span.attributes["skillops.result.error"] = f"permission {self.denied[call_id]}"
            return
        span.outcome = "success"
        if tool in _SHELLS:
            self._shell(span, text)
        elif tool in _SHELL_READS:
            self._shell_read(text, ts)
        if span.kind == "SKILL" and tool == "view":
            span.attributes["skill.content_hash"] = self.tree.skill_body(_VIEW_LINE.sub("", text))

    def _shell(self, span: Span, text: str) -> None:
        background = _BACKGROUND.search(text)
        if background is not None:  # it runs on; its exit arrives in a read_bash output
            span.outcome = None
            self.shells[background.group("shell")] = span
            span.attributes["skillops.exec.session_id"] = background.group("shell")
            return
        exited = _EXIT.search(text)
        if exited is not None and exited.group("code") != "0":
            span.outcome = "failure"
            span.attributes["skillops.result.error"] = clip(text[-2000:], 2000)

    def _shell_read(self, text: str, ts: str | None) -> None:
        exited = _EXIT.search(text)
        if exited is None or exited.group("shell") not in self.shells:
            return
        command = self.shells.pop(exited.group("shell"))
        command.touch(ts)
        keep_output(command, text, more=True)
        command.outcome = "success" if exited.group("code") == "0" else "failure"
        if command.outcome == "failure":
            command.attributes["skillops.result.error"] = clip(text[-2000:], 2000)

    def _permission(self, record: Record, data: dict[str, Any], ts: str | None, a: str) -> None:
        call_id = _str(data.get("toolCallId"))
        kind = _str(mapping(data.get("result")).get("kind"))
        if call_id and kind and _DENIED_PERMISSION.match(kind):
            self.denied[call_id] = kind
            span = self.calls.get(call_id)
            if span is not None:
                span.outcome = "blocked"
                span.attributes["skillops.result.error"] = f"permission {kind}"

    def _skill_invoked(
        self, record: Record, data: dict[str, Any], ts: str | None, agent: str
    ) -> None:
        name = _str(data.get("name"))
        content = _str(data.get("content"))
        if not name:
            return
        # The skill tool call that loaded it, if any; else a skill the user loaded by command.
        for span in reversed(list(self.calls.values())):
            if (
                span.kind == "SKILL"
                and span.attributes.get("skill.name") == name
                and "skill.content_hash" not in span.attributes
            ):
                break
        else:
            key = _str(record.value.get("id")) or f"{record.source_id}:{record.offset}"
            chain = self._context(record, ts, agent)
            span = self.tree.add("SKILL", f"invoked:{key}", name, chain, ts)
            span.attributes["skill.name"] = name
            span.attributes["skill.activation"] = "command"
            span.outcome = "success"
            self.summary.skill(name)
        if content is not None:
            span.attributes["skill.content_hash"] = self.tree.skill_body(content)
        path = _str(data.get("path"))
        if path:
            span.attributes["skill.directory"] = path.rsplit("/", 1)[0]

    def _abort(self, record: Record, data: dict[str, Any], ts: str | None, a: str) -> None:
        reason = _str(data.get("reason")) or "aborted"
        if self.chain is not None:
            self.chain.attributes["skillops.turn.aborted"] = reason
        running = {id(span) for span in self.shells.values()}
        for call_id, span in self.calls.items():
            if call_id in self.completed or id(span) in running or span.outcome is not None:
                continue
            span.outcome = "blocked"
            span.attributes["skillops.result.error"] = f"aborted ({reason})"
            span.touch(ts)

    def session_tokens(self) -> TokenUsage | None:
        """Input and cache totals from the shutdowns, if every run of the file reported one."""
        if not self.usage or self.shutdowns < max(self.runs, 1):
            return None
        return TokenUsage(**self.usage)

    def tokens_note(self) -> str:
        """What this stream's token figures cover: Copilot never reports input per response."""
        if self.session_tokens() is not None:
            return TOKENS_FROM_SHUTDOWN
        runs = max(self.runs, 1)
        missing = runs - min(self.shutdowns, runs)
        if not missing:
            return "output only, per response: no session.shutdown reported input or cache tokens"
        return (
            f"output only, per response: Copilot reports input and cache tokens at shutdown,"
            f" and {missing} of {runs} runs have no session.shutdown (still running, or cut off)"
        )


_HANDLERS = {
    "session.start": _Walker._start,
    "session.resume": _Walker._start,
    "session.model_change": _Walker._model_change,
    "session.shutdown": _Walker._shutdown,
    "system.message": _Walker._system,
    "user.message": _Walker._user,
    "assistant.turn_start": _Walker._turn_start,
    "assistant.message": _Walker._assistant,
    "tool.execution_start": _Walker._tool_start,
    "tool.execution_complete": _Walker._tool_complete,
    "permission.completed": _Walker._permission,
    "subagent.started": _Walker._subagent_started,
    "skill.invoked": _Walker._skill_invoked,
    "abort": _Walker._abort,
}


def _is_document(value: dict[str, Any]) -> bool:
    """A legacy ``history-session-state`` document (the whole session in one JSON object)."""
    return isinstance(value.get("timeline"), list) and "chatMessages" in value


def _legacy(tree: SpanTree, summary: Summary, document: dict[str, Any]) -> None:
    """Fold a legacy document (October 2025): no model, no tokens, no version.

    ``chatMessages`` hold the model responses and the calls each asked for; ``timeline``
    holds the prompts and every completed call's result with its time (a call can appear
    in the timeline only: the document was written before its chat message).
    """
    chain: Span | None = None
    llm: Span | None = None
    turns = responses = 0
    calls: dict[str, Span] = {}

    def new_chain(ts: str | None, prompt: str) -> Span:
        nonlocal chain, turns, llm
        turns += 1
        chain = tree.add("CHAIN", f"legacy:turn:{turns}", f"turn {turns}", None, ts)
        chain.attributes["gen_ai.operation.name"] = "invoke_agent"
        chain.attributes["skillops.turn"] = turns
        if prompt:
            chain.attributes["gen_ai.prompt"] = clip(prompt, 2000)
            summary.prompt(prompt)
        llm = None
        return chain

    def call(call_id: str, name: str, arguments: Any, parent: Span, ts: str | None) -> Span:
        span = calls.get(call_id)
        if span is None:
            span = tree.add("TOOL", f"call:{call_id}", name, parent, ts)
            span.attributes["gen_ai.operation.name"] = "execute_tool"
            span.attributes["gen_ai.tool.name"] = name
            span.attributes["gen_ai.tool.call.id"] = call_id
            set_arguments(span, arguments)
            summary.tool()
            calls[call_id] = span
        return span

    started = _str(document.get("startTime"))
    summary.see({}, started)
    prompts = [mapping(e) for e in document["timeline"] if mapping(e).get("type") == "user"]
    said: set[str] = set()  # the responses chatMessages hold, to know the timeline's others
    for message in document.get("chatMessages") or []:
        message = mapping(message)
        role = message.get("role")
        if role == "user":
            prompt = prompts.pop(0) if prompts else {}
            new_chain(_str(prompt.get("timestamp")) or started, _str(message.get("content")) or "")
        elif role == "assistant":
            parent = chain or new_chain(started, "")
            responses += 1
            llm = tree.add("LLM", f"legacy:response:{responses}", "model", parent, None)
            llm.attributes["gen_ai.operation.name"] = "chat"
            llm.attributes["gen_ai.system"] = "github_copilot"
            content = _str(message.get("content"))
            if content:
                llm.attributes["gen_ai.output.text"] = clip(content)
                said.add(content.strip()[:200])
            for request in message.get("tool_calls") or []:
                request = mapping(request)
                function = mapping(request.get("function"))
                call_id = _str(request.get("id"))
                if call_id:
                    raw = function.get("arguments")
                    call(call_id, _str(function.get("name")) or "unknown", raw or {}, llm, None)
    for entry in document["timeline"]:
        entry = mapping(entry)
        ts = _str(entry.get("timestamp"))
        summary.see({}, ts)
        call_id = _str(entry.get("callId"))
        text = _str(entry.get("text")) or ""
        if entry.get("type") == "copilot" and text.strip() and text.strip()[:200] not in said:
            # A response written to the timeline only (after the last chat message): it says
            # what the calls after it are for, or answers.
            responses += 1
            parent = chain or new_chain(started, "")
            llm = tree.add("LLM", f"legacy:response:{responses}", "model", parent, ts)
            llm.attributes["gen_ai.operation.name"] = "chat"
            llm.attributes["gen_ai.system"] = "github_copilot"
            llm.attributes["gen_ai.output.text"] = clip(text)
            said.add(text.strip()[:200])
            continue
        if entry.get("type") != "tool_call_completed" or call_id is None:
            continue
        parent = llm or chain or new_chain(started, "")
        name = _str(entry.get("name")) or "unknown"
        span = call(call_id, name, entry.get("arguments") or {}, parent, ts)
        ancestor: Span | None = span
        while ancestor is not None:  # the response and the turn last as long as their calls
            ancestor.touch(ts)
            ancestor = tree.spans.get(ancestor.parent) if ancestor.parent else None
        result = mapping(entry.get("result"))
        kind = _str(result.get("type")) or ""
        log = _str(result.get("log")) or ""
        keep_output(span, log)
        if kind == "success":
            exited = _EXIT.search(log) if name in _SHELLS else None
            failed = exited is not None and exited.group("code") != "0"
            span.outcome = "failure" if failed else "success"
        elif kind:  # only "success" occurs in real files; a refusal reads as one
            refused = any(word in kind for word in ("denied", "rejected", "cancel"))
            span.outcome = "blocked" if refused else "failure"
        if span.outcome in ("failure", "blocked"):
            span.attributes["skillops.result.error"] = clip(log[-2000:] or kind, 2000)


def captured_document(records: list[Record]) -> dict[str, Any] | None:
    """The legacy document a file's captured document lines rebuild, if they are such lines."""
    doc = documents.Document(meta={}, collections={}, removed=[])
    found = False
    for record in records:
        found = documents.apply(doc, record.value) or found
    if not found:
        return None
    rebuilt = dict(doc.meta)
    for name in ("chatMessages", "timeline"):
        rebuilt[name] = list(doc.collections.get(name, {}).values())
    return rebuilt


def derive_copilot(tree: SpanTree, summary: Summary, files: list[tuple[str, list[Record]]]) -> None:
    """Fold a Copilot CLI session: its event-stream files in order, or a legacy document."""
    walker = _Walker(tree, summary)
    streamed = legacy = False
    for _path, records in files:
        document = captured_document(records)
        if document is not None:
            _legacy(tree, summary, document)
            legacy = True
            continue
        for record in records:  # a whole document as one record (as ``ingest`` of one may be)
            if _is_document(record.value):
                _legacy(tree, summary, record.value)
                legacy = True
        stream = [r for r in records if not _is_document(r.value)]
        streamed = streamed or bool(stream)
        walker.walk(stream)
    summary.tokens = walker.session_tokens()
    summary.tokens_note = walker.tokens_note() if streamed or not legacy else TOKENS_LEGACY
