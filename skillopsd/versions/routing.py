"""Which version runs next: Thompson sampling (default), UCB1, or the champion only.

Pure: no clock, no global random; the caller passes the arm statistics, an integer seed (which
it records in ``SkillRouted``) and the parameters, and the same inputs give the same
decision on every machine and Python version. Randomness comes only from
``random.Random(seed).random()``, whose stream Python keeps stable.

Thompson on Beta(1,1) priors draws one success rate per arm from its posterior; the
challenger runs when its draw is higher. The cap on the challenger's share is applied by
thinning: when P(challenger's draw wins) = p exceeds the cap, a won draw is kept with
probability cap/p, so the challenger runs with probability exactly min(p, cap). p is computed
in closed form (the Beta-Beta sum) unless the counts are beyond ``exact_limit``, where it is
a seeded Monte-Carlo estimate; ``probability_method`` records which.

UCB1 is the seed's rule (an untried arm first, then mean + c*sqrt(ln N / n), ties to the
champion), with the cap applied to the share of executions so far; it is deterministic.

Arm statistics for an experiment count from the experiment's start, the champion's too.
"""

from __future__ import annotations

import math
import random
from typing import Literal

import msgspec

from ._beta import beta_draw, mc_win_probability, win_probability

Arm = Literal["champion", "challenger"]
Algorithm = Literal["thompson", "ucb1", "champion-only"]
ProbabilityMethod = Literal["exact", "monte-carlo", "deterministic"]


class ArmStats(msgspec.Struct, frozen=True):
    """One arm's executions and successes, counted from the experiment's start."""

    executions: int  # counted from the experiment's start (champion too)
    successes: int


class RoutingParams(msgspec.Struct, frozen=True):
    """How to route: the algorithm and its knobs."""

    algorithm: Algorithm = "thompson"
    challenger_cap: float = 0.5  # at most this share of traffic to the challenger
    ucb_c: float = math.sqrt(2)
    mc_draws: int = 10_000  # Monte-Carlo draws for P(challenger chosen) when not exact
    # The closed form sums min(alpha, beta of either arm) terms; beyond this, sample instead.
    exact_limit: int = 100_000


class RoutingDecision(msgspec.Struct, frozen=True):
    """One routing decision with everything needed to recompute it."""

    algorithm: str
    seed: int
    params: dict[str, float | int | str]
    chosen: Arm
    probability: float | None  # P(chosen arm) under the algorithm, exact or seeded MC
    scores: dict[str, float]  # UCB scores or the Thompson draws, per arm
    probability_method: ProbabilityMethod = "deterministic"
    # Thompson: P(challenger's draw > champion's) before the cap, and the thinning uniform.
    win_probability: float | None = None
    cap_draw: float | None = None


def check_arm(arm: ArmStats, name: str) -> None:
    """Raise ValueError naming the arm when its counts cannot be."""
    if arm.executions < 0 or arm.successes < 0 or arm.successes > arm.executions:
        raise ValueError(
            f"{name}: {arm.successes} successes of {arm.executions} executions is not possible"
        )


def _check_params(params: RoutingParams) -> None:
    if not 0.0 <= params.challenger_cap <= 1.0:
        raise ValueError(f"challenger_cap must be within [0, 1], got {params.challenger_cap}")
    if params.mc_draws < 1:
        raise ValueError(f"mc_draws must be >= 1, got {params.mc_draws}")
    if params.ucb_c < 0:
        raise ValueError(f"ucb_c must be >= 0, got {params.ucb_c}")
    if params.algorithm not in ("thompson", "ucb1", "champion-only"):
        raise ValueError(f"unknown routing algorithm {params.algorithm!r}")


def params_record(params: RoutingParams) -> dict[str, float | int | str]:
    """The parameters as recorded in ``SkillRouted`` (read back by :func:`params_of`)."""
    return {
        "challenger_cap": params.challenger_cap,
        "ucb_c": params.ucb_c,
        "mc_draws": params.mc_draws,
        "exact_limit": params.exact_limit,
        "prior": "beta(1,1)",
    }


def params_of(decision: RoutingDecision) -> RoutingParams:
    """The parameters a recorded decision was made with."""
    p = decision.params
    return RoutingParams(
        algorithm=decision.algorithm,  # type: ignore[arg-type]  # checked by route
        challenger_cap=float(p["challenger_cap"]),
        ucb_c=float(p["ucb_c"]),
        mc_draws=int(p["mc_draws"]),
        exact_limit=int(p["exact_limit"]),
    )


def _thompson(
    champion: ArmStats, challenger: ArmStats, seed: int, params: RoutingParams
) -> RoutingDecision:
    rng = random.Random(seed)
    a, b = 1 + challenger.successes, 1 + challenger.executions - challenger.successes
    c, d = 1 + champion.successes, 1 + champion.executions - champion.successes
    theta_challenger = beta_draw(rng, a, b)
    theta_champion = beta_draw(rng, c, d)
    cap_draw = rng.random()  # always drawn, so the stream's layout never depends on the data
    if min(a, b, c, d) <= params.exact_limit:
        p, method = win_probability(a, b, c, d), "exact"
    else:
        p, method = mc_win_probability(a, b, c, d, rng, params.mc_draws), "monte-carlo"
    share = min(p, params.challenger_cap)
    won = theta_challenger > theta_champion  # a tie keeps the champion
    # Thinning: a won draw is kept with probability cap/p, so P(challenger) = min(p, cap).
    kept = p <= params.challenger_cap or cap_draw * p < params.challenger_cap
    chosen: Arm = "challenger" if won and kept and params.challenger_cap > 0 else "champion"
    return RoutingDecision(
        algorithm="thompson",
        seed=seed,
        params=params_record(params),
        chosen=chosen,
        probability=share if chosen == "challenger" else 1.0 - share,
        scores={"champion": theta_champion, "challenger": theta_challenger},
        probability_method=method,  # type: ignore[arg-type]
        win_probability=p,
        cap_draw=cap_draw,
    )


def _ucb1(
    champion: ArmStats, challenger: ArmStats, seed: int, params: RoutingParams
) -> RoutingDecision:
    total = champion.executions + challenger.executions
    scores: dict[str, float] = {}
    for name, arm in (("champion", champion), ("challenger", challenger)):
        if arm.executions:
            mean = arm.successes / arm.executions
            scores[name] = mean + params.ucb_c * math.sqrt(math.log(total) / arm.executions)
    chosen: Arm
    if champion.executions == 0:
        chosen = "champion"  # untried first, and the champion first of two untried
    elif challenger.executions == 0:
        chosen = "challenger"
    else:
        chosen = "challenger" if scores["challenger"] > scores["champion"] else "champion"
    if chosen == "challenger" and challenger.executions + 1 > params.challenger_cap * (total + 1):
        chosen = "champion"
    return RoutingDecision(
        algorithm="ucb1",
        seed=seed,
        params=params_record(params),
        chosen=chosen,
        probability=1.0,
        scores=scores,
        probability_method="deterministic",
    )


def route(
    champion: ArmStats, challenger: ArmStats | None, seed: int, params: RoutingParams
) -> RoutingDecision:
    """Pick the arm that runs next; the same (stats, seed, params) always pick the same."""
    _check_params(params)
    check_arm(champion, "champion")
    if challenger is None or params.algorithm == "champion-only":
        return RoutingDecision(
            algorithm=params.algorithm,
            seed=seed,
            params=params_record(params),
            chosen="champion",
            probability=1.0,
            scores={},
            probability_method="deterministic",
        )
    check_arm(challenger, "challenger")
    if params.algorithm == "ucb1":
        return _ucb1(champion, challenger, seed, params)
    return _thompson(champion, challenger, seed, params)


def verify_route(
    recorded: RoutingDecision, champion: ArmStats, challenger: ArmStats | None
) -> str | None:
    """Recompute a recorded decision from its stats; None if it agrees, else what differs."""
    again = route(champion, challenger, recorded.seed, params_of(recorded))
    if again.chosen != recorded.chosen:
        return f"chose {recorded.chosen}, recomputed {again.chosen}"
    for name in ("probability", "win_probability", "cap_draw"):
        old, new = getattr(recorded, name), getattr(again, name)
        if (old is None) != (new is None) or (
            old is not None and new is not None and abs(old - new) > 1e-9
        ):
            return f"{name} {old}, recomputed {new}"
    if recorded.scores.keys() != again.scores.keys() or any(
        abs(recorded.scores[k] - again.scores[k]) > 1e-9 for k in recorded.scores
    ):
        return f"scores {recorded.scores}, recomputed {again.scores}"
    return None
