"""A child process for the concurrency and crash tests: appends events to a log."""

from __future__ import annotations

import random
import sys
import time

from skillopsd.events import Database, EventLog, NewEvent
from skillopsd.events.types import PolicySet


def main() -> None:
    mode, path, name = sys.argv[1], sys.argv[2], sys.argv[3]
    log = EventLog(Database.open(path))
    if mode == "loop":
        seconds, batch = float(sys.argv[4]), int(sys.argv[5])
        deadline = time.monotonic() + seconds
        n = 0
        while time.monotonic() < deadline:
            events = [
                NewEvent(
                    f"writer:{name}", PolicySet(name=name, values={"n": n + i}), f"{name}-{n + i}"
                )
                for i in range(batch)
            ]
            log.append(events)
            n += batch
        print(n, flush=True)
    elif mode == "big":
        count = int(sys.argv[4])
        # Incompressible padding: payloads are stored compressed, and the batch must spill
        # megabytes into the WAL before it commits.
        noise = random.Random(count)
        events = [
            NewEvent(
                "big", PolicySet(name=noise.randbytes(1000).hex(), values={"n": i}), f"big-{i}"
            )
            for i in range(count)
        ]
        print("start", flush=True)
        log.append(events)
        print("done", flush=True)


if __name__ == "__main__":
    main()
