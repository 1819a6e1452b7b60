"""The stores skillops knows, by agent name, and how their roots are resolved."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import msgspec

from ._store import Store
from .claude import ClaudeStore
from .codex import CodexStore
from .copilot import CopilotStore
from .gemini import GeminiStore

# Sniffing asks the stores in this order: Gemini's records and Copilot's legacy documents carry
# a ``sessionId`` too, so their narrower tests come before Claude's.
STORES: dict[str, Store] = {
    s.agent: s for s in (GeminiStore(), CopilotStore(), ClaudeStore(), CodexStore())
}


class Root(msgspec.Struct, frozen=True):
    """One directory (or file) to capture from, and the store that reads it."""

    agent: str
    path: Path


def resolve_roots(
    overrides: Sequence[tuple[str, Path]] = (),
    *,
    env: Mapping[str, str] | None = None,
    home: Path | None = None,
) -> list[Root]:
    """Every store's default roots, replaced per agent by any ``--root agent=PATH`` given."""
    env = os.environ if env is None else env
    home = Path(env.get("HOME") or Path.home()) if home is None else home
    by_agent: dict[str, list[Path]] = {}
    for agent, path in overrides:
        if agent not in STORES:
            raise ValueError(f"unknown agent {agent!r} (known: {', '.join(sorted(STORES))})")
        by_agent.setdefault(agent, []).append(path.expanduser())
    roots = []
    for agent, store in STORES.items():
        for path in by_agent.get(agent) or store.default_roots(env, home):
            roots.append(Root(agent=agent, path=path))
    return roots
