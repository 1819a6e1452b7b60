"""Encoding session traces as OTLP protobuf, in batches a receiver accepts.

The mapping (one resource per session, one trace per session):

- resource: ``service.name=skillops``, ``session.id``, ``skillops.agent``,
  ``skillops.native_session_id``, ``skillops.cwd`` and ``openinference.project.name`` (the
  Phoenix project the traces land in).
- a synthetic root span per session (``openinference.span.kind=AGENT``) whose children are
  the derived turn roots: a receiver shows one trace per session with one root, and the
  session's verdict, annotations (span events ``skillops.annotation``) and eval results
  (span events ``skillops.eval``) have one place to live. Its id is derived from the session
  id, so it is as stable as the derived ids. Every other span keeps its derived id and parent.
- ``openinference.span.kind``: CHAIN, LLM and TOOL as derived; SKILL becomes TOOL (loading a
  skill is a call the agent makes; ``skillops.span.kind`` keeps SKILL); AGENT stays AGENT.
- status: ``failure`` is ERROR with the failure reason (``skillops.result.error``) as its
  message; ``success`` is OK; ``blocked`` and calls without an outcome are UNSET, with the
  outcome in ``skillops.outcome``. The root's status follows the session verdict.
- times: a span without a start takes its end, else its parent's start, else the session's;
  one without an end ends where it starts; either case is marked ``skillops.time.estimated``.
- attributes: the derived ones (OpenTelemetry GenAI names) plus the OpenInference names
  Phoenix renders (``input.value``, ``output.value``, ``llm.model_name``,
  ``llm.token_count.*``, ``tool.name``). Strings longer than :data:`MAX_STRING` characters
  are cut (receivers cap attribute sizes; a batch must stay within the request limit).
- tool calls: ``input.value`` is the arguments, ``output.value`` what the call returned
  (``SessionTrace.results``, read from the captured lines), its middle cut past
  :data:`RESULT_HEAD` + :data:`RESULT_TAIL` characters, ``skillops.result.chars`` its length.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from datetime import datetime
from functools import lru_cache

import msgspec
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from .. import __version__
from .._defaults import DEFAULT_PROJECT
from ..events.types import AttributeValue
from ..projections.session_views import SpanView
from ._traces import SessionTrace

MAX_STRING = 32 * 1024
# A tool call's result is cut to its first and last characters (the end of a command's
# output says how it ended): 16 Ki characters in all keep 98.6 % of the corpus' results whole.
RESULT_HEAD = 12 * 1024
RESULT_TAIL = 4 * 1024
# Below the smallest common request limit (an OpenTelemetry Collector's gRPC default is
# 4 MiB); Phoenix and Jaeger accept more.
DEFAULT_BATCH_BYTES = 3 * 1024 * 1024
_STATUS_MESSAGE = 1024
_OPENINFERENCE_KIND = {
    "CHAIN": "CHAIN",
    "LLM": "LLM",
    "TOOL": "TOOL",
    "SKILL": "TOOL",
    "AGENT": "AGENT",
}
# Derived GenAI attribute -> the OpenInference attribute Phoenix renders natively.
_ALIASES = {
    "CHAIN": {"gen_ai.prompt": "input.value"},
    "LLM": {
        "gen_ai.request.model": "llm.model_name",
        "gen_ai.system": "llm.system",
        "gen_ai.output.text": "output.value",
        "gen_ai.usage.input_tokens": "llm.token_count.prompt",
        "gen_ai.usage.output_tokens": "llm.token_count.completion",
        "gen_ai.usage.cache_read.input_tokens": "llm.token_count.prompt_details.cache_read",
        "gen_ai.usage.cache_creation.input_tokens": "llm.token_count.prompt_details.cache_write",
    },
    "TOOL": {
        "gen_ai.tool.name": "tool.name",
        "gen_ai.tool.call.arguments": "input.value",
        "skillops.result.error": "output.value",
    },
    "SKILL": {
        "skill.name": "tool.name",
        "gen_ai.tool.call.arguments": "input.value",
        "skillops.result.error": "output.value",
    },
}


class Batch(msgspec.Struct):
    """One request body (protobuf, not yet compressed) and what it completes.

    ``done`` lists (session id, position) of the sessions whose last span is in this batch:
    once the receiver acknowledges it, their export is complete.
    """

    body: bytes
    spans: int
    done: list[tuple[str, int]]


def root_span_id(session_id: str) -> str:
    """The id of the synthetic root span of a session's trace (8 bytes, hex)."""
    return hashlib.sha256(f"otlp-root\x1f{session_id}".encode()).hexdigest()[:16]


@lru_cache(maxsize=65536)
def _nanos(stamp: str) -> int | None:
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None  # a time without a zone is not a point in time: treat it as unknown
    whole = int(moment.timestamp())
    return whole * 1_000_000_000 + moment.microsecond * 1000


def _nanos_of(stamp: str | None) -> int | None:
    return _nanos(stamp) if stamp else None


def cut_result(text: str) -> str:
    """A call's result, its middle cut out (and said so) when longer than head plus tail."""
    if len(text) <= RESULT_HEAD + RESULT_TAIL:
        return text
    cut = len(text) - RESULT_HEAD - RESULT_TAIL
    return f"{text[:RESULT_HEAD]}\n… [{cut} characters cut by skillops] …\n{text[-RESULT_TAIL:]}"


def _cut(text: str) -> str:
    if len(text) <= MAX_STRING:
        return text
    return f"{text[:MAX_STRING]}… [{len(text) - MAX_STRING} more characters cut by skillops]"


def _any(value: AttributeValue) -> AnyValue | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        if -(2**63) <= value < 2**63:
            return AnyValue(int_value=value)
        return AnyValue(string_value=str(value))
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, str):
        return AnyValue(string_value=_cut(value))
    values = [AnyValue(string_value=_cut(str(v))) for v in value]
    out = AnyValue()
    out.array_value.values.extend(values)
    return out


def _attributes(pairs: Iterable[tuple[str, AttributeValue]]) -> list[KeyValue]:
    out = []
    for key, value in pairs:
        encoded = _any(value)
        if encoded is not None:
            out.append(KeyValue(key=key, value=encoded))
    return out


# Attributes that hold what was said or done (prompts, answers, commands, results): left out
# with ``--no-content``.
CONTENT_KEYS = frozenset(
    {
        "gen_ai.prompt",
        "gen_ai.output.text",
        "gen_ai.tool.call.arguments",
        "gen_ai.tool.call.result",
        "skillops.result.error",
        "skillops.title",
        "input.value",
        "output.value",
        "skill.directory",
        # What the verdict facts quote of a call: its command or file, its error's first line.
        "skillops.call.what",
        "skillops.call.why",
        "skillops.verdict.reason",
    }
)
_CONTENT_PREFIXES = ("llm.input_messages", "llm.output_messages")


def _is_content(key: str) -> bool:
    return key in CONTENT_KEYS or key.startswith(_CONTENT_PREFIXES)


def _messages(prefix: str, messages: list[tuple[str, str]]) -> dict[str, AttributeValue]:
    """OpenInference's flattened message list: ``prefix.N.message.role``/``.content``."""
    out: dict[str, AttributeValue] = {}
    for i, (role, text) in enumerate(messages):
        out[f"{prefix}.{i}.message.role"] = role
        out[f"{prefix}.{i}.message.content"] = text
    return out


def _span_attributes(
    span: SpanView,
    session_id: str,
    estimated: bool,
    *,
    kind: str,
    extra: dict[str, AttributeValue],
    content: bool,
) -> list[KeyValue]:
    attrs: dict[str, AttributeValue] = dict(span.attributes)
    attrs.update(extra)  # what the export adds (messages, results) before the plain aliases
    for derived, alias in _ALIASES.get(span.kind, {}).items():
        if derived in span.attributes and alias not in attrs:
            attrs[alias] = span.attributes[derived]
    if span.kind == "LLM":
        prompt, completion = (
            attrs.get("llm.token_count.prompt"),
            attrs.get("llm.token_count.completion"),
        )
        if isinstance(prompt, int) and isinstance(completion, int):
            attrs["llm.token_count.total"] = prompt + completion
    attrs["openinference.span.kind"] = kind
    attrs["skillops.span.kind"] = span.kind
    attrs["session.id"] = session_id
    if span.outcome is not None:
        attrs["skillops.outcome"] = span.outcome
    if estimated:
        attrs["skillops.time.estimated"] = True
    if not content:
        attrs = {k: v for k, v in attrs.items() if not _is_content(k)}
    return _attributes(attrs.items())


def _status(outcome: str | None, reason: AttributeValue, content: bool = True) -> Status:
    if outcome == "failure":
        message = reason if content and isinstance(reason, str) and reason else "failure"
        return Status(code=Status.STATUS_CODE_ERROR, message=message[:_STATUS_MESSAGE])
    if outcome == "success":
        return Status(code=Status.STATUS_CODE_OK)
    return Status(code=Status.STATUS_CODE_UNSET)


def _resource(trace: SessionTrace, project: str, content: bool = True) -> Resource:
    s = trace.session
    return Resource(
        attributes=_attributes(
            [
                ("service.name", "skillops"),
                ("service.version", __version__),
                ("openinference.project.name", project),
                ("session.id", s.session_id),
                ("skillops.agent", s.agent),
                ("skillops.native_session_id", s.native_session_id),
                ("skillops.cwd", s.cwd if content else None),
            ]
        )
    )


def _root(
    trace: SessionTrace,
    trace_id: bytes,
    start: int,
    end: int,
    *,
    answer: str | None = None,
    content: bool = True,
) -> Span:
    s = trace.session
    failed = s.outcomes.failure
    attrs: list[tuple[str, AttributeValue]] = [
        ("output.value", answer),
        ("openinference.span.kind", "AGENT"),
        ("skillops.span.kind", "SESSION"),
        ("session.id", s.session_id),
        ("gen_ai.conversation.id", s.native_session_id),
        ("gen_ai.agent.name", s.agent),
        ("input.value", s.title),
        ("skillops.title", s.title),
        ("skillops.verdict", s.verdict),
        ("skillops.verdict.reason", s.verdict_reason),
        ("skillops.verdict.spans", s.verdict_spans or None),
        ("skillops.turns", s.turns),
        ("skillops.tools", s.tools),
        ("skillops.skills", s.skills),
        ("skillops.outcomes.success", s.outcomes.success),
        ("skillops.outcomes.failure", failed),
        ("skillops.outcomes.blocked", s.outcomes.blocked),
        ("skillops.outcomes.unknown", s.outcomes.unknown),
        ("skillops.deriver_version", s.deriver_version),
        ("skillops.parent_session_id", s.parent_session_id),
        ("gen_ai.usage.input_tokens", s.tokens.input),
        ("gen_ai.usage.output_tokens", s.tokens.output),
        ("llm.token_count.prompt", s.tokens.input),
        ("llm.token_count.completion", s.tokens.output),
        ("skillops.tokens.note", s.tokens.note),
    ]
    if trace.annotations:
        newest = max(trace.annotations, key=lambda a: a.position)
        attrs += [
            ("skillops.annotation.label", newest.label),
            ("skillops.annotation.note", newest.note),
            ("skillops.annotation.count", len(trace.annotations)),
        ]
    if trace.evals:
        newest_eval = max(trace.evals, key=lambda e: e.position)
        attrs += [
            ("skillops.eval.passed", newest_eval.passed),
            ("skillops.eval.run_id", newest_eval.run_id),
            ("skillops.eval.skill", newest_eval.skill),
            ("skillops.eval.runs", len(trace.evals)),
        ]
    if not content:
        attrs = [(k, v) for k, v in attrs if not _is_content(k)]
        attrs = [(k, v) for k, v in attrs if not k.startswith("skillops.annotation.note")]
    if s.verdict == "failure":
        status = Status(
            code=Status.STATUS_CODE_ERROR,
            message=(s.verdict_reason if content else None)
            or f"session verdict failure ({failed} failed calls)",
        )
    elif s.verdict == "success":
        status = Status(code=Status.STATUS_CODE_OK)
    else:
        status = Status(code=Status.STATUS_CODE_UNSET)
    root = Span(
        trace_id=trace_id,
        span_id=bytes.fromhex(root_span_id(s.session_id)),
        name=f"{s.agent} session {(s.title if content else None) or s.native_session_id}"[:200],
        kind=Span.SPAN_KIND_INTERNAL,
        start_time_unix_nano=start,
        end_time_unix_nano=end,
        attributes=_attributes(attrs),
        status=status,
    )
    for a in sorted(trace.annotations, key=lambda a: a.position):
        root.events.append(
            Span.Event(
                time_unix_nano=_nanos_of(a.recorded_at) or end,
                name="skillops.annotation",
                attributes=_attributes(
                    [
                        ("annotation.id", a.annotation_id),
                        ("annotation.label", a.label),
                        ("annotation.note", a.note if content else None),
                        ("annotation.author", a.author),
                        ("annotation.skill", a.skill),
                        ("annotation.span_id", a.span_id),
                    ]
                ),
            )
        )
    for e in sorted(trace.evals, key=lambda e: e.position):
        root.events.append(
            Span.Event(
                time_unix_nano=_nanos_of(e.recorded_at) or end,
                name="skillops.eval",
                attributes=_attributes(
                    [
                        ("eval.run_id", e.run_id),
                        ("eval.skill", e.skill),
                        ("eval.version_hash", e.version_hash),
                        ("eval.suite_hash", e.suite_hash),
                        ("eval.passed", e.passed),
                        ("eval.run_passed", e.run_passed),
                        ("eval.graders", e.graders),
                        ("eval.failed", e.failed),
                    ]
                ),
            )
        )
    return root


def trace_id_of(trace: SessionTrace) -> str:
    """The session's trace id (hex): its spans', else one derived from the session id."""
    if trace.spans and trace.spans[0].trace_id:
        return trace.spans[0].trace_id
    return hashlib.sha256(f"trace\x1f{trace.session.session_id}".encode()).hexdigest()[:32]


def _text(value: AttributeValue) -> str | None:
    return value if isinstance(value, str) and value else None


def encode_session(trace: SessionTrace, *, content: bool = True) -> list[Span]:
    """The spans of one session's trace, the synthetic root first.

    Times: a span without a start takes its end, else its parent's start, else the
    session's; one without an end ends where it starts (both marked
    ``skillops.time.estimated``). An LLM span the transcript records only at its response
    starts when the event it answers ended (its turn's prompt, or the previous response and
    the calls it made): that is when the request went out. A parent lasts at least as long
    as its children, so no child outlives its parent in the drawn tree.

    Content (left out with ``content=False``): LLM spans carry their input as messages
    (the turn's prompt, the earlier responses and failed calls of the turn) and their
    output; a turn and the session root carry the final answer; a tool call its arguments
    and result; a call that spawned a subagent's turns is an ``AGENT`` span.
    """
    s = trace.session
    trace_id = bytes.fromhex(trace_id_of(trace))
    known = [t for sp in trace.spans for t in (_nanos_of(sp.start), _nanos_of(sp.end)) if t]
    session_start = _nanos_of(s.started_at) or min(known, default=None)
    session_end = _nanos_of(s.ended_at) or max(known, default=None)
    # A session without a single known time still needs one: the epoch says "unknown".
    root_start = session_start or session_end or 0
    root_end = max(session_end or root_start, root_start)
    root_id = root_span_id(s.session_id)
    ids = {sp.span_id for sp in trace.spans}
    times: dict[str, list[int]] = {}
    estimated: set[str] = set()
    children: dict[str, list[SpanView]] = {}
    for sp in trace.spans:
        start, end = _nanos_of(sp.start), _nanos_of(sp.end)
        if start is None or end is None:
            estimated.add(sp.span_id)
        parent = sp.parent_span_id if sp.parent_span_id in ids else None
        if start is None:
            start = end or (times[parent][0] if parent in times else root_start)
        if end is None or end < start:
            end = start
        times[sp.span_id] = [start, end]
        children.setdefault(parent or root_id, []).append(sp)
    # Parents cover their children (deepest first: the deriver lists a parent before them).
    for sp in reversed(trace.spans):
        parent = sp.parent_span_id
        if parent in times:
            times[parent][0] = min(times[parent][0], times[sp.span_id][0])
            times[parent][1] = max(times[parent][1], times[sp.span_id][1])
    # An LLM call recorded at its response began when what it answers ended.
    request_start: set[str] = set()
    for parent, kids in children.items():
        before = times[parent][0] if parent in times else root_start
        for sp in kids:
            start, end = times[sp.span_id]
            if sp.kind == "LLM" and start >= end and before < start and sp.span_id not in estimated:
                times[sp.span_id][0] = before
                request_start.add(sp.span_id)
            before = max(before, times[sp.span_id][1])
    for start, end in times.values():
        root_start, root_end = min(root_start, start), max(root_end, end)
    extra: dict[str, dict[str, AttributeValue]] = {}
    answer = None
    if content:
        answer = _content(trace.spans, children, root_id, extra)
        _tool_content(trace, extra)
    for sid in request_start:
        extra.setdefault(sid, {})["skillops.time.start_from"] = "previous_event"
    out = [Span()]  # the root, filled in below
    for sp in trace.spans:
        start, end = times[sp.span_id]
        kind = _OPENINFERENCE_KIND.get(sp.kind, "CHAIN")
        if sp.kind == "TOOL" and any(c.kind == "CHAIN" for c in children.get(sp.span_id, [])):
            kind = "AGENT"  # the call spawned a subagent: its turns are below
        out.append(
            Span(
                trace_id=trace_id,
                span_id=bytes.fromhex(sp.span_id),
                parent_span_id=bytes.fromhex(sp.parent_span_id or root_id),
                name=sp.name,
                kind=Span.SPAN_KIND_INTERNAL,
                start_time_unix_nano=start,
                end_time_unix_nano=end,
                attributes=_span_attributes(
                    sp,
                    s.session_id,
                    sp.span_id in estimated,
                    kind=kind,
                    extra=extra.get(sp.span_id, {}),
                    content=content,
                ),
                status=_status(sp.outcome, sp.attributes.get("skillops.result.error"), content),
            )
        )
    out[0] = _root(trace, trace_id, root_start, root_end, answer=answer, content=content)
    return out


def _content(
    spans: list[SpanView],
    children: dict[str, list[SpanView]],
    root_id: str,
    extra: dict[str, dict[str, AttributeValue]],
) -> str | None:
    """OpenInference input/output of LLM spans and turns; returns the session's final answer."""
    final: str | None = None
    for turn in spans:
        if turn.kind != "CHAIN":
            continue
        prompt = _text(turn.attributes.get("gen_ai.prompt"))
        history: list[tuple[str, str]] = [("user", prompt)] if prompt else []
        last: str | None = None
        for llm in children.get(turn.span_id, []):
            if llm.kind != "LLM":
                continue
            said = _text(llm.attributes.get("gen_ai.output.text"))
            attrs: dict[str, AttributeValue] = {}
            if history:
                attrs.update(_messages("llm.input_messages", history))
                attrs["input.value"] = msgspec.json.encode(
                    [{"role": r, "content": c} for r, c in history]
                ).decode()
                attrs["input.mime_type"] = "application/json"
            if said:
                attrs.update(_messages("llm.output_messages", [("assistant", said)]))
                history = [*history, ("assistant", said)]
                last = said
            for call in children.get(llm.span_id, []):
                error = _text(call.attributes.get("skillops.result.error"))
                if error:
                    history = [*history, ("tool", f"{call.name}: {error}")]
            extra[llm.span_id] = attrs
        if last:
            extra.setdefault(turn.span_id, {})["output.value"] = last
            if (turn.parent_span_id or root_id) == root_id:
                final = last
    return final


def _mime_type(text: str) -> str:
    """JSON when it is (most calls' arguments), else plain text (a patch, a cut argument)."""
    try:
        msgspec.json.decode(text)
    except (msgspec.DecodeError, RecursionError):
        return "text/plain"
    return "application/json"


def _tool_content(trace: SessionTrace, extra: dict[str, dict[str, AttributeValue]]) -> None:
    """OpenInference input (the arguments, JSON) and output (the result) of tool calls.

    The output is what the call returned, cut when long; a call with no result in its
    transcript (refused, interrupted, still running) shows why it has none, if it says.
    """
    for sp in trace.spans:
        if sp.kind not in ("TOOL", "SKILL"):
            continue
        attrs = extra.setdefault(sp.span_id, {})
        arguments = _text(sp.attributes.get("gen_ai.tool.call.arguments"))
        if arguments:
            attrs["input.mime_type"] = _mime_type(arguments)
        call_id = sp.attributes.get("gen_ai.tool.call.id")
        result = trace.results.get(call_id) if isinstance(call_id, str) else None
        if result is None:
            continue
        attrs["skillops.result.chars"] = len(result)
        if result or not _text(sp.attributes.get("skillops.result.error")):
            attrs["output.value"] = cut_result(result)
            attrs["output.mime_type"] = "text/plain"


_SCOPE = InstrumentationScope(name="skillops", version=__version__)


class _Open(msgspec.Struct):
    """The batch being filled."""

    request: ExportTraceServiceRequest
    size: int = 0
    spans: int = 0
    done: list[tuple[str, int]] = []


def encode_batches(
    traces: Iterable[SessionTrace],
    *,
    max_bytes: int = DEFAULT_BATCH_BYTES,
    project: str = DEFAULT_PROJECT,
    content: bool = True,
) -> Iterator[Batch]:
    """Requests of at most about ``max_bytes`` each; a session larger than that is split."""
    current = _Open(ExportTraceServiceRequest())

    def flush() -> Iterator[Batch]:
        nonlocal current
        if current.spans or current.done:
            yield Batch(current.request.SerializeToString(), current.spans, current.done)
        current = _Open(ExportTraceServiceRequest())

    for trace in traces:
        resource = _resource(trace, project, content)
        overhead = resource.ByteSize() + _SCOPE.ByteSize() + 16
        spans = encode_session(trace, content=content)
        pending: list[Span] = []
        pending_size = overhead
        for span in spans:
            size = span.ByteSize() + 6
            if pending and current.size + pending_size + size > max_bytes:
                _add(current, resource, pending, pending_size)
                pending, pending_size = [], overhead
                yield from flush()
            elif not pending and current.spans and current.size + overhead + size > max_bytes:
                yield from flush()
            pending.append(span)
            pending_size += size
        _add(current, resource, pending, pending_size)
        current.done.append((trace.session.session_id, trace.position))
        if current.size >= max_bytes:
            yield from flush()
    yield from flush()


def _add(current: _Open, resource: Resource, spans: list[Span], size: int) -> None:
    if not spans:
        return
    rs = current.request.resource_spans.add()
    rs.resource.CopyFrom(resource)
    ss = rs.scope_spans.add()
    ss.scope.CopyFrom(_SCOPE)
    ss.spans.extend(spans)
    current.size += size
    current.spans += len(spans)


def otlp_json(body: bytes) -> str:
    """One request as OTLP/JSON: the protobuf JSON mapping with the OTLP specification's
    exceptions (trace and span ids as hex, not base64; enums as integers)."""
    from google.protobuf.json_format import MessageToDict

    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    data = MessageToDict(request, preserving_proto_field_name=False, use_integers_for_enums=True)
    for rs, rs_msg in zip(data.get("resourceSpans", []), request.resource_spans, strict=True):
        for ss, ss_msg in zip(rs.get("scopeSpans", []), rs_msg.scope_spans, strict=True):
            for span, msg in zip(ss.get("spans", []), ss_msg.spans, strict=True):
                span["traceId"] = msg.trace_id.hex()
                span["spanId"] = msg.span_id.hex()
                if msg.parent_span_id:
                    span["parentSpanId"] = msg.parent_span_id.hex()
    return msgspec.json.encode(data).decode()
