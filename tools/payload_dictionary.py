"""Rebuild the zstd dictionary shipped as skillopsd/events/payloads.zdict, from the public corpus.

    PYTHONPATH=. python3 tools/payload_dictionary.py [--check] [--out PATH]

Captures and derives the corpus (shared/corpus/real-home.tar.gz) with ``skillopsd --once``
on a temporary HOME, reduces every stored payload to a *skeleton* and trains a dictionary on
the skeletons. ``--check`` rebuilds it and compares it with the shipped file (exit 1 if they
differ).

The dictionary ships with the package and is copied into every database that uses it, where
it stays for ever: it must hold vocabulary, never anybody's content. A skeleton keeps a
string (a JSON key or value, a msgpack field) only when it is shared across users: seen in
at least ``MIN_STREAMS`` streams belonging to at least ``MIN_OWNERS`` different home
directories (``/Users/NAME``, ``/home/NAME``), is at most ``MAX_CHARS`` long, names no home
directory and does not look like a timestamp or an id. Every other string becomes empty, so
the keys around it (``"sessionId":"``) still match. What survives is the agents' own
vocabulary: record types, keys, tool names, model names, boilerplate the agents write.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import zstandard

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))
from _corpus import extract, home_env, program  # noqa: E402

from skillopsd.events import Database, payload_reader  # noqa: E402
from skillopsd.events._compress import DICTIONARY_FILE, LEVEL  # noqa: E402

MIN_STREAMS = 3
MIN_OWNERS = 2
MAX_CHARS = 2000
DICTIONARY_BYTES = 64 * 1024

_OWNER = re.compile(rb"/(?:Users|home)/([A-Za-z0-9_.-]+)")
# Timestamps, hex ids, UUIDs, base64-ish tokens: per-event values even when shared.
_PER_EVENT = re.compile(
    r"\d{4}-\d\d-\d\d[T ]\d|[0-9a-f]{12,}|[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-|[A-Za-z0-9+/_-]{24,}"
)
_BIG = 1 << 20
_json = msgspec.json.Decoder()
_json_out = msgspec.json.Encoder()
_msgpack = msgspec.msgpack.Decoder()
_msgpack_out = msgspec.msgpack.Encoder()


class _Json:
    """A bytes field that held JSON (a transcript line): skeletonized inside, kept as bytes."""

    def __init__(self, value: Any) -> None:
        self.value = value


def _expand(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _expand(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v) for v in value]
    if isinstance(value, bytes):
        try:
            return _Json(_json.decode(value))
        except (msgspec.DecodeError, RecursionError):
            return value
    return value


def _strings(value: Any, out: set[str]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _strings(key, out)
            _strings(item, out)
    elif isinstance(value, list):
        for item in value:
            _strings(item, out)
    elif isinstance(value, _Json):
        _strings(value.value, out)
    elif isinstance(value, str) and len(value) <= MAX_CHARS:
        out.add(value)


def _shareable(text: str) -> bool:
    return "/Users/" not in text and "/home/" not in text and not _PER_EVENT.search(text)


def skeletons(payloads: list[tuple[str, bytes]]) -> list[bytes]:
    """Each ``(stream, msgpack payload)`` reduced to the strings shared across users."""
    owners: dict[str, Counter[bytes]] = {}
    decoded: list[tuple[str, Any]] = []
    for stream, data in payloads:
        owners.setdefault(stream, Counter()).update(_OWNER.findall(data))
        decoded.append((stream, _expand(_msgpack.decode(data))))
    owner = {s: (c.most_common(1)[0][0] if c else None) for s, c in owners.items()}
    streams: dict[str, set[str]] = {}
    for stream, value in decoded:
        found: set[str] = set()
        _strings(value, found)
        for text in found:
            streams.setdefault(text, set()).add(stream)
    common = set()
    for text, seen in streams.items():
        distinct = {owner[s] for s in seen if owner[s] is not None}
        if len(seen) >= MIN_STREAMS and len(distinct) >= MIN_OWNERS and _shareable(text):
            common.add(text)

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {(k if k in common else ""): strip(v) for k, v in value.items()}
        if isinstance(value, list):
            return [strip(v) for v in value]
        if isinstance(value, str):
            return value if value in common else ""
        if isinstance(value, _Json):
            return _json_out.encode(strip(value.value))
        if isinstance(value, bytes):
            return b""
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= _BIG:
            return 0  # device and inode numbers, epoch times: this machine's, not vocabulary
        return value

    return [_msgpack_out.encode(strip(value)) for _, value in decoded]


def build(dump: Path | None = None) -> bytes:
    """Capture and derive the corpus, then train on the skeletons of every stored payload."""
    with tempfile.TemporaryDirectory() as tmp:
        home = extract(Path(tmp) / "home")
        subprocess.run(
            [program("skillopsd"), "--once", "--log-level", "warning"],
            env=home_env(home),
            check=True,
        )
        db = Database.open(home / ".local" / "share" / "skillops" / "skillops.db")
        decompress = payload_reader(db)
        payloads = [
            (stream, decompress(codec, data))
            for stream, codec, data in db.conn.execute(
                "SELECT stream, codec, data FROM events WHERE length(data) > 0 ORDER BY position"
            )
        ]
        db.close()
    # Capture order depends on the file system; sort so the same corpus trains the same bytes.
    # Repeated skeletons stay: they weigh the common shapes (measured: deduplicating them
    # stores 2% more).
    samples: list[bytes | bytearray | memoryview] = sorted(skeletons(payloads))
    if dump is not None:
        dump.write_bytes(msgspec.msgpack.encode(samples))
    trained = zstandard.train_dictionary(
        DICTIONARY_BYTES, samples, k=1024, d=8, level=LEVEL, dict_id=0x534B4F50, threads=0
    )
    return trained.as_bytes()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="Compare with the shipped file.")
    parser.add_argument("--out", type=Path, default=DICTIONARY_FILE, help="Where to write it.")
    parser.add_argument("--dump", type=Path, help="Also write the skeletons here (debugging).")
    args = parser.parse_args()
    data = build(args.dump)
    digest = hashlib.sha256(data).hexdigest()
    if args.check:
        shipped = DICTIONARY_FILE.read_bytes()
        same = shipped == data
        print(f"rebuilt {digest} {'matches' if same else 'DIFFERS from'} the shipped dictionary")
        raise SystemExit(0 if same else 1)
    args.out.write_bytes(data)
    print(f"wrote {args.out} ({len(data)} bytes, sha256 {digest})")


if __name__ == "__main__":
    main()
