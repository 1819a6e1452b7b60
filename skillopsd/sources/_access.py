"""Why a path cannot be captured: one kind and one line, said the same by the daemon and ingest.

The daemon records these as capture problems (``skillopsctl status`` lists them); ``skillopsctl
ingest`` names them for the files it was given. Both ask here, so a FIFO, an unreadable file
or a symbolic link loop is called the same thing wherever it is met.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import msgspec

from ._store import NotRegularFile, open_regular, path_text

NOT_REGULAR = "not_regular"
UNREADABLE = "unreadable"
UNLISTABLE = "unlistable"
LINK_DANGLING = "dangling_link"
LINK_LOOP = "link_loop"
LINK_OUTSIDE = "link_outside"
# The kinds a symbolic link's problem can have: one link has one of them at a time.
LINK_KINDS = (LINK_DANGLING, LINK_LOOP, LINK_OUTSIDE)
# Links shown in a loop before the rest is elided (the kernel gives up after 40).
_LOOP_SHOWN = 8


class Unreachable(msgspec.Struct, frozen=True):
    """A path capture cannot read: the problem's kind and its one-line message."""

    kind: str
    message: str


def broken_link(path: str | os.PathLike[str]) -> Unreachable | None:
    """``path``'s problem if it is a symbolic link that leads nowhere: a loop or a dangling one."""
    if not os.path.islink(path):
        return None
    target = real_path(path)
    if os.path.exists(target):
        return None
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return Unreachable(LINK_LOOP, f"symbolic link loop ({_loop(path)})")
    return Unreachable(LINK_DANGLING, f"symbolic link to {path_text(target)}, which does not exist")


def outside_link(target: Path, where: str) -> Unreachable:
    """A symbolic link to ``target``, which lies outside ``where`` (the folders it may read)."""
    message = f"symbolic link to {path_text(target)}, outside {where}: not read"
    return Unreachable(LINK_OUTSIDE, message)


def open_problem(exc: OSError) -> Unreachable:
    """The problem :func:`open_regular` raised ``exc`` for."""
    if isinstance(exc, NotRegularFile):
        return Unreachable(NOT_REGULAR, str(exc))
    return Unreachable(UNREADABLE, f"cannot open: {exc.strerror or exc}")


def folder_problem(exc: OSError) -> tuple[str, Unreachable]:
    """The folder a walk could not list (``os.walk``'s error), and its problem."""
    where = exc.filename if exc.filename is not None else "?"
    return path_text(where), Unreachable(UNLISTABLE, f"cannot list folder: {exc.strerror}")


def capture_problem(path: str | os.PathLike[str]) -> Unreachable | None:
    """Why ``path`` cannot be read as a transcript right now, or None if it can be opened."""
    broken = broken_link(path)
    if broken is not None:
        return broken
    try:
        open_regular(path).close()
    except OSError as exc:
        return open_problem(exc)
    return None


def real_path(path: str | os.PathLike[str]) -> Path:
    """``path`` with every symbolic link resolved (as far as they resolve)."""
    return Path(os.path.realpath(path))


def _loop(path: str | os.PathLike[str]) -> str:
    """The links of the loop ``path`` starts, as each one reads: ``A.jsonl → B.jsonl → A.jsonl``.

    A loop through a folder's link, rather than from link to link, shows as far as it goes.
    """
    shown = [os.path.basename(os.fspath(path))]
    seen: set[str] = set()
    current = os.path.abspath(path)
    while current not in seen and len(shown) <= _LOOP_SHOWN:
        seen.add(current)
        try:
            text = os.readlink(current)
        except OSError:
            break
        shown.append(text)
        current = os.path.normpath(os.path.join(os.path.dirname(current), text))
    else:
        if current not in seen:
            shown.append("…")
    return " → ".join(path_text(part) for part in shown)
