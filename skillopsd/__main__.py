"""``python -m skillopsd`` runs the daemon."""

from __future__ import annotations

from .daemon import main

main(prog_name="skillopsd")
