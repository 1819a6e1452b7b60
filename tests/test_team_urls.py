"""A team server's URL in messages: its password never shown, whatever it holds.

``redact_url`` masks what goes into every ``sync``/``--team``/daemon message and into what
``status`` stores about a server; ``check_userinfo`` refuses a URL whose password holds an
unencoded ``@`` before libpq reads the rest of it as a host name and quotes it back.
"""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path
from urllib.parse import quote, unquote

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from skillopsd.team.replica import server_identity
from skillopsd.team.sync import SyncError, check_userinfo, redact_url
from skillopsd.team.urls import scrub

from ._daemon import daemon_env, db_path
from .conftest import console_script, run_ctl

# Passwords as people type them into a URL (anything printable but a newline).
PASSWORDS = st.text(
    alphabet=st.characters(exclude_categories=("Cc", "Cs", "Zl", "Zp")),
    min_size=6,
    max_size=40,
).filter(lambda s: s.strip() == s)


def _forms(password: str) -> list[tuple[str, str]]:
    """(a URL, the password as written in it) in every form libpq takes."""
    encoded = quote(password, safe="")
    bare = "".join("_" if c.isspace() else c for c in password)
    quoted = password.replace("\\", "\\\\").replace("'", "\\'")
    return [
        (f"postgresql://me:{password}@db.example.com:5432/skillops", password),
        (f"postgres://me:{encoded}@db.example.com/skillops", encoded),
        (f"postgresql://me:{password}@db.example.com/skillops?application_name=a@b", password),
        (f"postgresql://db.example.com/skillops?user=me&password={encoded}&sslmode=off", encoded),
        (f"host=db.example.com password={bare} dbname=skillops", bare),
        (f"host=db.example.com password = '{quoted}' dbname=skillops", quoted),
        # sslpassword (the client key's passphrase) and a percent-encoded key name.
        (f"postgresql://me@db.example.com/skillops?sslpassword={encoded}", encoded),
        (f"host=db.example.com sslpassword='{quoted}' dbname=skillops", quoted),
        (f"postgresql://db.example.com/skillops?%70assword={encoded}", encoded),
    ]


@given(PASSWORDS)
def test_no_form_of_a_url_shows_its_password(password: str) -> None:
    for url, written in _forms(password):
        # A password that is also another part of the URL cannot be told apart.
        assume(written not in url.replace(written, "", 1))
        assert written not in redact_url(url), (url, redact_url(url))


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://me:p@ssw0rd@db.example.com/skillops",
        "postgres://me@work@db.example.com/skillops",
        "  postgresql://me:a@b@c@db.example.com/skillops",
    ],
)
def test_an_unencoded_at_in_the_user_part_is_refused(url: str) -> None:
    with pytest.raises(SyncError) as caught:
        check_userinfo(url)
    assert "%40" in str(caught.value) and "ssw0rd" not in str(caught.value)
    with pytest.raises(SyncError):
        server_identity(url)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://me:p%40ssw0rd@db.example.com/skillops",
        "host=db.example.com password=p@ss",
    ],
)
def test_an_encoded_or_elsewhere_at_is_accepted(url: str) -> None:
    check_userinfo(url)
    assert "ssw0rd" not in redact_url(url) and "p@ss" not in redact_url(url)


# --- through the real CLI: messages, status and the database ---------------------------------

# What a password generator or a person types, unencoded: "%" not followed by two hex digits,
# spaces, quotes, "?", "&", "=", "#", non-ASCII. (An "@" or "/" in the user part is refused
# before libpq reads it, above.)
TYPED = st.text(
    alphabet=st.sampled_from(list("aZ9%% ?&=#'\\\"!$*.é中-_")), min_size=3, max_size=12
).map(lambda body: f"Kq{body}Zx")


def _typed_forms(password: str) -> list[str]:
    quoted = password.replace("\\", "\\\\").replace("'", "\\'")
    return [
        f"postgresql://team:{password}@127.0.0.1:1/skillops",
        f"postgresql://team@127.0.0.1:1/skillops?password={password}",
        f"postgresql://team@127.0.0.1:1/skillops?sslpassword={password}",
        f"host=127.0.0.1 port=1 user=team password='{quoted}' dbname=skillops",
        f"host=127.0.0.1 port=1 user=team sslpassword='{quoted}' dbname=skillops",
    ]


def _shown(password: str) -> list[str]:
    """The password's forms a message could hold (as typed, percent-decoded)."""
    forms = {password}
    with contextlib.suppress(UnicodeDecodeError):
        forms.add(unquote(password, errors="strict"))
    return sorted(forms)


def _empty_database(env: dict[str, str]) -> None:
    """This machine's database with an empty log, as the daemon creates it on a HOME with no
    transcripts (a read-only command never creates one, and sync has nothing to push without
    it: review K2)."""
    subprocess.run(
        [console_script("skillopsd"), "--once", "--log-level", "error"],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(TYPED, st.integers(0, 4))
def test_the_cli_never_shows_nor_stores_a_password(
    tmp_path: Path, password: str, form: int
) -> None:
    """--team, SKILLOPS_TEAM_URL, sync --to, SKILLOPS_SYNC_URL, status and the database."""
    url = _typed_forms(password)[form]
    home = Path(subprocess.check_output(["mktemp", "-d", "-p", str(tmp_path)], text=True).strip())
    env = daemon_env(home)
    env.pop("SKILLOPS_TEAM_URL", None)
    env.pop("SKILLOPS_SYNC_URL", None)
    _empty_database(env)
    runs = [
        run_ctl("--team", url, "skills", env=env),
        run_ctl("skills", env={**env, "SKILLOPS_TEAM_URL": url}),
        run_ctl("sync", "--to", url, env=env),
        run_ctl("sync", env={**env, "SKILLOPS_SYNC_URL": url}),
    ]
    for done in runs:
        assert done.returncode == 2, (url, done.stdout, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    status = run_ctl("status", env=env)
    stored = db_path(home).read_bytes()
    said = "".join(d.stdout + d.stderr for d in [*runs, status])
    for secret in _shown(password):
        assert secret not in said, (url, said)
        assert secret.encode() not in stored, url
    assert "***" in status.stdout
    # Never reached, with an empty log: not "up to date".
    assert "never synced, nothing to send yet" in " ".join(status.stdout.split())


@pytest.mark.parametrize(
    "message",
    [
        'invalid percent-encoded token: "Hunter%2Secret!"',
        'unexpected spaces found in "Xy9 Secret9", use percent-encoded spaces (%20) instead',
        'invalid integer value "Hunt" for connection option "port"',
    ],
)
def test_a_librarys_message_loses_every_piece_of_the_password(message: str) -> None:
    url = "postgresql://team:Hunter%2Secret!@h/db?sslpassword=Xy9 Secret9"
    shown = scrub(message, url)
    for piece in ("Hunter", "Secret", "Hunt", "Xy9"):
        assert piece not in shown, shown
    assert '"***"' in shown


def test_the_daemon_never_logs_a_password(tmp_path: Path) -> None:
    for url in (
        "postgresql://team:Hunter%2Secret!@127.0.0.1:1/x",
        "postgresql://team@127.0.0.1:1/x?sslpassword=TopSecret9",
    ):
        done = subprocess.run(
            [console_script("skillopsd"), "--once", "--sync-to", url],
            env=daemon_env(tmp_path / "home"),
            capture_output=True,
            text=True,
            timeout=60,
        )
        for secret in ("Hunter", "TopSecret9"):
            assert secret not in done.stdout + done.stderr


def test_secrets_an_older_version_stored_are_masked_at_the_next_sync(tmp_path: Path) -> None:
    """sync_targets rows written before sslpassword and libpq's quoted token were masked are
    rewritten masked, their old bytes zeroed, by the next sync."""
    import apsw

    env = daemon_env(tmp_path)
    _empty_database(env)
    path = db_path(tmp_path)
    conn = apsw.Connection(str(path))
    conn.execute(
        "CREATE TABLE sync_targets (server TEXT PRIMARY KEY, content TEXT NOT NULL, live INTEGER"
        " NOT NULL DEFAULT 0, machine TEXT, held INTEGER NOT NULL DEFAULT 0, last_ok_at TEXT,"
        " last_error TEXT, last_error_at TEXT, refused TEXT)"
    )
    old = "postgresql://team@127.0.0.1:1/skillops?sslpassword=TopSecret4"
    conn.execute(
        "INSERT INTO sync_targets (server, content, last_error) VALUES (?, 'derived', ?),"
        " ('postgresql://team:***@127.0.0.1:1/x', 'derived', ?)",
        (
            old,
            f"cannot connect to {old}: refused",
            'invalid percent-encoded token: "Hunter%2Secret!"',
        ),
    )
    conn.close()
    done = run_ctl("sync", "--to", "postgresql://team@127.0.0.1:1/other", env=env)
    assert done.returncode == 2
    status = run_ctl("status", env=env).stdout
    assert "sslpassword=***" in status
    for file in path.parent.iterdir():
        data = file.read_bytes()
        assert b"TopSecret4" not in data and b"Hunter" not in data, file
