"""Masking secrets in transcript lines before they are stored.

Patterns run over the raw line bytes. Every mask is plain ASCII with no quote or backslash,
and no pattern matches a quote or a backslash, so a valid JSON line stays valid. Should a
valid line still come out invalid, it is redacted again string by string through a
decode/re-encode, so the guarantee holds whatever the input.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

# Characters that may appear inside a token: none of them ends or escapes a JSON string.
_TOKEN = rb"[A-Za-z0-9_\-]"

# Each pattern starts with a literal, which lets the regex engine skip ahead fast; an
# alternation of them all would not. ``lower`` patterns run over the lowercased line (the
# same length, so spans carry over) to match case-insensitively at the same speed.
_PATTERNS: list[tuple[str, bool, re.Pattern[bytes]]] = [
    (kind, lower, re.compile(pattern))
    for kind, lower, pattern in [
        (
            "private-key",
            True,
            rb"-----begin [a-z0-9 ]{0,40}private key(?: block)?-----"
            rb"(?:[a-z0-9+/=:,.\- ]|\\[nrt])*?"
            rb"-----end [a-z0-9 ]{0,40}private key(?: block)?-----",
        ),
        ("anthropic", False, rb"sk-ant-" + _TOKEN + rb"{20,}"),
        ("openai", False, rb"sk-(?:proj-|svcacct-|admin-)?" + _TOKEN + rb"{20,}"),
        ("github", False, rb"gh[pousr]_[A-Za-z0-9]{30,}"),
        ("github", False, rb"github_pat_[A-Za-z0-9_]{30,}"),
        ("aws", False, rb"(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}"),
        ("slack", False, rb"xox[abposr]-[A-Za-z0-9\-]{10,}"),
        ("slack", False, rb"hooks\.slack\.com/services/[A-Za-z0-9/]{20,}"),
        ("google", False, rb"AIza[0-9A-Za-z_\-]{30,}"),
        ("google", False, rb"ya29\.[0-9A-Za-z_\-]{20,}"),
        ("bearer", True, rb"bearer\s+[a-z0-9\-._~+/]{16,}=*"),
    ]
]
# ``password=…``, ``"api_key": "…"``, ``secret: …``: the name stays, the value is masked.
# A value counts when it is quoted, written ``name=value`` with no spaces (env, URLs,
# flags), or, unquoted after ``:``, looks like a literal (has a digit). This leaves code such
# as ``Password: password`` or ``s.token = token`` alone. Matched on the lowercased line.
_KEY_VALUE = re.compile(
    rb"(?:password|passwd|pwd|secret|token|api[_\-]?key|access[_\-]?key|private[_\-]?key)"
    rb"(?:\\?[\"'])?"
    rb"(?:(?P<eq>=)|\s*[:=]\s*(?P<q>\\?[\"'])|(?P<colon>\s*:\s*))"
    rb"(?P<v>[^\s\"'\\,;&<>{}\[\]()]{4,})"
)
_KEY_TRIGGERS = (b"passw", b"pwd", b"secret", b"token", b"key")
_DIGITS = frozenset(b"0123456789")
_json_decoder = msgspec.json.Decoder()
_json_encoder = msgspec.json.Encoder()


def _spans(data: bytes) -> list[tuple[int, int, bytes]]:
    lowered = data.lower()
    spans: list[tuple[int, int, bytes]] = []
    for kind, lower, pattern in _PATTERNS:
        for m in pattern.finditer(lowered if lower else data):
            spans.append((m.start(), m.end(), b"[REDACTED:" + kind.encode() + b"]"))
    if any(t in lowered for t in _KEY_TRIGGERS):
        for m in _KEY_VALUE.finditer(lowered):
            start, end = m.span("v")
            value = lowered[start:end]
            if value.startswith(b"[redacted") or value.isdigit():
                continue  # already masked, or a count (``token: 123``)
            if m.group("colon") is not None and _DIGITS.isdisjoint(value):
                continue
            spans.append((start, end, b"[REDACTED]"))
    return spans


def _redact_bytes(data: bytes) -> tuple[bytes, int]:
    spans = _spans(data)
    if not spans:
        return data, 0
    spans.sort()
    out: list[bytes] = []
    pos = 0
    for start, end, mask in spans:
        if start < pos:  # inside a span already masked (sk-ant-… is also sk-…)
            continue
        out.append(data[pos:start])
        out.append(mask)
        pos = end
    out.append(data[pos:])
    return b"".join(out), len(out) // 2


def _redact_tree(value: Any) -> tuple[Any, int]:
    if isinstance(value, str):
        out, n = _redact_bytes(value.encode())
        return (out.decode() if n else value), n
    if isinstance(value, list):
        total = 0
        items = []
        for item in value:
            v, n = _redact_tree(item)
            items.append(v)
            total += n
        return items, total
    if isinstance(value, dict):
        total = 0
        mapping: dict[str, Any] = {}
        for key, item in value.items():
            v, n = _redact_tree(item)
            mapping[key] = v
            total += n
        return mapping, total
    return value, 0


def redact(line: bytes, *, was_json: bool) -> tuple[bytes, int]:
    """Mask secrets in ``line``; returns the masked line and the number of secrets masked.

    ``was_json`` says whether ``line`` decodes as one JSON value; if so the result does too.
    """
    out, count = _redact_bytes(line)
    if not count or not was_json:
        return out, count
    try:
        _json_decoder.decode(out)
    except msgspec.DecodeError:
        tree, count = _redact_tree(_json_decoder.decode(line))
        out = _json_encoder.encode(tree)
    return out, count
