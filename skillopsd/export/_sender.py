"""Posting OTLP/HTTP requests: gzip, one kept-alive connection, retries with backoff.

Only a client: skillops never opens a listener, and never sends anything unless the user
named an endpoint. 429, any 5xx but 501 and 505, and connection errors are retried with
exponential backoff (``Retry-After`` is honoured) for a time budget long enough for a receiver
to restart (:data:`DEFAULT_RETRY_BUDGET`); any other answer is a refusal no retry will
change. A kept-alive connection the receiver closed while idle is reopened at once, without
counting as a failure. (The OTLP/HTTP specification retries only 429/502/503/504; a
receiver's passing 500 is common enough behind proxies that retrying it costs nothing.)
"""

from __future__ import annotations

import email.utils
import gzip
import http.client
import random
import ssl
import time
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

import msgspec
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

TRACES_PATH = "/v1/traces"
_NEVER_RETRIED_5XX = frozenset({501, 505})
MAX_RETRY_AFTER = 120.0
# Long enough for Phoenix to restart (it answers 503 or refuses connections meanwhile).
DEFAULT_RETRY_BUDGET = 150.0
# What a server's close of an idle kept-alive connection looks like on the next request.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


class ExportError(Exception):
    """An export that did not complete; ``str`` is a one-line reason naming the endpoint."""


class ReceiverRefused(ExportError):
    """The receiver answered with a status no retry will change (e.g. 400, 401, 413, 415)."""


class ReceiverUnavailable(ExportError):
    """The receiver could not be reached, or kept answering 429/5xx, through every retry."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Accepted(msgspec.Struct):
    """A receiver's acknowledgement: spans it rejected (partial success) and why."""

    rejected: int = 0
    message: str = ""


def traces_url(endpoint: str) -> str:
    """``{endpoint}/v1/traces``, unless the endpoint already names that path."""
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {endpoint!r}")
    path = parts.path.rstrip("/")
    if not path.endswith(TRACES_PATH):
        path += TRACES_PATH
    return parts._replace(path=path, fragment="").geturl()


def parse_header(text: str) -> tuple[str, str]:
    """``K=V`` as given to ``--header`` -> (K, V)."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key or any(c in key for c in " :\r\n") or any(c in value for c in "\r\n"):
        raise ValueError(f"expected a header as K=V, got {text!r}")
    return key, value.strip()


def retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class Sender:
    """POSTs request bodies to one OTLP/HTTP traces URL."""

    def __init__(
        self,
        endpoint: str,
        headers: Sequence[tuple[str, str]] = (),
        *,
        timeout: float = 30.0,
        attempts: int | None = None,
        budget: float = DEFAULT_RETRY_BUDGET,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> None:
        """``attempts`` (None: no limit) and ``budget`` (seconds from the first attempt) bound
        the retries of one request, whichever ends first."""
        self.url = traces_url(endpoint)
        parts = urlsplit(self.url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port
        self._path = parts.path + (f"?{parts.query}" if parts.query else "")
        self.headers = list(headers)
        self.timeout = timeout
        self.attempts = attempts
        self.budget = budget
        self._clock = clock
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._sleep = sleep
        self._should_stop = should_stop
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self._https:
                self._conn = http.client.HTTPSConnection(
                    self._host,
                    self._port,
                    timeout=self.timeout,
                    context=ssl.create_default_context(),
                )
            else:
                self._conn = http.client.HTTPConnection(
                    self._host, self._port, timeout=self.timeout
                )
        return self._conn

    def close(self) -> None:
        """Drop the kept-alive connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def post_once(self, body: bytes) -> Accepted:
        """One attempt; raises ReceiverRefused, or ReceiverUnavailable (worth retrying)."""
        compressed = gzip.compress(body, compresslevel=1)
        headers = {
            "Content-Type": "application/x-protobuf",
            "Content-Encoding": "gzip",
            "User-Agent": "skillops-otlp",
        }
        headers.update(self.headers)
        try:
            try:
                reused = self._conn is not None
                conn = self._connection()
                conn.request("POST", self._path, body=compressed, headers=headers)
                response = conn.getresponse()
            except _STALE:
                if not reused:
                    raise
                # The receiver closed the idle connection: a new one, at once, no failure.
                self.close()
                conn = self._connection()
                conn.request("POST", self._path, body=compressed, headers=headers)
                response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            raise ReceiverUnavailable(f"{self.url}: cannot reach the receiver ({reason})") from exc
        if response.will_close:
            self.close()
        if 200 <= response.status < 300:
            return _accepted(data)
        detail = _detail(data)
        message = f"{self.url}: receiver answered {response.status} {response.reason}{detail}"
        status = response.status
        if status == 429 or (500 <= status < 600 and status not in _NEVER_RETRIED_5XX):
            wait = retry_after_seconds(response.getheader("Retry-After"))
            raise ReceiverUnavailable(message, wait)
        raise ReceiverRefused(message)

    def post(self, body: bytes) -> Accepted:
        """Post with retries: exponential backoff with jitter, ``Retry-After`` honoured, until
        ``attempts`` or the time ``budget`` runs out."""
        delay = self.backoff
        started = self._clock()
        attempt = 0
        while True:
            attempt += 1
            try:
                return self.post_once(body)
            except ReceiverUnavailable as exc:
                wait = exc.retry_after if exc.retry_after is not None else delay
                wait = min(wait, MAX_RETRY_AFTER) * (1 + 0.1 * random.random())
                left = self.budget - (self._clock() - started)
                out_of_attempts = self.attempts is not None and attempt >= self.attempts
                if out_of_attempts or left <= 0 or self._should_stop():
                    spent = self._clock() - started
                    raise ReceiverUnavailable(
                        f"{exc} (gave up after {attempt} attempts in {spent:.0f}s)",
                        exc.retry_after,
                    ) from exc
                self._sleep(min(wait, max(left, 0.05)))
                delay = min(delay * 2, self.max_backoff)


def _accepted(data: bytes) -> Accepted:
    if not data:
        return Accepted()
    response = ExportTraceServiceResponse()
    try:
        response.ParseFromString(data)
    except Exception:  # a receiver answering 2xx with a body we cannot read still accepted
        return Accepted()
    partial = response.partial_success
    return Accepted(rejected=partial.rejected_spans, message=partial.error_message)


def _detail(data: bytes) -> str:
    """A short, one-line excerpt of an error body (OTLP sends a google.rpc.Status)."""
    text = data[:300].decode("utf-8", "replace")
    text = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return f": {text}" if text else ""
