"""Projections: deterministic folds of the log into the tables users query."""

from __future__ import annotations

from ..events import Database
from ._engine import ProgressCallback, Projection, ProjectionEngine, ProjectionState
from .annotations import Annotations
from .copies import SessionKeys
from .event_counts import EventCounts
from .replay_runs import ReplayRuns
from .sessions import Sessions
from .skill_history import SkillHistory
from .usage import Usage


def default_projections() -> list[Projection]:
    """Every projection the product maintains, in the order they are caught up."""
    return [
        EventCounts(),
        Sessions(),
        Annotations(),
        SkillHistory(),
        Usage(),
        ReplayRuns(),
        SessionKeys(),
    ]


def engine_for(db: Database) -> ProjectionEngine:
    """The engine over :func:`default_projections` for ``db``."""
    return ProjectionEngine(db, default_projections())


__all__ = [
    "Annotations",
    "EventCounts",
    "ProgressCallback",
    "Projection",
    "ProjectionEngine",
    "ProjectionState",
    "ReplayRuns",
    "SessionKeys",
    "Sessions",
    "SkillHistory",
    "Usage",
    "default_projections",
    "engine_for",
]
