"""The interface every agent's transcript store implements (one module per agent)."""

from __future__ import annotations

import os
import re
import stat
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import msgspec

from ..events import content_id

_decoder = msgspec.json.Decoder()


class SessionRef(msgspec.Struct, frozen=True):
    """The session a transcript file belongs to (and, for a child thread, its parent)."""

    session: str
    parent_session: str = ""


class DocumentShape(msgspec.Struct, frozen=True):
    """How to capture a file the agent rewrites whole: which top-level arrays hold records,
    and the field that identifies a record (see :mod:`skillopsd.documents`)."""

    collections: tuple[str, ...]
    id_field: str = "id"


class Store(ABC):
    """Where one agent writes its transcripts and how to tell which session a file holds."""

    agent: ClassVar[str]

    @abstractmethod
    def default_roots(self, env: Mapping[str, str], home: Path) -> list[Path]:
        """The directories this agent writes transcripts under (honouring its env overrides)."""

    @abstractmethod
    def claims(self, relative: Path) -> bool:
        """Whether the file at ``relative`` (to one of the roots) is a transcript of ours."""

    @abstractmethod
    def session_of(self, path: Path, head: list[Any]) -> SessionRef:
        """The session of ``path``, from its first decoded records (``head``) or its name."""

    @abstractmethod
    def sniff(self, head: list[Any]) -> bool:
        """Whether decoded records look like this agent's (for files outside any root)."""

    def document(self, path: Path) -> DocumentShape | None:
        """How to capture ``path`` if the agent rewrites it whole; None if it only appends."""
        return None

    def iter_files(
        self,
        root: Path,
        below: Path | None = None,
        onerror: Callable[[OSError], None] | None = None,
    ) -> Iterator[Path]:
        """Every transcript file under ``root`` (or only ``below`` it), in a stable order.

        A directory that cannot be listed is passed to ``onerror`` (the walk goes on).
        """
        if root.is_file():
            yield root
            return
        for dirpath, dirnames, filenames in os.walk(below or root, onerror=onerror):
            dirnames.sort()
            base = Path(dirpath)
            for name in sorted(filenames):
                path = base / name
                if self.claims(path.relative_to(root)):
                    yield path


def new_source_id(agent: str, device: int, inode: int, fingerprint: str, path: str) -> str:
    """The id of a file first seen now: a content hash of its identity, 16 hex digits.

    Sixty-four bits keep a collision among a machine's transcripts below one in 10^9, and
    the id is stored in every captured line's stream and event id (twice each, with the
    unique indexes): the 32 digits ids had before cost 2 MB per 40,000 lines. Files tracked
    earlier keep their ids.
    """
    return content_id("source", agent, device, inode, fingerprint, path)[:16]


# How many complete lines of a file's head identify it (its session, its agent).
HEAD_LINES = 20


def decode_head(data: bytes, limit: int = HEAD_LINES) -> list[Any]:
    """Decode up to ``limit`` complete lines of ``data``, skipping any that are not JSON."""
    records: list[Any] = []
    # Split off no more lines than wanted (a head may be a megabyte of them); the last piece
    # is never a complete line: the rest after the wanted ones, or a line without its end.
    for line in data.split(b"\n", limit)[:-1]:
        # Invalid UTF-8 in a string raises UnicodeDecodeError, deep nesting RecursionError.
        try:
            records.append(_decoder.decode(line))
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            continue
    return records


def path_text(path: str | os.PathLike[str]) -> str:
    """A path as storable text: bytes that are not UTF-8 become ``\\xNN`` escapes.

    The one escaping used wherever a path is stored or compared with a stored one; the
    file's identity stays its (device, inode).
    """
    return os.fsencode(path).decode("utf-8", "backslashreplace")


_ESCAPE = re.compile(rb"\\x([0-9a-f]{2})")


def text_path(text: str) -> str:
    """The file system path ``path_text`` made ``text`` from (a best guess if ambiguous)."""
    if "\\x" not in text:
        return text
    raw = _ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), text.encode())
    return os.fsdecode(raw)


class NotRegularFile(OSError):
    """A path that names a FIFO, socket, device or directory: never read as a transcript."""


def open_regular(path: str | os.PathLike[str]) -> BinaryIO:
    """Open a regular file for reading without ever blocking on a FIFO or device.

    ``stat`` first so a FIFO is never opened at all; ``O_NONBLOCK`` and the ``fstat`` after
    cover a path swapped for one between the two calls.
    """
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise NotRegularFile(f"not a regular file ({_kind(st.st_mode)})")
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(f"not a regular file ({_kind(st.st_mode)})")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "fifo"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISDIR, "directory"),
    ):
        if test(mode):
            return name
    return "special file"
