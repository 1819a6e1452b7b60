"""The seam between the store and the pure routing and decision rules.

The store speaks in versions (hashes), folded state and ``SkillRouted`` events; the rules in
``routing.py`` and ``decision.py`` speak in arms. This module translates, and nothing else.
"""

from __future__ import annotations

from typing import cast

from ..events.types import ArmInput, SkillRouted
from .decision import Decision, blocks, decide, guardrail
from .policy import BanditPolicy
from .routing import Algorithm, Arm, ArmStats, RoutingDecision, RoutingParams, route, verify_route
from .state import SkillState

# Recorded in ``params`` beside the rule's own, so a decision can be rebuilt from its event.
_EXTRA = ("probability_method", "win_probability", "cap_draw")


def arms(state: SkillState) -> tuple[ArmInput, ArmInput | None]:
    """The arms the router sees: the experiment's counts (all-time when nothing is tested)."""
    assert state.champion is not None
    exp = state.experiment

    def arm(digest: str) -> ArmInput:
        s = state.stats(digest, exp)
        return ArmInput(version_hash=digest, executions=s.executions, successes=s.successes)

    return arm(state.champion), arm(state.challenger) if state.challenger else None


Arms = tuple[ArmInput, ArmInput | None]


def route_state(
    state: SkillState,
    routing_id: str,
    seed: int,
    policy: BanditPolicy,
    pooled: Arms | None = None,
) -> SkillRouted:
    """The routing decision for ``state`` as the event that records it (on ``pooled`` arms,
    a team's counts, instead of this machine's when given)."""
    champion, challenger = pooled if pooled is not None else arms(state)
    strategy = state.strategy if challenger is not None else "champion-only"
    decision = route(
        ArmStats(champion.executions, champion.successes),
        ArmStats(challenger.executions, challenger.successes) if challenger else None,
        seed,
        RoutingParams(algorithm=cast(Algorithm, strategy), challenger_cap=policy.challenger_cap),
    )
    chosen = challenger if decision.chosen == "challenger" and challenger else champion
    params: dict[str, str | int | float | bool | None] = dict(decision.params)
    params["probability_method"] = decision.probability_method
    params["win_probability"] = decision.win_probability
    params["cap_draw"] = decision.cap_draw
    return SkillRouted(
        skill=state.skill,
        routing_id=routing_id,
        algorithm=decision.algorithm,
        seed=seed,
        chosen_hash=chosen.version_hash,
        params=params,
        draws=dict(decision.scores) if decision.algorithm == "thompson" else {},
        probability=decision.probability,
        arms=[champion, *([challenger] if challenger else [])],
        scores=dict(decision.scores),
        experiment_id=state.experiment,
        after_version=state.state_version,
    )


def verify_routed(state: SkillState, event: SkillRouted, pooled: Arms | None = None) -> str | None:
    """Recompute a recorded decision from the state before it (and the ``pooled`` arms it
    records, already checked against the machines' shares); None if it agrees."""
    if state.champion is None:
        return "no champion when it was routed"
    champion, challenger = pooled if pooled is not None else arms(state)
    expected = [champion, *([challenger] if challenger else [])]
    if event.arms != expected:
        return f"arms recorded {_arms(event.arms)}, the log gives {_arms(expected)}"
    if event.experiment_id != state.experiment:
        return f"experiment recorded {event.experiment_id}, the log gives {state.experiment}"
    params = {k: v for k, v in event.params.items() if k not in _EXTRA}
    method = event.params.get("probability_method", "deterministic")
    win = event.params.get("win_probability")
    cap = event.params.get("cap_draw")
    chosen: Arm = "champion"
    if challenger is not None and event.chosen_hash == challenger.version_hash:
        chosen = "challenger"
    elif event.chosen_hash != champion.version_hash:
        return f"chose {event.chosen_hash[:12]}, which is neither arm"
    recorded = RoutingDecision(
        algorithm=event.algorithm,
        seed=event.seed,
        params={k: v for k, v in params.items() if isinstance(v, (str, int, float))},
        chosen=chosen,
        probability=event.probability,
        scores=dict(event.scores),
        probability_method=method,  # type: ignore[arg-type]
        win_probability=float(win) if isinstance(win, (int, float)) else None,
        cap_draw=float(cap) if isinstance(cap, (int, float)) else None,
    )
    try:
        return verify_route(
            recorded,
            ArmStats(champion.executions, champion.successes),
            ArmStats(challenger.executions, challenger.successes) if challenger else None,
        )
    except (KeyError, ValueError, TypeError) as exc:
        return f"cannot recompute: {exc}"


def _arms(found: list[ArmInput]) -> str:
    return ", ".join(f"{a.version_hash[:12]} {a.successes}/{a.executions}" for a in found)


def decide_state(state: SkillState, policy: BanditPolicy) -> Decision | None:
    """The decision rule on the running experiment (None when nothing is tested)."""
    if state.experiment is None or state.challenger is None or state.champion is None:
        return None
    exp = state.experiment
    champ = state.stats(state.champion, exp)
    chall = state.stats(state.challenger, exp)
    runs = [e for e in state.executions.values() if e.experiment_id == exp and e.outcome]

    def values(digest: str, field: str) -> list[int | None]:
        return [getattr(e, field) for e in runs if e.version_hash == digest]

    guards = [
        guardrail(
            metric,
            values(state.champion, field),
            values(state.challenger, field),
        )
        for metric, field in (policy.cost_guardrail(), ("duration_ms", "duration_ms"))
    ]
    # The rule for this body's n-th test (the error spent across re-tests of one body), and
    # the same executions in the order they ran, per time block (a drifting common rate
    # cannot decide).
    earlier = sum(
        1
        for e in state.experiments.values()
        if e.challenger == state.challenger
        and e.experiment_id != exp
        and e.position < (state.experiments[exp].position)
    )
    params = policy.decision().retest(earlier)
    ordered = sorted(runs, key=lambda e: e.first_position)
    strata = blocks(
        [(e.version_hash == state.challenger, e.outcome == "success") for e in ordered],
        params.block,
    )
    return decide(
        ArmStats(champ.executions, champ.successes),
        ArmStats(chall.executions, chall.successes),
        params,
        guards,
        strata,
    )
