"""Deterministic ids: the same records always give the same trace and span ids."""

from __future__ import annotations

import hashlib


def session_id(agent: str, native_id: str) -> str:
    """Our id for a session: stable, short, and the same on every machine."""
    return hashlib.sha256(f"session\x1f{agent}\x1f{native_id}".encode()).hexdigest()[:16]


def trace_id(session: str) -> str:
    """The OpenTelemetry-sized (16-byte) trace id of a session."""
    return hashlib.sha256(f"trace\x1f{session}".encode()).hexdigest()[:32]


def span_id(session: str, kind: str, key: str) -> str:
    """An 8-byte span id from what identifies the span within its session."""
    return hashlib.sha256(f"span\x1f{session}\x1f{kind}\x1f{key}".encode()).hexdigest()[:16]
