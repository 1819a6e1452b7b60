"""When an experiment ends: promote the challenger, retire it, keep testing, or stop undecided.

The test is a Bayesian posterior probability with a high bar, a minimum sample per arm and a
maximum horizon. With Beta(1,1) priors, after every execution we compute
P(challenger's rate > champion's | data) exactly (the Beta-Beta closed form) and

- promote when it reaches ``promote_bar`` (and no guardrail is exceeded),
- retire when P(champion's rate > challenger's) reaches ``retire_bar``,
- end *inconclusive* (the champion stays) when the experiment reaches ``horizon`` executions,
- and decide nothing before each arm has ``min_per_arm`` executions.

Why this test and not the seed's: the posterior is a function of the data alone, so it means
the same whether it is read once or after every execution and whatever routing chose the
arms (Thompson's adaptive allocation included); repeated looks still give more chances to
cross a bar, which the high bar, the minimum sample and the finite horizon bound. The error
rates this leaves are measured, not assumed: ``bench/decision.py`` simulates thousands of
experiments per scenario with routing and this rule as the product runs them, and the
defaults below keep an equal or worse challenger promoted <= 5 % while a challenger 20 points
better is promoted >= 80 % (a mixture SPRT would bound the error without simulation, but for
two arms with an unknown common rate and adaptive allocation its composite null needs a
conservative construction that, at the tens of runs a week one developer produces, would
almost never decide).

Success is the only primary signal. Tokens and duration are guardrails judged separately by
:func:`guardrail` on the values that were reported (missing is missing, never zero); a
challenger that wins on success but exceeds a guardrail is retired, not promoted.

The caller passes each arm's executions counted from the experiment's start (the champion's
too): all-time champion stats would compare different periods and different traffic.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Literal

import msgspec

from ._beta import at_least, win_probability
from .routing import ArmStats, check_arm

Outcome = Literal["continue", "promote", "retire", "inconclusive"]


class DecisionParams(msgspec.Struct, frozen=True):
    """The decision rule's knobs; the defaults meet the benchmark's targets."""

    min_per_arm: int = 20  # executions of each arm before any decision
    promote_bar: float = 0.998  # P(challenger better) needed to promote
    retire_bar: float = 0.95  # P(champion better) needed to retire
    horizon: int = 300  # executions in the experiment (both arms); then inconclusive


class Decision(msgspec.Struct, frozen=True):
    """What the rule says now, why, and the numbers it said it from."""

    outcome: Outcome
    reason: str
    statistic: dict[str, float]  # e.g. posterior P(challenger better), bounds


class GuardrailParams(msgspec.Struct, frozen=True):
    """How much worse a cost may get: the challenger's median against the champion's."""

    max_ratio: float = 1.5  # challenger's median may be at most this multiple of the champion's
    min_reported: int = 10  # reported values per arm before the guardrail says anything
    # ...and must also exceed the champion's by this much: a ratio of tiny numbers (a 0 ms or
    # 3-token champion median) says nothing about cost.
    tokens_floor: float = 1000.0
    duration_ms_floor: float = 5000.0

    def floor(self, metric: str) -> float:
        """The absolute increase below which ``metric`` is never exceeded."""
        return self.tokens_floor if metric == "tokens" else self.duration_ms_floor


class Guardrail(msgspec.Struct, frozen=True):
    """One cost metric compared between the arms on the values that were reported."""

    metric: str
    status: Literal["ok", "exceeded", "unknown"]
    champion_reported: int
    challenger_reported: int
    champion_median: float | None
    challenger_median: float | None


def _check_params(params: DecisionParams) -> None:
    if params.min_per_arm < 0 or params.horizon < 1:
        raise ValueError(
            f"min_per_arm must be >= 0 and horizon >= 1, got {params.min_per_arm}, {params.horizon}"
        )
    for name in ("promote_bar", "retire_bar"):
        bar = getattr(params, name)
        if not 0.5 < bar <= 1.0:
            raise ValueError(f"{name} must be within (0.5, 1], got {bar}")


def guardrail(
    metric: str,
    champion_values: Sequence[int | float | None],
    challenger_values: Sequence[int | float | None],
    params: GuardrailParams | None = None,
) -> Guardrail:
    """Compare a cost (tokens, duration) between arms; None is missing, not zero."""
    params = params or GuardrailParams()
    champ = [v for v in champion_values if v is not None]
    chall = [v for v in challenger_values if v is not None]
    for v in (*champ, *chall):
        if v < 0:
            raise ValueError(f"guardrail {metric}: a negative value ({v}) is not a cost")
    champ_median = float(statistics.median(champ)) if champ else None
    chall_median = float(statistics.median(chall)) if chall else None
    status: Literal["ok", "exceeded", "unknown"] = "unknown"
    enough = min(len(champ), len(chall)) >= params.min_reported
    if enough and champ_median is not None and chall_median is not None:
        worse = chall_median > params.max_ratio * champ_median
        status = (
            "exceeded" if worse and chall_median - champ_median > params.floor(metric) else "ok"
        )
    return Guardrail(
        metric=metric,
        status=status,
        champion_reported=len(champ),
        challenger_reported=len(chall),
        champion_median=champ_median,
        challenger_median=chall_median,
    )


def decide(
    champion: ArmStats,
    challenger: ArmStats,
    params: DecisionParams | None = None,
    guardrails: Sequence[Guardrail] = (),
) -> Decision:
    """Promote, retire, continue or stop inconclusive, from stats since the experiment began."""
    params = params or DecisionParams()
    _check_params(params)
    check_arm(champion, "champion")
    check_arm(challenger, "challenger")
    a, b = 1 + challenger.successes, 1 + challenger.executions - challenger.successes
    c, d = 1 + champion.successes, 1 + champion.executions - champion.successes
    total = champion.executions + challenger.executions
    p = win_probability(a, b, c, d)
    champ_mean, chall_mean = c / (c + d), a / (a + b)  # posterior means
    # A normal approximation of the difference's 95 % credible interval, for people to read;
    # the rule itself uses only the exact probability.
    spread = 1.96 * math.sqrt(
        a * b / ((a + b) ** 2 * (a + b + 1)) + c * d / ((c + d) ** 2 * (c + d + 1))
    )
    statistic = {
        "p_challenger_better": p,
        "champion_rate": champ_mean,
        "challenger_rate": chall_mean,
        "difference_low": chall_mean - champ_mean - spread,
        "difference_high": chall_mean - champ_mean + spread,
        "champion_executions": float(champion.executions),
        "challenger_executions": float(challenger.executions),
    }
    at_horizon = total >= params.horizon
    fewest = min(champion.executions, challenger.executions)
    if fewest < params.min_per_arm:
        if at_horizon:
            return Decision(
                "inconclusive",
                f"horizon of {params.horizon} executions reached with {fewest} on one arm "
                f"(minimum {params.min_per_arm}); the champion stays",
                statistic,
            )
        return Decision(
            "continue", f"{fewest} of {params.min_per_arm} executions on one arm", statistic
        )
    if at_least(p, params.promote_bar, a, b, c, d):
        blown = [g for g in guardrails if g.status == "exceeded"]
        if blown:
            g = blown[0]
            return Decision(
                "retire",
                f"better on success (P={p:.4f}) but {g.metric} median {g.challenger_median:g} "
                f"exceeds the champion's {g.champion_median:g} beyond the guardrail",
                statistic,
            )
        return Decision(
            "promote", f"P(challenger better) = {p:.4f} >= {params.promote_bar}", statistic
        )
    # P(champion better) = P(Beta(c,d) > Beta(a,b)) = 1 - p (ties have probability 0).
    if at_least(1.0 - p, params.retire_bar, c, d, a, b):
        return Decision(
            "retire",
            f"P(champion better) = {1 - p:.4f} >= {params.retire_bar}",
            statistic,
        )
    if at_horizon:
        return Decision(
            "inconclusive",
            f"horizon of {params.horizon} executions reached, P(challenger better) = {p:.4f}; "
            "the champion stays",
            statistic,
        )
    return Decision("continue", f"P(challenger better) = {p:.4f}", statistic)
