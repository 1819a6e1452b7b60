"""Policies in force: the one reader of ``PolicySet`` events for the gate, the bandit, the
verdict rule's ``policy show`` and ``policy set``.

Each ``PolicySet`` records every key set explicitly so far (``policy set`` merges the new keys
with the earlier ones; ``policy reset`` drops some), so the newest one on the policy's stream
is what is in force; keys it does not hold take their defaults. Values are converted the way
each consumer reads them: a stored set that does not convert (written before values were
checked) leaves the defaults in force, and the keys at fault are reported as ``invalid``.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from ..evals.gate import GATE_POLICY, GatePolicy
from ..events import Database, EventLog
from ..events.types import PolicySet
from ..projections.verdict import POLICY_NAME, VerdictPolicy
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


POLICY_TYPES: dict[str, type[msgspec.Struct]] = {
    POLICY_NAME: VerdictPolicy,
    GATE_POLICY: GatePolicy,
    BANDIT_POLICY: BanditPolicy,
}


class PolicyState(msgspec.Struct, frozen=True):
    """A policy as the log says now: the stored keys, since when, and what is in force."""

    name: str
    stored: dict[str, object]
    position: int | None
    in_force: msgspec.Struct


def _convert(name: str, values: dict[str, object]) -> msgspec.Struct:
    kind = POLICY_TYPES[name]
    try:
        if kind is VerdictPolicy:
            return VerdictPolicy.from_values(values)  # as the sessions projection reads it
        return msgspec.convert(values, kind, strict=False)
    except (msgspec.ValidationError, TypeError):
        return kind()


def read_policy(db: Database, name: str, *, upto: int | None = None) -> PolicyState:
    """Policy ``name`` in force now (or just after log position ``upto``)."""
    if name not in POLICY_TYPES:
        raise ValueError(f"no policy {name!r} (policies: {', '.join(sorted(POLICY_TYPES))})")
    newest: tuple[PolicySet, int] | None = None
    with db.read():
        for event in EventLog(db).read_stream(f"policy:{name}"):
            if upto is not None and event.position > upto:
                break
            payload = None if event.erased else event.payload
            if isinstance(payload, PolicySet) and payload.name == name:
                newest = (payload, event.position)
    if newest is None:
        return PolicyState(name, {}, None, POLICY_TYPES[name]())
    values: dict[str, object] = dict(newest[0].values)
    return PolicyState(name, values, newest[1], _convert(name, values))


def bandit_policy(db: Database, *, upto: int | None = None) -> BanditPolicy:
    """The bandit's knobs in force."""
    found = read_policy(db, BANDIT_POLICY, upto=upto).in_force
    assert isinstance(found, BanditPolicy)
    return found


def gate_policy(db: Database) -> GatePolicy:
    """The gate's knobs in force."""
    found = read_policy(db, GATE_POLICY).in_force
    assert isinstance(found, GatePolicy)
    return found
