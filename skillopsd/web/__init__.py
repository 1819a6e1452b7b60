"""The local dashboard ``skillopsctl serve`` runs: pages rendered on the server from the same
query functions the CLI prints, charts as inline SVG, one small script, no asset from
elsewhere. Read-only on the log except the annotate form, which appends ``AnnotationAdded``
through the CLI's own code path (:mod:`skillopsd.annotating`)."""

from __future__ import annotations

from ..events import Database
from .server import Access, DashboardServer, is_loopback

__all__ = ["Access", "DashboardServer", "is_loopback", "make_server"]


def make_server(db: Database, host: str, port: int, token: str | None = None) -> DashboardServer:
    """A server bound to ``host:port`` (0: a free port), not yet serving."""
    return DashboardServer(host, port, db, token)
