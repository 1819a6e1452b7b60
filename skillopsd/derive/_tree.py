"""Building one session's span tree with deterministic ids."""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

from ..events.types import AttributeValue, SpanDerived
from ._ids import span_id, trace_id
from ._kinds import KIND_ATTRIBUTE, tool_kind
from ._skills import normalize_skill_body

# Text kept on a span (tool arguments, model output): enough to grade and read, bounded so
# one huge Write call does not copy a whole file into every derivation.
MAX_TEXT = 16_384


def clip(text: str, limit: int = MAX_TEXT) -> str:
    """``text`` cut to ``limit`` characters, marked when cut."""
    return text if len(text) <= limit else text[:limit] + "…[truncated]"


def as_json(value: Any) -> str:
    """A tool input as the JSON text OpenTelemetry's ``gen_ai.tool.call.arguments`` holds."""
    if isinstance(value, str):
        return clip(value)
    return clip(msgspec.json.encode(value).decode())


def set_arguments(span: Span, value: Any) -> None:
    """Record a call's input: clipped on the span (``gen_ai.tool.call.arguments``), whole in
    ``span.arguments`` for the deriver's own reading: the command that decides a script's exit
    status is often at its end, after a long heredoc, where a clip would cut it off."""
    text = value if isinstance(value, str) else msgspec.json.encode(value).decode()
    span.attributes["gen_ai.tool.call.arguments"] = clip(text)
    span.arguments = text


class Span:
    """A span under construction."""

    __slots__ = (
        "arguments",
        "attributes",
        "end",
        "kind",
        "name",
        "outcome",
        "output",
        "parent",
        "span_id",
        "start",
    )

    def __init__(
        self, span_id: str, kind: str, name: str, parent: str | None, start: str | None
    ) -> None:
        self.span_id = span_id
        self.kind = kind
        self.name = name
        self.parent = parent
        self.start = start
        self.end = start
        self.outcome: str | None = None
        # What a call returned (its tail), read by the deriver's last stages (a test run's
        # summary when a pipe hid its exit status); never emitted: outputs are most of a
        # transcript's bytes, and ``_results.py`` reads them again for an export.
        self.output: str | None = None
        # A call's whole input (see :func:`set_arguments`); never emitted.
        self.arguments: str | None = None
        self.attributes: dict[str, AttributeValue] = {}

    def touch(self, timestamp: str | None) -> None:
        """Extend the span to ``timestamp``."""
        if timestamp and (self.end is None or timestamp > self.end):
            self.end = timestamp
        if timestamp and (self.start is None or timestamp < self.start):
            self.start = timestamp


# How much of a call's output a span keeps while the session is derived.
OUTPUT_KEPT = 64 * 1024


def keep_output(span: Span, text: str, *, more: bool = False) -> None:
    """Keep what a call returned (``more``: a later part of it, as a poll returns it)."""
    whole = (span.output or "") + text if more else text
    span.output = whole if len(whole) <= OUTPUT_KEPT else whole[-OUTPUT_KEPT:]


class SpanTree:
    """The spans of one session, in the order they were first seen."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self.trace_id = trace_id(session_id)
        self.spans: dict[str, Span] = {}
        # Normalized skill bodies by content hash: what a new skill version records.
        self.bodies: dict[str, str] = {}

    def skill_body(self, body: str) -> str:
        """The content hash of a loaded skill body, keeping the normalized body for versions."""
        normalized = normalize_skill_body(body)
        digest = hashlib.sha256(normalized.encode()).hexdigest()
        self.bodies[digest] = normalized
        return digest

    def add(self, kind: str, key: str, name: str, parent: Span | None, start: str | None) -> Span:
        """The span identified by (kind, key), created on first use."""
        sid = span_id(self.session_id, kind, key)
        span = self.spans.get(sid)
        if span is None:
            span = Span(sid, kind, name, parent.span_id if parent else None, start)
            self.spans[sid] = span
        return span

    def events(self, deriver_version: int) -> list[SpanDerived]:
        """The spans as events; every parent link points at a span of this tree."""
        out = []
        for span in self.spans.values():
            parent = span.parent if span.parent in self.spans else None
            if span.kind in ("TOOL", "SKILL"):
                tool = span.attributes.get("gen_ai.tool.name")
                kind = tool_kind(tool if isinstance(tool, str) else None, span.kind)
                if kind is not None:
                    span.attributes[KIND_ATTRIBUTE] = kind
            out.append(
                SpanDerived(
                    session_id=self.session_id,
                    deriver_version=deriver_version,
                    span_id=span.span_id,
                    trace_id=self.trace_id,
                    parent_span_id=parent,
                    kind=span.kind,  # type: ignore[arg-type]
                    name=span.name,
                    start=span.start,
                    end=span.end,
                    outcome=span.outcome,  # type: ignore[arg-type]
                    attributes=dict(sorted(span.attributes.items())),
                )
            )
        return out
