#!/usr/bin/env python3
"""Generate redaction labelled set 2: secrets.json and nonsecrets.json.

Written independently of skillops' redaction rules (never read).  Seeded random, so
re-running gives byte-identical output (given the same /work/corpus/home snapshot,
from which some non-secret lines are copied verbatim).

Every secret value is synthetic: random characters in the vendor's documented shape
(prefix, length, charset).  None is a real credential.
"""
import base64
import glob
import hashlib
import json
import os
import random
import string
import sys

SEED = 20261207
R = random.Random(SEED)
HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = "/work/corpus/home"

ALNUM = string.ascii_letters + string.digits
UPPERNUM = string.ascii_uppercase + string.digits
LOWER = string.ascii_lowercase
HEX = "0123456789abcdef"
B64 = ALNUM + "+/"
B64URL = ALNUM + "-_"


def rs(n, chars=ALNUM):
    return "".join(R.choice(chars) for _ in range(n))


def hexs(n):
    return rs(n, HEX)


def uuid4():
    h = hexs(32)
    h = h[:12] + "4" + h[13:16] + R.choice("89ab") + h[17:]
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def uuid7():
    h = "019e" + hexs(28)
    h = h[:12] + "7" + h[13:16] + R.choice("89ab") + h[17:]
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def password(n=16, extra="!#%^*-_.="):
    # realistic human/generated password: letters, digits, some punctuation that is
    # safe inside shell single quotes and needs no JSON escaping
    while True:
        p = rs(n, ALNUM + extra)
        if any(c.isdigit() for c in p) and any(c.isalpha() for c in p):
            return p


_clock = [1781000000]


def ts():
    _clock[0] += R.randint(3, 400)
    ms = R.randint(0, 999)
    import datetime
    d = datetime.datetime.fromtimestamp(_clock[0], datetime.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S") + f".{ms:03d}Z"


def dumps(o):
    return json.dumps(o, ensure_ascii=False, separators=(",", ":"))


# ---------------------------------------------------------------- token shapes
# Sources for each shape are recorded in SRC below and copied into each case.
def tg_token():  # Telegram Bot API: <bot id>:<35 chars [A-Za-z0-9_-]>, real ones start "AA"
    return str(R.randint(5000000000, 8299999999)) + ":AA" + rs(33, B64URL)


def gocspx():  # Google OAuth client secret: GOCSPX- + 28 chars
    return "GOCSPX-" + rs(28, B64URL)


def mailgun():
    return "key-" + hexs(32)


def aws_pair():
    return "AKIA" + rs(16, UPPERNUM), rs(40, B64)


def ghp():
    return "ghp_" + rs(36)


def gho():
    return "gho_" + rs(36)


def github_pat():
    return "github_pat_11" + rs(20, UPPERNUM) + "_" + rs(59)


def glpat():
    return "glpat-" + rs(20, B64URL)


def xoxb():
    return f"xoxb-{R.randint(10**11, 10**12-1)}-{R.randint(10**12, 10**13-1)}-{rs(24)}"


def xoxp():
    return f"xoxp-{R.randint(10**11, 10**12-1)}-{R.randint(10**11, 10**12-1)}-{R.randint(10**12, 10**13-1)}-{hexs(32)}"


def sk_live():
    return "sk_live_51" + rs(97)


def rk_live():
    return "rk_live_51" + rs(97)


def openai_proj():
    return "sk-proj-" + rs(74, B64URL) + "T3BlbkFJ" + rs(74, B64URL)


def anthropic():
    return "sk-ant-api03-" + rs(93, B64URL) + "AA"


def hf():
    return "hf_" + rs(34, string.ascii_letters)


def npm_tok():
    return "npm_" + rs(36)


def pypi():
    # macaroon: "pypi-AgEIcHlwaS5vcmc" (= b"\x02\x01\x08pypi.org") + base64url body
    return "pypi-AgEIcHlwaS5vcmc" + rs(R.randint(150, 170), B64URL)


def sendgrid():
    return "SG." + rs(22, B64URL) + "." + rs(43, B64URL)


def twilio_pair():
    return "AC" + hexs(32), hexs(32)


def shpat():
    return "shpat_" + hexs(32)


def dop():
    return "dop_v1_" + hexs(64)


def azure_key():
    return base64.b64encode(bytes(R.getrandbits(8) for _ in range(64))).decode()


def b64url_nopad(b):
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


def jwt():
    hdr = b64url_nopad(dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64url_nopad(dumps({"sub": str(R.randint(1000, 99999)), "name": "svc-" + rs(6, LOWER),
                               "iat": 1781000000 + R.randint(0, 10**6),
                               "exp": 1782000000 + R.randint(0, 10**6), "scope": "read write"}).encode())
    sig = b64url_nopad(bytes(R.getrandbits(8) for _ in range(32)))
    return f"{hdr}.{body}.{sig}"


def pem_body(kind="RSA", nbytes=900):
    raw = base64.b64encode(bytes(R.getrandbits(8) for _ in range(nbytes))).decode()
    if kind == "RSA":
        raw = "MIIEow" + raw[6:]
    elif kind == "OPENSSH":
        raw = "b3BlbnNzaC1rZXktdjEAAAAA" + raw[24:]
    elif kind == "EC":
        raw = "MHcCAQEEI" + raw[9:]
    else:
        raw = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC" + raw[32:]
    width = 70 if kind == "OPENSSH" else 64
    return [raw[i:i + width] for i in range(0, len(raw), width)]


def pem(kind="RSA", nbytes=900):
    lines = pem_body(kind, nbytes)
    label = {"RSA": "RSA PRIVATE KEY", "OPENSSH": "OPENSSH PRIVATE KEY", "EC": "EC PRIVATE KEY",
             "PKCS8": "PRIVATE KEY"}[kind]
    text = f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n"
    return text, lines


def slack_webhook():
    return f"https://hooks.slack.com/services/T{rs(8, UPPERNUM)}/B{rs(10, UPPERNUM)}/{rs(24)}"


def discord_webhook():
    return f"https://discord.com/api/webhooks/{R.randint(10**17, 10**18-1)}/{rs(68, B64URL)}"


def google_api_key():
    return "AIza" + rs(35, B64URL)


def vault_token():
    return "hvs.CAESI" + rs(86, B64URL)


def datadog_key():
    return hexs(32)


def drf_token():
    return hexs(40)


SRC = {
    "telegram": "core.telegram.org/bots/api: token '123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11', requests go to https://api.telegram.org/bot<token>/METHOD_NAME; BotFather tokens are <bot id>:AA + 33 [A-Za-z0-9_-] (e.g. 110201543:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw quoted in docs)",
    "json-in-arg": "named credential keys inside a JSON body passed as a shell/tool string argument; common `curl -d '{...}'` login/token calls (OAuth2 RFC 6749 client_secret, access_token/refresh_token response fields)",
    "db-password": "DB_PASSWORD / db_password settings as in Django/Laravel/Rails .env and settings files (12-factor config)",
    "google-oauth": "Google OAuth client secrets carry the GOCSPX- prefix + 28 chars (Google Cloud 'client secret' format since 2021; gitleaks gcp rules)",
    "mysql-cli": "MySQL manual, 'End-User Guidelines for Password Security': mysql -pPASSWORD / --password=PASSWORD on the command line",
    "pgpassword": "PostgreSQL docs libpq environment variables: PGPASSWORD=... psql",
    "sshpass": "sshpass(1): sshpass -p password ssh user@host",
    "mailgun": "Mailgun API: HTTP basic auth user 'api', private key 'key-' + 32 hex (gitleaks mailgun-private-api-token: key-[a-f0-9]{32})",
    "auth-token-header": "Django REST framework TokenAuthentication: 'Authorization: Token 9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b' (40 hex)",
    "auth-bearer-header": "RFC 6750 'Authorization: Bearer <token>'",
    "url-password": "RFC 3986 userinfo user:password@host in redis/postgres/amqp/mongodb/mysql/https connection URLs (password of any entropy)",
    "aws": "AWS IAM docs: access key id AKIA + 16 [A-Z0-9], secret access key 40 chars [A-Za-z0-9/+] (example AKIAIOSFODNN7EXAMPLE / wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY)",
    "github": "GitHub token formats (github.blog 2021 'Behind GitHub's new authentication token formats'; secret-scanning patterns ghp_[A-Za-z0-9]{36}, gho_[A-Za-z0-9]{36}, github_pat_[A-Za-z0-9_]{82})",
    "gitlab": "GitLab personal access token prefix glpat- + 20 chars (GitLab docs 'Token prefixes'; gitleaks gitlab-pat glpat-[\\w-]{20})",
    "slack": "Slack token types: xoxb- bot tokens, xoxp- user tokens (api.slack.com/authentication/token-types; gitleaks slack-bot-token/slack-user-token)",
    "stripe": "Stripe API keys: secret sk_live_..., restricted rk_live_... (stripe.com/docs/keys)",
    "openai": "OpenAI project keys sk-proj-<74>T3BlbkFJ<74> (gitleaks openai-api-key rule)",
    "anthropic": "Anthropic API keys sk-ant-api03- + 93 [A-Za-z0-9_-] + AA (gitleaks/secretlint anthropic rules)",
    "huggingface": "Hugging Face user access tokens hf_ + 34 letters (gitleaks huggingface-access-token)",
    "npm": "npm granular/automation tokens npm_ + 36 alnum (github.blog npm token format; gitleaks npm-access-token)",
    "pypi": "PyPI API tokens: 'pypi-' + macaroon starting AgEIcHlwaS5vcmc (pypi.org/help/#apitoken; gitleaks pypi-upload-token)",
    "sendgrid": "SendGrid API keys SG.<22>.<43> (docs.sendgrid.com API keys; gitleaks sendgrid-api-token)",
    "twilio": "Twilio Account SID AC + 32 hex and 32-hex Auth Token (twilio.com/docs/iam/api/account)",
    "shopify": "Shopify Admin API access token shpat_ + 32 hex (shopify.dev; gitleaks shopify-access-token)",
    "digitalocean": "DigitalOcean personal access token dop_v1_ + 64 hex (docs.digitalocean.com; gitleaks digitalocean-pat)",
    "azure-storage": "Azure Storage connection string DefaultEndpointsProtocol=https;AccountName=..;AccountKey=<88 base64>;EndpointSuffix=core.windows.net (learn.microsoft.com storage connection strings)",
    "jwt": "RFC 7519 JWT: base64url(header).base64url(payload).base64url(signature), header eyJhbGciOi...",
    "private-key": "RFC 7468 PEM: -----BEGIN RSA/EC/OPENSSH PRIVATE KEY----- base64 body 64/70-char lines",
    "basic-auth": "RFC 7617 'Authorization: Basic base64(user:password)' and curl -u user:password",
    "cli-token-flag": "CLI flags carrying credentials: --token=..., --api-key ..., --password ... (e.g. vercel --token, gh, heroku, wandb, npm)",
    "export-secret": "shell `export SECRET_KEY=...` / Django SECRET_KEY / Rails SECRET_KEY_BASE in transcripts",
    "docker-login": "docker login -u USER -p PASSWORD (docs.docker.com/reference/cli/docker/login warns about -p in shell history)",
    "slack-webhook": "Slack incoming webhook URL https://hooks.slack.com/services/T.../B.../<24> (api.slack.com/messaging/webhooks)",
    "discord-webhook": "Discord webhook URL https://discord.com/api/webhooks/<id>/<68-char token>",
    "google-api-key": "Google API key AIza + 35 [A-Za-z0-9_-] (cloud.google.com/docs/authentication/api-keys)",
    "vault": "HashiCorp Vault service token hvs. prefix (developer.hashicorp.com/vault/docs/concepts/tokens#token-prefixes)",
    "datadog": "Datadog API key, 32 hex, set as DD_API_KEY (docs.datadoghq.com/account_management/api-app-keys)",
    "npmrc": "npm .npmrc //registry.npmjs.org/:_authToken=npm_... (docs.npmjs.com/cli/configuring-npm/npmrc)",
}

# ---------------------------------------------------------------- line builders
CWDS = ["/Users/dana/src/shopfront", "/home/dev/work/billing-api", "/Users/kai/code/notifier",
        "/home/ubuntu/projects/data-pipeline", "/Users/mira/dev/infra"]


class CCSession:
    def __init__(self):
        self.sid = uuid4()
        self.cwd = R.choice(CWDS)
        self.version = R.choice(["2.1.110", "2.1.143", "2.1.183", "2.1.199", "2.0.76", "1.0.98"])
        self.branch = R.choice(["main", "feat/notify", "fix/db-conn", "chore/deps"])
        self.last = uuid4()

    def env(self, typ, extra):
        o = {"parentUuid": self.last, "isSidechain": False}
        o.update(extra)
        u = uuid4()
        o.update({"type": typ} if "type" not in extra else {})
        o["uuid"] = u
        o["timestamp"] = ts()
        o["userType"] = "external"
        o["entrypoint"] = "cli"
        o["cwd"] = self.cwd
        o["sessionId"] = self.sid
        o["version"] = self.version
        o["gitBranch"] = self.branch
        self.last = u
        return o


def cc_user_text(text):
    s = CCSession()
    o = s.env("user", {"promptId": uuid4(), "type": "user", "message": {"role": "user", "content": text}})
    o["permissionMode"] = "default"
    o["promptSource"] = "typed"
    return dumps(o)


def _tu_id():
    return "toolu_01" + rs(22)


def cc_tool_use(name, inp, s=None):
    s = s or CCSession()
    msg = {"model": R.choice(["claude-opus-4-7", "claude-sonnet-4-6", "claude-opus-4-8"]),
           "id": "msg_01" + rs(22), "type": "message", "role": "assistant",
           "content": [{"type": "tool_use", "id": _tu_id(), "name": name, "input": inp,
                        "caller": {"type": "direct"}}],
           "stop_reason": "tool_use", "stop_sequence": None,
           "usage": {"input_tokens": R.randint(1, 9), "cache_creation_input_tokens": R.randint(100, 5000),
                     "cache_read_input_tokens": R.randint(10000, 150000), "output_tokens": R.randint(40, 900),
                     "service_tier": "standard"}}
    o = s.env("assistant", {"message": msg, "requestId": "req_011C" + rs(20), "type": "assistant"})
    return dumps(o)


def cc_bash(command, desc="Run command"):
    return cc_tool_use("Bash", {"command": command, "description": desc})


def cc_write(path, content):
    return cc_tool_use("Write", {"file_path": path, "content": content})


def cc_edit(path, old, new):
    return cc_tool_use("Edit", {"replace_all": False, "file_path": path, "old_string": old, "new_string": new})


def cc_bash_result(stdout, is_error=False, stderr=""):
    s = CCSession()
    tid = _tu_id()
    content = stdout if not is_error else "Exit code 1\n" + stdout
    o = s.env("user", {"promptId": uuid4(), "type": "user",
                       "message": {"role": "user", "content": [
                           {"tool_use_id": tid, "type": "tool_result", "content": content, "is_error": is_error}]}})
    o["toolUseResult"] = ("Error: " + content) if is_error else {
        "stdout": stdout, "stderr": stderr, "interrupted": False, "isImage": False, "noOutputExpected": False}
    o["sourceToolAssistantUUID"] = uuid4()
    return dumps(o)


def cc_read_result(path, text):
    s = CCSession()
    tid = _tu_id()
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines = lines[:-1]
    numbered = "\n".join(f"{i+1}\t{l}" for i, l in enumerate(lines))
    o = s.env("user", {"promptId": uuid4(), "type": "user",
                       "message": {"role": "user", "content": [
                           {"tool_use_id": tid, "type": "tool_result", "content": numbered}]}})
    o["toolUseResult"] = {"type": "text", "file": {"filePath": path, "content": text, "numLines": len(lines),
                                                   "startLine": 1, "totalLines": len(lines)}}
    o["sourceToolAssistantUUID"] = uuid4()
    return dumps(o)


def cc_assistant_text(text):
    s = CCSession()
    msg = {"model": "claude-opus-4-7", "id": "msg_01" + rs(22), "type": "message", "role": "assistant",
           "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": None,
           "usage": {"input_tokens": 3, "cache_creation_input_tokens": 812, "cache_read_input_tokens": 40211,
                     "output_tokens": 377, "service_tier": "standard"}}
    return dumps(s.env("assistant", {"message": msg, "requestId": "req_011C" + rs(20), "type": "assistant"}))


def _call_id():
    return "call_" + rs(24)


def cx(typ, payload):
    return dumps({"timestamp": ts(), "type": typ, "payload": payload})


def cx_exec(cmd, spaced=None):
    wd = R.choice(CWDS)
    args = {"cmd": cmd, "workdir": wd, "yield_time_ms": R.choice([1000, 10000, 30000]),
            "max_output_tokens": R.choice([1200, 4000, 12000])}
    if spaced is None:
        spaced = R.random() < 0.4
    a = json.dumps(args, ensure_ascii=False) if spaced else dumps(args)
    return cx("response_item", {"type": "function_call", "name": "exec_command", "arguments": a,
                                "call_id": _call_id()})


def cx_shell(cmd):
    args = {"command": ["bash", "-lc", cmd], "workdir": R.choice(CWDS), "timeout_ms": 120000}
    return cx("response_item", {"type": "function_call", "name": "shell", "arguments": dumps(args),
                                "call_id": _call_id()})


def cx_shell_command(cmd):
    args = {"command": cmd, "workdir": R.choice(CWDS)}
    return cx("response_item", {"type": "function_call", "name": "shell_command", "arguments": dumps(args),
                                "call_id": _call_id()})


def cx_output(text, code=0, cmd=None):
    head = ""
    if cmd:
        head = f"Command: /bin/zsh -lc {cmd}\n"
    out = (head + f"Chunk ID: {hexs(6)}\nWall time: {R.random():.4f} seconds\nProcess exited with code {code}\n"
           f"Original token count: {R.randint(10, 900)}\nOutput:\n" + text)
    return cx("response_item", {"type": "function_call_output", "call_id": _call_id(), "output": out})


def cx_patch(patch):
    return cx("response_item", {"type": "custom_tool_call", "status": "completed", "call_id": _call_id(),
                                "name": "apply_patch", "input": patch})


def cx_user(msg):
    return cx("event_msg", {"type": "user_message", "message": msg, "images": [], "local_images": [],
                            "text_elements": []})


def cx_agent(msg):
    return cx("event_msg", {"type": "agent_message", "message": msg, "phase": "commentary"})


def add_file(path, body):
    lines = body.split("\n")
    if lines[-1] == "":
        lines = lines[:-1]
    return f"*** Begin Patch\n*** Add File: {path}\n" + "".join("+" + l + "\n" for l in lines) + "*** End Patch\n"


def upd_file(path, ctx, minus, plus):
    return (f"*** Begin Patch\n*** Update File: {path}\n@@\n" + "".join(" " + c + "\n" for c in ctx)
            + "".join("-" + m + "\n" for m in minus) + "".join("+" + p + "\n" for p in plus) + "*** End Patch\n")


# ---------------------------------------------------------------- secret cases
SECRETS = []


def forms_in(line, raw):
    """The form(s) of raw as they appear in the JSONL line (raw, escaped once, twice)."""
    cands = [raw]
    e1 = json.dumps(raw, ensure_ascii=False)[1:-1]
    e2 = json.dumps(e1, ensure_ascii=False)[1:-1]
    cands += [e1, e2]
    found = []
    for c in cands:
        if c in line and c not in found:
            found.append(c)
    return found


def S(family, agent, where, line, raws, src_key=None):
    secrets = []
    for raw in raws:
        f = forms_in(line, raw)
        if not f:
            sys.exit(f"secret {raw!r} not found in line for {family}/{agent}/{where}")
        for x in f:
            if x not in secrets:
                secrets.append(x)
    SECRETS.append({"id": f"s{len(SECRETS)+1:03d}", "family": family, "agent": agent, "where": where,
                    "secrets": secrets, "line": line, "source": SRC[src_key or family]})


def host():
    return R.choice(["db.internal", "10.0.4.17", "pg-main.cluster-c9x2.eu-west-1.rds.amazonaws.com", "127.0.0.1",
                     "mysql.staging.svc"])


def build_secrets():
    # ---------------- telegram
    t = tg_token()
    S("telegram", "claude", "command", cc_bash(
        f'curl -s "https://api.telegram.org/bot{t}/sendMessage" -d chat_id=-1001987654321 -d text="deploy finished"',
        "Send Telegram notification"), [t])
    t = tg_token()
    S("telegram", "codex", "function_call-arguments", cx_exec(
        f"curl -sS -X POST https://api.telegram.org/bot{t}/sendMessage -H 'Content-Type: application/json' "
        f"-d '{{\"chat_id\": 482913377, \"text\": \"backup ok\"}}'"), [t])
    t = tg_token()
    S("telegram", "claude", "file-content", cc_write(
        "/home/dev/work/notifier/.env", f"TELEGRAM_BOT_TOKEN={t}\nTELEGRAM_CHAT_ID=482913377\nLOG_LEVEL=info\n"), [t])
    t = tg_token()
    S("telegram", "codex", "user", cx_user(
        f"the bot stopped answering. token is {t} and getUpdates returns 409 Conflict, can you check the webhook?"), [t])
    t = tg_token()
    S("telegram", "claude", "tool-output", cc_bash_result(
        "Traceback (most recent call last):\n  File \"/app/bot.py\", line 41, in <module>\n    r.raise_for_status()\n"
        f"requests.exceptions.HTTPError: 401 Client Error: Unauthorized for url: https://api.telegram.org/bot{t}/getMe",
        is_error=True), [t])
    t = tg_token()
    S("telegram", "codex", "tool-output", cx_output(
        f"telegram:\n  token: \"{t}\"\n  chat_id: -1001987654321\n  parse_mode: MarkdownV2\n"), [t])
    t = tg_token()
    S("telegram", "codex", "file-content", cx_patch(add_file(
        "bot/config.py", f'import os\n\nBOT_TOKEN = os.getenv("BOT_TOKEN", "{t}")\nADMIN_IDS = [482913377]\n')), [t])

    # ---------------- JSON inside a string argument
    pw = password(14)
    S("json-in-arg", "claude", "json-in-string", cc_bash(
        "curl -s -X POST http://localhost:8000/api/auth/login -H 'Content-Type: application/json' "
        f"-d '{{\"username\":\"admin@example.com\",\"password\":\"{pw}\"}}' | jq .", "Log in to local API"), [pw])
    pw = password(12)
    S("json-in-arg", "codex", "json-in-string", cx_exec(
        "curl -s -X POST https://staging.example.io/v1/session -H 'Content-Type: application/json' "
        f"-d '{{\"email\":\"qa@example.io\",\"password\":\"{pw}\"}}'", spaced=False), [pw])
    k = rs(32)
    S("json-in-arg", "claude", "json-in-string", cc_bash(
        f"curl -s https://api.weatherstack.example/v2/forecast -H 'Content-Type: application/json' -d '{{\"api_key\": \"{k}\", \"query\": \"Berlin\", \"days\": 3}}'",
        "Query forecast API"), [k])
    cs = rs(40, B64URL)
    S("json-in-arg", "codex", "json-in-string", cx_shell(
        "curl -s -X POST https://auth.example.com/oauth/token -H 'content-type: application/json' "
        f"-d '{{\"client_id\":\"3MVG9x7Qp2\",\"client_secret\":\"{cs}\",\"grant_type\":\"client_credentials\"}}'"), [cs])
    at, rt = rs(48, B64URL), rs(64, B64URL)
    S("json-in-arg", "codex", "tool-output", cx_output(
        dumps({"access_token": at, "token_type": "Bearer", "expires_in": 3600, "refresh_token": rt, "scope": "read write"}) + "\n"), [at, rt])
    pw = password(18)
    S("json-in-arg", "claude", "user", cc_user_text(
        f"login keeps failing with 401, this is the body I send: {{\"user\": \"ops\", \"password\": \"{pw}\"}} — what's wrong with the handler?"), [pw])
    pw = password(16)
    S("json-in-arg", "codex", "file-content", cx_patch(add_file(
        "config/local.json", dumps({"db": {"host": "localhost", "port": 5432, "user": "app", "password": pw}}) + "\n")), [pw])
    k = rs(40)
    S("json-in-arg", "claude", "file-content", cc_write(
        "/Users/dana/src/shopfront/config/integrations.json",
        json.dumps({"search": {"provider": "algolia", "appId": "Q7XK2M9PLA", "apiKey": k}}, indent=2) + "\n"), [k])
    k = rs(36, B64URL)
    S("json-in-arg", "codex", "json-in-string", cx_exec(
        f"python3 - <<'EOF'\nimport json, urllib.request\nbody = json.dumps({{\"model\": \"m1\"}})\nreq = urllib.request.Request('https://api.example.net/v1/run', data=body.encode(), headers={{'content-type': 'application/json'}})\nprint(json.dumps({{\"api_key\": \"{k}\"}}))\nEOF", spaced=True), [k])

    # ---------------- db_password / DB_PASSWORD
    pw = password(20)
    S("db-password", "codex", "function_call-arguments", cx_exec(f"DB_PASSWORD={pw} npm run migrate:latest"), [pw])
    pw = password(16)
    S("db-password", "codex", "function_call-arguments", cx_exec(
        f"cat > settings_local.py <<'EOF'\nDEBUG = True\ndb_password = \"{pw}\"\nEOF", spaced=True), [pw])
    pw = password(18)
    S("db-password", "claude", "file-content", cc_read_result(
        "/home/dev/work/billing-api/.env",
        f"APP_ENV=production\nDB_HOST=pg-main.internal\nDB_PORT=5432\nDB_USER=billing\nDB_PASSWORD={pw}\nREDIS_URL=redis://cache:6379/0\n"), [pw])
    pw = password(22)
    S("db-password", "codex", "tool-output", cx_output(
        f"APP_KEY_ROTATION=off\nDB_CONNECTION=mysql\nDB_HOST=127.0.0.1\nDB_DATABASE=shop\nDB_USERNAME=shop\nDB_PASSWORD={pw}\n",
        cmd="'cat .env'"), [pw])
    pw = password(14)
    S("db-password", "claude", "file-content", cc_write(
        "/home/ubuntu/projects/data-pipeline/pipeline/settings.py",
        f"import os\n\ndb_host = os.getenv(\"DB_HOST\", \"localhost\")\ndb_user = \"etl\"\ndb_password = \"{pw}\"\n"), [pw])
    pw = password(17)
    S("db-password", "codex", "file-content", cx_patch(add_file(".env.local", f"DB_USER=app\nDB_PASSWORD={pw}\n")), [pw])
    pw = password(15)
    S("db-password", "codex", "function_call-arguments", cx_shell(
        f"export DB_PASSWORD='{pw}' && python manage.py migrate --noinput"), [pw])

    # ---------------- Google OAuth
    g = gocspx()
    S("google-oauth", "claude", "json-in-string", cc_read_result(
        "/Users/kai/code/notifier/credentials.json",
        dumps({"installed": {"client_id": f"{R.randint(10**11, 10**12)}-{rs(32, LOWER + string.digits)}.apps.googleusercontent.com",
                             "project_id": "notifier-4821", "auth_uri": "https://accounts.google.com/o/oauth2/auth",
                             "token_uri": "https://oauth2.googleapis.com/token", "client_secret": g,
                             "redirect_uris": ["http://localhost"]}}) + "\n"), [g])
    g = gocspx()
    S("google-oauth", "claude", "command", cc_bash(
        f"curl -s https://oauth2.googleapis.com/token -d client_id=8123.apps.googleusercontent.com -d client_secret={g} "
        "-d refresh_token=\"$REFRESH\" -d grant_type=refresh_token"), [g])
    g = gocspx()
    S("google-oauth", "codex", "function_call-arguments", cx_exec(f"export GOOGLE_CLIENT_SECRET={g} && go run ./cmd/server"), [g])
    g = gocspx()
    S("google-oauth", "codex", "file-content", cx_patch(upd_file(
        "app/settings.py", ["GOOGLE_OAUTH_CLIENT_ID = \"991230.apps.googleusercontent.com\""],
        ["GOOGLE_OAUTH_CLIENT_SECRET = os.environ[\"GOOGLE_OAUTH_CLIENT_SECRET\"]"],
        [f"GOOGLE_OAUTH_CLIENT_SECRET = \"{g}\""])), [g])
    g = gocspx()
    S("google-oauth", "codex", "user", cx_user(f"use client secret {g} for the desktop app"), [g])

    # ---------------- mysql -p / --password=
    pw = password(12, "")
    S("mysql-cli", "claude", "command", cc_bash(
        f"mysql -u root -p{pw} -h 127.0.0.1 shop -e \"SHOW TABLES;\"", "List tables"), [pw])
    pw = password(14)
    S("mysql-cli", "codex", "function_call-arguments", cx_exec(
        f"mysql --password={pw} -u app -h mysql.staging.svc app_db < migrations/0042_add_index.sql"), [pw])
    pw = password(13)
    S("mysql-cli", "codex", "function_call-arguments", cx_shell(f"mysqldump -uroot -p'{pw}' shop > /tmp/shop.sql"), [pw])
    pw = password(11, "")
    S("mysql-cli", "claude", "user", cc_user_text(
        f"I ran `mysql -h db -u admin --password='{pw}' reports` and got ERROR 1045 (28000): Access denied"), [pw])
    pw = password(12, "")
    S("mysql-cli", "codex", "tool-output", cx_output(
        f"USER       PID  %CPU %MEM COMMAND\nmysql     1203   0.3  2.1 /usr/sbin/mysqld\ndev       8812   0.0  0.1 mysql -uroot -p{pw} -h 127.0.0.1 shop\n"), [pw])

    # passwords containing characters that JSON must escape: recorded in escaped form
    pw = 'Qw"9z!Lm2#v' + rs(4)
    S("mysql-cli", "claude", "command", cc_bash(f"mysql -u app -p'{pw}' -h 127.0.0.1 app -e 'select 1'"), [pw])
    pw = 'c0rr3ct\\h0rse"' + rs(5)
    S("db-password", "codex", "function_call-arguments", cx_exec(f"DB_PASSWORD='{pw}' ./bin/migrate up"), [pw])

    # ---------------- PGPASSWORD
    pw = password(16)
    S("pgpassword", "claude", "command", cc_bash(
        f"PGPASSWORD={pw} psql -h localhost -U postgres -d app -c '\\dt'", "List tables"), [pw])
    pw = password(20)
    S("pgpassword", "codex", "function_call-arguments", cx_exec(
        f"PGPASSWORD='{pw}' pg_dump -h {host()} -U app -Fc app > /tmp/app.dump"), [pw])
    pw = password(12)
    S("pgpassword", "codex", "function_call-arguments", cx_shell(
        f"PGPASSWORD=\"{pw}\" psql -h 10.0.4.17 -U reporter analytics -c \"select count(*) from events\""), [pw])
    pw = password(15)
    S("pgpassword", "claude", "tool-output", cc_bash_result(
        f"PGHOST=db.internal\nPGUSER=app\nPGPASSWORD={pw}\nPGDATABASE=app\n"), [pw])

    # ---------------- sshpass
    pw = password(12)
    S("sshpass", "claude", "command", cc_bash(
        f"sshpass -p '{pw}' ssh -o StrictHostKeyChecking=no deploy@10.0.3.12 'sudo systemctl restart app'"), [pw])
    pw = password(10)
    S("sshpass", "codex", "function_call-arguments", cx_exec(
        f"sshpass -p \"{pw}\" scp dist/app.tar.gz pi@192.168.1.40:/opt/app/"), [pw])
    pw = password(14)
    S("sshpass", "codex", "function_call-arguments", cx_shell(
        f"sshpass -p {pw} rsync -az ./build/ www@web01:/var/www/site/"), [pw])
    pw = password(9, "")
    S("sshpass", "claude", "user", cc_user_text(
        f"can you deploy with `sshpass -p '{pw}' ssh root@203.0.113.5`? it's a throwaway box"), [pw])

    # ---------------- Mailgun
    k = mailgun()
    S("mailgun", "claude", "command", cc_bash(
        f"curl -s --user 'api:{k}' https://api.mailgun.net/v3/mg.example.com/messages -F from='Ops <ops@mg.example.com>' "
        "-F to=dana@example.com -F subject='test' -F text='hello'"), [k])
    k = mailgun()
    S("mailgun", "codex", "function_call-arguments", cx_exec(
        f"curl -s --user \"api:{k}\" https://api.eu.mailgun.net/v3/domains"), [k])
    k = mailgun()
    S("mailgun", "claude", "file-content", cc_write(
        "/Users/dana/src/shopfront/.env.production", f"MAILGUN_DOMAIN=mg.example.com\nMAILGUN_API_KEY={k}\n"), [k])
    k = mailgun()
    S("mailgun", "codex", "tool-output", cx_output(
        f"config/mail.php:12:        'secret' => env('MAILGUN_SECRET', '{k}'),\n"), [k])

    # ---------------- Authorization: Token <hex>
    k = drf_token()
    S("auth-token-header", "claude", "command", cc_bash(
        f"curl -s -H \"Authorization: Token {k}\" http://localhost:8000/api/orders/?status=open | jq '.count'"), [k])
    k = drf_token()
    S("auth-token-header", "codex", "function_call-arguments", cx_exec(
        f"http GET https://api.example.org/v2/projects 'Authorization: Token {k}'"), [k])
    k = drf_token()
    S("auth-token-header", "codex", "tool-output", cx_output(
        f"> GET /api/v1/me HTTP/1.1\n> Host: app.example.org\n> Authorization: Token {k}\n> Accept: */*\n>\n< HTTP/1.1 200 OK\n"), [k])
    k = drf_token()
    S("auth-token-header", "claude", "user", cc_user_text(
        f"the netbox API says 403 with header Authorization: Token {k}, can you check permissions?"), [k])

    # ---------------- Authorization: Bearer
    k = rs(40, B64URL)
    S("auth-bearer-header", "claude", "command", cc_bash(
        f"curl -s -H 'Authorization: Bearer {k}' https://api.example.com/v1/invoices?limit=5"), [k])
    k = rs(64, ALNUM)
    S("auth-bearer-header", "codex", "function_call-arguments", cx_exec(
        f"curl -sf -H \"Authorization: Bearer {k}\" -H 'Accept: application/json' https://registry.example.dev/v2/_catalog"), [k])
    k = rs(52, B64URL)
    S("auth-bearer-header", "codex", "function_call-arguments", cx_shell(
        f"curl -s https://api.example.com/graphql -H 'authorization: Bearer {k}' -d '{{\"query\":\"{{ viewer {{ login }} }}\"}}'"), [k])
    k = rs(44, B64URL)
    S("auth-bearer-header", "claude", "tool-output", cc_bash_result(
        f"*   Trying 93.184.216.34:443...\n* Connected to api.example.com\n> POST /v1/jobs HTTP/2\n> Host: api.example.com\n> authorization: Bearer {k}\n> content-type: application/json\n>\n< HTTP/2 201\n"), [k])
    k = rs(40)
    S("auth-bearer-header", "codex", "user", cx_user(
        f"why does this 401? curl -H \"Authorization: Bearer {k}\" https://internal.example.com/health"), [k])

    # ---------------- URL passwords (any entropy)
    S("url-password", "claude", "command", cc_bash(
        "redis-cli -u redis://:222xxx@cache:6379 PING", "Ping redis"), [":222xxx@"])
    S("url-password", "codex", "function_call-arguments", cx_exec(
        "psql postgres://user:pa55@db/x -c 'select 1'"), ["user:pa55@"])
    S("url-password", "claude", "file-content", cc_write(
        "/home/dev/work/billing-api/docker-compose.override.yml",
        "services:\n  worker:\n    environment:\n      BROKER_URL: amqp://u:p@rabbit:5672//\n"), ["u:p@rabbit"])
    pw = password(24, "")
    S("url-password", "codex", "tool-output", cx_output(
        f"MONGO_URI=mongodb+srv://admin:{pw}@cluster0.x7kq2.mongodb.net/app?retryWrites=true&w=majority\n"), [pw])
    pw = password(16, "")
    S("url-password", "claude", "tool-output", cc_read_result(
        "/Users/mira/dev/infra/.env",
        f"DATABASE_URL=mysql://root:{pw}@127.0.0.1:3306/app\nCACHE_URL=redis://127.0.0.1:6379/1\n"), [pw])
    pw = password(12, "")
    S("url-password", "codex", "function_call-arguments", cx_shell(
        f"git clone https://deploy:{pw}@git.example.com/team/site.git /tmp/site"), [pw])
    pw = password(20, "")
    S("url-password", "codex", "file-content", cx_patch(add_file(
        "config/database.yml", f"production:\n  url: postgresql://app:{pw}@pg-main.internal:5432/app_prod\n  pool: 10\n")), [pw])
    S("url-password", "codex", "user", cx_user(
        "celery can't connect, broker is amqp://guest:guest@localhost:5672// — is the vhost wrong?"), ["guest:guest@"])
    pw = password(10, "")
    S("url-password", "claude", "user", cc_user_text(
        f"connection string is postgresql://postgres:{pw}@localhost:5433/postgres, migrations hang"), [pw])

    # ---------------- AWS pairs
    a, s_ = aws_pair()
    S("aws", "claude", "command", cc_bash(
        f"AWS_ACCESS_KEY_ID={a} AWS_SECRET_ACCESS_KEY={s_} aws s3 ls s3://shopfront-assets/ --region eu-west-1"), [a, s_])
    a, s_ = aws_pair()
    S("aws", "claude", "tool-output", cc_read_result(
        "/Users/dana/.aws/credentials", f"[default]\naws_access_key_id = {a}\naws_secret_access_key = {s_}\nregion = eu-west-1\n"), [a, s_])
    a, s_ = aws_pair()
    S("aws", "codex", "function_call-arguments", cx_exec(
        f"export AWS_ACCESS_KEY_ID={a}\nexport AWS_SECRET_ACCESS_KEY={s_}\nterraform plan -out tf.plan", spaced=True), [a, s_])
    a, s_ = aws_pair()
    S("aws", "codex", "tool-output", cx_output(
        f"[profile-ci]\naws_access_key_id={a}\naws_secret_access_key={s_}\n", cmd="'cat ~/.aws/credentials'"), [a, s_])
    a, s_ = aws_pair()
    S("aws", "codex", "file-content", cx_patch(add_file(
        "deploy/s3.js", f"const s3 = new S3Client({{\n  region: 'us-east-1',\n  credentials: {{ accessKeyId: '{a}', secretAccessKey: '{s_}' }},\n}});\n")), [a, s_])

    # ---------------- GitHub
    k = ghp()
    S("github", "claude", "command", cc_bash(f"git remote set-url origin https://{k}@github.com/acme/shopfront.git && git push -u origin main"), [k])
    k = github_pat()
    S("github", "codex", "function_call-arguments", cx_exec(f"GH_TOKEN={k} gh pr list --repo acme/billing-api --state open"), [k])
    k = gho()
    S("github", "claude", "tool-output", cc_bash_result(
        f"github.com\n  ✓ Logged in to github.com account dana-dev (keyring)\n  - Active account: true\n  - Git operations protocol: https\n  - Token: {k}\n  - Token scopes: 'gist', 'read:org', 'repo', 'workflow'\n"), [k])
    k = ghp()
    S("github", "codex", "user", cx_user(f"use this PAT for the release script: {k}"), [k])
    k = github_pat()
    S("github", "claude", "file-content", cc_write("/Users/kai/code/notifier/.envrc", f"export GITHUB_TOKEN={k}\n"), [k])
    k = gho()
    S("github", "codex", "tool-output", cx_output(
        f"github.com:\n    users:\n        dana-dev:\n            oauth_token: {k}\n    git_protocol: https\n    user: dana-dev\n    oauth_token: {k}\n",
        cmd="'cat ~/.config/gh/hosts.yml'"), [k])

    # ---------------- GitLab
    k = glpat()
    S("gitlab", "claude", "command", cc_bash(f"git clone https://oauth2:{k}@gitlab.com/acme/infra/terraform-modules.git"), [k])
    k = glpat()
    S("gitlab", "codex", "function_call-arguments", cx_exec(
        f"curl --header \"PRIVATE-TOKEN: {k}\" \"https://gitlab.example.com/api/v4/projects/42/pipelines?status=failed\""), [k])
    k = glpat()
    S("gitlab", "claude", "user", cc_user_text(f"my gitlab token {k} has api scope, create the MR for me"), [k])
    k = glpat()
    S("gitlab", "codex", "tool-output", cx_output(f"[gitlab]\nhost = gitlab.example.com\ntoken = {k}\n"), [k])

    # ---------------- Slack
    k = xoxb()
    S("slack", "claude", "command", cc_bash(
        f"curl -s -X POST https://slack.com/api/chat.postMessage -H 'Authorization: Bearer {k}' -H 'Content-type: application/json; charset=utf-8' --data '{{\"channel\":\"C0123ABCD\",\"text\":\"deploy done\"}}'"), [k])
    k = xoxp()
    S("slack", "codex", "function_call-arguments", cx_exec(f"SLACK_USER_TOKEN={k} node scripts/export-channel.js general"), [k])
    k = xoxb()
    S("slack", "claude", "file-content", cc_write("/home/dev/work/notifier/.env", f"SLACK_BOT_TOKEN={k}\nSLACK_CHANNEL=#alerts\n"), [k])
    k = xoxp()
    S("slack", "codex", "tool-output", cx_output(f"slack:\n  token: {k}\n  default_channel: releases\n"), [k])

    # ---------------- Stripe
    k = sk_live()
    S("stripe", "claude", "command", cc_bash(f"curl https://api.stripe.com/v1/charges?limit=3 -u {k}:"), [k])
    k = rk_live()
    S("stripe", "codex", "function_call-arguments", cx_exec(f"stripe customers list --limit 5 --api-key {k}"), [k])
    k = sk_live()
    S("stripe", "claude", "tool-output", cc_read_result(
        "/Users/dana/src/shopfront/.env", f"STRIPE_PUBLISHABLE_KEY=pk_live_{rs(99)}\nSTRIPE_SECRET_KEY={k}\n"), [k])
    k = rk_live()
    S("stripe", "codex", "file-content", cx_patch(add_file("billing/stripe_client.rb", f"Stripe.api_key = '{k}'\n")), [k])

    # ---------------- OpenAI
    k = openai_proj()
    S("openai", "claude", "user", cc_user_text(f"here's my key, set it up in the notebook: {k}"), [k])
    k = openai_proj()
    S("openai", "codex", "function_call-arguments", cx_exec(f"export OPENAI_API_KEY={k}; python eval/run.py --model gpt-4.1"), [k])
    k = openai_proj()
    S("openai", "claude", "command", cc_bash(
        f"curl https://api.openai.com/v1/models -H \"Authorization: Bearer {k}\" | jq '.data[].id' | head"), [k])
    k = openai_proj()
    S("openai", "codex", "tool-output", cx_output(f"OPENAI_API_KEY={k}\nOPENAI_ORG=org-{rs(24)}\n", cmd="'env | grep OPENAI'"), [k])

    # ---------------- Anthropic
    k = anthropic()
    S("anthropic", "claude", "command", cc_bash(f"ANTHROPIC_API_KEY={k} python scripts/eval.py --n 20"), [k])
    k = anthropic()
    S("anthropic", "codex", "function_call-arguments", cx_shell(
        f"curl https://api.anthropic.com/v1/messages -H 'x-api-key: {k}' -H 'anthropic-version: 2023-06-01' -H 'content-type: application/json' -d @req.json"), [k])
    k = anthropic()
    S("anthropic", "claude", "file-content", cc_write("/Users/kai/code/notifier/.env.local", f"ANTHROPIC_API_KEY={k}\n"), [k])
    k = anthropic()
    S("anthropic", "codex", "user", cx_user(f"api key is {k} — wire it into the summarizer"), [k])

    # ---------------- Hugging Face
    k = hf()
    S("huggingface", "claude", "command", cc_bash(f"huggingface-cli login --token {k} --add-to-git-credential"), [k])
    k = hf()
    S("huggingface", "codex", "function_call-arguments", cx_exec(f"HF_TOKEN={k} python train.py --push-to-hub"), [k])
    k = hf()
    S("huggingface", "codex", "tool-output", cx_output(f"{k}\n", cmd="'cat ~/.cache/huggingface/token'"), [k])
    k = hf()
    S("huggingface", "claude", "file-content", cc_edit(
        "/home/ubuntu/projects/data-pipeline/download.py", "login()", f"login(token=\"{k}\")"), [k])

    # ---------------- npm
    k = npm_tok()
    S("npm", "claude", "tool-output", cc_read_result(
        "/Users/dana/.npmrc", f"//registry.npmjs.org/:_authToken={k}\n@acme:registry=https://npm.pkg.github.com\n"), [k], "npmrc")
    k = npm_tok()
    S("npm", "codex", "function_call-arguments", cx_exec(f"NPM_TOKEN={k} npm publish --access public"), [k])
    k = npm_tok()
    S("npm", "claude", "command", cc_bash(f"echo '//registry.npmjs.org/:_authToken={k}' > ~/.npmrc && npm whoami"), [k], "npmrc")
    k = npm_tok()
    S("npm", "codex", "file-content", cx_patch(add_file(".npmrc", f"//registry.npmjs.org/:_authToken={k}\n")), [k], "npmrc")

    # ---------------- PyPI
    k = pypi()
    S("pypi", "claude", "command", cc_bash(f"twine upload -u __token__ -p {k} dist/*"), [k])
    k = pypi()
    S("pypi", "codex", "tool-output", cx_output(
        f"[distutils]\nindex-servers = pypi\n\n[pypi]\nusername = __token__\npassword = {k}\n", cmd="'cat ~/.pypirc'"), [k])
    k = pypi()
    S("pypi", "codex", "function_call-arguments", cx_exec(f"UV_PUBLISH_TOKEN={k} uv publish"), [k])
    k = pypi()
    S("pypi", "claude", "user", cc_user_text(f"publish 0.3.1 to pypi, token: {k}"), [k])

    # ---------------- SendGrid
    k = sendgrid()
    S("sendgrid", "claude", "command", cc_bash(
        f"curl --request POST --url https://api.sendgrid.com/v3/mail/send --header 'Authorization: Bearer {k}' --header 'Content-Type: application/json' --data @mail.json"), [k])
    k = sendgrid()
    S("sendgrid", "codex", "function_call-arguments", cx_exec(f"SENDGRID_API_KEY={k} node scripts/send-test.js"), [k])
    k = sendgrid()
    S("sendgrid", "claude", "file-content", cc_write("/Users/dana/src/shopfront/config/mail.yml", f"sendgrid:\n  api_key: {k}\n  from: noreply@example.com\n"), [k])
    k = sendgrid()
    S("sendgrid", "codex", "tool-output", cx_output(f"SENDGRID_API_KEY={k}\n"), [k])

    # ---------------- Twilio
    sid, tok = twilio_pair()
    S("twilio", "claude", "command", cc_bash(
        f"curl -X POST https://api.twilio.com/2010-04-01/Accounts/{sid}/Messages.json --data-urlencode 'To=+15558675310' --data-urlencode 'From=+15017122661' --data-urlencode 'Body=hi' -u {sid}:{tok}"), [tok, sid])
    sid, tok = twilio_pair()
    S("twilio", "codex", "function_call-arguments", cx_exec(f"TWILIO_ACCOUNT_SID={sid} TWILIO_AUTH_TOKEN={tok} python sms.py"), [tok, sid])
    sid, tok = twilio_pair()
    S("twilio", "claude", "tool-output", cc_read_result(
        "/home/dev/work/notifier/.env", f"TWILIO_ACCOUNT_SID={sid}\nTWILIO_AUTH_TOKEN={tok}\nTWILIO_FROM=+15017122661\n"), [tok, sid])
    sid, tok = twilio_pair()
    S("twilio", "codex", "file-content", cx_patch(add_file(
        "notify/sms.py", f"from twilio.rest import Client\n\nclient = Client(\"{sid}\", \"{tok}\")\n")), [tok, sid])

    # ---------------- Shopify
    k = shpat()
    S("shopify", "claude", "command", cc_bash(
        f"curl -s -H 'X-Shopify-Access-Token: {k}' https://acme-store.myshopify.com/admin/api/2024-07/products.json?limit=5"), [k])
    k = shpat()
    S("shopify", "codex", "function_call-arguments", cx_exec(f"SHOPIFY_ADMIN_TOKEN={k} npm run sync:products"), [k])
    k = shpat()
    S("shopify", "codex", "tool-output", cx_output(f"SHOPIFY_STORE=acme-store\nSHOPIFY_ADMIN_TOKEN={k}\n"), [k])
    k = shpat()
    S("shopify", "claude", "user", cc_user_text(f"admin token for the dev store is {k}"), [k])

    # ---------------- DigitalOcean
    k = dop()
    S("digitalocean", "claude", "command", cc_bash(f"doctl auth init --access-token {k} && doctl compute droplet list"), [k])
    k = dop()
    S("digitalocean", "codex", "function_call-arguments", cx_exec(f"export DIGITALOCEAN_TOKEN={k} && terraform apply -auto-approve"), [k])
    k = dop()
    S("digitalocean", "codex", "file-content", cx_patch(add_file("terraform.tfvars", f"do_token = \"{k}\"\nregion   = \"fra1\"\n")), [k])
    k = dop()
    S("digitalocean", "claude", "tool-output", cc_bash_result(f"access-token: {k}\ncontext: default\n"), [k])

    # ---------------- Azure storage
    for agent, where in [("claude", "file-content"), ("codex", "function_call-arguments"), ("codex", "tool-output"), ("claude", "command")]:
        k = azure_key()
        cs_ = f"DefaultEndpointsProtocol=https;AccountName=acmeassets{R.randint(1, 99)};AccountKey={k};EndpointSuffix=core.windows.net"
        if where == "file-content":
            line = cc_write("/Users/mira/dev/infra/appsettings.Development.json",
                            json.dumps({"ConnectionStrings": {"Blob": cs_}}, indent=2) + "\n")
        elif where == "function_call-arguments":
            line = cx_exec(f"az storage blob list --container-name uploads --connection-string \"{cs_}\" -o table")
        elif where == "tool-output":
            line = cx_output(f"AZURE_STORAGE_CONNECTION_STRING={cs_}\n")
        else:
            line = cc_bash(f"export AZURE_STORAGE_CONNECTION_STRING='{cs_}' && npm run upload")
        S("azure-storage", agent, where, line, [k])

    # ---------------- JWT
    k = jwt()
    S("jwt", "claude", "command", cc_bash(f"curl -s http://localhost:3000/api/me -H 'Authorization: Bearer {k}'"), [k])
    k = jwt()
    S("jwt", "codex", "tool-output", cx_output(dumps({"token": k, "user": {"id": 17, "role": "admin"}}) + "\n"), [k])
    k = jwt()
    S("jwt", "claude", "user", cc_user_text(f"decode this token and tell me why it's rejected: {k}"), [k])
    k = jwt()
    S("jwt", "codex", "function_call-arguments", cx_exec(f"TOKEN={k} k6 run load/checkout.js"), [k])

    # ---------------- PEM private keys
    text, body = pem("RSA")
    S("private-key", "claude", "file-content", cc_read_result("/Users/dana/.ssh/deploy_rsa", text), body)
    text, body = pem("OPENSSH", 400)
    S("private-key", "codex", "tool-output", cx_output(text, cmd="'cat ~/.ssh/id_ed25519'"), body)
    text, body = pem("EC", 120)
    S("private-key", "claude", "file-content", cc_write("/Users/mira/dev/infra/certs/server.key", text), body)
    text, body = pem("PKCS8", 1200)
    S("private-key", "codex", "file-content", cx_patch(add_file("secrets/sa-key.pem", text)), body)
    text, body = pem("PKCS8", 1200)
    sa = json.dumps({"type": "service_account", "project_id": "acme-prod", "private_key_id": hexs(40),
                     "private_key": text, "client_email": "ci@acme-prod.iam.gserviceaccount.com"}, indent=2)
    S("private-key", "claude", "tool-output", cc_read_result("/home/dev/work/billing-api/gcp-sa.json", sa + "\n"),
      [json.dumps(b)[1:-1] for b in body])

    # ---------------- Basic auth
    u, p = "admin", password(14, "")
    b = base64.b64encode(f"{u}:{p}".encode()).decode()
    S("basic-auth", "claude", "command", cc_bash(f"curl -s -H 'Authorization: Basic {b}' https://jenkins.example.com/api/json"), [b])
    p = password(12, "")
    S("basic-auth", "codex", "function_call-arguments", cx_exec(f"curl -su ci-bot:{p} https://nexus.example.com/service/rest/v1/repositories"), [p])
    b = base64.b64encode(f"grafana:{password(16, '')}".encode()).decode()
    S("basic-auth", "codex", "tool-output", cx_output(f"> GET /api/health HTTP/1.1\n> Authorization: Basic {b}\n< HTTP/1.1 200 OK\n"), [b])
    b = base64.b64encode(f"es:{password(18, '')}".encode()).decode()
    S("basic-auth", "claude", "user", cc_user_text(f"elastic rejects Authorization: Basic {b} since the upgrade"), [b])

    # ---------------- --token= / --api-key CLI flags
    k = rs(24)
    S("cli-token-flag", "claude", "command", cc_bash(f"vercel deploy --prod --token={k}"), [k])
    k = hexs(40)
    S("cli-token-flag", "codex", "function_call-arguments", cx_exec(f"wandb login --relogin --api-key {k}"), [k])
    k = rs(32)
    S("cli-token-flag", "codex", "function_call-arguments", cx_shell(f"./bin/sync --api-key={k} --endpoint https://sync.example.com"), [k])
    k = uuid4()
    S("cli-token-flag", "claude", "tool-output", cc_bash_result(
        f"dev  4211  node ./node_modules/.bin/netlify deploy --auth {k} --dir=dist\n"), [k])
    k = rs(40, LOWER + string.digits)
    S("cli-token-flag", "codex", "user", cx_user(f"run `cf-sync --token {k} --zone example.com`"), [k])

    # ---------------- export SECRET_KEY=
    k = rs(50, string.ascii_letters + string.digits + "!@#%^*(-_=+)")
    S("export-secret", "claude", "command", cc_bash(f"export SECRET_KEY='{k}' && python manage.py runserver"), [k])
    k = hexs(128)
    S("export-secret", "codex", "function_call-arguments", cx_exec(f"export SECRET_KEY_BASE={k}\nbin/rails s", spaced=True), [k])
    k = rs(43, B64URL)
    S("export-secret", "claude", "file-content", cc_write("/home/dev/work/billing-api/.envrc", f"export JWT_SECRET={k}\nexport APP_ENV=dev\n"), [k])
    k = rs(32)
    S("export-secret", "codex", "tool-output", cx_output(f"export FLASK_SECRET_KEY=\"{k}\"\nexport FLASK_APP=app.py\n", cmd="'cat .env.sh'"), [k])

    # ---------------- docker login -p
    p = password(16, "")
    S("docker-login", "claude", "command", cc_bash(f"docker login -u acmebot -p {p} registry.example.com"), [p])
    k = ghp()
    S("docker-login", "codex", "function_call-arguments", cx_exec(f"docker login ghcr.io -u dana-dev -p {k}"), [k])
    p = password(14, "")
    S("docker-login", "codex", "function_call-arguments", cx_shell(f"docker login --username deploy --password '{p}' harbor.internal"), [p])
    p = password(15, "")
    S("docker-login", "claude", "tool-output", cc_bash_result(
        f"WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n+ docker login -u ci -p {p} registry.gitlab.com\nLogin Succeeded\n"), [p])

    # ---------------- others common in developer transcripts
    w = slack_webhook()
    S("slack-webhook", "claude", "command", cc_bash(f"curl -X POST -H 'Content-type: application/json' --data '{{\"text\":\"build green\"}}' {w}"), [w.rsplit('/', 1)[1]])
    w = slack_webhook()
    S("slack-webhook", "codex", "file-content", cx_patch(add_file(".github/alert.sh", f"#!/bin/sh\nWEBHOOK_URL={w}\ncurl -s -d \"{{\\\"text\\\":\\\"$1\\\"}}\" $WEBHOOK_URL\n")), [w.rsplit('/', 1)[1]])
    w = discord_webhook()
    S("discord-webhook", "codex", "function_call-arguments", cx_exec(f"curl -H 'Content-Type: application/json' -d '{{\"content\":\"deploy ok\"}}' {w}"), [w.rsplit('/', 1)[1]])
    w = discord_webhook()
    S("discord-webhook", "claude", "user", cc_user_text(f"post alerts to {w}"), [w.rsplit('/', 1)[1]])
    k = google_api_key()
    S("google-api-key", "claude", "command", cc_bash(f"curl 'https://maps.googleapis.com/maps/api/geocode/json?address=Berlin&key={k}'"), [k])
    k = google_api_key()
    S("google-api-key", "codex", "file-content", cx_patch(add_file("web/src/firebase.ts", f"export const firebaseConfig = {{\n  apiKey: \"{k}\",\n  authDomain: \"acme-web.firebaseapp.com\",\n}};\n")), [k])
    k = vault_token()
    S("vault", "codex", "function_call-arguments", cx_exec(f"VAULT_TOKEN={k} vault kv get secret/billing/db"), [k])
    k = vault_token()
    S("vault", "claude", "tool-output", cc_bash_result(
        f"Key                  Value\n---                  -----\ntoken                {k}\ntoken_accessor       {rs(24)}\ntoken_duration       768h\ntoken_renewable      true\ntoken_policies       [\"default\"]\n"), [k])
    k = datadog_key()
    S("datadog", "claude", "command", cc_bash(f"DD_API_KEY={k} DD_SITE=datadoghq.eu bash -c \"$(curl -L https://install.datadoghq.com/scripts/install_script_agent7.sh)\""), [k])
    k = datadog_key()
    S("datadog", "codex", "tool-output", cx_output(f"api_key: {k}\nsite: datadoghq.com\nlogs_enabled: true\n", cmd="'sudo cat /etc/datadog-agent/datadog.yaml'"), [k])


# ---------------------------------------------------------------- non-secrets
NONSECRETS = []


def N(agent, line, why):
    NONSECRETS.append({"id": f"n{len(NONSECRETS)+1:03d}", "agent": agent, "line": line, "why": why})


CORPUS_PICKS = [
    # (path relative to corpus home, 1-based line number, why)
    (".claude/projects/-Users-gtrrz-victor-wks-gitsync/88db7fea-797f-49be-9036-c762ae804ce0.jsonl", 152, "real goreleaser --version output: GitCommit 40-hex git SHA"),
    (".claude/projects/-Users-gtrrz-victor-wks-gitsync/88db7fea-797f-49be-9036-c762ae804ce0.jsonl", 120, "real user text: goreleaser `token: \"{{ .Env.TAP_GITHUB_TOKEN }}\"` template reference, no value"),
    (".claude/projects/-Users-gtrrz-victor-wks-gitsync/88db7fea-797f-49be-9036-c762ae804ce0.jsonl", 79, "real goreleaser config: `password: \"{{.Env.MACOS_SIGN_PASSWORD}}\"` env template, no value"),
    (".claude/projects/-Users-nodo-work-entire-git-sync/281504b9-510d-48d4-b489-0d9a06759e91.jsonl", 431, "real Read of a Go test: fake object hashes like deadbee1000…0001"),
    (".claude/projects/-Users-nodo-work-entire-git-sync/281504b9-510d-48d4-b489-0d9a06759e91.jsonl", 506, "real workflow file: actions/checkout pinned to a 40-hex commit SHA"),
    (".claude/projects/-Users-nodo-work-entire-git-sync/ffbceeb3-b71f-4055-b943-2bb07e2d6b03.jsonl", 24, "real PR comment text with a commit SHA and bugbot URLs"),
    (".claude/projects/-Users-nodo-work-tasks/b2f87a4e-5689-48c2-8c78-9470485f9a72.jsonl", 391, "real `go get module@<sha>` command"),
    (".claude/projects/-Users-soph-Work-entire-devenv-git-sync/124cf89f-b950-42d0-8c90-1990b889f0bc.jsonl", 112, "real error text quoting a git object id"),
    (".claude/projects/-Users-soph-Work-entire-devenv-git-sync/124cf89f-b950-42d0-8c90-1990b889f0bc.jsonl", 263, "real Bash git cat-file with object SHAs"),
    (".claude/projects/-Users-soph-Work-entire-devenv-git-sync/124cf89f-b950-42d0-8c90-1990b889f0bc.jsonl", 266, "real git ref listing with SHAs"),
    (".claude/projects/-Users-soph-Work-entire-devenv-git-sync/124cf89f-b950-42d0-8c90-1990b889f0bc.jsonl", 292, "real git log range of SHAs"),
    (".claude/projects/-Users-soph-Work-entire-devenv-git-sync/124cf89f-b950-42d0-8c90-1990b889f0bc.jsonl", 732, "real debug output with desired ref SHAs and zero hash"),
    (".claude/projects/-Users-soph-Work-entire-devenv-git-sync/124cf89f-b950-42d0-8c90-1990b889f0bc.jsonl", 780, "real git stash drop output with SHA"),
    (".claude/projects/-Users-soph-Work-entire-devenv-git-sync/124cf89f-b950-42d0-8c90-1990b889f0bc.jsonl", 1081, "real go test failure quoting a commit id"),
    (".claude/projects/-Users-soph-Work-entire-devenv-git-sync/124cf89f-b950-42d0-8c90-1990b889f0bc.jsonl", 97, "real protobuf-ish dump with ULIDs"),
    (".claude/projects/-Users-soph-Work-entire-devenv-git-sync/1e0a84da-d36b-4e8a-925c-b32310479358.jsonl", 85, "real git log with merge SHAs"),
    (".claude/projects/-Users-soph-Work-entire-devenv-git-sync/3ee1ca7a-a436-44c1-906a-a912c6d33f96.jsonl", 810, "real git ls-remote listing: SHA + ref names"),
    (".claude/projects/-Users-soph-Work-entire-devenv-git-sync/4f8f5e9b-9f90-4c22-88b9-988c55f45833.jsonl", 161, "real pkt-line dump: agent=entire-server/<sha>"),
    (".claude/projects/-Users-nodo-work-entire-git-sync/8ff21ea1-e320-4771-a636-a6590f0b5080.jsonl", 256, "real output: notes ref sha256 hashes"),
    (".claude/projects/-Users-soph-Work-entire-devenv-git-sync/5b613073-e70b-48a1-b6ae-c6aaa99ec2b1.jsonl", 292, "real sha256sum of a release tarball"),
    (".claude/projects/-Users-soph-Work-entire-devenv-git-sync/b9954e8e-b63a-4a5c-8e73-777034b2a6a6.jsonl", 725, "real mise error quoting a Rekor public key id (hex digest)"),
    (".claude/projects/-Users-soph-Work-entire-devenv-git-sync/ff0a7d3f-e73b-48cc-a5d1-49b930a82fdf.jsonl", 358, "real test output with a 64-hex docker container id"),
    (".claude/projects/-Users-soph-Work-entire-devenv-git-sync/ff0a7d3f-e73b-48cc-a5d1-49b930a82fdf.jsonl", 88, "real git show with commit SHA and Entire-Checkpoint id"),
    (".claude/projects/-Users-soph-Work-entire-devenv-git-sync/ff0a7d3f-e73b-48cc-a5d1-49b930a82fdf.jsonl", 216, "real git log with SHAs"),
    (".claude/projects/-Users-soph-Work-entire-devenv-git-sync/124cf89f-b950-42d0-8c90-1990b889f0bc.jsonl", 6, "real user text: `Password for 'https://x@<32hex>.artifacts.cloudflare.net'` prompt — user without password, hex account id"),
    (".claude/projects/-Users-soph-Work-entire-devenv-git-sync/3ee1ca7a-a436-44c1-906a-a912c6d33f96.jsonl", 805, "real user text with credential prompt, URL user only"),
    (".claude/projects/-Users-soph-Work-entire-devenv-git-sync/c6533991-5707-4094-a756-614132c9eb65.jsonl", 142, "real user text: `\"$ARTIFACTS_REMOTE\"` placeholder and user-only URL"),
    (".claude/projects/-Users-nodo-work-entire-git-sync/ffbceeb3-b71f-4055-b943-2bb07e2d6b03.jsonl", 575, "real assistant text: `https://ghp_xxx@host` placeholder"),
    (".claude/projects/-Users-nodo-work-entire-git-sync/ffbceeb3-b71f-4055-b943-2bb07e2d6b03.jsonl", 724, "real doc text `GITSYNC_SOURCE_TOKEN=ghp_xxx` placeholder"),
    (".claude/projects/-Users-soph-Work-entire-devenv-git-sync/76731dd6-65de-4d92-be87-716b3e380099.jsonl", 407, "real assistant text: `export GH_TOKEN=ghp_xxxxxxxxxxxx` placeholder"),
    (".claude/projects/-Users-soph-Work-entire-devenv-git-sync/9c38fcfa-92c9-437b-a244-5fa0b1dda745.jsonl", 13, "real issue text with `--target-token \"ghp_XXXXXX\"` placeholder"),
    (".claude/projects/-Users-georgf-src-entirehq-gitsync/93d77a79-f7f6-4781-ae8e-492ee04c8177.jsonl", 35, "real README edit: `--source-token \"$GITSYNC_SOURCE_TOKEN\"` env refs"),
    (".claude/projects/-Users-soph-Work-entire-devenv-git-sync/0cd46975-a945-4e8b-b0fa-f6cf392e38b2.jsonl", 237, "real Read of README with $TOKEN env refs"),
    (".claude/projects/-Users-soph-Work-entire-devenv-git-sync/3ee1ca7a-a436-44c1-906a-a912c6d33f96.jsonl", 469, "real assistant text: `--target-token=$CF_TOKEN`"),
    (".claude/projects/-Users-soph-Work-entire-devenv-git-sync/7b2777b1-8075-41f4-a62a-cbfc1b76c01b.jsonl", 540, "real assistant text: `--target-token \"$ENTIRE_TOKEN\"`"),
    (".claude/projects/-Users-soph-Work-entire-devenv-git-sync/7b2777b1-8075-41f4-a62a-cbfc1b76c01b.jsonl", 520, "real assistant text: `export GITSYNC_SOURCE_TOKEN=<src-pat>` placeholders"),
    (".claude/projects/-Users-soph-Work-entire-devenv-git-sync/7b2777b1-8075-41f4-a62a-cbfc1b76c01b.jsonl", 578, "real assistant text: `read -s -p 'token: ' TOK` and `-u \"git:$TOK\"`"),
    (".claude/projects/-Users-soph-Work-entire-devenv-git-sync/9c38fcfa-92c9-437b-a244-5fa0b1dda745.jsonl", 218, "real Go test source: `password = %q` format strings"),
    (".claude/projects/-Users-soph-Work-entire-devenv-git-sync/9c38fcfa-92c9-437b-a244-5fa0b1dda745.jsonl", 445, "real Go source: `basicAuth{username: user, password: pass}` variable names"),
    (".claude/projects/-Users-soph-Work-entire-devenv-git-sync/3ee1ca7a-a436-44c1-906a-a912c6d33f96.jsonl", 579, "real Go source: `Token: raw.Token` struct fields"),
    (".claude/projects/-Users-soph-Work-entire-devenv-git-sync/5b613073-e70b-48a1-b6ae-c6aaa99ec2b1.jsonl", 291, "real command: `Authorization: token $(gh auth token)` command substitution"),
    (".claude/projects/-Users-soph-Work-entire-devenv-git-sync/ec48fae0-26ba-4958-acf2-08a0644c73bf.jsonl", 468, "real review text: `Authorization: Basic ....` elided"),
    (".claude/projects/-Users-soph-Work-entire-devenv-git-sync/5ed1d306-9e1c-4b64-9e67-10914f1bd82a.jsonl", 27, "real go.sum lines: h1: module checksums"),
    (".claude/projects/-Users-soph-Work-entire-devenv-git-sync/76731dd6-65de-4d92-be87-716b3e380099.jsonl", 7, "real user error text with ULID repo id"),
    (".claude/projects/-Users-soph-Work-entire-devenv-git-sync/76731dd6-65de-4d92-be87-716b3e380099.jsonl", 706, "real error with checkpoint ULID ref"),
    (".claude/projects/-Users-soph-Work-entire-devenv-git-sync/76731dd6-65de-4d92-be87-716b3e380099.jsonl", 713, "real user text: secret_scanning_push_protection JSON setting"),
    (".claude/projects/-home-coder-git-entireio-git-sync/0708a5fa-06bd-4274-b1fe-513c7202217e.jsonl", 203, "real commit output: SHA and Entire-Checkpoint ULID"),
    (".claude/projects/-Users-soph-Work-entire-devenv-git-sync/1e0a84da-d36b-4e8a-925c-b32310479358.jsonl", 556, "real Go edit: bearer-token flag definitions"),
    (".claude/projects/-Users-georgf-src-entirehq-gitsync/93d77a79-f7f6-4781-ae8e-492ee04c8177.jsonl", 15, "real assistant thinking block: long base64 `signature` (not a credential)"),
    (".claude/projects/-Users-georgf-src-entirehq-gitsync/93d77a79-f7f6-4781-ae8e-492ee04c8177.jsonl", 18, "real assistant thinking block signature"),
    (".codex/sessions/2026/04/08/rollout-2026-04-08T12-55-32-019d6d29-8cf7-7fe3-adc9-8c3e4d9d5603.jsonl", 2386, "real Codex output: go-build cache path with 64-hex action id"),
    (".codex/sessions/2026/05/14/rollout-2026-05-14T19-24-38-019e27f2-b7de-71c3-a0f9-70d6539231ba.jsonl", 881, "real Codex output: go-build cache hash"),
    (".codex/sessions/2026/05/14/rollout-2026-05-14T19-24-38-019e27f2-b7de-71c3-a0f9-70d6539231ba.jsonl", 927, "real Codex output: go-build cache hash"),
    (".codex/sessions/2026/05/14/rollout-2026-05-14T19-24-38-019e27f2-b7de-71c3-a0f9-70d6539231ba.jsonl", 544, "real Codex message: docker container id"),
    (".codex/sessions/2026/04/30/rollout-2026-04-30T08-09-06-019ddd6f-3680-7fb3-8f93-e567af97d303.jsonl", 75, "real Codex user text: https://user@example.com URL, user no password"),
    (".codex/sessions/2026/04/30/rollout-2026-04-30T08-09-06-019ddd6f-3680-7fb3-8f93-e567af97d303.jsonl", 79, "real Codex agent message about userinfo"),
    (".codex/sessions/2026/04/30/rollout-2026-04-30T08-09-06-019ddd6f-3680-7fb3-8f93-e567af97d303.jsonl", 107, "real apply_patch: test case with user@ URL"),
    (".codex/sessions/2026/04/08/rollout-2026-04-08T12-55-32-019d6d29-8cf7-7fe3-adc9-8c3e4d9d5603.jsonl", 1916, "real apply_patch README: `--source-token \"$GITSYNC_SOURCE_TOKEN\"`"),
    (".codex/sessions/2026/04/10/rollout-2026-04-10T11-49-15-019d7739-95cb-79e3-9de4-3cbe15400b87.jsonl", 639, "real agent message: `--target-token \"$TOKEN\"`"),
    (".codex/sessions/2026/04/08/rollout-2026-04-08T12-55-32-019d6d29-8cf7-7fe3-adc9-8c3e4d9d5603.jsonl", 787, "real exec_command_end: README auth section naming env vars"),
    (".codex/sessions/2026/04/08/rollout-2026-04-08T12-55-32-019d6d29-8cf7-7fe3-adc9-8c3e4d9d5603.jsonl", 2938, "real function_call_output: grep of bearer token flags"),
    (".codex/sessions/2026/04/08/rollout-2026-04-08T12-55-32-019d6d29-8cf7-7fe3-adc9-8c3e4d9d5603.jsonl", 202, "real exec_command_end with uuid turn_id and GOCACHE env"),
    (".codex/sessions/2026/04/08/rollout-2026-04-08T12-55-32-019d6d29-8cf7-7fe3-adc9-8c3e4d9d5603.jsonl", 2532, "real function_call: git show <short sha>"),
    (".codex/sessions/2026/04/08/rollout-2026-04-08T12-55-32-019d6d29-8cf7-7fe3-adc9-8c3e4d9d5603.jsonl", 2550, "real function_call: filter-branch with a 40-hex SHA, double-escaped quotes"),
    (".codex/sessions/2026/04/11/rollout-2026-04-11T20-23-03-019d7e36-577c-7d90-9f1c-a447ba2254b4.jsonl", 571, "real function_call: git show short sha"),
    (".codex/sessions/2026/04/10/rollout-2026-04-10T11-49-15-019d7739-95cb-79e3-9de4-3cbe15400b87.jsonl", 184, "real user_message: `Password for 'https://test@localhost:8080'` prompt, 'Invalid token format'"),
    (".codex/sessions/2026/04/10/rollout-2026-04-10T11-49-15-019d7739-95cb-79e3-9de4-3cbe15400b87.jsonl", 626, "real user_message: `--target-token \"$GITSYNC_E2E_ENTIRE_TOKEN\"`"),
    (".codex/sessions/2026/04/10/rollout-2026-04-10T11-49-15-019d7739-95cb-79e3-9de4-3cbe15400b87.jsonl", 636, "real user_message: CLI help mentioning password and invite token"),
    (".codex/sessions/2026/04/10/rollout-2026-04-10T11-49-15-019d7739-95cb-79e3-9de4-3cbe15400b87.jsonl", 194, "real user_message: 'get the token from the entire-git-helper'"),
    (".claude/projects/-Users-soph-Work-entire-devenv-git-sync/124cf89f-b950-42d0-8c90-1990b889f0bc.jsonl", 249, "real user error text: object SHA and user-only credential prompt URL"),
    (".claude/projects/-Users-soph-Work-entire-devenv-git-sync/124cf89f-b950-42d0-8c90-1990b889f0bc.jsonl", 864, "real grep output: test hash of repeated 'd' (40 chars)"),
    (".claude/projects/-Users-soph-Work-entire-devenv-git-sync/3ee1ca7a-a436-44c1-906a-a912c6d33f96.jsonl", 421, "real git stash output with SHA"),
    (".claude/projects/-Users-soph-Work-entire-devenv-git-sync/4746b2b9-d72d-4d6a-81af-a70ba92e9c94.jsonl", 95, "real git status/stash output with SHA"),
    (".claude/projects/-Users-soph-Work-entire-devenv-git-sync/1e0a84da-d36b-4e8a-925c-b32310479358.jsonl", 282, "real Read of Go test with all-zero hash"),
    (".codex/sessions/2026/04/11/rollout-2026-04-11T20-23-03-019d7e36-577c-7d90-9f1c-a447ba2254b4.jsonl", 572, "real function_call: git diff <short sha>^ <short sha>"),
    (".codex/sessions/2026/04/11/rollout-2026-04-11T20-23-03-019d7e36-577c-7d90-9f1c-a447ba2254b4.jsonl", 573, "real function_call: git diff with pathspec"),
    (".codex/sessions/2026/04/11/rollout-2026-04-11T20-23-03-019d7e36-577c-7d90-9f1c-a447ba2254b4.jsonl", 594, "real function_call: git show short sha"),
    (".codex/sessions/2026/06/17/rollout-2026-06-17T17-34-19-019ed6a5-ed9f-7c11-b8c8-a4c04c0e6410.jsonl", 34, "real function_call_output: go-build cache 64-hex path"),
]


def corpus_line(rel, n):
    with open(os.path.join(CORPUS, rel), encoding="utf-8") as fh:
        for i, l in enumerate(fh, 1):
            if i == n:
                return l.rstrip("\n")
    raise SystemExit(f"missing corpus line {rel}:{n}")


def build_nonsecrets():
    for rel, n, why in CORPUS_PICKS:
        line = corpus_line(rel, n)
        agent = "codex" if rel.startswith(".codex") else "claude"
        N(agent, line, why + f" [verbatim from corpus {rel}:{n}]")

    # ---- synthetic, real-shaped
    N("claude", cc_read_result("/Users/dana/src/shopfront/.tool-versions",
                               "nodejs 22.11.0\npython 3.12.7\n1password-cli 2.30.0\nterraform 1.9.8\n"),
      ".tool-versions: 1password-cli is a tool name")
    N("codex", cx_patch(upd_file("mise.toml", ["[tools]", "node = \"22\""], [], ["1password = \"latest\"", "\"aqua:1password/cli\" = \"2.30.0\""])),
      "mise.toml: `1password = \"latest\"` is a tool/version pair")
    N("claude", cc_bash("sed -i 's/api_key=.*/api_key=REDACTED/g' logs/app.log", "Scrub api keys from log"),
      "sed expression that removes keys; `.*` and REDACTED are not values")
    N("codex", cx_exec("sed -E 's/(password|token)=[^&]*/\\1=***/g' access.log | tail -20"),
      "sed regex masking passwords; no value")
    N("claude", cc_bash("export OPENAI_API_KEY=$OPENAI_API_KEY && python eval.py", "Run eval"),
      "env var forwarded by reference")
    N("codex", cx_exec("curl -H \"Authorization: Bearer ${API_TOKEN}\" https://api.example.com/v1/me"),
      "Bearer with ${API_TOKEN} placeholder")
    N("claude", cc_write("/Users/kai/code/notifier/.env.example",
                         "TELEGRAM_BOT_TOKEN=<your-bot-token>\nOPENAI_API_KEY=YOUR_API_KEY\nSTRIPE_SECRET_KEY=sk_live_...\nDB_PASSWORD=\nGITHUB_TOKEN=ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n"),
      ".env.example with placeholders only")
    N("claude", cc_assistant_text("Set your key first:\n\n```bash\nexport ANTHROPIC_API_KEY=sk-ant-...\nexport OPENAI_API_KEY=sk-...\n```\n\nThen re-run `make eval`."),
      "docs-style placeholders `sk-ant-...`, `sk-...`")
    N("codex", cx_user("where do I put my YOUR_API_KEY placeholder, in config.yaml or .env?"), "placeholder word only")
    N("claude", cc_read_result("/home/dev/work/billing-api/config/database.yml",
                               "development:\n  adapter: postgresql\n  username: postgres\n  password: \"\"\n  host: localhost\n\nproduction:\n  url: <%= ENV['DATABASE_URL'] %>\n  password: <%= ENV['DB_PASSWORD'] %>\n"),
      "`password: \"\"` empty and ERB env lookups")
    N("codex", cx_patch(add_file("docker-compose.yml",
                                 "services:\n  db:\n    image: postgres:16\n    environment:\n      POSTGRES_PASSWORD: ${DB_PASSWORD}\n      POSTGRES_USER: app\n  app:\n    environment:\n      - DB_PASSWORD=${DB_PASSWORD}\n      - DATABASE_URL=postgres://app@db:5432/app\n")),
      "`password=${DB_PASSWORD}` interpolation; URL with user but no password")
    N("claude", cc_write("/Users/dana/src/shopfront/tests/fixtures/auth.json",
                         json.dumps({"token": "test", "password": "password", "api_key": "fake-key-for-tests"}, indent=2) + "\n"),
      "obviously fake test fixture values")
    N("codex", cx_patch(add_file("internal/auth/auth_test.go",
                                 "func TestLogin(t *testing.T) {\n\tcreds := Credentials{User: \"alice\", Token: \"test-token\"}\n\tif err := Login(creds); err != nil {\n\t\tt.Fatal(err)\n\t}\n}\n")),
      "Go test fixture with obvious fake token")
    # Go module checksums
    def h1():
        return "h1:" + base64.b64encode(bytes(R.getrandbits(8) for _ in range(32))).decode()
    gosum = "".join(f"{m} {v} {h1()}\n{m} {v}/go.mod {h1()}\n" for m, v in [
        ("github.com/go-git/go-git/v6", "v6.0.0-alpha.3"), ("golang.org/x/crypto", "v0.52.0"), ("golang.org/x/net", "v0.54.0")])
    N("claude", cc_read_result("/Users/kai/code/notifier/go.sum", gosum), "go.sum h1: checksums (sha256 base64)")
    N("codex", cx_output("go: downloading golang.org/x/sys v0.40.0\n" + gosum.split("\n")[0] + "\n", cmd="'go mod download -json | head'"),
      "go.sum checksum line in output")
    # npm integrity
    def sri(alg="sha512", n=64):
        return f"{alg}-" + base64.b64encode(bytes(R.getrandbits(8) for _ in range(n))).decode()
    lock = json.dumps({"node_modules/lodash": {"version": "4.17.21", "resolved": "https://registry.npmjs.org/lodash/-/lodash-4.17.21.tgz",
                                               "integrity": sri()}}, indent=2)
    N("claude", cc_read_result("/Users/dana/src/shopfront/package-lock.json", lock + "\n"), "npm integrity sha512- hash")
    N("codex", cx_patch(upd_file("web/index.html", ["<head>"], [], [f"<script src=\"https://cdn.jsdelivr.net/npm/htmx.org@2.0.3\" integrity=\"{sri('sha384', 48)}\" crossorigin=\"anonymous\"></script>"])),
      "subresource integrity sha384 hash")
    N("codex", cx_output(f"lodash@^4.17.21:\n  version \"4.17.21\"\n  resolved \"https://registry.yarnpkg.com/lodash/-/lodash-4.17.21.tgz#{hexs(40)}\"\n  integrity {sri()}\n"),
      "yarn.lock resolved#sha1 and integrity")
    N("claude", cc_read_result("/Users/mira/dev/infra/Cargo.lock",
                               f"[[package]]\nname = \"serde\"\nversion = \"1.0.215\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\nchecksum = \"{hexs(64)}\"\n"),
      "Cargo.lock checksum (sha256)")
    # docker digests
    d = hexs(64)
    N("claude", cc_bash(f"docker pull python:3.12-slim@sha256:{d}", "Pull pinned image"), "docker image digest")
    N("codex", cx_output(f"REPOSITORY   TAG         DIGEST                                                                    IMAGE ID       CREATED\npython       3.12-slim   sha256:{hexs(64)}   {hexs(12)}   2 weeks ago\n"),
      "docker images --digests output")
    N("claude", cc_bash_result(f"{hexs(64)}\n"), "docker run -d container id (64 hex)")
    # git shas
    N("codex", cx_exec(f"git log --oneline {hexs(7)}..{hexs(40)}"), "git SHAs")
    N("claude", cc_bash_result("".join(f"{hexs(40)}\trefs/heads/{b}\n" for b in ["main", "release/1.4", "feat/notify"])), "git ls-remote output")
    N("codex", cx_output(f"commit {hexs(40)}\nAuthor: Dana Dev <dana@example.com>\nDate:   Tue Jun 9 10:12:44 2026 +0200\n\n    Rotate API key handling to use env vars\n\n    Change-Id: I{hexs(40)}\n"),
      "git show with Gerrit Change-Id and commit message mentioning API key")
    # uuids
    N("claude", cc_bash_result(dumps({"id": uuid4(), "request_id": uuid4(), "trace_id": hexs(32), "span_id": hexs(16)}) + "\n"),
      "UUIDs and trace/span ids")
    N("codex", cx_user(f"session {uuid7()} crashed, logs are in /tmp/run-{uuid4()}.log"), "uuids in user text")
    N("claude", cc_bash(f"terraform state show 'aws_s3_bucket.assets' | grep -E 'id|arn'  # lineage {uuid4()}"), "terraform lineage uuid")
    # sha256 digests
    N("codex", cx_output(f"{hexs(64)}  dist/app-linux-amd64.tar.gz\n{hexs(64)}  dist/app-darwin-arm64.tar.gz\n", cmd="'shasum -a 256 dist/*.tar.gz'"),
      "sha256 checksums of build artifacts")
    N("claude", cc_write("/Users/mira/dev/infra/Formula/notifier.rb",
                         f"class Notifier < Formula\n  url \"https://github.com/acme/notifier/archive/refs/tags/v0.4.1.tar.gz\"\n  sha256 \"{hexs(64)}\"\nend\n"),
      "Homebrew formula sha256")
    # base64 of non-secrets
    for txt in ["hello world", "{\"alg\":\"none\"}", "apiVersion: v1\nkind: ConfigMap\n"]:
        b = base64.b64encode(txt.encode()).decode()
        if len(NONSECRETS) % 2:
            N("claude", cc_bash(f"echo {b} | base64 -d", "Decode base64"), f"base64 of non-secret text {txt!r}")
        else:
            N("codex", cx_exec(f"echo '{b}' | base64 --decode"), f"base64 of non-secret text {txt!r}")
    N("codex", cx_output("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==\n"),
      "inline 1x1 PNG data URI")
    # hex colours
    N("claude", cc_write("/Users/dana/src/shopfront/src/theme.css",
                         ":root {\n  --brand: #1a73e8;\n  --brand-dark: #0b57d0;\n  --accent: #ff6d00;\n  --bg: #fafafa;\n  --text: #202124;\n}\n"),
      "hex colour codes")
    N("codex", cx_patch(add_file("tailwind.config.js", "module.exports = { theme: { extend: { colors: { primary: '#6366f1', secondary: '#ec4899', muted: '#94a3b8' } } } };\n")),
      "hex colours")
    # URLs with user no password
    N("claude", cc_bash("git remote add upstream ssh://git@github.com/acme/shopfront.git && git fetch upstream", "Add upstream"), "ssh URL with user only")
    N("codex", cx_exec("psql postgres://postgres@localhost:5432/app -c '\\l'"), "postgres URL with user and no password")
    N("claude", cc_bash_result("origin\tgit@github.com:acme/billing-api.git (fetch)\norigin\tgit@github.com:acme/billing-api.git (push)\n"), "git remote -v, scp-style user@host")
    N("codex", cx_output("redis_url = redis://cache:6379/0\namqp_url = amqp://rabbit:5672/%2F\n"), "service URLs without userinfo")
    # prompts / flags without values
    N("claude", cc_bash("mysql -u root -p -h 127.0.0.1 shop", "Open mysql shell (prompts for password)"), "`-p` with no value prompts interactively")
    N("codex", cx_exec("echo \"$CR_PAT\" | docker login ghcr.io -u dana-dev --password-stdin"), "docker login --password-stdin from env var")
    N("claude", cc_bash("PGPASSWORD=\"$PGPASS\" psql -h db.internal -U app -c 'select 1'", "Check db"), "PGPASSWORD from env var reference")
    N("codex", cx_exec("sshpass -f ~/.ssh/pass.txt ssh deploy@10.0.3.12 uptime"), "sshpass reading password from file")
    N("claude", cc_read_result("/Users/kai/code/notifier/.github/workflows/deploy.yml",
                               "env:\n  GOOGLE_CLIENT_SECRET: ${{ secrets.GOOGLE_CLIENT_SECRET }}\n  SLACK_BOT_TOKEN: ${{ secrets.SLACK_BOT_TOKEN }}\n  AWS_SECRET_ACCESS_KEY: ${{ secrets.AWS_SECRET_ACCESS_KEY }}\n"),
      "GitHub Actions secret references")
    N("codex", cx_patch(add_file("app/config.py", "import os\n\nSECRET_KEY = os.environ[\"SECRET_KEY\"]\nGITHUB_TOKEN = os.getenv(\"GITHUB_TOKEN\", \"\")\nDB_PASSWORD = os.environ.get(\"DB_PASSWORD\")\n")),
      "secrets read from environment, no literals")
    N("claude", cc_assistant_text("The `Authorization: Token <token>` header is what DRF expects; create one with `python manage.py drf_create_token alice` and pass it as `Authorization: Token $DRF_TOKEN`."),
      "header format explained with placeholders")
    N("codex", cx_agent("Use `--api-key <KEY>` or set `WANDB_API_KEY`; the CLI never prints the key back."), "flag placeholder in agent message")
    N("claude", cc_bash("kubectl get secret db-credentials -o jsonpath='{.data}' | jq 'keys'", "List secret keys"), "kubectl secret name, no values")
    N("codex", cx_output("NAME                  TYPE                                  DATA   AGE\ndb-credentials        Opaque                                3      41d\ndefault-token-x7k2p   kubernetes.io/service-account-token   3      210d\n"),
      "kubectl get secrets listing, random pod suffix")
    N("claude", cc_bash_result("NAME                          READY   STATUS    RESTARTS   AGE\napi-7d9f8c6b5d-x2k9p           1/1     Running   0          3h\nworker-5c7b9d8f4-qz8lm        1/1     Running   2          3h\n"),
      "pod names with replicaset hashes")
    N("codex", cx_output(f"aws_access_key_id = ****************{rs(4, UPPERNUM)}\naws_secret_access_key = ****************{rs(4, ALNUM)}\n", cmd="'aws configure list'"),
      "aws configure list shows masked values only")
    N("claude", cc_bash_result("  ✓ Logged in to github.com account dana-dev (keyring)\n  - Active account: true\n  - Git operations protocol: https\n  - Token: gho_************************************\n"),
      "gh auth status with masked token")
    N("codex", cx_user("I rotated the stripe key in the dashboard, now update the docs to say sk_test_... for local dev"), "placeholder key prefix only")
    N("claude", cc_user_text("the JWT header is eyJhbGciOiJIUzI1NiJ9 — is HS256 fine here or should we use RS256?"), "JWT header alone (base64 of {\"alg\":\"HS256\"})")
    N("codex", cx_exec(f"curl -s https://api.github.com/repos/acme/shopfront/commits/{hexs(40)}/status | jq .state"), "commit SHA in API URL")
    N("claude", cc_bash(f"npm view lodash@4.17.21 dist.integrity dist.shasum  # {hexs(40)}"), "npm shasum in comment")
    N("codex", cx_output(f"Successfully built {hexs(12)}\nSuccessfully tagged acme/api:{hexs(7)}\n"), "docker build ids/tags")
    N("claude", cc_read_result("/Users/mira/dev/infra/.sops.yaml",
                               f"creation_rules:\n  - path_regex: secrets/.*\\.yaml$\n    age: age1{rs(58, 'qpzry9x8gf2tvdw0s3jn54khce6mua7l')}\n"),
      "age public key (recipient, not a secret)")
    N("codex", cx_output(f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{rs(43, B64)} dana@laptop\n", cmd="'cat ~/.ssh/id_ed25519.pub'"), "SSH public key")
    N("claude", cc_user_text("password reset emails are going to spam, can you check the SPF/DKIM records?"), "word password in prose")
    N("codex", cx_user("add a `--token` flag to the CLI that reads from TOKEN env when not set"), "flag name without value")
    N("claude", cc_bash_result(f"{{\"etag\":\"W/\\\"{hexs(32)}\\\"\",\"x-request-id\":\"req_{rs(24)}\",\"cf-ray\":\"{hexs(16)}-FRA\"}}\n"), "etag/request-id/cf-ray identifiers")

    # more Codex shapes
    N("codex", cx_output(f"{hexs(40)}\n", cmd="'git rev-parse HEAD'"), "git rev-parse output")
    N("codex", cx_shell("grep -rn 'API_KEY' --include=*.py . | head -20"), "grep for a key name")
    N("codex", cx_output("src/config.py:4:API_KEY = os.environ['API_KEY']\nsrc/client.py:18:    headers = {'x-api-key': API_KEY}\n"), "grep output, names only")
    N("codex", cx_user("the webhook secret lives in WEBHOOK_SECRET, read it from the env instead of hardcoding"), "env var name only")
    N("codex", cx_patch(add_file(".env.example", "STRIPE_SECRET_KEY=sk_test_xxx\nSENDGRID_API_KEY=SG.xxxxx\nDATABASE_URL=postgres://localhost:5432/app\nSECRET_KEY=change-me\n")),
      ".env.example placeholders")
    N("codex", cx_output(f"sha256:{hexs(64)}\n", cmd="\"docker inspect --format '{{.Id}}' api\""), "docker image id")
    N("codex", cx_output("".join(f"i-0{hexs(16)}  ami-0{hexs(16)}  running  t3.medium\n" for _ in range(3))), "EC2 instance/AMI ids")
    N("codex", cx_agent("I masked the token in the log output as `ghp_****` and left the env var name `GH_TOKEN` in the docs."), "masked token in prose")
    N("codex", cx_output(f"requests==2.32.3 \\\n    --hash=sha256:{hexs(64)} \\\n    --hash=sha256:{hexs(64)}\n", cmd="'cat requirements.txt'"), "pip --hash=sha256 pins")
    N("codex", cx_output(f"256 SHA256:{rs(43, B64)} dana@laptop (ED25519)\n", cmd="'ssh-keygen -lf ~/.ssh/id_ed25519.pub'"), "SSH key fingerprint")
    N("codex", cx_exec("openssl rand -base64 32 | wc -c"), "generates but never prints a key")
    N("codex", cx_output(f"Run ID: {R.randint(10**9, 10**10)}\nArtifact: build-{hexs(40)}\nURL: https://github.com/acme/shopfront/actions/runs/{R.randint(10**9, 10**10)}\n"), "CI run/artifact ids")
    N("codex", cx_user(f"reviewing PR #482, head is {hexs(40)} and base {hexs(12)}"), "commit SHAs in user text")


def validate():
    ids = set()
    for c in SECRETS:
        assert c["id"] not in ids, c["id"]
        ids.add(c["id"])
        o = json.loads(c["line"])
        assert isinstance(o, dict)
        assert c["secrets"], c["id"]
        for s in c["secrets"]:
            assert s in c["line"], (c["id"], s)
            assert len(s) >= 4, (c["id"], s)
        assert c["agent"] in ("claude", "codex")
        assert c["where"] in ("user", "tool-output", "command", "function_call-arguments", "json-in-string", "file-content"), c
    all_secret_strings = {s for c in SECRETS for s in c["secrets"]}
    for c in NONSECRETS:
        assert c["id"] not in ids, c["id"]
        ids.add(c["id"])
        o = json.loads(c["line"])
        assert isinstance(o, dict)
        for s in all_secret_strings:
            assert s not in c["line"], (c["id"], s)
    assert len(SECRETS) >= 120, len(SECRETS)
    assert len(NONSECRETS) >= 120, len(NONSECRETS)


def main():
    build_secrets()
    build_nonsecrets()
    validate()
    with open(os.path.join(HERE, "secrets.json"), "w", encoding="utf-8") as fh:
        json.dump(SECRETS, fh, ensure_ascii=False, indent=1)
        fh.write("\n")
    with open(os.path.join(HERE, "nonsecrets.json"), "w", encoding="utf-8") as fh:
        json.dump(NONSECRETS, fh, ensure_ascii=False, indent=1)
        fh.write("\n")
    from collections import Counter
    print("secrets", len(SECRETS), "nonsecrets", len(NONSECRETS))
    print(Counter(c["family"] for c in SECRETS))


if __name__ == "__main__":
    main()
