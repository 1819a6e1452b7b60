"""Backfill speed per MB for each agent's real sessions, beside a capture floor, in one run.

    python3 bench/agents.py [--repeat 3]

Per agent (Claude Code and Codex from the real-home corpus, Copilot CLI and Gemini CLI from
corpus/agents laid out as each CLI lays them out): the floor of bench/backfill.py (read,
msgspec decode, apsw insert) over the agent's files; capture in-process through the stores'
roots (``full_pass``: discovery, redaction, hash chain, tracking rows); then the projections
and derivation of every session (``SessionDeriver.derive``). In-process, so that the few MB
of a small corpus are not drowned by interpreter start. Prints MB/s of each and capture's
ratio to its floor.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _corpus import CORPUS, extract
from backfill import floor

from skillopsd._logging import configure
from skillopsd.deriving import SessionDeriver
from skillopsd.events import Database
from skillopsd.projections import engine_for
from skillopsd.sources import Capturer, discover, full_pass, resolve_roots

AGENTS_CORPUS = CORPUS.parent / "agents"


def _copilot_home(home: Path) -> Path:
    state = home / ".copilot" / "session-state"
    for path in sorted((AGENTS_CORPUS / "copilot").glob("*.jsonl")):
        (state / path.stem).mkdir(parents=True)
        shutil.copy(path, state / path.stem / "events.jsonl")
    legacy = home / ".copilot" / "history-session-state"
    legacy.mkdir(parents=True)
    for path in sorted((AGENTS_CORPUS / "copilot").glob("*.json")):
        shutil.copy(path, legacy / path.name)
    return home


def _gemini_home(home: Path) -> Path:
    chats = home / ".gemini" / "tmp" / "project" / "chats"
    chats.mkdir(parents=True)
    for path in sorted((AGENTS_CORPUS / "gemini").iterdir()):
        shutil.copy(path, chats / f"session-2026-01-01T00-00-{path.stem[:8]}{path.suffix}")
    return home


def _measure(
    home: Path, agent: str, work: Path, repeat: int
) -> tuple[int, int, float, float, float]:
    roots = [r for r in resolve_roots(env={"HOME": str(home)}, home=home) if r.agent == agent]
    files = [path for path, _store in discover(roots)]
    size = sum(p.stat().st_size for p in files)
    floors, captures, derives = [], [], []
    for i in range(repeat):
        floors.append(floor(files, work / f"{agent}-floor{i}.db"))
        db = Database.open(work / f"{agent}-{i}.db")
        try:
            start = time.perf_counter()
            full_pass(Capturer(db), roots)
            captures.append(time.perf_counter() - start)
            start = time.perf_counter()
            engine_for(db).catch_up()  # derivation reads the projections, as in the daemon
            deriver = SessionDeriver(db)
            deriver.derive(deriver.all_sessions())
            derives.append(time.perf_counter() - start)
        finally:
            db.close()
    return len(files), size, min(floors), min(captures), min(derives)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="Runs of each; the best is kept.")
    args = parser.parse_args()
    configure("warning")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        real = extract(work / "real")
        copilot = _copilot_home(work / "copilot")
        gemini = _gemini_home(work / "gemini")
        print(
            f"{'agent':8} {'files':>5} {'MB':>6}  {'floor MB/s':>10}  {'capture MB/s':>12}"
            f"  {'ratio':>5}  {'derive MB/s':>11}  {'both MB/s':>9}"
        )
        homes = {"claude": real, "codex": real, "copilot": copilot, "gemini": gemini}
        for agent, home in homes.items():
            files, size, f, c, d = _measure(home, agent, work, args.repeat)
            mb = size / 1e6
            print(
                f"{agent:8} {files:5d} {mb:6.1f}  {mb / f:10.1f}  {mb / c:12.1f}"
                f"  {c / f:5.2f}  {mb / d:11.1f}  {mb / (c + d):9.1f}"
            )


if __name__ == "__main__":
    main()
