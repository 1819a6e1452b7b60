"""structlog set-up shared by the daemon and the CLI: JSON lines off a TTY, console on one.

structlog imports asyncio (~60 ms): a CLI command that never logs must not pay for it, so
modules take their logger from :func:`get_logger`, which imports structlog on first use, and
:func:`configure` takes effect then (at once if structlog is already imported).
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from collections.abc import MutableMapping, Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any, TextIO

from ._terminal import safe

LEVELS = ("debug", "info", "warning", "error")

# The configuration asked for and not yet given to structlog (it was not imported then).
_pending: tuple[str, TextIO | None] | None = None
# The configured level's rank in LEVELS: calls below it need not import structlog at all.
_threshold: int | None = None


def configure(level: str = "warning", *, stream: TextIO | None = None) -> None:
    """Send structured logs at ``level`` and above to ``stream`` (stderr by default)."""
    global _pending, _threshold
    _pending = (level, stream)
    _threshold = LEVELS.index(level) if level in LEVELS else None
    if "structlog" in sys.modules:
        _apply()
    elif not any(isinstance(f, _ConfigureOnImport) for f in sys.meta_path):
        # A module may still import structlog itself and log: configure it as it loads.
        sys.meta_path.insert(0, _ConfigureOnImport())


class _ConfigureOnImport(importlib.abc.MetaPathFinder):
    """Finds structlog as the other finders do, and configures it once it has loaded."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname != "structlog":
            return None
        sys.meta_path.remove(self)  # once, and not in its own way below
        spec = importlib.util.find_spec(fullname)
        loader = spec.loader if spec is not None else None
        if loader is not None:
            load = loader.exec_module

            def exec_module(module: ModuleType) -> None:
                load(module)
                _apply()  # the module is in sys.modules (the import system put it there)

            loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def _apply() -> None:
    """Give structlog the configuration last asked for, if any is waiting."""
    global _pending
    if _pending is None:
        return
    import logging

    import structlog

    level, stream = _pending
    _pending = None
    out = stream or sys.stderr
    renderer: list[structlog.typing.Processor]
    if out.isatty():
        # A logged path or message is shown on the terminal, never obeyed by it; JSON lines
        # escape control characters themselves.
        renderer = [_inert, structlog.dev.ConsoleRenderer(colors=True)]
    else:
        renderer = [structlog.processors.JSONRenderer()]
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            *renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )


def _inert(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> dict[str, Any]:
    """The event's text values made safe for the terminal (the console renderer prints a
    string as it is; anything else by its repr, which escapes control characters)."""
    return {k: safe(v) if isinstance(v, str) else v for k, v in event.items()}


class LazyLogger:
    """A structlog logger that imports (and configures) structlog when first used."""

    __slots__ = ("_logger", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._logger: Any = None

    def __getattr__(self, attribute: str) -> Any:
        if self._logger is None:
            if (
                _threshold is not None
                and attribute in LEVELS
                and LEVELS.index(attribute) < _threshold
            ):
                return _ignore
            import structlog

            _apply()
            self._logger = structlog.get_logger(self._name)
        return getattr(self._logger, attribute)


def _ignore(*_args: Any, **_kwargs: Any) -> None:
    """A log call below the configured level, before structlog was needed."""


def get_logger(name: str) -> LazyLogger:
    """The logger of module ``name``; structlog is imported when it first logs."""
    return LazyLogger(name)


def verbosity_level(verbose: int, level: str | None) -> str:
    """The level from ``--log-level`` or from the count of ``-v`` flags."""
    if level:
        return level
    return {0: "warning", 1: "info"}.get(verbose, "debug")
