"""The fold of derived events into projections, beside reading and decoding those events.

    python3 bench/fold.py [--repeat 5] [--home DIR] [--each] [--compute-prices]

Backfills the real corpus once (``skillopsd --once``: capture, derive, project), then, in
this process, best of ``--repeat`` of each (alternated), CPU (``time.process_time``) and wall:

- floor: read every event the projections of derived events fold (SpanDerived,
  SessionDerived, ...) from the log in the engine's chunks and decode each payload, as the
  engine does before any projection folds;
- fold: a rebuild of those projections (sessions, usage, session_keys) by the engine: the
  same read, then each projection's ``apply_many``, checkpoints and commits; the responses'
  prices handed over beforehand, as the daemon's derivation workers hand them
  (``--compute-prices``: priced in the fold, as ``skillopsctl rebuild`` does).

The ratio fold / floor is what the folding itself costs on top of reading the events back
(issue 16 item 10: after capture, the appending process folds the corpus' ~17,000 derived
events). ``--each`` also gives the CPU of each projection's ``apply_many`` in the fold (a
separate rebuild, instrumented).
``--home DIR`` keeps the backfilled corpus there (reused when its database exists), so two
trees can be timed on one database: ``PYTHONPATH=<other checkout> python3 bench/fold.py
--home DIR``.
"""

from __future__ import annotations

import argparse
import gc
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _corpus import extract, home_env, program

from skillopsd._logging import configure
from skillopsd.events import Database, EventLog
from skillopsd.events.types import SpanDerived
from skillopsd.pricing import PriceArgs, Priced, price, price_ahead
from skillopsd.projections import Projection, ProjectionEngine, SessionKeys, Sessions, Usage
from skillopsd.projections._engine import DEFAULT_CHUNK
from skillopsd.projections.usage import price_args


def derived_projections() -> list[Projection]:
    """The projections that fold the derived events (in default_projections' order)."""
    return [Sessions(), Usage(), SessionKeys()]


def read_floor(db: Database) -> int:
    """Read and decode what the projections fold, in the engine's chunks; the events read."""
    types = frozenset().union(*(p.handles or () for p in derived_projections()))
    log = EventLog(db)
    count = 0
    with db.read():
        head = log.head()
        after = 0
        while after < head:
            events = list(log.read(after=after, upto=head, types=types, limit=DEFAULT_CHUNK))
            for event in events:
                event.payload  # noqa: B018 (decoding is what is timed)
            count += len(events)
            if len(events) < DEFAULT_CHUNK:
                break
            after = events[-1].position
    return count


def price_ahead_as_workers_do(db: Database) -> int:
    """Hand this process the prices of every response, as the daemon's derivation workers
    do (``price_ahead``): the daemon's fold looks prices up instead of computing them."""
    prices: list[tuple[PriceArgs, Priced | None]] = []
    with db.read():
        for event in EventLog(db).read(types=["SpanDerived"]):
            span = event.payload
            if isinstance(span, SpanDerived) and span.kind == "LLM":
                args = price_args(span)
                if args is not None:
                    prices.append((args, price(*args)))
    price_ahead(prices)
    return len(prices)


def rebuild(db: Database, projections: list[Projection]) -> int:
    return ProjectionEngine(db, projections).rebuild()


def instrumented(db: Database) -> dict[str, float]:
    """CPU seconds of each projection's ``apply_many`` in one rebuild of them together."""
    spent: dict[str, float] = {}
    projections = derived_projections()
    for projection in projections:

        def apply_many(conn: Any, events: Any, fold: Any = projection.apply_many) -> None:
            start = time.process_time()
            try:
                fold(conn, events)
            finally:
                name = fold.__self__.name
                spent[name] = spent.get(name, 0.0) + time.process_time() - start

        projection.apply_many = apply_many  # type: ignore[method-assign]
    gc.disable()
    try:
        rebuild(db, projections)
    finally:
        gc.enable()
    return spent


def timed(work: Callable[[], object]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of ``work``, with the garbage collector as the daemon runs
    its backfill (off)."""
    gc.collect()
    gc.disable()
    try:
        cpu, wall = time.process_time(), time.perf_counter()
        work()
        return time.process_time() - cpu, time.perf_counter() - wall
    finally:
        gc.enable()


def backfill(home: Path) -> Path:
    db_path = home / ".local" / "share" / "skillops" / "skillops.db"
    if not db_path.exists():
        if not any(home.iterdir()):
            extract(home)
        subprocess.run(
            [program("skillopsd"), "--once", "--log-level", "warning"],
            env=home_env(home),
            check=True,
        )
    return db_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="Runs of each; the best is kept.")
    parser.add_argument("--home", type=Path, help="Keep (or reuse) the backfilled corpus here.")
    parser.add_argument(
        "--compute-prices",
        action="store_true",
        help="Price every response in the fold (as skillopsctl rebuild does), not ahead.",
    )
    parser.add_argument("--each", action="store_true", help="Also each projection's share.")
    args = parser.parse_args()
    configure("warning")
    with tempfile.TemporaryDirectory() as tmp:
        home: Path = args.home or Path(tmp) / "home"
        home.mkdir(parents=True, exist_ok=True)
        db = Database.open(backfill(home))
        try:
            floors: list[tuple[float, float]] = []
            folds: list[tuple[float, float]] = []
            each: dict[str, list[float]] = {}
            events = read_floor(db)
            if not args.compute_prices:
                price_ahead_as_workers_do(db)
            for _ in range(args.repeat):
                floors.append(timed(lambda: read_floor(db)))
                folds.append(timed(lambda: rebuild(db, derived_projections())))
                if args.each:
                    for name, cpu in instrumented(db).items():
                        each.setdefault(name, []).append(cpu)
        finally:
            db.close()
    floor_cpu, floor_wall = min(c for c, _ in floors), min(w for _, w in floors)
    fold_cpu, fold_wall = min(c for c, _ in folds), min(w for _, w in folds)
    print(f"events folded: {events} (best of {args.repeat}; CPU, wall)")
    print(f"floor: read + decode them from the log:  {floor_cpu:6.3f} s CPU  {floor_wall:6.3f} s")
    print(
        f"fold: rebuild sessions, usage, keys:     {fold_cpu:6.3f} s CPU  {fold_wall:6.3f} s"
        f"   ratio {fold_cpu / floor_cpu:.2f} CPU, {fold_wall / floor_wall:.2f} wall"
    )
    print(f"  the fold beyond the floor:             {fold_cpu - floor_cpu:6.3f} s CPU")
    for name, runs in each.items():
        print(f"  of which {name + '.apply_many:':29s} {min(runs):6.3f} s CPU")


if __name__ == "__main__":
    main()
