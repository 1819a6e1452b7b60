"""Text made safe for a terminal: what a transcript quotes is shown, never obeyed.

Transcripts quote untrusted text (a fetched page, a cloned repo's files, command output), and
file and skill names are whatever is on disk. A terminal acts on control characters: OSC 52
writes the clipboard, OSC 8 hides a link behind a word, OSC 0 retitles the window, CR and BS
overwrite what is shown, bidi overrides reorder it, and invisible characters (a zero-width
space, a word joiner, a BOM, Unicode tag characters, a variation selector after a letter)
make different names print alike (``dep\u200bloy`` and ``deploy``: reviewer G12) or hide
text. :func:`safe` is the one place human output is made inert and visible; JSON output
stays exact (JSON escapes C0 itself, and a reader of JSON wants the bytes as they were).
"""

from __future__ import annotations

import re
import unicodedata

# A CSI sequence (ESC [ or the 8-bit CSI, parameters, final byte) only colours or moves the
# cursor: its text says nothing, and coloured command output reads better without it.
_CSI = re.compile("(?:\x1b\\[|\x9b)[0-?]*[ -/]*[@-~]")
# Everything else a terminal may act on: C0 controls but LF and TAB (a CR before LF is a
# line end, taken out first), DEL, the C1 controls (U+0080-U+009F: 8-bit ESC, CSI, OSC,
# DCS, APC, PM, SOS, ST, NEL), the bidi marks, embeddings, overrides and isolates, the line
# and paragraph separators, and lone surrogates (a file name that is not UTF-8, decoded
# with surrogateescape, which no terminal encoding can write).
# Then what shows nothing: every format character (Unicode category Cf: soft hyphen, Arabic
# number signs, zero-width space/joiners, word joiner, invisible operators, BOM, interlinear
# annotation, Egyptian format controls, tag characters), the other default-ignorable code
# points (combining grapheme joiner, Hangul fillers, Khmer inherent vowels, Mongolian
# selectors, reserved ignorables), and variation selectors; the last and the zero-width
# joiner are kept where they draw an emoji or pick a CJK glyph (:func:`_shown`).
_BMP = (
    "\x00-\x08\x0b-\x1f\x7f-\x9f\xad\u034f\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891"
    "\u08e2\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u2028\u2029\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufffb\ud800-\udfff"
)
_ASTRAL = (
    "\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0000-\U000e0fff"
)
# Two patterns: a class holding only BMP ranges compiles to a bitmap, one with astral ranges
# to a range scan ~10x slower (5.9 vs 0.5 us on a 144-character CJK title); most text has
# no astral character, so it takes the first.
_UNSAFE_BMP = re.compile(f"[{_BMP}]")
_UNSAFE = re.compile(f"[{_BMP}{_ASTRAL}]")
_ANY_ASTRAL = re.compile("[\U00010000-\U0010ffff]")  # one range: as fast as a bitmap
_ZWJ = "\u200d"


def _selector(char: str) -> bool:
    code = ord(char)
    return 0xFE00 <= code <= 0xFE0F or 0xE0100 <= code <= 0xE01EF


def _ideograph(code: int) -> bool:
    return 0x3400 <= code <= 0x9FFF or 0xF900 <= code <= 0xFAFF or 0x20000 <= code <= 0x3FFFF


def _pictured(char: str) -> bool:
    """A symbol an emoji presentation or a zero-width joiner sequence draws (not a letter)."""
    return not char.isascii() and unicodedata.category(char) in ("So", "Sk", "Sm")


def _shown(text: str, at: int) -> bool:
    """Whether the variation selector or zero-width joiner at ``at`` changes a visible glyph
    (an emoji's presentation, a CJK ideograph's variant, an emoji sequence), so keeping it
    makes no two names alike; after a letter or alone it only hides a difference."""
    char = text[at]
    before = text[at - 1] if at else ""
    if _selector(char):
        return bool(before) and (_pictured(before) or _ideograph(ord(before)))
    if char != _ZWJ or at + 1 >= len(text) or not _pictured(text[at + 1]):
        return False
    if before and _selector(before) and at >= 2:
        before = text[at - 2]  # an emoji's presentation selector, then the joiner
    return bool(before) and _pictured(before)


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if (char == _ZWJ or _selector(char)) and _shown(match.string, match.start()):
        return char
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a byte surrogateescape kept: spelled as path_text does
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    if code > 0xFFFF:
        return f"\\U{code:08x}"
    return f"\\u{code:04x}"


def safe(text: str) -> str:
    """``text`` with nothing a terminal acts on but LF and TAB, and nothing invisible: CSI
    sequences removed, every other control or invisible character shown as a
    ``\\xNN``/``\\uNNNN``/``\\UNNNNNNNN`` escape (visible, inert).

    Idempotent: what it returns is returned unchanged.
    """
    if text.isascii() and text.isprintable():
        return text
    if "\x1b" in text or "\x9b" in text:
        text = _CSI.sub("", text)
    if "\r\n" in text:
        text = text.replace("\r\n", "\n")
    astral = _ANY_ASTRAL.search(text) is not None
    return (_UNSAFE if astral else _UNSAFE_BMP).sub(_escape, text)
