"""The ``skillopsctl`` root group, its shared options and the database it opens."""

from __future__ import annotations

import contextlib
import difflib
import functools
import importlib
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, TypeVar

import apsw
import click

from .. import _logging
from .._paths import DB_ENV, TEAM_ENV, default_db_path
from .._terminal import safe
from ..events import CodecError, CorruptEventError, Database, LogError, storage_error
from ..projections import ProjectionEngine, engine_for

F = TypeVar("F", bound=Callable[..., Any])
# Help wraps at the terminal's width up to this (docs/cli.md is rendered at it).
HELP_WIDTH = 100


class UsageFailure(click.ClickException):
    """A user error about the environment (bad database path, foreign file): exit 2."""

    exit_code = 2


class StorageFailure(click.ClickException):
    """The database's storage failed (disk full, I/O error, read-only): one line, exit 2."""

    exit_code = 2

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(safe(f"skillopsctl: {self.format_message()}"), err=True, file=file)


class TeamFailure(StorageFailure):
    """The team server cannot be reached, or a command cannot run on a team view: exit 2."""


# The commands a team view answers (``--team``): they read projections. Every other command
# writes this machine's log or reads what only it holds (its transcripts, its chain).
TEAM_COMMANDS = (
    "skills",
    "skill show",
    "skill versions",
    "skill diff",
    "skill evidence",
    "sessions",
    "session show",
    "annotations",
    "lineage",
    "usage",
    "eval run",
    "rebuild",
)
# Commands that write nothing but read what only this machine holds (its capture state, its
# chain, its version store's folders, its dashboard's log): refused on a team view with a
# line that says so, not that "each machine changes only its own log".
MACHINE_READS = (
    "status",
    "log",
    "verify",
    "export",
    "serve",
    "policy show",
    "skill list",
    "skill verify",
)


# Commands that run on this machine's log when only $SKILLOPS_TEAM_URL names a server
# (exported in a profile for the views): ``sync`` pushes the log, to the server its --to or
# $SKILLOPS_SYNC_URL names. ``--team`` typed before it is still refused.
LOCAL_UNDER_ENV = ("sync",)


def team_command(path: str) -> bool:
    """Whether the command at ``path`` (``skill show``) runs on a team view."""
    return any(path == name or path.startswith(f"{name} ") for name in TEAM_COMMANDS)


class NotFound(click.ClickException):
    """An id or name that matches nothing: exit 1."""

    exit_code = 1


class AppContext:
    """What every command shares: the database location and, once opened, the database."""

    def __init__(self) -> None:
        self.db_path: Path | None = None
        self.db_given = False  # --db was typed (not only $SKILLOPS_DB)
        self._db: Database | None = None
        # --team / $SKILLOPS_TEAM_URL: read the server's replica instead of this machine's log.
        self.team_url: str | None = None
        self.team_given = False  # --team was typed (not only $SKILLOPS_TEAM_URL)

    @property
    def team(self) -> bool:
        return bool(self.team_url)

    @property
    def explicit_db(self) -> bool:
        return self.db_path is not None

    def resolved_path(self) -> Path:
        """The database path: ``--db``, then ``$SKILLOPS_DB``, then the default."""
        return self.db_path or default_db_path()

    def db(self, *, create: bool = False) -> Database:
        """Open the database once; only a command that writes (``create``) creates it.

        A read-only command on a path that holds nothing says so (exit 2) and creates
        nothing, whether the path was given (``--db``/``$SKILLOPS_DB``, perhaps mistyped) or
        is the default one (skillopsd has not run yet): README, exit codes.
        """
        if self._db is None and self.team_url:
            self._db = self._team_db()
        if self._db is None:
            path = self.resolved_path().expanduser()
            if not create and not path.exists():
                raise UsageFailure(self._missing(path))
            if self.explicit_db and not create and _empty_file(path):
                # Opening it would write a schema into it: a read-only command never does.
                # (The default location's empty file may be skillopsd creating it right now.)
                raise UsageFailure(
                    f"{path}: not a skillops database (an empty file; skillopsd or skillopsctl"
                    " ingest creates one)"
                )
            try:
                self._db = Database.open(
                    path,
                    create_dirs=not self.explicit_db,
                    create=create or not self.explicit_db,
                )
            except LogError as exc:
                raise UsageFailure(str(exc)) from exc
        return self._db

    def _missing(self, path: Path) -> str:
        """Why a read-only command found no database at ``path``, and what creates one."""
        if not self.explicit_db:
            return (
                f"{path}: no database yet (start skillopsd, or run skillopsctl ingest FILE,"
                f" to capture transcripts into it; --db or ${DB_ENV} names another)"
            )
        where = (
            "no database there"
            if path.parent.is_dir()
            else f"directory {path.parent} does not exist"
        )
        return (
            f"{path}: {where} (check --db or ${DB_ENV};"
            " skillopsd or skillopsctl ingest creates a database)"
        )

    def _team_db(self) -> Database:
        """The team server's replica, pulled up to date (see skillopsd/team/replica.py)."""
        assert self.team_url
        if self.db_given:
            raise UsageFailure(f"give --db or --team, not both (--team reads ${TEAM_ENV})")
        from ..team.replica import open_replica
        from ..team.sync import SyncError

        try:
            db, _report = open_replica(
                self.team_url,
                notify=lambda line: click.echo(safe(f"skillopsctl: {line}"), err=True),
            )
        except SyncError as exc:
            raise TeamFailure(f"--team: {exc}") from exc
        except (LogError, OSError) as exc:
            raise TeamFailure(f"team replica: {exc}") from exc
        return db

    def engine(self) -> ProjectionEngine:
        return engine_for(self.db())

    def caught_up(self) -> ProjectionEngine:
        """The projection engine after bringing every projection to the head."""
        engine = self.engine()
        try:
            engine.catch_up()
        except LogError as exc:
            raise UsageFailure(str(exc)) from exc
        return engine

    def opened_path(self) -> Path:
        """The path of the database as opened (or as it would be)."""
        return self._db.path if self._db is not None else self.resolved_path().expanduser()

    def close(self) -> None:
        if self._db is not None:
            # After a storage failure closing may fail too; it was already reported.
            with contextlib.suppress(apsw.Error):
                self._db.close()
            self._db = None


def _empty_file(path: Path) -> bool:
    try:
        return path.expanduser().stat().st_size == 0 and path.expanduser().is_file()
    except OSError:
        return False


class SuggestingGroup(click.Group):
    """A group that answers a mistyped command with the one meant (``sesions`` → sessions)."""

    group_class = type  # its subgroups suggest too

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            name, cmd, rest = super().resolve_command(ctx, args)
        except click.UsageError:
            name = args[0] if args else ""
            if name and not name.startswith("-"):
                close = difflib.get_close_matches(name, self.list_commands(ctx), n=1, cutoff=0.6)
                if close:
                    ctx.fail(f"No such command {name!r}. Did you mean {close[0]!r}?")
            raise
        app = ctx.find_object(AppContext)
        if app is not None and app.team and cmd is not None and not isinstance(cmd, click.Group):
            path = " ".join([*ctx.command_path.split()[1:], cmd.name or ""])
            if path in LOCAL_UNDER_ENV and not app.team_given:
                app.team_url = None  # this machine's log, as if the variable were unset
            elif any(arg in ("-h", "--help") for arg in rest):
                pass  # help is printed whatever the team: the command never runs
            elif path == "sync":
                raise TeamFailure(
                    "sync does not run on a team view (--team): it pushes this machine's log;"
                    " give the server as skillopsctl sync --to URL (or $SKILLOPS_SYNC_URL)"
                )
            elif not team_command(path):
                source = "--team" if app.team_given else f"${TEAM_ENV} is set"
                here = "" if app.team_given else f" (unset {TEAM_ENV} to run it here)"
                reads = any(path == n or path.startswith(f"{n} ") for n in MACHINE_READS)
                why = (
                    "it reads what only this machine holds (its own log, capture state and"
                    " files), not the team's"
                    + (": run it without --team" if app.team_given else "")
                    if reads
                    else "each machine changes only its own log and pushes it with skillopsctl sync"
                )
                raise TeamFailure(
                    f"{path} does not run on a team view ({source}): only"
                    f" {', '.join(TEAM_COMMANDS)} do; {why}{here}"
                )
        return name, cmd, rest


class _Group(SuggestingGroup):
    """The root group: a storage failure, or a damaged database (an event that cannot be
    read back, a corrupt page), in any command is one line and exit 2."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:  # ``skillopsctl --help | head`` prints before any command runs
            return super().make_context(info_name, args, parent, **extra)
        except BrokenPipeError:
            _discard_stdout()
            raise click.exceptions.Exit(_SIGPIPE_STATUS) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, StorageFailure):
            raise
        except BrokenPipeError:
            # The reader went away (``| head``): stop quietly, as a program killed by SIGPIPE
            # does (status 141). Only output was lost: whatever was written is committed, and
            # an unfinished transaction rolled back on the way out.
            _discard_stdout()
            raise click.exceptions.Exit(_SIGPIPE_STATUS) from None
        except click.ClickException as exc:
            # A refusal raised from a storage failure (a database that cannot be opened on a
            # full disk) is that failure: its one line and exit 2.
            error = storage_error(exc, ctx.ensure_object(AppContext).opened_path())
            if error is not None:
                raise StorageFailure(str(error)) from exc
            # A message may quote a name or path from the log or the disk: shown, not obeyed.
            exc.message = safe(exc.message)  # type: ignore[misc]  # Final in click's stubs only
            raise
        except Exception as exc:
            app = ctx.ensure_object(AppContext)
            path = app.opened_path()
            error = storage_error(exc, path)
            if error is not None:
                raise StorageFailure(str(error)) from exc
            damaged = CorruptEventError | CodecError | apsw.CorruptError | apsw.NotADBError
            if app.team and app._db is not None and isinstance(exc, damaged):
                # A replica is a copy: the damaged one goes, the next command pulls anew.
                from ..team.replica import discard

                app.close()
                discard(path)
                raise StorageFailure(
                    f"team replica {path}: {exc}: removed; the next command pulls it anew"
                ) from exc
            if isinstance(exc, CorruptEventError | CodecError | apsw.CorruptError):
                raise StorageFailure(
                    f"database {path}: {exc} (skillopsctl verify names the first fault)"
                ) from exc
            if isinstance(exc, LogError | apsw.NotADBError):
                raise StorageFailure(f"database {path}: {exc}") from exc
            if isinstance(exc, UnicodeEncodeError) and "surrogates" in exc.reason:
                raise UsageFailure(_not_utf8()) from exc
            raise


_SIGPIPE_STATUS = 128 + signal.SIGPIPE  # the status of a program SIGPIPE stopped (141)


def _discard_stdout() -> None:
    """Point stdout at /dev/null: the interpreter's last flush then has nowhere to fail."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _not_utf8() -> str:
    """Why text given on the command line could not be stored: bytes that are not UTF-8
    (a shell passes them through as they are; Python keeps them as lone surrogates)."""
    given = [a for a in sys.argv[1:] if any(0xDC80 <= ord(c) <= 0xDCFF for c in a)]
    what = f" ({safe(given[0])})" if given else ""
    return f"an argument is not UTF-8 text{what}: the log stores text as UTF-8; give it as UTF-8"


class AgentChoice(click.Choice):  # type: ignore[type-arg]
    """``--agent``: one of the agents skillops has a store for, looked up when first needed.

    Importing the stores (capture, redaction) costs a read command more than the rest of its
    start-up; an option only needs their names when it is given or its help is shown.
    """

    def __init__(self) -> None:
        super().__init__(())

    @property  # type: ignore[override]
    def choices(self) -> tuple[str, ...]:
        from ..sources import STORES

        return tuple(sorted(STORES))

    @choices.setter
    def choices(self, _value: object) -> None:
        pass  # the stores are the choices


def _set_db(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if not value:
        return
    app = ctx.ensure_object(AppContext)
    given = ctx.get_parameter_source(param.name or "db") == click.core.ParameterSource.COMMANDLINE
    # ``--db`` before the command name wins over $SKILLOPS_DB read again by the command.
    if given or not app.db_given:
        app.db_path = Path(value)
        app.db_given = app.db_given or given


def _set_team(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    app = ctx.ensure_object(AppContext)
    source = ctx.get_parameter_source(param.name or "team")
    given = source == click.core.ParameterSource.COMMANDLINE
    if value is None and not given:
        return  # not after the command name: what came before it stands
    # ``--team`` typed before the command name (even ``--team ''``, this machine's log) wins
    # over $SKILLOPS_TEAM_URL read again by the command; typed after it, it wins over both.
    if given or not app.team_given:
        if value and value.strip().startswith("@"):  # @FILE: the URL kept out of ``ps``
            from ..team.urls import read_url

            try:
                value = read_url(value, "--team")
            except ValueError as exc:
                raise UsageFailure(str(exc)) from exc
        app.team_url = value.strip() if value and value.strip() else None
        app.team_given = app.team_given or given


def team_option(fn: F) -> F:
    """``--team URL`` (also ``$SKILLOPS_TEAM_URL``) after the name of a command that runs on
    a team view, as before it."""
    return click.option(
        "--team",
        metavar="URL",
        envvar=TEAM_ENV,
        callback=_set_team,
        expose_value=False,
        is_eager=True,
        help=f"Read every machine's events on this team PostgreSQL (env {TEAM_ENV}; @FILE reads"
        " the URL from FILE, out of the process list).",
    )(fn)


def db_option(fn: F) -> F:
    """``--db PATH`` (also ``$SKILLOPS_DB``), accepted before or after the command name."""
    return click.option(
        "--db",
        metavar="PATH",
        envvar=DB_ENV,
        callback=_set_db,
        expose_value=False,
        is_eager=True,
        help=f"Database file (env {DB_ENV}; default $XDG_DATA_HOME/skillops/skillops.db).",
    )(fn)


def json_option(fn: F) -> F:
    """``--json``: machine-readable output."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(fn)


def pass_app(fn: F) -> F:
    """Pass the shared :class:`AppContext` as the first argument."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fn(click.get_current_context().ensure_object(AppContext), *args, **kwargs)

    return wrapper  # type: ignore[return-value]


# Each command's modules (the one defining it, then any adding subcommands to it), imported
# only when that command runs or help lists them all: a read command does not pay for the
# capture, derivation and logging it never uses.
COMMAND_MODULES: dict[str, tuple[str, ...]] = {
    "annotate": ("annotate",),
    "annotations": ("annotate",),
    "daemon": ("daemon_unit",),
    "eval": ("evals", "replay"),
    "export": ("export",),
    "forget": ("forget",),
    "ingest": ("ingest",),
    "lineage": ("lineage",),
    "log": ("log",),
    "loop": ("loop",),
    "policy": ("policy",),
    "promote": ("promote",),
    "rebuild": ("integrity",),
    "rederive": ("derivation",),
    "serve": ("serve",),
    "session": ("sessions",),
    "sessions": ("sessions",),
    "skill": ("skills", "versions", "evidence"),
    "skills": ("skills",),
    "status": ("status",),
    "sync": ("sync",),
    "usage": ("usage",),
    "verify": ("integrity",),
}


class LazyGroup(_Group):
    """The root group: its commands' modules register them when first asked for."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        for module in COMMAND_MODULES.get(cmd_name, ()):
            importlib.import_module(f"{__package__}.{module}")
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        load_commands()
        return super().list_commands(ctx)


def load_commands() -> None:
    """Import every command's module (for help and docs, which show them all)."""
    for modules in COMMAND_MODULES.values():
        for module in modules:
            importlib.import_module(f"{__package__}.{module}")


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": HELP_WIDTH},
)
@db_option
@click.option(
    "--team",
    metavar="URL",
    envvar=TEAM_ENV,
    callback=_set_team,
    expose_value=False,
    is_eager=True,
    help=f"Read every machine's events on this team PostgreSQL (env {TEAM_ENV}), pulled"
    " into a local replica, instead of this machine's log; only the reading commands"
    " (skills, skill show|versions|diff|evidence, sessions, session show, annotations,"
    " lineage, usage, eval run, rebuild).",
)
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.option("--log-level", type=click.Choice(_logging.LEVELS), default=None, help="Log level.")
@click.version_option(package_name="skillops", prog_name="skillopsctl")
@click.pass_context
def cli(ctx: click.Context, verbose: int, log_level: str | None) -> None:
    """Query and maintain the skillops event log."""
    app = ctx.ensure_object(AppContext)
    _logging.configure(_logging.verbosity_level(verbose, log_level))
    ctx.call_on_close(app.close)
