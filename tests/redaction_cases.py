"""The labelled redaction set: secrets of every family in the places transcripts hold them.

Secrets are synthetic (a seeded generator in each family's real shape: prefix, length,
charset); the places are the four a transcript line carries text in: what a user types, a
tool's output, a command line, and a JSON file shown by a tool (so escaped twice in the
line). Non-secrets are real transcript text, in ``data/redaction_nonsecrets.json``.
"""

from __future__ import annotations

import base64
import json
import random
import string
from collections.abc import Callable
from pathlib import Path

import msgspec

NONSECRETS = Path(__file__).resolve().parent / "data" / "redaction_nonsecrets.json"
ALNUM = string.ascii_letters + string.digits
URLSAFE = ALNUM + "-_"
WHERE = ("user", "tool-output", "command", "json-file")


class Case(msgspec.Struct, frozen=True):
    """A secret (the part that must not be stored) in the text that carries it."""

    family: str
    where: str
    secret: str
    text: str


def _s(rng: random.Random, n: int, chars: str = ALNUM) -> str:
    while True:
        out = "".join(rng.choice(chars) for _ in range(n))
        # Real tokens of this length always mix cases and digits; so do these.
        if chars != ALNUM or (
            any(c.isupper() for c in out)
            and any(c.islower() for c in out)
            and any(c.isdigit() for c in out)
        ):
            return out


def _jwt(rng: random.Random) -> str:
    def part(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    header = part({"alg": rng.choice(["HS256", "RS256", "ES256"]), "typ": "JWT"})
    payload = part({"sub": str(rng.randrange(10**6)), "iat": 1700000000 + rng.randrange(10**6)})
    return f"{header}.{payload}.{_s(rng, 43, URLSAFE)}"


def _pem(rng: random.Random) -> tuple[str, str]:
    kind = rng.choice(["RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY"])
    body = [_s(rng, 64, ALNUM + "+/") for _ in range(rng.randrange(3, 8))]
    return f"-----BEGIN {kind}-----\n" + "\n".join(body) + f"\n-----END {kind}-----\n", body[1]


# Each family: its token generator and the environment variable such a token is kept in.
TOKENS: dict[str, tuple[Callable[[random.Random], str], str]] = {
    "anthropic": (lambda r: "sk-ant-api03-" + _s(r, 93, URLSAFE) + "AA", "ANTHROPIC_API_KEY"),
    "openai": (
        lambda r: (
            r.choice(["sk-proj-", "sk-svcacct-", "sk-"])
            + _s(r, r.choice([48, 120, 156]), ALNUM)
            + r.choice(["", "T3BlbkFJ" + _s(r, 20)])
        ),
        "OPENAI_API_KEY",
    ),
    "github": (
        lambda r: (
            r.choice(["ghp_", "gho_", "ghs_", "ghu_"]) + _s(r, 36)
            if r.random() < 0.7
            else "github_pat_11" + _s(r, 20) + "_" + _s(r, 59)
        ),
        "GITHUB_TOKEN",
    ),
    "gitlab": (lambda r: "glpat-" + _s(r, 20, URLSAFE.replace("_", "")), "GITLAB_TOKEN"),
    "aws": (
        lambda r: r.choice(["AKIA", "ASIA"]) + _s(r, 16, string.ascii_uppercase + "234567"),
        "AWS_ACCESS_KEY_ID",
    ),
    "slack": (
        lambda r: r.choice(
            [
                f"xoxb-{r.randrange(10**11, 10**12)}-{r.randrange(10**12, 10**13)}-{_s(r, 24)}",
                f"xoxp-{r.randrange(10**11, 10**12)}-{r.randrange(10**11, 10**12)}-{_s(r, 32)}",
                f"xapp-1-A{_s(r, 10, string.ascii_uppercase + string.digits)}-"
                f"{r.randrange(10**12, 10**13)}-{_s(r, 64, 'abcdef0123456789')}",
                f"https://hooks.slack.com/services/T{_s(r, 8, 'ABCDEFGHJK0123456789')}/"
                f"B{_s(r, 10, 'ABCDEFGHJK0123456789')}/{_s(r, 24)}",
            ]
        ),
        "SLACK_TOKEN",
    ),
    "stripe": (
        lambda r: (
            r.choice(["sk_live_", "rk_live_", "sk_test_", "whsec_"]) + _s(r, r.choice([24, 99]))
        ),
        "STRIPE_SECRET",
    ),
    "google": (
        lambda r: (
            "AIza" + _s(r, 35, URLSAFE) if r.random() < 0.6 else "ya29.a0" + _s(r, 150, URLSAFE)
        ),
        "GOOGLE_API_KEY",
    ),
    "jwt": (_jwt, "SESSION_JWT"),
    "npm": (lambda r: "npm_" + _s(r, 36), "NPM_TOKEN"),
    "huggingface": (lambda r: "hf_" + _s(r, 34), "HF_TOKEN"),
    "sendgrid": (lambda r: f"SG.{_s(r, 22, URLSAFE)}.{_s(r, 43, URLSAFE)}", "SENDGRID_API_KEY"),
    "digitalocean": (
        lambda r: r.choice(["dop_v1_", "doo_v1_"]) + _s(r, 64, "0123456789abcdef"),
        "DIGITALOCEAN_TOKEN",
    ),
    "pypi": (lambda r: "pypi-AgEIcHlwaS5vcmc" + _s(r, 140, URLSAFE), "TWINE_PASSWORD"),
    "docker": (lambda r: "dckr_pat_" + _s(r, 27, URLSAFE), "DOCKER_PAT"),
    "shopify": (
        lambda r: r.choice(["shpat_", "shpss_", "shpca_"]) + _s(r, 32, "0123456789abcdef"),
        "SHOPIFY_ACCESS_TOKEN",
    ),
    "telegram": (
        lambda r: f"{r.randrange(10**8, 10**10)}:AA{_s(r, 33, URLSAFE)}",
        "TELEGRAM_BOT_TOKEN",
    ),
}


def _token_cases(family: str, rng: random.Random) -> list[Case]:
    make, env = TOKENS[family]
    out = []
    for _ in range(2):
        t = [make(rng) for _ in WHERE]
        # Where the token stands alone (no name nearby), so its structure must be enough.
        out += [
            Case(family, "user", t[0], f"I pasted the wrong value, it was\n{t[0]}\nthanks"),
            Case(
                family,
                "tool-output",
                t[1],
                f"$ cat .env.production\nNODE_ENV=production\n{env}={t[1]}\nPORT=8080\n",
            ),
            Case(family, "command", t[2], f"./scripts/deploy.sh --region eu-west-1 {t[2]} -v"),
            Case(
                family,
                "json-file",
                t[3],
                json.dumps({"service": "billing", "credential": t[3], "retries": 3}, indent=2),
            ),
        ]
    return out


def _pem_cases(rng: random.Random) -> list[Case]:
    out = []
    for n in range(2):
        blocks = [_pem(rng) for _ in WHERE]
        cut, cut_secret = blocks[2]
        account = {
            "type": "service_account",
            "project_id": "demo-project-1234",
            "private_key_id": _s(rng, 40, "0123456789abcdef"),
            "private_key": blocks[3][0],
            "client_email": "ci@demo-project-1234.iam.gserviceaccount.com",
        }
        out += [
            Case("private-key", "user", blocks[0][1], f"my key:\n{blocks[0][0]}"),
            Case("private-key", "tool-output", blocks[1][1], f"$ cat id_rsa\n{blocks[1][0]}"),
            # A block cut short (``head``, a truncated tool output) has no END line.
            Case(
                "private-key",
                "command",
                cut_secret,
                f"echo '{cut[: cut.index(cut_secret) + 70 + 60 * n]}' > /tmp/k",
            ),
            Case("private-key", "json-file", blocks[3][1], json.dumps(account, indent=2)),
        ]
    return out


def _context_cases(rng: random.Random) -> list[Case]:
    """Secrets only their surroundings identify: passwords in URLs and assignments, Basic
    credentials, Azure keys and signatures, AWS secret keys."""
    out: list[Case] = []
    for _ in range(2):
        pw = _s(rng, 20, ALNUM + "!#%^*-_")
        host = rng.choice(["db.internal", "10.0.3.7:5432", "prod-cluster.abc12.mongodb.net"])
        user = rng.choice(["app", "admin", "svc_billing"])
        urls = [
            f"postgres://{user}:{pw}@{host}/app",
            f"mysql://{user}:{pw}@{host}:3306/shop",
            f"mongodb+srv://{user}:{pw}@{host}/?retryWrites=true",
            f"redis://default:{pw}@{host}:6379/0",
        ]
        out += [
            Case("url-password", "user", pw, f"the connection string is {urls[0]} fyi"),
            Case("url-password", "tool-output", pw, f"DATABASE_URL={urls[1]}\nDEBUG=false"),
            Case("url-password", "command", pw, f"psql '{urls[2]}' -c 'select 1'"),
            Case("url-password", "json-file", pw, json.dumps({"cache": {"url": urls[3]}})),
        ]
        cred = base64.b64encode(f"{user}:{_s(rng, 16)}".encode()).decode()
        out += [
            Case("basic-auth", "user", cred, f"I send Authorization: Basic {cred} and get 401"),
            Case(
                "basic-auth",
                "tool-output",
                cred,
                f"> GET / HTTP/1.1\n> Authorization: Basic {cred}\n",
            ),
            Case(
                "basic-auth", "command", cred, f"curl -H 'Authorization: Basic {cred}' https://x.io"
            ),
            Case(
                "basic-auth",
                "json-file",
                cred,
                json.dumps({"headers": {"Authorization": f"Basic {cred}"}}),
            ),
        ]
        key = base64.b64encode(rng.randbytes(64)).decode()
        sig = _s(rng, 43, ALNUM + "+/") + "%3D"
        conn = (
            "DefaultEndpointsProtocol=https;AccountName=acct1;"
            f"AccountKey={key};EndpointSuffix=core.windows.net"
        )
        sas = f"https://acct1.blob.core.windows.net/c/b.txt?sv=2022-11-02&se=2025-01-01&sp=r&sig={sig}"
        out += [
            Case("azure", "user", key, f"use this: {conn}"),
            Case("azure", "tool-output", sig, f"Uploaded. URL: {sas}\n"),
            Case("azure", "command", sig, f"curl -o b.txt '{sas}'"),
            Case(
                "azure",
                "json-file",
                key,
                json.dumps({"ConnectionStrings": {"Storage": conn}}, indent=2),
            ),
        ]
        secret = _s(rng, 40, ALNUM + "+/")
        out += [
            Case("aws", "user", secret, f"aws_secret_access_key = {secret}"),
            Case(
                "aws",
                "tool-output",
                secret,
                f"[default]\naws_access_key_id = AKIA{_s(rng, 16, string.ascii_uppercase)}\n"
                f"aws_secret_access_key = {secret}\n",
            ),
            Case("aws", "command", secret, f"AWS_SECRET_ACCESS_KEY={secret} aws s3 ls"),
            Case(
                "aws",
                "json-file",
                secret,
                json.dumps(
                    {
                        "Credentials": {
                            "AccessKeyId": "ASIA" + _s(rng, 16, string.ascii_uppercase),
                            "SecretAccessKey": secret,
                            "SessionToken": _s(rng, 300, ALNUM + "+/"),
                        }
                    },
                    indent=4,
                ),
            ),
        ]
        pw2 = _s(rng, 14, ALNUM + "!@#-_")
        out += [
            Case("password", "user", pw2, f"DB_PASS={pw2}"),
            Case(
                "password",
                "tool-output",
                pw2,
                f"spring.datasource.password: {pw2}\nserver.port: 8080",
            ),
            Case("password", "command", pw2, f"mysql -u root --password={pw2} -e 'show tables'"),
            Case(
                "password", "json-file", pw2, json.dumps({"db": {"user": "app", "password": pw2}})
            ),
        ]
    return out


def secret_cases() -> list[Case]:
    """Every labelled secret, in a fixed order (the generator is seeded)."""
    rng = random.Random(8)
    cases = [c for family in TOKENS for c in _token_cases(family, rng)]
    return cases + _pem_cases(rng) + _context_cases(rng)


def nonsecrets() -> dict[str, list[str]]:
    """Real transcript strings that hold no secret, by kind."""
    return msgspec.json.decode(NONSECRETS.read_bytes(), type=dict[str, list[str]])


def transcript_line(case_where: str, text: str) -> bytes:
    """``text`` in a Claude Code transcript line, in the place ``case_where`` names."""
    if case_where == "user":
        message: dict[str, object] = {"role": "user", "content": text}
    elif case_where == "command":
        message = {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "toolu_01", "name": "Bash", "input": {"command": text}}
            ],
        }
    else:
        message = {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_01", "content": text}],
        }
    record = {"type": "user" if case_where != "command" else "assistant", "message": message}
    return msgspec.json.encode(record)
