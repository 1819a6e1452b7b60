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


def _span_attributes(span: SpanView, session_id: str, estimated: bool) -> list[KeyValue]:
    attrs: dict[str, AttributeValue] = dict(span.attributes)
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
    attrs["openinference.span.kind"] = _OPENINFERENCE_KIND.get(span.kind, "CHAIN")
    attrs["skillops.span.kind"] = span.kind
    attrs["session.id"] = session_id
    if span.outcome is not None:
        attrs["skillops.outcome"] = span.outcome
    if estimated:
        attrs["skillops.time.estimated"] = True
    return _attributes(attrs.items())


def _status(outcome: str | None, reason: AttributeValue) -> Status:
    if outcome == "failure":
        message = reason if isinstance(reason, str) and reason else "failure"
        return Status(code=Status.STATUS_CODE_ERROR, message=message[:_STATUS_MESSAGE])
    if outcome == "success":
        return Status(code=Status.STATUS_CODE_OK)
    return Status(code=Status.STATUS_CODE_UNSET)


def _resource(trace: SessionTrace, project: str) -> Resource:
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
                ("skillops.cwd", s.cwd),
            ]
        )
    )


def _root(trace: SessionTrace, trace_id: bytes, start: int, end: int) -> Span:
    s = trace.session
    failed = s.outcomes.failure
    attrs: list[tuple[str, AttributeValue]] = [
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
    if s.verdict == "failure":
        status = Status(
            code=Status.STATUS_CODE_ERROR,
            message=s.verdict_reason or f"session verdict failure ({failed} failed calls)",
        )
    elif s.verdict == "success":
        status = Status(code=Status.STATUS_CODE_OK)
    else:
        status = Status(code=Status.STATUS_CODE_UNSET)
    root = Span(
        trace_id=trace_id,
        span_id=bytes.fromhex(root_span_id(s.session_id)),
        name=f"{s.agent} session {s.title or s.native_session_id}"[:200],
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
                        ("annotation.note", a.note),
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


def encode_session(trace: SessionTrace) -> list[Span]:
    """The spans of one session's trace, the synthetic root first."""
    s = trace.session
    fallback = hashlib.sha256(f"trace\x1f{s.session_id}".encode()).hexdigest()[:32]
    trace_id = bytes.fromhex(trace.spans[0].trace_id if trace.spans else fallback)
    known = [t for sp in trace.spans for t in (_nanos_of(sp.start), _nanos_of(sp.end)) if t]
    session_start = _nanos_of(s.started_at) or min(known, default=None)
    session_end = _nanos_of(s.ended_at) or max(known, default=None)
    # A session without a single known time still needs one: the epoch says "unknown".
    root_start = session_start or session_end or 0
    root_end = max(session_end or root_start, root_start)
    root_id = root_span_id(s.session_id)
    starts: dict[str, int] = {}
    out = [Span()]  # the root, filled in below
    for sp in trace.spans:
        start, end = _nanos_of(sp.start), _nanos_of(sp.end)
        estimated = start is None or end is None
        if start is None:
            start = end or starts.get(sp.parent_span_id or "", root_start)
        if end is None or end < start:
            end = start
        starts[sp.span_id] = start
        parent = sp.parent_span_id or root_id
        out.append(
            Span(
                trace_id=trace_id,
                span_id=bytes.fromhex(sp.span_id),
                parent_span_id=bytes.fromhex(parent),
                name=sp.name,
                kind=Span.SPAN_KIND_INTERNAL,
                start_time_unix_nano=start,
                end_time_unix_nano=end,
                attributes=_span_attributes(sp, s.session_id, estimated),
                status=_status(sp.outcome, sp.attributes.get("skillops.result.error")),
            )
        )
    out[0] = _root(trace, trace_id, root_start, root_end)
    return out


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
) -> Iterator[Batch]:
    """Requests of at most about ``max_bytes`` each; a session larger than that is split."""
    current = _Open(ExportTraceServiceRequest())

    def flush() -> Iterator[Batch]:
        nonlocal current
        if current.spans or current.done:
            yield Batch(current.request.SerializeToString(), current.spans, current.done)
        current = _Open(ExportTraceServiceRequest())

    for trace in traces:
        resource = _resource(trace, project)
        overhead = resource.ByteSize() + _SCOPE.ByteSize() + 16
        spans = encode_session(trace)
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
    """One request as OTLP/JSON (hex ids, as the OTLP file format and collectors expect)."""
    from google.protobuf.json_format import MessageToDict

    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    data = MessageToDict(request, preserving_proto_field_name=False)
    for rs, rs_msg in zip(data.get("resourceSpans", []), request.resource_spans, strict=True):
        for ss, ss_msg in zip(rs.get("scopeSpans", []), rs_msg.scope_spans, strict=True):
            for span, msg in zip(ss.get("spans", []), ss_msg.spans, strict=True):
                span["traceId"] = msg.trace_id.hex()
                span["spanId"] = msg.span_id.hex()
                if msg.parent_span_id:
                    span["parentSpanId"] = msg.parent_span_id.hex()
    return msgspec.json.encode(data).decode()
