"""A local OTLP/HTTP receiver for tests: decodes what it is sent, can refuse, go down and up."""

from __future__ import annotations

import gzip
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span


class Receiver:
    """Accepts OTLP/HTTP protobuf on 127.0.0.1; ``answers`` scripts the next responses."""

    def __init__(self, port: int = 0) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        self.headers: list[dict[str, str]] = []
        self.answers: list[tuple[int, dict[str, str]]] = []  # consumed first, then 200
        self.refused = 0
        self.fail_after: int | None = None  # answer 503 once this many requests were accepted
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.port = port
        self.up()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver._lock:
                    scripted = receiver.answers.pop(0) if receiver.answers else None
                    limit = receiver.fail_after
                    if scripted is None and limit is not None and len(receiver.requests) >= limit:
                        scripted = (503, {})
                    if scripted is None and self.path == "/v1/traces":
                        if self.headers.get("Content-Encoding") == "gzip":
                            body = gzip.decompress(body)
                        request = ExportTraceServiceRequest()
                        request.ParseFromString(body)
                        receiver.requests.append(request)
                        receiver.headers.append(dict(self.headers))
                if scripted is None and self.path != "/v1/traces":
                    scripted = (404, {})
                if scripted is not None:
                    receiver.refused += 1
                    status, extra = scripted
                    self.send_response(status)
                    for key, value in extra.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def down(self) -> None:
        """Stop listening (connections are refused until :meth:`up`)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def spans(self) -> list[Span]:
        with self._lock:
            return [
                span
                for request in self.requests
                for rs in request.resource_spans
                for ss in rs.scope_spans
                for span in ss.spans
            ]

    def span_counts(self) -> Counter[str]:
        """How often each span id arrived."""
        return Counter(span.span_id.hex() for span in self.spans())
