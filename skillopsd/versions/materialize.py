"""Writing a managed skill's folder: ``manifest.json`` + ``SKILL.vN.md``, from the log alone.

The folder is a materialized projection: every byte follows from the folded state, written
atomically, and a file that differs from what the log says (edited, truncated, deleted) is
rewritten, never read back as truth. Rebuilding from nothing gives the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from ._atomic import write_if_changed
from .state import SkillState, Stats

MANIFEST = "manifest.json"


def store_root(db_path: Path) -> Path:
    """``<data dir>/skillops/skills``: beside the database (``$XDG_DATA_HOME/skillops``)."""
    return db_path.parent / "skills"


class ManifestStats(msgspec.Struct, kw_only=True):
    """A version's counts; means only over the runs that reported them (None: none did)."""

    executions: int
    successes: int
    failures: int
    success_rate: float | None
    tokens_total: int
    tokens_reported: int
    tokens_per_run: float | None
    duration_ms_total: int
    duration_reported: int
    duration_ms_per_run: float | None


def manifest_stats(s: Stats) -> ManifestStats:
    """The stats as the manifest shows them."""
    return ManifestStats(
        executions=s.executions,
        successes=s.successes,
        failures=s.failures,
        success_rate=round(s.successes / s.executions, 6) if s.executions else None,
        tokens_total=s.tokens_total,
        tokens_reported=s.tokens_reported,
        tokens_per_run=round(s.tokens_total / s.tokens_reported, 3) if s.tokens_reported else None,
        duration_ms_total=s.duration_ms_total,
        duration_reported=s.duration_reported,
        duration_ms_per_run=round(s.duration_ms_total / s.duration_reported, 3)
        if s.duration_reported
        else None,
    )


class ManifestVersion(msgspec.Struct, kw_only=True):
    """One version in ``manifest.json``."""

    tag: str
    file: str
    content_hash: str
    created_at: str
    author: str
    confidence: int | None
    parent: str | None
    parent_hash: str | None
    source: str
    retired: bool
    # The experiment ``stats`` belong to (None: all time, never tested).
    experiment: str | None
    stats: ManifestStats
    all_time: ManifestStats


class Manifest(msgspec.Struct, kw_only=True):
    """``manifest.json``: the seed's fields, plus hashes and experiments."""

    skill: str
    champion: str | None
    challenger: str | None
    strategy: str
    experiment: str | None
    next: str | None
    live_paths: list[str]
    imported_from: str
    versions: list[ManifestVersion]


def next_pick(state: SkillState) -> str | None:
    """The version the next session gets: the newest routing, when it still applies."""
    if state.routing is not None and state.routing.chosen in (state.champion, state.challenger):
        return state.routing.chosen
    return state.champion


def manifest(state: SkillState) -> Manifest:
    """The manifest the log implies."""
    versions = []
    for v in state.by_tag():
        versions.append(
            ManifestVersion(
                tag=f"v{v.tag}",
                file=f"SKILL.v{v.tag}.md",
                content_hash=v.content_hash,
                created_at=v.created_at,
                author=v.author,
                confidence=v.confidence,
                parent=state.tag_of(v.parent),
                parent_hash=v.parent,
                source=v.source,
                retired=v.retired,
                experiment=v.experiment,
                stats=manifest_stats(state.stats(v.content_hash, v.experiment)),
                all_time=manifest_stats(state.stats(v.content_hash, None)),
            )
        )
    return Manifest(
        skill=state.skill,
        champion=state.tag_of(state.champion),
        challenger=state.tag_of(state.challenger),
        strategy=state.strategy,
        experiment=state.experiment,
        next=state.tag_of(next_pick(state)),
        live_paths=list(state.live_paths),
        imported_from=state.imported_from,
        versions=versions,
    )


def manifest_bytes(state: SkillState) -> bytes:
    """``manifest.json``'s exact bytes (keys in a fixed order, two-space indent, newline)."""
    return msgspec.json.format(msgspec.json.encode(manifest(state)), indent=2) + b"\n"


def materialize(root: Path, state: SkillState) -> list[Path]:
    """Write the skill's folder under ``root`` where it differs from the log; returns paths."""
    folder = root / state.skill
    written = []
    for v in state.by_tag():
        path = folder / f"SKILL.v{v.tag}.md"
        if write_if_changed(path, state.body_file(v.content_hash).encode(), mode=0o600):
            written.append(path)
    # The manifest last: it names files that must already be there.
    path = folder / MANIFEST
    if write_if_changed(path, manifest_bytes(state), mode=0o600):
        written.append(path)
    return written
