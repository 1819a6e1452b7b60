"""Redaction's false positives on real text beyond the corpus: what it masks in files on disk.

    python3 bench/redact_files.py [--against REF] [--list] DIR...

Each text file under the folders (code, docs, config: .py .md .rst .txt .toml .cfg .ini .yaml
.yml .json .sh .conf .xml .cnf .env .properties) is read as a tool result shows it, one JSON
string, and screened and redacted as capture does. Prints the masks made; with ``--against
REF`` (a git ref of this repository, e.g. ``main``) the redactor of that commit runs beside it
on the same files and the values masked by only one of them are listed, so a change of the
rules can be read value by value: what it newly masks must be secrets, what it stops masking
must not be.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

import msgspec

ROOT = Path(__file__).resolve().parent.parent
SUFFIXES = {".py", ".md", ".rst", ".txt", ".toml", ".cfg", ".ini", ".yaml", ".yml", ".json"}
SUFFIXES |= {".sh", ".conf", ".xml", ".cnf", ".env", ".properties"}
LARGEST = 400_000

Mask = tuple[str, str, str]  # file, the text before the value, the value


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _at(ref: str, tmp: Path) -> ModuleType:
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{ref}:skillopsd/_redact.py"],
        capture_output=True,
        check=True,
    ).stdout
    path = tmp / "redact_at_ref.py"
    path.write_bytes(source)
    return _load(path, "redact_at_ref")


def _texts(folders: list[Path]) -> list[tuple[str, bytes]]:
    out = []
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.suffix not in SUFFIXES or not path.is_file():
                continue
            try:
                text = path.read_text()
            except (OSError, UnicodeDecodeError):
                continue
            if len(text) <= LARGEST:
                out.append((str(path), msgspec.json.encode(text)))
    return out


def masks(module: ModuleType, texts: list[tuple[str, bytes]]) -> list[Mask]:
    found: list[Mask] = []
    for name, line in texts:
        if not module.screen(line + b"\n", len(line) + 1):
            continue
        for start, end, _ in sorted(module._spans(line)):
            before = line[max(0, start - 40) : start].decode(errors="replace")
            found.append((name, before, line[start:end].decode(errors="replace")))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--against", help="a git ref whose redactor runs beside this one")
    parser.add_argument("--list", action="store_true", help="list every value masked")
    args = parser.parse_args()
    texts = _texts(args.folders)
    now = _load(ROOT / "skillopsd" / "_redact.py", "redact_now")
    mine = masks(now, texts)
    print(f"{len(texts)} files, {sum(len(t) for _, t in texts) / 1e6:.1f} MB")
    print(f"masks: {len(mine)}")
    if args.list:
        for _, before, value in mine:
            print(f"  {before[-30:]!r:>34} => {value[:60]!r}")
    if args.against:
        with tempfile.TemporaryDirectory() as tmp:
            theirs = masks(_at(args.against, Path(tmp)), texts)
        print(f"masks at {args.against}: {len(theirs)}")
        for label, a, b in (("new", mine, theirs), ("no longer", theirs, mine)):
            gone = set(b)
            only = [m for m in a if m not in gone]
            print(f"{label} masked: {len(only)}")
            for _, before, value in only:
                print(f"  {before[-30:]!r:>34} => {value[:60]!r}")


if __name__ == "__main__":
    sys.exit(main())
