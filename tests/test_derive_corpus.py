"""Derivation of the whole real corpus is unchanged by work that must not change it.

Every corpus session is captured and derived through :class:`SessionDeriver` (batching,
ids, appends: the whole pipeline), then each session's stored derived events (ids, types,
payloads) are digested and compared with ``tests/data/corpus_derivation.json``, written by
the deriver before speed work touched it. A change that is meant to change derived output
(a deriver fix, with its ``DERIVER_VERSION`` bump) rewrites that file on purpose:

    PYTHONPATH=. python3 -m tests.test_derive_corpus --write

Source ids and paths hold the inode and the temporary directory, so the deriver is shown
each file under its path inside the corpus instead: the digests are the same on every
machine.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import msgspec
import pytest

from skillopsd import _logging
from skillopsd.derive import Derivation, SourceLines, derive_session
from skillopsd.deriving import SessionDeriver
from skillopsd.events import Database, EventLog
from skillopsd.sources import Capturer, full_pass, resolve_roots

from ._capture_helpers import CORPUS, extract_corpus

GOLDEN = Path(__file__).resolve().parent / "data" / "corpus_derivation.json"
_DERIVED = (
    "SpanDerived",
    "DeriveErrorRecorded",
    "SessionDerived",
    "SessionPurged",
    "SkillVersionCreated",
)


def _stable_derive(
    agent: str, native_id: str, sources: list[SourceLines], **kwargs: Any
) -> Derivation:
    """:func:`derive_session` on the files named by their place in the corpus."""
    stable = [
        msgspec.structs.replace(s, source_id=_inside(s.path), path=_inside(s.path)) for s in sources
    ]
    return derive_session(agent, native_id, stable, **kwargs)


def _inside(path: str) -> str:
    """``path`` from the agent's folder on (``.claude/…``, ``.codex/…``)."""
    parts = Path(path).parts
    start = next(i for i, p in enumerate(parts) if p in (".claude", ".codex"))
    return "/".join(parts[start:])


def corpus_digests(workdir: Path, workers: int | None = None) -> dict[str, str]:
    """Stream (a session id, or ``skill:…``) -> sha256 over its derived events, in stream
    order, after a full derive."""
    home = extract_corpus(workdir / "home")
    db = Database.open(workdir / "corpus.db")
    try:
        full_pass(Capturer(db), resolve_roots(env={}, home=home))
        deriver = SessionDeriver(db, derive=_stable_derive, workers=workers)
        deriver.derive(deriver.all_sessions())
        digests: dict[str, hashlib._Hash] = {}
        with db.read():
            for event in EventLog(db).read(types=_DERIVED):
                h = digests.setdefault(event.stream.removeprefix("session:"), hashlib.sha256())
                payload = msgspec.json.encode(event.payload)
                # Derived events have content ids; skill versions are identified by their hash.
                derived = event.stream.startswith("session:")
                event_id = event.event_id if derived else ""
                h.update(f"{event_id}\x1f{event.type}\x1f{len(payload)}\x1f".encode())
                h.update(payload)
        return {sid: h.hexdigest() for sid, h in sorted(digests.items())}
    finally:
        db.close()


@pytest.mark.skipif(not CORPUS.exists(), reason="the real corpus is not available")
def test_corpus_derivation_is_unchanged(tmp_path: Path) -> None:
    expected = json.loads(GOLDEN.read_text())
    # Two worker processes, as the daemon derives on an idle machine; the golden file was
    # derived in one process: pooled derivation must not change a byte.
    actual = corpus_digests(tmp_path, workers=2)
    assert set(actual) == set(expected)
    changed = sorted(sid for sid in expected if actual[sid] != expected[sid])
    assert not changed, f"{len(changed)} sessions derive differently, e.g. {changed[:3]}"


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python3 -m tests.test_derive_corpus --write")
    _logging.configure("warning")
    with tempfile.TemporaryDirectory() as tmp:
        # Derived here, in this process: the test derives with workers, as the daemon does.
        GOLDEN.write_text(json.dumps(corpus_digests(Path(tmp), workers=1), indent=1) + "\n")
    print(f"wrote {GOLDEN}")
