"""The interface every agent's transcript store implements (one module per agent)."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import msgspec

_decoder = msgspec.json.Decoder()


class SessionRef(msgspec.Struct, frozen=True):
    """The session a transcript file belongs to (and, for a child thread, its parent)."""

    session: str
    parent_session: str = ""


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

    def iter_files(self, root: Path, below: Path | None = None) -> Iterator[Path]:
        """Every transcript file under ``root`` (or only ``below`` it), in a stable order."""
        if root.is_file():
            yield root
            return
        for dirpath, dirnames, filenames in os.walk(below or root):
            dirnames.sort()
            base = Path(dirpath)
            for name in sorted(filenames):
                path = base / name
                if self.claims(path.relative_to(root)):
                    yield path


def decode_head(data: bytes, limit: int = 20) -> list[Any]:
    """Decode up to ``limit`` complete lines of ``data``, skipping any that are not JSON."""
    records: list[Any] = []
    for line in data.split(b"\n")[:-1][:limit]:
        try:
            records.append(_decoder.decode(line))
        except msgspec.DecodeError:
            continue
    return records
