"""Redaction: recall and precision per family on the labelled set, and throughput.

    python3 bench/redact.py [--repeat 3] [--json] [--against REF]

Recall: the share of labelled secrets (tests/redaction_cases.py) no longer present after
redaction, each inside a transcript line where it appears (user text, tool output, command
line, JSON file). False positives: masks applied to the real non-secret transcript text
(tests/data/redaction_nonsecrets.json), counted by the family of the mask. The previous
redactor (bench/_redact_v1.py) is scored beside it.

Set 2 (tests/data/redaction_set2/, written by someone who did not write the rules): whole
real-shaped Claude Code and Codex lines, run through capture's path (screen, then the exact
rules on flagged lines); recall per family and per agent, and the lines of its non-secret
set that came out changed.

Throughput: the real corpus's lines in 4 MiB blocks, the way capture reads them: one screen
of the block, then the exact rules on flagged lines. Floors measured in the same run: one
``bytes.find`` of a literal over each block, and the previous redactor on the same path;
with ``--against REF`` (a git ref of this repository) also the redactor of that commit, timed
in turns with this one (CPU time, so that other processes on the machine weigh less), and
the corpus's masks of both compared value by value.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _redact_v1 as v1
from _corpus import CORPUS, extract, transcript_files

from skillopsd import _redact as v2
from tests.redaction_cases import nonsecrets, secret_cases, transcript_line

BLOCK = 4 * 1024 * 1024
MASK = re.compile(rb"\[REDACTED(?::([a-z\-]+))?\]")
Redact = Callable[..., tuple[bytes, int]]


class FamilyScore(msgspec.Struct):
    """One family's figures on the labelled set."""

    family: str
    cases: int
    detected: int
    false_positives: int

    @property
    def recall(self) -> float:
        return self.detected / self.cases if self.cases else 1.0

    @property
    def precision(self) -> float:
        flagged = self.detected + self.false_positives
        return self.detected / flagged if flagged else 1.0


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    return []


def score(redact: Redact) -> list[FamilyScore]:
    """Per family: cases, detected, and masks of that family over non-secret text."""
    cases: collections.Counter[str] = collections.Counter()
    detected: collections.Counter[str] = collections.Counter()
    for case in secret_cases():
        cases[case.family] += 1
        out, _ = redact(transcript_line(case.where, case.text), was_json=True)
        text = "\n".join(_strings(msgspec.json.decode(out)))
        if case.secret not in text and case.secret.encode() not in out:
            detected[case.family] += 1
    false_pos: collections.Counter[str] = collections.Counter()
    for texts in nonsecrets().values():
        for text in texts:
            for where in ("user", "tool-output", "command", "json-file"):
                out, count = redact(transcript_line(where, text), was_json=True)
                for m in MASK.finditer(out) if count else ():
                    family = (m.group(1) or b"password").decode()
                    false_pos[family] += 1
    families = sorted(set(cases) | set(false_pos))
    return [FamilyScore(f, cases[f], detected[f], false_pos[f]) for f in families]


SET2 = Path(__file__).resolve().parent.parent / "tests" / "data" / "redaction_set2"


def captured(module: object, line: bytes) -> bytes:
    """``line`` as capture stores it with ``module``'s redactor."""
    block = line + b"\n"
    if not module.screen(block, len(block)):  # type: ignore[attr-defined]
        return line
    return module.redact(line, was_json=True, screened=True)[0]  # type: ignore[attr-defined]


def score_set2(module: object) -> dict[str, object]:
    """Set 2's recall per family and per agent, and its non-secret lines changed."""
    cases: collections.Counter[str] = collections.Counter()
    found: collections.Counter[str] = collections.Counter()
    by_agent: collections.Counter[str] = collections.Counter()
    found_agent: collections.Counter[str] = collections.Counter()
    for case in json.loads((SET2 / "secrets.json").read_text()):
        out = captured(module, case["line"].encode())
        hit = not any(s.encode() in out for s in case["secrets"])
        cases[case["family"]] += 1
        by_agent[case["agent"]] += 1
        found[case["family"]] += hit
        found_agent[case["agent"]] += hit
    non = json.loads((SET2 / "nonsecrets.json").read_text())
    changed = [c["id"] for c in non if captured(module, c["line"].encode()) != c["line"].encode()]
    return {
        "families": {f: [found[f], cases[f]] for f in sorted(cases)},
        "agents": {a: [found_agent[a], by_agent[a]] for a in sorted(by_agent)},
        "cases": sum(cases.values()),
        "detected": sum(found.values()),
        "nonsecret_lines": len(non),
        "false_positive_lines": changed,
    }


def blocks(lines: list[bytes]) -> list[bytes]:
    out, size, current = [], 0, []
    for line in lines:
        current.append(line)
        size += len(line) + 1
        if size >= BLOCK:
            out.append(b"\n".join(current) + b"\n")
            current, size = [], 0
    if current:
        out.append(b"\n".join(current) + b"\n")
    return out


def capture_path(module: object) -> Callable[[list[bytes]], int]:
    """Screen each block, redact each flagged line, as capture does; returns masks made."""
    screen = module.screen  # type: ignore[attr-defined]
    redact = module.redact  # type: ignore[attr-defined]

    def run(data: list[bytes]) -> int:
        masks = 0
        for block in data:
            flags = screen(block, len(block))
            if not flags:
                continue
            at = 0
            flag = 0
            for line in block.split(b"\n")[:-1]:
                end = at + len(line)
                flagged = False
                while flag < len(flags) and flags[flag] <= end:
                    flagged = flagged or flags[flag] >= at
                    flag += 1
                if flagged:
                    masks += redact(line, was_json=True, screened=True)[1]
                at = end + 1
        return masks

    return run


def floor(data: list[bytes]) -> int:
    return sum(block.find(b"-----BEGIN ") >= 0 for block in data)


def best_rate(fn: Callable[[list[bytes]], int], data: list[bytes], repeat: int) -> float:
    size = sum(map(len, data))
    best = min(_timed(fn, data) for _ in range(repeat))
    return size / best / 1e6


def _timed(fn: Callable[[list[bytes]], int], data: list[bytes]) -> float:
    start = time.perf_counter()
    fn(data)
    return time.perf_counter() - start


def _at(ref: str, tmp: Path) -> object:
    """This repository's redactor as it was at ``ref``."""
    import importlib.util
    import subprocess

    root = Path(__file__).resolve().parent.parent
    source = subprocess.run(
        ["git", "-C", str(root), "show", f"{ref}:skillopsd/_redact.py"],
        capture_output=True,
        check=True,
    ).stdout
    path = tmp / "redact_at_ref.py"
    path.write_bytes(source)
    spec = importlib.util.spec_from_file_location("redact_at_ref", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _values(module: object, lines: list[bytes]) -> list[tuple[str, str]]:
    """(the text before, the value) of every mask the module makes on flagged lines."""
    found = []
    for line in lines:
        if not line or not module.screen(line + b"\n", len(line) + 1):  # type: ignore[attr-defined]
            continue
        for start, end, _ in sorted(module._spans(line)):  # type: ignore[attr-defined]
            before = line[max(0, start - 40) : start].decode(errors="replace")
            found.append((before, line[start:end].decode(errors="replace")))
    return found


def against(ref: str, lines: list[bytes], data: list[bytes], repeat: int) -> None:
    """Throughput of this redactor and of ``ref``'s, in turns; masks only one of them makes."""
    with tempfile.TemporaryDirectory() as tmp:
        theirs = _at(ref, Path(tmp))
        paths = {"this": capture_path(v2), ref: capture_path(theirs)}
        best = dict.fromkeys(paths, float("inf"))
        for _ in range(repeat):
            for name, fn in paths.items():
                start = time.process_time()
                fn(data)
                best[name] = min(best[name], time.process_time() - start)
        size = sum(map(len, data)) / 1e6
        for name, seconds in best.items():
            print(f"  {name:<11} {size / seconds:8.1f} MB/s (CPU time, best of {repeat})")
        print(f"ratio this/{ref}: {best[ref] / best['this']:.3f}")
        mine, old = _values(v2, lines), _values(theirs, lines)
    print(f"corpus masks (values, flagged lines): this {len(mine)}, {ref} {len(old)}")
    for label, a, b in (("new", mine, old), ("no longer", old, mine)):
        seen = set(b)
        only = [m for m in a if m not in seen]
        print(f"{label} masked: {len(only)}")
        for before, value in only:
            print(f"  {before[-30:]!r:>34} => {value[:60]!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--against", help="a git ref whose redactor is timed in turns with this")
    args = parser.parse_args()
    if args.against:
        if not CORPUS.exists():
            sys.exit(f"bench/redact.py: --against needs the corpus at {CORPUS}")
        with tempfile.TemporaryDirectory() as tmp:
            home = extract(Path(tmp))
            lines = [ln for f in transcript_files(home) for ln in f.read_bytes().split(b"\n")]
        against(args.against, lines, blocks(lines), args.repeat)
        return

    result: dict[str, object] = {}
    for name, module in (("redactor", v2), ("previous", v1)):
        rows = score(module.redact)
        cases = sum(r.cases for r in rows)
        detected = sum(r.detected for r in rows)
        fps = sum(r.false_positives for r in rows)
        result[name] = {
            "families": [
                {**msgspec.structs.asdict(r), "recall": r.recall, "precision": r.precision}
                for r in rows
            ],
            "cases": cases,
            "detected": detected,
            "recall": detected / cases,
            "false_positives": fps,
            "precision": detected / (detected + fps) if detected + fps else 1.0,
            "set2": score_set2(module),
        }
    if CORPUS.exists():
        with tempfile.TemporaryDirectory() as tmp:
            home = extract(Path(tmp))
            lines = [ln for f in transcript_files(home) for ln in f.read_bytes().split(b"\n")]
        data = blocks(lines)
        rates = {
            "floor_find": best_rate(floor, data, args.repeat),
            "previous": best_rate(capture_path(v1), data, args.repeat),
            "redactor": best_rate(capture_path(v2), data, args.repeat),
        }
        result["throughput_mb_s"] = rates
        result["corpus_mb"] = sum(map(len, data)) / 1e6
        result["corpus_masks"] = {
            "redactor": capture_path(v2)(data),
            "previous": capture_path(v1)(data),
        }
    if args.json:
        print(json.dumps(result, indent=1))
        return
    current = result["redactor"]
    previous = result["previous"]
    assert isinstance(current, dict) and isinstance(previous, dict)
    print(f"{'family':<14}{'cases':>6}{'found':>7}{'recall':>8}{'false+':>8}{'precision':>11}")
    for row in current["families"]:
        print(
            f"{row['family']:<14}{row['cases']:>6}{row['detected']:>7}{row['recall']:>8.1%}"
            f"{row['false_positives']:>8}{row['precision']:>11.1%}"
        )
    nonsecret_count = sum(len(v) for v in nonsecrets().values())
    for name, r in (("overall", current), ("previous", previous)):
        print(
            f"{name:<14}{r['cases']:>6}{r['detected']:>7}{r['recall']:>8.1%}"
            f"{r['false_positives']:>8}{r['precision']:>11.1%}"
        )
    print(f"non-secret strings: {nonsecret_count}, each in 4 places")
    print()
    print("set 2 (written apart from the rules; whole lines, capture's path)")
    for name, r in (("redactor", current), ("previous", previous)):
        set2 = r["set2"]
        assert isinstance(set2, dict)
        if name == "redactor":
            for family, (hit, n) in set2["families"].items():
                print(f"  {family:<20}{n:>4}{hit:>6}{hit / n:>8.1%}")
        agents = ", ".join(f"{a} {hit}/{n} {hit / n:.1%}" for a, (hit, n) in set2["agents"].items())
        fps = len(set2["false_positive_lines"])
        cases, found = set2["cases"], set2["detected"]
        precision = found / (found + fps) if found + fps else 1.0
        print(
            f"  {name:<10} recall {found}/{cases} {found / cases:.1%} ({agents});"
            f" non-secret lines changed {fps}/{set2['nonsecret_lines']};"
            f" precision {precision:.1%}"
        )
    if "throughput_mb_s" in result:
        rates = result["throughput_mb_s"]
        assert isinstance(rates, dict)
        print(f"corpus: {result['corpus_mb']:.1f} MB, masks made {result['corpus_masks']}")
        for name, rate in rates.items():
            print(f"  {name:<11} {rate:8.1f} MB/s")
        print(f"ratio redactor/floor: {rates['redactor'] / rates['floor_find']:.3f}")
        print(f"ratio redactor/previous: {rates['redactor'] / rates['previous']:.2f}")
    else:
        print(f"throughput skipped: no corpus at {CORPUS}")


if __name__ == "__main__":
    main()
