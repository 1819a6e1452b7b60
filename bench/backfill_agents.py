"""Backfill speed per MB for each agent, side by side in one run.

    python3 bench/backfill_agents.py [--repeat 3] [--copies 12]

For each agent a HOME holding only its sessions is backfilled by ``skillopsd --once
--no-derive`` as a real process: Claude Code's are the real-home corpus's ``~/.claude``
files; Gemini CLI's are the 19 real sessions of ``shared/corpus/agents/gemini`` laid out
where the CLI writes them, ``--copies`` times under as many project folders (the corpus is
small; every copy is captured as its own file); Copilot CLI's are its 11 real sessions laid
out the same way, ``--copies / 4`` times. Prints each agent's MB/s of transcript bytes, and
the newer agents' seconds per MB over Claude Code's (the floor, measured in the same run).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _corpus import CORPUS, extract
from backfill import daemon

AGENTS_CORPUS = CORPUS.parent / "agents"


def claude_home(tmp: Path) -> tuple[Path, int]:
    """A HOME with only the real-home corpus's Claude Code sessions, and their bytes."""
    home = extract(tmp / "claude-home")
    for other in home.iterdir():
        if other.name != ".claude":
            shutil.rmtree(other) if other.is_dir() else other.unlink()
    size = sum(p.stat().st_size for p in (home / ".claude").rglob("*.jsonl"))
    return home, size


def gemini_home(tmp: Path, copies: int) -> tuple[Path, int]:
    """A HOME with the Gemini sessions, ``copies`` times, and their bytes."""
    home = tmp / "gemini-home"
    size = 0
    for n in range(copies):
        chats = home / ".gemini" / "tmp" / f"project-{n}" / "chats"
        chats.mkdir(parents=True)
        for source in sorted((AGENTS_CORPUS / "gemini").iterdir()):
            name = f"session-2026-01-01T00-00-{source.stem[:8]}{source.suffix}"
            shutil.copy(source, chats / name)
            size += source.stat().st_size
    return home, size


def copilot_home(tmp: Path, copies: int) -> tuple[Path, int]:
    """A HOME with the Copilot sessions (event streams and the legacy document), ``copies``
    times under other folder names, and their bytes."""
    home = tmp / "copilot-home"
    size = 0
    for n in range(copies):
        for source in sorted((AGENTS_CORPUS / "copilot").iterdir()):
            if source.suffix == ".jsonl":
                dest = home / ".copilot" / "session-state" / f"{source.stem}-{n}" / "events.jsonl"
            else:
                dest = home / ".copilot" / "history-session-state" / f"{source.stem}-{n}.json"
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, dest)
            size += source.stat().st_size
    return home, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="Runs of each; the best is kept.")
    parser.add_argument("--copies", type=int, default=12, help="Copies of the Gemini corpus.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        homes = {
            "claude": claude_home(Path(tmp)),
            "gemini": gemini_home(Path(tmp), args.copies),
            "copilot": copilot_home(Path(tmp), max(1, args.copies // 4)),
        }
        best: dict[str, float] = {}
        for _ in range(args.repeat):
            for agent, (home, _size) in homes.items():
                shutil.rmtree(home / ".local", ignore_errors=True)
                seconds, _rss = daemon(home)
                best[agent] = min(best.get(agent, seconds), seconds)
    per_mb = {}
    for agent, (_home, size) in homes.items():
        mb = size / 1e6
        per_mb[agent] = best[agent] / mb
        print(f"{agent:7s} {mb:6.1f} MB  {best[agent]:6.2f} s  {mb / best[agent]:6.1f} MB/s")
    for agent in ("gemini", "copilot"):
        ratio = per_mb[agent] / per_mb["claude"]
        print(f"ratio {agent}/claude (seconds per MB): {ratio:.2f}")


if __name__ == "__main__":
    main()
