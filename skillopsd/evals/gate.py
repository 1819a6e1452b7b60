"""The promote gate: a version clears only on its newest full eval run under the suite of record.

Rules, in order:

1. Only a *full* run counts: every captured session of the skill and every suite of its file.
   A subset (``--session``, ``--last``, ``--since``, one ``--suite``) never clears nor holds
   it: choosing what the gate sees is exactly what it must not allow.
2. The newest full run of that exact version, under *any* suite file, is the evidence: a newer
   failure is never outweighed by an older pass, and a pass under another file (or an older
   version of the file) is not a pass under the suite as it is now.
3. It passed.
4. It covered every session of that version that the suite's cases match now (within the
   running test when there is one): sessions captured since it ran must be graded too.
5. It graded at least ``min_sessions`` sessions that still exist and loaded that version,
   each conversation counted once: a copy of another session (the same response and
   tool-call ids: a resumed or forked Claude Code session, a file copied and edited;
   projections.copies) is not one of them, and sessions with byte-identical transcripts
   count once (copies of one good session are one).

When that newest full run is the grading of an ``eval replay`` (every ``run`` case of the
suite, on sessions the agent wrote for them), it is the evidence for the ``run`` cases: rule 4
reads "it graded every ``run`` case", since its own sessions are all it grades and a live
session or an earlier replay is no answer to its tasks. Cases without ``run`` are not in a
replay: the newest full ``eval run`` that is not a replay must then also pass under the suite
of record and cover every session those cases match (replays' sessions aside), and the
distinct sessions of both count toward ``min_sessions``.
"""

from __future__ import annotations

import hashlib
from typing import Annotated

import apsw
import msgspec

from ..events import Database, EventLog
from ..events.types import TranscriptLineCaptured
from ..projections.annotations import newest_labels
from ..projections.replay_runs import replay_cases
from ..projections.session_views import find_session, spans_of
from ..projections.skill_views import RunRow, skill_sessions
from .discovery import same_file
from .evidence import build_evidence
from .graders import grade_case
from .manifest import Manifest

GATE_POLICY = "gate"


class GatePolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``PolicySet gate``: how many distinct graded sessions a passing run needs."""

    min_sessions: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 3


class GateDecision(msgspec.Struct, frozen=True):
    """Cleared or refused, why, and the run and sessions it rested on."""

    cleared: bool
    reason: str
    run: RunRow | None
    sessions_graded: list[str]
    min_sessions: int


class Population(msgspec.Struct, frozen=True):
    """The sessions of one version the gate may count, as the log holds them now.

    ``digests``: every session that exists and loaded the version (in the running test's
    window when there is one) -> the digest of its transcript bytes; ``matched``: those the
    suite's cases select, which the run must have graded.
    """

    digests: dict[str, str]
    matched: frozenset[str]
    window: str | None = None  # the running test's start, when the population is limited to it
    # Those the cases without ``run`` select, sessions ``eval replay`` wrote left out: what an
    # ``eval run`` beside a replay must have graded.
    plain: frozenset[str] = frozenset()
    # Sessions of the version that are copies of another session -> the one that counts.
    copies: dict[str, str] = {}


def _digest(db: Database, conn: apsw.Connection, session_id: str) -> str:
    """sha256 of the session's captured lines, in order (its id when nothing is captured)."""
    row = conn.execute(
        "SELECT agent, native_session_id FROM p_sessions WHERE session_id = ?", (session_id,)
    ).fetchone()
    sources = (
        [
            r[0]
            for r in conn.execute(
                "SELECT source_id FROM capture_sources WHERE agent = ? AND session = ?"
                " ORDER BY source_id",
                row,
            )
        ]
        if row
        else []
    )
    h = hashlib.sha256()
    lines = 0
    log = EventLog(db)
    for source in sources:
        for event in log.read_stream(f"source:{source}"):
            if not event.erased and isinstance(event.payload, TranscriptLineCaptured):
                h.update(event.payload.line.rstrip(b"\r\n") + b"\n")
                lines += 1
    return h.hexdigest() if lines else f"session:{session_id}"


def population(
    db: Database,
    conn: apsw.Connection,
    skill: str,
    version_hash: str,
    manifest: Manifest,
    window: str | None = None,
) -> Population:
    """The sessions of ``version_hash`` the gate counts (started at or after ``window``)."""
    every = skill_sessions(conn, skill, since=window, copies=True)
    copied = {
        s.session_id: s.copy_of
        for s in every
        if s.version_hash == version_hash and s.copy_of is not None
    }
    group = [s for s in every if s.version_hash == version_hash and s.copy_of is None]
    ids = [s.session_id for s in group]
    labels = newest_labels(conn, ids, skill=skill)
    replayed = replay_cases(conn, skill, ids)
    digests: dict[str, str] = {}
    matched: set[str] = set()
    plain: set[str] = set()
    for s in group:
        session = find_session(conn, s.session_id)
        if session is None:
            continue
        digests[s.session_id] = _digest(db, conn, s.session_id)
        evidence = build_evidence(session, spans_of(conn, s.session_id), labels.get(s.session_id))
        selected = [
            case
            for suite in manifest.suites
            for case in suite.cases
            if grade_case(case, evidence) is not None
        ]
        if selected:
            matched.add(s.session_id)
        if s.session_id not in replayed and any(c.run is None for c in selected):
            plain.add(s.session_id)
    return Population(
        digests=digests,
        matched=frozenset(matched),
        window=window,
        plain=frozenset(plain),
        copies=copied,
    )


def _refuse(reason: str, run: RunRow | None, graded: list[str], need: int) -> GateDecision:
    return GateDecision(False, reason, run, graded, need)


def decide(
    runs: list[RunRow],
    *,
    tag: str,
    suite_hash: str,
    suites: list[str],
    min_sessions: int,
    command: str,
    sessions: Population,
    captured: int | None = None,
    suite_path: str = "",
    replays: frozenset[str] = frozenset(),
    run_cases: frozenset[tuple[str, str]] = frozenset(),
    plain_cases: int = 0,
) -> GateDecision:
    """The gate over ``runs`` (one version's, newest first) for the suite of record now.

    ``captured`` (sessions that loaded the version so far) only sharpens the refusal message.
    ``replays``: the ids of runs that graded an ``eval replay``; ``run_cases``: (suite, case)
    of every case with ``run`` in the suite of record; ``plain_cases``: how many have none.
    """
    full = [r for r in runs if r.full]
    if not full:
        subsets = " (subset runs never clear it)" if runs else ""
        have = ""
        if captured is not None:
            short = max(0, min_sessions - captured)
            have = f"; {captured} captured so far" + (f", {short} more needed" if short else "")
        return _refuse(
            f"no full eval run of {tag}{subsets}; run `{command}` (every session, every"
            f" suite) over at least {min_sessions} sessions that loaded {tag}{have}",
            None,
            [],
            min_sessions,
        )
    run = full[0]
    short_id = run.run_id[:12]
    if run.suite_hash != suite_hash:
        how = (
            "an earlier evals.yaml"
            if not run.suite_path or not suite_path or same_file(run.suite_path, suite_path)
            else f"another suite file ({run.suite_path})"
        )
        return _refuse(
            f"the newest full run of {tag} ({short_id}) used {how}, not the suite as it is now;"
            f" run `{command}`",
            run,
            [],
            min_sessions,
        )
    if not run.passed:
        return _refuse(
            f"the newest run of {tag} ({short_id}) failed; an older pass does not count",
            run,
            [],
            min_sessions,
        )
    graded = set(run.graded_sessions)
    also = ""
    if run.run_id in replays:
        done = {(c.suite, c.case) for c in run.cases}
        left = sorted(run_cases - done)
        if left:
            return _refuse(
                f"the newest run of {tag} ({short_id}) replayed only some `run` cases"
                f" ({len(left)} not, first {left[0][0]}/{left[0][1]}); run `skillopsctl eval"
                f" replay` over every case, or `{command}`",
                run,
                [],
                min_sessions,
            )
        if plain_cases:
            normal = next((r for r in full if r.run_id not in replays), None)
            need = f"{plain_cases} case(s) without `run` are not replayed"
            if normal is None or normal.suite_hash != suite_hash:
                return _refuse(
                    f"the newest replay of {tag} ({short_id}) passed, but {need}: run"
                    f" `{command}` under the suite as it is now to grade them",
                    run,
                    [],
                    min_sessions,
                )
            if not normal.passed:
                return _refuse(
                    f"the newest replay of {tag} ({short_id}) passed, but the newest eval run"
                    f" of {tag} ({normal.run_id[:12]}) failed and {need}",
                    run,
                    [],
                    min_sessions,
                )
            normal_graded = set(normal.graded_sessions)
            missing = sorted(sessions.plain - normal_graded)
            if missing:
                return _refuse(
                    f"the newest replay of {tag} ({short_id}) passed, but the newest eval run"
                    f" of {tag} ({normal.run_id[:12]}) did not grade {len(missing)} session(s)"
                    f" the cases without `run` match (first {missing[0][:12]}; captured"
                    f" since?); run `{command}`",
                    run,
                    [],
                    min_sessions,
                )
            graded |= normal_graded
            also = f" and eval run {normal.run_id[:12]} the cases without `run`"
    else:
        missing = sorted(sessions.matched - graded)
        if missing:
            return _refuse(
                f"the newest run of {tag} ({short_id}) did not grade {len(missing)} session(s)"
                f" of {tag} the suite matches (first {missing[0][:12]}; captured since?);"
                f" run `{command}`",
                run,
                [],
                min_sessions,
            )
    what = (
        f"replay of {tag} ({short_id})" if run.run_id in replays else f"run of {tag} ({short_id})"
    )
    counted: dict[str, str] = {}
    for sid in sorted(graded):
        digest = sessions.digests.get(sid)
        if digest is not None and digest not in counted:
            counted[digest] = sid
    kept = sorted(counted.values())
    if len(kept) < min_sessions:
        notes = []
        resumed = sum(1 for s in graded if s in sessions.copies)
        gone = sum(1 for s in graded if s not in sessions.digests and s not in sessions.copies)
        copies = len(graded) - gone - resumed - len(kept)
        if gone:
            where = "in the running test" if sessions.window else "now"
            notes.append(f"{gone} graded session(s) are not sessions of {tag} {where}")
        if resumed:
            notes.append(
                f"{resumed} are copies of another session (the same responses: resumed,"
                " forked or copied)"
            )
        if copies:
            notes.append(f"{copies} are byte-identical copies of another")
        extra = f" ({'; '.join(notes)})" if notes else ""
        return _refuse(
            f"the newest {what} passed{also} but counts {len(kept)} distinct"
            f" session(s){extra}; min_sessions is {min_sessions}:"
            f" {min_sessions - len(kept)} more needed (capture more sessions of {tag},"
            f" then `{command}`)",
            run,
            kept,
            min_sessions,
        )
    window = " in the running test" if sessions.window else ""
    return GateDecision(
        True,
        f"the newest {what} passed{also} over {len(kept)} distinct sessions{window}",
        run,
        kept,
        min_sessions,
    )
