"""``PolicySet bandit``: the decision rule's and the router's knobs, recorded in the log."""

from __future__ import annotations

from typing import Annotated

import msgspec

from ..events import Database, EventLog
from ..events.types import PolicySet
from .decision import DecisionParams
from .routing import RoutingParams

BANDIT_POLICY = "bandit"
_D = DecisionParams()
_R = RoutingParams()


class BanditPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Defaults are the decision rule's, which ``bench/decision.py`` measures."""

    min_per_arm: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = _D.min_per_arm
    promote_bar: Annotated[float, msgspec.Meta(gt=0.5, le=1.0)] = _D.promote_bar
    retire_bar: Annotated[float, msgspec.Meta(gt=0.5, le=1.0)] = _D.retire_bar
    horizon: Annotated[int, msgspec.Meta(ge=2, le=1_000_000)] = _D.horizon
    challenger_cap: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = _R.challenger_cap
    # The cost guardrail compares USD per execution; true compares tokens instead.
    guardrail_tokens: bool = False

    def cost_guardrail(self) -> tuple[str, str]:
        """(metric name, execution field) of the cost guardrail."""
        return ("tokens", "tokens") if self.guardrail_tokens else ("cost_usd", "cost_usd")

    def decision(self) -> DecisionParams:
        """The decision rule's parameters."""
        return DecisionParams(
            min_per_arm=self.min_per_arm,
            promote_bar=self.promote_bar,
            retire_bar=self.retire_bar,
            horizon=self.horizon,
        )


def bandit_policy(db: Database) -> BanditPolicy:
    """The newest ``PolicySet bandit`` (defaults when none was set or it does not read)."""
    newest: PolicySet | None = None
    with db.read():
        for event in EventLog(db).read_stream(f"policy:{BANDIT_POLICY}"):
            payload = event.payload
            if isinstance(payload, PolicySet) and payload.name == BANDIT_POLICY:
                newest = payload
    if newest is None:
        return BanditPolicy()
    try:
        return msgspec.convert(newest.values, BanditPolicy, strict=False)
    except msgspec.ValidationError:
        return BanditPolicy()
