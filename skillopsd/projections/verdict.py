"""The session verdict rule and its parameters (a ``PolicySet`` named ``verdict``).

Default: no verdict when no call voted (no TOOL or SKILL span has an outcome); ``failure``
when the failed share of voting calls exceeds 0.8; else ``blocked`` when at least one call
was blocked; else ``success``.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

POLICY_NAME = "verdict"


class VerdictPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Parameters of the verdict rule."""

    failure_share: float = 0.8
    blocked_min: int = 1

    @classmethod
    def from_values(cls, values: Mapping[str, object]) -> VerdictPolicy:
        """The policy from a ``PolicySet``'s values (unknown keys and bad types are errors)."""
        return msgspec.convert(dict(values), cls, strict=False)


def verdict(success: int, failure: int, blocked: int, policy: VerdictPolicy) -> str | None:
    """Roll TOOL and SKILL outcomes up into a session verdict."""
    voted = success + failure + blocked
    if voted == 0:
        return None
    if failure / voted > policy.failure_share:
        return "failure"
    if blocked >= policy.blocked_min:
        return "blocked"
    return "success"
