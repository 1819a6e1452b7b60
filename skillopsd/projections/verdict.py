"""The session verdict rule and its parameters (a ``PolicySet`` named ``verdict``).

The verdict says how the session *ended*, from facts the deriver put on its spans
(``derive/_ending.py``):

- none: no TOOL or SKILL call has an outcome;
- ``abandoned``: the user stopped the end of it: the last turn was interrupted while it had
  calls (an interrupt after the answer, or of a bare "exit", is the user leaving), or the last
  call with an outcome was blocked (rejected, denied, interrupted) and nothing came after;
- ``failure``: at least ``unresolved_min`` calls of the last ``tail_turns`` turns failed and no
  later call of the same kind succeeded, or more than ``failure_share`` of all calls failed
  (a look-up that found nothing, such as a ``grep`` with no match, counts for neither);
- ``success`` otherwise: failures the agent got past and blocks the user worked around earlier
  in the session do not spoil it.

Defaults: ``tail_turns=1``, ``unresolved_min=1``, ``failure_share=0.8``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

import msgspec

POLICY_NAME = "verdict"
VERDICTS = ("success", "failure", "abandoned")
# Keys of earlier versions of the rule: a stored PolicySet holding them still applies the rest.
_RETIRED = frozenset({"blocked_min"})


class VerdictPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Parameters of the verdict rule."""

    tail_turns: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 1
    unresolved_min: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 1
    failure_share: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 0.8

    @classmethod
    def from_values(cls, values: Mapping[str, object]) -> VerdictPolicy:
        """The policy from a ``PolicySet``'s values (unknown keys and bad values are errors)."""
        current = {k: v for k, v in values.items() if k not in _RETIRED}
        return msgspec.convert(current, cls, strict=False)


class SessionEnd(msgspec.Struct, frozen=True, kw_only=True):
    """What the verdict weighs about one session (folded from its spans)."""

    success: int
    failure: int
    blocked: int
    setbacks: int  # failed calls that did more than look (a grep finding nothing is no setback)
    unresolved: int  # setbacks in the last ``tail_turns`` turns nothing later made good
    last_blocked: bool  # the last call with an outcome was blocked
    interrupted: bool  # the last turn, which had calls, was interrupted by the user


def verdict(end: SessionEnd, policy: VerdictPolicy) -> str | None:
    """How the session ended: ``success``, ``failure``, ``abandoned``, or ``None``."""
    voted = end.success + end.failure + end.blocked
    if voted == 0:
        return None
    if end.interrupted or end.last_blocked:
        return "abandoned"
    if end.unresolved >= policy.unresolved_min or end.setbacks / voted > policy.failure_share:
        return "failure"
    return "success"
