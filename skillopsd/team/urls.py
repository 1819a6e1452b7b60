"""A team server's URL without its secrets: the one place that knows where they are.

libpq takes a password (and ``sslpassword``, the passphrase of the client's TLS key) in the
user part of a URL, in its query (whose keys are percent-decoded too: ``?%70assword=``), or
as ``key=value`` in a connection string (quoted with ``'``, ``\\'`` escaping a quote). Every
message and everything stored about a server goes through :func:`redact_url` or, for a
library's message about a URL, :func:`scrub`: libpq quotes the token it could not parse
(``invalid percent-encoded token: "Hunter%2Secret!"``), which holds the password as typed.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

# What a team server's URL starts with (libpq's own URI schemes).
SCHEMES = ("postgresql://", "postgres://")
# libpq's keywords whose value is a secret.
SECRET_KEYS = frozenset({"password", "sslpassword"})
MASK = "***"

# Up to the last "@": a password may hold "@", "/", "?" or "#" unencoded, and where it ends
# cannot be told; more is masked (an "@" in the query too), never less.
_USERINFO = re.compile(r"(://[^:/@]*:)(.*)@", re.DOTALL)
_QUERY = re.compile(r"([?&])([^=&]*)=([^&]*)")
_KEYWORD = re.compile(
    r"((?:^|\s)([A-Za-z_%0-9]+)\s*=\s*)('(?:[^'\\]|\\.)*'?|\S+)", re.IGNORECASE | re.DOTALL
)
_QUOTED = re.compile(r'"([^"]*)"')


def _is_secret_key(key: str) -> bool:
    return unquote(key).strip().lower() in SECRET_KEYS


def _values(url: str) -> list[str]:
    """The secret values in ``url`` as written (raw, maybe percent-encoded or quoted)."""
    found: list[str] = []
    user = _USERINFO.search(url)
    if user:
        found.append(user.group(2))
    found += [m.group(3) for m in _QUERY.finditer(url) if _is_secret_key(m.group(2))]
    found += [m.group(3) for m in _KEYWORD.finditer(url) if _is_secret_key(m.group(2))]
    return found


def secrets(url: str) -> list[str]:
    """Every form of every secret in ``url`` a library may quote back (as written,
    percent-decoded, unquoted), longest first."""
    forms: set[str] = set()
    for raw in _values(url):
        forms.add(raw)
        forms.add(unquote(raw))
        if raw.startswith("'"):
            inner = raw[1:-1] if raw.endswith("'") and len(raw) > 1 else raw[1:]
            forms.add(re.sub(r"\\(.)", r"\1", inner))
    return sorted((f for f in forms if f), key=len, reverse=True)


def redact_url(url: str) -> str:
    """``url`` with every password masked, in the user part, the query or a key=value
    connection string (for messages and for what is stored about the server)."""
    url = _USERINFO.sub(lambda m: f"{m.group(1)}{MASK}@", url)
    url = _QUERY.sub(
        lambda m: f"{m.group(1)}{m.group(2)}={MASK}" if _is_secret_key(m.group(2)) else m.group(0),
        url,
    )
    return _KEYWORD.sub(
        lambda m: f"{m.group(1)}{MASK}" if _is_secret_key(m.group(2)) else m.group(0), url
    )


def scrub(message: str, url: str) -> str:
    """``message`` (a library's, about ``url``) with no piece of ``url``'s secrets: every
    form of each masked, and a quoted token sharing three characters in a row with one
    (libpq quotes the piece of a URL it could not parse, which may be part of a password)."""
    found = secrets(url)
    for secret in found:
        message = message.replace(secret, MASK)
    message = redact_url(message)

    def quoted(m: re.Match[str]) -> str:
        token = m.group(1)
        return f'"{MASK}"' if any(_overlaps(token, s) for s in found) else m.group(0)

    return _QUOTED.sub(quoted, message)


def _overlaps(token: str, secret: str) -> bool:
    size = min(3, len(secret))
    return any(secret[i : i + size] in token for i in range(len(secret) - size + 1))


def check_userinfo(url: str) -> str | None:
    """Why libpq would misread ``url``'s user or password (and quote a piece of the password
    back as a host, port or database name), or None."""
    text = url.strip()
    if not text.lower().startswith(SCHEMES):
        return None
    rest = text.split("://", 1)[1]
    authority = re.match(r"[^/?#]*", rest)
    if authority and authority.group(0).count("@") > 1:
        return "the user or password holds '@': write it as %40 in the URL"
    # libpq looks for the "@" only up to the first "/": a password holding one is read as a
    # host and a port, the rest of it as the database name (a port is digits:
    # host:5432/db?user=a@b holds no password).
    slash, at = rest.find("/"), rest.find("@")
    if 0 <= slash < at:
        before = rest[:slash]
        if ":" in before and not before.rsplit(":", 1)[1].isdigit():
            return "the user or password holds '/': write it as %2F in the URL"
    return None


def read_url(value: str, what: str) -> str:
    """``value``, or with ``@PATH`` the first line of the file PATH: a URL holding a password
    given on a command line is readable by every local user (``ps``, /proc/PID/cmdline); its
    file (0600) or the environment is not. OSError-free: ValueError with one line."""
    text = value.strip()
    if not text.startswith("@"):
        return text
    path = Path(text[1:]).expanduser()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ValueError(f"{what} @{path}: cannot read the URL from it: {why}") from exc
    found = next((line.strip() for line in lines if line.strip()), "")
    if not found:
        raise ValueError(f"{what} @{path}: the file holds no URL")
    return found


def on_command_line_warning(option: str, env: str) -> str:
    """What to say when a URL holding a password was given as ``option`` on a command line."""
    return (
        f"{option} holds a password on the command line, where every local user can read it"
        f" (ps, /proc/PID/cmdline): give the URL in ${env} or a 0600 file ({option} @FILE),"
        " or the password in ~/.pgpass"
    )
