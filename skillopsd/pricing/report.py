"""Usage reports: model responses grouped by day, week, month or session, as ccusage groups them.

Pure: the records come from the ``usage`` projection and the zone from the caller. The
meanings are ccusage's so its users read the same numbers: ``inputTokens`` is input *without*
cache (ccusage's "Input"), the cache columns are the breakdown, ``outputTokens`` leaves out
the thinking an agent reports apart (Gemini CLI's thoughts, as ccusage does; the cost still
prices it as output), ``totalTokens`` is the sum of the four and that thinking, and each
response is counted once (one ``gen_ai.response.id`` of one system, as
ccusage counts a Claude Code response once by message and request id). Unlike ccusage, a
response whose model has no price adds nothing to ``totalCost`` and is counted in
``unpricedResponses``: a report whose responses are all unpriced has no cost (null), not $0.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Literal

import msgspec

Period = Literal["daily", "weekly", "monthly", "session"]
By = Literal["agent", "model", "project", "skill"]
PERIODS: tuple[Period, ...] = ("daily", "weekly", "monthly", "session")
BYS: tuple[By, ...] = ("agent", "model", "project", "skill")


class UsageRecord(msgspec.Struct, frozen=True):
    """One model response with reported tokens (``input`` counts cached input too)."""

    span_id: str
    at: str | None
    agent: str
    session_id: str
    native_session_id: str
    project: str | None
    skills: tuple[str, ...]
    model: str | None
    system: str | None
    response_id: str | None
    input: int
    output: int
    cache_read: int
    cache_write: int
    usd: float | None
    # Of ``output``, the thinking the agent reported apart (Gemini CLI's thoughts).
    reasoning: int = 0
    # Its session is a copy of another (resumed, forked, copied: projections.copies).
    copy: bool = False


class ModelBreakdown(msgspec.Struct, frozen=True):
    """One model within a row (field names are ccusage's, so its scripts read them)."""

    modelName: str
    inputTokens: int
    outputTokens: int
    cacheCreationTokens: int
    cacheReadTokens: int
    cost: float | None
    unpricedResponses: int


class Totals(msgspec.Struct, frozen=True):
    inputTokens: int
    outputTokens: int
    cacheCreationTokens: int
    cacheReadTokens: int
    totalTokens: int
    totalCost: float | None
    unpricedResponses: int
    responses: int


class Metadata(msgspec.Struct, frozen=True, omit_defaults=True):
    """ccusage's ``metadata``: the agents of a period, the last activity of a session."""

    agents: list[str] = []
    lastActivity: str | None = None


class Row(msgspec.Struct, frozen=True):
    """One period (and group): ccusage's fields, then skillops' own."""

    period: str
    inputTokens: int
    outputTokens: int
    cacheCreationTokens: int
    cacheReadTokens: int
    totalTokens: int
    totalCost: float | None
    modelsUsed: list[str]
    modelBreakdowns: list[ModelBreakdown]
    agent: str
    unpricedResponses: int
    responses: int
    group: str | None = None
    metadata: Metadata = Metadata()
    sessionId: str | None = None


class _Sum:
    __slots__ = (
        "cache_read",
        "cache_write",
        "input",
        "output",
        "reasoning",
        "responses",
        "unpriced",
        "usd",
    )

    def __init__(self) -> None:
        self.input = self.output = self.cache_read = self.cache_write = self.reasoning = 0
        self.responses = self.unpriced = 0
        self.usd: float | None = None

    def add(self, r: UsageRecord) -> None:
        self.input += max(r.input - r.cache_read - r.cache_write, 0)
        thinking = min(max(r.reasoning, 0), r.output)
        self.output += r.output - thinking
        self.reasoning += thinking
        self.cache_read += r.cache_read
        self.cache_write += r.cache_write
        self.responses += 1
        if r.usd is None:
            self.unpriced += 1
        else:
            self.usd = r.usd if self.usd is None else self.usd + r.usd

    @property
    def total(self) -> int:
        return self.input + self.output + self.cache_read + self.cache_write + self.reasoning


def once(records: Iterable[UsageRecord]) -> list[UsageRecord]:
    """Each response once: the earliest record of one (system, response id) wins.

    A resumed or copied Claude Code session repeats earlier responses in a new file; ccusage
    counts them once, and so does a report (a session's own cost still counts its copies).
    Of records at one time, the one of a session that is no copy wins: a session's report
    gives the conversation's responses to the session that counts, not to its copies.
    """
    seen: set[tuple[str | None, str]] = set()
    out: list[UsageRecord] = []
    for r in sorted(records, key=lambda r: (r.at or "", r.copy, r.span_id)):
        if r.response_id is not None:
            key = (r.system, r.response_id)
            if key in seen:
                continue
            seen.add(key)
        out.append(r)
    return out


def _moment(at: str | None, zone: tzinfo | None) -> datetime | None:
    if not at:
        return None
    try:
        moment = datetime.fromisoformat(at)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(zone) if zone is not None else moment.astimezone()


def local_day(at: str | None, zone: tzinfo | None) -> str | None:
    """The date of ``at`` in ``zone`` (None: the local zone, $TZ), as YYYY-MM-DD."""
    moment = _moment(at, zone)
    return moment.date().isoformat() if moment is not None else None


def _period(kind: Period, r: UsageRecord, zone: tzinfo | None) -> str:
    if kind == "session":
        return r.native_session_id
    moment = _moment(r.at, zone)
    if moment is None:
        return "unknown"
    day = moment.date()
    if kind == "weekly":  # weeks start on Monday, as ccusage's do
        return (day - timedelta(days=day.weekday())).isoformat()
    if kind == "monthly":
        return day.isoformat()[:7]
    return day.isoformat()


def _groups(by: By | None, r: UsageRecord) -> tuple[str, ...]:
    if by is None:
        return ("all",)
    if by == "agent":
        return (r.agent,)
    if by == "model":
        return (r.model or "unknown",)
    if by == "project":
        return (r.project or "unknown",)
    return r.skills or ("-",)


def report(
    records: Iterable[UsageRecord],
    kind: Period,
    *,
    by: By | None = None,
    zone: tzinfo | None = None,
    since_day: str | None = None,
    until_day: str | None = None,
) -> tuple[list[Row], Totals]:
    """Rows (periods ascending; sessions by cost, highest first) and the totals.

    ``since_day``/``until_day`` (YYYY-MM-DD, inclusive) bound the local day of each response.
    ``--by skill`` counts a response once under every skill its session loaded, so those rows
    may add up to more than the totals (which count each response once).
    """
    rows: dict[tuple[str, str], tuple[_Sum, dict[str, _Sum], list[str], UsageRecord, set[str]]] = {}
    totals = _Sum()
    for r in once(records):
        day = local_day(r.at, zone)
        if since_day is not None and (day is None or day < since_day):
            continue
        if until_day is not None and (day is None or day > until_day):
            continue
        totals.add(r)
        period = _period(kind, r, zone)
        for group in _groups(by, r):
            entry = rows.get((period, group))
            if entry is None:
                entry = rows[(period, group)] = (_Sum(), {}, [""], r, set())
            whole, models, last, _first, agents = entry
            agents.add(r.agent)
            whole.add(r)
            models.setdefault(r.model or "unknown", _Sum()).add(r)
            if r.at and r.at > last[0]:
                last[0] = r.at
    out: list[Row] = []
    for (period, group), (whole, models, last, first, agents) in rows.items():
        out.append(
            Row(
                period=period,
                inputTokens=whole.input,
                outputTokens=whole.output,
                cacheCreationTokens=whole.cache_write,
                cacheReadTokens=whole.cache_read,
                totalTokens=whole.total,
                totalCost=whole.usd,
                modelsUsed=sorted(models),
                modelBreakdowns=[
                    ModelBreakdown(
                        modelName=name,
                        inputTokens=m.input,
                        outputTokens=m.output,
                        cacheCreationTokens=m.cache_write,
                        cacheReadTokens=m.cache_read,
                        cost=m.usd,
                        unpricedResponses=m.unpriced,
                    )
                    for name, m in sorted(models.items(), key=lambda kv: (-(kv[1].usd or 0), kv[0]))
                ],
                agent=first.agent if kind == "session" else (group if by == "agent" else "all"),
                unpricedResponses=whole.unpriced,
                responses=whole.responses,
                group=None if by is None else group,
                metadata=Metadata(lastActivity=last[0] or None)
                if kind == "session"
                else Metadata(agents=sorted(agents)),
                sessionId=first.session_id if kind == "session" else None,
            )
        )
    if kind == "session":
        out.sort(key=lambda row: (-(row.totalCost or 0.0), row.period, row.group or ""))
    else:
        out.sort(key=lambda row: (row.period, row.group or ""))
    return out, Totals(
        inputTokens=totals.input,
        outputTokens=totals.output,
        cacheCreationTokens=totals.cache_write,
        cacheReadTokens=totals.cache_read,
        totalTokens=totals.total,
        totalCost=totals.usd,
        unpricedResponses=totals.unpriced,
        responses=totals.responses,
    )
