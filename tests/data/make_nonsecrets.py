"""Rebuild ``redaction_nonsecrets.json`` from the real corpus (run by hand, not by the tests).

Usage: ``python3 tests/data/make_nonsecrets.py CORPUS_DIR`` where CORPUS_DIR is an extracted
copy of shared/corpus/real-home.tar.gz. Every string is real transcript text, picked by its
shape (never by what the redactor does with it), so the set measures false positives fairly.
Strings of the credential-looking kind that tests in the corpus use as fixtures (``Password:
"s3cret"``) are not in it: masking those is correct, they stand where a secret would.
"""

from __future__ import annotations

import json
import random
import re
import sys
from pathlib import Path

import msgspec

OUT = Path(__file__).with_name("redaction_nonsecrets.json")
PER_KIND = 70

# What a redactor could mistake for a secret: long random-looking runs, words around the
# prefixes of token families, and code that names tokens and passwords.
KINDS: dict[str, re.Pattern[str]] = {
    "branch": re.compile(
        r"(?:refs/heads/|checkout -b |branch |switch -c )([A-Za-z0-9._/\-]{6,80})"
    ),
    "commit": re.compile(r"(?<![0-9a-f])[0-9a-f]{40}(?![0-9a-f])"),
    "short-hash": re.compile(r"(?<![0-9A-Za-z])[0-9a-f]{7,12}(?![0-9A-Za-z])"),
    "uuid": re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"),
    "base64": re.compile(r"[A-Za-z0-9+/]{60,}={0,2}"),
    "path": re.compile(r"(?:/[A-Za-z0-9._@\-]{1,60}){3,12}"),
    "id": re.compile(
        r"\b(?:toolu|msg|req|call|srvtoolu|resp|chatcmpl|sess|run)_[A-Za-z0-9_\-]{8,}"
    ),
    "prefix-word": re.compile(
        r"[A-Za-z0-9_./\-]*(?:sk-|ask-|task-|desk-|risk-|disk-|hf_|npm_|sg\.|gl|pypi-|xox|"
        r"whsec|AKIA|AIza|eyJ|ghp|dop_|shp)[A-Za-z0-9_./\-]{4,}"
    ),
    "secret-words": re.compile(
        r"[^\n]{0,60}(?:[Tt]oken|[Pp]assword|[Ss]ecret|[Aa]pi[_-]?[Kk]ey|[Aa]uthorization|"
        r"[Bb]earer|[Bb]asic)[^\n]{0,60}"
    ),
    "url": re.compile(r"[a-z][a-z0-9+.\-]{1,15}://[^\s\"'<>`)\]]{6,160}"),
}
# Test fixtures in the corpus hold credentials on purpose; keep them out of a non-secret set.
FIXTURE_VALUE = re.compile(
    r"(?i)(?:password|passwd|token|secret|pass|key)\W{0,4}[:=]\s*\\?[\"']?"
    r"(?![$<{*.`]|your|\[)[A-Za-z0-9+!|=_\-]{4,}|://[^/\s:@]+:[^/\s@]+@|xoxb-|ghp_x"
)


def strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for item in value for s in strings(item)]
    if isinstance(value, dict):
        return [s for item in value.values() for s in strings(item)]
    return []


def main(corpus: Path) -> None:
    found: dict[str, set[str]] = {kind: set() for kind in KINDS}
    for path in sorted(corpus.rglob("*.jsonl")):
        for raw in path.read_bytes().split(b"\n"):
            try:
                record = msgspec.json.decode(raw)
            except (msgspec.DecodeError, UnicodeDecodeError):
                continue
            for text in strings(record):
                for kind, pattern in KINDS.items():
                    for m in pattern.finditer(text):
                        value = m.group(m.lastindex or 0)[:300]
                        if "REDACTED" not in value and not FIXTURE_VALUE.search(value):
                            found[kind].add(value)
    # Strings the previous redactor masked in this corpus (all ordinary text) and the ones
    # the issue names, added by hand; a rebuild keeps them.
    found["hand-picked"] = set(json.loads(OUT.read_text())["hand-picked"])
    rng = random.Random(7)
    picked = {
        kind: sorted(rng.sample(sorted(v), min(PER_KIND, len(v)))) for kind, v in found.items()
    }
    OUT.write_text(json.dumps(picked, indent=1, ensure_ascii=False) + "\n")
    print({kind: len(v) for kind, v in picked.items()})


if __name__ == "__main__":
    main(Path(sys.argv[1]))
