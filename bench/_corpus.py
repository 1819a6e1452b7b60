"""Extracting the shared real corpus for a benchmark run."""

from __future__ import annotations

import tarfile
from pathlib import Path

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus" / "real-home.tar.gz"


def extract(dest: Path) -> Path:
    """Unpack the HOME-shaped corpus into ``dest`` and return it."""
    with tarfile.open(CORPUS) as tar:
        tar.extractall(dest, filter="data")
    return dest


def transcript_files(home: Path) -> list[Path]:
    return sorted(p for p in home.rglob("*.jsonl") if p.is_file())
