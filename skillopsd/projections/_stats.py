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


class Median(msgspec.Struct, frozen=True):
    """The median of the reported values, with a distribution-free 95 % interval.

    The interval is ``[x(k), x(n-k+1)]`` of the sorted values for the largest k whose
    binomial tail P(Bin(n, 1/2) < k) is at most 2.5 %: it covers the true median at least
    95 % of the time whatever the distribution (costs are skewed; no normal approximation).
    Fewer than 6 values cannot give 95 %: then ``low``/``high`` are None.
    """

    median: float | None
    low: float | None
    high: float | None
    n: int


def _order(n: int) -> int:
    """The largest k <= n // 2 whose P(Bin(n, 1/2) < k) is at most 2.5 % (0: none is).

    The tail is summed once, term by term (C(n, k) from C(n, k - 1)): summing it afresh for
    every k took minutes for a team's thousands of sessions of one skill.
    """
    total = 2**n
    term = 1  # C(n, k)
    below = 0  # C(n, 0) + … + C(n, k - 1) = P(Bin(n, 1/2) < k) * 2**n
    k = 0
    while k + 1 <= n // 2 and (below + term) * 40 <= total:  # exactly: tail <= 1/40
        below += term
        k += 1
        term = term * (n - k + 1) // k
    return k


def median_interval(values: list[float]) -> Median:
    """:class:`Median` of ``values`` (already only the reported ones)."""
    n = len(values)
    if n == 0:
        return Median(median=None, low=None, high=None, n=0)
    xs = sorted(values)
    middle = n // 2
    median = xs[middle] if n % 2 else (xs[middle - 1] + xs[middle]) / 2
    k = _order(n)
    if k == 0:
        return Median(median=median, low=None, high=None, n=n)
    return Median(median=median, low=xs[k - 1], high=xs[n - k], n=n)


def compare_medians(newer: str, a: Median, older: str, b: Median, fmt: str = "${:.2f}") -> str:
    """One honest line comparing two medians: which is lower, and whether it is real."""
    if a.median is None or b.median is None:
        missing = newer if a.median is None else older
        return f"{newer} vs {older}: {missing} has no priced sessions yet"
    head = f"{newer} {fmt.format(a.median)} vs {older} {fmt.format(b.median)} (n={a.n} vs n={b.n})"
    if a.low is None or b.low is None or a.high is None or b.high is None:
        return f"{head}, too few sessions for a 95 % interval: not yet distinguishable"
    if a.high < b.low:
        return f"{head}, intervals do not overlap: {newer} is cheaper"
    if b.high < a.low:
        return f"{head}, intervals do not overlap: {newer} is dearer"
    return f"{head}, intervals overlap: not yet distinguishable"
