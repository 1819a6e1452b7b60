"""The redactor as it was before issue 7 (kept as the baseline of bench/redact.py).

Patterns run over the raw line bytes. Every mask is plain ASCII with no quote or backslash,
and no pattern matches a quote or a backslash, so a valid JSON line stays valid. Should a
valid line still come out invalid, it is redacted again string by string through a
decode/re-encode, so the guarantee holds whatever the input.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
import re2

# Characters that may appear inside a token: none of them ends or escapes a JSON string.
_TOKEN = rb"[A-Za-z0-9_\-]"

# Each pattern is tried only on lines holding one of its literal triggers (a substring test
# runs at memory speed; a regex scan of every line would not). ``lower`` patterns and
# triggers apply to the lowercased line, which has the same length, so spans carry over.
_PATTERNS: list[tuple[str, bool, tuple[bytes, ...], re.Pattern[bytes]]] = [
    (kind, lower, triggers, re.compile(pattern))
    for kind, lower, triggers, pattern in [
        (
            "private-key",
            True,
            (b"-----begin ",),
            rb"-----begin [a-z0-9 ]{0,40}private key(?: block)?-----"
            rb"(?:[a-z0-9+/=:,.\- ]|\\[nrt])*?"
            rb"-----end [a-z0-9 ]{0,40}private key(?: block)?-----",
        ),
        ("anthropic", False, (b"sk-ant-",), rb"sk-ant-" + _TOKEN + rb"{20,}"),
        ("openai", False, (b"sk-",), rb"sk-(?:proj-|svcacct-|admin-)?" + _TOKEN + rb"{20,}"),
        (
            "github",
            False,
            (b"ghp_", b"gho_", b"ghu_", b"ghs_", b"ghr_"),
            rb"gh[pousr]_[A-Za-z0-9]{30,}",
        ),
        ("github", False, (b"github_pat_",), rb"github_pat_[A-Za-z0-9_]{30,}"),
        (
            "aws",
            False,
            (b"AKIA", b"ASIA", b"AGPA", b"AIDA", b"AROA"),
            rb"(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}",
        ),
        ("slack", False, (b"xox",), rb"xox[abposr]-[A-Za-z0-9\-]{10,}"),
        ("slack", False, (b"hooks.slack.com",), rb"hooks\.slack\.com/services/[A-Za-z0-9/]{20,}"),
        ("google", False, (b"AIza",), rb"AIza[0-9A-Za-z_\-]{30,}"),
        ("google", False, (b"ya29.",), rb"ya29\.[0-9A-Za-z_\-]{20,}"),
        ("bearer", True, (b"bearer",), rb"bearer\s+[a-z0-9\-._~+/]{16,}=*"),
    ]
]
# ``password=…``, ``"api_key": "…"``, ``secret: …``: the name stays, the value is masked.
# A value counts when it is quoted, written ``name=value`` with no spaces (env, URLs,
# flags), or, unquoted after ``:``, looks like a literal (has a digit). This leaves code such
# as ``Password: password`` or ``s.token = token`` alone. Matched on the lowercased line,
# from each occurrence of a name found by substring search.
_NAMES = (b"password", b"passwd", b"pwd", b"secret", b"token", b"key")
_KEY_PREFIXES = (
    b"api",
    b"api_",
    b"api-",
    b"access",
    b"access_",
    b"access-",
    b"private",
    b"private_",
    b"private-",
)
_TAIL = re.compile(
    rb"(?:\\?[\"'])?"
    rb"(?:(?P<eq>=)|\s*[:=]\s*(?P<q>\\?[\"'])|(?P<colon>\s*:\s*))"
    rb"(?P<v>[^\s\"'\\,;&<>{}\[\]()]{4,})"
)
_DIGITS = frozenset(b"0123456789")
# One case-insensitive pass that matches wherever any rule above could (a superset). RE2
# scans a line once for all of them in linear time, whatever the line holds; the exact
# rules then run only on the few lines it flags.
_PREFILTER = re2.compile(
    # Whitespace here excludes newlines, so a match never runs from one line into the next
    # when a whole block of lines is screened at once.
    rb"(?i)-----begin [a-z0-9 ]{0,40}private key|sk-[a-z0-9_\-]{20,}|gh[pousr]_[a-z0-9]{30,}"
    rb"|github_pat_[a-z0-9_]{30,}|(?:akia|asia|agpa|aida|aroa)[0-9a-z]{16}"
    rb"|xox[abposr]-[a-z0-9\-]{10,}|hooks\.slack\.com/services/|aiza[0-9a-z_\-]{30,}"
    rb"|ya29\.[0-9a-z_\-]{20,}|bearer[ \t\r\f\v]+[a-z0-9\-._~+/]{16,}"
    rb"|(?:password|passwd|pwd|secret|token|key)(?:\\?[\"'])?"
    rb"(?:=|[ \t\r\f\v]*[:=][ \t\r\f\v]*\\?[\"']|[ \t\r\f\v]*:[ \t\r\f\v]*)"
    rb"[^\s\"'\\,;&<>{}\[\]()]{4,}"
)


def screen(block: bytes, end: int) -> list[int]:
    """Offsets in ``block[:end]`` where a secret may start; lines without one need no redaction."""
    return [m.start() for m in _PREFILTER.finditer(block, 0, end)]


_json_decoder = msgspec.json.Decoder()
_json_encoder = msgspec.json.Encoder()


def _spans(data: bytes) -> list[tuple[int, int, bytes]]:
    lowered = data.lower()
    spans: list[tuple[int, int, bytes]] = []
    for kind, lower, triggers, pattern in _PATTERNS:
        text = lowered if lower else data
        if any(t in text for t in triggers):
            for m in pattern.finditer(text):
                spans.append((m.start(), m.end(), b"[REDACTED:" + kind.encode() + b"]"))
    for name in _NAMES:
        at = lowered.find(name)
        while at >= 0:
            if name == b"key" and not any(lowered.endswith(p, 0, at) for p in _KEY_PREFIXES):
                at = lowered.find(name, at + 3)
                continue
            tail = _TAIL.match(lowered, at + len(name))
            if tail is not None:
                start, end = tail.span("v")
                value = lowered[start:end]
                # Already masked; a count (``token: 123``); an unquoted word after ``:``.
                if not (
                    value.startswith(b"[redacted")
                    or value.isdigit()
                    or (tail.group("colon") is not None and _DIGITS.isdisjoint(value))
                ):
                    spans.append((start, end, b"[REDACTED]"))
            at = lowered.find(name, at + len(name))
    return spans


def _redact_bytes(data: bytes, screened: bool = False) -> tuple[bytes, int]:
    if not screened and _PREFILTER.search(data) is None:
        return data, 0
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


def redact(line: bytes, *, was_json: bool, screened: bool = False) -> tuple[bytes, int]:
    """Mask secrets in ``line``; returns the masked line and the number of secrets masked.

    ``was_json`` says whether ``line`` decodes as one JSON value; if so the result does too.
    ``screened`` says :func:`screen` already flagged the line (so it is not screened again).
    """
    out, count = _redact_bytes(line, screened)
    if not count or not was_json:
        return out, count
    try:
        _json_decoder.decode(out)
    except msgspec.DecodeError:
        tree, count = _redact_tree(_json_decoder.decode(line))
        out = _json_encoder.encode(tree)
    return out, count
