"""``skillopsctl daemon install``: the systemd user unit for this installation."""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import sys
from pathlib import Path

import click

from .._defaults import TEAM_URL_ENV
from .._paths import default_db_path
from ..events import Database, LogError
from ._app import AppContext, UsageFailure, cli, db_option, pass_app
from ._output import echo


def _checked_db(db: Path) -> Path:
    """``db`` as an absolute path the daemon can use, checked before any unit is written.

    The unit runs from another directory, so a relative path would name another file.
    An existing file must be a skillops database; a new one needs an existing directory.
    """
    path = db.expanduser().absolute()
    if path.exists():
        try:
            Database.open(path, create=False).close()
        except LogError as exc:
            raise UsageFailure(f"{exc}; no unit written") from exc
    elif not path.parent.is_dir():
        raise UsageFailure(f"{path}: directory {path.parent} does not exist; no unit written")
    elif not os.access(path.parent, os.W_OK | os.X_OK):
        raise UsageFailure(f"{path}: directory {path.parent} is not writable; no unit written")
    return path


def _user_name() -> str:
    """The account the unit runs as (from the password database: $USER can be stale)."""
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def _daemon_command(db: Path, sync_content: str | None = None) -> str:
    exe = Path(sys.executable).with_name("skillopsd")
    found = str(exe) if exe.exists() else shutil.which("skillopsd")
    command = [found] if found else [sys.executable, "-m", "skillopsd"]
    if sync_content is not None:  # the URL is in the environment file: it may hold a password
        command += ["--sync-content", sync_content]
    return shlex.join([*command, "--db", str(db)])


# systemd reads an EnvironmentFile value with quotes, backslash escapes and ${VAR}
# expansion: a URL holding one of these would reach the daemon changed.
_UNSAFE = frozenset("$'\\\"`\x7f") | {chr(c) for c in range(33)}


def _sync_url(url: str) -> str:
    """``url`` checked as the daemon will check it, and safe to write in an EnvironmentFile."""
    from ..team import redact_url
    from ..team.live import check_url
    from ..team.urls import read_url

    try:
        url = check_url(read_url(url, "--sync-to"))
    except ValueError as exc:
        raise UsageFailure(f"{exc}; no unit written") from exc
    bad = sorted({c for c in url if c in _UNSAFE})
    if bad:
        shown = " ".join(repr(c) for c in bad)
        raise UsageFailure(
            f"--sync-to {redact_url(url)}: percent-encode {shown} (e.g. %24 for $); no unit written"
        )
    return url


def _write_private(path: Path, text: str) -> None:
    """``text`` into ``path``, readable by its owner only from the first byte on."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an existing tmp kept its old mode
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


# systemd/skillopsd.service in the repository is this text rendered for a ``pip --user``
# install (a test keeps the two equal).
_UNIT = """\
# skillopsd: capture coding-agent transcripts into the skillops event log.
# Install with `skillopsctl daemon install`, which fills in ExecStart for this installation.
[Unit]
Description=skillops transcript capture daemon
After=default.target

[Service]
Type=notify
NotifyAccess=main
ExecStart={exec_start}
{environment}ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
RestartSec=5
WatchdogSec=60
TimeoutStopSec=15
UMask=0077
NoNewPrivileges=yes

[Install]
WantedBy=default.target
"""
DEFAULT_EXEC_START = "%h/.local/bin/skillopsd"


def unit_text(exec_start: str = DEFAULT_EXEC_START, environment: Path | None = None) -> str:
    """The user unit, starting ``exec_start`` (with the variables in ``environment``)."""
    line = "" if environment is None else f"EnvironmentFile={environment}\n"
    return _UNIT.format(exec_start=exec_start, environment=line)


@cli.group()
def daemon() -> None:
    """Run skillopsd as a systemd user service."""


@daemon.command()
@db_option
@click.option("--force", is_flag=True, help="Overwrite an existing unit file.")
@click.option(
    "--sync-to",
    "sync_url",
    metavar="URL",
    default=None,
    help="The service also pushes the log to this team PostgreSQL (skillopsd --sync-to). The"
    " URL goes into ~/.config/skillops/skillopsd.env (0600), never into the unit.",
)
@click.option(
    "--sync-content",
    type=click.Choice(["derived", "all", "none"]),
    default="derived",
    show_default=True,
    help="What the service's sync sends (skillopsd --sync-content).",
)
@pass_app
def install(app: AppContext, force: bool, sync_url: str | None, sync_content: str) -> None:
    """Write ~/.config/systemd/user/skillopsd.service and print how to enable it.

    The unit names the database it will use (--db, $SKILLOPS_DB, else this shell's default):
    a service does not see this shell's environment, so it would otherwise pick its own.
    With --sync-to the service syncs to a team server; the URL (which may hold a password)
    is kept in an environment file only you can read, which the unit names.
    """
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    target = Path(config) / "systemd" / "user" / "skillopsd.service"
    env_file = Path(config).absolute() / "skillops" / "skillopsd.env"
    url = _sync_url(sync_url) if sync_url is not None else None
    if app.db_path is None:
        default = default_db_path().absolute()
        # The default location is created on first use, as the daemon itself would.
        default.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    db = _checked_db(app.db_path or default)
    text = unit_text(_daemon_command(db, sync_content if url else None), env_file if url else None)
    if target.exists() and not force and target.read_text() != text:
        raise UsageFailure(f"{target} exists and differs; use --force to overwrite")
    if url is not None:
        _write_private(env_file, f"{TEAM_URL_ENV}='{url}'\n")
        echo(f"wrote {env_file} (0600: the sync URL)")
    elif env_file.exists():
        env_file.unlink()  # the unit no longer names it: a password must not linger
        echo(f"removed {env_file} (no --sync-to: the service syncs nothing)")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    tmp.write_text(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, target)
    echo(f"wrote {target}")
    echo(f"the service will use the database {db}")
    echo("enable and start it:")
    echo("  systemctl --user daemon-reload")
    echo("  systemctl --user enable --now skillopsd")
    echo("keep it running when you are logged out (asks for your password):")
    echo(f"  loginctl enable-linger {shlex.quote(_user_name())}")
