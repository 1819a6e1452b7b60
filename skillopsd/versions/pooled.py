"""A pooled experiment: one test of a skill fed by every machine of a team, decided once.

Pure: given this machine's folded state and what the server holds (``team/pool.py``'s
:class:`~skillopsd.team.pool.Snapshot`), this module says which executions count, what the
routing's arms are, and what the decision rule says on the pool; and it checks a team
decision from the counts stored with it, as ``skill verify`` does later from the log alone.

Which executions count is the local rule's answer on each machine: each machine's skill
stream is folded with the same :func:`~skillopsd.versions.state.fold` the machine itself uses,
so an execution counts in the pool exactly when it counts in that machine's own test of the
same champion and challenger *bodies* (hashes, never a machine's tags): its session started
after that machine's test began, its outcome is the pinned signal (corrections folded, a
rejected record skipped), a replay never counts. On top of that, an execution counts only for
a body its machine recorded (a ``SkillVersionCreated`` of it), and only once across the team:
a session seen by two machines counts for the first (this machine's own record first, then by
machine id); a copied log is one machine already (its id is its first event's hash).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import msgspec

from ..events.types import PoolShare, TeamDecision, TeamGuardrail
from ..team.pool import Snapshot, TeamTest, bind
from .decision import BLOCK, Decision, blocks, decide, guardrail, judged
from .policy import BanditPolicy
from .routing import ArmStats
from .state import Execution, SkillState, fold

_COSTS = (("tokens", "tokens"), ("cost_usd", "cost_usd"), ("duration_ms", "duration_ms"))


class PoolRun(msgspec.Struct, frozen=True, kw_only=True):
    """One execution of a pooled test."""

    machine: str
    key: str
    challenger: bool
    success: bool
    started_at: str
    order: int
    tokens: int | None
    duration_ms: int | None
    cost_usd: float | None


class Pool(msgspec.Struct, frozen=True, kw_only=True):
    """A team test and the executions that count in it."""

    test: TeamTest
    runs: list[PoolRun]
    shares: list[PoolShare]

    def arms(self) -> tuple[ArmStats, ArmStats]:
        """(champion, challenger) summed over every machine."""
        return summed(self.shares)


def summed(shares: Iterable[PoolShare]) -> tuple[ArmStats, ArmStats]:
    """(champion, challenger) counts of ``shares`` together."""
    found = list(shares)
    return (
        ArmStats(
            sum(s.champion_executions for s in found), sum(s.champion_successes for s in found)
        ),
        ArmStats(
            sum(s.challenger_executions for s in found),
            sum(s.challenger_successes for s in found),
        ),
    )


def _run(machine: str, e: Execution, challenger: str) -> PoolRun:
    return PoolRun(
        machine=machine,
        key=e.key if e.session_id else f"{machine}:{e.key}",  # manual keys are a machine's own
        challenger=e.version_hash == challenger,
        success=e.outcome == "success",
        started_at=e.started_at or "",
        order=e.first_position,
        tokens=e.tokens,
        duration_ms=e.duration_ms,
        cost_usd=e.cost_usd,
    )


def _counted(state: SkillState, experiments: set[str], pair: tuple[str, str]) -> list[Execution]:
    return [
        e
        for e in state.executions.values()
        if e.outcome is not None
        and e.experiment_id in experiments
        and e.version_hash in pair
        and e.version_hash in state.versions
    ]


def local_share(state: SkillState, me: str) -> PoolShare:
    """This machine's part: its running test as it counts it (``skill verify`` checks it)."""
    assert state.champion is not None and state.challenger is not None
    champ = state.stats(state.champion, state.experiment)
    chall = state.stats(state.challenger, state.experiment)
    return PoolShare(
        machine=me,
        champion_executions=champ.executions,
        champion_successes=champ.successes,
        challenger_executions=chall.executions,
        challenger_successes=chall.successes,
    )


class Others(msgspec.Struct, frozen=True, kw_only=True):
    """What the other machines add to a team test: the machines in it and their runs."""

    machines: list[str]
    runs: list[PoolRun]


def others(skill: str, snap: Snapshot, test: TeamTest) -> Others:
    """Every other machine's executions of ``test``, as each one's own fold counts them."""
    pair = (test.champion, test.challenger)
    machines: list[str] = []
    runs: list[PoolRun] = []
    for machine in sorted(snap.machines):
        theirs = fold(skill, snap.machines[machine])
        bound = {
            exp.experiment_id
            for exp in theirs.experiments.values()
            if (exp.champion, exp.challenger) == pair
            and (found := bind(snap.tests, exp.champion, exp.challenger, exp.started_at))
            is not None
            and found.test_id == test.test_id
        }
        if bound:
            machines.append(machine)
        counted = sorted(_counted(theirs, bound, pair), key=lambda x: x.first_position)
        runs.extend(_run(machine, e, test.challenger) for e in counted)
    return Others(machines=machines, runs=runs)


def pool(
    state: SkillState, me: str, snap: Snapshot, test: TeamTest, rest: Others | None = None
) -> Pool:
    """The executions of ``test`` on every machine, this one's from ``state`` (its running
    test, which binds to ``test``) and the others' (``rest``, else read from ``snap``)."""
    assert state.experiment is not None and state.challenger is not None
    rest = rest if rest is not None else others(state.skill, snap, test)
    pair = (test.champion, test.challenger)
    runs = [
        _run(me, e, test.challenger)
        for e in state.executions.values()
        if e.outcome is not None and e.experiment_id == state.experiment and e.version_hash in pair
    ]
    seen = {r.key for r in runs}
    for run in rest.runs:  # a session this machine (or a machine before) holds counts once
        if run.key not in seen:
            seen.add(run.key)
            runs.append(run)
    runs.sort(key=lambda r: (r.started_at, r.machine, r.order))
    return Pool(test=test, runs=runs, shares=shares_of(runs, [me, *rest.machines]))


def shares_of(runs: list[PoolRun], members: list[str]) -> list[PoolShare]:
    """Per machine in the test (``members``, this one first), its counts of each arm."""
    me = members[0]
    counts: dict[str, list[int]] = {m: [0, 0, 0, 0] for m in members}
    for r in runs:
        c = counts.setdefault(r.machine, [0, 0, 0, 0])
        at = 2 if r.challenger else 0
        c[at] += 1
        c[at + 1] += r.success
    order = [me, *sorted(m for m in counts if m != me)]
    return [
        PoolShare(
            machine=m,
            champion_executions=counts[m][0],
            champion_successes=counts[m][1],
            challenger_executions=counts[m][2],
            challenger_successes=counts[m][3],
        )
        for m in order
    ]


def retests(tests: list[TeamTest], test: TeamTest) -> int:
    """How many team tests of the same challenger body began before ``test``."""
    return sum(
        1
        for t in tests
        if t.challenger == test.challenger
        and t.test_id != test.test_id
        and (t.started_at, t.test_id) < (test.started_at, test.test_id)
    )


def propose(
    found: Pool, policy: BanditPolicy, earlier: int, me: str
) -> tuple[Decision, TeamDecision]:
    """The decision rule on the pool, and the team decision that records it."""
    params = policy.decision().retest(earlier)
    champ, chall = found.arms()
    strata = blocks([(r.challenger, r.success) for r in found.runs], params.block)
    metric, field = policy.cost_guardrail()
    guards = [
        guardrail(
            name,
            [getattr(r, attr) for r in found.runs if not r.challenger],
            [getattr(r, attr) for r in found.runs if r.challenger],
        )
        for name, attr in ((metric, field), ("duration_ms", "duration_ms"))
    ]
    decision = decide(champ, chall, params, guards, strata)
    team = TeamDecision(
        test_id=found.test.test_id,
        skill=found.test.skill,
        champion_hash=found.test.champion,
        challenger_hash=found.test.challenger,
        started_at=found.test.started_at,
        decided_by=me,
        outcome=decision.outcome,
        reason=decision.reason,
        shares=found.shares,
        blocks=[[a.executions, a.successes, b.executions, b.successes] for a, b in strata],
        guardrails=[
            TeamGuardrail(
                metric=g.metric,
                champion_reported=g.champion_reported,
                challenger_reported=g.challenger_reported,
                champion_median=g.champion_median,
                challenger_median=g.challenger_median,
            )
            for g in guards
        ],
        params={
            "min_per_arm": params.min_per_arm,
            "promote_bar": params.promote_bar,
            "retire_bar": params.retire_bar,
            "horizon": params.horizon,
            "block": params.block,
        },
    )
    return decision, team


def recompute(team: TeamDecision) -> Decision:
    """The rule's answer on the counts a team decision stores (ValueError when they cannot
    be counts)."""
    from .decision import DecisionParams

    p = team.params
    params = DecisionParams(
        min_per_arm=int(p["min_per_arm"]),
        promote_bar=float(p["promote_bar"]),
        retire_bar=float(p["retire_bar"]),
        horizon=int(p["horizon"]),
        block=int(p["block"]),
    )
    champ, chall = summed(team.shares)
    strata = []
    for block in team.blocks:
        if len(block) != 4:
            raise ValueError(f"a time block of {len(block)} numbers")
        strata.append((ArmStats(block[0], block[1]), ArmStats(block[2], block[3])))
    in_blocks = (
        ArmStats(sum(a.executions for a, _ in strata), sum(a.successes for a, _ in strata)),
        ArmStats(sum(b.executions for _, b in strata), sum(b.successes for _, b in strata)),
    )
    if in_blocks != (champ, chall):
        raise ValueError(
            f"its time blocks hold {_pair(*in_blocks)}, its machines' counts {_pair(champ, chall)}"
        )
    guards = [
        judged(
            g.metric,
            g.champion_reported,
            g.challenger_reported,
            g.champion_median,
            g.challenger_median,
        )
        for g in team.guardrails
    ]
    return decide(champ, chall, params, guards, strata)


def _pair(champ: ArmStats, chall: ArmStats) -> str:
    return (
        f"champion {champ.successes}/{champ.executions},"
        f" challenger {chall.successes}/{chall.executions}"
    )


def check(team: TeamDecision, state: SkillState, policy: BanditPolicy, said: str) -> str | None:
    """Why a team decision that ends this machine's running test (recorded as ``said``:
    promote, retire or inconclusive) does not stand; None when its own counts give it
    under this machine's policy."""
    if (team.champion_hash, team.challenger_hash) != (state.champion, state.challenger):
        return (
            f"team decision on {team.champion_hash[:12]} vs {team.challenger_hash[:12]},"
            " which is not the test running here"
        )
    if said != team.outcome:
        return f"recorded {said}, the team decision says {team.outcome}"
    want = policy.decision()
    p = team.params
    fixed = {
        "min_per_arm": want.min_per_arm,
        "retire_bar": want.retire_bar,
        "horizon": want.horizon,
        "block": BLOCK,
    }
    for key, value in fixed.items():
        if not math.isclose(float(p.get(key, math.nan)), float(value)):
            return f"team decision taken with {key}={p.get(key)}, the policy here says {value}"
    if not float(p.get("promote_bar", 0.0)) >= want.promote_bar:
        return (
            f"team decision taken with promote_bar={p.get('promote_bar')}, below the"
            f" policy's {want.promote_bar}"
        )
    try:
        again = recompute(team)
    except (KeyError, ValueError, TypeError) as exc:
        return f"team decision cannot be recomputed: {exc}"
    allowed = {again.outcome}
    total = again.statistic["champion_executions"] + again.statistic["challenger_executions"]
    if again.outcome == "promote" and total >= want.horizon:
        allowed.add("inconclusive")  # the horizon ends the test when the gate refuses
    if team.outcome not in allowed:
        return (
            f"team decision {team.outcome} by machine {team.decided_by[:12]}, its counts give"
            f" {again.outcome} ({again.reason})"
        )
    return None
