"""The captured form of a document an agent rewrites in place, and replaying it.

A transcript that is one JSON document rewritten whole on every message (Gemini CLI's legacy
``session-*.json``, Copilot CLI's legacy ``history-session-state/*.json``) is not captured as
its bytes: each pass over it stores only what changed since the last pass, as
``TranscriptLineCaptured`` events whose ``offset`` is an ordinal (0, 1, 2, … per source
generation, the order they were captured in) and whose ``line`` is one of these JSON objects:

- ``{"$meta": {"set": {field: value, …}, "unset": [field, …]}}``: document-level fields
  (everything but the record collections) that are new, changed or gone;
- ``{"$record": {"in": collection, "id": id, "value": {…}}}``: a record seen for the first
  time, or a new version of one (same ``id``, other content: an edit); a new version keeps the
  record's place;
- ``{"$remove": {"in": collection, "ids": [id, …], "rewind": bool}}``: records no longer in
  the document; ``rewind`` is true when they were exactly the collection's tail (the agent
  rewound the conversation), false for a removal elsewhere;
- ``{"$order": {"in": collection, "ids": [id, …]}}``: the collection's order, written only
  when it is no longer the order records were first seen in.

A record's ``id`` is the identity the store gives it (Gemini's message ``id``; ``#<index>``
for records without one; ``<id>#<n>`` for the n-th repeat of an id within one document).
Replaying a source's lines in ordinal order rebuilds the document as last captured.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

META = "$meta"
RECORD = "$record"
REMOVE = "$remove"
ORDER = "$order"
KEYS = frozenset((META, RECORD, REMOVE, ORDER))

_decoder = msgspec.json.Decoder()


class Document(msgspec.Struct):
    """A document rebuilt from its captured lines: fields, and each collection's records."""

    meta: dict[str, Any] = {}
    collections: dict[str, dict[str, Any]] = {}  # collection -> id -> record, in order
    removed: list[tuple[str, list[str], bool]] = []  # (collection, ids, rewind), as captured


def is_document_line(record: object) -> bool:
    """Whether a decoded captured line is one of this module's document lines."""
    return isinstance(record, dict) and len(record) == 1 and next(iter(record)) in KEYS


def apply(doc: Document, record: dict[str, Any]) -> bool:
    """Apply one decoded document line to ``doc``; False if it is not a well-formed one."""
    if not is_document_line(record):
        return False
    key, body = next(iter(record.items()))
    if not isinstance(body, dict):
        return False
    if key == META:
        set_ = body.get("set") or {}
        unset = body.get("unset") or []
        if not isinstance(set_, dict) or not isinstance(unset, list):
            return False
        doc.meta.update(set_)
        for name in unset:
            doc.meta.pop(name, None)
        return True
    where = body.get("in")
    if not isinstance(where, str):
        return False
    records = doc.collections.setdefault(where, {})
    if key == RECORD:
        ident = body.get("id")
        if not isinstance(ident, str):
            return False
        records[ident] = body.get("value")  # a new version keeps its place
        return True
    ids = body.get("ids")
    if not isinstance(ids, list):
        return False
    if key == REMOVE:
        for ident in ids:
            records.pop(ident, None)
        doc.removed.append(
            (where, [i for i in ids if isinstance(i, str)], bool(body.get("rewind")))
        )
        return True
    # ORDER: the ids named first, in that order; any other record after them, as it was.
    ordered = {i: records[i] for i in ids if isinstance(i, str) and i in records}
    ordered.update((i, v) for i, v in records.items() if i not in ordered)
    doc.collections[where] = ordered
    return True


def replay(lines: Iterable[bytes]) -> Document:
    """The document as last captured, from its captured lines in ordinal order."""
    doc = Document(meta={}, collections={}, removed=[])
    for line in lines:
        try:
            record = _decoder.decode(line)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            continue
        if isinstance(record, dict):
            apply(doc, record)
    return doc


__all__ = ["META", "ORDER", "RECORD", "REMOVE", "Document", "apply", "is_document_line", "replay"]
