"""The console in headless Chromium: sign in, watch a running campaign update live, answer an
intervention, see the XRD fit drawn. Screenshots of the main pages go to test-artifacts/console/."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import update

from labos.db import session_scope
from labos.db.records import ExperimentRow
from labos.db.repository import record_event
from tests.conftest import REQUIRE_BROWSER
from tests.console.conftest import ARTIFACTS
from tests.console.seed import PASSWORDS, EventPump

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _chromium() -> str | None:
    for candidate in (os.environ.get("LABOS_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


@pytest.fixture(scope="session")
def browser():
    path = _chromium()
    if path is None:
        msg = "Chromium is not installed: apt-get install chromium to run the browser tests"
        if REQUIRE_BROWSER:
            pytest.fail(msg)
        pytest.skip(msg)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Visit:
    """A signed-in page that records script errors and any request leaving the console's host."""

    def __init__(self, browser, server, user: str) -> None:
        self.base = server.url
        self.context = browser.new_context(viewport={"width": 1440, "height": 900})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.outside: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        if os.environ.get("LABOS_DEBUG_BROWSER"):
            self.page.on(
                "request",
                lambda r: print(
                    "REQ",
                    r.method,
                    r.url[:90],
                    r.headers.get("cookie", "")[:30],
                    r.headers.get("sec-fetch-site"),
                    flush=True,
                ),
            )
            self.page.on(
                "response",
                lambda r: print(
                    "RESP",
                    r.status,
                    r.url[:60],
                    [h for h in r.headers_array() if h["name"].lower() in ("set-cookie", "location")],
                    flush=True,
                ),
            )
            self.page.on("requestfinished", lambda r: print("DONE", r.url[:90], flush=True))
        self.page.on("request", self._check_host)
        self.page.goto(f"{self.base}/login")
        self.page.fill("#username", user)
        self.page.fill("#password", PASSWORDS[user])
        self.page.click("button[type=submit]")
        self.page.wait_for_url(f"{self.base}/")

    def _check_host(self, request) -> None:
        # (observed rather than intercepted: Chromium drops cookies set on redirects under interception)
        if urlsplit(request.url).hostname not in ("127.0.0.1", "localhost") and not request.url.startswith(
            "data:"
        ):
            self.outside.append(request.url)

    def open(self, path: str):
        self.page.goto(f"{self.base}{path}")
        return self.page

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.wait_for_timeout(300)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    def close(self) -> None:
        assert self.outside == [], f"the console fetched from outside: {self.outside}"
        assert self.errors == [], f"script errors: {self.errors}"
        self.context.close()


@pytest.fixture
def visit(browser, live_server):
    opened: list[Visit] = []

    def make(user: str) -> Visit:
        v = Visit(browser, live_server, user)
        opened.append(v)
        return v

    yield make
    for v in opened:
        v.close()


def _traces(page, selector: str) -> int:
    return page.eval_on_selector(selector, "el => (el.data || []).length")


def test_running_campaign_updates_live(visit, seeded):
    v = visit("otto")
    page = v.page
    page.wait_for_selector("#campaigns a")
    v.shot("overview")
    page.click("#campaigns a")
    page.wait_for_selector("#experiments tbody tr")
    assert page.inner_text("#kpis").count("1 / 3") == 1
    page.wait_for_function(
        "() => document.querySelector('#yield-plot').data && document.querySelector('#yield-plot').data.length >= 2"
    )
    page.wait_for_selector("#live.on")

    pump = EventPump(seeded.factory, seeded.running, every_s=0.3)
    pump.start()
    try:
        page.wait_for_selector("#feed li[data-kind='task.progress']", timeout=15_000)
        assert "live tick" in page.inner_text("#feed")
        # an experiment changes state in the lab: its row follows without a reload
        queued = seeded.experiments[6]
        with session_scope(seeded.factory) as s:
            s.execute(update(ExperimentRow).where(ExperimentRow.id == queued).values(status="running"))
            record_event(s, "experiment.started", queued)
        row = f"#experiments tr[data-key='{queued}']"
        page.wait_for_function(
            "sel => document.querySelector(sel) && document.querySelector(sel).innerText.includes('running')",
            arg=row,
            timeout=15_000,
        )
        assert "4" in page.inner_text("#kpis")  # in progress went from 3 to 4
    finally:
        pump.stop.set()
        pump.join(5)
    assert pump.sent, "the pump wrote no events"
    v.shot("campaign")


def test_experiment_page_draws_the_xrd_fit_and_the_furnace(visit, seeded):
    v = visit("vera")
    page = v.open(f"/experiments/{seeded.with_xrd}")
    page.wait_for_function(
        "() => document.querySelector('#xrd-plot').data && document.querySelector('#xrd-plot').data.length > 0"
    )
    names = page.eval_on_selector("#xrd-plot", "el => el.data.map(t => t.name)")
    assert names[0] == "observed" and any(n.startswith("fit") for n in names) and "difference" in names
    assert any("reflections" in n for n in names)
    assert page.locator("#xrd-plot .scatterlayer .trace").count() >= 4  # drawn in the SVG, not just data
    assert page.locator("#xrd-plot .legendtext").filter(has_text="LiMn").count() >= 1
    page.wait_for_function("() => document.querySelector('#furnace-plot').data")
    assert _traces(page, "#furnace-plot") == 1  # setpoint only: this run logged no readings
    page.wait_for_function("() => document.querySelector('#phase-plot').data")
    assert "82.0" in page.inner_text("#phases")
    assert "reaction energy" in page.inner_text("#explanation")
    assert page.locator("#timeline li").count() >= 6
    v.shot("experiment")

    page = v.open(f"/experiments/{seeded.running}")
    page.wait_for_function(
        "() => document.querySelector('#furnace-plot').data && document.querySelector('#furnace-plot').data.length == 2"
    )
    n0 = page.eval_on_selector("#furnace-plot", "el => el.data[1].x.length")
    page.wait_for_selector("#live.on")
    with session_scope(seeded.factory) as s:
        for k in range(200, 230, 5):
            record_event(
                s,
                "furnace.reading",
                seeded.running,
                furnace="furnace_1",
                temperature_c=850.0,
                t_min=float(k),
                experiment_id=seeded.running,
            )
    page.wait_for_function(
        f"() => document.querySelector('#furnace-plot').data[1].x.length > {n0}", timeout=15_000
    )
    assert "No diffraction pattern yet" in page.inner_text("#xrd-plot")
    v.shot("experiment-running")


def test_operator_answers_interventions(visit, seeded):
    if not seeded.lab:
        pytest.skip("the lab OS tables are not in this database")
    v = visit("otto")
    page = v.open("/interventions")
    card = page.locator(f".iv[data-id='{seeded.interventions[1]}']")
    card.wait_for()
    v.shot("interventions")
    card.locator("button[data-option='refilled']").click()
    page.wait_for_selector(".toast.bad")
    assert "needs the lot number" in page.inner_text("#toasts")
    card.locator("input[name='lot']").fill("L-42")
    card.locator("input[name='mg']").fill("25000")
    card.locator("input[aria-label='note']").fill("new bottle from stores")
    card.locator("button[data-option='refilled']").click()
    page.wait_for_selector(f".iv[data-id='{seeded.interventions[1]}']", state="detached", timeout=15_000)
    page.wait_for_function("() => document.querySelector('#answered').innerText.includes('otto')")
    assert "refilled" in page.inner_text("#answered")
    # the other request, answered from the overview's link target, clears the furnace fault
    page.locator(f".iv[data-id='{seeded.interventions[0]}'] button[data-option='retry']").click()
    page.wait_for_function("() => !document.querySelector('#open .iv')", timeout=15_000)
    page.wait_for_function("() => document.getElementById('iv-count').hidden === true")
    v.shot("interventions-answered")

    audit = v.open("/audit")
    audit.wait_for_selector("#audit tbody tr")
    text = audit.inner_text("#audit")
    assert "intervention.answer" in text and "otto" in text and "new bottle from stores" in text
    v.shot("audit")
    devices = v.open("/devices")
    devices.wait_for_selector("#devices tbody tr")
    assert "fault" not in devices.inner_text("#devices")  # furnace_2 is back in service
    v.shot("devices")


def test_viewer_sees_but_cannot_act(visit, seeded):
    v = visit("vera")
    page = v.open("/devices")
    page.wait_for_selector("#lab-controls button")
    assert page.locator("#lab-controls button").evaluate_all("bs => bs.every(b => b.disabled)")
    assert page.locator("nav a[href='/audit']").count() == 0
    if seeded.lab:
        page = v.open("/interventions")
        page.wait_for_selector("#open .iv")
        assert page.locator("#open .iv button").evaluate_all("bs => bs.every(b => b.disabled)")


def test_screenshots_of_the_other_pages(visit, seeded):
    v = visit("ada")
    for path, ready, name in (
        ("/samples", "#samples tbody tr", "samples"),
        (f"/samples/smp-{seeded.with_xrd[4:]}", "#history li", "sample"),
        ("/experiments", "#experiments tbody tr", "experiments"),
        ("/inventory", "#inventory table, #inventory .empty", "inventory"),
        ("/admin/users", "#users tbody tr", "users"),
        ("/docs/api", ".endpoint", "api-docs"),
    ):
        v.open(path).wait_for_selector(ready)
        v.shot(name)
    page = v.open("/admin/users")
    page.wait_for_selector("#users tbody tr")
    page.fill("#u-name", "nina")
    page.fill("#u-pass", "nina-operator-pw")
    page.select_option("#u-role", "operator")
    page.click("#add-user button[type=submit]")
    page.wait_for_function("() => document.querySelector('#users').innerText.includes('nina')")
    login = v.context.browser.new_context().new_page()
    login.goto(f"{v.base}/login")
    login.screenshot(path=str(ARTIFACTS / "login.png"))
    login.context.close()
