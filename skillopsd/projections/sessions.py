"""Sessions and their spans, as the newest derivation describes them, with verdicts.

A ``PayloadsErased`` (forget, retention) removes the rows of every session whose derivation
it erased and leaves a tombstone in ``p_forgotten``: the engine never folds an erased event,
so a rebuild never creates those rows and deleting them here keeps the incremental state
equal to the replay. Lines the session gains later are derived anew and bring rows back;
the tombstone stays (a session can be forgotten more than once: one row per erasure).
"""

from __future__ import annotations

import re
from typing import Any, cast

import apsw
import msgspec

from ..events import RecordedEvent
from ..events.types import PayloadsErased, PolicySet, SessionDerived, SessionPurged, SpanDerived
from ._engine import Projection
from ._spans import delete_stale
from .verdict import POLICY_NAME, USER_STOPS, Call, SessionEnd, VerdictPolicy, verdict

_json = msgspec.json.Encoder()
_SCHEMA = """
CREATE TABLE p_sessions (
    session_id TEXT PRIMARY KEY, agent TEXT NOT NULL, native_session_id TEXT NOT NULL,
    title TEXT, cwd TEXT, started_at TEXT, ended_at TEXT, turns INTEGER NOT NULL,
    tools INTEGER NOT NULL, skills TEXT NOT NULL, tokens_input INTEGER, tokens_output INTEGER,
    tokens_cache_read INTEGER, tokens_cache_creation INTEGER, tokens_note TEXT,
    deriver_version INTEGER NOT NULL, parent_session_id TEXT, success INTEGER NOT NULL DEFAULT 0,
    failure INTEGER NOT NULL DEFAULT 0, blocked INTEGER NOT NULL DEFAULT 0,
    unknown INTEGER NOT NULL DEFAULT 0, verdict TEXT, verdict_reason TEXT, verdict_spans TEXT,
    derived_at_position INTEGER NOT NULL
);
CREATE INDEX p_sessions_by_native ON p_sessions (native_session_id);
CREATE INDEX p_sessions_by_start ON p_sessions (started_at);
CREATE TABLE p_session_skills (
    session_id TEXT NOT NULL, skill TEXT NOT NULL, PRIMARY KEY (session_id, skill)
) WITHOUT ROWID;
CREATE INDEX p_session_skills_by_skill ON p_session_skills (skill);
CREATE TABLE p_spans (
    span_id TEXT PRIMARY KEY, session_id TEXT NOT NULL,
    parent_span_id TEXT, kind TEXT NOT NULL, name TEXT NOT NULL, start TEXT, "end" TEXT,
    outcome TEXT, attributes TEXT, deriver_version INTEGER NOT NULL,
    seq INTEGER NOT NULL, position INTEGER NOT NULL, tokens INTEGER
);
CREATE INDEX p_spans_by_session ON p_spans (session_id, seq);
-- A skill's loads by its name (skill_folders, evals/discovery): not a scan of every span.
CREATE INDEX p_spans_by_skill ON p_spans (json_extract(attributes, '$."skill.name"'))
    WHERE kind = 'SKILL';
CREATE TABLE p_skill_loads (
    session_id TEXT NOT NULL, skill TEXT NOT NULL, loaded_at TEXT, version_hash,
    version_seq INTEGER, calls INTEGER, tokens INTEGER, PRIMARY KEY (skill, session_id)
) WITHOUT ROWID;
CREATE INDEX p_skill_loads_by_session ON p_skill_loads (session_id);
CREATE TABLE p_policies (name TEXT PRIMARY KEY, "values" TEXT NOT NULL, position INTEGER);
CREATE TABLE p_purged (session_id TEXT PRIMARY KEY, position INTEGER NOT NULL);
CREATE TABLE p_merged (
    session_id TEXT PRIMARY KEY, native_session_id TEXT NOT NULL, merged_into TEXT NOT NULL
);
CREATE TABLE p_forgotten (
    session_id TEXT NOT NULL, position INTEGER NOT NULL, forgotten_at TEXT NOT NULL,
    author TEXT NOT NULL, reason TEXT NOT NULL, scope TEXT NOT NULL, events INTEGER NOT NULL,
    PRIMARY KEY (session_id, position)
) WITHOUT ROWID;
"""
# The span attributes queries read in SQL (json_extract on ``attributes``); p_spans keeps
# only these. Every other attribute, the trace id included, stays in the SpanDerived event at
# ``position``, which session_views.spans_of reads back (a session's spans share a payload
# frame, so that is one decompression): copying them made p_spans a tenth of the database.
QUERIED_ATTRIBUTES = frozenset(
    {
        "skillops.turns_from_end",
        "skillops.work_turns_from_end",
        "skillops.resolved",
        "skillops.call.probe",
        "skillops.turn.aborted",
        "skillops.turn.end",
        "skillops.turn.number",
        "skillops.turn.api_error",
        "skillops.call.bookkeeping",
        "skillops.call.noop",
        "skillops.call.sandboxed",
        "skillops.call.pending",
        "skillops.call.what",
        "skillops.call.why",
        "skillops.call.turn",
        "skillops.call.narrower",
        "skillops.result.masked",
        "skillops.tool.kind",
        "skill.name",
        "skill.content_hash",
        "skill.directory",
    }
)
# SKILL spans also keep their call's arguments: evals/discovery reads them in SQL.
QUERIED_SKILL_ATTRIBUTES = QUERIED_ATTRIBUTES | {"gen_ai.tool.call.arguments"}
# Turns also keep their prompt (clipped by the deriver): ``sessions --search`` and the
# dashboard search it in SQL.
QUERIED_CHAIN_ATTRIBUTES = QUERIED_ATTRIBUTES | {"gen_ai.prompt"}
# The attributes p_spans keeps, by span kind.
_KEPT = {"SKILL": QUERIED_SKILL_ATTRIBUTES, "CHAIN": QUERIED_CHAIN_ATTRIBUTES}
# Tables whose rows belong to one session and go when its derivation is erased.
_SESSION_TABLES = ("p_sessions", "p_session_skills", "p_spans", "p_merged", "p_skill_loads")
# What a merged or purged session loses (its p_merged row, or p_purged's, stays).
_SESSION_ROWS = ("p_sessions", "p_session_skills", "p_spans", "p_skill_loads")
# p_spans.seq of a span no SessionDerived has ordered yet: after every ordered one.
_UNORDERED = 1_000_000_000
# The tokens a span reports (input plus output), kept in p_spans.tokens.
_TOKEN_KEYS = ("gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens")


class Sessions(Projection):
    """The tables ``sessions`` and ``session show`` read, verdicts included."""

    name = "sessions"
    # 6: what the token figures cover (tokens_note). 7: verdict reasons and spans, the
    # unfinished verdict. 8: turns keep their prompt in p_spans. 9: a failed test run's
    # narrower re-run (skillops.call.narrower) in p_spans. 10: each span's tokens
    # (p_spans.tokens) and p_skill_loads, so ``skill show`` reads no span payload; SKILL
    # spans indexed by name.
    version = 10
    tables = (
        "p_sessions",
        "p_session_skills",
        "p_spans",
        "p_policies",
        "p_purged",
        "p_merged",
        "p_forgotten",
        "p_skill_loads",
    )
    handles = frozenset(
        {"SessionDerived", "SpanDerived", "PolicySet", "SessionPurged", "PayloadsErased"}
    )

    def create(self, conn: apsw.Connection) -> None:
        conn.execute(_SCHEMA)

    def apply(self, conn: apsw.Connection, event: RecordedEvent) -> None:
        self.apply_many(conn, [event])

    def apply_many(self, conn: apsw.Connection, events: list[RecordedEvent]) -> None:
        dirty: set[str] = set()
        purged = {r[0] for r in conn.execute("SELECT session_id FROM p_purged")}
        spans: list[tuple[Any, ...]] = []  # consecutive SpanDerived rows, written together
        for event in events:
            payload = event.payload
            if isinstance(payload, SpanDerived):
                if payload.session_id not in purged:
                    spans.append(_span_row(payload, event.position))
                    dirty.add(payload.session_id)
                continue
            if (
                isinstance(payload, SessionDerived)
                and payload.merged_into is None
                and payload.session_id not in purged
            ):
                # Its spans just folded are written in the order it gives them, not sorted
                # last and then ordered one UPDATE each (a third of writing them).
                order = {span_id: i for i, span_id in enumerate(payload.span_ids, 1)}
                ordered = self._write_spans(conn, spans, order)
                self._session(conn, payload, event.position, order, ordered)
                dirty.add(payload.session_id)
                continue
            self._write_spans(conn, spans)
            if isinstance(payload, SessionDerived) and payload.merged_into is not None:
                for table in _SESSION_ROWS:
                    conn.execute(f"DELETE FROM {table} WHERE session_id = ?", (payload.session_id,))
                conn.execute(
                    "INSERT OR REPLACE INTO p_merged VALUES (?, ?, ?)",
                    (payload.session_id, payload.native_session_id, payload.merged_into),
                )
                dirty.discard(payload.session_id)
            elif isinstance(payload, SessionDerived):
                pass  # of a purged session: nothing
            elif isinstance(payload, PolicySet) and payload.name == POLICY_NAME:
                self._flush(conn, dirty)
                dirty.clear()
                scope = _machine_of(event.stream)
                conn.execute(
                    'INSERT OR REPLACE INTO p_policies (name, "values", position) VALUES (?, ?, ?)',
                    (
                        f"{scope}/{payload.name}" if scope else payload.name,
                        _json.encode(payload.values).decode(),
                        event.position,
                    ),
                )
                self._reverdict(conn, None)
            elif isinstance(payload, SessionPurged):
                purged.add(payload.session_id)
                conn.execute(
                    "INSERT OR REPLACE INTO p_purged VALUES (?, ?)",
                    (payload.session_id, event.position),
                )
                for table in _SESSION_ROWS:
                    conn.execute(f"DELETE FROM {table} WHERE session_id = ?", (payload.session_id,))
                dirty.discard(payload.session_id)
            elif isinstance(payload, PayloadsErased):
                self._forget(conn, payload, event)
                dirty.difference_update(payload.session_ids)
        self._write_spans(conn, spans)
        self._flush(conn, dirty)

    @staticmethod
    def _forget(conn: apsw.Connection, erased: PayloadsErased, event: RecordedEvent) -> None:
        for session_id in sorted(set(erased.session_ids)):
            for table in _SESSION_TABLES:
                conn.execute(f"DELETE FROM {table} WHERE session_id = ?", (session_id,))
            conn.execute(
                "INSERT OR REPLACE INTO p_forgotten VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    session_id,
                    event.position,
                    event.recorded_at,
                    erased.author,
                    erased.reason,
                    erased.scope,
                    len(erased.positions),
                ),
            )

    @staticmethod
    def _write_spans(
        conn: apsw.Connection,
        rows: list[tuple[Any, ...]],
        order: dict[str, int] | None = None,
    ) -> set[str]:
        """Write the span rows folded so far (and forget them); the ids of those written
        with their place in ``order`` (their session's span ids, numbered from 1)."""
        if not rows:
            return set()
        # A new span sorts last until its session's next SessionDerived orders it; one that
        # SessionDerived orders now takes its place, as that SessionDerived's UPDATE would
        # give it. Rows are written in the order they were folded, whichever seq they take.
        ordered: set[str] = set()
        params: list[tuple[object, ...]] = []
        for row in rows:
            seq = _UNORDERED
            if order is not None:
                seq = order.get(row[0], _UNORDERED)
                if seq != _UNORDERED:
                    ordered.add(row[0])
            params.append((*row, seq))
        conn.executemany(
            "INSERT INTO p_spans (span_id, session_id, parent_span_id, kind, name,"
            ' start, "end", outcome, attributes, deriver_version, position, tokens, seq)'
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(span_id) DO UPDATE SET session_id = excluded.session_id,"
            " parent_span_id = excluded.parent_span_id,"
            " kind = excluded.kind, name = excluded.name, start = excluded.start,"
            ' "end" = excluded."end", outcome = excluded.outcome,'
            " attributes = excluded.attributes, deriver_version = excluded.deriver_version,"
            " position = excluded.position, tokens = excluded.tokens,"
            f" seq = CASE excluded.seq WHEN {_UNORDERED} THEN seq ELSE excluded.seq END",
            params,
        )
        rows.clear()
        return ordered

    def _session(
        self,
        conn: apsw.Connection,
        s: SessionDerived,
        position: int,
        order: dict[str, int],
        ordered: set[str],
    ) -> None:
        """Fold a SessionDerived (``order``: its span ids numbered from 1; ``ordered``: those
        already written in their place)."""
        # The newest derivation's span set is the session: spans it no longer has go.
        delete_stale(conn, "p_spans", s.session_id, order)
        # Keep spans in the deriver's order (of any session: a span is the id's); one whose
        # seq is already its place is left as it is.
        conn.executemany(
            "UPDATE p_spans SET seq = ?1 WHERE span_id = ?2 AND seq IS NOT ?1",
            [(i, span_id) for span_id, i in order.items() if span_id not in ordered],
        )
        conn.execute(
            "INSERT OR REPLACE INTO p_sessions (session_id, agent, native_session_id, title, cwd,"
            " started_at, ended_at, turns, tools, skills, tokens_input, tokens_output,"
            " tokens_cache_read, tokens_cache_creation, tokens_note, deriver_version,"
            " parent_session_id, derived_at_position)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                s.session_id,
                s.agent,
                s.native_session_id,
                s.title,
                s.cwd,
                s.started_at,
                s.ended_at,
                s.turns,
                s.tools,
                _json.encode(s.skills).decode(),
                s.tokens.input,
                s.tokens.output,
                s.tokens.cache_read,
                s.tokens.cache_creation,
                s.tokens_note,
                s.deriver_version,
                s.parent_session_id,
                position,
            ),
        )
        conn.execute("DELETE FROM p_session_skills WHERE session_id = ?", (s.session_id,))
        conn.executemany(
            "INSERT INTO p_session_skills VALUES (?, ?)", [(s.session_id, k) for k in s.skills]
        )

    def _flush(self, conn: apsw.Connection, dirty: set[str]) -> None:
        if not dirty:
            return
        ids = sorted(dirty)
        # Sessions with no p_sessions row yet (spans folded before their SessionDerived)
        # have no verdict to set, only their p_skill_loads (empty or not).
        streams = dict(
            conn.execute(
                "SELECT s.session_id, e.stream FROM p_sessions s"
                " LEFT JOIN events e ON e.position = s.derived_at_position"
                " WHERE s.session_id IN (SELECT value FROM json_each(?))",
                (_json.encode(ids).decode(),),
            )
        )
        policies: dict[str, VerdictPolicy] = {}
        for session_id in ids:
            spans = _spans_of(conn, session_id)
            if session_id in streams:
                self._judge(conn, session_id, streams[session_id], spans, policies)
            _loads(conn, session_id, spans)

    def _policy(self, conn: apsw.Connection, machine: str = "") -> VerdictPolicy:
        """The verdict policy a session is judged by: on a team replica its own machine's
        (each machine judges its sessions by the policy it set), else the log's."""
        row = None
        if machine:
            row = conn.execute(
                'SELECT "values" FROM p_policies WHERE name = ?', (f"{machine}/{POLICY_NAME}",)
            ).fetchone()
        if row is None:
            row = conn.execute(
                'SELECT "values" FROM p_policies WHERE name = ?', (POLICY_NAME,)
            ).fetchone()
        if row is None:
            return VerdictPolicy()
        try:
            return VerdictPolicy.from_values(msgspec.json.decode(row[0]))
        except (msgspec.ValidationError, TypeError):
            return VerdictPolicy()

    def _reverdict(self, conn: apsw.Connection, session_id: str | None) -> None:
        where = "WHERE s.session_id = ?" if session_id else ""
        args = (session_id,) if session_id else ()
        # The stream of the derivation says, on a team replica, whose session it is.
        rows = conn.execute(
            "SELECT s.session_id, e.stream FROM p_sessions s"
            f" LEFT JOIN events e ON e.position = s.derived_at_position {where}",
            args,
        ).fetchall()
        policies: dict[str, VerdictPolicy] = {}
        for row_id, stream in rows:
            sid = str(row_id)
            self._judge(conn, sid, stream, _spans_of(conn, sid), policies)

    def _judge(
        self,
        conn: apsw.Connection,
        sid: str,
        stream: object,
        spans: list[_Span],
        policies: dict[str, VerdictPolicy],
    ) -> None:
        """Set one session's verdict and call counts from its spans (``policies``: those
        read so far, by machine; none changes while a chunk's sessions are judged)."""
        machine = _machine_of(str(stream or ""))
        if machine not in policies:
            policies[machine] = self._policy(conn, machine)
        end, counts = _end_of(spans)
        decided = verdict(end, policies[machine])
        conn.execute(
            "UPDATE p_sessions SET success = ?, failure = ?, blocked = ?, unknown = ?,"
            " verdict = ?, verdict_reason = ?, verdict_spans = ? WHERE session_id = ?",
            (
                counts["success"],
                counts["failure"],
                counts["blocked"],
                counts["unknown"],
                decided.value,
                decided.reason,
                _json.encode(decided.spans).decode() if decided.spans else None,
                sid,
            ),
        )


# A team replica stores a machine's own streams as ``MACHINE/STREAM`` (team/replica.py).
_MACHINE_STREAM = re.compile(r"([0-9a-f]{32})/")


def _machine_of(stream: str) -> str:
    """The machine whose stream this is on a team replica; "" on a local log."""
    found = _MACHINE_STREAM.match(stream)
    return found.group(1) if found else ""


_decode_attributes = msgspec.json.Decoder(dict[str, Any])
_INT64 = range(-(2**63), 2**63)


def _sql(value: object) -> object:
    """An attribute's value as ``json_extract`` on p_spans.attributes gives it: true and
    false as 1 and 0, a list as its JSON text, an integer beyond 64 bits as a float. (The
    verdict's facts and the loads' names used to be read with json_extract, a dozen per
    span, each parsing the row's JSON again; these keep their values exactly.)"""
    if value is True or value is False:
        return int(value)
    if isinstance(value, list | dict):
        return _json.encode(value).decode()
    if isinstance(value, int) and value not in _INT64:
        return float(value)
    return value


class _Span(msgspec.Struct, array_like=True):
    """What the verdict and p_skill_loads read of one span in p_spans (its attributes
    decoded once, None where absent)."""

    span_id: str
    kind: str
    parent_span_id: str | None
    outcome: str | None
    start: str | None
    seq: int
    tokens: int | None
    attributes: dict[str, Any]

    def fact(self, name: str) -> object:
        """``json_extract(attributes, '$."name"')``."""
        value = self.attributes.get(name)
        return value if value is None or type(value) is str else _sql(value)


def _spans_of(conn: apsw.Connection, sid: str) -> list[_Span]:
    """The session's rows of p_spans, in the order of its index (seq, then rowid): the order
    the queries that read them one kind at a time saw them in."""
    spans = []
    for span_id, kind, parent, outcome, start, seq, tokens, attributes in conn.execute(
        "SELECT span_id, kind, parent_span_id, outcome, start, seq, tokens, attributes"
        " FROM p_spans WHERE session_id = ? ORDER BY seq, rowid",
        (sid,),
    ):
        decoded = _decode_attributes.decode(attributes) if attributes is not None else {}
        spans.append(_Span(span_id, kind, parent, outcome, start, seq, tokens, decoded))
    return spans


def _session_end(conn: apsw.Connection, sid: str) -> tuple[SessionEnd, dict[str, int]]:
    """The facts the verdict weighs, folded from the session's spans (see derive/_ending.py),
    and the session's calls counted by outcome."""
    return _end_of(_spans_of(conn, sid))


def _end_of(spans: list[_Span]) -> tuple[SessionEnd, dict[str, int]]:
    """:func:`_session_end` of spans read by :func:`_spans_of`."""
    counts = {"success": 0, "failure": 0, "blocked": 0, "unknown": 0}
    calls: list[tuple[str, int, Call]] = []
    # The last top-level turn that says how it ended: the greatest (start, seq), the first
    # of equals in index order (as ORDER BY ... DESC LIMIT 1 picked it).
    last_turn: _Span | None = None
    last_key: tuple[str, int] = ("", 0)
    for span in spans:
        if span.kind == "CHAIN":
            if span.parent_span_id is None and span.fact("skillops.turn.end") is not None:
                key = (span.start or "", span.seq)
                if last_turn is None or key > last_key:
                    last_turn, last_key = span, key
            continue
        if span.kind != "TOOL" and span.kind != "SKILL":
            continue
        outcome = span.outcome
        counts[str(outcome) if outcome else "unknown"] += 1
        pending = span.fact("skillops.call.pending")
        masked = span.fact("skillops.result.masked")
        # A run whose hidden status its output did not tell: no outcome, but it ran.
        unknown = outcome is None and masked is not None
        if outcome is None and not pending and not unknown:
            continue
        from_end = span.fact("skillops.turns_from_end")
        work_from_end = span.fact("skillops.work_turns_from_end")
        turn = span.fact("skillops.call.turn")
        call = Call(
            span_id=str(span.span_id),
            outcome=str(outcome) if outcome else None,
            turns_from_end=from_end if isinstance(from_end, int) else None,
            work_turns_from_end=work_from_end if isinstance(work_from_end, int) else None,
            resolved=bool(span.fact("skillops.resolved")),
            harmless=bool(span.fact("skillops.call.probe"))
            or bool(span.fact("skillops.call.noop"))
            or bool(span.fact("skillops.call.sandboxed")),
            bookkeeping=bool(span.fact("skillops.call.bookkeeping")),
            pending=bool(pending),
            what=str(span.fact("skillops.call.what") or ""),
            why=str(span.fact("skillops.call.why") or ""),
            turn=turn if isinstance(turn, int) else None,
            narrower=str(span.fact("skillops.call.narrower") or ""),
            unknown=unknown,
        )
        calls.append((span.start or "", span.seq, call))
    calls.sort(key=lambda c: (c[0], c[1]))
    worked = any(
        c.turns_from_end == 0 and (c.outcome is not None or c.unknown) for _s, _q, c in calls
    )
    aborted = last_turn.fact("skillops.turn.aborted") if last_turn is not None else None
    number = last_turn.fact("skillops.turn.number") if last_turn is not None else None
    # An interrupt cut work short only if the last turn had calls: "exit" typed after the
    # answer and then interrupted is the user leaving, not abandoning.
    interrupted = worked and last_turn is not None and aborted in USER_STOPS
    end = SessionEnd(
        calls=[c for _s, _q, c in calls],
        last_turn=number if isinstance(number, int) else None,
        last_turn_span=str(last_turn.span_id) if last_turn is not None else None,
        interrupted=interrupted,
        api_error=last_turn is not None and bool(last_turn.fact("skillops.turn.api_error")),
        # A turn the user or the agent stopped has ended, answered or not.
        end=None
        if aborted is not None or last_turn is None
        else cast("str | None", last_turn.fact("skillops.turn.end")),
    )
    return end, counts


def _loads(conn: apsw.Connection, sid: str, spans: list[_Span]) -> None:
    """The session's rows of p_skill_loads: per skill name it loaded, what ``skill show``
    reads instead of the spans (the first load's time, the version the name's last SKILL
    span named and that span's place, and from the first load on the tool calls made and
    the tokens its model calls reported). Folded from the session's rows in p_spans, so it
    is whatever they are, as a rebuild folds them; span_id breaks a tie of seq (spans the
    session's next derivation orders). From the rows :func:`_spans_of` read: SQL doing the
    same per name cost ten times as much per session folded."""
    conn.execute("DELETE FROM p_skill_loads WHERE session_id = ?", (sid,))
    first: dict[str, str | None] = {}
    named: dict[str, tuple[int, str, object]] = {}  # (seq, span_id, hash) of the last
    for span in spans:
        if span.kind != "SKILL":
            continue
        name = span.fact("skill.name")
        if not isinstance(name, str):
            continue
        start = span.start
        at = first.setdefault(name, None)
        if start is not None and (at is None or start < at):
            first[name] = start
        digest = span.fact("skill.content_hash")
        if digest is not None and (name not in named or (span.seq, span.span_id) > named[name][:2]):
            named[name] = (span.seq, span.span_id, digest)
    if not first:
        return
    out = []
    for name, at in sorted(first.items()):
        calls: int | None = None
        tokens: int | None = None
        if at is not None:
            after = [
                (s.kind, s.tokens)
                for s in spans
                if s.kind in _LOAD_KINDS and s.start is not None and s.start >= at
            ]
            calls = sum(1 for kind, _used in after if kind == "TOOL")
            counted = [used for kind, used in after if kind == "LLM" and used is not None]
            tokens = sum(counted) if counted else None
        seq, _span, digest = named.get(name, (None, None, None))
        out.append((sid, name, at, digest, seq, calls, tokens))
    conn.executemany("INSERT INTO p_skill_loads VALUES (?, ?, ?, ?, ?, ?, ?)", out)


_LOAD_KINDS = frozenset({"SKILL", "TOOL", "LLM"})


def _span_row(span: SpanDerived, position: int) -> tuple[Any, ...]:
    attributes = span.attributes
    keep = _KEPT.get(span.kind, QUERIED_ATTRIBUTES)
    # A model call's attributes are none of them: tested in C before a dict is built.
    queried = (
        None if keep.isdisjoint(attributes) else {k: v for k, v in attributes.items() if k in keep}
    )
    tokens = None
    for key in _TOKEN_KEYS:
        used = attributes.get(key)
        if isinstance(used, int) and not isinstance(used, bool):
            tokens = used if tokens is None else tokens + used
    return (
        span.span_id,
        span.session_id,
        span.parent_span_id,
        span.kind,
        span.name,
        span.start,
        span.end,
        span.outcome,
        _json.encode(queried).decode() if queried else None,
        span.deriver_version,
        position,
        tokens,
    )
