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

    def create(self, conn: apsw.Connection) -> None:
        conn.execute(
            "CREATE TABLE p_event_counts ("
            " stream TEXT NOT NULL, type TEXT NOT NULL, events INTEGER NOT NULL,"
            " first_position INTEGER NOT NULL, last_position INTEGER NOT NULL,"
            " PRIMARY KEY (stream, type)) WITHOUT ROWID"
        )

    def apply(self, conn: apsw.Connection, event: RecordedEvent) -> None:
        conn.execute(
            "INSERT INTO p_event_counts VALUES (?, ?, 1, ?, ?)"
            " ON CONFLICT(stream, type) DO UPDATE SET events = events + 1,"
            " last_position = excluded.last_position",
            (event.stream, event.type, event.position, event.position),
        )
