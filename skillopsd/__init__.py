"""skillops: capture coding-agent transcripts and tell whether your skills help."""

from __future__ import annotations

__version__ = "0.1.0"
