"""``skillopsctl serve`` in a real browser (Playwright driving the system Chromium) on the real
corpus plus a skill with versions, labels, evals and an A/B test: every page loads with no
console error, its numbers are the CLI's ``--json``, annotating in the page appends the CLI's
event, and a request without the token, with a wrong one, from a foreign Host or a foreign
form is refused. A screenshot of each page is kept (``$SKILLOPS_ARTIFACTS`` or
test-artifacts/)."""

from __future__ import annotations

import http.client
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ._dashboard import DashboardHome, Served, artifacts_dir, launch_chromium
from ._shared import skip_or_fail

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> DashboardHome:
    built = DashboardHome(tmp_path_factory.mktemp("dashboard"))
    built.build()
    return built


@pytest.fixture(scope="module")
def served(home: DashboardHome) -> Iterator[Served]:
    server = Served(home.env)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("needs the playwright package (pip install -e '.[test]')")
    with sync_playwright() as p:
        chromium = launch_chromium(p)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, served: Served) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.errors = []  # console errors and uncaught exceptions, checked by the tests
    tab.on("console", lambda m: tab.errors.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: tab.errors.append(str(e)))
    response = tab.goto(served.url)
    assert response is not None and response.status == 200
    yield tab
    context.close()


def _open(page: Any, served: Served, path: str) -> Any:
    response = page.goto(served.base + path)
    assert response is not None and response.status == 200, (path, response and response.status)
    return response


def _int(page: Any, selector: str, attribute: str = "data-value") -> int:
    return int(page.locator(selector).first.get_attribute(attribute))


def test_every_page_loads_without_console_errors(
    page: Any, served: Served, home: DashboardHome
) -> None:
    triage = home.session_id(home.natives[1])
    failing = next(s for s in home.json("sessions") if s["outcomes"]["failure"])
    pages = {
        "overview": "/",
        "overview-all": "/?days=all",
        "sessions": "/sessions",
        "sessions-filtered": "/sessions?agent=claude&q=triage",
        "sessions-page-2": "/sessions?page=2",
        "session": f"/session/{triage}",
        "session-failure": f"/session/{failing['session_id']}",
        "skills": "/skills",
        "skill": "/skill/triage",
        "skill-corpus": "/skill/simplify",
        "queue": "/queue",
        "queue-skill": "/queue?skill=triage",
    }
    out = artifacts_dir()
    for name, path in pages.items():
        _open(page, served, path)
        assert page.locator("main h1").count() == 1, name
        assert not page.errors, (name, page.errors)
        page.screenshot(path=str(out / f"{name}.png"), full_page=True)
        assert (out / f"{name}.png").stat().st_size > 5_000
    # Pages that do not exist say so, with the status a browser shows.
    response = page.goto(served.base + "/session/no-such-session")
    assert response.status == 404
    assert "unknown session" in page.locator("#error").inner_text()
    response = page.goto(served.base + "/sessions?since=yesterday-ish")
    assert response.status == 400 and "since" in page.locator("#error").inner_text()


def test_numbers_equal_the_cli_json(page: Any, served: Served, home: DashboardHome) -> None:
    sessions = home.json("sessions")
    _open(page, served, "/?days=all")
    assert _int(page, "#total-sessions") == len(sessions)
    verdicts = Counter(s["verdict"] or "none" for s in sessions)
    for verdict in ("success", "failure", "abandoned", "none"):
        assert _int(page, f"#verdict-{verdict}") == verdicts.get(verdict, 0), verdict
    tokens = sum((s["tokens"]["input"] or 0) + (s["tokens"]["output"] or 0) for s in sessions)
    assert _int(page, "#total-tokens") == tokens

    _open(page, served, "/sessions")
    assert _int(page, "#session-count") == len(sessions)
    rows = page.locator("tr[data-session]")
    assert rows.count() == 50
    for i in range(rows.count()):
        row, want = rows.nth(i), sessions[i]
        assert row.get_attribute("data-session") == want["session_id"]
        for outcome in ("success", "failure", "blocked", "unknown"):
            got = row.locator(f'[data-field="{outcome}"]').inner_text()
            assert int(got) == want["outcomes"][outcome]
        t = want["tokens"]
        total = (
            ""
            if t["input"] is None and t["output"] is None
            else str((t["input"] or 0) + (t["output"] or 0))
        )
        assert row.locator('[data-field="tokens"]').get_attribute("data-value") == total

    for query, args in (
        ("agent=codex", ["--agent", "codex"]),
        ("skill=triage", ["--skill", "triage"]),
        ("verdict=failure", ["--verdict", "failure"]),
        ("q=TRIAGE+issue+4", ["--search", "TRIAGE issue 4"]),
        ("since=2026-06-01&until=2026-06-18", ["--since", "2026-06-01", "--until", "2026-06-18"]),
    ):
        _open(page, served, f"/sessions?{query}")
        want = home.json("sessions", *args)
        assert _int(page, "#session-count") == len(want), query
        shown = page.locator("tr[data-session]").evaluate_all(
            "rows => rows.map(r => r.dataset.session)"
        )
        assert shown == [s["session_id"] for s in want][:50], query
    assert len(home.json("sessions", "--search", "TRIAGE issue 4")) == 5  # prompts, any case

    _open(page, served, "/skills")
    for s in home.json("skills"):
        row = page.locator(f'tr[data-skill="{s["skill"]}"]')
        assert int(row.locator('[data-field="sessions"]').inner_text()) == s["sessions"]
        cell = row.locator('[data-field="success"]')
        assert int(cell.get_attribute("data-k")) == s["success"]["k"]
        assert int(cell.get_attribute("data-n")) == s["success"]["n"]

    for skill in ("triage", "simplify"):
        _open(page, served, f"/skill/{skill}")
        report = home.json("skill", "show", skill)
        assert page.locator("#reading").inner_text().endswith(report["reading"])
        for v in report["versions"]:
            row = page.locator(f'#versions tr[data-hash="{v["content_hash"]}"]')
            assert int(row.locator('[data-field="sessions"]').inner_text()) == len(v["sessions"])
            for field in ("success", "failure"):
                cell = row.locator(f'[data-field="{field}"]')
                assert int(cell.get_attribute("data-k")) == v["verdicts"][field]["k"]
                assert int(cell.get_attribute("data-n")) == v["verdicts"][field]["n"]

    _open(page, served, "/skill/triage")
    store = home.json("skill", "versions", "triage")
    for v in store["versions"]:
        row = page.locator(f'#ab-versions tr[data-version="{v["tag"]}"]')
        assert int(row.locator('[data-field="executions"]').inner_text()) == v["executions"]
    assert page.locator("#ab-state").inner_text() in ("continue", "promote", "retire")
    assert page.locator("#ab svg circle").count() == 12  # one point per execution of the test
    runs = [e for e in home.json("lineage", "triage") if e["kind"] == "eval_run"]
    cells = page.locator("#eval-matrix td.cell")
    assert cells.count() >= 2 * len(runs) and page.locator("#eval-matrix td.fail").count() >= 1
    assert page.locator("#lineage li").count() == len(home.json("lineage", "triage"))

    failing = next(s for s in sessions if s["outcomes"]["failure"])
    _open(page, served, f"/session/{failing['session_id']}")
    shown_calls = page.locator("#calls")
    for outcome, n in failing["outcomes"].items():
        assert int(shown_calls.get_attribute(f"data-{outcome}")) == n
    tree = home.json("session", "show", failing["session_id"])
    assert page.locator("li.span").count() == len(tree["spans"])
    bad = [s for s in tree["spans"] if s["outcome"] in ("failure", "blocked")]
    assert page.locator("li.o-failure, li.o-blocked").count() == len(bad)
    assert page.locator("li.o-failure .reason").first.is_visible()


def test_annotating_in_the_page_appends_the_clis_event(
    page: Any, served: Served, home: DashboardHome
) -> None:
    target = home.session_id(home.natives[2])
    before = home.json("annotations", "--session", target)
    _open(page, served, f"/session/{target}")
    page.check('input[name="label"][value="good"]')
    page.select_option('select[name="skill"]', "triage")
    page.fill('input[name="note"]', "asked for info — as it should <b>")
    page.click("#annotate-form button[type=submit]")
    page.wait_for_selector("#annotated")
    assert not page.errors
    after = home.json("annotations", "--session", target)
    assert len(after) == len(before) + 1
    added = after[0]
    assert (added["label"], added["skill"], added["note"]) == (
        "good",
        "triage",
        "asked for info — as it should <b>",
    )
    assert page.locator("#label").inner_text() == "good"
    assert "<b>" in page.locator("table.notes").inner_text()  # escaped, shown as text

    # The labelling queue: the keyboard labels the current session and moves on.
    _open(page, served, "/queue?skill=triage")
    pending = _int(page, "#pending")
    first = page.locator("#queue .item.current").get_attribute("data-session")
    page.keyboard.press("j")
    second = page.locator("#queue .item.current").get_attribute("data-session")
    assert second != first
    # The page is already at this URL: wait for the POST's redirect itself, not for the URL.
    with page.expect_navigation(url="**/queue?skill=triage"):
        page.keyboard.press("b")
    page.wait_for_load_state("load")
    assert _int(page, "#pending") == pending - 1
    labelled = home.json("annotations", "--session", second)
    assert (labelled[0]["label"], labelled[0]["skill"]) == ("bad", "triage")
    assert not page.errors

    # A label the CLI refuses is refused here too, with the CLI's words, and nothing appended.
    count = len(home.json("annotations"))
    form = page.locator("#queue form").first
    csrf = form.locator('input[name="csrf"]').get_attribute("value")
    response = page.request.post(
        f"{served.base}/session/{first}/annotate",
        form={"csrf": csrf, "label": "excellent"},
        headers={"Origin": served.base},
    )
    assert response.status == 400 and "label must be one of" in response.text()
    response = page.request.post(
        f"{served.base}/session/{first}/annotate",
        form={"csrf": csrf, "label": "good", "skill": "simplify"},
        headers={"Origin": served.base},
    )
    assert response.status == 400 and "did not load skill" in response.text()
    assert len(home.json("annotations")) == count


def _request(
    served: Served,
    method: str,
    path: str,
    *,
    host: str | None = None,
    headers: dict[str, str] | None = None,
    body: str | None = None,
) -> tuple[int, str, dict[str, str]]:
    address = served.base.removeprefix("http://").rsplit(":", 1)[0]
    conn = http.client.HTTPConnection(address, served.port, timeout=30)
    try:
        conn.putrequest(method, path, skip_host=True)
        conn.putheader("Host", host or f"127.0.0.1:{served.port}")
        for key, value in (headers or {}).items():
            conn.putheader(key, value)
        data = body.encode() if body is not None else None
        if data is not None:
            conn.putheader("Content-Type", "application/x-www-form-urlencoded")
            conn.putheader("Content-Length", str(len(data)))
        conn.endheaders(data)
        response = conn.getresponse()
        return response.status, response.read().decode(), dict(response.getheaders())
    finally:
        conn.close()


def test_token_host_and_csrf_are_enforced(served: Served, home: DashboardHome) -> None:
    ok = f"/?token={served.token}"
    status, _, headers = _request(served, "GET", ok)
    assert status == 303 and headers["Location"] == "/"
    cookie = headers["Set-Cookie"].split(";", 1)[0]
    assert "HttpOnly" in headers["Set-Cookie"] and "SameSite=Strict" in headers["Set-Cookie"]
    assert _request(served, "GET", "/sessions", headers={"Cookie": cookie})[0] == 200
    assert (
        _request(served, "GET", "/", host=f"localhost:{served.port}", headers={"Cookie": cookie})[0]
        == 200
    )
    refused = [
        _request(served, "GET", "/"),  # no token
        _request(served, "GET", "/sessions?token=" + served.token[:-1] + "x"),  # wrong token
        _request(served, "GET", "/", headers={"Cookie": cookie + "x"}),
        _request(served, "GET", "/static/app.css"),  # assets too
        # DNS rebinding: the right token, but a page of another name reached this port.
        _request(served, "GET", ok, host=f"attacker.example:{served.port}"),
        _request(served, "GET", "/", host="attacker.example", headers={"Cookie": cookie}),
        _request(
            served, "GET", "/", host=f"127.0.0.1:{served.port + 1}", headers={"Cookie": cookie}
        ),
    ]
    assert [r[0] for r in refused] == [403] * len(refused), refused
    assert "token" in refused[0][1] and "Host" in refused[4][1]

    target = home.session_id(home.natives[3])
    before = len(home.json("annotations"))
    form = urllib.parse.urlencode({"label": "good"})
    for headers, body in (
        ({"Cookie": cookie}, form),  # no CSRF token
        ({"Cookie": cookie}, form + "&csrf=0000"),
        ({}, form),  # no cookie
    ):
        status, text, _ = _request(
            served, "POST", f"/session/{target}/annotate", headers=headers, body=body
        )
        assert status == 403, text
    # The right CSRF token from a page of another origin (its Origin header) is refused too.
    status, page_html, _ = _request(served, "GET", f"/session/{target}", headers={"Cookie": cookie})
    csrf = page_html.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    status, _, _ = _request(
        served,
        "POST",
        f"/session/{target}/annotate",
        headers={"Cookie": cookie, "Origin": "http://attacker.example"},
        body=form + f"&csrf={csrf}",
    )
    assert status == 403
    assert len(home.json("annotations")) == before
    status, _, headers = _request(
        served,
        "POST",
        f"/session/{target}/annotate",
        headers={"Cookie": cookie, "Origin": f"http://127.0.0.1:{served.port}"},
        body=form + f"&csrf={csrf}",
    )
    assert status == 303 and len(home.json("annotations")) == before + 1
    # Every answer forbids framing and loading anything from elsewhere.
    _, _, headers = _request(served, "GET", "/", headers={"Cookie": cookie})
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert "default-src 'self'" in headers["Content-Security-Policy"]


def test_serve_refuses_an_unspecified_address_and_warns_off_loopback(
    home: DashboardHome, tmp_path: Path
) -> None:
    import subprocess

    from .conftest import console_script

    result = subprocess.run(
        [console_script("skillopsctl"), "serve", "--host", "0.0.0.0"],
        env=home.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "name the one address" in result.stderr
    assert "Traceback" not in result.stderr
    missing = subprocess.run(
        [console_script("skillopsctl"), "--db", str(tmp_path / "none.db"), "serve"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2 and "no database there" in missing.stderr
    # An address that cannot be listened on names the port it tried: the default one when
    # none was given, not "None" (review K14).
    for args, port in (
        (["--host", "999.1.1.1"], 8470),
        (["--host", "999.1.1.1", "--port", "9"], 9),
    ):
        bad = subprocess.run(
            [console_script("skillopsctl"), "serve", *args],
            env=home.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert bad.returncode == 2 and bad.stdout == "", bad.stderr
        assert bad.stderr.count("\n") == 1, bad.stderr
        assert f"cannot listen on 999.1.1.1:{port}: " in bad.stderr and "None" not in bad.stderr
    # Another loopback address is still loopback: no warning; the URL names it.
    server = Served(home.env, "--host", "127.0.0.2")
    try:
        assert server.base.startswith("http://127.0.0.2:")
        assert (
            _request(server, "GET", f"/?token={server.token}", host=f"127.0.0.2:{server.port}")[0]
            == 303
        )
    finally:
        server.stop()
    assert "warning" not in (server.proc.stderr.read() if server.proc.stderr else "")


def test_static_assets_ship_in_the_package() -> None:
    from importlib import resources

    web = resources.files("skillopsd.web")
    for name in ("static/app.css", "static/app.js", "templates/base.html"):
        assert (web / name).is_file(), name
    text = (web / "templates" / "base.html").read_text()
    assert "http" not in text  # nothing fetched from elsewhere
