"""The console in a real browser: Debian's Chromium driven by Playwright against the app
under uvicorn (a background thread, a free port on 127.0.0.1, a migrated SQLite store).

Skips when Chromium or Playwright is missing - but fails when CI=true, where both must be
there. Screenshots of each step go to $JINGXIN_ARTIFACTS (else tests/artifacts/console/).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
IN_CI = os.environ.get("CI", "").lower() == "true"
ARTIFACTS = Path(os.environ.get("JINGXIN_ARTIFACTS")
                 or Path(__file__).resolve().parents[1] / "artifacts" / "console")  # fmt: skip


def _need(condition: bool, why: str) -> None:
    if not condition:
        if IN_CI:
            pytest.fail(f"{why} (CI=true: the browser test must run)")
        pytest.skip(why)


def _sync_playwright():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _need(False, "playwright is not installed")
    return sync_playwright


@dataclass
class Served:
    url: str
    api: object  # tests.e2e.api.conftest.Api


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


SUBSCRIBERS = 1000
TEMPLATE = {"code": "promo.data", "category": "marketing", "body": "流量包特惠，回复1办理。"}


def subscribers(n: int):
    """``n`` active subscribers: all a status segment reads."""
    import pyarrow as pa

    from jingxin.data.warehouse.schema import TABLES

    schema = TABLES["subscribers"].schema
    data = {
        "subscriber_id": list(range(1, n + 1)), "msisdn": [f"+861390{i:07d}" for i in range(n)],
        "carrier": ["china_mobile"] * n, "plan_id": ["P1", "P2"] * (n // 2),
        "payment": ["prepaid"] * n, "status": ["active"] * n, "gender": [None] * n,
        "birthday": [None] * n, "entry_date": [dt.date(2020, 1, 1)] * n,
        "contract_end": [None] * n, "star_level": [1] * n, "region": ["浦东新区"] * n,
        "handset_model": [None] * n, "handset_generation": [4] * n, "app_user": [True] * n,
        "suspended_since": [None] * n,
    }  # fmt: skip
    return pa.table({f.name: pa.array(data[f.name], f.type) for f in schema}, schema=schema)


def approved_template(api) -> None:
    admin = api.as_user("admin")
    made = admin.post("/api/v1/templates", json=TEMPLATE)
    assert made.status_code == 201, made.text
    for step in ("submit", "approve"):
        done = admin.post(f"/api/v1/templates/{made.json()['id']}/{step}", json={})
        assert done.status_code == 200, done.text


@pytest.fixture(scope="module")
def served(tmp_path_factory, migrated_templates) -> Iterator[Served]:
    """The app under uvicorn, shared by this module's tests (each has its own browser
    context, so its own session)."""
    import uvicorn
    from argon2 import PasswordHasher

    from jingxin.access import passwords
    from jingxin.config import WarehouseSettings
    from jingxin.data.warehouse.connection import open_duckdb
    from tests.e2e.api.conftest import make_api

    passwords.use_hasher(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    tmp_path = tmp_path_factory.mktemp("console")
    path = tmp_path / "jingxin.db"
    shutil.copyfile(migrated_templates["sqlite"], path)
    warehouse = tmp_path / "warehouse.duckdb"
    wh = open_duckdb(warehouse)
    wh.con.create_table("subscribers", subscribers(SUBSCRIBERS))
    wh.close()
    api, client = make_api(f"sqlite:///{path}", home=tmp_path,
                           warehouse=WarehouseSettings(path=str(warehouse)))  # fmt: skip
    approved_template(api)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(client.app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))  # fmt: skip
    thread = threading.Thread(target=server.run, name="console-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield Served(url=f"http://127.0.0.1:{port}", api=api)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        api.store.dispose()


@pytest.fixture(scope="module")
def browser():
    _need(Path(CHROMIUM).exists(), f"{CHROMIUM} is not installed")
    sync_playwright = _sync_playwright()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=["--no-sandbox", "--disable-gpu"])  # fmt: skip
        yield launched
        launched.close()


@pytest.fixture
def page(served, browser):
    context = browser.new_context(base_url=served.url, viewport={"width": 1280, "height": 900},
                                  locale="zh-CN")  # fmt: skip
    context.set_default_timeout(5_000)
    page = context.new_page()
    problems: list[str] = []
    # Script errors and CSP refusals; not the HTTP errors the pages show as notices.
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error"
            and not msg.text.startswith("Failed to load resource") else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.problems = problems  # type: ignore[attr-defined]
    yield page
    context.close()


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def settled(page) -> None:
    """Wait for the page's API requests to be answered (console.js counts them)."""
    page.locator("html[data-pending='0']").wait_for(state="attached")


def log_in(page, served, role: str = "marketer") -> None:
    from tests.e2e.api.conftest import PASSWORD

    page.goto("/")
    page.wait_for_url("**/console/login?next=*")
    shot(page, "01-login")
    page.fill('input[name="username"]', served.api.username(role))
    page.fill('input[name="password"]', PASSWORD)
    page.click('[data-testid="login-submit"]')
    page.wait_for_url("**/console/")


def test_log_in_and_see_the_dashboard(served, page):
    from playwright.sync_api import expect

    # Given a wrong password, Then the form says so
    page.goto("/console/login")
    page.fill('input[name="username"]', served.api.username("marketer"))
    page.fill('input[name="password"]', "not the password")
    page.click('[data-testid="login-submit"]')
    expect(page.get_by_test_id("login-error")).to_contain_text("用户名或密码错误")
    # When logging in, Then the dashboard with the marketer's nav
    log_in(page, served)
    expect(page.locator("h1")).to_contain_text("今日概览")
    expect(page.locator('[data-nav="campaigns"]')).to_be_visible()
    settled(page)
    shot(page, "02-dashboard")
    # English by the toggle, kept on the next page
    page.click('[data-testid="lang-toggle"]')
    expect(page.locator("h1")).to_contain_text("Today")
    page.click('[data-nav="campaigns"]')
    expect(page.locator("h1")).to_have_text("Campaigns")
    assert page.problems == [], page.problems  # no script errors, no CSP refusals
    # Log out: back to the form, the console closed
    page.click('[data-testid="logout"]')
    page.wait_for_url("**/console/login")
    page.goto("/console/")
    page.wait_for_url("**/console/login?next=*")


PAGES = ["/console/", "/console/campaigns", "/console/campaigns/new", "/console/campaigns/1",
         "/console/templates", "/console/fences", "/console/fences/1", "/console/hall",
         "/console/probes", "/console/workorders"]  # fmt: skip


def test_every_page_loads_without_script_errors(served, page):
    from playwright.sync_api import expect

    # Given an admin (every button shown), When each page loads and its fetches settle,
    # Then no script error and nothing refused by the Content-Security-Policy
    log_in(page, served, role="admin")
    for path in PAGES:
        page.goto(path + "?lang=en")
        settled(page)
        shot(page, "page-" + (path.strip("/").replace("/", "-") or "console"))
        assert page.problems == [], (path, page.problems)
    # the hall's menu editor shows why a bad menu is refused (the API's 422)
    page.goto("/console/hall")
    settled(page)
    # the editor loads the current menu itself: edit only once it has (or the load would
    # overwrite the edit, and a valid menu be saved)
    expect(page.locator('textarea[name="menu"]')).to_have_value(re.compile("service_number"))
    page.fill('textarea[name="menu"]', "zones: [unclosed")
    page.click('[data-action="save"]')
    expect(page.locator('[data-role="menu-status"] .notice.error').first).to_contain_text("10086")
    shot(page, "page-console-hall-refused")


def test_a_campaign_through_the_wizard(served, page):
    from playwright.sync_api import expect

    page.on("dialog", lambda dialog: dialog.accept())  # "go ahead?"
    log_in(page, served)
    page.click('[data-nav="campaigns"]')
    page.click('[data-testid="new-campaign"]')
    page.wait_for_url("**/console/campaigns/new")
    # 1 the audience: the prefilled segment (active subscribers), counted in the warehouse
    page.click('[data-action="count"]')
    expect(page.get_by_test_id("segment-count")).to_have_text(f"{SUBSCRIBERS:,}")
    shot(page, "03-wizard-segment")
    # 2 the message: a body counted live (parts, review) ...
    page.fill('[data-testid="body"]', "尊敬的客户，" + "流量包限时特惠，" * 9 + "回复1办理。")
    expect(page.locator('[data-step="template"] [data-out="parts"]')).to_have_text("2")
    expect(page.locator('[data-step="template"] [data-out="encoding"]')).to_have_text("ucs2")
    shot(page, "04-wizard-live-counter")
    # ... then the approved template after all
    page.select_option('select[name="code"]', TEMPLATE["code"])
    # 3 name, hold-out, preview: count, parts, cost
    page.fill('[data-testid="campaign-name"]', "五一流量包")
    page.select_option('select[name="holdout"]', "0.1")
    page.click('[data-action="preview"]')
    expect(page.locator('[data-out="recipients"]')).to_have_text(f"{SUBSCRIBERS:,}")
    expect(page.locator('[data-out="cost"]')).not_to_have_text("–")
    expect(page.locator('[data-out="example"]')).to_contain_text("流量包特惠")
    shot(page, "05-wizard-preview")
    # 4 launch now: created, scheduled, and on to its page
    page.click('[data-testid="launch"]')
    page.wait_for_url(re.compile(r".*/console/campaigns/\d+$"))
    expect(page.get_by_test_id("campaign-status")).to_have_text("发送中")
    expect(page.locator('[data-count="messages"]')).to_have_text(f"{SUBSCRIBERS - 100:,}")
    expect(page.locator('[data-count="held_out"]')).to_have_text("100")
    settled(page)
    shot(page, "06-campaign")
    # pause and resume from its page
    page.click('[data-control="pause"]')
    expect(page.get_by_test_id("campaign-status")).to_have_text("已暂停")
    page.click('[data-control="resume"]')
    expect(page.get_by_test_id("campaign-status")).to_have_text("发送中")
    expect(page.get_by_test_id("report")).to_have_attribute("href", re.compile(r"format=html"))
    settled(page)
    shot(page, "07-campaign-resumed")
    assert page.problems == [], page.problems
