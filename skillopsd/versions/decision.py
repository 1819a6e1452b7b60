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

Beyond one stationary test, two corrections (both measured by ``bench/decision.py``):

- *Time blocks.* Routing is adaptive, so the arms are not spread evenly over time; when the
  common success rate drifts (a broken test suite fixed halfway), the pooled posterior would
  read the drift as a difference. A promotion or retirement must therefore also hold within
  blocks of ``block`` consecutive executions (:func:`within_blocks`), where drift moves both
  arms alike.
- *Error spent across re-tests.* Re-adding the same body after an inconclusive test gives it
  another set of chances; its n-th test promotes only at ``1 - (1 - promote_bar) / 2**(n-1)``
  (:meth:`DecisionParams.retest`), which roughly halves each re-test's chance of a false
  promotion, so the chances summed over re-tests stay near twice the first test's instead of
  growing with every re-test (measured, not assumed).

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
# Executions per time block: short enough that a common rate barely moves within one, long
# enough that most blocks hold both arms.
BLOCK = 20


class DecisionParams(msgspec.Struct, frozen=True):
    """The decision rule's knobs; the defaults meet the benchmark's targets."""

    min_per_arm: int = 20  # executions of each arm before any decision
    promote_bar: float = 0.998  # P(challenger better) needed to promote
    retire_bar: float = 0.95  # P(champion better) needed to retire
    horizon: int = 300  # executions in the experiment (both arms); then inconclusive
    block: int = BLOCK  # executions per time block of the within-block comparison

    def retest(self, earlier: int) -> DecisionParams:
        """The rule for a test of a body already tested ``earlier`` times: the promotion's
        error is spent across tests, halving with each re-test (1/2 + 1/4 + ... < 1 of the
        first test's), so re-adding an equal challenger after every inconclusive end cannot
        compound its chances of a false promotion."""
        if earlier <= 0:
            return self
        tail = (1.0 - self.promote_bar) / 2**earlier
        return msgspec.structs.replace(self, promote_bar=1.0 - tail)


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
    cost_usd_floor: float = 0.05

    def floor(self, metric: str) -> float:
        """The absolute increase below which ``metric`` is never exceeded."""
        if metric == "tokens":
            return self.tokens_floor
        return self.cost_usd_floor if metric == "cost_usd" else self.duration_ms_floor


class Guardrail(msgspec.Struct, frozen=True):
    """One cost metric compared between the arms on the values that were reported."""

    metric: str
    status: Literal["ok", "exceeded", "unknown"]
    champion_reported: int
    challenger_reported: int
    champion_median: float | None
    challenger_median: float | None


def _check_params(params: DecisionParams) -> None:
    if params.block < 1:
        raise ValueError(f"block must be >= 1, got {params.block}")
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
    return judged(
        metric,
        len(champ),
        len(chall),
        float(statistics.median(champ)) if champ else None,
        float(statistics.median(chall)) if chall else None,
        params,
    )


def judged(
    metric: str,
    champion_reported: int,
    challenger_reported: int,
    champion_median: float | None,
    challenger_median: float | None,
    params: GuardrailParams | None = None,
) -> Guardrail:
    """A guardrail from the medians of the reported values (what a team decision stores)."""
    params = params or GuardrailParams()
    status: Literal["ok", "exceeded", "unknown"] = "unknown"
    enough = min(champion_reported, challenger_reported) >= params.min_reported
    if enough and champion_median is not None and challenger_median is not None:
        worse = challenger_median > params.max_ratio * champion_median
        gap = challenger_median - champion_median
        status = "exceeded" if worse and gap > params.floor(metric) else "ok"
    return Guardrail(
        metric=metric,
        status=status,
        champion_reported=champion_reported,
        challenger_reported=challenger_reported,
        champion_median=champion_median,
        challenger_median=challenger_median,
    )


def blocks(
    order: Sequence[tuple[bool, bool]], size: int = BLOCK
) -> list[tuple[ArmStats, ArmStats]]:
    """(champion, challenger) stats per block of ``size`` consecutive executions, from the
    experiment's executions in order as (ran the challenger, succeeded)."""
    out = []
    for start in range(0, len(order), size):
        n = [0, 0]
        k = [0, 0]
        for challenger, success in order[start : start + size]:
            n[challenger] += 1
            k[challenger] += success
        out.append((ArmStats(n[0], k[0]), ArmStats(n[1], k[1])))
    return out


def within_blocks(strata: Sequence[tuple[ArmStats, ArmStats]]) -> float:
    """P(challenger better) judged only within time blocks (0.5 when no block holds both).

    Each block holding both arms gives the difference of the arms' posterior means (Beta(1,1)
    priors) and its variance; the blocks are combined with Mantel-Haenszel weights
    ``n0 n1 / (n0 + n1)`` (which do not depend on the outcomes) and read through a normal
    approximation. A common rate that drifts moves both arms of a block alike, so it cannot
    pass for a difference, however unevenly routing spread the arms over time.
    """
    weight = total = spread = 0.0
    for champ, chall in strata:
        if not champ.executions or not chall.executions:
            continue
        a, b = 1 + chall.successes, 1 + chall.executions - chall.successes
        c, d = 1 + champ.successes, 1 + champ.executions - champ.successes
        w = champ.executions * chall.executions / (champ.executions + chall.executions)
        mean = a / (a + b) - c / (c + d)
        var = a * b / ((a + b) ** 2 * (a + b + 1)) + c * d / ((c + d) ** 2 * (c + d + 1))
        weight += w
        total += w * mean
        spread += w * w * var
    if weight == 0 or spread <= 0:
        return 0.5
    z = (total / weight) / math.sqrt(spread / (weight * weight))
    return 0.5 * math.erfc(-z / math.sqrt(2))


def decide(
    champion: ArmStats,
    challenger: ArmStats,
    params: DecisionParams | None = None,
    guardrails: Sequence[Guardrail] = (),
    strata: Sequence[tuple[ArmStats, ArmStats]] | None = None,
) -> Decision:
    """Promote, retire, continue or stop inconclusive, from stats since the experiment began.

    ``strata``: the same executions per time block (:func:`blocks`); when given, a promotion
    or retirement must also hold within blocks (:func:`within_blocks`), so a drifting common
    rate cannot decide. Without it the pooled posterior alone decides (a stationary test).
    """
    params = params or DecisionParams()
    _check_params(params)
    check_arm(champion, "champion")
    check_arm(challenger, "challenger")
    a, b = 1 + challenger.successes, 1 + challenger.executions - challenger.successes
    c, d = 1 + champion.successes, 1 + champion.executions - champion.successes
    total = champion.executions + challenger.executions
    p = win_probability(a, b, c, d)
    inside = within_blocks(strata) if strata is not None else None
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
    statistic["promote_bar"] = params.promote_bar
    if inside is not None:
        statistic["p_within_blocks"] = inside
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
    if at_least(p, params.promote_bar, a, b, c, d) and (
        inside is None or inside >= params.promote_bar
    ):
        blown = [g for g in guardrails if g.status == "exceeded"]
        if blown:
            g = blown[0]
            return Decision(
                "retire",
                f"better on success (P={p:.4f}) but {g.metric} median {g.challenger_median:g} "
                f"exceeds the champion's {g.champion_median:g} beyond the guardrail",
                statistic,
            )
        blocked = f", within time blocks {inside:.4f}" if inside is not None else ""
        return Decision(
            "promote",
            f"P(challenger better) = {p:.4f}{blocked} >= {params.promote_bar:g}",
            statistic,
        )
    # P(champion better) = P(Beta(c,d) > Beta(a,b)) = 1 - p (ties have probability 0).
    if at_least(1.0 - p, params.retire_bar, c, d, a, b) and (
        inside is None or 1.0 - inside >= params.retire_bar
    ):
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
