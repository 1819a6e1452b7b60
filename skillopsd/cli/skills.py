"""``skillopsctl skills`` and ``skill show``: did that skill help?"""

from __future__ import annotations

import click

from ..projections._stats import Median, Share
from ..projections.skill_views import (
    Mean,
    VersionStats,
    replay_text,
    skill_report,
    skills_overview,
)
from ..sources import STORES
from ._app import AppContext, NotFound, cli, db_option, json_option, pass_app
from ._output import emit_json, emit_json_array, table
from ._time import SINCE


def share_text(s: Share) -> str:
    """``2/3 67% [21–94]``, or ``-`` when there is nothing to share."""
    if s.share is None or s.low is None or s.high is None:
        return "-"
    return f"{s.k}/{s.n} {s.share * 100:.0f}% [{s.low * 100:.0f}–{s.high * 100:.0f}]"


def _count(value: float) -> str:
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= size:
            return f"{value / size:.1f}{suffix}"
    return f"{value:.0f}"


def _duration(ms: float) -> str:
    seconds = ms / 1000
    if seconds >= 3600:
        return f"{seconds / 3600:.1f}h"
    if seconds >= 60:
        return f"{seconds / 60:.1f}m"
    return f"{seconds:.1f}s"


def median_cost(m: Median) -> str:
    """``$1.20 [0.90–1.50] (n=7)``: the median and its 95 % interval (none under 6 sessions)."""
    if m.median is None:
        return "-"
    interval = f" [{m.low:.2f}–{m.high:.2f}]" if m.low is not None and m.high is not None else ""
    return f"${m.median:.2f}{interval} (n={m.n})"


def _mean(m: Mean, unit: str = "") -> str:
    """A mean with the number of sessions that reported it (missing is missing, never 0)."""
    if m.mean is None:
        return "-"
    value = _duration(m.mean) if unit == "ms" else _count(m.mean)
    return f"{value} (n={m.n})"


@cli.command("skills")
@db_option
@click.option("--since", type=SINCE, default=None, help="Sessions started since (7d or ISO).")
@click.option("--agent", type=click.Choice(sorted(STORES)), default=None)
@json_option
@pass_app
def skills_command(app: AppContext, since: str | None, agent: str | None, as_json: bool) -> None:
    """Every skill sessions loaded: sessions, versions, last use, agents, outcomes.

    A plugin's skill loaded as plugin:name and as name with the same body is one row, under
    the plain name (aka the qualified one); built-in commands such as /init are not skills.
    """
    db = app.db()
    app.caught_up()
    with db.read() as conn:
        found = skills_overview(conn, since=since, agent=agent)
    if as_json:
        emit_json_array(found)
        return
    table(
        [
            [
                f"{s.skill} (aka {', '.join(s.aliases)})" if s.aliases else s.skill,
                str(s.sessions),
                str(s.versions),
                (s.last_used or "-")[:16].replace("T", " "),
                " ".join(f"{a}:{n}" for a, n in sorted(s.agents.items())),
                share_text(s.success),
                " ".join(f"{v}:{n}" for v, n in sorted(s.verdicts.items())),
            ]
            for s in found
        ],
        ["skill", "sessions", "versions", "last used", "agents", "success [95%]", "verdicts"],
    )


@cli.group("skill")
def skill_group() -> None:
    """One skill."""


def _eval(v: VersionStats) -> str:
    if v.eval is None:
        return "-"
    return f"{'passed' if v.eval.passed else 'FAILED'} ({v.eval.graded} graded)"


@skill_group.command("show")
@db_option
@click.argument("name")
@json_option
@pass_app
def show(app: AppContext, name: str, as_json: bool) -> None:
    """Per version of skill NAME: outcomes and labels with 95% intervals, cost, newest eval.

    NAME may be either name of a plugin skill loaded both ways (plugin:name and name with the
    same body): the report is of the one skill, its aliases named in the first line.
    """
    db = app.db()
    app.caught_up()
    with db.read() as conn:
        report = skill_report(conn, name)
    if report is None:
        raise NotFound(f"no session loaded skill {name!r} (see skillopsctl skills)")
    if as_json:
        emit_json(report)
        return
    champion = next((v.tag for v in report.versions if v.content_hash == report.champion), None)
    aka = f" (aka {', '.join(report.aliases)})" if report.aliases else ""
    click.echo(f"skill {report.skill}{aka}   champion {champion or '-'}")
    table(
        [
            [
                v.tag,
                v.content_hash[:12],
                str(len(v.sessions)),
                share_text(v.verdicts["success"]),
                share_text(v.verdicts["failure"]),
                share_text(v.labels["good"]) if v.labelled else "-",
                share_text(v.labels["bad"]) if v.labelled else "-",
                _mean(v.tokens),
                median_cost(v.cost),
                _mean(v.duration_ms, "ms"),
                _eval(v),
            ]
            for v in report.versions
        ],
        [
            "version",
            "hash",
            "sessions",
            "success [95%]",
            "failure [95%]",
            "labelled good",
            "labelled bad",
            "tokens/session",
            "cost/session [95%]",
            "duration/session",
            "newest eval",
        ],
    )
    if report.unversioned_sessions:
        click.echo(
            f"({report.unversioned_sessions} session(s) called the skill but no body was"
            " recorded: not counted in any version)"
        )
    click.echo(f"reading: {report.reading}")
    tags = {v.content_hash: v.tag for v in report.versions}
    for r in sorted(report.replays, key=lambda r: r.position):
        click.echo(f"{tags.get(r.version_hash, 'v?')} {replay_text(r)}")
