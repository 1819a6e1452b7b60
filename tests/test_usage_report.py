"""The usage report (pure) and the median interval skill show and skill versions print."""

from __future__ import annotations

import random
import statistics
from datetime import UTC, timedelta, timezone

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skillopsd.pricing.report import UsageRecord, once, report
from skillopsd.projections._stats import compare_medians, median_interval


def _record(
    span: str,
    at: str | None,
    *,
    rid: str | None = None,
    session: str = "s1",
    agent: str = "claude",
    model: str | None = "claude-opus-4-6",
    skills: tuple[str, ...] = (),
    inp: int = 100,
    out: int = 10,
    read: int = 50,
    write: int = 20,
    usd: float | None = 1.0,
) -> UsageRecord:
    return UsageRecord(
        span_id=span,
        at=at,
        agent=agent,
        session_id=session,
        native_session_id=f"native-{session}",
        project="/p",
        skills=skills,
        model=model,
        system="anthropic",
        response_id=rid,
        input=inp,
        output=out,
        cache_read=read,
        cache_write=write,
        usd=usd,
    )


def test_input_is_without_cache_and_total_is_the_four_columns() -> None:
    rows, totals = report([_record("a", "2026-04-11T10:00:00Z")], "daily", zone=UTC)
    (row,) = rows
    assert (row.inputTokens, row.cacheReadTokens, row.cacheCreationTokens) == (30, 50, 20)
    assert row.totalTokens == 30 + 10 + 50 + 20 == totals.totalTokens


def test_a_response_is_counted_once_by_system_and_id_earliest_wins() -> None:
    records = [
        _record("b", "2026-04-12T00:00:01Z", rid="msg_1", session="copy", usd=2.0),
        _record("a", "2026-04-11T23:59:59Z", rid="msg_1", usd=1.0),
        _record("c", "2026-04-12T00:00:02Z", rid=None),
        _record("d", "2026-04-12T00:00:03Z", rid=None),
    ]
    kept = once(records)
    assert [r.span_id for r in kept] == ["a", "c", "d"]  # no id: each record is a response
    rows, totals = report(records, "daily", zone=UTC)
    assert [(r.period, r.responses, r.totalCost) for r in rows] == [
        ("2026-04-11", 1, 1.0),
        ("2026-04-12", 2, 2.0),
    ]
    assert totals.responses == 3


def test_days_follow_the_zone_and_bounds_are_local_days_inclusive() -> None:
    records = [_record("a", "2026-04-11T23:30:00Z"), _record("b", "2026-04-12T00:30:00Z")]
    plus_one = timezone(timedelta(hours=1))
    rows, _ = report(records, "daily", zone=plus_one)
    assert [r.period for r in rows] == ["2026-04-12"]
    rows, _ = report(records, "daily", zone=UTC, since_day="2026-04-12", until_day="2026-04-12")
    assert [r.period for r in rows] == ["2026-04-12"]
    rows, _ = report(records, "monthly", zone=UTC)
    assert [(r.period, r.responses) for r in rows] == [("2026-04", 2)]


def test_unpriced_responses_are_missing_not_zero() -> None:
    rows, totals = report([_record("a", "2026-04-11T10:00:00Z", usd=None)], "daily", zone=UTC)
    assert rows[0].totalCost is None and rows[0].unpricedResponses == 1
    assert totals.totalCost is None
    rows, totals = report(
        [_record("a", "2026-04-11T10:00:00Z", usd=None), _record("b", "2026-04-11T11:00:00Z")],
        "daily",
        zone=UTC,
    )
    assert rows[0].totalCost == 1.0 and rows[0].unpricedResponses == 1


def test_by_skill_counts_a_response_under_every_skill_of_its_session() -> None:
    records = [
        _record("a", "2026-04-11T10:00:00Z", skills=("x", "y")),
        _record("b", "2026-04-11T11:00:00Z", session="s2"),
    ]
    rows, totals = report(records, "daily", by="skill", zone=UTC)
    assert [(r.group, r.responses) for r in rows] == [("-", 1), ("x", 1), ("y", 1)]
    assert totals.responses == 2


def test_sessions_are_listed_by_cost_highest_first() -> None:
    records = [
        _record("a", "2026-04-11T10:00:00Z", session="cheap", usd=0.5),
        _record("b", "2026-04-11T10:00:00Z", session="dear", usd=5.0),
        _record("c", "2026-04-11T10:00:00Z", session="unknown", usd=None),
    ]
    rows, _ = report(records, "session", zone=UTC)
    assert [r.sessionId for r in rows] == ["dear", "cheap", "unknown"]
    assert rows[0].metadata.lastActivity == "2026-04-11T10:00:00Z"
    assert rows[0].metadata.agents == []
    daily, _ = report(records, "daily", zone=UTC)
    assert daily[0].metadata.agents == ["claude"] and daily[0].metadata.lastActivity is None


def test_a_response_without_a_time_is_reported_not_dropped() -> None:
    rows, totals = report([_record("a", None), _record("b", "not a time")], "daily", zone=UTC)
    assert [(r.period, r.responses) for r in rows] == [("unknown", 2)]
    assert totals.responses == 2


@given(
    st.lists(
        st.tuples(
            st.integers(0, 10**9),  # seconds after 2026-01-01
            st.sampled_from(["m1", "m2", None]),
            st.integers(0, 3),  # response id, or none
            st.integers(0, 10**7),
        ),
        max_size=60,
    )
)
@settings(max_examples=150)
def test_every_response_lands_in_exactly_one_period(
    rows_in: list[tuple[int, str | None, int, int]],
) -> None:
    from datetime import datetime

    base = datetime(2026, 1, 1, tzinfo=UTC)
    records = [
        _record(
            f"s{i}",
            (base + timedelta(seconds=sec)).isoformat(),
            rid=f"r{rid}" if rid else None,
            model=model,
            inp=tokens + 30,
            usd=None if model is None else tokens / 1e6,
        )
        for i, (sec, model, rid, tokens) in enumerate(rows_in)
    ]
    for kind in ("daily", "weekly", "monthly", "session"):
        rows, totals = report(records, kind, zone=UTC)  # type: ignore[arg-type]
        assert sum(r.responses for r in rows) == totals.responses == len(once(records))
        assert sum(r.totalTokens for r in rows) == totals.totalTokens
        assert sum(r.unpricedResponses for r in rows) == totals.unpricedResponses
        priced = [r.totalCost for r in rows if r.totalCost is not None]
        if totals.totalCost is None:
            assert not priced
        else:
            assert sum(priced) == pytest.approx(totals.totalCost)


def test_median_interval_small_samples_say_so() -> None:
    assert median_interval([]).median is None
    few = median_interval([3.0, 1.0, 2.0])
    assert (few.median, few.low, few.high, few.n) == (2.0, None, None, 3)
    six = median_interval([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    assert (six.median, six.low, six.high) == (3.5, 1.0, 6.0)
    many = median_interval([float(i) for i in range(1, 101)])
    assert many.median == 50.5 and many.low is not None and many.high is not None
    assert 39 <= many.low < 50.5 < many.high <= 62


def test_median_interval_order_is_the_binomial_rule_and_fast_for_a_team() -> None:
    """k is the largest with P(Bin(n, 1/2) < k) <= 2.5 %, as the sum written out says, for
    every n up to 300; and a team's 15,000 sessions of one skill take well under a second
    (the sum taken afresh for each k took minutes)."""
    import math
    import time

    from skillopsd.projections._stats import _order

    def written_out(n: int) -> int:
        k = 0
        while k + 1 <= n // 2 and sum(math.comb(n, i) for i in range(k + 1)) * 40 <= 2**n:
            k += 1
        return k

    assert [_order(n) for n in range(301)] == [written_out(n) for n in range(301)]
    started = time.process_time()
    m = median_interval([float(i % 997) for i in range(15_000)])
    assert time.process_time() - started < 5  # about 0.15 s of CPU here
    assert m.low is not None and m.high is not None and m.median is not None
    assert m.low < m.median < m.high


def test_median_interval_covers_the_true_median_at_least_95_percent() -> None:
    rnd = random.Random(20261207)
    for n in (6, 9, 20, 50):
        covered = 0
        trials = 2000
        for _ in range(trials):
            # Skewed like session costs: lognormal with median exp(0) = 1.
            values = [rnd.lognormvariate(0.0, 1.2) for _ in range(n)]
            m = median_interval(values)
            assert m.low is not None and m.high is not None
            covered += m.low <= 1.0 <= m.high
        assert covered / trials >= 0.94, (n, covered / trials)


def test_compare_medians_reads_honestly() -> None:
    cheap = median_interval([1.0, 1.1, 1.2, 1.0, 0.9, 1.05, 1.15])
    dear = median_interval([3.0, 3.1, 2.9, 3.3, 3.2, 2.8, 3.05])
    assert compare_medians("v2", cheap, "v1", dear).endswith(
        "intervals do not overlap: v2 is cheaper"
    )
    assert compare_medians("v2", dear, "v1", cheap).endswith("v2 is dearer")
    assert compare_medians("v2", cheap, "v1", cheap).endswith("not yet distinguishable")
    few = median_interval([1.0, 2.0])
    assert "too few sessions" in compare_medians("v2", few, "v1", dear)
    assert statistics.median([1.0, 2.0]) == few.median


def test_a_copys_repeat_of_a_response_goes_to_the_session_that_counts() -> None:
    # Same time, same id: the copy's record sorts first by span id, the original's wins.
    copy = msgspec.structs.replace(
        _record("a", "2026-04-12T00:00:01Z", rid="msg_1", session="copy"), copy=True
    )
    original = _record("z", "2026-04-12T00:00:01Z", rid="msg_1", session="original")
    assert [r.session_id for r in once([copy, original])] == ["original"]


def test_thinking_reported_apart_is_outside_output_and_inside_total() -> None:
    record = msgspec.structs.replace(_record("a", "2026-04-11T10:00:00Z", out=10), reasoning=4)
    (row,), totals = report([record], "daily", zone=UTC)
    assert row.outputTokens == 6 and row.modelBreakdowns[0].outputTokens == 6
    assert row.totalTokens == 30 + 10 + 50 + 20 == totals.totalTokens
    # A count that claims more thinking than output is held to the output.
    wild = msgspec.structs.replace(record, reasoning=99)
    (row,), _ = report([wild], "daily", zone=UTC)
    assert row.outputTokens == 0 and row.totalTokens == 30 + 10 + 50 + 20
