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
from pathlib import Path

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from skillopsd.versions.decision import DecisionParams, decide, guardrail
from skillopsd.versions.routing import ArmStats, RoutingParams, route

SEED_HISTORY = 50  # the seed's champion's all-time executions before the challenger arrives
SEED_MIN = 8
SEED_MARGIN = 0.10


class Scenario(msgspec.Struct, frozen=True):
    """True success rates of the two arms, and whether the challenger reports tokens."""

    name: str
    champion: float
    challenger: float
    challenger_tokens: bool = True


SCENARIOS = [
    Scenario("equal-0.5", 0.5, 0.5),
    Scenario("equal-0.7", 0.7, 0.7),
    Scenario("equal-0.9", 0.9, 0.9),
    Scenario("worse-10", 0.7, 0.6),
    Scenario("better-10", 0.7, 0.8),
    Scenario("better-20", 0.7, 0.9),
    Scenario("worse-10-no-tokens", 0.7, 0.6, challenger_tokens=False),
]


class Streams(msgspec.Struct, frozen=True):
    """Everything random about one experiment, drawn before either rule runs."""

    champion: list[bool]
    challenger: list[bool]
    champion_tokens: list[int | None]
    challenger_tokens: list[int | None]
    route_seeds: list[int]
    history_successes: int


class Result(msgspec.Struct, frozen=True):
    """How one experiment ended and after how many executions."""

    outcome: str
    executions: int


def draw_streams(rng: random.Random, scenario: Scenario, horizon: int) -> Streams:
    """One experiment's outcome, token and seed streams."""

    def tokens(reported: bool) -> list[int | None]:
        return [int(rng.lognormvariate(9.0, 0.5)) if reported else None for _ in range(horizon)]

    return Streams(
        champion=[rng.random() < scenario.champion for _ in range(horizon)],
        challenger=[rng.random() < scenario.challenger for _ in range(horizon)],
        champion_tokens=tokens(True),
        challenger_tokens=tokens(scenario.challenger_tokens),
        route_seeds=[rng.getrandbits(63) for _ in range(horizon)],
        history_successes=sum(rng.random() < scenario.champion for _ in range(SEED_HISTORY)),
    )


def run_ours(s: Streams, routing: RoutingParams, rule: DecisionParams) -> Result:
    """Route and decide after every execution, as the product does."""
    n = [0, 0]  # champion, challenger executions since the experiment began
    wins = [0, 0]
    for step in range(rule.horizon):
        champ, chall = ArmStats(n[0], wins[0]), ArmStats(n[1], wins[1])
        arm = 1 if route(champ, chall, s.route_seeds[step], routing).chosen == "challenger" else 0
        stream = s.challenger if arm else s.champion
        wins[arm] += stream[n[arm]]
        n[arm] += 1
        champ, chall = ArmStats(n[0], wins[0]), ArmStats(n[1], wins[1])
        verdict = decide(champ, chall, rule)
        if verdict.outcome == "promote":
            # Guardrails only change a promotion, so they are computed only then.
            tokens = guardrail("tokens", s.champion_tokens[: n[0]], s.challenger_tokens[: n[1]])
            verdict = decide(champ, chall, rule, [tokens])
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
        wins[arm] += stream[used[arm]]
        used[arm] += 1
        n[arm] += 1
        if n[1] >= SEED_MIN:
            diff = wins[1] / n[1] - wins[0] / n[0]
            if diff >= SEED_MARGIN:
                return Result("promote", step + 1)
            if diff <= -SEED_MARGIN:
                return Result("retire", step + 1)
    return Result("inconclusive", horizon)


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
            streams = draw_streams(rng, scenario, rule.horizon)
            ours.append(run_ours(streams, routing, rule))
            seed.append(run_seed(streams, rule.horizon))
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
