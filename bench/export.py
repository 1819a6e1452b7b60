"""OTLP export throughput of the real corpus, beside the floor of encoding alone.

    python3 bench/export.py [--repeat 3] [--endpoint URL]

In one run, on the same database (the corpus captured and derived by ``skillopsd --once``):
- floor: read every session's spans and encode them to OTLP protobuf batches, sending nothing;
- export: the same, gzip-compressed and POSTed to a receiver: by default a minimal in-process
  HTTP receiver that reads each request and discards it (``--endpoint`` names a real one,
  e.g. Phoenix, instead);
- the CLI: ``skillopsctl export otlp`` wall time, interpreter start included.
Prints spans/s of each and the ratio export/floor. Target: >= 0.5x.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _corpus import extract, home_env, program, transcript_files

from skillopsd.events import Database
from skillopsd.export import Accepted, Sender, due_sessions, export_sessions


class _Discard(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_args: object) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


class _Nowhere:
    """The floor's sink: takes each encoded request and sends it nowhere."""

    def post(self, body: bytes) -> Accepted:
        return Accepted()


def _pass(db_path: Path, sink: object) -> tuple[float, int]:
    db = Database.open(db_path)
    try:
        start = time.perf_counter()
        due = due_sessions(db, None)
        report = export_sessions(db, sink, due, target=None)  # type: ignore[arg-type]
        return time.perf_counter() - start, report.spans
    finally:
        db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="best of N passes each")
    parser.add_argument("--endpoint", default=None, help="a real receiver instead of the local one")
    parser.add_argument(
        "--sessions", type=int, default=None, help="only the first N transcript files (smoke runs)"
    )
    args = parser.parse_args()

    server = None
    endpoint = args.endpoint
    if endpoint is None:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Discard)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        endpoint = f"http://127.0.0.1:{server.server_address[1]}"

    with tempfile.TemporaryDirectory(prefix="skillops-bench-export-") as tmp:
        home = extract(Path(tmp))
        if args.sessions is not None:
            for path in transcript_files(home)[args.sessions :]:
                path.unlink()
        subprocess.run(
            [program("skillopsd"), "--once"], env=home_env(home), check=True, capture_output=True
        )
        db_path = home / ".local" / "share" / "skillops" / "skillops.db"

        floor = exported = float("inf")
        spans = 0
        for _ in range(args.repeat):
            seconds, spans = _pass(db_path, _Nowhere())
            floor = min(floor, seconds)
            sender = Sender(endpoint)
            try:
                seconds, sent = _pass(db_path, sender)
            finally:
                sender.close()
            assert sent == spans
            exported = min(exported, seconds)
        cli = float("inf")
        for _ in range(args.repeat):
            start = time.perf_counter()
            subprocess.run(
                [program("skillopsctl"), "export", "otlp", "--endpoint", endpoint],
                env=home_env(home),
                check=True,
                capture_output=True,
            )
            cli = min(cli, time.perf_counter() - start)
    if server is not None:
        server.shutdown()

    print(f"corpus: {spans} spans (root spans included), receiver {endpoint}")
    print(
        f"floor (read + encode to protobuf, no send): {floor:.2f} s, {spans / floor:,.0f} spans/s"
    )
    rate = spans / exported
    print(f"export (+ gzip + HTTP POST):                {exported:.2f} s, {rate:,.0f} spans/s")
    print(f"skillopsctl export otlp (whole command):    {cli:.2f} s, {spans / cli:,.0f} spans/s")
    print(f"ratio export/floor: {floor / exported:.2f}x (target >= 0.5x)")


if __name__ == "__main__":
    main()
