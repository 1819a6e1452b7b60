"""Skill versions are content: a body first loaded in a session becomes ``vN`` = max+1, once,
even when processes race; derived TOOL/SKILL spans carry their agent-neutral kind."""

from __future__ import annotations

import hashlib
import multiprocessing
from pathlib import Path
from typing import Any

import msgspec
import pytest
from click.testing import CliRunner

from skillopsd.cli import cli
from skillopsd.derive import normalize_skill_body
from skillopsd.events import Database, EventLog, decode_payload
from skillopsd.events.types import SkillVersionCreated
from skillopsd.projections import engine_for
from skillopsd.projections.session_views import spans_of
from skillopsd.versions.observed import Observed, VersionRecorder

from ._capture_helpers import FIXTURES


def _versions(db: Database, skill: str | None = None) -> list[SkillVersionCreated]:
    with db.read():
        out = [e.payload for e in EventLog(db).read(types=["SkillVersionCreated"])]
    return [v for v in out if skill is None or v.skill == skill]  # type: ignore[attr-defined,misc]


def _record(path: str, label: str, hashes: list[str], barrier: object) -> None:
    db = Database.open(Path(path))
    recorder = VersionRecorder(db)
    barrier.wait()  # type: ignore[attr-defined]
    for n, digest in enumerate(hashes):
        # One append per body, interleaving with the other process's appends.
        recorder.note(Observed("", f"{label}-{n}", n, "race", digest, f"body {digest}", None))
        recorder.record()
    db.close()


def test_racing_processes_never_share_a_tag(tmp_path: Path) -> None:
    path = tmp_path / "race.db"
    Database.open(path).close()
    shared = [f"shared{n}" for n in range(5)]
    a = [*shared, *(f"a{n}" for n in range(12))]
    b = [*(f"b{n}" for n in range(12)), *shared]
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [
        ctx.Process(target=_record, args=(str(path), name, hashes, barrier))
        for name, hashes in (("a", a), ("b", b))
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    db = Database.open(path)
    versions = _versions(db, "race")
    assert sorted(v.version_hash for v in versions) == sorted(set(a) | set(b))
    assert sorted(v.tag for v in versions) == list(range(1, len(set(a) | set(b)) + 1))
    # Tags grow in log order: max+1 each time.
    assert [v.tag for v in versions] == sorted(v.tag for v in versions)
    db.close()


def test_the_same_body_again_is_no_new_version(tmp_path: Path) -> None:
    db = Database.open(tmp_path / "x.db")
    recorder = VersionRecorder(db)
    for session in ("s1", "s2"):
        recorder.note(Observed("", session, 0, "k", "h1", "b", None))
    recorder.note(Observed("", "s3", 0, "k", "h2", "b2", None))
    assert recorder.record() == 2
    recorder.note(Observed("", "s4", 0, "k", "h1", "b", None))
    assert recorder.record() == 0
    assert [(v.version_hash, v.tag, v.first_session) for v in _versions(db)] == [
        ("h1", 1, "s1"),
        ("h2", 2, "s3"),
    ]
    db.close()


def test_an_old_payload_without_source_decodes_as_observed() -> None:
    old = msgspec.msgpack.encode(
        {"type": "SkillVersionCreated", "skill": "k", "version_hash": "h", "tag": 1, "body": "b"}
    )
    event = decode_payload("SkillVersionCreated", 1, old)
    assert isinstance(event, SkillVersionCreated)
    assert (event.source, event.first_session, event.body) == ("observed", None, "b")


def test_ingested_real_sessions_record_versions_and_kinds(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    files = [str(FIXTURES / n) for n in ("claude_skill.jsonl", "codex_skill.jsonl")]
    result = CliRunner().invoke(cli, ["--db", str(path), "ingest", *files])
    assert result.exit_code == 0, result.output
    db = Database.open(path)
    engine_for(db).catch_up()
    versions = {v.skill: v for v in _versions(db)}
    assert set(versions) == {"slugify-title", "code-review"}
    slug = versions["slugify-title"]
    assert slug.tag == 1 and slug.source == "observed" and slug.first_session
    assert slug.directory and slug.directory.endswith("/.claude/skills/slugify-title")
    # The recorded body is the normalized one its hash identifies.
    assert slug.body.startswith("# slugify-title")
    assert hashlib.sha256(slug.body.encode()).hexdigest() == slug.version_hash
    assert normalize_skill_body(slug.body) == slug.body
    kinds = {
        span.attributes.get("gen_ai.tool.name"): span.attributes.get("skillops.tool.kind")
        for (sid,) in db.conn.execute("SELECT session_id FROM p_sessions").fetchall()
        for span in spans_of(db.conn, sid)
        if span.kind in ("TOOL", "SKILL")
    }
    assert kinds == {"Skill": "skill", "exec_command": "skill"}
    db.close()


def test_a_stale_read_retries_and_takes_the_next_tag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = Database.open(tmp_path / "x.db")
    other = VersionRecorder(db)
    mine = VersionRecorder(db)
    real = VersionRecorder._known
    reads: list[int] = []

    def stale_first(self: VersionRecorder, skill: str) -> Any:
        if self is not mine:
            return real(self, skill)
        reads.append(1)
        if len(reads) == 1:
            # Read before the other process appended; it appends before we do.
            snapshot = real(self, skill)
            other.note(Observed("", "theirs", 0, "k", "h-theirs", "", None))
            other.record()
            return snapshot
        return real(self, skill)

    monkeypatch.setattr(VersionRecorder, "_known", stale_first)
    mine.note(Observed("", "mine", 0, "k", "h-mine", "", None))
    assert mine.record() == 1
    assert len(reads) >= 2  # the conflict was seen and the stream read again
    assert [(v.version_hash, v.tag) for v in _versions(db)] == [("h-theirs", 1), ("h-mine", 2)]
    db.close()


def test_derived_calls_carry_their_kind_across_agents(tmp_path: Path) -> None:
    from ._skill_sessions import T0, claude_session, codex_session, skill_dir

    home = tmp_path / "home"
    directory = skill_dir(tmp_path / "skills", "guard", "b")
    common = {"skill": "guard", "skill_dir": directory, "body": "b", "prompt": "p", "final": "f"}
    files = [
        claude_session(
            home,
            session="00000001-0000-4000-8000-000000000000",
            tools=["Read", "Edit", "Bash", "WebFetch", "Grep"],
            start=T0,
            **common,
        ),
        codex_session(
            home,
            session="019e0002-0000-7000-8000-000000000000",
            tools=["apply_patch", "exec_command"],
            start=T0,
            **common,
        ),
    ]
    db = tmp_path / "s.db"
    result = CliRunner().invoke(cli, ["--db", str(db), "ingest", *map(str, files)])
    assert result.exit_code == 0, result.output
    database = Database.open(db)
    engine_for(database).catch_up()
    rows = [
        (
            agent,
            span.attributes.get("gen_ai.tool.name"),
            span.kind,
            span.attributes.get("skillops.tool.kind"),
        )
        for agent, sid in database.conn.execute(
            "SELECT agent, session_id FROM p_sessions ORDER BY agent"
        ).fetchall()
        for span in spans_of(database.conn, sid)
        if span.kind in ("TOOL", "SKILL")
    ]
    database.close()
    assert [(a, t, k) for a, t, _, k in rows] == [
        ("claude", "Skill", "skill"),
        ("claude", "Read", "read"),
        ("claude", "Edit", "edit"),
        ("claude", "Bash", "shell"),
        ("claude", "WebFetch", "web"),
        ("claude", "Grep", "search"),
        ("codex", "exec_command", "skill"),  # the read of SKILL.md: a SKILL span
        ("codex", "apply_patch", "edit"),
        ("codex", "exec_command", "shell"),
    ]
