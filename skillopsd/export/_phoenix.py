"""Phoenix's own API: what it stored, and annotations on spans.

Phoenix acknowledges an OTLP request when it has queued the spans, not when it has stored
them: spans acknowledged just before it stopped were lost while the checkpoint said exported.
So when the receiver is Phoenix, a session is checkpointed only once Phoenix's REST API
returns every one of its spans; what is missing is sent again. Phoenix also keeps the first
copy of a span id and ignores later ones, so what changes after a session was exported
(labels, eval results) reaches it as span annotations, upserted by their identifier.

Every call is idempotent (reads, a delete, upserts), so a call Phoenix could not answer (it
is restarting: connection refused, 502/503/504, 429) is tried again for the same time budget
as the OTLP requests: a restart between a request and its read-back must not end the export.
"""

from __future__ import annotations

import http.client
import json
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import msgspec

from ._sender import MAX_RETRY_AFTER, TRACES_PATH, ExportError, retry_after_seconds

_TRACE_IDS_PER_QUERY = 40
# Phoenix inserts what it acknowledged within about a second; what is not there after this
# long is taken as lost and sent again.
STORE_WAIT = 10.0
_PAGE = 1000
_RETRIED = frozenset({429, 502, 503, 504})


class _Unavailable(Exception):
    """Phoenix could not answer now; worth asking again."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SpanAnnotation(msgspec.Struct, frozen=True):
    """One Phoenix span annotation (upserted on span, name and identifier)."""

    span_id: str
    name: str
    annotator_kind: str  # HUMAN | CODE | LLM
    label: str | None
    score: float | None
    explanation: str | None
    identifier: str
    metadata: dict[str, Any] = {}


def api_base(endpoint: str) -> str:
    """The server's root URL from an OTLP endpoint (``…/v1/traces`` or the bare server)."""
    parts = urlsplit(endpoint)
    path = parts.path.rstrip("/")
    if path.endswith(TRACES_PATH):
        path = path[: -len(TRACES_PATH)]
    return parts._replace(path=path, query="", fragment="").geturl().rstrip("/")


class PhoenixAPI:
    """A few calls of Phoenix's REST API (``/v1``), with the export's headers."""

    def __init__(
        self,
        endpoint: str,
        project: str,
        headers: Sequence[tuple[str, str]] = (),
        *,
        timeout: float = 30.0,
        budget: float = 0.0,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``budget``: seconds to keep asking again a call Phoenix could not answer (0: once;
        the live exporter retries a whole pass later instead)."""
        self.base = api_base(endpoint)
        self.project = project
        self.headers = dict(headers)
        self.timeout = timeout
        self.budget = budget
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._sleep = sleep
        self._clock = clock

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        """One API call, asked again with backoff while Phoenix cannot answer, within budget."""
        delay = self.backoff
        started = self._clock()
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._call_once(method, path, body)
            except _Unavailable as exc:
                left = self.budget - (self._clock() - started)
                if left <= 0:
                    spent = self._clock() - started
                    tail = f" (gave up after {attempt} attempts in {spent:.0f}s)"
                    raise ExportError(f"{exc}{tail if attempt > 1 else ''}") from exc
                wait = exc.retry_after if exc.retry_after is not None else delay
                wait = min(wait, MAX_RETRY_AFTER) * (1 + 0.1 * random.random())
                self._sleep(min(wait, max(left, 0.05)))
                delay = min(delay * 2, self.max_backoff)

    def _call_once(self, method: str, path: str, body: Any) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.base}{path}", data=data, method=method)
        for key, value in self.headers.items():
            request.add_header(key, value)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 404 and method == "GET":
                return None
            detail = exc.read()[:200].decode("utf-8", "replace")
            message = f"{self.base}{path}: Phoenix answered {exc.code}: {detail}"
            if exc.code in _RETRIED:
                wait = exc.headers.get("Retry-After") if exc.headers else None
                raise _Unavailable(message, retry_after_seconds(wait)) from exc
            raise ExportError(message) from exc
        except (OSError, http.client.HTTPException) as exc:  # URLError is an OSError
            reason = getattr(exc, "reason", None) or exc
            raise _Unavailable(f"{self.base}: cannot read back from Phoenix ({reason})") from exc
        try:
            return json.loads(raw) if raw else None
        except ValueError as exc:
            raise ExportError(f"{self.base}{path}: Phoenix answered what is not JSON") from exc

    def is_phoenix(self) -> bool | None:
        """Whether the server answers as Phoenix does (its version endpoint); None when it
        cannot be reached (ask again later)."""
        try:
            request = urllib.request.Request(f"{self.base}/arize_phoenix_version")
            for key, value in self.headers.items():
                request.add_header(key, value)
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.status == 200
        except urllib.error.HTTPError:
            return False
        except (OSError, urllib.error.URLError, ValueError):
            return None

    def delete_trace(self, trace_id: str) -> None:
        """Remove a trace, so the session's new copy replaces it (Phoenix keeps the first copy
        of a span id it is sent, so sending again alone would change nothing)."""
        try:
            self._call("DELETE", f"/v1/traces/{trace_id}")
        except ExportError as exc:
            if " 404:" not in str(exc):
                raise

    def stored(self, trace_ids: Iterable[str]) -> set[str]:
        """The span ids (hex) Phoenix holds for these traces: in the project, else in any
        other (Phoenix stores a span id once: a trace first sent to another project stays
        there, and sending it to this one stores nothing new)."""
        ids = sorted(set(trace_ids))
        out = self._stored_in(self.project, ids)
        return out | self.stored_elsewhere(ids)

    def stored_elsewhere(self, ids: list[str]) -> set[str]:
        """The span ids of these traces that Phoenix holds in projects other than ours."""
        out: set[str] = set()
        if ids:
            projects = self._call("GET", "/v1/projects?limit=1000") or {}
            for entry in projects.get("data", []):
                name = str(entry.get("name", ""))
                if name and name != self.project:
                    out |= self._stored_in(name, ids)
        return out

    def _stored_in(self, project_name: str, ids: list[str]) -> set[str]:
        out: set[str] = set()
        project = quote(project_name, safe="")
        for start in range(0, len(ids), _TRACE_IDS_PER_QUERY):
            chunk = ids[start : start + _TRACE_IDS_PER_QUERY]
            cursor: str | None = None
            while True:
                query = [("limit", str(_PAGE)), *(("trace_id", t) for t in chunk)]
                if cursor:
                    query.append(("cursor", cursor))
                page = self._call("GET", f"/v1/projects/{project}/spans/otlpv1?{urlencode(query)}")
                if page is None:
                    return out  # no such project yet: nothing stored
                out.update(str(span["span_id"]) for span in page.get("data", []))
                cursor = page.get("next_cursor")
                if not cursor:
                    break
        return out

    def missing(
        self,
        expected: dict[str, tuple[str, set[str]]],
        *,
        wait: float = STORE_WAIT,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> dict[str, int]:
        """Sessions (id -> spans missing) Phoenix has not stored, after ``wait`` seconds in
        which nothing more arrived.

        ``expected`` maps a session id to (trace id, span ids). Phoenix inserts what it
        acknowledged in the background (a busy one takes a while for a large request), so
        this asks again while the count grows, and gives up only once it stopped growing.
        """
        deadline = clock() + wait
        pending = dict(expected)
        left = sum(len(ids) for _t, ids in pending.values())
        delay = 0.25
        while True:
            held = self._stored_in(self.project, sorted({t for t, _ in pending.values()}))
            pending = {sid: (t, ids - held) for sid, (t, ids) in pending.items() if ids - held}
            if pending:
                held = self.stored_elsewhere(sorted({t for t, _ in pending.values()}))
                pending = {sid: (t, ids - held) for sid, (t, ids) in pending.items() if ids - held}
            now_left = sum(len(ids) for _t, ids in pending.values())
            if now_left < left:
                left, deadline = now_left, clock() + wait  # progress: wait on
            if not pending or clock() >= deadline:
                return {sid: len(ids) for sid, (_t, ids) in pending.items()}
            sleep(min(delay, max(0.0, deadline - clock())))
            delay = min(delay * 2, 2.0)

    def annotate(self, annotations: Sequence[SpanAnnotation]) -> None:
        """Upsert span annotations (synchronously, so they are stored when this returns)."""
        for start in range(0, len(annotations), 100):
            data = [
                {
                    "span_id": a.span_id,
                    "name": a.name,
                    "annotator_kind": a.annotator_kind,
                    "result": {"label": a.label, "score": a.score, "explanation": a.explanation},
                    "identifier": a.identifier,
                    "metadata": a.metadata,
                }
                for a in annotations[start : start + 100]
            ]
            self._call("POST", "/v1/span_annotations?sync=true", {"data": data})
