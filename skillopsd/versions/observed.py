"""Skill versions as they are observed: a body hash not seen before for a skill becomes a
``SkillVersionCreated`` with the next tag.

Tags are max+1 per skill and never change. Two processes deriving at once must not give two
bodies the same tag, so each creation appends to the skill's stream stating the version it
read, and on a :class:`ConcurrencyError` reads the stream again and retries. The event id is
the (skill, hash) pair, so the same body observed twice is one version, whoever wins.
"""

from __future__ import annotations

import msgspec

from ..derive import Derivation
from ..events import ConcurrencyError, Database, EventLog, NewEvent, content_id
from ..events.types import SkillVersionCreated

_RETRIES = 50


def skill_stream(skill: str) -> str:
    """The log stream of one skill's versions, promotions and gate decisions."""
    return f"skill:{skill}"


def version_event_id(skill: str, version_hash: str) -> str:
    """The id of the one ``SkillVersionCreated`` a (skill, body hash) pair can have."""
    return content_id("SkillVersionCreated", skill, version_hash)


class Observed(msgspec.Struct, frozen=True, order=True):
    """A skill body loaded in a derived session."""

    started_at: str
    session_id: str
    order: int
    skill: str
    version_hash: str
    body: str
    directory: str | None


def observed_in(derivation: Derivation) -> list[Observed]:
    """Every skill body ``derivation``'s session loaded, in span order."""
    session = derivation.session
    out = []
    for n, span in enumerate(derivation.spans):
        if span.kind != "SKILL":
            continue
        name = span.attributes.get("skill.name")
        digest = span.attributes.get("skill.content_hash")
        if not isinstance(name, str) or not isinstance(digest, str):
            continue
        directory = span.attributes.get("skill.directory")
        out.append(
            Observed(
                started_at=session.started_at or "",
                session_id=session.session_id,
                order=n,
                skill=name,
                version_hash=digest,
                body=derivation.bodies.get(digest, ""),
                directory=directory if isinstance(directory, str) else None,
            )
        )
    return out


class _Known(msgspec.Struct):
    stream_version: int
    tags: dict[str, int]


class VersionRecorder:
    """Collects the skill bodies derived sessions loaded and records the new ones."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.log = EventLog(db)
        self._pending: list[Observed] = []

    def observe(self, derivation: Derivation) -> None:
        """Note every skill body ``derivation``'s session loaded."""
        self._pending.extend(observed_in(derivation))

    def note_all(self, seen: list[Observed]) -> None:
        """:meth:`note` of each of ``seen``."""
        self._pending.extend(seen)

    def note(self, seen: Observed) -> None:
        """Note one loaded body; :meth:`record` appends it if its (skill, hash) is new."""
        self._pending.append(seen)

    def _known(self, skill: str) -> _Known:
        known = _Known(0, {})
        with self.db.read():
            for event in self.log.read_stream(skill_stream(skill)):
                known.stream_version = event.stream_version
                if event.type == "SkillVersionCreated":
                    payload = event.payload
                    assert isinstance(payload, SkillVersionCreated)
                    known.tags[payload.version_hash] = payload.tag
        return known

    def record(self) -> int:
        """Append a ``SkillVersionCreated`` for each body first seen; returns how many."""
        pending, self._pending = sorted(self._pending), []
        created = 0
        cache: dict[str, _Known] = {}
        for seen in pending:
            for _ in range(_RETRIES):
                known = cache.get(seen.skill) or self._known(seen.skill)
                cache[seen.skill] = known
                if seen.version_hash in known.tags:
                    break
                tag = max(known.tags.values(), default=0) + 1
                event = SkillVersionCreated(
                    skill=seen.skill,
                    version_hash=seen.version_hash,
                    tag=tag,
                    body=seen.body,
                    source="observed",
                    first_session=seen.session_id,
                    directory=seen.directory,
                    origin=f"session {seen.session_id}",
                )
                stream = skill_stream(seen.skill)
                try:
                    result = self.log.append(
                        [NewEvent(stream, event, version_event_id(seen.skill, seen.version_hash))],
                        expected_versions={stream: known.stream_version},
                    )
                except ConcurrencyError:
                    cache.pop(seen.skill)  # another process wrote: read again, retry
                    continue
                if result.positions:
                    created += 1
                    known.stream_version += 1
                    known.tags[seen.version_hash] = tag
                else:
                    cache.pop(seen.skill)  # already recorded by another process
                break
            else:
                raise ConcurrencyError(skill_stream(seen.skill), -1, -1)
        return created


__all__ = ["Observed", "VersionRecorder", "skill_stream", "version_event_id"]
