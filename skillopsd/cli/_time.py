"""Times on the command line: ``--since``/``--until`` bounds in, local (or UTC) times out."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

# Units are read case-insensitively (click shows a metavar upper-cased, and people type what
# they see), except a bare ``M``: it reads as months to many, and months are not a fixed span.
_RELATIVE = re.compile(r"\A(\d+)\s*([a-z]+)\Z", re.IGNORECASE)
_UNITS = {
    "s": "seconds",
    "sec": "seconds",
    "secs": "seconds",
    "second": "seconds",
    "seconds": "seconds",
    "m": "minutes",
    "min": "minutes",
    "mins": "minutes",
    "minute": "minutes",
    "minutes": "minutes",
    "h": "hours",
    "hr": "hours",
    "hrs": "hours",
    "hour": "hours",
    "hours": "hours",
    "d": "days",
    "day": "days",
    "days": "days",
    "w": "weeks",
    "week": "weeks",
    "weeks": "weeks",
}
WHEN_HELP = "7d, 12h, 30m, 2w, or an ISO date/time (local time unless it names a zone)"


def to_stored(moment: datetime) -> str:
    """``moment`` as the ISO 8601 UTC text the projections store (``…T…:…:….mmmZ``)."""
    # isoformat, not strftime: glibc's %Y does not pad years before 1000 to four digits,
    # and the bound is compared as text.
    utc = moment.astimezone(UTC).replace(tzinfo=None)
    return utc.isoformat(timespec="milliseconds") + "Z"


_DAY = re.compile(r"\A\d{4}-?\d{2}-?\d{2}\Z")


class When(click.ParamType):
    """A time bound: a span back from now (``7d``) or an ISO time, as stored UTC text.

    ``day_end``: a bare date is the end of that day, so ``--until 2026-05-18`` takes in the
    18th, as ``usage`` (and ccusage) read it: one meaning of a day in every command.
    """

    name = "when"

    def __init__(self, *, day_end: bool = False) -> None:
        self.day_end = day_end

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> str:
        text = str(value).strip()
        match = _RELATIVE.match(text)
        if match:
            number, unit = match.groups()
            if unit == "M":
                self.fail(f"{text!r} is ambiguous: write {number}min for minutes", param, ctx)
            field = _UNITS.get(unit.lower())
            if field is None:
                self.fail(f"{text!r}: unknown unit {unit!r} (use s, m, h, d or w)", param, ctx)
            try:
                moment = datetime.now(UTC) - timedelta(**{field: int(number)})
            except OverflowError:
                self.fail(f"{text!r} reaches back before year 1", param, ctx)
        else:
            try:
                moment = datetime.fromisoformat(text)
                if self.day_end and _DAY.match(text):
                    moment += timedelta(days=1)
            except (ValueError, OverflowError):
                self.fail(f"{text!r} is neither a span like {WHEN_HELP}", param, ctx)
            if moment.tzinfo is None:
                try:
                    moment = moment.astimezone()  # a naive time is the reader's local time
                except (OverflowError, ValueError, OSError):
                    self.fail(f"{text!r} is out of range", param, ctx)
        try:
            return to_stored(moment)
        except (OverflowError, ValueError):
            self.fail(f"{text!r} is out of range", param, ctx)


WHEN = When()
UNTIL = When(day_end=True)


def window_options(noun: str) -> Callable[[F], F]:
    """``--since WHEN`` and ``--until WHEN``: only ``noun`` started in that window."""

    def decorate(fn: F) -> F:
        fn = click.option(
            "--until",
            type=UNTIL,
            metavar="WHEN",
            default=None,
            help=f"Only {noun} started before this ({WHEN_HELP}; a bare date takes in that day).",
        )(fn)
        return click.option(
            "--since",
            type=WHEN,
            metavar="WHEN",
            default=None,
            help=f"Only {noun} started at or after this ({WHEN_HELP}).",
        )(fn)

    return decorate


def utc_option(fn: F) -> F:
    """``--utc``: print times in UTC instead of the local zone."""
    return click.option("--utc", is_flag=True, help="Show times in UTC (default: local time).")(fn)


def parse_stored(text: str | None) -> datetime | None:
    """A stored ISO time as an aware datetime (None if absent or unreadable)."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def shown(moment: datetime, utc: bool) -> datetime:
    """``moment`` in the zone the reader asked for."""
    return moment.astimezone(UTC) if utc else moment.astimezone()


def zone_label(moments: list[datetime]) -> str:
    """The zone names of shown times, e.g. ``CET/CEST`` when a listing spans a DST change."""
    names = sorted({m.tzname() or m.strftime("%z") for m in moments})
    return "/".join(names)


# Older names, kept for callers written against them.
Since = When
SINCE = WHEN


def stamp(moment: datetime, *, seconds: bool = False) -> str:
    """``2026-07-13 11:13`` (``:05`` with ``seconds``), years padded to four digits."""
    text = f"{moment.year:04d}-{moment:%m-%d %H:%M}"
    return f"{text}:{moment:%S}" if seconds else text


def stamps(values: list[str | None], utc: bool, *, seconds: bool = False) -> tuple[list[str], str]:
    """Stored UTC times as the reader's local time (or UTC), and the zone label for the
    header: the one time-zone rule of every table (``-`` for a missing time)."""
    moments = [parse_stored(v) for v in values]
    local = [shown(m, utc) if m is not None else None for m in moments]
    zone = zone_label([m for m in local if m is not None] or [shown(datetime.now(UTC), utc)])
    return [stamp(m, seconds=seconds) if m is not None else "-" for m in local], zone
