"""Where transcript lines come from: agent stores, discovery, tailing and redaction."""

from __future__ import annotations

from .._redact import redact
from ._access import Unreachable, broken_link, capture_problem, folder_problem, real_path
from ._capture import (
    DEFAULT_MAX_LINE_BYTES,
    MAX_LINE_LIMIT,
    Capturer,
    FileResult,
    SourceRow,
    peek_session,
    source_stream,
)
from ._registry import STORES, Root, resolve_roots
from ._scan import (
    ScanResult,
    capture_all,
    discover,
    discover_under,
    expand_paths,
    full_pass,
    sniff_store,
    store_for,
)
from ._store import SessionRef, Store, path_text, text_path

__all__ = [
    "DEFAULT_MAX_LINE_BYTES",
    "MAX_LINE_LIMIT",
    "STORES",
    "Capturer",
    "FileResult",
    "Root",
    "ScanResult",
    "SessionRef",
    "SourceRow",
    "Store",
    "Unreachable",
    "broken_link",
    "capture_all",
    "capture_problem",
    "discover",
    "discover_under",
    "expand_paths",
    "folder_problem",
    "full_pass",
    "path_text",
    "peek_session",
    "real_path",
    "redact",
    "resolve_roots",
    "sniff_store",
    "source_stream",
    "store_for",
    "text_path",
]
