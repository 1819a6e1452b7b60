"""How many events of each type each stream holds: a summary of what the log contains."""

from __future__ import annotations

import apsw

from ..events import RecordedEvent
from ._engine import Projection


class EventCounts(Projection):
    """Counts and position span of events per (stream, type)."""

    name = "event_counts"
    version = 1
    tables = ("p_event_counts",)
    needs_payload = False

    def create(self, conn: apsw.Connection) -> None:
        conn.execute(
            "CREATE TABLE p_event_counts ("
            " stream TEXT NOT NULL, type TEXT NOT NULL, events INTEGER NOT NULL,"
            " first_position INTEGER NOT NULL, last_position INTEGER NOT NULL,"
            " PRIMARY KEY (stream, type)) WITHOUT ROWID"
        )

    def apply(self, conn: apsw.Connection, event: RecordedEvent) -> None:
        self.apply_many(conn, [event])

    def fold_range(self, conn: apsw.Connection, after: int, upto: int) -> int:
        """apply_many over the range, in SQL: a backfill's tens of thousands of envelopes
        are never read out into Python."""
        rows = [
            (str(stream), str(type_name), int(n), int(first), int(last))
            for stream, type_name, n, first, last in conn.execute(
                "SELECT stream, type, count(*), min(position), max(position) FROM events"
                " WHERE position > ? AND position <= ? GROUP BY stream, type",
                (after, upto),
            )
        ]
        self._add(conn, rows)
        return sum(r[2] for r in rows)

    def apply_many(self, conn: apsw.Connection, events: list[RecordedEvent]) -> None:
        # Events arrive in position order, so per key the first seen is the smallest.
        counts: dict[tuple[str, str], list[int]] = {}
        for event in events:
            key = (event.stream, event.type)
            entry = counts.get(key)
            if entry is None:
                counts[key] = [1, event.position, event.position]
            else:
                entry[0] += 1
                entry[2] = event.position
        self._add(conn, [(s, t, n, first, last) for (s, t), (n, first, last) in counts.items()])

    @staticmethod
    def _add(conn: apsw.Connection, rows: list[tuple[str, str, int, int, int]]) -> None:
        conn.executemany(
            "INSERT INTO p_event_counts VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT(stream, type) DO UPDATE SET events = events + excluded.events,"
            " last_position = excluded.last_position",
            rows,
        )
