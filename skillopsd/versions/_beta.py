"""Beta posteriors of two success rates: P(one rate exceeds the other), exact or sampled.

Everything is a function of integer Beta parameters (``1 + successes``, ``1 + failures`` on a
Beta(1,1) prior) and, for sampling, a ``random.Random`` the caller seeded. Sampling uses only
``Random.random()`` (whose stream Python keeps stable across versions) and our own gamma
sampler, never ``Random.betavariate`` (whose algorithm is not promised to stay the same).
"""

from __future__ import annotations

import functools
import math
import random
from fractions import Fraction

_LOG_1E250 = 250 * math.log(10)


def _log_series(a: int, b: int, c: int, d: int) -> float:
    """P(Beta(a,b) > Beta(c,d)) by the closed-form sum over ``a`` terms."""
    # Evan Miller's sum: term_0 = B(c, b+d) / B(c, d), term_{i+1}/term_i as below. The terms
    # are summed relative to term_0 (which underflows for large counts while later terms do
    # not), rescaled before they overflow, and term_0 is applied once in log space.
    log_scale = math.lgamma(b + d) + math.lgamma(c + d) - math.lgamma(b + c + d) - math.lgamma(d)
    term = total = 1.0
    bcd = b + c + d
    for i in range(a - 1):
        term *= (c + i) * (b + i) / ((bcd + i) * (i + 1))
        total += term
        if total > 1e250:
            term *= 1e-250
            total *= 1e-250
            log_scale += _LOG_1E250
    return math.exp(log_scale + math.log(total))


def _exact_series(a: int, b: int, c: int, d: int) -> Fraction:
    """The same sum in rational arithmetic: the probability exactly."""
    f = math.factorial
    term = Fraction(f(b + d - 1) * f(c + d - 1), f(b + c + d - 1) * f(d - 1))
    total = term
    for i in range(a - 1):
        term *= Fraction((c + i) * (b + i), (b + c + d + i) * (i + 1))
        total += term
    return total


def _shortest(a: int, b: int, c: int, d: int) -> tuple[bool, tuple[int, int, int, int]]:
    """Which equivalent sum has the fewest terms: (take the complement?, its parameters)."""
    # X > Y  <=>  1-Y > 1-X, and P(X > Y) = 1 - P(Y > X): four sums, of lengths a, c, d, b.
    least = min(a, b, c, d)
    if least == a:
        return False, (a, b, c, d)
    if least == c:
        return True, (c, d, a, b)
    if least == d:
        return False, (d, c, b, a)
    return True, (b, a, d, c)


def _check(a: int, b: int, c: int, d: int) -> None:
    if min(a, b, c, d) < 1:
        raise ValueError(f"Beta parameters must be integers >= 1, got {(a, b, c, d)}")


@functools.lru_cache(maxsize=4096)
def win_probability(a: int, b: int, c: int, d: int) -> float:
    """P(X > Y) for X ~ Beta(a, b), Y ~ Beta(c, d), integer parameters: closed form."""
    # Cached because a decision after an execution and the routing before the next one ask
    # about the same counts; the function is pure.
    _check(a, b, c, d)
    complement, args = _shortest(a, b, c, d)
    p = _log_series(*args)
    p = 1.0 - p if complement else p
    return min(1.0, max(0.0, p))


def win_probability_exact(a: int, b: int, c: int, d: int) -> Fraction:
    """P(X > Y) as an exact rational: used where a float could land on either side of a bar."""
    _check(a, b, c, d)
    complement, args = _shortest(a, b, c, d)
    p = _exact_series(*args)
    return 1 - p if complement else p


def at_least(p: float, bar: float, a: int, b: int, c: int, d: int) -> bool:
    """Whether P(Beta(a,b) > Beta(c,d)), whose float value is ``p``, is >= ``bar``."""
    # lgamma/log come from the platform's libm; within this distance of the bar two machines
    # could disagree, so the rational answer decides and every machine decides alike.
    if abs(p - bar) > 1e-9:
        return p >= bar
    return win_probability_exact(a, b, c, d) >= Fraction(bar)


def _normal(rng: random.Random) -> float:
    """A standard normal deviate (Box-Muller, one of the pair)."""
    u1 = 1.0 - rng.random()  # in (0, 1]: log is finite
    u2 = rng.random()
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


def gamma_draw(rng: random.Random, shape: float) -> float:
    """A Gamma(shape, 1) deviate for shape >= 1 (Marsaglia and Tsang, 2000)."""
    if shape < 1:
        raise ValueError(f"gamma shape must be >= 1, got {shape}")
    d = shape - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    while True:
        x = _normal(rng)
        v = 1.0 + c * x
        if v <= 0.0:
            continue
        v = v * v * v
        u = 1.0 - rng.random()
        if u < 1.0 - 0.0331 * (x * x) * (x * x):
            return d * v
        if math.log(u) < 0.5 * x * x + d * (1.0 - v + math.log(v)):
            return d * v


def beta_draw(rng: random.Random, a: int, b: int) -> float:
    """A Beta(a, b) deviate for a, b >= 1, as a ratio of gamma deviates."""
    x = gamma_draw(rng, a)
    y = gamma_draw(rng, b)
    return x / (x + y)


def mc_win_probability(a: int, b: int, c: int, d: int, rng: random.Random, draws: int) -> float:
    """P(Beta(a,b) > Beta(c,d)) estimated from ``draws`` paired draws of ``rng``."""
    _check(a, b, c, d)
    if draws < 1:
        raise ValueError(f"draws must be >= 1, got {draws}")
    wins = sum(1 for _ in range(draws) if beta_draw(rng, a, b) > beta_draw(rng, c, d))
    return wins / draws
