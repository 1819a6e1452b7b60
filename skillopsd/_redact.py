"""Masking secrets in transcript lines before they are stored.

Patterns run over the raw line bytes. Every mask is plain ASCII with no quote or backslash,
and no pattern matches a quote or a backslash except as part of a whole escape, so a valid
JSON line stays valid. Should a valid line still come out invalid, it is redacted again
string by string through a decode/re-encode, so the guarantee holds whatever the input.

A secret is recognised by its structure (prefix, length, charset, and where the format has
one, a shape that can be checked, such as a JWT header that decodes to JSON naming ``alg``)
or by the name it is assigned to (``password=…``: the name stays, the value is masked).
Precision matters as much as recall: the log is never rewritten, so a mask over ordinary
text (a branch name, a hash) is as permanent as a leaked key.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import re
from collections.abc import Callable

import msgspec
import re2

# A token may not start in the middle of a word: ``fix-cask-point`` holds no ``sk-`` token.
# A letter that ends a JSON escape (``\n``, ``\t``, ``\u003d``) is not part of a word, so a
# secret at the start of a line inside a JSON string is still found. Checked in Python on
# each match rather than as a lookbehind, which would cost the regex its literal-prefix scan.
_WORD = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_IDENT = _WORD | {ord("_")}
_HEX = frozenset(b"0123456789abcdefABCDEF")


def _word_start(data: bytes, at: int, word: frozenset[int]) -> bool:
    if at == 0 or data[at - 1] not in word:
        return True
    if at >= 2 and data[at - 2] == 0x5C and data[at - 1] in b"nrtbf":
        return True
    return at >= 6 and data[at - 6 : at - 4] == b"\\u" and all(c in _HEX for c in data[at - 4 : at])


# Nor may it end inside one (for patterns of a fixed length).
_END = rb"(?![A-Za-z0-9])"
_END_ID = rb"(?![A-Za-z0-9_\-])"


def _mixed(value: bytes) -> bool:
    """Whether ``value`` mixes at least two of upper case, lower case and digits."""
    kinds = (
        any(65 <= c <= 90 for c in value)
        + any(97 <= c <= 122 for c in value)
        + any(48 <= c <= 57 for c in value)
    )
    return kinds >= 2 and len(set(value)) >= 6


def _random(value: bytes) -> bool:
    """Whether ``value`` holds upper case, lower case and digits, as random tokens do."""
    return (
        any(65 <= c <= 90 for c in value)
        and any(97 <= c <= 122 for c in value)
        and any(48 <= c <= 57 for c in value)
    )


def _has_digit(value: bytes) -> bool:
    return any(48 <= c <= 57 for c in value)


def _b64url_json_with_alg(part: bytes) -> bool:
    try:
        header = base64.urlsafe_b64decode(part + b"=" * (-len(part) % 4))
        return b'"alg"' in header and header.lstrip().startswith(b"{")
    except (binascii.Error, ValueError):
        return False


def _basic_credentials(value: bytes) -> bool:
    try:
        decoded = base64.b64decode(value + b"=" * (-len(value) % 4), validate=True)
    except (binascii.Error, ValueError):
        return False
    return b":" in decoded


def _user_password(value: bytes) -> bool:
    """Whether ``value`` is base64 of ``user:password`` in text (Docker's ``"auth"``,
    npm's ``_auth``): stricter than after ``Basic``, since ``auth`` alone is an ordinary
    word in code (``auth: authMethod``) whose value may decode to bytes by chance."""
    try:
        decoded = base64.b64decode(value + b"=" * (-len(value) % 4), validate=True)
        text = decoded.decode()
    except (binascii.Error, ValueError):
        return False
    user, colon, password = text.partition(":")
    return bool(colon and user and password) and text.isprintable()


class _Rule(msgspec.Struct, frozen=True):
    """One family's exact pattern; only ``group`` (a group name, the first of several that
    took part in the match, or the whole match) is masked."""

    family: str
    lower: bool  # matched on the lowercased line (same length, so spans carry over)
    # Substrings one of which the (lowercased) line must hold; none: the rule always runs (a
    # pattern that starts with a rare literal, where a common word as trigger would cost
    # more to find than the pattern costs to run).
    triggers: tuple[bytes, ...]
    pattern: re.Pattern[bytes]
    group: str | tuple[str, ...] | None = None
    check: Callable[[bytes], bool] | None = None  # on the original bytes of the masked part
    word: frozenset[int] | None = None  # bytes the match may not follow (see _word_start)
    before: re.Pattern[bytes] | None = None  # what the text before the match must end with
    reach: int = 16  # how far back ``before`` looks


def _rule(
    family: str,
    triggers: tuple[bytes, ...],
    pattern: bytes,
    *,
    lower: bool = False,
    group: str | tuple[str, ...] | None = None,
    check: Callable[[bytes], bool] | None = None,
    word: frozenset[int] | None = _WORD,
    before: bytes | None = None,
    reach: int = 16,
) -> _Rule:
    after = re.compile(before + rb"\Z") if before is not None else None
    return _Rule(family, lower, triggers, re.compile(pattern), group, check, word, after, reach)


# Words before ``key`` that make it a secret's name (``ENCRYPTION_KEY``, ``hmac_key``,
# ``Ocp-Apim-Subscription-Key``); names, XML tags and the screen share the list.
_KEY_KINDS = (
    *(b"api", b"access", b"private", b"account", b"secret", b"signing", b"master"),
    *(b"encryption", b"encrypt", b"enc", b"crypt", b"crypto", b"cipher", b"hmac", b"jwt"),
    *(b"license", b"subscription"),
)


# Values that stand for a secret rather than being one: a variable, a template, a
# placeholder (``<password>``, also as JSON escapes it: ``\u003cpassword\u003e``), an
# environment variable's name, a path.
# A value holding a regular expression (``sed 's/api_key=.*/…/'``) or a mask is not one either.
_PLACEHOLDER = re.compile(
    rb"[$<{`~/+]|\\u003c|\*\*|\./|%[a-z]|(?i:your)[_\-]|.*(?:\.\.\.|\xe2\x80\xa6|xxx|\*\*\*)|.*`$"
    rb"|[A-Z]+(?:_[A-Z0-9]+)*$|.*\.\*|(?i:.*redacted)"
    # A key's prefix before ``your-`` (``sk-your-key-here``, ``sk_live_your_key``), or
    # anything ``…-here`` after ``your``: the text of every .env.example.
    rb"|(?i:(?:[a-z0-9]{1,8}[_\-]){1,2}your[_\-]|.*your[_\-].*[_\-]here$)"
)
# Words that say a value is not a real one: a test value, an example, a filler, a null.
# A value of words joined by ``-`` or ``_`` holding one of them stands for a secret
# (``test-token``, ``fake-key-for-tests``, ``change-me``, ``dummy_password``).
_NOT_REAL = (
    rb"tests?|testing|fake|dummy|example|examples|sample|placeholder|mock|stub|redacted"
    rb"|changeme|changeit|change|replace|replaceme|fixme|todo|tbd|foo|bar|baz|qux|default"
    rb"|none|null|nil|empty|unset|undefined|xxx"
)
_STANDS_IN = re.compile(rb"(?i)(?:[a-z0-9]+[_\-])*(?:" + _NOT_REAL + rb")(?:[_\-][a-z0-9]+)*")
# A label: the name of a kind of secret, written where the secret goes (``"password":
# "password"``, ``api-key``, ``client_secret``, ``db-password``), possibly after a possessive
# (``my-token``, ``your_api_key``), or one word before that name (``source-token``,
# ``helper-secret``: test fixtures name their values so). Nothing else: a passphrase of
# joined words is a secret whatever words it holds (``my-secret-pass``,
# ``super-secret-password``, ``prod-key-hunter``).
_LABEL_WORD = rb"(?:password|passwd|pass|pwd|passphrase|secret|token|key|apikey|credential)s?"
_LABEL = re.compile(
    rb"(?i)[a-z]+[_\-]" + _LABEL_WORD + rb"|(?:(?:my|your|our|the|a|an|some|this|new|old)[_\-])?"
    rb"(?:(?:aws|gcp|azure|github|gh|gitlab|stripe|openai|anthropic|slack|npm|pypi)[_\-])?"
    rb"(?:(?:api|access|secret|private|public|signing|master|encryption|client|app|license"
    rb"|ssh|gpg|deploy|service|account|secret[_\-]access)[_\-]keys?(?:[_\-]id)?"
    rb"|(?:access|auth|api|bearer|refresh|session|bot|id|oauth|csrf|jwt|service|user|app"
    rb"|personal[_\-]access|secret)[_\-]tokens?"
    rb"|(?:client|app|api|session|webhook|shared|jwt|signing|cookie)[_\-]secrets?"
    rb"|(?:db|database|admin|root|user|app|mysql|postgres|redis|master|account|login|wifi"
    rb"|email|smtp|ssh|sudo)[_\-](?:password|passwd|pass|pwd)s?"
    rb"|pass[_\-]?phrase|passcode|pin|credentials?|apikey|password|passwd|pass|pwd|secrets?"
    rb"|tokens?|keys?)"
)
# The looser test a name's value written as an identifier passes (``password=db_password``,
# ``token=access_token`` as keyword arguments): words joined by ``_`` or ``-``, one of which
# names what it stands for. Only for unquoted values that read as code, never for a quoted one.
_IDENT_LABEL = re.compile(
    rb"(?i)(?:[a-z]+[_\-])*(?:tests?|fake|dummy|example|sample|change|placeholder|mock|stub"
    rb"|redacted|default|token|secret|key|password|passwd|pass|pwd|passphrase|credential|cred)"
    rb"(?:s|es)?(?:[_\-][a-z]+)*"
)


# A type written where the value goes: an API's example body (``{"password": "string"}``),
# a schema (``"credentials": "boolean?"``).
_TYPE = re.compile(
    rb"(?i)(?:string|str|bool|boolean|int|integer|number|float|bytes|object|any|text|secret"
    rb"|uuid|null|none|true|false)(?:\?|\[\])?"
)
# A name in camel case ending in what it names (``challengePassword``, ``_RSAPrivateKey``
# quoted as a type), or a colour (``Token: "#f8f8f2"`` in a syntax-highlighting theme).
_CAMEL_LABEL = re.compile(
    rb"_*[A-Za-z0-9]{6,}(?:Password|Passwd|Secret|Token|Key|Credential)s?"
    rb"|#(?:[0-9A-Fa-f]{3}){1,2}(?:[0-9A-Fa-f]{2})?"
)


# An HTTP authentication scheme's name, written where the scheme goes beside a token
# (``default_token='Bearer'``, ``token_type: bearer``): the kind of a token, not one.
_AUTH_SCHEME = re.compile(rb"(?i)bearer|basic|digest|negotiate|ntlm|hawk|oauth2?|jwt|bot|apikey")


def _stands_for_one(value: bytes) -> bool:
    """Whether a value written where a secret goes stands for one rather than being one: a
    variable, a template, a placeholder, a filler, a label, a type, a number."""
    return (
        _PLACEHOLDER.match(value) is not None
        or _TYPE.fullmatch(value) is not None
        or _CAMEL_LABEL.fullmatch(value) is not None
        or _STANDS_IN.fullmatch(value) is not None
        or _LABEL.fullmatch(value) is not None
        or _AUTH_SCHEME.fullmatch(value) is not None
        or value.isdigit()
    )


# In a URL's password place an all-capitals word is a placeholder only if it names what goes
# there (``postgres://app:DB_PASSWORD@db``): ``redis://:HUNTER_2@cache`` is a password, and
# so is one of any entropy (``redis://:222xxx@cache``): only a filler alone (``xxx``,
# ``***``, ``...``) stands for one.
_URL_PLACEHOLDER = re.compile(
    rb"[$<{`~/+]|\*\*|\./|%[a-z]|(?i:your)[_\-]|(?i:x+|\*+|\.+)$|.*`$"
    rb"|[A-Z0-9_]*(?:PASS|PWD|SECRET|TOKEN|KEY|CRED|AUTH)[A-Z0-9_]*$"
)


def _literal(value: bytes) -> bool:
    """Whether a value given on a command line or in an environment name is a literal
    secret rather than a placeholder, a variable or a word."""
    return not _stands_for_one(value) and b"://" not in value


def _xml_value(value: bytes) -> bool:
    """A :func:`_literal` that is not a sentence, as templates put between the tags
    (``<passphrase>optional; leave empty if not used.</passphrase>``)."""
    sentence = b" " in value and (value.rstrip().endswith(b".") or b"; " in value)
    return _literal(value) and not sentence


def _literal_token(value: bytes) -> bool:
    """A :func:`_literal` that also looks generated: eight characters or more, a digit."""
    return len(value) >= 8 and _has_digit(value) and _literal(value)


# A value on a command line: single-quoted, double-quoted (the quote escaped once in a JSON
# string, more inside a JSON string inside one), or bare.
_ARG = (
    rb"(?:'(?P<sq>[^'\n]{1,128})'"
    rb"|\\*\"(?P<dq>(?:(?!\\*\")[^\n]){1,128})\\*\""
    rb"|(?P<bare>[^\s'\"\\]{1,128}))"
)
_ARG_GROUPS = ("sq", "dq", "bare")


def _cli_password(
    triggers: tuple[bytes, ...],
    pattern: bytes,
    before: bytes | None = None,
    check: Callable[[bytes], bool] = _literal,
    word: frozenset[int] | None = _IDENT,
) -> _Rule:
    """A password given to a program on its command line: the argument after its option."""
    return _rule(
        "cli-password",
        triggers,
        pattern,
        group=_ARG_GROUPS,
        check=check,
        word=word,
        before=before,
    )


# Programs that read a password on their standard input: ``sudo -S``, ``docker login
# --password-stdin`` (and ``--passphrase-stdin``), ``gh auth login --with-token``,
# ``chpasswd``, ``passwd --stdin``; and secret stores that read the secret so
# (``docker secret create name -``, ``keyring set``, ``vercel env add``).
_STORES_STDIN = rb"|docker\s+secret\s+create\b|keyring\s+set\b|vercel\s+env\s+add\b"
_STORES_TRIGGERS = (b"secret create", b"keyring set", b"env add")
_READS_PASSWORD = (
    rb"(?:sudo(?:\s+(?:-u\s+\S+|-[A-Za-z]+))*?\s+-[A-Za-z]*S\b|chpasswd\b|passwd\s+--stdin"
    + _STORES_STDIN
    + rb"|[^\n|;&]{0,200}?--(?:pass(?:word|phrase)-stdin|with-token)\b)"
)
# Option words that say the option is a flag about a password rather than one
# (``--no-password``, ``--ask-pass``, ``--use-token``).
_FLAG_WORDS = (
    rb"(?!(?:no|ask|prompt|skip|use|with|without|read|require|empty|change|reset|show|save"
    rb"|forgot|max|min)[-_])"
)


_PEM = rb"-----begin [a-z0-9 ]{0,40}private key(?: block)?-----"
_ESCAPES = re.compile(rb"\\+[nrt/]")
_KEY_BODY = re.compile(rb"[A-Za-z0-9+/=]{16}")


def _key_body(block: bytes) -> bool:
    """Whether a private key block holds key material after its header: a run of 16 base64
    characters, as every line of a key's body is. The header alone is a constant in code
    (``_SK_START = b"-----BEGIN OPENSSH PRIVATE KEY-----"``) or a heading in docs."""
    body = _ESCAPES.sub(b" ", block[block.index(b"-----", 5) + 5 :])
    return _KEY_BODY.search(body) is not None


_RULES: tuple[_Rule, ...] = (
    # The body runs to the END line, or, when the block is cut short (a truncated tool
    # output), to the last character a key body can hold. Newlines inside may be escaped
    # once (a JSON line) or more (a service-account file shown inside a JSON line).
    _rule(
        "private-key",
        (b"-----begin ",),
        _PEM + rb"(?:[a-z0-9+/=:,. \t]|-(?!----)|\\+[nrt/])*"
        rb"(?:-----end [a-z0-9 ]{0,40}private key(?: block)?-----)?",
        lower=True,
        check=_key_body,
        word=None,
    ),
    _rule("anthropic", (b"sk-ant-",), rb"sk-ant-[A-Za-z0-9_\-]{20,}"),
    _rule(
        "openai",
        (b"sk-",),
        rb"sk-(?:proj|svcacct|admin|None)-[A-Za-z0-9_\-]{32,}",
        check=_random,
    ),
    _rule(
        "openai",
        (b"sk-",),
        rb"sk-[A-Za-z0-9]{32,}" + _END_ID,
        check=_mixed,
    ),
    _rule(
        "github",
        (b"ghp_", b"gho_", b"ghu_", b"ghs_", b"ghr_"),
        rb"gh[pousr]_[A-Za-z0-9]{30,}",
        word=_IDENT,
    ),
    _rule("github", (b"github_pat_",), rb"github_pat_[A-Za-z0-9_]{30,}", word=_IDENT),
    _rule(
        "gitlab",
        (b"glpat-", b"glptt-", b"gldt-", b"glrt-"),
        rb"gl(?:pat|ptt|dt|rt)-[A-Za-z0-9_\-]{20,}",
        check=_mixed,
    ),
    _rule(
        "aws",
        (b"AKIA", b"ASIA", b"AGPA", b"AIDA", b"AROA", b"ANPA", b"ANVA", b"AIPA"),
        rb"(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[0-9A-Z]{16}" + _END,
    ),
    _rule(
        "slack",
        (b"xox",),
        rb"xox[abposre]-[A-Za-z0-9\-]{10,}",
        check=_has_digit,
    ),
    _rule("slack", (b"xapp-",), rb"xapp-[0-9]-[A-Za-z0-9\-]{10,}"),
    _rule(
        "slack",
        (b"hooks.slack.com",),
        rb"hooks\.slack\.com/(?:services|workflows)/[A-Za-z0-9/]{20,}",
        word=None,
    ),
    _rule(
        "stripe",
        (b"_live_", b"_test_"),
        rb"(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}",
        check=_mixed,
    ),
    _rule("stripe", (b"whsec_",), rb"whsec_[A-Za-z0-9+/=]{20,}", check=_mixed),
    _rule("google", (b"AIza",), rb"AIza[0-9A-Za-z_\-]{30,}", check=_mixed),
    _rule("google", (b"ya29.",), rb"ya29\.[0-9A-Za-z_\-]{20,}", check=_mixed),
    _rule(
        "jwt",
        (b"eyJ",),
        rb"(?P<h>eyJ[A-Za-z0-9_\-]{6,})\.eyJ[A-Za-z0-9_\-]{6,}\.[A-Za-z0-9_\-]*",
        check=lambda token: _b64url_json_with_alg(token.split(b".", 1)[0]),
    ),
    _rule("npm", (b"npm_",), rb"npm_[A-Za-z0-9]{36}" + _END, check=_mixed, word=_IDENT),
    _rule("huggingface", (b"hf_",), rb"hf_[A-Za-z0-9]{30,}" + _END_ID, check=_mixed, word=_IDENT),
    _rule(
        "sendgrid",
        (b"SG.",),
        rb"SG\.[A-Za-z0-9_\-]{16,32}\.[A-Za-z0-9_\-]{30,50}",
        check=_mixed,
    ),
    _rule("digitalocean", (b"_v1_",), rb"do[por]_v1_[a-f0-9]{64}" + _END),
    _rule("pypi", (b"pypi-",), rb"pypi-Ag[A-Za-z0-9_\-]{50,}"),
    _rule("docker", (b"dckr_pat_",), rb"dckr_pat_[A-Za-z0-9_\-]{20,}", check=_mixed),
    _rule(
        "shopify",
        (b"shpat_", b"shpca_", b"shppa_", b"shpss_"),
        rb"shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}" + _END,
        word=_IDENT,
    ),
    _rule(
        "telegram",
        (b":AA",),
        rb":(?P<v>AA[A-Za-z0-9_\-]{33})" + _END_ID,
        group="v",
        word=None,
        # The bot's id before the colon is public; the part after it is the secret. In the
        # Bot API's URLs the id follows ``/bot`` (``api.telegram.org/bot<id>:<secret>/``).
        before=rb"(?:^|[^0-9A-Za-z]|\\[nrtbf]|/bot)[0-9]{8,10}",
    ),
    # The password of a URL (``postgres://app:s3cret@db``, ``https://user:token@host``).
    _rule(
        "url-password",
        (b"://",),
        # The user may be empty (``redis://:s3cret@host`` is how Redis spells a password).
        # A password equal to its user is a default, not a secret (``postgres:postgres@``,
        # the docker image's, in every README and CI file).
        rb"://(?P<u>[a-z0-9._~%!$&*+;=\-]{0,64}):(?!(?P=u)@)(?P<v>[^\s/@:\"'\\\[\]<>]{1,200})"
        rb"@[a-z0-9\[]",
        lower=True,
        group="v",
        # A label in lower case stands for one as its capitalised name does
        # (``http://username:password@host`` in a docstring).
        check=lambda value: (
            _URL_PLACEHOLDER.match(value) is None and _LABEL.fullmatch(value) is None
        ),
        word=None,
    ),
    _rule(
        "basic-auth",
        (b"basic",),
        rb"authorization\\?\"?\s*[:=]\s*\\?\"?\s*basic\s+(?P<v>[a-z0-9+/]{8,}={0,2})",
        lower=True,
        group="v",
        check=_basic_credentials,
        word=None,
    ),
    # Docker's and Podman's ``config.json`` (``"auths": {"host": {"auth": "…"}}``), npm's
    # ``_auth=…``: base64 of ``user:password`` after a key named ``auth``. Only these two
    # spellings: ``auth: …`` and ``auth = …`` are everywhere in code, and screening for them
    # flagged twice the lines (measured on the corpus).
    *(
        _rule(
            "basic-auth",
            triggers,
            pattern + rb"(?P<v>[a-z0-9+/]{6,}={0,2})(?![a-z0-9+/=])",
            lower=True,
            group="v",
            check=_user_password,
            word=word,
        )
        for triggers, pattern, word in (
            ((b'auth"', b"auth\\", b"auth'"), rb"auth\\*[\"'][ \t]*:[ \t]*\\*[\"']", _WORD),
            ((b"_auth",), rb"_auth[ \t]*=[ \t]*", _IDENT),
        )
    ),
    _rule(
        "bearer",
        (b"bearer",),
        rb"bearer\s+(?P<v>[a-z0-9\-._~+/]{16,}=*)",
        lower=True,
        group="v",
        check=lambda value: _mixed(value) and _has_digit(value),
        word=None,
    ),
    # Azure shared access signatures: the signature is the secret.
    _rule(
        "azure",
        (b"sig=",),
        rb"sig=(?P<v>[A-Za-z0-9%+/=]{20,})",
        group="v",
        before=rb"(?:[?&;]|\\u0026)",
        word=None,
    ),
    # Google OAuth client secrets.
    _rule("google", (b"gocspx-",), rb"GOCSPX-[A-Za-z0-9_\-]{24,40}" + _END_ID),
    # Mailgun's private API keys.
    _rule("mailgun", (b"key-",), rb"key-[0-9a-f]{32}" + _END),
    # HashiCorp Vault tokens (service, batch, recovery).
    _rule("vault", (b"hvs.", b"hvb.", b"hvr."), rb"hv[sbr]\.[A-Za-z0-9_\-]{24,}", check=_mixed),
    # Discord webhooks: the part after the webhook's id is its secret.
    _rule(
        "discord",
        (b"/api/webhooks/",),
        rb"discord(?:app)?\.com/api/webhooks/[0-9]{17,20}/(?P<v>[A-Za-z0-9_\-]{60,80})",
        group="v",
        word=None,
    ),
    # Twilio: the account SID, and the auth token written after it (``-u SID:TOKEN``,
    # ``Client("SID", "TOKEN")``).
    _rule("twilio", (), rb"AC[0-9a-f]{32}" + _END),
    _rule(
        "twilio",
        (),
        rb"AC[0-9a-f]{32}(?:\\*[\"'])?\s*[:,]\s*(?:\\*[\"'])?(?P<v>[0-9a-f]{32})" + _END,
        group="v",
    ),
    # ``Authorization: Token <key>`` (Django REST framework, NetBox, …).
    _rule(
        "token-auth",
        (),
        rb"authorization\\*\"?\s*[:=]\s*\\*\"?\s*token\s+(?P<v>[a-z0-9_\-.=]{16,})",
        lower=True,
        group="v",
        check=lambda value: _has_digit(value) and _literal(value),
        word=None,
    ),
    # Passwords given on a command line: MySQL's ``-p<password>`` (attached: ``-p password``
    # asks for one and names a database); sshpass's and registry logins' ``-p``; and
    # ``curl -u user:password``.
    _cli_password(
        (b"mysql", b"mariadb"),
        rb"(?:mysql|mariadb)[a-z\-]*(?=[\s\\'\"])[^\n|;&]{0,200}?\s-p" + _ARG,
    ),
    _cli_password(
        (b"sshpass",),
        rb"sshpass(?:\s+-[a-oq-zA-Z]\S*)*\s+-p\s*" + _ARG,
    ),
    _cli_password(
        (b"login",),
        rb"login\b[^\n|;&]{0,200}?\s(?:-p|--password)(?:=|\s+)" + _ARG,
        before=rb"(?:docker|podman|nerdctl|buildah|skopeo|registry|oras)\s+",
    ),
    _rule(
        "cli-password",
        (b"curl", b"wget"),
        rb"(?:curl|wget)(?=[\s\\'\"])[^\n|;&]{0,300}?\s(?:-[a-zA-Z]{0,3}u\s*|--user(?:=|\s+))"
        rb"(?:'|\\*\")?[^\s:'\"\\]{1,64}:(?P<v>[^\s'\"\\@]{1,128})",
        group="v",
        check=_literal,
        word=_IDENT,
    ),
    # More passwords on command lines: ``redis-cli -a``, ``mongosh -p``, OpenSSL's
    # ``pass:<password>`` and ``enc -k``, ``az login -p``, ``zip -P``, ``7z -p<password>``,
    # ``htpasswd -b file user <password>``, ``ssh-keygen -N <passphrase>``.
    _cli_password(
        (b"redis-cli",),
        rb"redis-cli(?=[\s\\'\"])[^\n|;&]{0,200}?\s-a\s+" + _ARG,
    ),
    _cli_password(
        (b"mongo",),
        rb"mongo(?:sh|dump|restore|import|export|files|stat|top)?(?=[\s\\'\"])[^\n|;&]{0,200}?"
        rb"\s(?:-p|--password)(?:=|\s+)(?!-)" + _ARG,
    ),
    _rule(
        "cli-password",
        (b"pass:",),
        rb"-pass(?:in|out|word)?\s+(?:\\*[\"'])?pass:(?P<bare>[^\s'\"\\]{1,128})",
        group="bare",
        check=_literal,
        word=None,
    ),
    _cli_password(
        (b"openssl",),
        rb"openssl(?=[\s\\'\"])[^\n|;&]{0,200}?\s-k\s+" + _ARG,
    ),
    _cli_password(
        (b"login",),
        rb"login\b[^\n|;&]{0,200}?\s(?:-p|--password)(?:=|\s+)" + _ARG,
        before=rb"(?<![A-Za-z0-9_\-])az\s+",
    ),
    # (Each program its own rule: a pattern that opens with its literal name is scanned for
    # fast, one that opens with an alternation is tried at every position of the line.)
    *(
        _cli_password(
            (program + b" ",),
            program + rb"(?=[\s\\'\"])[^\n|;&]{0,200}?\s(?:-P|--password)\s+" + _ARG,
        )
        for program in (b"zip", b"unzip")
    ),
    _cli_password(
        (b"7z ", b"7za "),
        rb"7za?(?=[\s\\'\"])[^\n|;&]{0,200}?\s-p" + _ARG,
    ),
    _cli_password(
        (b"htpasswd",),
        rb"htpasswd\s+-[a-zA-Z]*b[a-zA-Z]*(?:\s+-[a-zA-Z]+)*\s+\S+\s+\S+\s+" + _ARG,
    ),
    _cli_password(
        (b"ssh-keygen",),
        rb"ssh-keygen(?=[\s\\'\"])[^\n|;&]{0,200}?\s-N\s+" + _ARG,
    ),
    # A .netrc (and curl's ``--netrc-file``): ``machine host login user password <password>``.
    *(
        _rule(
            "netrc",
            (start,),
            start.split()[0]
            + rb"\s+(?:\S+\s+)?login\s+\S+\s+password\s+(?P<bare>[^\s'\"\\]{1,128})",
            group="bare",
            check=_literal,
        )
        for start in (b"machine", b"default login")
    ),
    # A secret handed over by the environment variable's name in code: PHP's ``define('DB_
    # PASSWORD', '…')``, a default in ``os.getenv("API_KEY", "…")``, ``setdefault``,
    # ``setenv``; and a Kubernetes container's ``- name: DB_PASSWORD`` / ``value: …``.
    *(
        _rule(
            "env-secret",
            triggers,
            call + rb"\(\s*\\*[\"'][A-Za-z0-9_]*(?:PASSWORD|PASSWD|SECRET|TOKEN|KEY|PASS|PWD)"
            rb"\\*[\"']\s*,\s*\\*[\"'](?P<v>[^\"'\\\n]{1,200})\\*[\"']",
            group="v",
            check=lambda value: _literal(value) and b"your " not in value.lower(),
            word=None,
        )
        # ``get`` and ``fetch`` only on the environment: ``os.environ.get``, Ruby's ``ENV.fetch``.
        for call, triggers in (
            *(
                (c, (c + b"(",))
                for c in (b"define", b"getenv", b"setdefault", b"setenv", b"putenv")
            ),
            (b"get", (b"environ.get(", b"env.get(")),
            (b"fetch", (b"env.fetch(",)),
        )
    ),
    _rule(
        "env-secret",
        (b"value:",),
        rb"name:[ \t]*\\*[\"']?[A-Z0-9_]*(?:PASSWORD|PASSWD|SECRET|TOKEN|KEY|PASS|PWD)"
        rb"\\*[\"']?(?:[ \t\r\n]|\\+[nrt])+value:[ \t]*(?:\\*[\"'](?P<q>[^\"'\\\n]{1,200})\\*[\"']"
        rb"|(?P<bare>[^\s\"'\\]{1,200}))",
        group=("q", "bare"),
        check=_literal,
        word=None,
    ),
    # XML: ``<password>…</password>`` (Maven's settings.xml, .NET), and .NET's appSettings
    # ``<add key="ApiKey" value="…"/>``.
    _rule(
        "xml-secret",
        (
            *(b"password>", b"passwd>", b"secret>", b"token>", b"key>", b"passphrase>"),
            *(b"pwd>", b"credential>", b"credentials>"),
        ),
        rb"<(?P<tag>[a-z_.\-:]*(?:password|passwd|secret|token|apikey|(?:"
        + b"|".join(_KEY_KINDS)
        + rb")[_\-]?key|passphrase|pwd|credentials?))>(?P<v>[^<\s][^<\n\\]{0,200})</(?P=tag)>",
        lower=True,
        group="v",
        check=_xml_value,
        word=None,
    ),
    _rule(
        "xml-secret",
        (b"value=",),
        rb"key=\\*\"[a-z0-9_.:\-]*(?:password|passwd|secret|token|apikey|api[_\-]key|access[_\-]key"
        rb"|private[_\-]key)[a-z0-9_.:\-]*\\*\"\s+value=\\*\"(?P<v>[^\"\\\n]{1,200})\\*\"",
        lower=True,
        group="v",
        check=_literal,
        word=None,
    ),
    # Basic credentials as a pair in code: ``auth=("admin", "…")``, ``HTTPBasicAuth("u", "…")``.
    *(
        _rule(
            "basic-auth",
            triggers,
            start + rb"\s*\\*[\"'][^\"'\\\n]{1,64}"
            rb"\\*[\"']\s*,\s*\\*[\"'](?P<v>[^\"'\\\n]{1,128})\\*[\"']",
            lower=True,
            group="v",
            check=_literal,
            word=word,
        )
        for triggers, start, word in (
            ((b"auth=", b"auth ="), rb"auth\s*=\s*[(\[]", _IDENT),
            ((b"basicauth(",), rb"basicauth\(", None),
            ((b"digestauth(",), rb"digestauth\(", None),
        )
    ),
    # Options that always take a password: ``gpg --passphrase``, keytool's and jarsigner's
    # ``-storepass`` and ``-keypass``, and an option whose name ends in a password's word after
    # another word (``--db-pass``, ``--http-password``, ``-admin_pwd``): the argument is one,
    # whatever it holds. Not a flag about one (``--no-password``), nor where it comes from
    # (``--password-stdin``, ``--passphrase-fd``, ``--db-pass-file``).
    # One rule per word, opening with it (a pattern opening with ``-`` was tried at every
    # dash of a line, and cost more than all other rules on the corpus); the option's start is
    # checked behind it. Triggers end with what follows the word: trigger matches do not
    # overlap, so ``_pass`` would hide ``password>`` in ``<db_password>`` (the XML rule would
    # not run), while ``_pass=`` cannot; and ``password `` alone is in too many lines.
    *(
        _rule(
            "cli-password",
            tuple(
                lead + word + end
                for lead in (b"-", b"_", b"store", b"key")
                for end in (b" ", b"=", b"\t")
            ),
            word + rb"(?:=|\s+)(?!-)" + _ARG,
            group=_ARG_GROUPS,
            check=_literal,
            word=None,
            before=rb"(?:^|[\s\"'=]|\\[nrt])-{1,2}" + prefix,
            reach=48,
        )
        for word, prefix in (
            (b"passphrase", _FLAG_WORDS + rb"(?:[a-z0-9]+[-_])*"),
            (b"password", _FLAG_WORDS + rb"(?:[a-z0-9]+[-_])+"),
            (b"passwd", _FLAG_WORDS + rb"(?:[a-z0-9]+[-_])+"),
            (b"pwd", _FLAG_WORDS + rb"(?:[a-z0-9]+[-_])+"),
            (
                b"pass",
                rb"(?:(?:src|dest|new)?(?:store|key)|" + _FLAG_WORDS + rb"(?:[a-z0-9]+[-_])+)",
            ),
        )
    ),
    # An option whose name ends in a token's word after another word (``--auth-token``,
    # ``--github-token``, ``--client-secret``, ``--encryption-key``): a value that looks
    # generated, as with ``--token`` below.
    _cli_password(
        tuple(
            b"-" + w + e
            for w in (b"token", b"tokens", b"secret", b"key")
            for e in (b" ", b"=", b"\t")
        ),
        rb"--"
        + _FLAG_WORDS
        + rb"(?:[a-z0-9]+-)*(?:[a-z0-9]+-(?:tokens?|secret)|(?:api|access|secret|auth"
        rb"|encryption|signing|master|license|subscription)-key)(?:=|\s+)(?!-)" + _ARG,
        check=_literal_token,
    ),
    # A literal written to a program that reads a password on its standard input: ``echo
    # 'pw' | sudo -S …``, ``echo pw | docker login --password-stdin``, ``sudo -S cmd <<< pw``,
    # ``ssh-add - <<< "$KEY"`` (a key, or its passphrase).
    # (Triggered by the reader, rarer than ``echo``; one rule per writer, so that each
    # pattern opens with a literal.)
    *(
        _cli_password(
            (b"sudo", b"-stdin", b"chpasswd", b"--with-token", *_STORES_TRIGGERS),
            writer
            + rb"(?:\s+-[neE]{1,3})*\s+(?:\\*['\"]%s(?:\\+n)?\\*['\"]\s+)?"
            + _ARG
            + rb"\s*\|\s*(?:[A-Za-z_][A-Za-z0-9_]*=\S*\s+)*(?="
            + _READS_PASSWORD
            + rb")",
        )
        for writer in (b"echo", b"printf")
    ),
    _cli_password(
        (b"<<<",),
        rb"(?:sudo(?:\s+(?:-u\s+\S+|-[A-Za-z]+))*?\s+-[A-Za-z]*S\b|chpasswd|passwd\s+--stdin"
        rb"|--pass(?:word|phrase)-stdin|--with-token|ssh-add" + _STORES_STDIN + rb")"
        rb"[^\n|;&<]{0,200}?<<<\s*" + _ARG,
        word=None,
    ),
    # A literal handed over as a file by process substitution: ``ansible-vault …
    # --vault-password-file <(echo pw)``, ``--password-file <(printf '%s' pw)``.
    *(
        _cli_password(
            (b"<(" + writer,),
            rb"-(?:pass(?:word)?|passphrase|secret|token)-file(?:=|\s+)<\(\s*"
            + writer
            + rb"(?:\s+-[neE]{1,3})*\s+(?:\\*['\"]%s(?:\\+n)?\\*['\"]\s+)?"
            + _ARG
            + rb"\s*\)",
            word=None,
        )
        for writer in (b"echo", b"printf")
    ),
    # ``vault login <token>`` (a value that looks generated: ``vault login -method=userpass
    # username=bob`` names a user); ``gh secret set NAME --body <value>``; RabbitMQ's
    # ``add_user``/``change_password <user> <password>``; Windows' ``net user <name>
    # <password>`` (``*`` asks for one).
    _cli_password(
        (b"vault login",),
        rb"vault\s+login(?:\s+-\S+)*\s+(?!-)" + _ARG,
        check=_literal_token,
    ),
    # ``gh secret set NAME -b'<v>'`` (attached), ``az keyvault secret set … --value <v>``.
    _cli_password(
        (b"secret set",),
        rb"secret\s+set\b[^\n|;&]{0,200}?\s(?:-b(?:=|\s*)|--body(?:=|\s+)|--value(?:=|\s+))" + _ARG,
    ),
    # Review H2: more programs' password options. ``sqlcmd``/``bcp -P``, the LDAP tools' and
    # macOS ``security add-*-password``'s ``-w`` (``-W`` prompts), ``dotnet nuget … source
    # -p``, a secret store's ``--secret-string``, ``cargo login <token>`` (only a value that
    # looks generated: ``cargo login --registry name``), ``sonar.login=``, Poetry's
    # ``http-basic.<repo> <user> <password>`` and ``pypi-token.<repo> <token>``, ``aws
    # configure set`` of a secret's key, ``rclone config create … secret_access_key <v>``.
    *(
        _cli_password((program + b" ",), program + rb"(?=[\s\\'\"])[^\n|;&]{0,200}?\s-P\s*" + _ARG)
        for program in (b"sqlcmd", b"bcp")
    ),
    _cli_password(
        (b"ldap",),
        rb"ldap[a-z]{2,12}(?=[\s\\'\"])[^\n|;&]{0,200}?\s-w\s+(?!-)" + _ARG,
    ),
    _cli_password(
        (b"security ",),
        rb"security\s+add-(?:generic|internet)-password\b[^\n|;&]{0,200}?\s-w\s+(?!-)" + _ARG,
    ),
    _cli_password(
        (b"nuget",),
        rb"nuget\s+(?:add|update)\s+source\b[^\n|;&]{0,200}?\s(?:-p|--password)(?:=|\s+)" + _ARG,
    ),
    _cli_password(
        (b"--secret-string",),
        rb"--secret-string(?:=|\s+)" + _ARG,
        word=None,
    ),
    _cli_password(
        (b"cargo login",),
        rb"cargo\s+login\s+(?!-)" + _ARG,
        check=_literal_token,
    ),
    _cli_password(
        (b"sonar.login", b"sonar.token"),
        rb"sonar\.(?:login|token)\s*[=:]\s*" + _ARG,
        check=_literal_token,
        word=None,
    ),
    _cli_password(
        (b"http-basic.",),
        rb"http-basic\.[A-Za-z0-9_.\-]+\s+[^\s\-]\S*\s+" + _ARG,
        word=None,
    ),
    _cli_password(
        (b"pypi-token.",),
        rb"pypi-token\.[A-Za-z0-9_.\-]+\s+(?!-)" + _ARG,
        word=None,
    ),
    _cli_password(
        (b"configure set",),
        rb"configure\s+set\s+(?:[A-Za-z0-9_\-]+\.)?[A-Za-z0-9_]*(?:secret|token|password)"
        rb"[A-Za-z0-9_]*\s+" + _ARG,
    ),
    _cli_password(
        (b"rclone",),
        rb"rclone\s+config\s+(?:create|update)\b[^\n|;&]{0,300}?\s[a-z_]*(?:secret|pass|token)"
        rb"[a-z_]*(?:=|\s+)" + _ARG,
    ),
    # A single-dash ``-password <v>`` (Java's and .NET's tools) and prose's ``the password is
    # <v>``: only a value that looks generated (a digit, 8 characters or more).
    _cli_password(
        (b"-password ", b"-password=", b"-passwd ", b"-passwd="),
        rb"-passw(?:or)?d(?:=|\s+)(?!-)" + _ARG,
        before=rb"(?:^|[\s\"'])",
        check=_literal_token,
        word=None,
    ),
    _cli_password(
        (b"password is", b"password was"),
        # (A bare value in prose ends before the sentence's punctuation.)
        rb"(?i:password)\s+(?:is|was)\s*:?\s+"
        + _ARG.replace(
            rb"(?P<bare>[^\s'\"\\]{1,128})", rb"(?P<bare>[^\s'\"\\,;]{1,127}[^\s'\"\\,;.])"
        ),
        check=_literal_token,
    ),
    # ``httpie``/``xh -a user:password`` among the options before the URL (the trigger
    # needs an option right after the program: ``HTTP `` is a word of prose in many flagged
    # lines), and ``smbclient -U user%password``.
    *(
        _rule(
            "cli-password",
            (program + b" -",),
            program + rb"(?:\s+-\S+)*?\s+(?:-a\s*|--auth(?:=|\s+))"
            rb"(?:'|\\*\")?[^\s:'\"\\]{1,64}:(?P<v>[^\s'\"\\@]{1,128})",
            group="v",
            check=_literal,
            word=_IDENT,
        )
        for program in (b"http", b"https", b"xh")
    ),
    _rule(
        "cli-password",
        (b"smbclient",),
        rb"smbclient(?=\s)[^\n|;&]{0,300}?\s(?:-U\s*|--user(?:=|\s+))"
        rb"(?:'|\\*\")?[^\s%'\"\\]{1,64}%(?P<v>[^\s'\"\\]{1,128})",
        group="v",
        check=_literal,
        word=_IDENT,
    ),
    _cli_password(
        (b"rabbitmqctl",),
        rb"rabbitmqctl(?:\s+-\S+)*\s+(?:add_user|change_password)\s+\S+\s+" + _ARG,
    ),
    _cli_password(
        (b"net user",),
        rb"net\s+user\s+[^\s/]+\s+" + _ARG,
        check=lambda value: value != b"*" and _literal(value),
    ),
    # SQL: ``ALTER USER app WITH PASSWORD '…'``, ``CREATE ROLE r LOGIN PASSWORD '…'``
    # (PostgreSQL), ``IDENTIFIED BY '…'`` (MySQL, MariaDB, Oracle): the string literal after
    # the keyword. In code a string ending in the word and a space (``'wrong password '``) is
    # followed by an operator or a bracket, never by a literal and its closing quote.
    _rule(
        "sql-password",
        (b"password '",),  # not ``password``: a word that common made finding triggers slower
        rb"password\s+'(?P<v>[^'\s\\(),;+=:.][^'\s\\]{0,127})'(?![A-Za-z0-9_])",
        lower=True,
        group="v",
        check=_literal,
        word=_IDENT,
    ),
    _rule(
        "sql-password",
        (b"identified",),
        rb"identified\s+(?:with\s+[a-z0-9_]+\s+)?by\s+(?:'(?P<sq>[^'\n]{1,128})'"
        rb"|\\*\"(?P<dq>(?:(?!\\*\")[^\n]){1,128})\\*\")",
        lower=True,
        group=("sq", "dq"),
        check=_literal,
        word=_IDENT,
    ),
    # MySQL's ``SET PASSWORD … = PASSWORD('…')``, ``SELECT PASSWORD('…')``.
    _rule(
        "sql-password",
        (b"password('", b"password ('"),
        rb"password\s?\(\s*'(?P<v>[^'\n\\]{1,128})'\s*\)",
        lower=True,
        group="v",
        check=_literal,
        word=_WORD,
        # Where SQL puts a value (not ``new Password('…')``, a class in code).
        before=rb"(?i)(?:=|\bselect|,|\()\s*",
    ),
    # Oracle's unquoted ``IDENTIFIED BY tiger2024``: only a value that looks generated.
    _rule(
        "sql-password",
        (b"identified",),
        rb"identified\s+by\s+(?P<v>[a-z0-9_#$]{1,128})(?![a-z0-9_#$])",
        lower=True,
        group="v",
        check=_literal_token,
        word=_IDENT,
    ),
    # A session's cookie: in a ``Cookie:`` or ``Set-Cookie:`` header or curl's ``--cookie``,
    # the value of a cookie whose name says it holds a session or a credential (``session``,
    # ``sessionid``, ``connect.sid``, ``auth_token``, ``remember_me``).
    _rule(
        "cookie",
        (b"cookie",),
        rb"cookie(?:\\*[\"']?[ \t]*:|=|[ \t]+)[ \t]*\\*[\"']?"
        rb"(?:[^;\s=\\\"'\[]{1,64}=[^;\s\\\"'\[]*;[ \t]*){0,30}?"
        rb"[a-z0-9_.\-]*(?:sess|sid|auth|token|jwt|login|remember|secret)[a-z0-9_.\-]*"
        rb"=(?P<v>[^;\s\\\"'\[]{8,512})",
        lower=True,
        group="v",
        check=_literal,
        word=_WORD,
    ),
    # A secret given as a long option's value after a space (``--api-key <key>``,
    # ``--token <token>``): only a value that looks generated (a digit, 8 characters or more).
    _rule(
        "cli-token",
        (
            b"--token",
            b"--auth",
            b"--api-key",
            b"--apikey",
            b"--access-token",
            b"--password",
            b"--passwd",
            b"--secret",
            b"--client-secret",
        ),
        rb"--(?:token|auth|auth-token|api-key|apikey|access-token|password|passwd|secret"
        rb"|client-secret)(?:=|\s+)" + _ARG,
        group=_ARG_GROUPS,
        check=_literal_token,
        word=None,
    ),
    # An environment variable whose name says it holds a secret (``SECRET_KEY_BASE=…``,
    # ``TWILIO_AUTH_TOKEN=…``), where the name need not end with the telling word. One rule
    # per word, each starting with it: Python's ``re`` finds a literal prefix fast.
    *(
        _rule(
            "env-secret",
            (),
            word + rb"[A-Z0-9_]*=(?P<v>[^\s\"'\\,;&<>{}\[\]()]{8,})",
            group="v",
            check=_literal_token,
            word=None,
            before=before,
        )
        for word, before in (
            (rb"SECRET", None),
            (rb"TOKEN", None),
            (rb"PASSW(?:OR)?D", None),
            (rb"KEY", rb"(?:API|ACCESS|PRIVATE)_?"),
        )
    ),
)

# Names whose value is a secret: ``password=…``, ``"api_key": "…"``, ``secret: …``. How the
# value is written says how sure we can be that it is one:
# - quoted (JSON, YAML, TOML, a quoted .env value, a string in code), or ``name=value`` with
#   no spaces (env, URLs, flags): a secret unless it stands for one (:func:`_stands_for_one`).
#   An unquoted ``name=value`` in lower case whose value reads as an identifier
#   (``password=db_password``, a keyword argument) is code: it needs only name a secret.
# - loose, unquoted after ``:``, ``=``, ``:=`` or ``=>`` with spaces (YAML, INI, prose, logs,
#   type hints, code): see :func:`_loose_secret`.
_NAMES = (
    b"password",
    b"passwd",
    b"passphrase",
    b"pwd",
    b"secret",
    b"token",
    b"key",
    b"pass",
    b"credential",
    b"credentials",
)
# Names whose value, all digits, is a PIN or a weak password rather than a count or a port.
_PASSWORD_NAMES = frozenset((b"password", b"passwd", b"passphrase", b"pwd", b"pass"))
# ``key`` and ``pass`` alone are ordinary words: they count only after one of these.
_PREFIXES = {
    b"key": _KEY_KINDS,
    b"pass": (b"_", b"-", b"db", b"db_"),
}
_SEPARATORS = (b"", b"_", b"-")
# Each name's prefixes joined to each separator, by length: a lookup per length rather than an
# ``endswith`` per prefix and separator (the list of ``key``'s grew to seventeen).
_PREFIX_ENDS = {
    name: (
        frozenset(p + s for p in prefixes for s in _SEPARATORS),
        sorted({len(p + s) for p in prefixes for s in _SEPARATORS}),
    )
    for name, prefixes in _PREFIXES.items()
}
# A quote may be escaped any number of times: once in a JSON string, more in JSON inside a
# JSON string (``curl -d '{\"password\":\"…\"}'`` in Codex ``function_call`` arguments). A
# subscript's bracket may close the name (``config["password"] = "…"``).
_TAIL = re.compile(
    rb"(?:\\*[\"']\]?)?"
    rb"(?:(?P<eq>=)|(?:\s*:\s*[a-z_][a-z0-9_.\[\]|?]{0,40}(?:\s*\|\s*[a-z_][a-z0-9_]{0,20})?)?"
    rb"\s*(?::=|=>|[:=])\s*(?P<q>\\*[\"'])|(?P<loose>\s*(?::=|=>|[:=])\s*))"
    # Quoted, the value runs to its closing quote whatever it holds (``"my secret"``), found
    # by :func:`_closing_quote`; here only its first word.
    rb"(?P<v>[^\s\"'\\,;&<>{}\[\]()](?(q)[^\s\"'\\,;&<>{}\[\]()]*|[^\s\"'\\,;&<>{}\[\]()]{3,}))"
)
_NAME_CHAR = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789")
# What may follow a value that ends its line: the line's end (raw or escaped in JSON), the
# string's closing quote, or a comment.
_LINE_END = re.compile(rb"[ \t]+#|[ \t]*(?:\Z|\\+[nr]|[\r\n]|\\*[\"'`])")
_DOTTED = re.compile(rb"[A-Za-z_$][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
_JOINED = re.compile(rb"(?i)[a-z]+(?:[_\-][a-z]+)+")
_PASSPHRASE = re.compile(rb"(?i)[a-z]+(?:-[a-z]+){2,}")
_IDENTIFIER = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*")
_PRODUCT = re.compile(rb"[A-Za-z0-9_]+\*[A-Za-z0-9_]+")
# What ends a keyword argument: the next one, the call, or the line (the last of several).
_ARGUMENT_END = re.compile(rb"[ \t]*(?:[,)]|\Z|\\+n|\n)")
# ``clientSecret``, ``SecretStr``, ``Token``: a variable or a type, not a password.
_CAMEL = re.compile(rb"[a-z]+(?:[A-Z][a-z0-9]+)+|(?:[A-Z][a-z0-9]*)+")
# Words that follow a secret's name in prose, logs and type hints rather than being its value
# (``password: required``, ``token: expired``, ``secret: bytes``).
_PROSE = frozenset(
    b"str string bytes bytearray int integer bool boolean float number dict list tuple object"
    b" any text varchar char uuid json blob binary optional secretstr secretbytes self this"
    b" required optional missing invalid valid expired revoked incorrect wrong empty unset set"
    b" hidden masked redacted present absent true false yes no on off enabled disabled"
    b" generated provided unknown default changed updated rotated accepted rejected denied"
    b" needed none null nil undefined omitted sensitive encrypted hashed stored saved"
    b" configured found ignored removed deleted reset same supplied inherited auto automatic"
    b" manual prompt prompted stdin env environment file keyring keychain vault pending"
    b" success failed failure error unchanged verified ok okay given used needs see below"
    b" above here there later elsewhere only optional mandatory unused unavailable"
    # Sources in /etc/nsswitch.conf (``passwd: files systemd``).
    b" files compat systemd ldap nis nisplus sss winbind".split()
)
# Words of prose compounds (``token: read-only``, ``secret: auto-generated``).
_PROSE_PARTS = _PROSE | frozenset(
    b"read write only short long lived one time per session request not built in base"
    b" encoded hard coded self signed pre shared user app level scoped side specific wide"
    b" based defined managed backed bound to of up date and or the by for end at as is".split()
)


def _whole_name(data: bytes, at: int, after: int) -> bytes:
    """The identifier the name at ``data[at:after]`` ends (``POSTGRES_PASSWORD``, ``_stoken``)."""
    start = at
    while start > 0 and data[start - 1] in _IDENT:
        if start >= 2 and data[start - 2] == 0x5C:  # ``\nPASSWORD``: the escape is not the name
            break
        start -= 1
    return data[start:after]


def _caps_name(data: bytes, at: int, after: int) -> bool:
    """Whether the name that ends at ``after`` is written in capitals, as an environment
    variable's is (``POSTGRES_PASSWORD``)."""
    key = _whole_name(data, at, after)
    return key.upper() == key


# A section header on a line of its own (``[client]`` in my.cnf, ``[database]`` in an INI or
# TOML file): the ``name = value`` lines under it are settings, not code.
_SECTION = re.compile(
    rb"(?:\A|\n|\\n|\")[ \t]*\[[A-Za-z0-9_.\- \"]{1,64}\][ \t]*(?:\r?\n|(?:\\+r)?\\+n)"
)
_SECTION_REACH = 4096
# A value in a password's shape among symbols (``P@ss!word``), not an expression.
_SYMBOLS = frozenset(b"@#%^!~$*")
_WORD_OR_SYMBOL = _IDENT | _SYMBOLS


def _line_start(data: bytes, at: int) -> int | None:
    """Where the line holding ``at`` starts, after a raw or a JSON-escaped newline; None when
    that is further back than a setting's name reaches (looked for only that far, so a line of
    megabytes is not searched back from every name in it)."""
    lowest = max(0, at - 256)
    raw = data.rfind(b"\n", lowest, at)
    escaped = data.rfind(b"\\n", lowest, at)
    if raw < 0 and escaped < 0:
        return 0 if lowest == 0 else None
    return max(raw + 1, escaped + 2 if escaped >= 0 else 0)


class _Sections:
    """Where the section headers of one text end, found once for all its names (a search
    back from each name made a text of many ``name = value`` lines quadratic)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self._ends: list[int] | None = None

    def ends(self) -> list[int]:
        if self._ends is None:
            self._ends = [m.end() for m in _SECTION.finditer(self.data)]
        return self._ends


def _ini_setting(data: bytes, at: int, sections: _Sections) -> bool:
    """Whether the name at ``at`` opens its line under a section header, as in INI files."""
    start = _line_start(data, at)
    if start is None or (
        data[start:at]
        .strip(b" \t")
        .strip(b"_-.abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
    ):
        return False
    ends = sections.ends()
    before = bisect.bisect_right(ends, start) - 1
    return before >= 0 and start - ends[before] <= _SECTION_REACH


# One lower-case letter between capitals (``NvD`` in ``wAwaIINYNvDMbZoO``): no name in code is
# written so, in camel case with acronyms or not (``parseHTTPResponse``, ``getXMLHttpRequest``),
# unless the two letters are a word of their own (``userIdToken``, ``getDbPassword``).
_RANDOM_CASE = re.compile(rb"(?=([A-Z][a-z])[A-Z])")
_TWO_LETTER_WORDS = frozenset(
    b"Db Id Io Ui Os Ok Js Ts Go Rx Tx Ip Op Vm Ai Ml Qa Pr Ci Cd Fs Ws Ns Pk Fk Ux Gb Mb Kb"
    b" Tb Is As At By Do If In It My No Of On Or So To Up Us We Me Be An Ex Re Un Xy".split()
)


def _random_word(value: bytes) -> bool:
    """A word no code would name a thing: random case (``wAwaIINYNvDMbZoO``) or letters among
    password symbols (``P@ss!word``), starting with a letter."""
    if not value[:1].isalpha() or not all(c in _WORD_OR_SYMBOL for c in value):
        return False
    return any(c in _SYMBOLS for c in value) or any(
        m.group(1) not in _TWO_LETTER_WORDS for m in _RANDOM_CASE.finditer(value)
    )


def _loose_secret(
    sections: _Sections,
    data: bytes,
    at: int,
    value: bytes,
    end: int,
    spaced_eq: bool,
    caps: bool,
    tight: bool,
) -> bool:
    """Whether an unquoted value after a secret's name and ``:`` or a spaced ``=`` is one.

    With a digit it is (``password: hunter2``). So is a passphrase of three words or more
    joined by ``-``, wherever it stands. Otherwise only a value that ends its line, as a
    config file's does, can be one, and then only in a value's shape: words joined by ``-``
    or ``_``, and after ``:`` a word with symbols, a lowercase word (``password: supersecret``
    in YAML) or any word after a name in capitals (``POSTGRES_PASSWORD: Postgres`` in a
    compose file), unless it is a type or a word of prose (``password: required``). After a
    spaced ``=`` (code: ``token = access_token``, ``secret = value``) joined words, and in
    lower case only words joined by ``-``, and a word no code would name a thing
    (:func:`_random_word`), or any word in a setting under an INI section. Code stays:
    a call, a subscript, an attribute (``os.environ["X"]``, ``settings.TOKEN``), a
    variable or a type in camel case (``secret: clientSecret``, ``token: Token``). A colon
    with no space after it is not YAML's: ``"passwd:gid"``, ``secrets:read`` (a scope) name
    things, so there only a word in a password's shape is one."""
    if _stands_for_one(value):
        return False
    if data[end : end + 1] in (b"(", b"[") or _DOTTED.fullmatch(value) or value[:1] == b"*":
        return False  # a call, a subscript, an attribute, a pointer: code
    if _PRODUCT.fullmatch(value):
        return False  # a product or a grammar's repetition (``# token = 1*tchar``, RFC 9110)
    if _has_digit(value):
        return True
    if value[-1:] in b".:?`":
        return False  # a sentence's end: prose
    if _PASSPHRASE.fullmatch(value):
        return not all(w in _PROSE_PARTS for w in value.lower().split(b"-"))
    if _LINE_END.match(data, end) is None:
        return False
    joined = _JOINED.fullmatch(value)
    if joined is not None:
        if spaced_eq and not caps and b"-" not in value:
            return False
        return not any(w in _PROSE_PARTS for w in re.split(rb"[_\-]", value.lower()))
    if value.lower() in _PROSE:
        return False
    if spaced_eq:
        return _random_word(value) or _ini_setting(data, at, sections)
    if tight and not caps:
        return _random_word(value)
    return caps or _CAMEL.fullmatch(value) is None or _random_word(value)


# A quoted value runs to its closing quote (``password = "correct horse battery staple"``
# is one secret, not "correct" and three words left in clear), unless that quote is far or
# past a line end: then only its first word is known to be the value.
_QUOTED_MAX = 256


def _closing_quote(data: bytes, end: int, quote: bytes) -> int | None:
    close = data.find(quote, end, end + _QUOTED_MAX)
    # A quote escaped more than the opening one is inside the value.
    while close > 0 and quote[-1:] == b'"' and data[close - 1] == ord("\\"):
        close = data.find(quote, close + 1, end + _QUOTED_MAX)
    if close < 0 or b"\\n" in data[end:close] or b"\n" in data[end:close]:
        return None
    return close


def _named_secret(
    sections: _Sections, data: bytes, at: int, after: int, tail: re.Match[bytes], end: int
) -> bool:
    """Whether the value ``tail`` found after the name at ``data[at:after]`` is a secret."""
    value = data[tail.start("v") : end]
    if (
        tail.group("q") is None
        and data[end : end + 1] in (b"(", b"[")
        and (_IDENTIFIER.fullmatch(value) or _DOTTED.fullmatch(value))
    ):
        # A call or a subscript: ``credentials = standard_b64encode(…)``, ``password=parts[1]``.
        return False
    if len(value) >= 4 and value.isdigit() and data[at:after].lower() in _PASSWORD_NAMES:
        return True  # a PIN or a weak password: ``password: 123456``
    caps = _caps_name(data, at, after)
    if tail.group("loose") is not None:
        sep = tail.group("loose")
        return _loose_secret(sections, data, at, value, end, b"=" in sep, caps, sep == b":")
    if tail.group("eq") is not None and not caps:
        last = value.rsplit(b".", 1)[-1].lstrip(b"_")
        dotted = _DOTTED.fullmatch(value) is not None
        if (dotted or _IDENTIFIER.fullmatch(value)) and (
            # A variable named as its keyword (``_stoken=_stoken``, ``token=self.token``).
            last == _whole_name(data, at, after).lstrip(b"_")
            # A keyword argument: ``connect(password=db_password)``, and an attribute in an
            # expression (``proxy_pass=url.password or None``).
            or (
                _IDENT_LABEL.fullmatch(last) is not None
                and (dotted or _ARGUMENT_END.match(data, end) is not None)
            )
        ):
            return False
    return not _stands_for_one(value)


# A URL's user part up to a name (``://x-access-`` before ``token``), and after the name the
# password and host the url-password rule masks (its own pattern, from the ``:``).
_URL_USER_BEFORE = re.compile(rb"://[a-z0-9._~%!$&*+;=\-]{0,64}\Z")
_URL_PASSWORD_AFTER = re.compile(rb":[^\s/@:\"'\\\[\]<>]{1,200}@[a-z0-9\[]")


def _url_user(lowered: bytes, at: int, after: int) -> bool:
    """Whether the name at ``at`` is the user of a URL whose password follows it."""
    return (
        _URL_USER_BEFORE.search(lowered, max(0, at - 70), at) is not None
        and _URL_PASSWORD_AFTER.match(lowered, after) is not None
    )


def _named_spans(data: bytes, lowered: bytes) -> list[tuple[int, int, bytes]]:
    spans: list[tuple[int, int, bytes]] = []
    sections = _Sections(data)
    for name in _NAMES:
        at = lowered.find(name)
        while at >= 0:
            after = at + len(name)
            prefixes = _PREFIX_ENDS.get(name)
            # ``key`` as a URL's query parameter (``?key=…``) and ``pass=…`` opening a word
            # name a secret too, but as ordinary words: only a value that looks generated is one.
            generated = False
            if (
                prefixes is not None
                and not any(lowered[at - n : at] in prefixes[0] for n in prefixes[1] if n <= at)
                and not (name == b"key" and lowered.endswith(b"api ", 0, at))  # "API key: …"
            ):
                generated = lowered[after : after + 1] == b"=" and (
                    lowered[at - 1 : at] in (b"?", b"&") or lowered.endswith(b"\\u0026", 0, at)
                    if name == b"key"
                    else _word_start(data, at, _IDENT)
                )
                if not generated:
                    at = lowered.find(name, after)
                    continue
            if lowered.endswith(b"existing", 0, at):
                # ``existingSecret: app-credentials`` (Helm) names a Secret object.
                at = lowered.find(name, after)
                continue
            if _url_user(lowered, at, after):
                # ``https://x-access-token:…@github.com/o/r.git``: the name is the URL's user,
                # and url-password masks only the password, keeping the host and path.
                at = lowered.find(name, after)
                continue
            tail = _TAIL.match(lowered, after)
            # ``password`` also holds ``pass``; a name must end where its word ends, and may
            # not follow a digit (``1password`` is a product, not a name).
            if (
                tail is not None
                and (after >= len(lowered) or lowered[after] not in _NAME_CHAR)
                and not (at > 0 and lowered[at - 1 : at].isdigit())
            ):
                start, end = tail.span("v")
                if tail.group("q") is not None:
                    close = _closing_quote(data, end, tail.group("q"))
                    end = end if close is None else close
                if end - start < 4:
                    at = lowered.find(name, after)
                    continue  # too short to tell (``"pwd": "a b"``)
                if _named_secret(sections, data, at, after, tail, end) and (
                    not generated or _literal_token(data[start:end])
                ):
                    spans.append((start, end, b"[REDACTED]"))
            at = lowered.find(name, after)
    return spans


# One case-insensitive pass that matches wherever any rule above could (a superset). RE2
# scans a line once for all of them in linear time, whatever the line holds; the exact
# rules then run only on the few lines it flags. Whitespace here excludes newlines, so a
# match never runs from one line into the next when a whole block is screened at once.
_WS = rb"[ \t\r\f\v]"
_SEP = _WS + rb"*[:=]" + _WS + rb"*"
_NAME_SEP = _WS + rb"*(?::=|=>|[:=])" + _WS + rb"*"
_LINE_END_RE2 = rb"(?:" + _WS + rb"+#|" + _WS + rb"*(?:$|\\+[nr]|[\r\n]|\\*[\"'`]))"
_VALUE = rb"[^\s\"'\\,;&<>{}\[\]()]"
# Latin-1: RE2 then counts bytes, as the exact rules (Python ``re`` on bytes) do; in its
# default UTF-8 mode ``password=é€`` was two characters, under the prefilter's four, while
# the exact rule saw five bytes and would have masked them: the line was never redacted.
_LATIN1 = re2.Options()
_LATIN1.encoding = re2.Options.Encoding.LATIN1
# The screen's automaton outgrew RE2's default 8 MiB budget when the rules for SQL, options,
# standard input and cookies joined it: RE2 then throws its cached states away over and over,
# and screening ran 1.65x slower (measured on the corpus). A budget, not an allocation: the
# states it keeps take a few MiB.
_LATIN1.max_mem = 32 << 20
# What follows a secret's name where _named_spans may mask its value: ``=value``, a quoted
# value, a value with a digit or of three joined words, joined words that end the line, or
# after ``:`` any value that ends it. (Measured: a group per case of the name made RE2's
# automaton grow, and screening ran 1.5x slower.)
_NAMED_VALUE = (
    rb"(?:={v}{{4}}|{sep}(?:\\*[\"']{v}[^\"'\\\r\n]{{3}}|{v}*[0-9]|[a-z]+-[a-z]+-[a-z]"
    rb"|[a-z]+[_\-][a-z]+{v}*{end})|{sep}{v}{{4,}}{end})"
)
for _part, _with in (
    (b"{v}", _VALUE),
    (b"{sep}", _NAME_SEP),
    (b"{end}", _LINE_END_RE2),
    (b"{ws}", _WS),
):
    _NAMED_VALUE = _NAMED_VALUE.replace(_part, _with)
_NAMED_VALUE = _NAMED_VALUE.replace(b"{{", b"{").replace(b"}}", b"}")

# Secrets named elsewhere on their line: tools' options, .netrc, environment names in code
# and Kubernetes, XML, credential pairs. ``{ws}`` is whitespace within a line.
_ELSEWHERE = (
    rb"|redis-cli[^|;&\n]*{ws}-a{ws}|mongo[^|;&\n]*{ws}(?:-p|--password)[ =]"
    rb"|-pass(?:in|out|word)?{ws}+\\*[\"']?pass:|openssl[^|;&\n]*{ws}-k{ws}"
    rb"|(?:^|[\s\"'(;&|])(?:(?:un)?zip[^|;&\n]*{ws}(?:-p|--password){ws}|7za?{ws}[^|;&\n]*{ws}-p)"
    # Options that take a password or a token (``--db-pass``, ``-storepass``, ``--passphrase``,
    # ``--auth-token``); a literal given to a program that reads a password on its standard
    # input; commands that take one as an argument; SQL's; a session cookie.
    # (Each starts with a literal: a leading ``{ws}-`` or ``[^|;&\n]*`` after a common word
    # made the screen 1.3x slower, measured on the corpus.)
    rb"|--[a-z0-9_\-]*(?:(?:pass(?:word|wd|phrase)?|pwd)(?:=|{ws}+)\\*[\"']?[^\s$<{'\"\\\-.]"
    rb"|-(?:tokens?|secret|key)(?:=|{ws}+)\\*[\"']?[^\s$<{'\"\\\-.][^\s\"'\\]*[0-9])"
    rb"|(?:(?:store|key)pass|_pwd|-password)(?:=|{ws}+)\\*[\"']?[^\s$<{'\"\\\-.]"
    rb"|sudo(?:{ws}+-[a-z]+)*{ws}+-[a-z]*s\b|--pass(?:word|phrase)-stdin|--with-token|chpasswd"
    rb"|passwd{ws}+--stdin|ssh-add[^|;&\n]*<<<"
    rb"|secret{ws}+create{ws}|keyring{ws}+set{ws}|env{ws}+add{ws}|<\({ws}*(?:echo|printf){ws}"
    rb"|secret{ws}+set{ws}|rabbitmqctl{ws}|net{ws}+user{ws}|vault{ws}+login{ws}"
    rb"|password\s+'[^'\s]|identified\s+(?:with\s+[a-z0-9_]+\s+)?by\s"
    rb"|cookie\\*[\"']?{ws}*:|--cookie[= ]"
    rb"|htpasswd{ws}+-[a-z]*b|ssh-keygen[^|;&\n]*{ws}-n{ws}"
    rb"|login{ws}+[^\s]+{ws}+password{ws}"
    rb"|(?:define|getenv|setdefault|setenv|putenv|get|fetch)\({ws}*\\*[\"']"
    rb"[a-z0-9_]*(?:password|passwd|secret|token|key|pass|pwd)\\*[\"']{ws}*,{ws}*\\*[\"'][^\"'\\]"
    rb"|name:{ws}*\\*[\"']?[a-z0-9_]*(?:password|passwd|secret|token|key|pass|pwd)"
    rb"\\*[\"']?(?:[ \t\r\n]|\\+[nrt])+value:"
    rb"|<[a-z_.\-:]*(?:password|passwd|secret|token|apikey|(?:" + b"|".join(_KEY_KINDS) + rb")"
    rb"[_\-]?key|passphrase|pwd|credentials?)>[^<\s]"
    rb"|key=\\*\"[a-z0-9_.:\-]*(?:password|passwd|secret|token|key)[a-z0-9_.:\-]*\\*\"{ws}+value="
    rb"|(?:auth{ws}*={ws}*[(\[]|basicauth\(|digestauth\(){ws}*\\*[\"']"
    # Review H2's programs (see their rules).
    rb"|(?:sqlcmd|bcp){ws}(?:[^|;&\n]*{ws})?-p|ldap[a-z]{2,12}{ws}(?:[^|;&\n]*{ws})?-w{ws}"
    rb"|add-(?:generic|internet)-password{ws}|nuget{ws}+(?:add|update){ws}+source{ws}"
    rb"|--secret-string[= ]|cargo{ws}+login{ws}|sonar\.(?:login|token){ws}*[=:]"
    rb"|http-basic\.|pypi-token\.|configure{ws}+set{ws}|rclone{ws}+config{ws}"
    rb"|(?:^|[\s\"'(;&|])(?:https?|xh)(?:{ws}+-[^\s]*)*?{ws}+(?:-a|--auth)"
    rb"|password{ws}+(?:is|was)[:\s]|smbclient{ws}(?:[^|;&\n]*{ws})?(?:-u|--user)|password{ws}?\({ws}*'"
).replace(b"{ws}", _WS)
_PREFILTER = re2.compile(
    rb"(?i)-----begin [a-z0-9 ]{0,40}private key"
    rb"|sk-[a-z0-9_\-]{20,}|gh[pousr]_[a-z0-9]{30,}|github_pat_[a-z0-9_]{30,}"
    rb"|gl(?:pat|ptt|dt|rt)-[a-z0-9_\-]{20,}"
    rb"|(?:akia|asia|agpa|aida|aroa|anpa|anva|aipa)[0-9a-z]{16}"
    rb"|xox[abposre]-[a-z0-9\-]{10,}|xapp-[0-9]-|hooks\.slack\.com/"
    rb"|(?:sk|rk)_(?:live|test)_[a-z0-9]{16}|whsec_[a-z0-9+/=]{20}"
    rb"|aiza[0-9a-z_\-]{30,}|ya29\.[0-9a-z_\-]{20,}"
    rb"|eyj[a-z0-9_\-]{6,}\.eyj|npm_[a-z0-9]{36}|hf_[a-z0-9]{30}|sg\.[a-z0-9_\-]{16,32}\."
    rb"|do[por]_v1_[a-f0-9]{64}|pypi-ag[a-z0-9_\-]{50}|dckr_pat_[a-z0-9_\-]{20}"
    rb"|shp(?:at|ca|pa|ss)_[a-f0-9]{32}|[0-9]{8}:aa[a-z0-9_\-]{33}"
    rb"|://[a-z0-9._~%!$&*+;=\-]{0,64}:[^\s/@:\"'\\\[\]<>]{1,200}@"
    rb"|\\*[\"']auth\\*[\"']" + _WS + rb"*:" + _WS + rb"*\\*[\"'][a-z0-9+/]{6}"
    rb"|_auth" + _WS + rb"*=" + _WS + rb"*[a-z0-9+/]{6}"
    rb"|basic" + _WS + rb"+[a-z0-9+/]{8}|bearer" + _WS + rb"+[a-z0-9\-._~+/]{16,}"
    rb"|sig=[a-z0-9%+/=]{20}"
    rb"|gocspx-|key-[0-9a-f]{32}|hv[sbr]\.[a-z0-9_\-]{24}|/api/webhooks/[0-9]{17}"
    rb"|(?-i:AC)[0-9a-f]{32}|authorization\\*\"?"
    + _SEP
    + rb"\\*\"?"
    + _WS
    + rb"*token"
    + _WS
    + rb"|(?:mysql|mariadb|sshpass)[a-z\-]*[\s\\'\"]"
    rb"|(?:docker|podman|nerdctl|buildah|skopeo|registry|oras|az)"
    + _WS
    + rb"+login"
    + _ELSEWHERE
    + rb"|(?:^|\s)(?:-[a-z]{0,3}u"
    + _WS
    + rb"*|--user[= ]"
    + _WS
    + rb"*)"
    rb"(?:'|\\*\")?[^\s:'\"\\]+:"
    rb"[^\s'\"\\@]"
    rb"|--(?:token|auth|auth-token|api-key|apikey|access-token|password|passwd|secret"
    rb"|client-secret)[= ]"
    rb"|(?:secret|token|password|passwd|api_?key|access_?key|private_?key|pass|(?:[?&]|\\u0026)key)"
    rb"[a-z0-9_]*=" + _VALUE + rb"{8}" + rb"|(?:password|passwd|passphrase|pwd|secret|token"
    rb"|credentials?|(?:" + b"|".join(_KEY_KINDS) + rb")"
    rb"[_\- ]?key|(?:[_\-]|db)pass)(?:\\*[\"']\]?)?"
    rb"(?:" + _WS + rb"*:" + _WS + rb"*[a-z_][a-z0-9_.\[\]|?]{0,40}"
    rb"(?:" + _WS + rb"*\|" + _WS + rb"*[a-z_][a-z0-9_]{0,20})?)?" + _NAMED_VALUE,
    _LATIN1,
)
_MASK = re.compile(rb"\[REDACTED(?::[a-z\-]+)?\]")


def screen(block: bytes, end: int) -> list[int]:
    """Offsets in ``block[:end]`` where a secret may start; lines without one need no redaction."""
    return [m.start() for m in _PREFILTER.finditer(block, 0, end)]


# Every rule's triggers in one case-insensitive RE2 pass over a flagged line, rather than a
# substring search per rule: the triggers found pick the rules that run. Matches do not
# overlap, so longer triggers come first and a trigger also runs the rules of the triggers
# it contains (``sk-ant-`` holds ``sk-``).
_ALL_TRIGGERS = sorted({t.lower() for r in _RULES for t in r.triggers}, key=lambda t: (-len(t), t))
_TRIGGERS = re2.compile(b"(?i)" + b"|".join(re2.escape(t) for t in _ALL_TRIGGERS))
_ALWAYS = frozenset(i for i, r in enumerate(_RULES) if not r.triggers)
_RULES_OF: dict[bytes, set[int]] = {}
for _i, _each in enumerate(_RULES):
    for _trigger in _each.triggers:
        _RULES_OF.setdefault(_trigger.lower(), set()).add(_i)
# (Built trigger by trigger: a scan of every rule's triggers per trigger was 15 ms of every
# daemon's start.)
_BY_TRIGGER: dict[bytes, frozenset[int]] = {
    found: frozenset(i for t, rules in _RULES_OF.items() if t in found for i in rules)
    for found in _ALL_TRIGGERS
}


def _filler(value: bytes) -> bool:
    """Whether most of a token is the filler people write for one (``ghp_xxxx…``,
    ``AKIAXXXXXXXXXXXXXXXX``, ``sk-…****``)."""
    tail = len(value) - len(value.rstrip(b"xX*.0"))
    return tail * 10 >= len(value) * 6


# Families of generated tokens, where a token that is mostly filler is a placeholder.
_TOKEN_FAMILIES = frozenset(
    {
        "anthropic",
        "openai",
        "github",
        "gitlab",
        "aws",
        "slack",
        "stripe",
        "google",
        "npm",
        "huggingface",
        "sendgrid",
        "digitalocean",
        "pypi",
        "docker",
        "shopify",
        "telegram",
        "mailgun",
        "vault",
        "discord",
        "twilio",
    }
)


def _group_span(m: re.Match[bytes], group: str | tuple[str, ...] | None) -> tuple[int, int]:
    if group is None:
        return m.span()
    if isinstance(group, str):
        return m.span(group)
    for name in group:
        if m.start(name) >= 0:
            return m.span(name)
    return m.span()


def _spans(data: bytes) -> list[tuple[int, int, bytes]]:
    lowered = data.lower()
    found = {m.group().lower() for m in _TRIGGERS.finditer(data)}
    rules = _ALWAYS.union(*(_BY_TRIGGER[t] for t in found))
    spans: list[tuple[int, int, bytes]] = []
    for i, rule in enumerate(_RULES):
        if i not in rules:
            continue
        text = lowered if rule.lower else data
        mask = b"[REDACTED:" + rule.family.encode() + b"]"
        for m in rule.pattern.finditer(text):
            if rule.word is not None and not _word_start(data, m.start(), rule.word):
                continue
            if rule.before is not None and not rule.before.search(
                data, max(0, m.start() - rule.reach), m.start()
            ):
                continue
            start, end = _group_span(m, rule.group)
            if rule.family in _TOKEN_FAMILIES and _filler(data[start:end]):
                continue  # a filler in a token's shape (``ghp_xxxx…``): a placeholder
            if rule.check is None or rule.check(data[start:end]):
                spans.append((start, end, mask))
    spans.extend(_named_spans(data, lowered))
    if spans and b"[REDACTED" in data:
        # Text already masked is never masked again, so redaction is idempotent.
        masked = [m.span() for m in _MASK.finditer(data)]
        spans = [s for s in spans if not any(s[0] < e and b < s[1] for b, e in masked)]
    return spans


def _mask(data: bytes, spans: list[tuple[int, int, bytes]]) -> tuple[bytes, int]:
    # Longest first among spans that start together; a span inside one already masked
    # (``sk-ant-…`` is also ``sk-…``, a JWT after ``Bearer``) is dropped.
    spans.sort(key=lambda s: (s[0], -s[1]))
    out: list[bytes] = []
    pos = 0
    count = 0
    for start, end, mask in spans:
        if start < pos:
            if end > pos:  # overlapping: extend the mask already written
                pos = end
            continue
        out.append(data[pos:start])
        out.append(mask)
        pos = end
        count += 1
    out.append(data[pos:])
    return b"".join(out), count


def _redact_bytes(data: bytes, screened: bool = False) -> tuple[bytes, int]:
    if not screened and _PREFILTER.search(data) is None:
        return data, 0
    total = 0
    # A mask can end a word another token was glued to (``…aae[REDACTED:bearer]``), so
    # masking runs until nothing more is found: the result is a fixed point, and redacting
    # it again changes nothing. Each round only adds masks, so this ends in a few rounds.
    for _ in range(8):
        spans = _spans(data)
        if not spans:
            break
        data, count = _mask(data, spans)
        total += count
    return data, total


_json_decoder = msgspec.json.Decoder()
_json_encoder = msgspec.json.Encoder()
_text_decoder = msgspec.json.Decoder(str)


def _redact_tree(value: object) -> tuple[object, int]:
    if isinstance(value, str):
        out, n = _redact_bytes(value.encode())
        return (out.decode(errors="replace") if n else value), n
    if isinstance(value, list):
        total = 0
        items = []
        for item in value:
            v, n = _redact_tree(item)
            items.append(v)
            total += n
        return items, total
    if isinstance(value, dict):
        total = 0
        mapping: dict[str, object] = {}
        for key, item in value.items():
            v, n = _redact_tree(item)
            mapping[key] = v
            total += n
        return mapping, total
    return value, 0


def redact(line: bytes, *, was_json: bool, screened: bool = False) -> tuple[bytes, int]:
    """Mask secrets in ``line``; returns the masked line and the number of secrets masked.

    ``was_json`` says whether ``line`` decodes as one JSON value; if so the result does too.
    ``screened`` says :func:`screen` already flagged the line (so it is not screened again).
    """
    out, count = _redact_bytes(line, screened)
    if not count or not was_json:
        return out, count
    try:
        _json_decoder.decode(out)
    except (msgspec.DecodeError, UnicodeDecodeError):
        try:
            tree, count = _redact_tree(_json_decoder.decode(line))
            out = _json_encoder.encode(tree)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            # ``was_json`` was wrong: keep the byte-level masks, never the secret.
            pass
    return out, count


_SURROGATE = re.compile("([\ud800-\udfff]+)")


def redact_text(text: str) -> str:
    """``text`` with the masks capture applies when it is a JSON string value in a line."""
    # Through the line redactor on purpose: a body on disk and the same body captured inside
    # a transcript line must come out alike, escapes and all. Lone surrogates (from file
    # names decoded with surrogateescape) cannot be encoded; no secret holds one, so the
    # text between them is redacted piece by piece.
    if _SURROGATE.search(text) is None:
        out, count = redact(_json_encoder.encode(text), was_json=True)
        return _text_decoder.decode(out) if count else text
    return "".join(
        piece if _SURROGATE.fullmatch(piece) else redact_text(piece)
        for piece in _SURROGATE.split(text)
    )


_MASK_TEXT = re.compile(r"\[REDACTED(?::[a-z\-]+)?\]")


def masked_lines(text: str) -> list[tuple[int, str]]:
    """(line number, kind) of each line of ``text`` that capture's masking would change.

    Skill files are stored masked, so whatever a user's skill holds there must be said before
    the stored text is ever written back over a file."""
    masked = redact_text(text)
    if masked == text:
        return []
    found = []
    for number, (before, after) in enumerate(
        zip(text.splitlines(), masked.splitlines(), strict=False), 1
    ):
        if before != after:
            kinds = _MASK_TEXT.findall(after)
            kind = kinds[0][len("[REDACTED:") : -1] if kinds and ":" in kinds[0] else "secret"
            found.append((number, kind))
    return found or [(1, "secret")]


def holds_mask(text: str) -> bool:
    """Whether ``text`` holds a mask capture wrote (``[REDACTED]``, ``[REDACTED:kind]``)."""
    return _MASK_TEXT.search(text) is not None
