"""``skillopsctl``: the command-line interface to the skillops event log."""

from __future__ import annotations

from . import (  # noqa: F401  (registers the commands)
    annotate,
    daemon_unit,
    derivation,
    evals,
    export,
    forget,
    ingest,
    integrity,
    lineage,
    log,
    policy,
    promote,
    sessions,
    skills,
    status,
    versions,
)
from ._app import cli


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="skillopsctl")


__all__ = ["cli", "main"]
