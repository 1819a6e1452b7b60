"""docs/cli.md, generated from the commands' ``--help`` (``python -m skillopsd.cli._docs``)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..daemon import main as daemon_main
from . import cli
from ._app import HELP_WIDTH, load_commands


def _walk(command: click.Command, path: list[str]) -> list[tuple[list[str], click.Command]]:
    out = [(path, command)]
    if isinstance(command, click.Group):
        for name in sorted(command.commands):
            out.extend(_walk(command.commands[name], [*path, name]))
    return out


def render() -> str:
    """Markdown of every command's help text, top-level first."""
    load_commands()
    parts = [
        "# Command reference\n",
        "Generated from `--help` by `python -m skillopsd.cli._docs`; do not edit by hand.\n",
    ]
    for program, root in (("skillopsd", daemon_main), ("skillopsctl", cli)):
        for path, command in _walk(root, [program]):
            name = " ".join(path)
            ctx = click.Context(
                command,
                info_name=name,
                # What --help prints on a terminal of HELP_WIDTH columns (click keeps two free).
                terminal_width=HELP_WIDTH - 2,
                max_content_width=HELP_WIDTH,
                help_option_names=["-h", "--help"],
            )
            parts.append(f"## {name}\n\n```\n{command.get_help(ctx).rstrip()}\n```\n")
    return "\n".join(parts)


def main() -> None:
    target = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
    target.parent.mkdir(exist_ok=True)
    target.write_text(render())
    sys.stdout.write(f"wrote {target}\n")


if __name__ == "__main__":
    main()
