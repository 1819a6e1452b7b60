"""``skillopsctl skill import|add-challenger|add-live|versions|route|record|rollback|strategy|
verify-routing``: the versioned store of a skill the agents load, and its A/B test."""

from __future__ import annotations

import contextlib
import getpass
import math
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import apsw
import click
import msgspec

from ..events import Database, LogError
from ..projections._stats import Median, Share, median_interval, wilson
from ..versions.materialize import MANIFEST, next_pick, store_root
from ..versions.state import MAX_DURATION_MS, MAX_TOKENS, STRATEGIES, SkillState, Stats
from ..versions.store import (
    StoreError,
    add_challenger,
    add_live,
    import_skill,
    read_state,
    record_manual,
    rollback,
    set_strategy,
)
from ..versions.sync import (
    DEFAULT_SETTLE_SECONDS,
    SyncReport,
    materialize_only,
    sync_skill,
    verify_routing,
)
from ._app import AppContext, NotFound, UsageFailure, db_option, json_option, pass_app
from ._output import emit_json, table
from .skills import median_cost as _median_cost
from .skills import share_text, skill_group

T = TypeVar("T")
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-:")

settle_option = click.option(
    "--settle-seconds",
    type=click.FloatRange(min=0),
    default=DEFAULT_SETTLE_SECONDS,
    show_default=True,
    help="A session counts once it has had no new line this long (or its agent ended it).",
)


@contextlib.contextmanager
def _store_errors() -> Iterator[None]:
    try:
        yield
    except StoreError as exc:
        if exc.code == 1:
            raise NotFound(str(exc)) from exc
        raise UsageFailure(str(exc)) from exc
    except (LogError, apsw.Error) as exc:
        raise UsageFailure(f"store error, nothing changed: {exc}") from exc


def _run(app: AppContext, action: Callable[[Database], T]) -> T:
    db = app.db(create=True)
    with _store_errors():
        app.caught_up()
        return action(db)


def _sync(app: AppContext, skill: str, settle: float = DEFAULT_SETTLE_SECONDS) -> SyncReport:
    db = app.db()
    with _store_errors():
        app.caught_up()
        report = sync_skill(db, skill, now=datetime.now(UTC), settle=settle)
        app.caught_up()
        return report


def _check_name(name: str) -> None:
    if not name or name.startswith(".") or not set(name) <= _NAME_CHARS:
        raise UsageFailure(f"skill name {name!r}: use letters, digits, '.', '_', '-', ':'")


def _say(report: SyncReport) -> None:
    for path in report.edits:
        click.echo(f"imported a hand edit of {path} as a new version (champion)")
    for path in report.unsettled_edits:
        click.echo(f"{path} changed moments ago: taken once it has stood still")
    for path in report.invalid_edits:
        click.echo(
            f"{path} holds no frontmatter naming the skill: not imported until it does",
            err=True,
        )
    if report.executions or report.corrections:
        click.echo(f"recorded {report.executions} execution(s), {report.corrections} correction(s)")
    for decision in report.decisions:
        click.echo(f"decision: {decision}")
    if report.routed:
        click.echo(f"next: {report.routed}")
    for path in report.live_written:
        click.echo(f"wrote {path}")


@skill_group.command("import")
@db_option
@click.argument("name")
@click.option(
    "--from",
    "source",
    required=True,
    type=click.Path(path_type=Path),
    help="The agent's skill folder (or its SKILL.md); its SKILL.md becomes a live path.",
)
@click.option(
    "--live",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Another folder (or SKILL.md) agents load this skill from (repeatable).",
)
@pass_app
def import_command(app: AppContext, name: str, source: Path, live: tuple[Path, ...]) -> None:
    """Manage skill NAME from an agent's skill folder: its body becomes the champion."""
    _check_name(name)
    state = _run(app, lambda db: import_skill(db, name, source, list(live), getpass.getuser()))
    tag = state.tag_of(state.champion)
    click.echo(f"managing {name}: champion {tag} ({(state.champion or '')[:12]})")
    for path in state.live_paths:
        click.echo(f"live: {path}")
    _say(_sync(app, name))


@skill_group.command("add-live")
@db_option
@click.argument("name")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@pass_app
def add_live_command(app: AppContext, name: str, paths: tuple[Path, ...]) -> None:
    """More folders (or SKILL.md files) agents load managed skill NAME from."""
    state = _run(app, lambda db: add_live(db, name, list(paths), getpass.getuser()))
    for path in state.live_paths:
        click.echo(f"live: {path}")
    _say(_sync(app, name))


@skill_group.command("add-challenger")
@db_option
@click.argument("name")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--author", type=click.Choice(["human", "machine"]), default="human")
@click.option("--confidence", type=click.IntRange(0, 100), default=None, help="0-100.")
@pass_app
def add_challenger_command(
    app: AppContext, name: str, file: Path, author: str, confidence: int | None
) -> None:
    """Test FILE (a SKILL.md) against the champion of NAME."""
    version = _run(app, lambda db: add_challenger(db, name, file, author, confidence))
    click.echo(f"challenger v{version.tag} ({version.content_hash[:12]}) of {name}")
    _say(_sync(app, name))


def _finite(_ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a number of dollars", param=param)
    return value


@skill_group.command("record")
@db_option
@click.argument("name")
@click.option("--version", "ref", required=True, metavar="vN|HASH")
@click.option("--success/--failure", "success", default=None)
@click.option("--tokens", type=int, default=None, help=f"0 to {MAX_TOKENS:,}.")
@click.option("--duration-ms", type=int, default=None, help=f"0 to {MAX_DURATION_MS:,}.")
@click.option(
    "--cost-usd",
    type=click.FloatRange(min=0, max=1e9),
    default=None,
    callback=_finite,
    help="What it cost, in USD.",
)
@click.option(
    "--id",
    "record_id",
    default=None,
    metavar="KEY",
    help="Your key for this execution: the same key again records nothing (safe to retry).",
)
@pass_app
def record_command(
    app: AppContext,
    name: str,
    ref: str,
    success: bool | None,
    tokens: int | None,
    duration_ms: int | None,
    cost_usd: float | None,
    record_id: str | None,
) -> None:
    """Record one execution of a version by hand (for agents skillops cannot read)."""
    if success is None:
        raise UsageFailure("say --success or --failure")
    for option, value, most in (
        ("--tokens", tokens, MAX_TOKENS),
        ("--duration-ms", duration_ms, MAX_DURATION_MS),
    ):
        if value is not None and not 0 <= value <= most:
            raise UsageFailure(f"{option} {value}: out of range (0 to {most:,}); nothing recorded")
    outcome = "success" if success else "failure"
    rid = record_id if record_id is not None else uuid.uuid4().hex
    version, fresh = _run(
        app, lambda db: record_manual(db, name, ref, outcome, tokens, duration_ms, rid, cost_usd)
    )
    if fresh:
        click.echo(f"recorded {outcome} of {name} v{version.tag}")
    else:
        click.echo(f"execution {rid} of {name} was recorded already: nothing recorded")
    _say(_sync(app, name))


@skill_group.command("rollback")
@db_option
@click.argument("name")
@click.argument("ref", metavar="vN")
@click.option("--force-no-eval", is_flag=True, help="Bring back a version that was never champion.")
@click.option("--reason", default=None, help="Why (required with --force-no-eval).")
@pass_app
def rollback_command(
    app: AppContext, name: str, ref: str, force_no_eval: bool, reason: str | None
) -> None:
    """Make former champion vN the champion of NAME again (ends a running test)."""
    if force_no_eval and not (reason and reason.strip()):
        raise UsageFailure("--force-no-eval needs --reason (it is recorded forever)")
    why = reason.strip() if reason and reason.strip() else None
    version = _run(
        app,
        lambda db: rollback(db, name, ref, getpass.getuser(), reason=why, force=force_no_eval),
    )
    click.echo(f"champion of {name}: v{version.tag}")
    _say(_sync(app, name))


@skill_group.command("strategy")
@db_option
@click.argument("name")
@click.argument("strategy", metavar="|".join(STRATEGIES))
@pass_app
def strategy_command(app: AppContext, name: str, strategy: str) -> None:
    """Route NAME with thompson (default), ucb1 or champion-only."""
    if strategy not in STRATEGIES:
        raise UsageFailure(f"unknown strategy {strategy!r} (one of {', '.join(STRATEGIES)})")
    _run(app, lambda db: set_strategy(db, name, strategy, getpass.getuser()))
    click.echo(f"{name} routes with {strategy}")
    _say(_sync(app, name))


@skill_group.command("route")
@db_option
@click.argument("name")
@settle_option
@json_option
@pass_app
def route_command(app: AppContext, name: str, settle_seconds: float, as_json: bool) -> None:
    """Record settled sessions, decide, route and write the live files of NAME now."""
    report = _sync(app, name, settle_seconds)
    if as_json:
        emit_json(report)
    else:
        _say(report)


class VersionJson(msgspec.Struct, kw_only=True):
    """One version in ``skill versions --json``."""

    tag: str
    content_hash: str
    retired: bool
    executions: int
    successes: int
    success: Share
    tokens_per_run: float | None
    tokens_reported: int
    duration_ms_per_run: float | None
    duration_reported: int
    # USD per execution: median and its 95 % interval over the executions with a cost.
    cost_usd: Median
    role: str  # champion | challenger | retired | ""
    author: str
    confidence: int | None
    source: str
    parent: str | None
    created_at: str
    # The running experiment's counts for its two arms (None for other versions).
    experiment: str | None = None
    experiment_executions: int | None = None
    experiment_successes: int | None = None


class VersionsJson(msgspec.Struct, kw_only=True):
    """``skill versions --json``."""

    skill: str
    champion: str | None
    challenger: str | None
    next: str | None
    managed: bool
    strategy: str
    experiment: str | None
    manifest: str | None
    versions: list[VersionJson]


def _role(state: SkillState, digest: str) -> str:
    if digest == state.champion:
        return "champion"
    if digest == state.challenger:
        return "challenger"
    return "retired" if state.versions[digest].retired else ""


def versions_json(state: SkillState, manifest: Path | None) -> VersionsJson:
    """What ``skill versions --json`` prints."""
    out = []
    for v in state.by_tag():
        s: Stats = state.stats(v.content_hash, None)
        in_test = state.experiment is not None and v.content_hash in (
            state.champion,
            state.challenger,
        )
        e = state.stats(v.content_hash, state.experiment) if in_test else None
        out.append(
            VersionJson(
                tag=f"v{v.tag}",
                content_hash=v.content_hash,
                retired=v.retired,
                executions=s.executions,
                successes=s.successes,
                success=wilson(s.successes, s.executions),
                tokens_per_run=s.tokens_total / s.tokens_reported if s.tokens_reported else None,
                tokens_reported=s.tokens_reported,
                duration_ms_per_run=s.duration_ms_total / s.duration_reported
                if s.duration_reported
                else None,
                duration_reported=s.duration_reported,
                cost_usd=median_interval(
                    [
                        e.cost_usd
                        for e in state.executions.values()
                        if e.version_hash == v.content_hash and e.outcome and e.cost_usd is not None
                    ]
                ),
                role=_role(state, v.content_hash),
                author=v.author,
                confidence=v.confidence,
                source=v.source,
                parent=state.tag_of(v.parent),
                created_at=v.created_at,
                experiment=state.experiment if in_test else None,
                experiment_executions=e.executions if e else None,
                experiment_successes=e.successes if e else None,
            )
        )
    return VersionsJson(
        skill=state.skill,
        champion=state.tag_of(state.champion),
        challenger=state.tag_of(state.challenger),
        next=state.tag_of(next_pick(state)) if state.managed else None,
        managed=state.managed,
        strategy=state.strategy,
        experiment=state.experiment,
        manifest=str(manifest) if manifest else None,
        versions=out,
    )


def _per_run(value: float | None, n: int, unit: str = "") -> str:
    if value is None:
        return "-"
    text = f"{value / 1000:.1f}s" if unit == "ms" else f"{value:.0f}"
    return f"{text} (n={n})"


@skill_group.command("versions")
@db_option
@click.argument("name")
@json_option
@pass_app
def versions_command(app: AppContext, name: str, as_json: bool) -> None:
    """NAME's versions: champion, challenger, retired; outcomes, costs, the next routed pick."""
    db = app.db()

    def read(db: Database) -> tuple[SkillState, Path | None]:
        state = read_state(db, name)
        manifest = None
        if state.managed:
            materialize_only(db, name)  # a manifest that disagrees with the log is rewritten
            manifest = store_root(db.path) / name / MANIFEST
        return state, manifest

    with _store_errors():
        state, manifest = read(db)
    if not state.versions:
        raise NotFound(f"no versions of skill {name!r} (see skillopsctl skills)")
    report = versions_json(state, manifest)
    if as_json:
        emit_json(report)
        return
    how = f"routes with {state.strategy}" if state.managed else "not managed: nothing routed"
    click.echo(
        f"skill {name}   champion {report.champion or '-'}   challenger"
        f" {report.challenger or '-'}   next {report.next or '-'}   ({how})"
    )
    table(
        [
            [
                v.tag,
                v.role or "-",
                v.content_hash[:12],
                str(v.executions),
                share_text(v.success),
                (
                    f"{v.experiment_successes}/{v.experiment_executions}"
                    if v.experiment_executions is not None
                    else "-"
                ),
                _per_run(v.tokens_per_run, v.tokens_reported),
                _median_cost(v.cost_usd),
                _per_run(v.duration_ms_per_run, v.duration_reported, "ms"),
                f"{v.source}/{v.author}"
                + (f" {v.confidence}%" if v.confidence is not None else ""),
            ]
            for v in report.versions
        ],
        [
            "version",
            "role",
            "hash",
            "runs",
            "success [95%]",
            "in test",
            "tokens/run",
            "cost/run [95%]",
            "time/run",
            "source",
        ],
    )


def _verify(app: AppContext, name: str) -> None:
    db = app.db()
    with _store_errors():
        found = verify_routing(db, name)
    if not found.routings and not found.decisions:
        raise NotFound(f"no routing or champion decisions recorded for skill {name!r}")
    if found.mismatches:
        first = found.mismatches[0]
        raise NotFound(
            f"{len(found.mismatches)} of {found.routings + found.decisions} decision(s) of"
            f" {name} do not recompute; first at position {first.position}: {first.problem}"
        )
    click.echo(
        f"{found.routings} routing decision(s) of {name} recompute exactly;"
        f" {found.decisions} promote/retire decision(s) too"
    )


@skill_group.command("verify")
@db_option
@click.argument("name")
@pass_app
def verify_command(app: AppContext, name: str) -> None:
    """Recompute every routing and every promote/retire decision of NAME under the policy in
    force at its position; exit 1 on a mismatch."""
    _verify(app, name)


@skill_group.command("verify-routing", hidden=True)
@db_option
@click.argument("name")
@pass_app
def verify_routing_command(app: AppContext, name: str) -> None:
    """The former name of ``skill verify``."""
    _verify(app, name)
