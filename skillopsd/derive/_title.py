"""A session's title from its first prompt: the first line a reader would call the request.

Prompts often open with lines that are not the request: a harness's template marker
(``[[ ## user_query ## ]]``), a role label (``@[User]:``), a blank line, a markdown rule or code
fence, a wrapper tag on a line of its own (``<user_query>``), or a whole block of context the
agent injects (``<system-reminder>…</system-reminder>``, Codex's ``<environment_context>``).
Those are skipped; tags that open or close the line kept are dropped (``<command-name>/x
</command-name>`` reads ``/x``, ``List<String>`` inside a sentence stays); a markdown heading
keeps its text.
"""

from __future__ import annotations

import re

TITLE_LIMIT = 120

# Blocks of context an agent or harness puts into the user's message: never the request.
_INJECTED = (
    "system-reminder",
    "system_reminder",
    "current_datetime",
    "local-command-caveat",
    "local-command-stdout",
    "local-command-stderr",
    "command-message",
    "environment_context",
    "environment_details",
    "user_instructions",
    "ide_selection",
    "ide_opened_file",
    "ide_diagnostics",
)
_INJECTED_BLOCK = re.compile(
    r"<(" + "|".join(re.escape(t) for t in _INJECTED) + r")\b[^>]*>.*?</\1\s*>", re.DOTALL
)
_TAG = r"</?[A-Za-z][\w:.-]*(?:\s[^<>]*)?/?>"
# Tags opening or closing a line (``<command-name>/x</command-name>``); a tag inside the text
# (``List<String>``) is the user's.
_EDGE_TAGS = re.compile(rf"\A(?:\s*{_TAG})+|(?:{_TAG}\s*)+\Z")
# Lines that only frame the request: template markers, role labels, rules and code fences.
_FRAME = re.compile(
    r"""\A(?:
        \[\[.*\]\]                              # DSPy-style [[ ## user_query ## ]]
      | \{\{.*\}\}                              # an unfilled {{ placeholder }}
      | @?\[?(?:system|user|human|assistant|query|input|prompt|instructions?)\]?\s*:
      | (?:`{3,}|~{3,})[\w+.-]*                 # a code fence, with or without a language
      | [-=*_#~+.:|\s]*                          # a rule, or nothing but punctuation
    )\Z""",
    re.IGNORECASE | re.VERBOSE,
)
_HEADING = re.compile(r"\A#{1,6}\s+")


def title_line(prompt: str) -> str | None:
    """The first meaningful line of ``prompt``, at most ``TITLE_LIMIT`` characters."""
    text = _INJECTED_BLOCK.sub("\n", prompt)
    for raw in text.splitlines():
        line = " ".join(_EDGE_TAGS.sub(" ", raw).split())
        if not line or _FRAME.match(line):
            continue
        line = _HEADING.sub("", line).strip()
        if line:
            return line[:TITLE_LIMIT]
    return None
