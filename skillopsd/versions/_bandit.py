"""The seam between the store and the pure routing and decision rules.

The store speaks in versions (hashes) and :class:`~skillopsd.versions.state.Stats`; the rules
in ``routing.py`` and ``decision.py`` speak in arms. This module translates, and nothing else.
"""

from __future__ import annotations

import msgspec

from ..events.types import ArmInput, PolicyValue
from .state import Stats


class RouteResult(msgspec.Struct, frozen=True, kw_only=True):
    """A routing decision in the store's terms."""

    algorithm: str
    chosen: str  # a version hash
    probability: float | None
    draws: dict[str, float]
    scores: dict[str, float]
    params: dict[str, PolicyValue]


class DecideResult(msgspec.Struct, frozen=True, kw_only=True):
    """The decision rule's verdict on a running experiment."""

    outcome: str  # continue | promote | retire | inconclusive
    reason: str


def route_arms(
    strategy: str, champion: ArmInput, challenger: ArmInput | None, seed: int
) -> RouteResult:
    """Which version the next session gets (deterministic in its inputs and ``seed``)."""
    raise NotImplementedError


def decide_arms(
    champion: Stats, challenger: Stats, guard: tuple[Stats, Stats] | None = None
) -> DecideResult:
    """Continue, promote, retire or end inconclusive, on the experiment's counts."""
    raise NotImplementedError
