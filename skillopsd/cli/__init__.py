"""``skillopsctl``: the command-line interface to the skillops event log."""

from __future__ import annotations

from . import (  # noqa: F401  (registers the commands)
    daemon_unit,
    derivation,
    export,
    forget,
    ingest,
    integrity,
    log,
    policy,
    sessions,
    status,
)
from ._app import cli


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="skillopsctl")


__all__ = ["cli", "main"]
