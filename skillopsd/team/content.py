"""What of an event's payload leaves the machine, under each ``--content`` choice.

Every event's header (position, id, stream, version, type, schema, time) and the digest
its hash commits to always go: the server needs them to check the chain. The payload goes
``exact`` (its bytes, checked against the digest), ``derived`` (re-encoded without message
text, so it no longer matches the digest), or not at all (``withheld``; ``erased`` when the
owner erased it before it was sent).
"""

from __future__ import annotations

from enum import StrEnum

import msgspec

from ..events import LogError, decode_payload
from ..events.types import (
    CaptureErrorRecorded,
    DeriveErrorRecorded,
    EvalRunCompleted,
    Event,
    SessionDerived,
    SpanDerived,
)
from ..projections.verdict import OTHER_STOP, USER_STOPS


class Content(StrEnum):
    """``--content``: what its owner lets leave the machine."""

    DERIVED = "derived"
    ALL = "all"
    NONE = "none"


# ``none``: labels and decisions only (and erasure records, which the server must apply).
DECISION_TYPES = frozenset(
    {
        "AnnotationAdded",
        "AnnotationRetracted",
        "SessionPurged",
        "PayloadsErased",
        "SkillChallengerStarted",
        "SkillPromoted",
        "SkillRetired",
        "SkillManaged",
        "SkillStrategySet",
        "SkillRolledBack",
        "GateEvaluated",
        "PolicySet",
    }
)

# ``derived``: a span keeps every number, boolean and null attribute, and a string attribute
# only when its key is one of these, whose values are chosen by the agent's program or by the
# deriver (a tool, a model, an id, a fixed word), never typed by a person nor read from a
# command or a file: an attribute not listed (a prompt, an output, tool arguments, a shell
# command, an error text, any attribute added later) is dropped.
#
# ``skillops.call.kind`` is not listed: it is read from the failed command (``Bash:go test``,
# but also whatever the shell parser took for the program: a password pasted as a command,
# a piece of inline code) or names the files a failed edit touched. No projection reads it
# (the verdict reads ``skillops.resolved`` and ``skillops.call.probe``, computed at home), so
# a team view loses nothing without it.
NAMING_ATTRIBUTES = frozenset(
    {
        "gen_ai.operation.name",
        "gen_ai.tool.name",
        "gen_ai.tool.call.id",
        "gen_ai.system",
        "gen_ai.request.model",
        "gen_ai.response.id",
        "gen_ai.conversation.id",
        "gen_ai.agent.id",
        "gen_ai.agent.name",
        "skillops.tool.kind",
        "skillops.skill.requested",
        "skillops.usage.source",
        "skillops.exec.session_id",
        # Which skill and which body of it a call loaded, and how: a team view's pooled
        # executions per version (skill show) need them; a name and a hash, never text.
        "skill.name",
        "skill.content_hash",
        "skill.activation",
        # The folder a skill was loaded from: which project's skill of a shared name a load
        # is (a path, as the session's cwd, sent as is: not hashed, since the team view
        # names the projects as each machine does; no message text).
        "skill.directory",
        # How a turn ended (answered, empty, …): the verdict reads it.
        "skillops.turn.end",
    }
)
# String facts the verdict reads that are not names: sent reduced to the few values the
# verdict tells apart, so a team view judges each session as its machine does. A turn's
# abort reason is the agent's own word for it ("interrupted", or a text it wrote): the
# user's stops keep their value, any other goes as OTHER_STOP.
_VERDICT_FACTS = {
    "skillops.turn.aborted": lambda v: v if v in USER_STOPS else OTHER_STOP,
}

_encode = msgspec.msgpack.Encoder().encode


def derived(event: Event) -> Event | None:
    """``event`` without message text, or None when nothing of it may go.

    Transcript lines are withheld whole; a session loses its title (the agent's or the
    first prompt); a span keeps only the attributes above, and the verdict's string facts
    reduced to what the verdict tells apart (so a team view's verdicts are the machine's);
    capture and derive errors lose their message (it may quote a line); eval grader results
    lose their detail (it may quote the session). Everything else (labels, notes, evals,
    skill versions, decisions) goes as is.
    """
    if event.__class__.__name__ == "TranscriptLineCaptured":
        return None
    if isinstance(event, SessionDerived):
        return msgspec.structs.replace(event, title=None)
    if isinstance(event, SpanDerived):
        kept = {
            key: value
            for key, value in event.attributes.items()
            # Listed types, not "anything but text": a value of a type added later is dropped.
            if (key in NAMING_ATTRIBUTES and isinstance(value, str))
            or value is None
            or isinstance(value, bool | int | float)
        }
        for key, reduce in _VERDICT_FACTS.items():
            value = event.attributes.get(key)
            if isinstance(value, str):
                kept[key] = reduce(value)
        return msgspec.structs.replace(event, attributes=kept)
    if isinstance(event, CaptureErrorRecorded | DeriveErrorRecorded):
        return msgspec.structs.replace(event, message="")
    if isinstance(event, EvalRunCompleted):
        cases = [
            msgspec.structs.replace(
                case, results=[msgspec.structs.replace(r, detail="") for r in case.results]
            )
            for case in event.cases
        ]
        return msgspec.structs.replace(event, cases=cases)
    return event


def outgoing(
    choice: Content, type_name: str, schema: int, payload: bytes
) -> tuple[str, bytes | None]:
    """``(kind, bytes)`` of one readable payload under ``choice``: kind is ``exact``,
    ``derived`` or ``withheld`` (bytes None)."""
    if choice is Content.ALL or type_name == "PayloadsErased":
        return "exact", payload
    if choice is Content.NONE:
        return ("exact", payload) if type_name in DECISION_TYPES else ("withheld", None)
    if type_name == "TranscriptLineCaptured":
        return "withheld", None
    try:
        event = decode_payload(type_name, schema, payload)
    except LogError:
        return "withheld", None  # an event this version cannot read: nothing of it is judged
    kept = derived(event)
    if kept is None:
        return "withheld", None
    if kept is event:
        return "exact", payload
    return "derived", _encode(kept)
