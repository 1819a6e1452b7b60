"""Phoenix's API calls outlast a restart: asked again within the retry budget, then one line."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from skillopsd.export import ExportError, PhoenixAPI

from ._phoenix import free_port


class _Flaky:
    """A server answering ``answers`` in turn (status, Retry-After), then 200 with no spans."""

    def __init__(self, answers: list[tuple[int, str | None]]) -> None:
        self.answers = list(answers)
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: object) -> None:
                pass

            def do_GET(self) -> None:
                outer.requests.append(self.path)
                status, retry_after = outer.answers.pop(0) if outer.answers else (200, None)
                body = json.dumps({"data": [], "next_cursor": None}).encode()
                self.send_response(status)
                if retry_after is not None:
                    self.send_header("Retry-After", retry_after)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def flaky() -> Iterator[list[_Flaky]]:
    made: list[_Flaky] = []
    yield made
    for server in made:
        server.close()


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def __call__(self) -> float:
        return self.now


def _api(url: str, clock: _Clock, budget: float) -> PhoenixAPI:
    return PhoenixAPI(url, "p", budget=budget, sleep=clock.sleep, clock=clock, timeout=5)


def test_a_restarting_phoenix_is_asked_again_honouring_retry_after(
    flaky: list[_Flaky],
) -> None:
    server = _Flaky([(503, "7"), (502, None), (429, "1")])
    flaky.append(server)
    clock = _Clock()
    assert _api(server.url, clock, 150).stored(["ab" * 16]) == set()
    assert len(server.requests) == 4 + 1  # three refusals, the spans, then the project list
    assert 7.0 <= clock.slept[0] <= 7.7  # Retry-After honoured
    assert len(clock.slept) == 3


def test_a_phoenix_that_stays_down_ends_in_one_line_after_its_budget() -> None:
    clock = _Clock()
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(ExportError) as caught:
        _api(url, clock, 30).stored(["ab" * 16])
    message = str(caught.value)
    assert "\n" not in message and "cannot read back from Phoenix" in message
    assert "gave up after" in message
    assert 30 <= clock.now < 31


def test_without_a_budget_one_attempt_and_a_refusal_is_never_retried(
    flaky: list[_Flaky],
) -> None:
    server = _Flaky([(503, None)])
    flaky.append(server)
    clock = _Clock()
    with pytest.raises(ExportError, match="Phoenix answered 503"):
        _api(server.url, clock, 0).stored(["ab" * 16])
    assert clock.slept == []
    refusing = _Flaky([(401, None)])
    flaky.append(refusing)
    with pytest.raises(ExportError, match="Phoenix answered 401"):
        _api(refusing.url, clock, 150).stored(["ab" * 16])
    assert clock.slept == [] and len(refusing.requests) == 1
