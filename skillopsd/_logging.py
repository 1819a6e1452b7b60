"""structlog set-up shared by the daemon and the CLI: JSON lines off a TTY, console on one."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog

LEVELS = ("debug", "info", "warning", "error")


def configure(level: str = "warning", *, stream: TextIO | None = None) -> None:
    """Send structured logs at ``level`` and above to ``stream`` (stderr by default)."""
    out = stream or sys.stderr
    renderer: structlog.typing.Processor
    if out.isatty():
        renderer = structlog.dev.ConsoleRenderer(colors=True)
    else:
        renderer = structlog.processors.JSONRenderer()
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )


def verbosity_level(verbose: int, level: str | None) -> str:
    """The level from ``--log-level`` or from the count of ``-v`` flags."""
    if level:
        return level
    return {0: "warning", 1: "info"}.get(verbose, "debug")
