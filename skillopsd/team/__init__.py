"""Teams: each machine pushes its log to a shared PostgreSQL (see ``sync``)."""

from __future__ import annotations

from .content import Content
from .sync import URL_ENV, SyncError, SyncReport, machine_id, redact_url, sync

__all__ = ["URL_ENV", "Content", "SyncError", "SyncReport", "machine_id", "redact_url", "sync"]
