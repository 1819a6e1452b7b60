"""The champion decision by simulation: our rule beside the seed's, on the same streams.

    python3 bench/decision.py [--experiments 2000] [--seed 20261122] [--json]

Each scenario runs ``--experiments`` simulated experiments. An experiment draws, from one
fixed seed, each arm's outcome stream (the k-th execution of an arm gets the k-th outcome of
its stream, whichever rule routed it there), token counts, and the seeds routing records.
Both rules read the same streams:

- ours: ``route`` (Thompson, cap 0.5) picks the arm, the execution is recorded, then
  ``decide`` looks (after every execution) with stats counted from the experiment's start,
  consulting the token guardrail (missing tokens are missing) before a promotion;
- seed: UCB1 routing, decided after every execution: a challenger with >= 8 executions whose
  rate is >= the champion's + 0.10 is promoted, <= - 0.10 retired. Its champion starts with
  an all-time history of 50 executions at its true rate (drawn from its own stream), which
  both its routing and its comparison use, as the seed's manifest would. The seed has no
  horizon; here it stops undecided (inconclusive) at our horizon.

Prints promote / retire / inconclusive rates and the median executions (both arms) to the
end of the experiment (an inconclusive one ends at the horizon). Targets: an equal or worse
challenger promoted <= 5 %, one 20 points better promoted >= 80 %. ``--json`` prints
``{"scenarios": [{"name", "rule", "promote", "retire", "inconclusive",
"median_executions"}]}`` with rates as fractions.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from skillopsd.versions.decision import DecisionParams, blocks, decide, guardrail
from skillopsd.versions.routing import ArmStats, RoutingParams, route

SEED_HISTORY = 50  # the seed's champion's all-time executions before the challenger arrives
SEED_MIN = 8
SEED_MARGIN = 0.10


class Scenario(msgspec.Struct, frozen=True):
    """True success rates of the two arms, and whether the challenger reports tokens.

    ``drift`` names a common rate that moves with the experiment's execution count (both
    arms alike; the challenger keeps its difference ``challenger - champion``); ``retests``
    re-adds the same challenger after every test that did not promote it, and counts the
    scenario's promotion as cumulative over all of them.
    """

    name: str
    champion: float
    challenger: float
    challenger_tokens: bool = True
    drift: str = ""
    retests: int = 1


def common_rate(drift: str, step: int, horizon: int, base: float) -> float:
    """The common success rate at execution ``step`` of a drifting scenario."""
    if drift == "linear":  # 0.3 -> 0.9 over the horizon
        return 0.3 + 0.6 * step / max(1, horizon - 1)
    if drift == "step-up":  # a broken test suite fixed at execution 80
        return 0.2 if step < 80 else 0.9
    if drift == "step-down":  # something breaks for everyone at execution 60
        return 0.95 if step < 60 else 0.4
    return base


SCENARIOS = [
    Scenario("equal-0.5", 0.5, 0.5),
    Scenario("equal-0.7", 0.7, 0.7),
    Scenario("equal-0.9", 0.9, 0.9),
    Scenario("worse-10", 0.7, 0.6),
    Scenario("better-10", 0.7, 0.8),
    Scenario("better-20", 0.7, 0.9),
    Scenario("worse-10-no-tokens", 0.7, 0.6, challenger_tokens=False),
    Scenario("equal-drift-linear", 0.0, 0.0, drift="linear"),
    Scenario("equal-drift-step-up", 0.0, 0.0, drift="step-up"),
    Scenario("equal-drift-step-down", 0.0, 0.0, drift="step-down"),
    Scenario("equal-retest-5x-0.7", 0.7, 0.7, retests=5),
    Scenario("better-20-drift-linear", 0.0, 0.2, drift="linear"),
]


class Streams(msgspec.Struct, frozen=True):
    """Everything random about one experiment, drawn before either rule runs."""

    scenario: Scenario
    champion: list[bool]
    challenger: list[bool]
    route_seeds: list[int]
    history_successes: int
    tokens_seed: int  # token counts are drawn from it only when a guardrail is consulted

    def tokens(
        self, champion_runs: int, challenger_runs: int
    ) -> tuple[list[int | None], list[int | None]]:
        """Tokens of each arm's first executions; a challenger that reports none gives None."""
        rng = random.Random(self.tokens_seed)
        horizon = len(self.champion)
        champ = [int(rng.lognormvariate(9.0, 0.5)) for _ in range(horizon)]
        chall = [int(rng.lognormvariate(9.0, 0.5)) for _ in range(horizon)]
        if not self.scenario.challenger_tokens:
            return champ[:champion_runs], [None] * challenger_runs
        return champ[:champion_runs], chall[:challenger_runs]


class Result(msgspec.Struct, frozen=True):
    """How one experiment ended and after how many executions."""

    outcome: str
    executions: int


def draw_streams(rng: random.Random, scenario: Scenario, horizon: int) -> Streams:
    """One experiment's outcome and seed streams.

    Stationary: the k-th execution of an arm gets the k-th outcome of its stream. Drifting:
    the outcome an arm would have at execution ``step`` of the experiment (its rate then).
    """
    if scenario.drift:
        delta = scenario.challenger - scenario.champion

        def rate(step: int, lift: float) -> float:
            return min(1.0, common_rate(scenario.drift, step, horizon, 0.0) + lift)

        champion = [rng.random() < rate(t, 0.0) for t in range(horizon)]
        challenger = [rng.random() < rate(t, delta) for t in range(horizon)]
    else:
        champion = [rng.random() < scenario.champion for _ in range(horizon)]
        challenger = [rng.random() < scenario.challenger for _ in range(horizon)]
    start = common_rate(scenario.drift, 0, horizon, scenario.champion)
    return Streams(
        scenario=scenario,
        champion=champion,
        challenger=challenger,
        route_seeds=[rng.getrandbits(63) for _ in range(horizon)],
        history_successes=sum(rng.random() < start for _ in range(SEED_HISTORY)),
        tokens_seed=rng.getrandbits(63),
    )


def run_ours(s: Streams, routing: RoutingParams, rule: DecisionParams, earlier: int = 0) -> Result:
    """Route and decide after every execution, as the product does (``decide_state``: the
    time blocks, and the rule of a body tested ``earlier`` times before)."""
    rule = rule.retest(earlier)
    n = [0, 0]  # champion, challenger executions since the experiment began
    wins = [0, 0]
    order: list[tuple[bool, bool]] = []
    for step in range(rule.horizon):
        champ, chall = ArmStats(n[0], wins[0]), ArmStats(n[1], wins[1])
        arm = 1 if route(champ, chall, s.route_seeds[step], routing).chosen == "challenger" else 0
        stream = s.challenger if arm else s.champion
        success = stream[step if s.scenario.drift else n[arm]]
        wins[arm] += success
        n[arm] += 1
        order.append((bool(arm), success))
        if min(n) < rule.min_per_arm and step + 1 < rule.horizon:
            continue  # decide() says "continue" here whatever the data: skipped for speed
        champ, chall = ArmStats(n[0], wins[0]), ArmStats(n[1], wins[1])
        verdict = decide(champ, chall, rule)
        if verdict.outcome in ("promote", "retire"):
            # The blocks only ever hold a decision back, and guardrails only change a
            # promotion, so both are computed only then (the same outcome, much faster).
            strata = blocks(order, rule.block)
            tokens = (
                [guardrail("tokens", *s.tokens(n[0], n[1]))] if verdict.outcome == "promote" else []
            )
            verdict = decide(champ, chall, rule, tokens, strata)
        if verdict.outcome != "continue":
            return Result(verdict.outcome, step + 1)
    return Result("inconclusive", rule.horizon)


def run_seed(s: Streams, horizon: int, c: float = math.sqrt(2)) -> Result:
    """The versioning seed's UCB1 routing and its after-every-execution margin rule."""
    n = [SEED_HISTORY, 0]  # the champion's all-time history counts, as in its manifest
    wins = [s.history_successes, 0]
    used = [0, 0]  # positions in this experiment's streams
    for step in range(horizon):
        if n[1] == 0:
            arm = 1  # an untried arm first
        else:
            total = n[0] + n[1]
            score = [wins[i] / n[i] + c * math.sqrt(math.log(total) / n[i]) for i in (0, 1)]
            arm = 1 if score[1] > score[0] else 0  # ties to the champion
        stream = s.challenger if arm else s.champion
        wins[arm] += stream[step if s.scenario.drift else used[arm]]
        used[arm] += 1
        n[arm] += 1
        if n[1] >= SEED_MIN:
            diff = wins[1] / n[1] - wins[0] / n[0]
            if diff >= SEED_MARGIN:
                return Result("promote", step + 1)
            if diff <= -SEED_MARGIN:
                return Result("retire", step + 1)
    return Result("inconclusive", horizon)


def _series(
    rng: random.Random,
    scenario: Scenario,
    rule: DecisionParams,
    one: Callable[[Streams, int], Result],
) -> Result:
    """One experiment, or a series of re-tests of the same challenger until one promotes:
    promoted if any test promoted, executions summed over the tests run."""
    spent = 0
    last = Result("inconclusive", 0)
    for k in range(scenario.retests):
        last = one(draw_streams(rng, scenario, rule.horizon), k)
        spent += last.executions
        if last.outcome == "promote":
            break
    return Result(last.outcome, spent)


def summarize(name: str, rule: str, results: list[Result]) -> dict[str, object]:
    """Rates of each ending and the median executions to it."""
    count = len(results)
    return {
        "name": name,
        "rule": rule,
        "promote": sum(r.outcome == "promote" for r in results) / count,
        "retire": sum(r.outcome == "retire" for r in results) / count,
        "inconclusive": sum(r.outcome == "inconclusive" for r in results) / count,
        "median_executions": statistics.median(r.executions for r in results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=2000, help="Per scenario.")
    parser.add_argument("--seed", type=int, default=20261122, help="The one fixed seed.")
    parser.add_argument("--json", action="store_true", help="Print JSON only.")
    parser.add_argument("--only", action="append", help="Run only these scenarios.")
    defaults = DecisionParams()
    parser.add_argument("--min-per-arm", type=int, default=defaults.min_per_arm)
    parser.add_argument("--promote-bar", type=float, default=defaults.promote_bar)
    parser.add_argument("--retire-bar", type=float, default=defaults.retire_bar)
    parser.add_argument("--horizon", type=int, default=defaults.horizon)
    args = parser.parse_args()
    rule = DecisionParams(
        min_per_arm=args.min_per_arm,
        promote_bar=args.promote_bar,
        retire_bar=args.retire_bar,
        horizon=args.horizon,
    )
    routing = RoutingParams()
    started = time.perf_counter()
    rows: list[dict[str, object]] = []
    for index, scenario in enumerate(SCENARIOS):
        if args.only and scenario.name not in args.only:
            continue
        rng = random.Random(f"{args.seed}:{index}")
        ours: list[Result] = []
        seed: list[Result] = []
        for _ in range(args.experiments):
            ours.append(_series(rng, scenario, rule, lambda st, k: run_ours(st, routing, rule, k)))
            seed.append(_series(rng, scenario, rule, lambda st, _k: run_seed(st, rule.horizon)))
        rows.append(summarize(scenario.name, "ours", ours))
        rows.append(summarize(scenario.name, "seed", seed))
    elapsed = time.perf_counter() - started
    if args.json:
        print(json.dumps({"experiments": args.experiments, "seed": args.seed, "scenarios": rows}))
        return
    print(
        f"{args.experiments} experiments per scenario, seed {args.seed}; ours: Thompson "
        f"(cap {routing.challenger_cap}), >= {rule.min_per_arm} per arm, promote at "
        f"P >= {rule.promote_bar}, retire at P >= {rule.retire_bar}, horizon {rule.horizon}; "
        f"seed: UCB1, >= {SEED_MIN}, margin {SEED_MARGIN}, champion history {SEED_HISTORY}"
    )
    header = ("scenario", "rule", "promote", "retire", "inconcl.", "median")
    print("{:<20} {:<5} {:>8} {:>8} {:>8} {:>7}".format(*header))
    for row in rows:
        print(
            f"{row['name']:<20} {row['rule']:<5} {row['promote']:>8.1%} {row['retire']:>8.1%} "
            f"{row['inconclusive']:>8.1%} {row['median_executions']:>7g}"
        )
    ours_rows = {str(r["name"]): r for r in rows if r["rule"] == "ours"}
    not_better = [r for name, r in ours_rows.items() if not name.startswith("better")]
    if not_better:
        worst = max(not_better, key=lambda r: float(r["promote"]))  # type: ignore[arg-type]
        print(
            f"equal or worse promoted (target <= 5%): max {worst['promote']:.1%} ({worst['name']})"
        )
    if "better-20" in ours_rows:
        print(f"+20 points promoted (target >= 80%): {ours_rows['better-20']['promote']:.1%}")
    print(f"elapsed {elapsed:.1f} s")


if __name__ == "__main__":
    main()
