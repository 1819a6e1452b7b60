"""The dashboard's server time per page, on the real corpus and on 10,000 synthetic sessions.

    python3 bench/serve.py [--repeat 5] [--sessions 10000]

Each page is fetched over HTTP from the real server (in this process, one keep-alive
connection, the token's cookie), best of ``--repeat``. Beside it, the floor: the same page's
projection queries alone (what ``skillopsctl ... --json`` reads), so the ratio is what
rendering and HTTP add. Targets: <= 300 ms a page on the real corpus, <= 1 s on 10,000
sessions.

The synthetic database is built by appending ``SessionDerived``/``SpanDerived`` events
directly (16 spans a session, 40 skills with 3 versions each, over 180 days), then letting
the projections fold them: capturing 10,000 transcripts would take most of an hour.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _corpus import extract, home_env, program

from skillopsd import _logging
from skillopsd.events import Database, EventLog, NewEvent
from skillopsd.events.types import SessionDerived, SkillVersionCreated, SpanDerived, TokenUsage
from skillopsd.projections import engine_for
from skillopsd.projections.annotations import list_annotations
from skillopsd.projections.session_views import (
    SessionFilter,
    count_sessions,
    list_sessions,
    spans_of,
)
from skillopsd.projections.skill_views import (
    eval_runs,
    lineage,
    skill_report,
    skill_sessions,
    skills_overview,
)
from skillopsd.web import make_server

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def synthetic(db: Database, sessions: int) -> None:
    """``sessions`` derived sessions of 16 spans each, 40 skills of 3 versions."""
    log = EventLog(db)
    skills = [f"skill-{k:02d}" for k in range(40)]
    hashes = {
        (s, v): hashlib.sha256(f"{s} v{v}".encode()).hexdigest() for s in skills for v in (1, 2, 3)
    }
    batch: list[NewEvent] = []
    for i in range(sessions):
        sid = f"{i:016x}"
        start = T0 + timedelta(minutes=26 * i)
        skill = skills[i % len(skills)]
        version = 1 + (i // len(skills)) % 3
        spans = []
        turn = f"{sid}-t"
        spans.append(
            SpanDerived(
                session_id=sid,
                deriver_version=1,
                span_id=turn,
                trace_id=sid * 2,
                parent_span_id=None,
                kind="CHAIN",
                name="turn 1",
                start=_stamp(start),
                end=_stamp(start + timedelta(minutes=5)),
                attributes={"gen_ai.prompt": f"please fix issue {i} in module {i % 97}"},
            )
        )
        for n in range(3):
            llm = f"{sid}-l{n}"
            spans.append(
                SpanDerived(
                    session_id=sid,
                    deriver_version=1,
                    span_id=llm,
                    trace_id=sid * 2,
                    parent_span_id=turn,
                    kind="LLM",
                    name="model",
                    start=_stamp(start + timedelta(seconds=60 * n)),
                    end=_stamp(start + timedelta(seconds=60 * n + 20)),
                    attributes={
                        "gen_ai.usage.input_tokens": 5000,
                        "gen_ai.usage.output_tokens": 300,
                    },
                )
            )
            for c in range(4):
                failed = (i + n + c) % 23 == 0
                kind = "SKILL" if n == 0 and c == 0 else "TOOL"
                attributes: dict[str, str | int | float | bool | list[str]] = {
                    "gen_ai.tool.call.arguments": '{"command": "pytest -q"}',
                    "skillops.tool.kind": "shell",
                }
                if kind == "SKILL":
                    attributes = {
                        "skill.name": skill,
                        "skill.content_hash": hashes[(skill, version)],
                        "skill.activation": "tool",
                    }
                if failed:
                    attributes["skillops.result.error"] = "Exit code 1\nFAILED test_x"
                spans.append(
                    SpanDerived(
                        session_id=sid,
                        deriver_version=1,
                        span_id=f"{llm}-c{c}",
                        trace_id=sid * 2,
                        parent_span_id=llm,
                        kind=kind,
                        name=skill if kind == "SKILL" else "Bash",
                        start=_stamp(start + timedelta(seconds=60 * n + 20 + c)),
                        end=_stamp(start + timedelta(seconds=60 * n + 21 + c)),
                        outcome="failure" if failed else "success",
                        attributes=attributes,
                    )
                )
        stream = f"session:{sid}"
        batch += [NewEvent(stream, s) for s in spans]
        batch.append(
            NewEvent(
                stream,
                SessionDerived(
                    session_id=sid,
                    agent=("claude", "codex", "copilot", "gemini")[i % 4],
                    native_session_id=sid,
                    deriver_version=1,
                    title=f"Fix issue {i}",
                    cwd="/work/app",
                    started_at=_stamp(start),
                    ended_at=_stamp(start + timedelta(minutes=5)),
                    turns=1,
                    tools=12,
                    skills=[skill],
                    tokens=TokenUsage(input=15000, output=900),
                    span_ids=[s.span_id for s in spans],
                ),
            )
        )
        if i < len(skills) * 3:
            batch.append(
                NewEvent(
                    f"skill:{skill}",
                    SkillVersionCreated(
                        skill=skill,
                        version_hash=hashes[(skill, version)],
                        tag=version,
                        first_session=sid,
                    ),
                )
            )
        if len(batch) >= 5000:
            log.append(batch)
            batch = []
    if batch:
        log.append(batch)
    engine_for(db).catch_up()


def floors(db: Database, session: str, skill: str) -> dict[str, Callable[[], object]]:
    """Each page's projection queries alone (as the CLI's --json reads them)."""

    def read(fn: Callable[..., object]) -> Callable[[], object]:
        def run() -> object:
            engine_for(db).catch_up()
            with db.read() as conn:
                return fn(conn)

        return run

    return {
        "/": read(lambda c: (list_sessions(c), skills_overview(c))),
        "/sessions": read(
            lambda c: (count_sessions(c, SessionFilter()), list_sessions(c, limit=50))
        ),
        "/sessions?q=issue+12": read(lambda c: list_sessions(c, search="issue 12", limit=50)),
        f"/session/{session}": read(
            lambda c: (spans_of(c, session), list_annotations(c, session_id=session))
        ),
        "/skills": read(skills_overview),
        f"/skill/{skill}": read(
            lambda c: (skill_report(c, skill), eval_runs(c, skill), lineage(c, skill))
        ),
        f"/queue?skill={skill}": read(lambda c: skill_sessions(c, skill)),
    }


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(db_path: Path, label: str, repeat: int, target_ms: float) -> bool:
    db = Database.open(db_path)
    engine_for(db).catch_up()
    with db.read() as conn:
        session = max(
            list_sessions(conn), key=lambda s: s.outcomes.success + s.outcomes.failure
        ).session_id
        skill = max(skills_overview(conn), key=lambda s: s.sessions).skill
    server = make_server(db, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    conn.request("GET", f"/?token={server.access.token}")
    response = conn.getresponse()
    response.read()
    cookie = response.getheader("Set-Cookie", "").split(";", 1)[0]

    def fetch(path: str) -> Callable[[], object]:
        def run() -> object:
            conn.request("GET", path, headers={"Cookie": cookie})
            answer = conn.getresponse()
            body = answer.read()
            if answer.status != 200:
                raise SystemExit(f"{path}: HTTP {answer.status}: {body[:200]!r}")
            return body

        return run

    ok = True
    print(f"\n{label} (target <= {target_ms:.0f} ms a page; best of {repeat})")
    print("| page | server ms | floor: its queries, ms | ratio |\n|---|---|---|---|")
    for path, floor in floors(db, session, skill).items():
        shown = path.replace(session, "ID").replace(skill, "SKILL")
        page = best(fetch(path), repeat) * 1000
        base = best(floor, repeat) * 1000
        ok &= page <= target_ms
        print(f"| `{shown}` | {page:.0f} | {base:.0f} | {page / max(base, 0.01):.1f} |")
    server.shutdown()
    server.server_close()
    db.close()
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--sessions", type=int, default=10_000)
    args = parser.parse_args()
    _logging.configure("warning")
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        home = extract(Path(tmp) / "home")
        subprocess.run(
            [program("skillopsd"), "--once"], env=home_env(home), check=True, capture_output=True
        )
        real = home / ".local" / "share" / "skillops" / "skillops.db"
        ok &= measure(real, "real corpus", args.repeat, 300)
        big = Path(tmp) / "synthetic.db"
        started = time.perf_counter()
        db = Database.open(big)
        synthetic(db, args.sessions)
        db.close()
        took = time.perf_counter() - started
        print(f"\n(built {args.sessions:,} synthetic sessions in {took:.0f} s)")
        ok &= measure(big, f"{args.sessions:,} synthetic sessions", args.repeat, 1000)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
