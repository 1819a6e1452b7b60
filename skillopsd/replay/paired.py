"""The paired comparison of two versions run on the same tasks: discordant pairs and an exact
two-sided sign test (McNemar's exact test), with one plain sentence.

Only the discordant pairs carry information: a task both versions pass (or both fail) says
nothing about which is better. Under "no difference" each discordant pair is a fair coin.
"""

from __future__ import annotations

from math import comb

import msgspec

ALPHA = 0.05


def sign_test(b: int, c: int) -> float:
    """Exact two-sided p-value of ``b`` against ``c`` discordant pairs (1.0 when none)."""
    if b < 0 or c < 0:
        raise ValueError("counts must be non-negative")
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(comb(n, i) for i in range(min(b, c) + 1))
    return min(1.0, 2 * tail / 2**n)


class PairedResult(msgspec.Struct, frozen=True):
    """``challenger`` against ``baseline`` over ``pairs`` tasks both ran."""

    baseline: str
    challenger: str
    pairs: int
    both_passed: int
    both_failed: int
    challenger_only: int  # the challenger passed, the baseline failed
    baseline_only: int
    p_value: float
    sentence: str


def _p(p: float) -> str:
    return f"{p:.2g}" if p >= 0.001 else "< 0.001"


def paired(
    baseline: str, challenger: str, outcomes: list[tuple[bool, bool]], unit: str = "case"
) -> PairedResult:
    """Compare from ``(baseline passed, challenger passed)`` per task; ``unit`` names a task."""
    b = sum(1 for base, new in outcomes if new and not base)
    c = sum(1 for base, new in outcomes if base and not new)
    p = sign_test(b, c)
    units = f"{unit}s"
    if not outcomes:
        sentence = f"no {unit} was run by both {baseline} and {challenger}: nothing to compare"
    elif b + c == 0:
        sentence = (
            f"{baseline} and {challenger} agree on all {len(outcomes)} {units}:"
            " no evidence either way"
        )
    else:
        head = (
            f"{challenger} passed {b} {units if b != 1 else unit} {baseline} failed,"
            f" {baseline} passed {c} that {challenger} failed: p = {_p(p)}"
        )
        if p < ALPHA:
            better = challenger if b > c else baseline
            sentence = f"{head}, {better} is better at 5 %"
        else:
            sentence = f"{head}, not yet conclusive at 5 %"
    return PairedResult(
        baseline=baseline,
        challenger=challenger,
        pairs=len(outcomes),
        both_passed=sum(1 for base, new in outcomes if base and new),
        both_failed=sum(1 for base, new in outcomes if not base and not new),
        challenger_only=b,
        baseline_only=c,
        p_value=p,
        sentence=sentence,
    )
