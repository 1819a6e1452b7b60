"""The dashboard's HTTP server: who may ask (loopback, the token, the Host header), and routing.

The standard library's threading HTTP server, not an ASGI stack: a dashboard one person opens
on their own machine serves a handful of requests a second, and ``http.server`` starts in
milliseconds with nothing to install. Requests share one database connection under a lock
(the projections are brought to the head before each page, as the CLI does).

Every request must carry the token printed with the URL: in the query (the first visit, which
then sets an HttpOnly, SameSite=Strict cookie and redirects to the same page without it) or in
that cookie. The Host header must name the address the server listens on (a DNS-rebinding page
names its own host). The one write, annotate, is a POST whose form carries a CSRF token derived
from the secret token, and whose Origin, when the browser sends one, is this server.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import mimetypes
import secrets
import socket
import threading
import traceback
from collections.abc import Callable
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import msgspec
import structlog

from ..events import Database
from .pages import BadRequest, PageNotFound, Pages, Response

log = structlog.get_logger(__name__)

MAX_FORM_BYTES = 64 * 1024
_STATIC = resources.files(__package__) / "static"


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) stays on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def url_host(host: str) -> str:
    """``host`` as it appears in a URL (IPv6 addresses in brackets)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


class Access(msgspec.Struct, frozen=True):
    """What a request must show: the token, and a Host header naming this server."""

    token: str
    hosts: frozenset[str]
    cookie: str

    @classmethod
    def create(cls, host: str, port: int, token: str | None = None) -> Access:
        names = {url_host(host)}
        if is_loopback(host):
            names |= {"localhost", "127.0.0.1", "[::1]"}
        return cls(
            token=token or secrets.token_urlsafe(32),
            hosts=frozenset(f"{n}:{port}".lower() for n in names),
            cookie=f"skillops-token-{port}",
        )

    @property
    def csrf(self) -> str:
        """The form token: derived from the secret, so it proves the page came from here."""
        return hmac.new(self.token.encode(), b"annotate", hashlib.sha256).hexdigest()

    def host_allowed(self, header: str | None) -> bool:
        return header is not None and header.strip().lower() in self.hosts

    def token_ok(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())


class DashboardServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, host: str, port: int, db: Database, token: str | None = None) -> None:
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host.strip("[]"), port), Handler)
        self.host = host.strip("[]")
        self.access = Access.create(self.host, self.port, token)
        self.pages = Pages(db, self.access.csrf)
        self.lock = threading.Lock()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def url(self, path: str = "/") -> str:
        host = url_host(self.host)
        return f"http://{host}:{self.port}{path}?{urlencode({'token': self.access.token})}"


class Handler(BaseHTTPRequestHandler):
    server: DashboardServer
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without TCP_NODELAY the body waits for the
    # client's delayed ACK (40 ms a page on Linux).
    disable_nagle_algorithm = True
    server_version = "skillops"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("request", line=format % args)

    # --- the gate ------------------------------------------------------------------------

    def _cookie_token(self) -> str | None:
        raw = self.headers.get("Cookie")
        if not raw:
            return None
        try:
            jar = SimpleCookie(raw)
        except CookieError:
            return None
        morsel = jar.get(self.server.access.cookie)
        return morsel.value if morsel else None

    def _admitted(self, query: dict[str, list[str]]) -> bool | None:
        """True: go on; False: refused (answered); None: redirected after taking the token."""
        access = self.server.access
        if not access.host_allowed(self.headers.get("Host")):
            self._plain(HTTPStatus.FORBIDDEN, "skillops: this Host header is not allowed\n")
            return False
        given = query.get("token", [None])[-1]
        if given is not None and access.token_ok(given):
            rest = {k: v for k, v in query.items() if k != "token"}
            target = urlsplit(self.path).path + (f"?{urlencode(rest, doseq=True)}" if rest else "")
            self._send(
                HTTPStatus.SEE_OTHER,
                b"",
                "text/plain",
                {
                    "Location": target,
                    "Set-Cookie": f"{access.cookie}={access.token}; HttpOnly; SameSite=Strict;"
                    " Path=/",
                },
            )
            return None
        if access.token_ok(self._cookie_token()):
            return True
        self._plain(
            HTTPStatus.FORBIDDEN,
            "skillops: open the URL skillopsctl serve printed (it carries the token)\n",
        )
        return False

    # --- methods -------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._serve("GET")

    def do_HEAD(self) -> None:
        self._serve("HEAD")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        parts = urlsplit(self.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        form: dict[str, list[str]] = {}
        if method == "POST":
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_FORM_BYTES:
                self._plain(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "skillops: form too large\n")
                return
            body = self.rfile.read(length) if length > 0 else b""
            form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        admitted = self._admitted(query)
        if not admitted:
            return
        if method == "POST" and not self._post_allowed(form):
            return
        if parts.path.startswith("/static/"):
            self._static(parts.path.removeprefix("/static/"), method)
            return
        try:
            with self.server.lock:
                response = self._route(method, parts.path, query, form)
        except PageNotFound as exc:
            response = self.server.pages.error(HTTPStatus.NOT_FOUND, str(exc))
        except BadRequest as exc:
            response = self.server.pages.error(HTTPStatus.BAD_REQUEST, str(exc))
        except Exception as exc:
            log.error("page failed", path=parts.path, error=traceback.format_exc())
            response = self.server.pages.error(
                HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(exc).__name__}: {exc}"
            )
        body = b"" if method == "HEAD" else response.body
        self._send(response.status, body, response.content_type, response.headers)

    def _post_allowed(self, form: dict[str, list[str]]) -> bool:
        access = self.server.access
        origin = self.headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc.lower() not in access.hosts:
            self._plain(HTTPStatus.FORBIDDEN, "skillops: a form from another site is refused\n")
            return False
        given = form.get("csrf", [""])[-1]
        if not hmac.compare_digest(given.encode(), access.csrf.encode()):
            self._plain(HTTPStatus.FORBIDDEN, "skillops: the form's CSRF token is wrong\n")
            return False
        return True

    def _route(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        form: dict[str, list[str]],
    ) -> Response:
        pages = self.server.pages
        segments = [s for s in path.split("/") if s]
        routes: dict[tuple[str, ...], Callable[..., Response]] = {
            (): pages.overview,
            ("sessions",): pages.sessions,
            ("skills",): pages.skills,
            ("queue",): pages.queue,
        }
        if method == "POST":
            if len(segments) == 3 and segments[0] == "session" and segments[2] == "annotate":
                return pages.annotate(segments[1], form)
            raise PageNotFound(f"nothing to post to at {path}")
        if tuple(segments) in routes:
            return routes[tuple(segments)](query)
        if len(segments) == 2 and segments[0] == "session":
            return pages.session(segments[1], query)
        if len(segments) == 2 and segments[0] == "skill":
            return pages.skill(segments[1], query)
        raise PageNotFound(f"no page at {path}")

    # --- answers -------------------------------------------------------------------------

    def _static(self, name: str, method: str) -> None:
        if "/" in name or name.startswith(".") or not name:
            self._plain(HTTPStatus.NOT_FOUND, "skillops: no such file\n")
            return
        asset = _STATIC / name
        if not asset.is_file():
            self._plain(HTTPStatus.NOT_FOUND, "skillops: no such file\n")
            return
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        body = asset.read_bytes()
        self._send(
            HTTPStatus.OK,
            b"" if method == "HEAD" else body,
            kind,
            {"Cache-Control": "private, max-age=3600"},
            length=len(body),
        )

    def _plain(self, status: HTTPStatus, text: str) -> None:
        self._send(status, text.encode(), "text/plain; charset=utf-8")

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
        length: int | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        # Nothing from elsewhere, no framing by other sites, no path sent to another site.
        self.send_header(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self';"
            " script-src 'self'; frame-ancestors 'none'; form-action 'self'",
        )
        self.send_header("X-Content-Type-Options", "nosniff")
        # same-origin, not no-referrer: under no-referrer a browser sends "Origin: null" with
        # a form, and the Origin check above needs the real one.
        self.send_header("Referrer-Policy", "same-origin")
        if "Cache-Control" not in (headers or {}):
            self.send_header("Cache-Control", "no-store")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if body:
            self.wfile.write(body)
