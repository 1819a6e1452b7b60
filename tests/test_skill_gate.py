"""The promote gate's rule (pure) under attempts to game it, and the Wilson intervals that
make ``skill show`` honest about n."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from skillopsd.evals.gate import GateDecision, Population, decide
from skillopsd.events.types import EvalCaseResult, GraderResult
from skillopsd.projections._stats import compare, wilson
from skillopsd.projections.skill_views import RunRow

SUITES = ["triage", "verifies"]


def run(
    n: int,
    *,
    passed: bool = True,
    sessions: tuple[str, ...] = ("a", "b", "c"),
    suite_hash: str = "now",
    suites: tuple[str, ...] = ("triage", "verifies"),
    scope: str = "",
) -> RunRow:
    case = EvalCaseResult(
        suite=suites[0],
        case="c",
        graded=len(sessions),
        passed_sessions=len(sessions) if passed else 0,
        passed=passed,
        results=[
            GraderResult(session_id=s, index=1, type="outcome", passed=passed) for s in sessions
        ],
    )
    return RunRow(
        run_id=f"run{n}",
        skill="t",
        version_hash="h",
        suite_hash=suite_hash,
        deriver_version=3,
        sessions=list(sessions),
        passed=passed,
        cases=[case],
        suites=list(suites),
        all_suites=SUITES,
        baseline_run_id=None,
        position=n,
        at="",
        scope=scope,
    )


EVERYONE = Population(
    digests={s: f"bytes-{s}" for s in "abcdef"}, matched=frozenset("abc"), window=None
)


def gate(  # type: ignore[no-untyped-def]
    runs: list[RunRow], min_sessions: int = 3, sessions: Population = EVERYONE
):
    return decide(
        sorted(runs, key=lambda r: r.position, reverse=True),
        tag="v2",
        suite_hash="now",
        suites=SUITES,
        min_sessions=min_sessions,
        command="skillopsctl eval run t",
        sessions=sessions,
    )


def test_a_passing_run_over_enough_sessions_clears() -> None:
    d = gate([run(1)])
    assert d.cleared and d.run is not None and d.run.run_id == "run1"
    assert d.sessions_graded == ["a", "b", "c"]


def test_no_run_is_refused_saying_what_to_run_and_how_many() -> None:
    d = gate([])
    assert not d.cleared and "skillopsctl eval run t" in d.reason and "at least 3" in d.reason
    short = decide(
        [],
        tag="v2",
        suite_hash="now",
        suites=SUITES,
        min_sessions=3,
        command="c",
        captured=1,
        sessions=EVERYONE,
    )
    assert "1 captured so far, 2 more needed" in short.reason


def test_a_newer_failure_is_never_outweighed_by_an_older_pass() -> None:
    d = gate([run(1), run(2, passed=False), run(0)])
    assert not d.cleared and d.run is not None and d.run.run_id == "run2"


def test_re_running_one_good_session_does_not_clear() -> None:
    # Many passing runs over the same one session: distinct sessions count, not runs.
    one = Population(digests=EVERYONE.digests, matched=frozenset("a"))
    d = gate([run(i, sessions=("a",)) for i in range(5)], sessions=one)
    assert not d.cleared and "2 more needed" in d.reason
    two = Population(digests=EVERYONE.digests, matched=frozenset("ab"))
    assert gate([run(1, sessions=("a", "a", "b"))], min_sessions=3, sessions=two).cleared is False


def test_a_subset_never_clears_nor_outweighs_a_full_failure() -> None:
    # A full run failed; hand-picked sessions (or one suite) pass: the gate still refuses.
    failed = run(1, passed=False, sessions=("a", "b", "c", "d"))
    for subset in (run(2, scope="--session a --session b --session c"), run(2, suites=("triage",))):
        d = gate([failed, subset])
        assert not d.cleared and d.run is not None and d.run.run_id == "run1"
    assert "subset runs never clear it" in gate([run(2, scope="--last 3")]).reason


def test_a_newer_failure_under_another_suite_is_never_outweighed() -> None:
    # Pass under A (the file as it is now), a newer failure under B, then A restored.
    d = gate([run(1), run(2, passed=False, suite_hash="B"), run(0)])
    assert not d.cleared and d.run is not None and d.run.run_id == "run2"


def test_the_run_must_cover_every_matching_session_captured_so_far() -> None:
    grown = Population(digests=EVERYONE.digests, matched=frozenset("abcd"))
    d = gate([run(1)], sessions=grown)
    assert not d.cleared and "did not grade 1 session(s)" in d.reason


def test_only_existing_distinct_sessions_of_the_version_count() -> None:
    copies = Population(digests={"a": "same", "b": "same", "c": "same"}, matched=frozenset("abc"))
    d = gate([run(1)], sessions=copies)
    assert not d.cleared and "2 are byte-identical copies" in d.reason
    assert d.sessions_graded == ["a"]
    gone = Population(digests={"a": "1"}, matched=frozenset("a"))
    d = gate([run(1)], sessions=gone)
    assert not d.cleared and "2 graded session(s) are not sessions of v2" in d.reason


def test_a_run_under_an_older_suite_file_does_not_count() -> None:
    d = gate([run(1, suite_hash="before")])
    assert not d.cleared and "earlier evals.yaml" in d.reason
    # ...and an edit of the file cannot hide a newer failure under the current one.
    assert not gate([run(1), run(2, passed=False)]).cleared
    assert gate([run(1, suite_hash="before", passed=False), run(2)]).cleared


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [(0, 10, 0.0, 0.2775), (10, 10, 0.7225, 1.0), (5, 10, 0.2366, 0.7634), (1, 1, 0.2065, 1.0)],
)
def test_wilson_known_values(k: int, n: int, low: float, high: float) -> None:
    s = wilson(k, n)
    assert s.low == pytest.approx(low, abs=1e-4) and s.high == pytest.approx(high, abs=1e-4)


def test_wilson_of_nothing_is_nothing() -> None:
    s = wilson(0, 0)
    assert (s.share, s.low, s.high) == (None, None, None)


@given(st.integers(min_value=1, max_value=500), st.data())
def test_wilson_brackets_the_share(n: int, data: st.DataObject) -> None:
    k = data.draw(st.integers(min_value=0, max_value=n))
    s = wilson(k, n)
    assert s.low is not None and s.high is not None and s.share is not None
    assert 0 <= s.low <= s.share <= s.high <= 1
    # More data, same share: a narrower interval.
    t = wilson(k * 4, n * 4)
    assert t.high - t.low <= s.high - s.low  # type: ignore[operator]


def test_the_reading_line_says_when_it_cannot_tell() -> None:
    assert "not yet distinguishable" in compare("v3", wilson(3, 4), "v2", wilson(2, 4))
    assert "+25 points" in compare("v3", wilson(3, 4), "v2", wilson(2, 4))
    assert "v3 is better" in compare("v3", wilson(95, 100), "v2", wilson(20, 100))
    assert "v3 is worse" in compare("v3", wilson(5, 100), "v2", wilson(80, 100))
    assert "no sessions yet" in compare("v3", wilson(0, 0), "v2", wilson(1, 2))


# A replay's run (run ids "run1x"...) grades the `run` case ("triage", "c") on its own sessions.
RUN_CASES = frozenset({("triage", "c")})


def replay_gate(
    runs: list[RunRow],
    sessions: Population,
    plain_cases: int = 0,
    run_cases: frozenset[tuple[str, str]] = RUN_CASES,
) -> GateDecision:
    return decide(
        sorted(runs, key=lambda r: r.position, reverse=True),
        tag="v2",
        suite_hash="now",
        suites=SUITES,
        min_sessions=3,
        command="skillopsctl eval run t",
        sessions=sessions,
        replays=frozenset(r.run_id for r in runs if r.run_id.endswith("x")),
        run_cases=run_cases,
        plain_cases=plain_cases,
    )


def replayed(n: int, sessions: tuple[str, ...], passed: bool = True) -> RunRow:
    r = run(n, sessions=sessions, passed=passed)
    r.run_id += "x"
    return r


# Sessions d, e, f: a second replay's; a, b, c: the first's; "live" sessions are g, h.
ALL = Population(
    digests={s: f"bytes-{s}" for s in "abcdefgh"},
    matched=frozenset("abcdefgh"),
    plain=frozenset("gh"),
)


def test_a_replay_is_full_evidence_for_run_cases_whatever_else_was_captured() -> None:
    # Two replays, live sessions beside them: the newest replay's own sessions are its evidence.
    d = replay_gate([replayed(1, ("a", "b", "c")), replayed(2, ("d", "e", "f"))], ALL)
    assert d.cleared and d.sessions_graded == ["d", "e", "f"], d.reason
    assert "replay of v2 (run2x)" in d.reason
    # The same run, were it not a replay, must have graded every session the suite matches.
    plain = gate([run(2, sessions=("d", "e", "f"))], sessions=ALL)
    assert not plain.cleared and "did not grade 5 session(s)" in plain.reason


def test_a_newer_failure_replay_or_not_is_never_outweighed() -> None:
    failed_replay = replayed(2, ("d", "e", "f"), passed=False)
    d = replay_gate([replayed(1, ("a", "b", "c")), failed_replay], ALL)
    assert not d.cleared and "failed" in d.reason
    failed_run = run(3, passed=False, sessions=tuple("abcdefgh"))
    d = replay_gate([replayed(1, ("a", "b", "c")), failed_run], ALL)
    assert not d.cleared and d.run is not None and d.run.run_id == "run3"


def test_a_replay_of_some_run_cases_never_clears() -> None:
    two = frozenset({("triage", "c"), ("triage", "other")})
    d = replay_gate([replayed(1, ("a", "b", "c"))], ALL, run_cases=two)
    assert not d.cleared and "only some `run` cases" in d.reason


def test_cases_without_run_still_need_a_passing_eval_run_covering_live_sessions() -> None:
    newest = replayed(5, ("d", "e", "f"))
    d = replay_gate([newest], ALL, plain_cases=1)
    assert not d.cleared and "1 case(s) without `run`" in d.reason
    # An eval run that failed, or graded only one of the two live sessions, does not do.
    d = replay_gate([run(1, passed=False, sessions=("g", "h")), newest], ALL, plain_cases=1)
    assert not d.cleared and "run1) failed" in d.reason
    d = replay_gate([run(1, sessions=("g",)), newest], ALL, plain_cases=1)
    assert not d.cleared and "did not grade 1 session(s)" in d.reason
    d = replay_gate([run(1, sessions=("g", "h")), newest], ALL, plain_cases=1)
    assert d.cleared and d.sessions_graded == list("defgh")
    # One under an older file is no evidence for the cases as they are now.
    d = replay_gate([run(1, sessions=("g", "h"), suite_hash="old"), newest], ALL, plain_cases=1)
    assert not d.cleared
