"""``skillopsctl skills`` and ``skill show``: did that skill help?"""

from __future__ import annotations

import difflib

import apsw
import click

from ..projections._stats import Median, Share
from ..projections.skill_folders import scope_text, shared_line, skill_folders
from ..projections.skill_views import (
    Mean,
    SkillReport,
    SkillSummary,
    VersionRow,
    VersionStats,
    replay_text,
    resolve_version,
    skill_report,
    skills_overview,
    version_body,
    versions,
)
from ..sources import STORES
from ._app import (
    AppContext,
    NotFound,
    UsageFailure,
    cli,
    db_option,
    json_option,
    pass_app,
    team_option,
)
from ._empty import why_empty
from ._output import echo, emit_json, emit_json_array, mean_of, plural, say, table
from ._time import SINCE, stamps, utc_option


def share_text(s: Share) -> str:
    """``2/3 67% [21–94]``, or ``-`` when there is nothing to share."""
    if s.share is None or s.low is None or s.high is None:
        return "-"
    return f"{s.k}/{s.n} {s.share * 100:.0f}% [{s.low * 100:.0f}–{s.high * 100:.0f}]"


def median_cost(m: Median) -> str:
    """``$1.20 [0.90–1.50] (n=7)``: the median and its 95 % interval (none under 6 sessions)."""
    if m.median is None:
        return "-"
    interval = f" [{m.low:.2f}–{m.high:.2f}]" if m.low is not None and m.high is not None else ""
    return f"${m.median:.2f}{interval} (n={m.n})"


def _mean(m: Mean, unit: str = "") -> str:
    """A mean with the number of sessions that reported it (missing is missing, never 0)."""
    return mean_of(m.mean, m.n, unit)


@cli.command("skills")
@db_option
@team_option
@click.option("--since", type=SINCE, default=None, help="Sessions started since (7d or ISO).")
@click.option("--agent", type=click.Choice(sorted(STORES)), default=None)
@utc_option
@json_option
@pass_app
def skills_command(
    app: AppContext, since: str | None, agent: str | None, utc: bool, as_json: bool
) -> None:
    """Every skill sessions loaded: sessions, versions, last use, agents, outcomes.

    A plugin's skill loaded as plugin:name and as name with the same body is one row, under
    the plain name (aka the qualified one); built-in commands such as /init are not skills.
    A name loaded from several projects' (or plugins') skill folders (deploy in two
    repositories; a plugin's brainstorming and a project's own) is marked NAME* and they are
    named below the table: those are different skills.
    """
    db = app.db()
    app.caught_up()
    with db.read() as conn:
        found = skills_overview(conn, since=since, agent=agent)
        empty = None if found else why_empty(conn, "skill loads", since=since, agent=agent, utc=utc)
    if as_json:
        emit_json_array(found)
        return
    if empty is not None:
        say(empty)
        return
    used, zone = stamps([s.last_used for s in found], utc)

    def label(s: SkillSummary) -> str:
        text = f"{s.skill} (aka {', '.join(s.aliases)})" if s.aliases else s.skill
        return f"{text}*" if len(s.projects) > 1 else text

    table(
        [
            [
                label(s),
                str(s.sessions),
                str(s.versions),
                when,
                " ".join(f"{a}:{n}" for a, n in sorted(s.agents.items())),
                share_text(s.success),
                " ".join(f"{v}:{n}" for v, n in sorted(s.verdicts.items())),
            ]
            for s, when in zip(found, used, strict=True)
        ],
        [
            "skill",
            "sessions",
            "versions",
            f"last used ({zone})",
            "agents",
            "success [95%]",
            "verdicts",
        ],
        text=(4, 6),
        key=0,  # the name tells rows apart and is typed next (skill show NAME): cut last
        optional=(4, 6),  # agents, verdicts: skill show has them
    )
    for s in found:
        if len(s.projects) > 1:
            say(f"*{shared_line(s.skill, s.projects)} (skillopsctl skill show {s.skill})")


@cli.group("skill")
def skill_group() -> None:
    """One skill."""


def _eval(v: VersionStats) -> str:
    if v.eval is None:
        return "-"
    return f"{'passed' if v.eval.passed else 'FAILED'} ({v.eval.graded} graded)"


def _scoped(v: VersionStats, field: str, unit: str = "") -> str:
    if v.scoped is None:
        return "-"
    m: Mean = getattr(v.scoped, field)
    return mean_of(m.mean, m.n, unit)


def _version_arg(conn: apsw.Connection, name: str, ref: str) -> VersionRow:
    found = resolve_version(conn, name, ref)
    if found is None:
        tags = ", ".join(v.name for v in versions(conn, name)) or "none recorded"
        raise NotFound(f"no version {ref!r} of skill {name!r} (versions: {tags})")
    return found


def _body(conn: apsw.Connection, name: str, version: VersionRow) -> str:
    body = version_body(conn, version)
    if body is None:
        raise NotFound(
            f"{name} {version.name}: its body was not recorded whole (a load that showed only"
            " part of it, or a forgotten session)"
        )
    return body


@skill_group.command("show")
@db_option
@team_option
@click.argument("name")
@click.argument("version", required=False, metavar="[vN|HASH]")
@click.option("--body", is_flag=True, help="Print VERSION's body (as normalized and stored).")
@utc_option
@json_option
@pass_app
def show(
    app: AppContext, name: str, version: str | None, body: bool, utc: bool, as_json: bool
) -> None:
    """Per version of skill NAME: outcomes and labels with 95% intervals beside the sessions
    that did not load it, cost per session (whole, and from the skill's load), newest eval.

    With VERSION, only that version; --body prints its body. NAME may be either name of a
    plugin skill loaded both ways (plugin:name and name with the same body): the report is
    of the one skill, its aliases named in the first line.
    """
    if body and version is None:
        raise UsageFailure("--body needs a version: skillopsctl skill show NAME vN --body")
    db = app.db()
    app.caught_up()
    with db.read() as conn:
        chosen = _version_arg(conn, name, version) if version is not None else None
        if chosen is not None and body:
            text = _body(conn, name, chosen)
            if as_json:
                emit_json(
                    {
                        "skill": name,
                        "tag": chosen.name,
                        "content_hash": chosen.version_hash,
                        "body": text,
                    }
                )
            else:
                echo(text)
            return
        report = skill_report(conn, name)
    if report is None:
        raise NotFound(f"no session loaded skill {name!r} (see skillopsctl skills)")
    if chosen is not None:
        report.versions = [v for v in report.versions if v.content_hash == chosen.version_hash]
    if as_json:
        emit_json(report)
        return
    _print_report(report, utc, one=chosen is not None)


def _per(m: Mean | None, sessions: int, unit: str = "") -> str:
    """A mean; ``(n=k)`` only when fewer than all the sessions reported it."""
    if m is None or m.mean is None:
        return "-"
    return mean_of(m.mean, m.n, unit) if m.n != sessions else mean_of(m.mean, m.n, unit).split()[0]


def _cost(m: Median, sessions: int) -> str:
    """The median cost and its 95 % interval; ``(n=k)`` when not every session was priced."""
    text = median_cost(m)
    return text.rsplit(" (n=", 1)[0] if m.n == sessions else text


def captured_late(rows: list[tuple[str, str | None, str, list[str]]]) -> str | None:
    """A note when a tag is dated before a lower tag of the same name and the same skill
    (``rows``: tag, first load as recorded, as shown, the scopes it was loaded from). Tags
    count bodies in the order they were captured: a transcript captured later (a backfill,
    another agent's folder ingested) gives its older body the next tag, and the table would
    otherwise read as an edit back in time. Two skills that share a name (loaded only from
    different projects' or plugins' folders) are no edit of each other: their dates need no
    note."""
    plain = sorted(
        (
            (int(tag[1:]), tag, at, shown, set(scopes))
            for tag, at, shown, scopes in rows
            if tag[1:].isdigit() and at
        ),
        key=lambda r: r[0],
    )
    late = []
    for i, (_, tag, at, shown, scopes) in enumerate(plain):
        earlier = [
            r
            for r in plain[:i]
            if r[2] is not None
            and at is not None
            and r[2] > at
            and not (scopes and r[4] and not scopes & r[4])
        ]
        if earlier:
            late.append(f"{tag} ({shown}) before {earlier[0][1]} ({earlier[0][3]})")
    if not late:
        return None
    return (
        f"first loaded: {'; '.join(late)}: tags number a name's bodies in the order they were"
        " captured, not the order sessions loaded them (a transcript captured later, such as a"
        " backfill, gets the next tag)"
    )


def _print_report(report: SkillReport, utc: bool, *, one: bool) -> None:
    champion = next((v.tag for v in report.versions if v.content_hash == report.champion), None)
    base = report.baseline if not one else None
    first, zone = stamps([v.first_loaded for v in report.versions], utc)
    aka = f" (aka {', '.join(report.aliases)})" if report.aliases else ""
    say(f"skill {report.skill}{aka}   champion {champion or '-'}")
    shared = len(report.projects) > 1
    if shared:
        say(shared_line(report.skill, report.projects))
    table(
        [
            [v.tag, v.content_hash[:12], loaded, str(len(v.sessions)), _eval(v)]
            + ([", ".join(scope_text(p) for p in v.projects) or "-"] if shared else [])
            for v, loaded in zip(report.versions, first, strict=True)
        ],
        ["version", "hash", f"first loaded ({zone})", "sessions", "newest eval"]
        + (["loaded from"] if shared else []),
        text=(4, 5),
    )
    late = captured_late(
        [
            (v.tag, v.first_loaded, shown, v.projects)
            for v, shown in zip(report.versions, first, strict=True)
        ]
    )
    if late:
        say(late)
    echo()
    say(
        "How the sessions ended and how they were labelled, with 95% intervals (of the sessions"
        " with an outcome: unfinished and no verdict are not counted, as in the A/B test)"
        + (
            "; without: sessions in the same projects over the same period that did not load"
            " it (observational, not an experiment)"
            if base is not None
            else ""
        )
    )

    def outcome(
        tag: str, verdicts: dict[str, Share], labels: dict[str, Share], n: int
    ) -> list[str]:
        return [
            tag,
            share_text(verdicts["success"]),
            share_text(verdicts["failure"]),
            share_text(labels["good"]) if n else "-",
            share_text(labels["bad"]) if n else "-",
        ]

    rows = [outcome(v.tag, v.verdicts, v.labels, v.labelled) for v in report.versions]
    if base is not None:
        rows.append(outcome("without", base.verdicts, base.labels, base.labelled))
    table(
        rows,
        ["version", "success [95%]", "failure [95%]", "labelled good", "labelled bad"],
        text=(),
    )
    uncounted = [(v.tag, v.uncounted) for v in report.versions if v.uncounted]
    if base is not None and base.uncounted:
        uncounted.append(("without", base.uncounted))
    if uncounted:
        say(
            "not counted (unfinished or no verdict): "
            + ", ".join(f"{tag} {plural(n, 'session')}" for tag, n in uncounted)
        )
    echo()
    say(
        "Per session, the mean (cost: the median and its 95% interval, from 6 sessions);"
        " n= when not every session reported it; * from the skill's first load to the end of"
        " the session"
    )
    cost = []
    for v in report.versions:
        n = len(v.sessions)
        scoped = v.scoped
        cost.append(
            [
                v.tag,
                str(n),
                _per(v.calls, n),
                _per(v.tokens, n),
                _per(v.duration_ms, n, "ms"),
                _cost(v.cost, n),
                _per(scoped.calls if scoped else None, n),
                _per(scoped.tokens if scoped else None, n),
                _per(scoped.duration_ms if scoped else None, n, "ms"),
            ]
        )
    if base is not None:
        n = base.sessions
        cost.append(
            [
                "without",
                str(n),
                _per(base.calls, n),
                _per(base.tokens, n),
                _per(base.duration_ms, n, "ms"),
                _cost(base.cost, n),
                "-",
                "-",
                "-",
            ]
        )
    table(
        cost,
        [
            "version",
            "sessions",
            "calls",
            "tokens",
            "time",
            "cost [95%]",
            "calls*",
            "tokens*",
            "time*",
        ],
        text=(),
    )
    echo()
    if report.unversioned_sessions:
        say(
            f"({plural(report.unversioned_sessions, 'session')} called the skill but no body"
            " was recorded: not counted in any version)"
        )
    if base is not None:
        since, until = stamps([base.since, base.until], utc)[0]
        say(
            f"without: {plural(base.sessions, 'session')} in"
            f" {plural(len(base.projects), 'project')} ({', '.join(base.projects)}),"
            f" {since} to {until} ({zone}), that did not load {report.skill}"
        )
    if not one:
        say(f"reading: {report.reading}")
    tags = {v.content_hash: v.tag for v in report.versions}
    for r in sorted(report.replays, key=lambda r: r.position):
        say(f"{tags.get(r.version_hash, 'v?')} {replay_text(r)}")


@skill_group.command("diff")
@db_option
@team_option
@click.argument("name")
@click.argument("old", metavar="vA")
@click.argument("new", metavar="vB")
@click.option(
    "--context",
    "-U",
    "context",
    type=click.IntRange(0, 10_000),
    default=3,
    show_default=True,
    help="Lines of context around each change.",
)
@pass_app
def diff(app: AppContext, name: str, old: str, new: str, context: int) -> None:
    """A unified diff of skill NAME's bodies from version vA to vB (tags or hashes)."""
    db = app.db()
    app.caught_up()
    with db.read() as conn:
        a, b = _version_arg(conn, name, old), _version_arg(conn, name, new)
        before, after = _body(conn, name, a), _body(conn, name, b)
        folders = skill_folders(conn, name)
    where = ["", ""]
    if folders.apart(a.version_hash, b.version_hash):
        # Two projects' (or a plugin's and a project's) skills that share a name: a diff of
        # them is no edit of either. Said
        # on stderr (a terminal shows it, a patch file stays a patch) and in the headers.
        where = [" " + ", ".join(folders.folders.get(v.version_hash, [])) for v in (a, b)]
        echo(
            f"{name} {a.name} was loaded from{where[0]} and {b.name} from{where[1]}: different"
            " skills that share a name, not an edit of one (compared below as two files)",
            err=True,
        )
    lines = difflib.unified_diff(
        before.splitlines(keepends=True),
        after.splitlines(keepends=True),
        fromfile=f"{name} {a.name} ({a.version_hash[:12]}){where[0]}",
        tofile=f"{name} {b.name} ({b.version_hash[:12]}){where[1]}",
        n=context,
    )
    for line in lines:
        echo(line if line.endswith("\n") else line + "\n\\ No newline at end of body\n", nl=False)
