"""``skillopsctl``: the command-line interface to the skillops event log."""

from __future__ import annotations

from . import daemon_unit, ingest, integrity, log, status  # noqa: F401  (registers commands)
from ._app import cli


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="skillopsctl")


__all__ = ["cli", "main"]
