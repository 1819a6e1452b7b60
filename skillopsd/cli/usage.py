"""``skillopsctl usage daily|weekly|monthly|session``: ccusage's reports, for every agent."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from typing import Any

import click

from ..pricing.report import BYS, Period, Row, Totals, report
from ..projections.skill_aliases import skill_aliases
from ..projections.skill_folders import every_skills_scopes, shared_line
from ..projections.usage import usage_records
from ._app import AgentChoice, AppContext, cli, db_option, json_option, pass_app, team_option
from ._output import (
    cells,
    compact,
    cut,
    echo,
    emit_json,
    number,
    say,
    table,
    terminal_width,
    unique_prefix,
    usd,
)
from ._time import WHEN, local_zone

_DAY = re.compile(r"\A(\d{4})-?(\d{2})-?(\d{2})\Z")
_HEADERS = ["input", "output", "cache create", "cache read", "total tokens", "cost (USD)"]
_SHORT = ["input", "output", "cache wr", "cache rd", "total", "USD"]
_FIRST = {"daily": "date", "weekly": "week of", "monthly": "month", "session": "session"}


class Bound(click.ParamType):
    """A day (``2026-05-01`` or ``20260501``: a local date, inclusive) or a time (``7d``, ISO)."""

    name = "bound"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[str, str]:
        text = str(value).strip()
        match = _DAY.match(text)
        if match:
            try:
                day = date(*(int(g) for g in match.groups()))
            except ValueError:
                self.fail(f"{text!r} is not a date", param, ctx)
            return ("day", day.isoformat())
        return ("time", WHEN.convert(text, param, ctx))


BOUND = Bound()


def _cost_cell(value: float | None, unpriced: int) -> str:
    return usd(value, unpriced=unpriced)


def _numbers(fmt: Callable[[int | None], str], row: Row | Totals) -> list[str]:
    return [
        fmt(row.inputTokens),
        fmt(row.outputTokens),
        fmt(row.cacheCreationTokens),
        fmt(row.cacheReadTokens),
        fmt(row.totalTokens),
        _cost_cell(row.totalCost, row.unpricedResponses),
    ]


def _short_model(name: str) -> str:
    return name.removeprefix("claude-")


def _print(
    kind: Period,
    by: str | None,
    rows: list[Row],
    totals: Totals,
    shared: dict[str, list[str]] | None = None,
) -> None:
    """The table; ``shared``: skill names that cover several projects' skills (marked *)."""
    shared = shared or {}
    lead = [_FIRST[kind]] + ([by] if by else []) + (["agent"] if kind == "session" else [])
    width = terminal_width()
    # Sessions by the agent's id, as short as keeps them apart (resumed copies share a start).
    short = unique_prefix((r.period for r in rows), 12) if kind == "session" else None

    def build(fmt: Callable[[int | None], str], models: bool) -> list[list[str]]:
        body = []
        for r in rows:
            cells_ = [r.period[:short]]
            if by:
                group = r.group or "-"
                cells_.append(cut(group, 23) + "*" if group in shared else cut(group, 24))
            if kind == "session":
                cells_.append(r.agent)
            if models:
                cells_.append(", ".join(_short_model(m) for m in r.modelsUsed) or "-")
            body.append([*cells_, *_numbers(fmt, r)])
        blank = [""] * (len(lead) - 1 + (1 if models else 0))
        return [*body, ["total", *blank, *_numbers(fmt, totals)]]

    def needed(body: list[list[str]], headers: list[str], flex: int | None) -> int:
        widths = [max(cells(h), *(cells(row[i]) for row in body)) for i, h in enumerate(headers)]
        if flex is not None:
            widths[flex] = min(widths[flex], 12)
        return sum(widths) + 2 * (len(widths) - 1)

    # Full numbers if they fit, else 12.3M, else without the models column (ccusage's
    # --compact drops columns the same way).
    levels = (
        (number, True, _HEADERS),
        (compact, True, _HEADERS),
        (compact, True, _SHORT),
        (compact, False, _SHORT),
    )
    for fmt, models, names in levels:
        headers = [*lead, *(["models"] if models else []), *names]
        body = build(fmt, models)
        flex = len(lead) if models else None
        if needed(body, headers, flex) <= width:
            break
    table(body, headers, flex=flex, width=width)
    for name in sorted({r.group for r in rows if r.group in shared}):
        say(f"*{shared_line(name, shared[name])}: one row counts them all")
    if totals.unpricedResponses:
        echo(
            f"+ {totals.unpricedResponses:,} of {totals.responses:,} responses have no price:"
            " not in the cost (skillopsctl status)"
        )


def _command(kind: Period) -> Callable[..., Any]:
    @db_option
    @team_option
    @click.option("--by", type=click.Choice(BYS), default=None, help="One row per period and this.")
    @click.option(
        "--since",
        type=BOUND,
        default=None,
        metavar="WHEN",
        help="From this local day (YYYY-MM-DD or YYYYMMDD, inclusive) or time (7d, ISO).",
    )
    @click.option(
        "--until",
        type=BOUND,
        default=None,
        metavar="WHEN",
        help="Up to this local day (inclusive) or before this time.",
    )
    @click.option("--agent", type=AgentChoice(), default=None, help="Only this agent.")
    @click.option("--utc", is_flag=True, help="Group by UTC days (default: local, or $TZ).")
    @json_option
    @pass_app
    def command(
        app: AppContext,
        by: str | None,
        since: tuple[str, str] | None,
        until: tuple[str, str] | None,
        agent: str | None,
        utc: bool,
        as_json: bool,
    ) -> None:
        db = app.caught_up().db
        shared: dict[str, list[str]] = {}
        with db.read() as conn:
            if by == "skill":
                aliases = skill_aliases(conn)
                scopes = every_skills_scopes(conn, aliases)
                for name in {*aliases, *scopes}:
                    found = scopes.get(aliases.get(name, name), [])
                    if len(found) > 1:
                        shared[name] = found
            records = usage_records(
                conn,
                agent=agent,
                since=since[1] if since and since[0] == "time" else None,
                until=until[1] if until and until[0] == "time" else None,
            )
        rows, totals = report(
            records,
            kind,
            by=by,  # type: ignore[arg-type]
            zone=local_zone(utc),
            since_day=since[1] if since and since[0] == "day" else None,
            until_day=until[1] if until and until[0] == "day" else None,
        )
        if as_json:
            emit_json({kind: rows, "totals": totals})
            return
        if not rows:
            echo("no model responses with reported tokens in this window")
            return
        _print(kind, by, rows, totals, shared)

    return command


@cli.group("usage")
def usage_group() -> None:
    """Tokens and cost by day, week, month or session, as ccusage reports them.

    Columns mean what ccusage's do: input is input without cache, cache create and cache
    read are the cache, total tokens is their sum with output, and each model response is
    counted once. Cost is in USD from genai-prices' table (skillopsctl status names its
    version); a response whose model has no price is not counted as $0: the cost is marked
    + and the models are listed by skillopsctl status. --json uses ccusage's field names
    (period, inputTokens, outputTokens, cacheCreationTokens, cacheReadTokens, totalTokens,
    totalCost, modelsUsed, modelBreakdowns) plus unpricedResponses and responses.
    """


for _kind, _help in (
    ("daily", "Usage per local day (or $TZ; --utc for UTC days)."),
    ("weekly", "Usage per week (weeks start on Monday; the period is that Monday)."),
    ("monthly", "Usage per month (YYYY-MM)."),
    ("session", "Usage per session, most expensive first (the period is the agent's id)."),
):
    usage_group.command(_kind, help=_help)(_command(_kind))  # type: ignore[arg-type]

__all__ = ["usage_group"]
