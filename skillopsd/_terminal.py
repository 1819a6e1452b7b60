"""Text made safe for a terminal: what a transcript quotes is shown, never obeyed.

Transcripts quote untrusted text (a fetched page, a cloned repo's files, command output), and
file and skill names are whatever is on disk. A terminal acts on control characters: OSC 52
writes the clipboard, OSC 8 hides a link behind a word, OSC 0 retitles the window, CR and BS
overwrite what is shown, bidi overrides reorder it. :func:`safe` is the one place human
output is made inert; JSON output stays exact (JSON escapes C0 itself, and a reader of JSON
wants the bytes as they were).
"""

from __future__ import annotations

import re

# A CSI sequence (ESC [ or the 8-bit CSI, parameters, final byte) only colours or moves the
# cursor: its text says nothing, and coloured command output reads better without it.
_CSI = re.compile("(?:\x1b\\[|\x9b)[0-?]*[ -/]*[@-~]")
# Everything else a terminal may act on: C0 controls but LF and TAB (a CR before LF is a
# line end, taken out first), DEL, the C1 controls (U+0080-U+009F: 8-bit ESC, CSI, OSC,
# DCS, APC, PM, SOS, ST, NEL), the bidi marks, embeddings, overrides and isolates, the line
# and paragraph separators, and lone surrogates (a file name that is not UTF-8, decoded
# with surrogateescape, which no terminal encoding can write).
_UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
    "\ud800-\udfff]"
)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:  # a byte surrogateescape kept: spelled as path_text does
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


def safe(text: str) -> str:
    """``text`` with nothing a terminal acts on but LF and TAB: CSI sequences removed, every
    other control character shown as a ``\\xNN``/``\\uNNNN`` escape (visible, inert).

    Idempotent: what it returns is returned unchanged.
    """
    if text.isascii() and text.isprintable():
        return text
    if "\x1b" in text or "\x9b" in text:
        text = _CSI.sub("", text)
    if "\r\n" in text:
        text = text.replace("\r\n", "\n")
    return _UNSAFE.sub(_escape, text)
