"""Secrets recognised by the name they are assigned to: the decision table, both ways.

Each line is what a transcript holds: config files (JSON, YAML, TOML, INI, .env, compose,
Kubernetes), shell commands, code (Python, JS/TS, Go, PHP, Ruby), prose and logs. A line in
``MASKED`` carries a secret that must be gone from what capture stores; a line in ``KEPT``
must come out byte for byte. Every line is checked through ``redact_text`` and through
capture's own path (one screen of the block, then the exact rules on flagged lines) in a
Claude Code user message, a Bash command and Codex ``function_call`` arguments (JSON inside
a JSON string, so quotes escaped twice).
"""

from __future__ import annotations

import re

import msgspec
import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from skillopsd._redact import _TWO_LETTER_WORDS, redact, redact_text, screen

from .redaction_cases import transcript_line

# (line, the secret in it)
MASKED: list[tuple[str, str]] = [
    # The lines: passphrases, whatever words they hold.
    ("password: correct-horse-battery-staple", "correct-horse-battery-staple"),
    ('"password": "my-secret-pass"', "my-secret-pass"),
    ('{"password": "super-secret-password"}', "super-secret-password"),
    ('"api_key": "prod-key-hunter"', "prod-key-hunter"),
    ("token: tiger-token-2", "tiger-token-2"),
    ('"password": "tiger-token-2"', "tiger-token-2"),
    ("password: super-secret-password", "super-secret-password"),
    ('"secret": "secret-sauce-recipe"', "secret-sauce-recipe"),
    ('"token": "token-of-appreciation"', "token-of-appreciation"),
    ('"password": "password-is-taco"', "password-is-taco"),
    ('"password": "not_my_real_password"', "not_my_real_password"),
    ('"passphrase": "my-voice-is-my-passport"', "my-voice-is-my-passport"),
    ("'password': 'pass-the-salt'", "pass-the-salt"),
    ('"password": "hunter-two"', "hunter-two"),
    ('"password": "supersecret"', "supersecret"),
    ('"password": "mypassword"', "mypassword"),
    ('"client_secret": "my-client-secret-value"', "my-client-secret-value"),
    ('{"db": {"user": "app", "password": "blue-otter-lamp"}}', "blue-otter-lamp"),
    # JSON written by tools and in code.
    ('{"username":"admin","password":"kitten-mittens"}', "kitten-mittens"),
    ('{\n  "apiKey": "orange-tractor-river"\n}', "orange-tractor-river"),
    ('const config = { password: "gorilla-banana-split" };', "gorilla-banana-split"),
    ('headers: { "X-Api-Key": "tea-kettle-whistle" }', "tea-kettle-whistle"),
    # YAML: app config, compose, Kubernetes.
    ("database:\n  host: db.internal\n  password: supersecret\n", "supersecret"),
    ("database:\n  password: correct_horse_battery\n  port: 5432", "correct_horse_battery"),
    ("  password: 'quiet-meadow-falls'", "quiet-meadow-falls"),
    ('  password: "quiet meadow falls"', "quiet meadow falls"),
    ("environment:\n  POSTGRES_PASSWORD: supersecret\n", "supersecret"),
    ("environment:\n  POSTGRES_PASSWORD: postgres\n  POSTGRES_USER: app", "postgres"),
    ("environment:\n  - MYSQL_ROOT_PASSWORD=rootpass\n", "rootpass"),
    ("environment:\n  - POSTGRES_PASSWORD=my-secret-pw", "my-secret-pw"),
    ("    environment:\n      MYSQL_PASSWORD: wordpress-db-pass\n", "wordpress-db-pass"),
    ("kind: Secret\nstringData:\n  password: letmein\n", "letmein"),
    ("kind: Secret\nstringData:\n  api-key: orbit-falcon-ember\n", "orbit-falcon-ember"),
    ("kind: Secret\ndata:\n  password: aHVudGVyaHVudGVy\n", "aHVudGVyaHVudGVy"),
    ("data:\n  password: cGFzc3dvcmQ=\n", "cGFzc3dvcmQ="),
    ("redis:\n  password: s3cr3t\n", "s3cr3t"),
    ("smtp:\n  password: P@ssword!\n", "P@ssword!"),
    ("auth:\n  token: bluebird # rotate monthly\n", "bluebird"),
    ("ADMIN_PASSWORD: hunter\n", "hunter"),
    ("  DB_PASS: marmalade\n", "marmalade"),
    ("  SECRET_KEY: cobblestone\n", "cobblestone"),
    # TOML, INI, properties.
    ('[database]\npassword = "velvet-thunder"\n', "velvet-thunder"),
    ("[client]\npassword = quiet-meadow-falls\n", "quiet-meadow-falls"),
    ("[client]\npassword = mountain-dew\n", "mountain-dew"),
    ('api_key = "prod-key-hunter"', "prod-key-hunter"),
    ("spring.datasource.password=correct-horse", "correct-horse"),
    ("spring.datasource.password: hunter-two\n", "hunter-two"),
    ("[default]\naws_secret_access_key = wJalrXUtnFEMIK7MDENGbPxRfiCYzzKEY\n", "wJalrXUtnFEMI"),
    # .env files.
    ("DB_PASSWORD=correct-horse-battery-staple", "correct-horse-battery-staple"),
    ("DB_PASSWORD=my_secret_pass", "my_secret_pass"),
    ("API_KEY=prod-key-hunter", "prod-key-hunter"),
    ('SECRET_KEY="django-insecure-passphrase"', "django-insecure-passphrase"),
    ("PASSWORD='tiger lily garden'", "tiger lily garden"),
    ("export PGPASSWORD=marmalade", "marmalade"),
    ("REDIS_PASSWORD=hunterhunter\nREDIS_HOST=cache", "hunterhunter"),
    ("APP_SECRET=banana-hammock", "banana-hammock"),
    ("GITHUB_TOKEN=my_token_for_ci_runs", "my_token_for_ci_runs"),
    # Shell.
    ("docker run -e MYSQL_ROOT_PASSWORD=my-secret-pw -d mysql:8", "my-secret-pw"),
    ('docker run -e "POSTGRES_PASSWORD=ocean-breeze" postgres', "ocean-breeze"),
    ("docker run --env DB_PASSWORD=hunterhunter app", "hunterhunter"),
    ("PGPASSWORD=hunter2 psql -h db -U app", "hunter2"),
    ("mysql -u root -pmy-secret-pass shop", "my-secret-pass"),
    ("mysql -u root -p'correct-horse' -h 127.0.0.1", "correct-horse"),
    ("mysqldump -uroot -psupersecret shop > shop.sql", "supersecret"),
    ("curl -u admin:my-secret-pass https://api.example.com", "my-secret-pass"),
    ("curl -u admin:hunter https://x.example", "hunter"),
    ("curl --user 'deploy:orbit-falcon' https://ci.example/api", "orbit-falcon"),
    ("sshpass -p 'secret-sauce' ssh pi@raspberrypi", "secret-sauce"),
    ("docker login -u bot -p registry-pass-word registry.example.com", "registry-pass-word"),
    ("psql postgres://app:correct-horse@db:5432/app", "correct-horse"),
    ("redis-cli -u redis://:hunter@cache:6379 PING", "hunter"),
    ("git clone https://oauth2:swordfish@gitlab.example.com/g/r.git", "swordfish"),
    ("echo 'password: correct-horse-battery-staple' >> config.yml", "correct-horse-battery-staple"),
    ('echo "API_KEY=prod-key-hunter" > .env', "prod-key-hunter"),
    ("curl -H 'X-API-Key: tea-kettle-whistle' https://api.example", "tea-kettle-whistle"),
    ('curl -d \'{"password":"my-secret-pass"}\' https://x.example/login', "my-secret-pass"),
    ("curl -d 'password=my-secret-pass&user=bob' https://x.example/login", "my-secret-pass"),
    ("http POST :8000/login username=bob password=blue-otter", "blue-otter"),
    ("jdbc:mysql://db:3306/shop?user=root&password=marmalade", "marmalade"),
    ("Server=db;Database=shop;User Id=sa;Password=marmalade;", "marmalade"),
    ("Host=db;Username=app;Pwd=marmalade;", "marmalade"),
    # Code.
    ('password = "correct-horse-battery-staple"', "correct-horse-battery-staple"),
    ('db_password = "my-secret-pass"', "my-secret-pass"),
    ("PASSWORD = 'super-secret-password'", "super-secret-password"),
    ('config["password"] = "my-secret-pass"', "my-secret-pass"),
    ("settings['SECRET_KEY'] = 'django-insecure-phrase'", "django-insecure-phrase"),
    ('client = Client(api_key="prod-key-hunter")', "prod-key-hunter"),
    ('connect(host="db", password="marmalade")', "marmalade"),
    ('requests.post(url, json={"token": "bluebird-sings"})', "bluebird-sings"),
    ('const apiKey = "orange-tractor-river";', "orange-tractor-river"),
    ("const password = 'my-secret-pass'", "my-secret-pass"),
    ('let token: string = "tiger-lily";', "tiger-lily"),
    ('password := "my-secret-pass"', "my-secret-pass"),
    ('cfg := Config{Password: "my-secret-pass"}', "my-secret-pass"),
    ("'password' => 'my-secret-pass',", "my-secret-pass"),
    ('$password = "my-secret-pass";', "my-secret-pass"),
    ('config.password = "velvet-thunder"', "velvet-thunder"),
    ('user.update!(password: "my-secret-pass")', "my-secret-pass"),
    # Secrets whose name is elsewhere on the line: a tool's option, a file's keyword, an
    # environment variable's name, an XML tag, a pair of credentials.
    ("redis-cli -h cache -a hunter2 PING", "hunter2"),
    ("redis-cli -a supersecret", "supersecret"),
    ("mongosh -u admin -p tiger-lily --authenticationDatabase admin", "tiger-lily"),
    ("openssl pkcs12 -export -out a.p12 -passout pass:marmalade", "marmalade"),
    ("openssl enc -aes-256-cbc -k supersecret -in a -out b", "supersecret"),
    ("az login -u bob@example.com -p hunter-two", "hunter-two"),
    ("zip -P marmalade archive.zip notes.txt", "marmalade"),
    ("7z a -pmarmalade archive.7z notes.txt", "marmalade"),
    ("htpasswd -bc .htpasswd admin marmalade", "marmalade"),
    ("ssh-keygen -t ed25519 -N 'correct horse' -f ~/.ssh/id", "correct horse"),
    ("machine api.example.com login bob password marmalade", "marmalade"),
    ("machine api.example.com\n  login bob\n  password marmalade\n", "marmalade"),
    ("define( 'DB_PASSWORD', 'blue-otter-lamp' );", "blue-otter-lamp"),
    ('os.getenv("API_KEY", "prod-key-hunter")', "prod-key-hunter"),
    ('os.environ.setdefault("SECRET_KEY", "django-insecure-phrase")', "django-insecure-phrase"),
    ("ENV.fetch('DB_PASSWORD', 'marmalade')", "marmalade"),
    ('env:\n  - name: DB_PASSWORD\n    value: "marmalade"', "marmalade"),
    ("env:\n  - name: API_TOKEN\n    value: tiger-lily-pad\n", "tiger-lily-pad"),
    ("<server><id>repo</id><password>marmalade</password></server>", "marmalade"),
    ('<add key="ApiKey" value="prod-key-hunter" />', "prod-key-hunter"),
    ('requests.get(url, auth=("admin", "marmalade"))', "marmalade"),
    ('auth = HTTPBasicAuth("admin", "marmalade")', "marmalade"),
    # Prose and logs.
    ("the password: correct-horse-battery-staple, keep it safe", "correct-horse-battery-staple"),
    ("my api key: prod-key-hunter-two for staging", "prod-key-hunter-two"),
    ("Use password=hunterhunter to log in", "hunterhunter"),
    ("login ok, password: hunter2", "hunter2"),
    ("set the token: s3cr3t-t0ken and retry", "s3cr3t-t0ken"),
    ('INFO connecting with {"user": "app", "password": "blue-otter-lamp"}', "blue-otter-lamp"),
    ("DEBUG env PASSWORD=marmalade HOST=db", "marmalade"),
    # Reviewer finding F2: a value after a secret's name whatever characters it holds.
    (
        "services:\n  db:\n    environment:\n      POSTGRES_PASSWORD: wAwaIINYNvDMbZoO\n",
        "wAwaIINYNvDMbZoO",
    ),
    ("DB_PASSWORD: wAwaIINYNvDMbZoO", "wAwaIINYNvDMbZoO"),
    ("GITHUB_TOKEN: wAwaIINYNvDMbZoO", "wAwaIINYNvDMbZoO"),
    ("password: correcthorsebatterystaple", "correcthorsebatterystaple"),
    ("password = wAwaIINYNvDMbZoO", "wAwaIINYNvDMbZoO"),
    ("password = P@ss!word", "P@ss!word"),
    ("secret_key = qWeRtYuIoP", "qWeRtYuIoP"),
    ("[client]\nuser = root\npassword = hunter\n", "hunter"),
    ('"password": "SuperSecret"', "SuperSecret"),
    ('"password": "MySecret"', "MySecret"),
    ("[database]\nhost = db\n  db_password = letmein # prod\n", "letmein"),
    ("password: 123456", "123456"),
    ('"pwd": "0000"', "0000"),
    ('"password": "my secret"', "my secret"),
    ('"password": "no (really) secret"', "no (really) secret"),
    ('credentials: "aB3xYzzq"', "aB3xYzzq"),
    ('"credential": "wAwaIINYNvDMbZoO"', "wAwaIINYNvDMbZoO"),
    ('"auth": "bXl1c2VyOkI4ZEUzeEtKbThHQUYw"', "bXl1c2VyOkI4ZEUzeEtKbThHQUYw"),
    (
        '{\n  "auths": {\n    "registry.example.com": {\n'
        '      "auth": "ZGVwbG95OkI4ZEUzeEtKbThHQUYw"\n    }\n  }\n}',
        "ZGVwbG95OkI4ZEUzeEtKbThHQUYw",
    ),
    ("_auth = ZGVwbG95OkI4ZEUzeEtKbThHQUYw", "ZGVwbG95OkI4ZEUzeEtKbThHQUYw"),
    ("//registry.npmjs.org/:_auth=ZGVwbG95OkI4ZEUzeEtKbThHQUYw", "ZGVwbG95OkI4ZEUzeEtKbThHQUYw"),
    # Reviewer finding G6: secrets in SQL and command-line syntaxes, the reviewer's lines.
    ("psql -c \"ALTER USER app WITH PASSWORD 'Qm7vR2xLp9TzK4wN8sHd';\"", "Qm7vR2xLp9TzK4wN8sHd"),
    (
        "mysql -e \"CREATE USER 'app'@'%' IDENTIFIED BY 'Zt5kP8wQ2mXr7LvN3cBh';\"",
        "Zt5kP8wQ2mXr7LvN3cBh",
    ),
    ("CREATE ROLE app LOGIN PASSWORD 'marmalade';", "marmalade"),
    ("ALTER USER scott IDENTIFIED BY tiger2024;", "tiger2024"),
    ("gpg --batch --passphrase Hy6nB3vK9qWz2XmR5tLp -d backup.tar.gpg", "Hy6nB3vK9qWz2XmR5tLp"),
    ("echo 'Wn4cT8xK2vPq7LmZ9rBd' | sudo -S systemctl restart app", "Wn4cT8xK2vPq7LmZ9rBd"),
    ("export ENCRYPTION_KEY=Rk3mW8vQ5zTx2NpL7hYc", "Rk3mW8vQ5zTx2NpL7hYc"),
    (
        "curl -H 'Cookie: session=Gf9pL2wX7kQm4ZvT8nRb' https://app.example.com/admin",
        "Gf9pL2wX7kQm4ZvT8nRb",
    ),
    ("keytool -list -keystore ks.jks -storepass ZFlRJmCGmUXiAPyhzAnar3", "ZFlRJmCGmUXiAPyhzAnar3"),
    ("app --db-pass ZLt4bnlz2MPKgcjnCqaXNv", "ZLt4bnlz2MPKgcjnCqaXNv"),
    ("pass=1syeefnLOpaMxxNDi9LE1K", "1syeefnLOpaMxxNDi9LE1K"),
    ('curl "https://maps.example.com/api?key=BYOvfZ8UzDzV8fUkkibj&q=1"', "BYOvfZ8UzDzV8fUkkibj"),
    ("echo UPgHV7iB3m03nbqnsGpW | docker login -u me --password-stdin", "UPgHV7iB3m03nbqnsGpW"),
    ("jarsigner -storepass marmalade app.jar alias", "marmalade"),
    ("unzip -P marmalade a.zip", "marmalade"),
    ("rabbitmqctl add_user bob marmalade", "marmalade"),
    ("net user admin marmalade /add", "marmalade"),
    ("gh secret set DEPLOY_KEY --body marmalade", "marmalade"),
    ("ssh-add - <<< marmalade", "marmalade"),
    ("Set-Cookie: session=Xq7mB2vL9kPz; Path=/; HttpOnly", "Xq7mB2vL9kPz"),
    ("Ocp-Apim-Subscription-Key: Xq7mB2vL9kPz", "Xq7mB2vL9kPz"),
    # Review H2: more programs' password options and secret stores.
    ('sqlcmd -S db.internal -U sa -P Vq7Lm2Xr9TzK4wPb -Q "SELECT 1"', "Vq7Lm2Xr9TzK4wPb"),
    ("ldapsearch -x -D cn=admin,dc=corp -w Hn3Kp8Zq5RtW2mYc -b dc=corp", "Hn3Kp8Zq5RtW2mYc"),
    ("aws configure set aws_secret_access_key wJalrXUtnFEMI/K7MDENG/bPxRfiCYzQ8m", "wJalrXUtnFEMI"),
    ("http -a admin:Bc6Tn9Wq2XzL5kPm https://api.corp/x", "Bc6Tn9Wq2XzL5kPm"),
    ("smbclient //fs/share -U bob%Jd4Rw8Nt2QzX6mLp -c ls", "Jd4Rw8Nt2QzX6mLp"),
    ("security add-generic-password -a bob -s deploy -w Pz5Xk2Wn8QrT3mLv", "Pz5Xk2Wn8QrT3mLv"),
    ("mysql -e \"SET PASSWORD FOR 'app'@'%' = PASSWORD('marmalade')\"", "marmalade"),
    ("mvn sonar:sonar -Dsonar.login=Gm8Xz3Qp5WtK2nRv", "Gm8Xz3Qp5WtK2nRv"),
    ("cargo login Lc9Vb4Nm7QxZ2kTw", "Lc9Vb4Nm7QxZ2kTw"),
    ("aws secretsmanager create-secret --name db --secret-string Wk5Pz8Tn3QxR", "Wk5Pz8Tn3QxR"),
    ("az keyvault secret set --vault-name kv --name db-pass --value marmalade", "marmalade"),
    ("poetry config http-basic.private bob marmalade", "marmalade"),
    ("rclone config create r s3 secret_access_key Qn6Zt3Wx8KpR2mLv", "Qn6Zt3Wx8KpR2mLv"),
    ("dotnet nuget add source https://x/index.json -u bob -p marmalade", "marmalade"),
    ("gh secret set DB_PASSWORD -b'marmalade'", "marmalade"),
    ("vercel env add DB_URL production <<< marmalade", "marmalade"),
    ("echo marmalade | docker secret create db_pw -", "marmalade"),
    ("ansible-vault view x.yml --vault-password-file <(echo marmalade)", "marmalade"),
    ("the admin password is Xk9pLm2QrT4w, change it", "Xk9pLm2QrT4w"),
    ("Password is: Xk9pLm2QrT4w", "Xk9pLm2QrT4w"),
    ("java -jar tool.jar -user bob -password Xk9pLm2QrT4w", "Xk9pLm2QrT4w"),
]

KEPT: list[str] = [
    # Types and code.
    "password: str",
    "    password: str",
    "token: Optional[str]",
    "token: Optional[str] = None",
    "api_key: str | None = None",
    "secret: bytes",
    "    password: SecretStr",
    "    token: Token",
    "secret: clientSecret",
    "password: string;",
    "  password: String,",
    "def login(user: str, password: str) -> Token:",
    "fn connect(password: &str) -> Result<()>",
    "interface Creds { password: string; token?: string }",
    '"password": password',
    '{"token": token, "secret": secret}',
    'password = os.environ["DB_PASSWORD"]',
    "password = os.getenv('DB_PASSWORD')",
    "token = settings.API_TOKEN",
    "token = self.token",
    "secret = get_secret()",
    "password = getpass.getpass()",
    "token = access_token",
    "    token = refresh_token\n",
    "password = user_password",
    "api(token=access_token, password=db_password)",
    "client = Client(api_key=api_key)",
    "s.token = token",
    "BasicAuth{Password: password}",
    'password := os.Getenv("DB_PASSWORD")',
    'token := r.Header.Get("Authorization")',
    "const token = process.env.GITHUB_TOKEN",
    "  token: authToken,",
    "  secret: process.env.SECRET\n",
    "$password = $_POST['password'];",
    "'password' => env('DB_PASSWORD'),",
    "password = None",
    "token = True",
    "if password == confirm: pass",
    # Placeholders and labels.
    "password: ${{ secrets.DB_PASSWORD }}",
    "token: ${GITHUB_TOKEN}",
    '"password": "<your-password>"',
    '"api_key": "your_api_key"',
    '"api_key": "YOUR_API_KEY"',
    '"password": "changeme"',
    '"password": "change-me"',
    '"password": "xxx"',
    '"password": "xxxxxxxx"',
    '"password": "********"',
    '"password": "..."',
    '"password": "example"',
    '"password": "dummy"',
    '"password": "test"',
    '"password": "fake"',
    '"password": "test-password"',
    '"token": "fake-token-for-tests"',
    '"secret": "dummy_secret"',
    '"password": "password"',
    '"password": "secret"',
    '"api_key": "api-key"',
    '"password": "my-password"',
    '"token": "my-token"',
    '"api_key": "my_api_key"',
    '"client_secret": "client-secret"',
    '"password": "db_password"',
    'Token: "my-token"',
    'password = "pass"',
    '"password": "none"',
    '"password": "null"',
    '"token": "GITSYNC_SOURCE_TOKEN"',
    "DB_PASSWORD=${DB_PASSWORD}",
    "API_KEY=<your key>",
    "PASSWORD=changeme",
    "PASSWORD=your_password_here",
    "password=...",
    "mysql -u root -p -h 127.0.0.1 shop",
    'curl -u "$USER:$TOKEN" https://example.com',
    "postgres://app:DB_PASSWORD@db/app",
    # Prose and logs.
    "password: required",
    "Password: required",
    "secret: see vault",
    "token: expired",
    "Auth token: invalid\n",
    "password: hidden",
    "The token: read-only access is enough",
    "token: read-only",
    "secret: auto-generated",
    "password: user-supplied",
    "token: up-to-date",
    "password: must be at least 12 characters",
    "Password: ********",
    "GITHUB_TOKEN: required for private repos",
    "API_KEY: Your API key from the dashboard",
    "- `DB_PASSWORD`: the database password",
    "Original token count: 1111",
    "input_tokens: 1234\nmax_output_tokens=4096",
    "I rotated the token: it works now",
    "what is the password: the one from the vault?",
    "Enter password:\n",
    "[sudo] password for bob:",
    # Config that is not a secret.
    "existingSecret: postgres-credentials",
    "secretName: tls-cert",
    "valueFrom:\n  secretKeyRef:\n    name: db-secret\n    key: password",
    "POSTGRES_PASSWORD_FILE: /run/secrets/db_password",
    "env:\n  - name: DB_PASSWORD\n    valueFrom:",
    "token_type: bearer",
    '1password = "latest"',
    "max_tokens: 4096",
    "tokenizer: cl100k_base",
    "keyboard: us",
    "password_min_length: 12",
    "sed -i 's/api_key=.*/api_key=REDACTED/g' logs/app.log",
    "docker login --password-stdin registry.example.com < token.txt",
    "git push origin fix-cask-point-at-private-repo",
    "git checkout -b secret-rotation-fix",
    # Where a secret would be, but none is.
    "the login page password field",
    "mongosh -u admin -p --authenticationDatabase admin",
    "ssh-keygen -t ed25519 -N '' -f key",
    'os.getenv("API_KEY", "")',
    'os.getenv("API_KEY", "your key here")',
    "define('AUTH_KEY', 'put your unique phrase here');",
    "<password>${env.DEPLOY_PASSWORD}</password>",
    "<maxTokens>100</maxTokens>",
    "env:\n  - name: DB_PASSWORD\n    valueFrom:\n      secretKeyRef:",
    "requests.get(url, auth=(user, password))",
    "zip -r archive.zip src",
    "redis-cli -h cache PING",
    # F2's class, the other way: code, schemas, prose and placeholders after the same names.
    "connect(password=self.password)",
    "f(credentials=to_http_credentials(x))",
    "credentials = standard_b64encode(data)",
    "password = base64.b16encode(raw)",
    "token = parseHTTPResponse",
    "secret = mySecret",
    "password = pw",
    "x = 1\npassword = quux",
    '{"username": "string", "password": "string"}',
    '"credentials": "boolean?"',
    "persist-credentials: true",
    "c.Auth = retryAuth",
    "auth: authMethod",
    '"auth": "ZGVwbG95"',
    "auth: scram-sha-256",
    "token: 3600",
    "[client]\npassword = ${DB_PASSWORD}\n",
    "[client]\npassword = secret\n",
    "password: <password>",
    "password: changeme",
    '"pwd": "a b"',
    "x = 'password: a' + y",
    # Seen masked in real files while measuring (nsswitch.conf, a JSON list of field names, a
    # Maven settings.xml template, a docstring):
    "passwd:         files\nshadow:         files\n",
    "passwd: files systemd",
    '["passwd:dir", "passwd:gecos", "passwd:gid", "passwd:name", "passwd:shell"]',
    "scopes: [repo, secrets:read]",
    "<passphrase>optional; leave empty if not used.</passphrase>",
    'auth=("admin", "…")',
    # Code and themes in site-packages, measured the same way.
    "f(future,\n    token=self._token)",
    "_begin(_core_token=_core_token)",
    "BasicAuth(username=auth[0], password=auth[1])",
    'styles = {\n    Token: "#f8f8f2",\n}',
    'def sign(private_key: "_RSAPrivateKey") -> bytes:',
    "private_key: ed25519.Ed25519PrivateKey",
    'oid = {AttributeOID.CHALLENGE_PASSWORD: "challengePassword"}',
    "USE_SECRET=True",
    "refresh_token=False",
    # Reviewer finding G7: library code read every day (pygments, httplib2, oauthlib,
    # http.client, cryptography, urllib3).
    "        _stoken=_stoken, _token_terminator=_token_terminator,",
    "            proxy_pass=url.password or None,",
    "        ResourceEndpoint.__init__(self, default_token='Bearer',",
    "            refresh_token=self.issue_new_refresh_tokens)",
    "# token          = 1*tchar",
    '_SK_START = b"-----BEGIN OPENSSH PRIVATE KEY-----"',
    "    >>> parse_url('http://username:password@host.com:80/path?query#fragment')",
    # G6's forms where no secret is given: a flag, a variable, a prompt, a file.
    "psql --no-password -h db app",
    "gpg --passphrase-fd 0 --batch -d backup.tar.gpg",
    "app --db-pass-file /run/secrets/db",
    "echo $SUDO_PASSWORD | sudo -S systemctl restart app",
    'echo "$CR_PAT" | docker login ghcr.io -u me --password-stdin',
    "echo done | tee log.txt",
    "net user admin * /add",
    "vault login -method=userpass username=bob",
    "gh auth login --with-token < token.txt",
    "Set-Cookie: sessionid=deleted; expires=Thu, 01 Jan 1970 00:00:00 GMT",
    "Cookie: theme=dark; lang=en-GB",
    "https://example.com/search?key=name&order=asc",
    "raise ValueError('wrong password ' + user)",
    "CREATE USER app WITH PASSWORD 'changeme';",
    'ENCRYPTION_KEY=""',
    "sorted(items, key=sort_key2)",
    # Review H2's programs without a secret: a prompt, a setting, a variable, an option.
    "ldapsearch -x -W -D cn=admin,dc=corp",
    "security add-generic-password -a bob -s deploy -w",
    "aws configure set region us-east-1",
    "aws configure set aws_secret_access_key $AWS_SECRET_ACCESS_KEY",
    "cargo login --registry internal",
    "const password = new Password('r0sebud');",
    "the password is correct",
    "java -jar tool.jar -password $TOOL_PASSWORD",
    "echo $DB_PW | docker secret create db_pw -",
    "ansible-vault view x.yml --vault-password-file <(echo $VAULT_PASSWORD)",
    "aws secretsmanager create-secret --name x --secret-string file://secret.json",
    # Review H7: an obvious placeholder, a user's name as its default password.
    "OPENAI_API_KEY=sk-your-key-here",
    "DATABASE_URL=postgresql://postgres:postgres@localhost:5432/test",
]


def _codex_arguments(text: str) -> bytes:
    arguments = msgspec.json.encode({"cmd": text}).decode()
    return msgspec.json.encode(
        {"type": "response_item", "payload": {"type": "function_call", "arguments": arguments}}
    )


def _lines(text: str) -> list[bytes]:
    return [
        transcript_line("user", text),
        transcript_line("command", text),
        _codex_arguments(text),
    ]


def captured(line: bytes) -> bytes:
    """``line`` as capture stores it: screened in its block, redacted if flagged."""
    block = line + b"\n"
    if not screen(block, len(block)):
        return line
    out, _ = redact(line, was_json=True, screened=True)
    msgspec.json.decode(out)  # still one JSON value
    return out


def _escaped(secret: str) -> list[bytes]:
    """``secret`` as it can appear in a line: raw, escaped once, escaped twice."""
    once = msgspec.json.encode(secret)[1:-1]
    twice = msgspec.json.encode(once.decode())[1:-1]
    return [secret.encode(), once, twice]


def test_the_table_is_broad() -> None:
    assert len(MASKED) + len(KEPT) >= 150
    assert len({t for t, _ in MASKED}) == len(MASKED) and len(set(KEPT)) == len(KEPT)


@pytest.mark.parametrize(("text", "secret"), MASKED, ids=[t[:40] for t, _ in MASKED])
def test_a_secret_after_its_name_is_masked(text: str, secret: str) -> None:
    assert secret in text
    assert secret not in redact_text(text), redact_text(text)
    for line in _lines(text):
        out = captured(line)
        assert not any(s in out for s in _escaped(secret)), out


@pytest.mark.parametrize("text", KEPT, ids=[t[:40] for t in KEPT])
def test_code_prose_and_placeholders_are_left_alone(text: str) -> None:
    assert redact_text(text) == text
    for line in _lines(text):
        assert captured(line) == line


def test_the_name_stays_and_only_the_value_is_masked() -> None:
    assert redact_text('"password": "my-secret-pass"') == '"password": "[REDACTED]"'
    assert redact_text("POSTGRES_PASSWORD: postgres\n") == "POSTGRES_PASSWORD: [REDACTED]\n"
    assert redact_text("token: bluebird # rotate") == "token: [REDACTED] # rotate"


# Words a passphrase is made of: ordinary ones, and the very words that name a secret or
# say a value is not real, which alone or as a bare label would stand for one.
_WORD = st.sampled_from(
    [
        *("correct", "horse", "battery", "staple", "tiger", "lily", "river", "orbit", "prod"),
        *("my", "super", "secret", "pass", "password", "token", "key", "api", "access", "db"),
        *("client", "hunter", "blue", "otter", "moon", "the", "of"),
    ]
) | st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=3, max_size=9)
_LABEL_WORDS = {"my", "secret", "pass", "password", "token", "key", "api", "access", "db"}
_LABEL_WORDS |= {"client", "the"}


@given(
    words=st.lists(_WORD, min_size=2, max_size=5),
    joint=st.sampled_from(["-", "_"]),
    form=st.sampled_from(
        [
            '"{name}": "{v}"',
            "{name}: '{v}'",
            '{name} = "{v}"',
            "{NAME}={v}",
            '{NAME}="{v}"',
            "{name}: {v}\n",
            "  {NAME}: {v}\n",
            "{name}={v}&next=1",
            "mysql -u root -p{v} db",
            "curl -u bob:{v} https://x.example",
        ]
    ),
    name=st.sampled_from(["password", "passwd", "secret", "token", "api_key", "db_pass"]),
)
@example(words=["my", "secret", "pass"], joint="-", form='"{name}": "{v}"', name="password")
@example(words=["super", "secret", "password"], joint="-", form="{name}: {v}\n", name="password")
@example(words=["prod", "key", "hunter"], joint="-", form='"{name}": "{v}"', name="api_key")
@example(words=["my", "secret", "pass"], joint="_", form="{NAME}={v}", name="password")
def test_a_passphrase_of_joined_words_is_masked_whatever_its_words(
    words: list[str], joint: str, form: str, name: str
) -> None:
    # A passphrase is a secret whether or not one of its words names one; only words that
    # are all a label's (``my-password``, ``api-key``) or say it is not real stand for one.
    from skillopsd._redact import _PROSE_PARTS, _stands_for_one

    phrase = joint.join(words)
    assume(not _stands_for_one(phrase.encode()))
    assume(not set(words) <= _LABEL_WORDS)
    text = form.format(name=name, NAME=name.upper(), v=phrase)
    if "'" not in form and '"' not in form and "=" not in form:
        # Unquoted after ``:``: prose (``token: read-only``) may stand where a value goes.
        assume(not any(w.encode() in _PROSE_PARTS for w in words))
    assert phrase not in redact_text(text), (text, redact_text(text))
    for line in _lines(text):
        out = captured(line)
        assert phrase.encode() not in out, out
        assert re.search(rb"\[REDACTED", out)


# Reviewer finding F2: a value after a secret's name is masked whatever characters it holds,
# in every syntax a transcript shows one in. Names as written in each syntax.
_F2_NAMES = st.sampled_from(
    [
        *("password", "passwd", "pwd", "secret", "token", "api_key", "db_password"),
        *("client_secret", "credentials", "auth_token", "access_key", "postgres_password"),
        "github_token",
    ]
)
# Where a value is delimited (quoted, ``NAME=value``, a URL query, an XML element), any value
# of the characters passwords are made of: with or without a digit, any case, symbols.
_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!@#%^*~_.-"
_ANY_VALUE = st.text(alphabet=_ALPHABET, min_size=8, max_size=40).filter(lambda v: v[0].isalnum())
_DELIMITED = [
    "{NAME}={v}",
    "export {NAME}={v}",
    "{NAME}='{v}'",
    '{NAME}="{v}" ./deploy.sh',
    "{name}: '{v}'",
    '  {name}: "{v}"\n',
    '{name} = "{v}"',
    '[db]\n{name} = "{v}"\n',
    '{{"{name}": "{v}"}}',
    '{{\n  "db": {{\n    "{name}": "{v}"\n  }}\n}}',
    "https://api.example.com/cb?{name}={v}&state=1",
    "<{name}>{v}</{name}>",
]
# Unquoted after ``:`` or a spaced ``=`` (YAML, INI, compose, a log), where code and prose also
# stand: a value no code or prose is written as, with no digit (what F2 found in clear).
_LETTERS = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=8)
# Random case: a lower-case letter alone between capitals (``NvD`` in ``wAwaIINYNvDMbZoO``).
# Camel case has that only at a two-letter word (``userIdToken``, ``getDbUrl``: kept, see
# below), so a value whose every such pair is one (``AAnDoAsA``) reads as camel case.
_RANDOM_CASE = _LETTERS.filter(
    lambda v: any(
        m.encode() not in _TWO_LETTER_WORDS for m in re.findall("(?=([A-Z][a-z])[A-Z])", v)
    )
)
_WITH_SYMBOLS = st.builds(
    lambda a, s, b: a + s + b,
    st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJ", min_size=2, max_size=12),
    st.sampled_from(list("@#%^!~")),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz!@#", min_size=1, max_size=12),
)
_LOOSE = [
    "{name}: {v}",
    "{name}: {v}\n",
    "services:\n  db:\n    environment:\n      {NAME}: {v}\n",
    "  {NAME}: {v}  # rotate monthly\n",
    "{name} = {v}\n",
    "[client]\nuser = root\n{name} = {v}\n",
]


def _assert_masked(text: str, value: str) -> None:
    out = redact_text(text)
    assert value not in out and "[REDACTED" in out, (text, out)
    # The envelope's own words may hold the value ('argument' in "arguments"): only an
    # occurrence beyond those counts.
    for line, envelope in zip(_lines(text), _lines(""), strict=True):
        got = captured(line)
        assert not any(got.count(s) > envelope.count(s) for s in _escaped(value)), got


@given(name=_F2_NAMES, value=_ANY_VALUE, form=st.sampled_from(_DELIMITED))
@example(name="password", value="wAwaIINYNvDMbZoO", form="{NAME}={v}")
@example(name="password", value="argument", form="{NAME}={v}")
@example(name="password", value="correcthorsebatterystaple", form='{{"{name}": "{v}"}}')
def test_a_delimited_value_after_a_secrets_name_is_masked_whatever_it_holds(
    name: str, value: str, form: str
) -> None:
    from skillopsd._redact import _stands_for_one

    # Placeholders stay: all capitals (an environment variable's name), a filler
    # (``xxx``, ``...``), a label or test word (``test-token``, ``change_me``).
    assume(not _stands_for_one(value.encode()))
    _assert_masked(form.format(name=name, NAME=name.upper(), v=value), value)


@given(
    name=_F2_NAMES,
    value=_RANDOM_CASE | _WITH_SYMBOLS | _LETTERS.map(str.lower),
    form=st.sampled_from(_LOOSE),
)
@example(name="postgres_password", value="wAwaIINYNvDMbZoO", form=_LOOSE[2])
@example(name="password", value="wAwaIINYNvDMbZoO", form="{name} = {v}\n")
@example(name="password", value="correcthorsebatterystaple", form="{name}: {v}\n")
@example(name="pwd", value="P@ss!word", form="{name} = {v}\n")
def test_an_unquoted_value_without_a_digit_is_masked(name: str, value: str, form: str) -> None:
    from skillopsd._redact import _PROSE, _stands_for_one

    assume(not _stands_for_one(value.encode()) and value.encode() not in _PROSE)
    if form == "{name} = {v}\n" and value.islower():
        # ``password = pw`` outside a section is code naming a variable: kept (see KEPT).
        assume(False)
    if form == "{name}: {v}" and value.islower():
        # Not ending its line, a lowercase word may be prose (``password: see below``).
        assume(False)
    _assert_masked(form.format(name=name, NAME=name.upper(), v=value), value)


# Docker's config.json and npm's .npmrc: base64 of ``user:password``, whatever both hold.
_CRED_PART = st.text(alphabet=_ALPHABET + " :/", min_size=1, max_size=30)


@given(
    user=_CRED_PART.filter(lambda u: ":" not in u),
    password=_CRED_PART,
    form=st.sampled_from(
        [
            '{{"auths": {{"registry.example.com": {{"auth": "{v}"}}}}}}',
            '{{\n  "auths": {{\n    "ghcr.io": {{\n      "auth": "{v}"\n    }}\n  }}\n}}',
            "_auth = {v}",
            "//registry.npmjs.org/:_auth={v}",
            "{{'auths': {{'quay.io': {{'auth': '{v}'}}}}}}",
            '{{\\"auths\\": {{\\"r.example\\": {{\\"auth\\": \\"{v}\\"}}}}}}',
        ]
    ),
)
def test_docker_and_npm_auth_blobs_are_masked(user: str, password: str, form: str) -> None:
    import base64

    blob = base64.b64encode(f"{user}:{password}".encode()).decode()
    assume(len(user) + len(password) >= 4)
    _assert_masked(form.format(v=blob), blob)


# Code names things in snake, camel (with acronyms and two-letter words) and upper case; after
# a spaced ``=`` outside an INI section such a name is a variable, a call, an attribute.
_CODE_WORD = st.sampled_from(
    [
        *("get", "user", "db", "id", "config", "value", "raw", "new", "http", "response"),
        *("io", "token", "secret", "password", "api", "key", "access", "cached", "default"),
        *("os", "ok"),
    ]
)


@given(
    words=st.lists(_CODE_WORD, min_size=1, max_size=4),
    style=st.sampled_from(["snake", "camel", "pascal", "acronym"]),
    name=_F2_NAMES,
    form=st.sampled_from(
        [
            "{name} = {v}\n",
            "    {name} = {v}",
            "{name} = {v}(cfg)\n",
            "{name} = self.{v}\n",
            "{name} = cfg.{v}.value\n",
            "{name} := {v}\n",
            "connect({name}={v}_{name})",
            "the {name} is {v}",
            "{name}: {v}(x)",
        ]
    ),
)
def test_code_naming_a_value_after_a_secrets_name_is_kept(
    words: list[str], style: str, name: str, form: str
) -> None:
    caps = [w.capitalize() for w in words]
    v = {
        "snake": "_".join(words),
        "camel": words[0] + "".join(caps[1:]),
        "pascal": "".join(caps),
        "acronym": words[0]
        + "".join(w.upper() if len(w) <= 4 else w.capitalize() for w in words[1:]),
    }[style]
    text = form.format(name=name, v=v)
    assert redact_text(text) == text
    for line in _lines(text):
        assert captured(line) == line


# Reviewer finding G6: a secret given by its syntax rather than by a name before it: SQL's
# password clauses, options that always take a password, a literal piped into a program that
# reads one on its standard input, commands that take one as an argument, a session's cookie.
# The value is masked whatever characters passwords are made of.
_BY_SYNTAX = [
    "psql -c \"ALTER USER app WITH PASSWORD '{v}';\"",
    "CREATE ROLE app LOGIN ENCRYPTED PASSWORD '{v}' VALID UNTIL 'infinity';",
    "mysql -e \"CREATE USER 'app'@'%' IDENTIFIED BY '{v}';\"",
    "ALTER USER 'root'@'localhost' IDENTIFIED WITH mysql_native_password BY '{v}';",
    "gpg --batch --pinentry-mode loopback --passphrase {v} -d backup.tar.gpg",
    "gpg --passphrase='{v}' -c notes.txt",
    "keytool -importkeystore -srckeystore a.p12 -srcstorepass {v} -deststorepass {v}",
    "jarsigner -keystore ks.jks -storepass {v} -keypass {v} app.jar alias",
    "app --db-pass {v} --db-host db",
    'wget --http-user=bob --http-password="{v}" https://x.example/f',
    "./admin -admin_pwd {v}",
    "echo '{v}' | sudo -S systemctl restart app",
    'echo -n "{v}" | sudo -k -S true',
    "printf '%s\\n' '{v}' | sudo -S apt-get update",
    "echo {v} | docker login -u me --password-stdin registry.example.com",
    "echo '{v}' | passwd --stdin deploy",
    "sudo -S apt-get update <<< '{v}'",
    "echo '{v}' | gh auth login --with-token",
    "gh auth login --with-token <<< '{v}'",
    "unzip -P '{v}' archive.zip",
    "rabbitmqctl add_user bob '{v}'",
    "net user deploy {v} /add",
    "gh secret set DEPLOY_TOKEN --body '{v}'",
    "curl -H 'Cookie: session={v}' https://app.example.com/admin",
    "curl -H 'Cookie: theme=dark; sessionid={v}; lang=en' https://x.example",
    "Set-Cookie: connect.sid={v}; Path=/; HttpOnly",
    'curl --cookie "remember_token={v}" https://x.example',
    '{{"headers": {{"Cookie": "auth_token={v}"}}}}',
    # Review H2.
    'sqlcmd -S db -U sa -P "{v}" -Q "SELECT 1"',
    "ldapmodify -x -D cn=admin,dc=corp -w '{v}' -f a.ldif",
    "security add-internet-password -a bob -s host -w '{v}'",
    "mysql -e \"SET PASSWORD = PASSWORD('{v}')\"",
    "aws configure set aws_secret_access_key '{v}'",
    "aws secretsmanager put-secret-value --secret-id x --secret-string '{v}'",
    "az keyvault secret set --vault-name kv --name p --value '{v}'",
    "poetry config http-basic.private bob '{v}'",
    "dotnet nuget add source https://x/index.json -u bob -p '{v}'",
    "smbclient //fs/share -U 'bob%{v}' -c ls",
    "keyring set svc bob <<< '{v}'",
    "printf '%s' '{v}' | docker secret create db_pw -",
    "ansible-playbook site.yml --vault-password-file <(printf '%s' '{v}')",
]


@given(value=_ANY_VALUE, form=st.sampled_from(_BY_SYNTAX))
@example(value="Qm7vR2xLp9TzK4wN8sHd", form=_BY_SYNTAX[0])
@example(value="marmalade", form="echo '{v}' | sudo -S systemctl restart app")
@example(value="P@ss!word.2", form="app --db-pass {v} --db-host db")
def test_a_secret_given_by_its_syntax_is_masked_whatever_it_holds(value: str, form: str) -> None:
    from skillopsd._redact import _stands_for_one

    assume(not _stands_for_one(value.encode()))
    _assert_masked(form.format(v=value), value)


# A name of a key that says it is a secret (``ENCRYPTION_KEY``, ``hmac_key``,
# ``Ocp-Apim-Subscription-Key``), in every delimited syntax.
_KEY_NAMES = st.sampled_from(
    [
        *("encryption_key", "encrypt_key", "enc_key", "crypto_key", "cipher_key", "hmac_key"),
        *("jwt_key", "license_key", "subscription_key", "app_encryption_key", "jwt_signing_key"),
    ]
)


@given(name=_KEY_NAMES, value=_ANY_VALUE, form=st.sampled_from(_DELIMITED))
@example(name="encryption_key", value="Rk3mW8vQ5zTx2NpL7hYc", form="export {NAME}={v}")
def test_a_value_after_a_key_name_that_says_secret_is_masked(
    name: str, value: str, form: str
) -> None:
    from skillopsd._redact import _stands_for_one

    assume(not _stands_for_one(value.encode()))
    _assert_masked(form.format(name=name, NAME=name.upper(), v=value), value)


# Where the name or the option is also an ordinary word (``key`` in a URL's query, ``pass``,
# ``--auth-token``, Oracle's unquoted ``IDENTIFIED BY``), a value that looks generated: eight
# characters or more, a digit.
_GENERATED = st.builds(
    lambda head, digit, tail: head + digit + tail,
    st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1),
    st.sampled_from("0123456789"),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", max_size=30),
).filter(lambda v: len(v) >= 8)


@given(
    value=_GENERATED,
    form=st.sampled_from(
        [
            'curl "https://maps.example.com/api?key={v}&q=1"',
            "https://www.googleapis.com/youtube/v3/search?part=id&key={v}",
            "pass={v}",
            "https://x.example/login?user=bob&pass={v}",
            "gh run --auth-token {v}",
            "deploy --github-token={v} --repo x",
            "cli --client-secret {v}",
            "tool --encryption-key {v}",
            "ALTER USER scott IDENTIFIED BY {v};",
            "vault login {v}",
            "vault login -no-print {v}",
        ]
    ),
)
@example(value="BYOvfZ8UzDzV8fUkkibj", form='curl "https://maps.example.com/api?key={v}&q=1"')
def test_a_generated_value_after_an_ordinary_word_is_masked(value: str, form: str) -> None:
    _assert_masked(form.format(v=value), value)


# Reviewer finding G7: library code masked as secrets. A variable passed to the keyword of its
# own name, an attribute in an expression, an authentication scheme's name, a grammar's
# repetition, a PEM header with no key under it, a label in a URL's password place.
@given(
    words=st.lists(_CODE_WORD, min_size=1, max_size=3),
    name=_F2_NAMES,
    lead=st.sampled_from(["", "_", "s", "_s", "my_", "default_"]),
    scheme=st.sampled_from(["Bearer", "Basic", "Digest", "Token", "bearer", "Negotiate", "Bot"]),
    kind=st.sampled_from(["", "RSA ", "EC ", "OPENSSH ", "ENCRYPTED ", "DSA "]),
    form=st.sampled_from(
        [
            "        {kw}={kw}, other=other,",
            "f({kw}={kw})",
            "    {kw}=self.{kw},",
            "    {kw}=self.{v}_{names})",
            "    {kw}=cfg.{name} or None,",
            "    {kw}=url.{name} if url else None,",
            "Endpoint.__init__(self, {kw}='{scheme}',",
            '{{"{kw}": "{scheme}"}}',
            "# {name}          = 1*{v}",
            "{kw} = 2*{v}",
            '_START = b"-----BEGIN {kind}PRIVATE KEY-----"',
            "-----BEGIN {kind}PRIVATE KEY-----\\n(base64 of the key goes here)\\n",
            ">>> parse_url('http://user:{name}@host.com:80/path')",
        ]
    ),
)
def test_library_code_about_secrets_is_kept(
    words: list[str], name: str, lead: str, scheme: str, kind: str, form: str
) -> None:
    v = "_".join(words)
    names = name if name.endswith("s") else name + "s"
    text = form.format(kw=lead + name, name=name, names=names, v=v, scheme=scheme, kind=kind)
    assert redact_text(text) == text
    for line in _lines(text):
        assert captured(line) == line
