"""``--since`` values: a span of time back from now (``7d``, ``12h``, ``30m``) or an ISO time."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import click

_RELATIVE = re.compile(r"\A(\d+)\s*([smhdw])\Z")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class Since(click.ParamType):
    """A lower time bound, as the ISO 8601 UTC text the projections store."""

    name = "7d|ISO"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> str:
        text = str(value).strip()
        match = _RELATIVE.match(text)
        if match:
            delta = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
            moment = datetime.now(UTC) - delta
        else:
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                self.fail(
                    f"{text!r} is neither a duration like 7d / 12h / 30m nor an ISO time",
                    param,
                    ctx,
                )
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


SINCE = Since()
