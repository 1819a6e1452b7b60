"""Typed errors of the event log; callers branch on these, never on message text."""

from __future__ import annotations


class LogError(Exception):
    """Base of every error the event log raises."""


class DatabaseOpenError(LogError):
    """The database cannot be opened as a skillops log (missing dir, foreign file, newer schema)."""


class ConcurrencyError(LogError):
    """An append stated an expected stream version that did not match; nothing was written."""

    def __init__(self, stream: str, expected: int, actual: int) -> None:
        super().__init__(f"stream {stream!r} is at version {actual}, expected {expected}")
        self.stream = stream
        self.expected = expected
        self.actual = actual


class EventDecodeError(LogError):
    """A stored event could not be decoded or upcast to a known type."""


class LogBusyError(LogError):
    """Another writer held the database lock for longer than the busy timeout."""


class EventErasedError(LogError):
    """The payload of this event was erased on request; only its envelope and digest remain."""
