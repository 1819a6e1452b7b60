"""``skillopsctl daemon install``: the systemd user unit for this installation."""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import sys
from pathlib import Path

import click

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


def _daemon_command(db: Path) -> str:
    exe = Path(sys.executable).with_name("skillopsd")
    found = str(exe) if exe.exists() else shutil.which("skillopsd")
    command = [found] if found else [sys.executable, "-m", "skillopsd"]
    return shlex.join([*command, "--db", str(db)])


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
ExecReload=/bin/kill -HUP $MAINPID
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


def unit_text(exec_start: str = DEFAULT_EXEC_START) -> str:
    """The user unit, starting ``exec_start``."""
    return _UNIT.format(exec_start=exec_start)


@cli.group()
def daemon() -> None:
    """Run skillopsd as a systemd user service."""


@daemon.command()
@db_option
@click.option("--force", is_flag=True, help="Overwrite an existing unit file.")
@pass_app
def install(app: AppContext, force: bool) -> None:
    """Write ~/.config/systemd/user/skillopsd.service and print how to enable it.

    The unit names the database it will use (--db, $SKILLOPS_DB, else this shell's default):
    a service does not see this shell's environment, so it would otherwise pick its own.
    """
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    target = Path(config) / "systemd" / "user" / "skillopsd.service"
    if app.db_path is None:
        default = default_db_path().absolute()
        # The default location is created on first use, as the daemon itself would.
        default.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    db = _checked_db(app.db_path or default)
    text = unit_text(_daemon_command(db))
    if target.exists() and not force and target.read_text() != text:
        raise UsageFailure(f"{target} exists and differs; use --force to overwrite")
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
