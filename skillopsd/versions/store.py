"""The version store's commands: each reads the skill's state from the log, decides, and
appends to the ``skill:<name>`` stream stating the version it read.

A concurrent writer (the daemon and a CLI command, two CLI commands) makes the append fail
with :class:`ConcurrencyError`; the command then reads the stream again and decides anew, so
tags stay max+1 and no decision rests on a state that has already moved on.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import yaml

from .._redact import masked_lines, redact_text
from ..derive._skills import normalize_skill_body, skill_content_hash
from ..events import RARE_TYPES, ConcurrencyError, Database, EventLog, NewEvent, content_id
from ..events.types import (
    Event,
    SkillChallengerStarted,
    SkillExecutionRecorded,
    SkillLiveRemoved,
    SkillManaged,
    SkillPromoted,
    SkillRolledBack,
    SkillStrategySet,
    SkillUnmanaged,
    SkillVersionCreated,
)
from .observed import skill_stream, version_event_id
from .state import STRATEGIES, SkillState, Version, fold, invalid_execution

_RETRIES = 50
SKILL_FILE = "SKILL.md"


class StoreError(Exception):
    """A command that cannot be done: ``code`` 1 for an unknown skill or version, 2 for usage."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def read_state(db: Database, skill: str) -> SkillState:
    """The skill's state as its stream says now."""
    with db.read():
        return fold(skill, EventLog(db).read_stream(skill_stream(skill)))


def managed_skills(db: Database, *, ever: bool = False) -> list[str]:
    """Every skill the store manages now (``ever``: also those handed back since), by name."""
    with db.read() as conn:
        # SQLite takes the bare ``type`` from the row max(position) picked: the newest of the
        # two says whether the skill is managed now. The RARE_TYPES term lets it use the index.
        rows = conn.execute(
            "SELECT stream, type, max(position) FROM events"
            f" WHERE type IN ('SkillManaged', 'SkillUnmanaged') AND {RARE_TYPES}"
            " GROUP BY stream ORDER BY stream"
        )
        return [
            stream.removeprefix("skill:")
            for stream, kind, _ in rows
            if ever or kind == "SkillManaged"
        ]


def managed_state(db: Database, skill: str) -> SkillState:
    """The state of a managed skill; :class:`StoreError` (1) when it is not managed."""
    state = read_state(db, skill)
    if not state.managed:
        raise StoreError(
            f"skill {skill!r} is not managed (skillopsctl skill import {skill} --from DIR)", 1
        )
    return state


Build = Callable[[SkillState], list[NewEvent]]


def append_checked(db: Database, skill: str, build: Build) -> tuple[SkillState, int]:
    """Append what ``build`` makes of the current state; re-read and rebuild on a race.

    Returns the state it built on and how many events were appended.
    """
    log = EventLog(db)
    stream = skill_stream(skill)
    for _ in range(_RETRIES):
        state = read_state(db, skill)
        events = build(state)
        if not events:
            return state, 0
        try:
            result = log.append(events, expected_versions={stream: state.stream_version})
        except ConcurrencyError:
            continue
        return state, len(result.positions)
    raise ConcurrencyError(stream, -1, -1)


def new(skill: str, event: Event, event_id: str | None = None) -> NewEvent:
    """An event for the skill's stream."""
    return NewEvent(skill_stream(skill), event, event_id)


def skill_file(path: Path) -> tuple[Path, str]:
    """(the SKILL.md, its text) of a skill folder or a SKILL.md path; usage error otherwise."""
    target = path.expanduser()
    if target.is_dir():
        target = target / SKILL_FILE
    try:
        text = target.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StoreError(f"{target}: no such file (a skill folder holds {SKILL_FILE})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StoreError(f"{target}: cannot read: {exc}") from None
    if not text.strip():
        raise StoreError(f"{target}: empty skill file")
    return target.resolve(), text


def version_event(
    state: SkillState,
    text: str,
    *,
    source: str,
    author: str = "human",
    confidence: int | None = None,
    directory: str | None = None,
    origin: str = "",
) -> tuple[str, NewEvent | None]:
    """(hash, the ``SkillVersionCreated`` to append, or None when the body is known)."""
    digest = skill_content_hash(text)
    if digest in state.versions:
        return digest, None
    event = SkillVersionCreated(
        skill=state.skill,
        version_hash=digest,
        tag=state.next_tag(),
        body=normalize_skill_body(text),
        parent_hash=state.champion,
        author="machine" if author == "machine" else "human",
        origin=origin,
        source="edited" if source == "edited" else "imported",
        directory=directory,
        file_text=redact_text(text.replace("\r\n", "\n")),
        confidence=confidence,
    )
    return digest, new(state.skill, event, version_event_id(state.skill, digest))


def _unmasked(path: Path, text: str, verb: str) -> None:
    """Refuse a skill file that holds a secret: the store keeps skills masked (as capture
    does) and writes the stored text to the live files, so managing it would replace the
    secret with ``[REDACTED:…]`` in the user's own files."""
    found = masked_lines(text)
    if found:
        lines = ", ".join(f"line {n} ({kind})" for n, kind in found[:3])
        more = f" and {len(found) - 3} more" if len(found) > 3 else ""
        raise StoreError(
            f"{path}: {lines}{more} would be stored masked, and skillops writes what it stores"
            f" to the live files: move the secret out of the skill (an environment variable)"
            f" and {verb} again"
        )


_FRONTMATTER = re.compile(r"\A\ufeff?---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.S)


def frontmatter_name(text: str) -> str | None:
    """The ``name:`` of a SKILL.md's YAML frontmatter (None when it has none)."""
    match = _FRONTMATTER.match(text)
    if match is None:
        return None
    try:
        data = yaml.safe_load(match.group(1))
    except (yaml.YAMLError, RecursionError):  # nested too deep is no frontmatter either
        return None
    name = data.get("name") if isinstance(data, dict) else None
    return name.strip() if isinstance(name, str) and name.strip() else None


def names_of(path: Path, text: str) -> list[str]:
    """The names an agent loads a SKILL.md by: its frontmatter ``name:``, its folder's name."""
    found = [frontmatter_name(text), path.parent.name]
    return list(dict.fromkeys(n for n in found if n))


def _owned(db: Database, skill: str, paths: list[str]) -> None:
    """Refuse live paths another managed skill writes: two skills would fight over a file."""
    for other in managed_skills(db):
        if other == skill:
            continue
        taken = sorted(set(paths) & set(read_state(db, other).live_paths))
        if taken:
            raise StoreError(
                f"{taken[0]} is a live path of managed skill {other!r}: two managed skills"
                f" would overwrite each other (skillopsctl skill remove-live {other} PATH,"
                f" or skill unmanage {other})"
            )


def _parents(paths: list[str]) -> None:
    """A live path goes where an agent looks: the skill folder may be new (it is created),
    but the folder it goes in must exist, so a mistyped project path is refused."""
    for path in paths:
        folder = Path(path).parent
        if not folder.parent.is_dir():
            raise StoreError(
                f"{path}: folder {folder.parent} does not exist (check the path; agents load"
                " skills from an existing folder such as PROJECT/.claude/skills)"
            )


def import_skill(
    db: Database,
    skill: str,
    source: Path,
    live: list[Path],
    author: str,
    *,
    check_name: bool = True,
) -> SkillState:
    """Manage ``skill`` from an agent's skill folder: its body becomes (or matches) the champion.

    The name must be one the agents load the file by (its frontmatter ``name:`` or folder)
    unless ``check_name`` is off: sessions record the name they loaded, so a managed skill
    named otherwise would never see one.
    """
    path, text = skill_file(source)
    _unmasked(path, text, "import")
    names = names_of(path, text)
    if check_name and skill not in names:
        raise StoreError(
            f"{path}: agents load this skill as {' or '.join(repr(n) for n in names)}, not"
            f" {skill!r} (skill import {names[0]} --from {source}; or --name {skill} to manage"
            " it under that name anyway)"
        )
    paths = sorted({str(path), *(str(_live_file(p)) for p in live)})
    _parents(paths)
    _owned(db, skill, paths)

    def build(state: SkillState) -> list[NewEvent]:
        if state.managed:
            raise StoreError(
                f"skill {skill!r} is already managed (add live files with skill add-live)"
            )
        digest, created = version_event(
            state, text, source="imported", directory=str(path.parent), origin=str(path)
        )
        managed = SkillManaged(
            skill=skill,
            champion_hash=digest,
            live_paths=paths,
            imported_from=str(path),
            author=author,
            file_text=redact_text(text.replace("\r\n", "\n")),
        )
        return [*([created] if created else []), new(skill, managed)]

    append_checked(db, skill, build)
    return read_state(db, skill)


def _live_file(path: Path) -> Path:
    """A live path as given (folder or SKILL.md) -> the SKILL.md, absolute."""
    target = path.expanduser()
    if target.suffix.lower() != ".md":
        target = target / SKILL_FILE
    return target.absolute()


def add_live(db: Database, skill: str, live: list[Path], author: str) -> SkillState:
    """More files that agents load this skill from."""
    paths = sorted(str(_live_file(p)) for p in live)
    _parents(paths)
    _owned(db, skill, paths)

    def build(state: SkillState) -> list[NewEvent]:
        if not state.managed or state.champion is None:
            raise StoreError(f"skill {skill!r} is not managed", 1)
        if set(paths) <= set(state.live_paths):
            return []
        event = SkillManaged(
            skill=skill, champion_hash=state.champion, live_paths=paths, author=author
        )
        return [new(skill, event)]

    append_checked(db, skill, build)
    return read_state(db, skill)


def held_by(state: SkillState, path: str) -> str:
    """Which version the live file at ``path`` holds now: ``v3``, or why none."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return "missing"
    except (OSError, UnicodeDecodeError) as exc:
        return f"unreadable ({type(exc).__name__})"
    if not text.strip():
        return "empty"
    digest = skill_content_hash(text)
    if digest not in state.versions:
        return "a hand edit not yet recorded"
    return state.tag_of(digest) or "?"


def remove_live(db: Database, skill: str, live: list[Path], author: str) -> SkillState:
    """Files agents no longer load ``skill`` from: never written again, left as they are."""
    paths = sorted(str(_live_file(p)) for p in live)

    def build(state: SkillState) -> list[NewEvent]:
        if not state.managed:
            raise StoreError(f"skill {skill!r} is not managed", 1)
        unknown = [p for p in paths if p not in state.live_paths]
        if unknown:
            held = ", ".join(state.live_paths) or "none"
            raise StoreError(f"{unknown[0]} is not a live path of {skill} (live paths: {held})")
        if len(paths) == len(state.live_paths):
            raise StoreError(
                f"that would leave {skill} no live path: skill unmanage {skill} hands it back"
            )
        return [new(skill, SkillLiveRemoved(skill=skill, live_paths=paths, author=author))]

    append_checked(db, skill, build)
    return read_state(db, skill)


def unmanage(db: Database, skill: str, author: str, reason: str = "") -> SkillState:
    """Hand ``skill`` back: its test ends, nothing is routed or written; history stays."""

    def build(state: SkillState) -> list[NewEvent]:
        if not state.managed:
            raise StoreError(f"skill {skill!r} is not managed", 1)
        return [new(skill, SkillUnmanaged(skill=skill, author=author, reason=reason))]

    append_checked(db, skill, build)
    return read_state(db, skill)


def experiment_id(state: SkillState, challenger: str) -> str:
    """A new experiment's id: fixed by what it tests and where in the stream it starts."""
    return content_id(
        "experiment", state.skill, state.champion or "", challenger, state.stream_version
    )[:16]


def add_challenger(
    db: Database, skill: str, file: Path, author: str, confidence: int | None
) -> Version:
    """Start testing ``file``'s body against the champion."""
    path, text = skill_file(file)
    _unmasked(path, text, "add it")

    def build(state: SkillState) -> list[NewEvent]:
        if not state.managed or state.champion is None:
            raise StoreError(f"skill {skill!r} is not managed (skill import first)", 1)
        if state.challenger is not None:
            raise StoreError(
                f"skill {skill!r} already tests challenger {state.tag_of(state.challenger)}:"
                " wait for its decision, or skill rollback"
            )
        digest, created = version_event(
            state,
            text,
            source="imported",
            author=author,
            confidence=confidence,
            directory=str(path.parent),
            origin=str(path),
        )
        if digest == state.champion:
            raise StoreError(f"{path}: that body is the champion {state.tag_of(digest)} already")
        started = SkillChallengerStarted(
            skill=skill,
            version_hash=digest,
            champion_hash=state.champion,
            test_id=experiment_id(state, digest),
            file_text=redact_text(text.replace("\r\n", "\n")),
        )
        return [*([created] if created else []), new(skill, started)]

    append_checked(db, skill, build)
    state = read_state(db, skill)
    assert state.challenger is not None
    return state.versions[state.challenger]


def resolve(state: SkillState, ref: str) -> Version:
    """A version of the state by ``vN`` or hash; :class:`StoreError` (1) when unknown."""
    found = state.resolve(ref)
    if found is None:
        raise StoreError(f"unknown version {ref!r} of skill {state.skill!r}", 1)
    return found


def record_manual(
    db: Database,
    skill: str,
    ref: str,
    outcome: str,
    tokens: int | None,
    duration_ms: int | None,
    record_id: str,
    cost_usd: float | None = None,
) -> tuple[Version, bool]:
    """One execution reported by hand (an agent we cannot trace): (its version, whether it
    was new). The same ``record_id`` again records nothing: a retried command counts once."""
    chosen: list[Version] = []
    if outcome not in ("success", "failure"):
        raise StoreError(f"outcome {outcome!r}: say success or failure")
    if not record_id or not record_id.strip():
        raise StoreError("--id must not be empty")

    def build(state: SkillState) -> list[NewEvent]:
        if not state.managed:
            raise StoreError(f"skill {skill!r} is not managed", 1)
        version = resolve(state, ref)
        chosen[:] = [version]
        event = SkillExecutionRecorded(
            skill=skill,
            version_hash=version.content_hash,
            session_id="",
            outcome="success" if outcome == "success" else "failure",
            tokens=tokens,
            duration_ms=duration_ms,
            source="manual",
            signal=outcome,
            execution_id=f"manual:{record_id}",
            cost_usd=cost_usd,
        )
        problem = invalid_execution(event)
        if problem is not None:
            raise StoreError(f"{problem}; nothing recorded")
        if f"manual:{record_id}" in state.executions:
            return []
        return [new(skill, event, content_id("SkillExecutionRecorded", skill, record_id))]

    _state, appended = append_checked(db, skill, build)
    return chosen[0], bool(appended)


def rollback(
    db: Database,
    skill: str,
    ref: str,
    author: str,
    *,
    reason: str | None = None,
    force: bool = False,
) -> Version:
    """Make a former champion the champion again (ends a running test).

    Only a version that has been champion before may come back without evidence: anything
    else (a challenger that never won, an observed body) goes through the gate with
    ``promote``, or is forced with a reason that stays in the lineage forever.
    """
    chosen: list[Version] = []

    def build(state: SkillState) -> list[NewEvent]:
        if not state.managed or state.champion is None:
            raise StoreError(f"skill {skill!r} is not managed", 1)
        version = resolve(state, ref)
        chosen[:] = [version]
        if version.content_hash == state.champion and state.challenger is None:
            return []
        former = version.content_hash in state.champions
        if not former and not (force and reason):
            raise StoreError(
                f"v{version.tag} of {skill} was never champion: promote it through the gate"
                f" (skillopsctl promote {skill} --to v{version.tag}), or roll back with"
                " --force-no-eval --reason TEXT"
            )
        said = (
            f"rollback to v{version.tag} (a former champion)"
            if former
            else f"forced without eval: rollback to v{version.tag}"
        )
        event = SkillRolledBack(
            skill=skill,
            from_hash=state.champion,
            to_hash=version.content_hash,
            reason=f"{said}: {reason}" if reason else said,
            author=author,
        )
        return [new(skill, event)]

    append_checked(db, skill, build)
    return chosen[0]


def set_strategy(db: Database, skill: str, strategy: str, author: str) -> None:
    """Route with ``strategy`` from now on."""
    if strategy not in STRATEGIES:
        raise StoreError(f"unknown strategy {strategy!r} (one of {', '.join(STRATEGIES)})")

    def build(state: SkillState) -> list[NewEvent]:
        if not state.managed:
            raise StoreError(f"skill {skill!r} is not managed", 1)
        if state.strategy == strategy:
            return []
        return [new(skill, SkillStrategySet(skill=skill, strategy=strategy, author=author))]

    append_checked(db, skill, build)


def promote_edit(db: Database, skill: str, path: Path, text: str) -> str | None:
    """A live file holding a body no version has: a human edit, imported and made champion."""

    def build(state: SkillState) -> list[NewEvent]:
        digest, created = version_event(
            state, text, source="edited", directory=str(path.parent), origin=str(path)
        )
        if created is None:
            return []  # another process imported it first
        ends = (
            f"; ends the test of {state.tag_of(state.challenger)}"
            if state.challenger is not None
            else ""
        )
        promoted = SkillPromoted(
            skill=skill,
            version_hash=digest,
            previous_hash=state.champion,
            reason=f"edited by hand in {path}: the live file is never overwritten{ends}",
            forced=True,
            author="human edit",
        )
        return [created, new(skill, promoted, content_id("edit-promoted", skill, digest))]

    _state, appended = append_checked(db, skill, build)
    return skill_content_hash(text) if appended else None
