"""``skillopsctl``: the command-line interface to the skillops event log.

Commands live in their own modules, imported when the command runs (``_app.LazyGroup``).
"""

from __future__ import annotations

from ._app import cli
from ._output import fit_encoding


def main() -> None:
    """Console-script entry point."""
    fit_encoding()
    cli(prog_name="skillopsctl")


__all__ = ["cli", "main"]
