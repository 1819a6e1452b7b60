"""Small-sample statistics for shares of sessions: honest about n."""

from __future__ import annotations

import math

import msgspec

Z95 = 1.959963984540054


class Share(msgspec.Struct, frozen=True):
    """k of n, with a 95 % Wilson score interval (None when n is 0)."""

    k: int
    n: int
    share: float | None
    low: float | None
    high: float | None


def wilson(k: int, n: int, z: float = Z95) -> Share:
    """k/n with its Wilson score interval; exact at the edges (k = 0, k = n), empty at n = 0."""
    if n <= 0:
        return Share(k=0, n=0, share=None, low=None, high=None)
    if not 0 <= k <= n:
        raise ValueError(f"k={k} outside 0..n={n}")
    p = k / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # At k = 0 and k = n the bound is exactly 0 / 1; floating point would miss it by an ulp.
    low = 0.0 if k == 0 else max(0.0, min(p, centre - half))
    high = 1.0 if k == n else min(1.0, max(p, centre + half))
    return Share(k=k, n=n, share=p, low=low, high=high)


def compare(newer: str, a: Share, older: str, b: Share) -> str:
    """One honest line comparing two shares: the difference in points and whether it is real."""
    if a.share is None or b.share is None or a.low is None or b.low is None:
        missing = newer if a.share is None else older
        return f"{newer} vs {older}: {missing} has no sessions yet: nothing to compare"
    assert a.high is not None and b.high is not None
    points = round((a.share - b.share) * 100)
    if a.low > b.high:
        verdict = f"intervals do not overlap: {newer} is better"
    elif b.low > a.high:
        verdict = f"intervals do not overlap: {newer} is worse"
    else:
        verdict = "interval overlaps: not yet distinguishable"
    return f"{newer} vs {older}: {points:+d} points (n={a.n} vs n={b.n}), {verdict}"
