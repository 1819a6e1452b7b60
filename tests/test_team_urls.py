"""A team server's URL in messages: its password never shown, whatever it holds.

``redact_url`` masks what goes into every ``sync``/``--team``/daemon message and into what
``status`` stores about a server; ``check_userinfo`` refuses a URL whose password holds an
unencoded ``@`` before libpq reads the rest of it as a host name and quotes it back.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from skillopsd.team.replica import server_identity
from skillopsd.team.sync import SyncError, check_userinfo, redact_url

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
