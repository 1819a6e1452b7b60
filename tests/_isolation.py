"""Tests never read or write a real user's data.

Every test (and every process a test starts, which inherits the environment) sees a HOME of its
own under pytest's temporary directory, and none of the variables that would point skillops or an
agent at a real store: the XDG base directories, ``SKILLOPS_DB`` and any other ``SKILLOPS_*``
that is not a switch for the test suite itself, and the agents' own home overrides. A session
that is started from a real HOME also takes a fingerprint of the places skillops writes to by
default there, and fails the run if any of them changed.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

# What the agents' stores and skillops resolve their default locations from.
CLEARED = (
    "XDG_DATA_HOME",
    "XDG_CONFIG_HOME",
    "XDG_STATE_HOME",
    "XDG_CACHE_HOME",
    "CLAUDE_CONFIG_DIR",
    "CODEX_HOME",
    "COPILOT_HOME",
    "GEMINI_CLI_HOME",
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
)
# ``SKILLOPS_*`` variables that steer the test suite, not skillops: the only ones kept.
SUITE_SWITCHES = ("SKILLOPS_REQUIRE_SHARED", "SKILLOPS_PHOENIX_VENV")


def cleared_names(environ: Mapping[str, str]) -> list[str]:
    """The variables of ``environ`` a test must not see."""
    skillops = [k for k in environ if k.startswith("SKILLOPS_") and k not in SUITE_SWITCHES]
    return [k for k in (*CLEARED, *skillops) if k in environ]


def isolate(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    """Point HOME at ``home`` and drop every variable that leads to real data."""
    for name in cleared_names(os.environ):
        monkeypatch.delenv(name)
    home.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("HOME", str(home))


def user_data_places(environ: Mapping[str, str]) -> list[Path]:
    """Where skillops would write for the user whose environment is ``environ``."""
    home = Path(environ.get("HOME") or Path.home())
    unit = Path("systemd") / "user" / "skillopsd.service"
    places = [home / ".local" / "share" / "skillops", home / ".config" / unit]
    data, config = environ.get("XDG_DATA_HOME"), environ.get("XDG_CONFIG_HOME")
    if data and os.path.isabs(data):
        places.append(Path(data) / "skillops")
    if config and os.path.isabs(config):
        places.append(Path(config) / unit)
    db = environ.get("SKILLOPS_DB")
    if db and os.path.isabs(db):
        places.append(Path(db))
    return places


def live_databases(places: list[Path]) -> list[Path]:
    """Databases under ``places`` a running skillopsd holds: their changes are its own."""
    live = []
    for place in places:
        candidates = [place] if place.suffix == ".db" else place.glob("*.db")
        for db in candidates:
            if _locked(Path(f"{db}.lock")):
                live.append(db)
    return live


def _locked(lock: Path) -> bool:
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def fingerprint(places: Sequence[Path], skip: Sequence[Path] = ()) -> dict[str, str]:
    """Every file under ``places`` with a hash of its bytes (missing places count as empty),
    leaving out the files of the databases in ``skip``."""
    skipped = {str(p) + tail for p in skip for tail in ("", "-wal", "-shm", ".lock")}
    seen: dict[str, str] = {}
    for place in places:
        files = sorted(place.rglob("*")) if place.is_dir() else [place]
        for path in files:
            if path.is_file() and not path.is_symlink() and str(path) not in skipped:
                seen[str(path)] = _digest(path)
    return seen


def _digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        return f"unreadable: {exc.strerror}"


def changed(before: Mapping[str, str], after: Mapping[str, str]) -> list[str]:
    """What differs between two fingerprints, one line each."""
    lines = [f"added {p}" for p in sorted(after.keys() - before.keys())]
    lines += [f"removed {p}" for p in sorted(before.keys() - after.keys())]
    lines += [f"changed {p}" for p in sorted(before.keys() & after.keys()) if before[p] != after[p]]
    return lines
