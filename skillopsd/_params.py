"""Command-line number types that refuse what the program cannot use (NaN, infinity, > 64 bits)."""

from __future__ import annotations

import math
from typing import Any

import click

# SQLite binds 64-bit integers; a larger limit or position is a usage error, not a traceback.
INT64_MAX = 2**63 - 1


class CountRange(click.IntRange):
    """A whole number from ``min`` up: help says ``x>=1``, not the 64-bit ceiling SQLite needs."""

    def _describe_range(self) -> str:
        return f"x>={self.min}"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            number = int(str(value).strip()) if not isinstance(value, int) else value
        except ValueError:
            number = None
        if number is not None and number > INT64_MAX:
            self.fail(f"{value} is out of range (at most {INT64_MAX:,}).", param, ctx)
        return super().convert(value, param, ctx)


def count_range(min: int = 1) -> click.IntRange:
    """An integer option from ``min`` to the largest integer SQLite can bind."""
    return CountRange(min=min, max=INT64_MAX)


class FiniteRange(click.FloatRange):
    """A ``FloatRange`` that also refuses ``nan`` and ``inf`` (they pass every comparison test)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number
