"""``skillopsctl skill import|add-challenger|add-live|versions|route|record|rollback|strategy|
verify-routing``: the versioned store of a skill the agents load, and its A/B test."""

from __future__ import annotations

import contextlib
import getpass
import math
import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import apsw
import click
import msgspec

from .._defaults import TEAM_URL_ENV
from ..events import Database, EventLog, LogError
from ..projections._stats import Median, Share, median_interval, wilson
from ..projections.skill_aliases import names_of as skill_names
from ..projections.skill_folders import scope_text, shared_line, skill_folders
from ..projections.skill_views import first_loaded, skill_sessions
from ..versions.materialize import MANIFEST, next_pick, store_root
from ..versions.observed import skill_stream
from ..versions.state import MAX_DURATION_MS, MAX_TOKENS, STRATEGIES, SkillState, Stats
from ..versions.store import (
    StoreError,
    add_challenger,
    add_live,
    held_by,
    import_skill,
    managed_skills,
    names_of,
    read_state,
    record_manual,
    remove_live,
    rollback,
    set_strategy,
    skill_file,
    unmanage,
)
from ..versions.sync import (
    DEFAULT_SETTLE_SECONDS,
    SyncReport,
    materialize_only,
    sync_skill,
    verify_routing,
)
from ._app import AppContext, NotFound, UsageFailure, db_option, json_option, pass_app, team_option
from ._output import echo, emit_json, mean_of, say, table
from ._time import stamps, utc_option
from .skills import captured_late, share_text, skill_group
from .skills import median_cost as _median_cost

if TYPE_CHECKING:
    from ..team.views import MachineTest

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
    except OSError as exc:  # the skill's folder or a live file cannot be written
        where = f"{exc.filename}: " if exc.filename else ""
        raise UsageFailure(f"{where}{exc.strerror or exc}") from exc


def _run(app: AppContext, action: Callable[[Database], T]) -> T:
    db = app.db(create=True)
    with _store_errors():
        app.caught_up()
        return action(db)


def _sync(app: AppContext, skill: str, settle: float = DEFAULT_SETTLE_SECONDS) -> SyncReport:
    db = app.db()
    with _store_errors():
        app.caught_up()
        report = sync_skill(
            db,
            skill,
            now=datetime.now(UTC),
            settle=settle,
            team=os.environ.get(TEAM_URL_ENV) or None,
        )
        app.caught_up()
        return report


# Agent Skills' own limit on a name (it also becomes a folder name, at most 255 bytes).
MAX_NAME = 64


def _check_name(name: str) -> None:
    if not name or name.startswith(".") or not set(name) <= _NAME_CHARS:
        raise UsageFailure(f"skill name {name!r}: use letters, digits, '.', '_', '-', ':'")
    if len(name) > MAX_NAME:
        raise UsageFailure(
            f"skill name {name[:20]}… is {len(name)} characters long: at most {MAX_NAME}"
        )


def _say(report: SyncReport) -> None:
    for path in report.edits:
        echo(f"imported a hand edit of {path} as a new version (champion)")
    for path in report.unsettled_edits:
        echo(f"{path} changed moments ago: taken once it has stood still")
    for path in report.invalid_edits:
        echo(
            f"{path} holds no frontmatter naming the skill: not imported until it does",
            err=True,
        )
    if report.executions or report.corrections:
        echo(f"recorded {report.executions} execution(s), {report.corrections} correction(s)")
    for decision in report.decisions:
        echo(f"decision: {decision}")
    if report.pool == "local":
        echo(
            f"team pool unavailable ({report.pool_note}): routed on this machine's counts;"
            " nothing is decided until the server answers",
            err=True,
        )
    elif report.pool_note:
        echo(f"team pool: {report.pool_note}", err=True)
    if report.routed:
        echo(f"next: {report.routed}")
    for path in report.live_written:
        echo(f"wrote {path}")
    for note in report.masked_notes():
        echo(note, err=True)


@skill_group.command("import")
@db_option
@click.argument("name", required=False)
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
@click.option(
    "--name",
    "forced_name",
    default=None,
    help="Manage it under this name even if agents load it by another (NAME must match"
    " the frontmatter name: or the folder otherwise).",
)
@pass_app
def import_command(
    app: AppContext,
    name: str | None,
    source: Path,
    live: tuple[Path, ...],
    forced_name: str | None,
) -> None:
    """Manage skill NAME from an agent's skill folder: its body becomes the champion.

    NAME defaults to the name agents load it by (frontmatter name:, else the folder).
    """
    if name is not None and forced_name is not None and name != forced_name:
        raise UsageFailure(f"two names given: {name!r} and --name {forced_name!r}")
    if name is None and forced_name is None:
        with _store_errors():
            found, text = skill_file(source)
        name = names_of(found, text)[0]
    skill = forced_name or name
    assert skill is not None
    _check_name(skill)
    state = _run(
        app,
        lambda db: import_skill(
            db, skill, source, list(live), getpass.getuser(), check_name=forced_name is None
        ),
    )
    tag = state.tag_of(state.champion)
    echo(f"managing {skill}: champion {tag} ({(state.champion or '')[:12]})")
    for live_path in state.live_paths:
        echo(f"live: {live_path}")
    _say(_sync(app, skill))


@skill_group.command("add-live")
@db_option
@click.argument("name")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@pass_app
def add_live_command(app: AppContext, name: str, paths: tuple[Path, ...]) -> None:
    """More folders (or SKILL.md files) agents load managed skill NAME from."""
    state = _run(app, lambda db: add_live(db, name, list(paths), getpass.getuser()))
    for path in state.live_paths:
        echo(f"live: {path}")
    _say(_sync(app, name))


class LiveJson(msgspec.Struct):
    path: str
    holds: str


class ManagedJson(msgspec.Struct):
    skill: str
    managed: bool
    champion: str | None
    challenger: str | None
    strategy: str
    live: list[LiveJson]


@skill_group.command("list")
@db_option
@click.option("--managed", is_flag=True, help="Only skills managed now (not handed back).")
@json_option
@pass_app
def list_command(app: AppContext, managed: bool, as_json: bool) -> None:
    """Skills in the version store: champion, challenger, each live path and what it holds."""
    db = app.db()
    with _store_errors():
        app.caught_up()
        names = managed_skills(db, ever=not managed)
        states = [read_state(db, n) for n in names]
    out = [
        ManagedJson(
            skill=st.skill,
            managed=st.managed,
            champion=st.tag_of(st.champion),
            challenger=st.tag_of(st.challenger),
            strategy=st.strategy,
            live=[LiveJson(p, held_by(st, p)) for p in st.live_paths],
        )
        for st in states
    ]
    if as_json:
        emit_json(out)
        return
    if not out:
        say("no skill is managed (skillopsctl skill import NAME --from DIR hands one to the store)")
        return
    rows = []
    for m in out:
        status = f"champion {m.champion or '-'}" if m.managed else "not managed"
        test = f"tests {m.challenger}" if m.challenger else "-"
        for n, live in enumerate(m.live or [LiveJson("-", "-")]):
            first = n == 0
            rows.append(
                [
                    m.skill if first else "",
                    status if first else "",
                    test if first else "",
                    live.path,
                    live.holds,
                ]
            )
    table(rows, ["skill", "state", "test", "live path", "holds now"], flex=3, text=(0, 3, 4))


@skill_group.command("remove-live")
@db_option
@click.argument("name")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@pass_app
def remove_live_command(app: AppContext, name: str, paths: tuple[Path, ...]) -> None:
    """Stop writing these live files of managed skill NAME (the files are left as they are)."""
    state = _run(app, lambda db: remove_live(db, name, list(paths), getpass.getuser()))
    for given in paths:
        echo(f"no longer written: {given} (left as it is)")
    for live in state.live_paths:
        echo(f"live: {live}")


@skill_group.command("unmanage")
@db_option
@click.argument("name")
@click.option("--reason", default="", help="Why, for the lineage.")
@pass_app
def unmanage_command(app: AppContext, name: str, reason: str) -> None:
    """Hand skill NAME back: no more routing or writing; live files and history stay."""
    before = _run(app, lambda db: read_state(db, name))
    _run(app, lambda db: unmanage(db, name, getpass.getuser(), reason))
    echo(f"{name} is no longer managed; its live files were left as they are:")
    for path in before.live_paths:
        echo(f"  {path}")
    if before.challenger is not None:
        echo(f"its test of {before.tag_of(before.challenger)} ended")


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
    echo(f"challenger v{version.tag} ({version.content_hash[:12]}) of {name}")
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
        echo(f"recorded {outcome} of {name} v{version.tag}")
    else:
        echo(f"execution {rid} of {name} was recorded already: nothing recorded")
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
    echo(f"champion of {name}: v{version.tag}")
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
    echo(f"{name} routes with {strategy}")
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
    # Captured sessions that loaded it (``executions`` are those recorded for the A/B test:
    # managed skills only, once settled), and the transcript time of the first.
    sessions: int = 0
    first_loaded: str | None = None
    # Where its loads came from (a project, a home, "managed"; projections.skill_folders).
    projects: list[str] = []


class PoolJson(msgspec.Struct, kw_only=True):
    """A team machine's running test as its newest routing saw it."""

    pool: str  # team: routed on every machine's counts; local: the server did not answer
    team_test: str | None
    machines: int
    champion_executions: int
    champion_successes: int
    challenger_executions: int
    challenger_successes: int


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
    pool: PoolJson | None = None
    # Every scope the name's loads came from: more than one, several projects' skills.
    projects: list[str] = []
    # --team: every machine's own open test (champion and challenger tags, its machines, its
    # counts), so two machines testing different challengers show both; empty locally.
    tests: list[TestJson] = []


class TestJson(msgspec.Struct, kw_only=True):
    """One open test of a team view's ``skill versions``."""

    champion: str | None
    challenger: str | None
    champion_hash: str
    challenger_hash: str
    machines: list[str]
    champion_executions: int
    champion_successes: int
    challenger_executions: int
    challenger_successes: int


def _pool(state: SkillState) -> PoolJson | None:
    r = state.routing
    if r is None or r.pool is None or state.experiment is None:
        return None
    if r.experiment_id != state.experiment:
        return None
    shares = r.shares
    if r.pool != "team":
        champ = state.stats(state.champion or "", state.experiment)
        chall = state.stats(state.challenger or "", state.experiment)
        counts = (champ.executions, champ.successes, chall.executions, chall.successes)
    else:
        counts = (
            sum(s.champion_executions for s in shares),
            sum(s.champion_successes for s in shares),
            sum(s.challenger_executions for s in shares),
            sum(s.challenger_successes for s in shares),
        )
    return PoolJson(
        pool=r.pool,
        team_test=r.team_test,
        machines=len(shares) if r.pool == "team" else 1,
        champion_executions=counts[0],
        champion_successes=counts[1],
        challenger_executions=counts[2],
        challenger_successes=counts[3],
    )


def _role(state: SkillState, digest: str) -> str:
    if digest == state.champion:
        return "champion"
    if digest == state.challenger:
        return "challenger"
    return "retired" if state.versions[digest].retired else ""


class Loaded(msgspec.Struct):
    """What the captured sessions say of one version: how many loaded it, and first when."""

    sessions: int = 0
    first: str | None = None
    projects: list[str] = []


def loaded_versions(conn: apsw.Connection, name: str) -> tuple[dict[str, Loaded], list[str]]:
    """Per body hash, the captured sessions that loaded it, the first load's time and the
    scopes it was loaded from; then every scope the name's loads came from."""
    out: dict[str, Loaded] = {}
    folders = skill_folders(conn, name)
    for s in skill_sessions(conn, name):
        if s.version_hash is None:
            continue
        seen = out.setdefault(s.version_hash, Loaded())
        seen.sessions += 1
        if s.loaded_at and (seen.first is None or s.loaded_at < seen.first):
            seen.first = s.loaded_at
    # Each dated as skill show dates it: its first load under any of its names (first_loaded).
    for digest, first in first_loaded(conn, skill_names(conn, name), folders).items():
        if digest in out:
            out[digest].first = first
    for digest, scopes in folders.by_version.items():
        out.setdefault(digest, Loaded()).projects = scopes
    return out, folders.scopes


def versions_json(
    state: SkillState,
    manifest: Path | None,
    loaded: dict[str, Loaded] | None = None,
    projects: list[str] | None = None,
) -> VersionsJson:
    """What ``skill versions --json`` prints."""
    loaded = loaded or {}
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
                sessions=loaded.get(v.content_hash, Loaded()).sessions,
                first_loaded=loaded.get(v.content_hash, Loaded()).first,
                projects=loaded.get(v.content_hash, Loaded()).projects,
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
        pool=_pool(state),
        projects=projects or [],
    )


def _team_tests(report: VersionsJson, state: SkillState, tests: list[MachineTest]) -> None:
    """A team view whose machines run different tests of the skill: each test listed, every
    challenger marked so and counted in its own test, the champion over all of them."""
    report.tests = [
        TestJson(
            champion=state.tag_of(t.champion),
            challenger=state.tag_of(t.challenger),
            champion_hash=t.champion,
            challenger_hash=t.challenger,
            machines=t.machines,
            champion_executions=t.champion_executions,
            champion_successes=t.champion_successes,
            challenger_executions=t.challenger_executions,
            challenger_successes=t.challenger_successes,
        )
        for t in tests
    ]
    report.challenger = None  # no one challenger: the tests say which
    report.experiment = None
    for v in report.versions:
        mine = [t for t in tests if v.content_hash in (t.champion, t.challenger)]
        if not mine:
            if v.role in ("champion", "challenger"):
                v.role = ""
            v.experiment = None
            v.experiment_executions = v.experiment_successes = None
            continue
        as_champion = [t for t in mine if t.champion == v.content_hash]
        v.role = "champion" if as_champion else "challenger"
        v.experiment = None
        v.experiment_executions = sum(
            t.champion_executions if t.champion == v.content_hash else t.challenger_executions
            for t in mine
        )
        v.experiment_successes = sum(
            t.champion_successes if t.champion == v.content_hash else t.challenger_successes
            for t in mine
        )


def _per_run(value: float | None, n: int, unit: str = "") -> str:
    return mean_of(value, n, unit)


@skill_group.command("versions")
@db_option
@team_option
@click.argument("name")
@utc_option
@json_option
@pass_app
def versions_command(app: AppContext, name: str, utc: bool, as_json: bool) -> None:
    """NAME's versions: champion, challenger, retired; outcomes, costs, the next routed pick.

    With --team, when the machines test different challengers of NAME, every open test is
    listed (champion vs challenger, its machines, its counts).
    """
    db = app.db()

    def read(
        db: Database,
    ) -> tuple[SkillState, Path | None, tuple[dict[str, Loaded], list[str]], list[MachineTest]]:
        state = read_state(db, name)
        manifest = None
        # A team view writes nothing but its replica: no store folder of the team's bodies.
        if state.managed and not app.team:
            materialize_only(db, name)  # a manifest that disagrees with the log is rewritten
            manifest = store_root(db.path) / name / MANIFEST
        app.caught_up()
        tests: list[MachineTest] = []
        with db.read() as conn:
            loaded = loaded_versions(conn, name)
            if app.team:
                from ..team.views import open_tests

                stream = list(EventLog(db).read_stream(skill_stream(name)))
                tests = open_tests(conn, name, stream)
        return state, manifest, loaded, tests

    with _store_errors():
        state, manifest, (loaded, projects), tests = read(db)
    if not state.versions:
        raise NotFound(f"no versions of skill {name!r} (see skillopsctl skills)")
    report = versions_json(state, manifest, loaded, projects)
    if len(tests) > 1:
        _team_tests(report, state, tests)
    if as_json:
        emit_json(report)
        return
    how = f"routes with {state.strategy}" if state.managed else "not managed: nothing routed"
    say(
        f"skill {name}   champion {report.champion or '-'}   challenger"
        f" {report.challenger or '-'}   next {report.next or '-'}   ({how})"
    )
    shared = len(report.projects) > 1
    if shared:
        say(shared_line(name, report.projects))
    first, zone = stamps([v.first_loaded for v in report.versions], utc)
    table(
        [
            [
                v.tag,
                v.role or "-",
                v.content_hash[:12],
                loaded_at,
                str(v.sessions),
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
            + ([", ".join(scope_text(p) for p in v.projects) or "-"] if shared else [])
            for v, loaded_at in zip(report.versions, first, strict=True)
        ],
        [
            "version",
            "role",
            "hash",
            f"first loaded ({zone})",
            "sessions",
            "executions",
            "success [95%]",
            "in test",
            "tokens/exec",
            "cost/exec [95%]",
            "time/exec",
            "source",
        ]
        + (["loaded from"] if shared else []),
        text=(11, 12),
    )
    late = captured_late(
        [
            (v.tag, v.first_loaded, shown, v.projects)
            for v, shown in zip(report.versions, first, strict=True)
        ]
    )
    if late:
        say(late)
    say(
        "sessions: captured sessions that loaded the version (as in skill show); executions:"
        " those recorded for its A/B test (managed skills, once settled), which success,"
        " tokens and time count"
    )
    if report.tests:
        say(
            f"{len(report.tests)} open tests: the team's machines test different challengers"
            " (each machine's own test; in test counts that test's executions):"
        )
        for t in report.tests:
            say(
                f"  {t.champion or '?'} vs {t.challenger or '?'} on {', '.join(t.machines)}:"
                f" champion {t.champion_successes}/{t.champion_executions}, challenger"
                f" {t.challenger_successes}/{t.challenger_executions}",
                indent=4,
            )
    pool = report.pool
    if pool is not None and pool.pool == "team":
        say(
            f"pooled test {(pool.team_test or '')[:12]} over {pool.machines} machine(s), at the"
            f" newest routing: champion {pool.champion_successes}/{pool.champion_executions},"
            f" challenger {pool.challenger_successes}/{pool.challenger_executions}"
        )
    elif pool is not None:
        say(
            "the team server did not answer at the newest routing: routed on this machine's"
            " counts, nothing decided until it answers"
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
    echo(
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
