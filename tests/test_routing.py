"""Routing: the Beta-Beta probability, Thompson's capped share, UCB1, determinism, replay."""

from __future__ import annotations

import math
import random
from fractions import Fraction

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skillopsd.versions import _beta
from skillopsd.versions.routing import (
    ArmStats,
    RoutingDecision,
    RoutingParams,
    route,
    verify_route,
)

params_st = st.tuples(*[st.integers(1, 12)] * 4)


@st.composite
def arms(draw: st.DrawFn, most: int = 400) -> ArmStats:
    executions = draw(st.integers(0, most))
    return ArmStats(executions, draw(st.integers(0, executions)))


def _by_integration(a: int, b: int, c: int, d: int) -> Fraction:
    """P(Beta(a,b) > Beta(c,d)) = integral of f_X * F_Y, as polynomials: independent of the sum."""
    # F_Y(x) for integer parameters is a binomial tail: P(at least c of n=c+d-1 uniforms < x).
    n = c + d - 1

    def beta_fn(p: int, q: int) -> Fraction:
        return Fraction(math.factorial(p - 1) * math.factorial(q - 1), math.factorial(p + q - 1))

    return sum(
        (math.comb(n, j) * beta_fn(a + j, b + n - j) / beta_fn(a, b) for j in range(c, n + 1)),
        Fraction(0),
    )


@given(params_st)
def test_closed_form_is_the_integral_exactly(args: tuple[int, int, int, int]) -> None:
    assert _beta.win_probability_exact(*args) == _by_integration(*args)


@given(params_st)
def test_the_four_equivalent_sums_agree(args: tuple[int, int, int, int]) -> None:
    a, b, c, d = args
    p = _beta._exact_series(a, b, c, d)
    assert p == 1 - _beta._exact_series(c, d, a, b)
    assert p == _beta._exact_series(d, c, b, a)
    assert p == 1 - _beta._exact_series(b, a, d, c)


@given(st.tuples(*[st.integers(1, 300)] * 4))
@settings(max_examples=60)
def test_float_closed_form_matches_the_rational(args: tuple[int, int, int, int]) -> None:
    assert _beta.win_probability(*args) == pytest.approx(
        float(_beta.win_probability_exact(*args)), abs=1e-10
    )


def test_float_closed_form_survives_counts_that_underflow_a_term() -> None:
    # term_0 underflows to 0.0 for these counts in plain floats; the sum must not.
    p = _beta.win_probability(3000, 1000, 3100, 900)
    assert 0.0 < p < 0.05
    assert p == pytest.approx(1 - _beta.win_probability(3100, 900, 3000, 1000), abs=1e-12)


@pytest.mark.parametrize("args", [(1, 1, 1, 1), (8, 3, 6, 5), (3, 9, 7, 7), (40, 12, 35, 17)])
def test_monte_carlo_agrees_with_the_exact_probability(args: tuple[int, int, int, int]) -> None:
    exact = float(_beta.win_probability_exact(*args))
    draws = 20_000
    estimate = _beta.mc_win_probability(*args, random.Random(11), draws)
    assert abs(estimate - exact) < 4 * math.sqrt(exact * (1 - exact) / draws) + 1e-3


def test_route_falls_back_to_seeded_monte_carlo_and_agrees() -> None:
    champion, challenger = ArmStats(30, 20), ArmStats(30, 24)
    exact = route(champion, challenger, 5, RoutingParams())
    sampled = route(champion, challenger, 5, RoutingParams(exact_limit=0, mc_draws=20_000))
    assert exact.probability_method == "exact" and sampled.probability_method == "monte-carlo"
    assert exact.win_probability is not None and sampled.win_probability is not None
    assert abs(sampled.win_probability - exact.win_probability) < 0.015
    # Same seed, same Monte-Carlo estimate: the record can be recomputed.
    assert route(champion, challenger, 5, RoutingParams(exact_limit=0, mc_draws=20_000)) == sampled


def test_beta_draws_have_the_posterior_mean() -> None:
    rng = random.Random(3)
    for a, b in [(1, 1), (2, 9), (30, 4)]:
        draws = [_beta.beta_draw(rng, a, b) for _ in range(8000)]
        assert all(0.0 <= x <= 1.0 for x in draws)
        sd = math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)) / len(draws))
        assert abs(sum(draws) / len(draws) - a / (a + b)) < 5 * sd


@pytest.mark.parametrize(
    ("champion", "challenger", "cap"),
    [
        (ArmStats(10, 5), ArmStats(10, 9), 0.5),  # p ~ 0.98: the cap binds
        (ArmStats(12, 8), ArmStats(6, 4), 0.5),  # p < cap: plain Thompson
        (ArmStats(10, 5), ArmStats(10, 9), 0.2),
    ],
)
def test_thompson_sends_the_challenger_min_p_cap_of_the_traffic(
    champion: ArmStats, challenger: ArmStats, cap: float
) -> None:
    params = RoutingParams(challenger_cap=cap)
    decisions = [route(champion, challenger, seed, params) for seed in range(4000)]
    share = sum(d.chosen == "challenger" for d in decisions) / len(decisions)
    p = decisions[0].win_probability
    assert p is not None
    expected = min(p, cap)
    assert abs(share - expected) < 4 * math.sqrt(expected * (1 - expected) / len(decisions))
    for d in decisions:  # the recorded probability is that of the arm chosen
        assert d.probability == pytest.approx(expected if d.chosen == "challenger" else 1 - expected)
        assert d.chosen == "champion" or d.scores["challenger"] > d.scores["champion"]


@given(arms(), arms(), st.integers(0, 2**63 - 1), st.sampled_from(["thompson", "ucb1"]))
@settings(max_examples=80)
def test_route_is_a_function_of_its_arguments_and_replays(
    champion: ArmStats, challenger: ArmStats, seed: int, algorithm: str
) -> None:
    params = RoutingParams(algorithm=algorithm)  # type: ignore[arg-type]
    decision = route(champion, challenger, seed, params)
    assert route(champion, challenger, seed, params) == decision
    # As stored in an event and read back, it still recomputes to itself.
    stored = msgspec.json.decode(msgspec.json.encode(decision), type=RoutingDecision)
    assert verify_route(stored, champion, challenger) is None
    if decision.probability is not None:
        assert 0.0 <= decision.probability <= 1.0


def test_the_same_seed_draws_the_same_on_every_python() -> None:
    # Pinned: draws use only Random.random() and IEEE arithmetic, so a recorded decision made on
    # one machine or Python version must recompute identically on another.
    d = route(ArmStats(10, 7), ArmStats(10, 9), 42, RoutingParams())
    assert d.chosen == "challenger"
    assert d.scores["challenger"] == pytest.approx(0.9026922005433058, abs=1e-12)
    assert d.scores["champion"] == pytest.approx(0.7861700276858944, abs=1e-12)
    assert d.win_probability == pytest.approx(0.8446115288220547, abs=1e-12)


def test_verify_route_names_a_tampered_choice() -> None:
    champion, challenger = ArmStats(10, 7), ArmStats(10, 9)
    d = route(champion, challenger, 42, RoutingParams())
    flipped = msgspec.structs.replace(
        d, chosen="champion" if d.chosen == "challenger" else "challenger"
    )
    assert "recomputed" in (verify_route(flipped, champion, challenger) or "")
    other_stats = verify_route(d, ArmStats(10, 2), challenger)
    assert other_stats is not None


def test_ucb1_tries_untried_arms_first_champion_first() -> None:
    params = RoutingParams(algorithm="ucb1", challenger_cap=1.0)
    assert route(ArmStats(0, 0), ArmStats(0, 0), 1, params).chosen == "champion"
    assert route(ArmStats(1, 0), ArmStats(0, 0), 1, params).chosen == "challenger"
    d = route(ArmStats(10, 5), ArmStats(10, 8), 1, params)
    bonus = math.sqrt(2) * math.sqrt(math.log(20) / 10)
    assert d.scores == pytest.approx({"champion": 0.5 + bonus, "challenger": 0.8 + bonus})
    assert d.chosen == "challenger" and d.probability == 1.0
    # With the default cap of half the traffic, an 11th of 21 executions is one too many.
    capped = route(ArmStats(10, 5), ArmStats(10, 8), 1, RoutingParams(algorithm="ucb1"))
    assert capped.chosen == "champion"
    # A tie goes to the champion.
    assert route(ArmStats(10, 5), ArmStats(10, 5), 1, params).chosen == "champion"


@given(st.lists(st.booleans(), min_size=1, max_size=150), st.sampled_from([0.1, 0.3, 0.5]))
@settings(max_examples=40)
def test_ucb1_never_gives_the_challenger_more_than_the_cap(
    outcomes: list[bool], cap: float
) -> None:
    params = RoutingParams(algorithm="ucb1", challenger_cap=cap)
    n, wins = [0, 0], [0, 0]
    for outcome in outcomes:
        arm = route(ArmStats(n[0], wins[0]), ArmStats(n[1], wins[1]), 0, params).chosen
        i = 1 if arm == "challenger" else 0
        n[i] += 1
        wins[i] += outcome
        assert n[1] <= cap * (n[0] + n[1]) + 1e-9


def test_no_challenger_or_champion_only_runs_the_champion() -> None:
    for challenger, algorithm in [(None, "thompson"), (ArmStats(5, 5), "champion-only")]:
        d = route(ArmStats(5, 0), challenger, 9, RoutingParams(algorithm=algorithm))  # type: ignore[arg-type]
        assert d.chosen == "champion" and d.probability == 1.0


@pytest.mark.parametrize(
    ("champion", "challenger", "params", "message"),
    [
        (ArmStats(3, 4), ArmStats(1, 1), RoutingParams(), "champion: 4 successes of 3"),
        (ArmStats(3, 1), ArmStats(-1, 0), RoutingParams(), "challenger"),
        (ArmStats(3, 1), ArmStats(1, 0), RoutingParams(challenger_cap=1.5), "challenger_cap"),
        (ArmStats(3, 1), ArmStats(1, 0), RoutingParams(mc_draws=0), "mc_draws"),
    ],
)
def test_impossible_inputs_are_refused_by_name(
    champion: ArmStats, challenger: ArmStats, params: RoutingParams, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        route(champion, challenger, 1, params)
