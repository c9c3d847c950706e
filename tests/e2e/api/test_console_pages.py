"""The console's pages under TestClient: they render for a logged-in user in both languages,
send the log-in page to anyone without a session, show each role only the pages it may
see, and carry their security headers; log-in and log-out through the form."""

from __future__ import annotations

import re

import pytest

from tests.e2e.api.conftest import PASSWORD

PAGES = {  # path -> the permission it needs
    "/console/": "dashboard.read",
    "/console/campaigns": "campaigns.read",
    "/console/campaigns/new": "campaigns.write",
    "/console/campaigns/7": "campaigns.read",
    "/console/templates": "templates.read",
    "/console/fences": "fences.read",
    "/console/fences/f1": "fences.read",
    "/console/hall": "hall.read",
    "/console/probes": "probes.read",
    "/console/workorders": "workorders.read",
}


def csrf_of(html: str) -> str:
    found = re.search(r'<meta name="csrf-token" content="([^"]+)"', html)
    assert found, "the page carries no CSRF token"
    return found.group(1)


@pytest.mark.parametrize("path", list(PAGES))
def test_every_page_renders_for_an_admin(api, path):
    # Given an admin's session, When a page is asked for, Then it renders with its script
    r = api.as_user("admin").get(path)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["cache-control"] == "no-store"
    assert re.search(r'<script src="/console/static/\w+\.js\?v=\w+" defer>', r.text)
    assert "<script>" not in r.text  # nothing inline: the CSP would refuse it
    csrf_of(r.text)


@pytest.mark.parametrize("path", list(PAGES))
def test_without_a_session_pages_redirect_to_log_in(api, path):
    r = api.client.get(path, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/console/login?next=%2Fconsole")


def test_root_leads_to_the_console_and_the_log_in_form(api):
    r = api.client.get("/console", follow_redirects=False)  # not taken for a short link
    assert r.status_code == 308 and r.headers["location"] == "/console/"
    r = api.client.get("/")
    assert r.status_code == 200  # / → /console/ → /console/login?next=...
    assert str(r.url).split("?")[0].endswith("/console/login")
    assert 'name="password"' in r.text and 'lang="zh-CN"' in r.text


def test_both_languages_and_the_toggle_is_remembered(api):
    client = api.as_user("marketer")
    zh = client.get("/console/")
    assert "今日概览" in zh.text and 'lang="zh-CN"' in zh.text
    en = client.get("/console/?lang=en")
    assert "Today" in en.text and 'lang="en"' in en.text and "今日概览" not in en.text
    assert client.cookies.get("jx_lang") == "en"
    assert "Campaigns" in client.get("/console/campaigns").text  # the cookie holds it
    assert "营销活动" in client.get("/console/campaigns?lang=zh").text
    assert "营销活动" in client.get("/console/campaigns?lang=xx").text  # unknown: the cookie's


def test_the_nav_shows_only_what_the_role_may_see(api):
    from jingxin.access.roles import PERMISSIONS

    for role in ("admin", "analyst", "reviewer"):
        html = api.as_user(role).get("/console/").text
        shown = set(re.findall(r'data-nav="(\w+)"', html))
        for path, permission in PAGES.items():
            if path.count("/") == 2 and permission.endswith(".read"):
                key = path.strip("/").split("/")[-1] or "dashboard"
                key = "dashboard" if key == "console" else key
                assert (key in shown) == (permission in PERMISSIONS[role]), (role, key)


def test_a_role_without_the_permission_gets_a_403_page(api):
    r = api.as_user("analyst").get("/console/campaigns/new")  # analysts only read
    assert r.status_code == 403
    assert "text/html" in r.headers["content-type"] and "无权访问" in r.text
    assert "campaigns.write" in r.text


def test_an_api_client_key_sees_no_console(api):
    r = api.as_key("api-client").get("/console/")
    assert r.status_code == 403 and "dashboard.read" in r.text


def test_log_in_with_the_form_then_log_out(api):
    client = api.client
    # Given the form, When the right password is posted, Then a session cookie and next
    r = client.post("/console/login", data={"username": api.username("marketer"),
                                            "password": PASSWORD, "next": "/console/campaigns"},
                    follow_redirects=False)  # fmt: skip
    assert r.status_code == 303 and r.headers["location"] == "/console/campaigns"
    cookie = r.headers["set-cookie"]
    assert "jx_session=" in cookie and "HttpOnly" in cookie and "samesite=lax" in cookie.lower()
    page = client.get("/console/campaigns")
    assert page.status_code == 200
    token = csrf_of(page.text)
    assert client.get("/api/v1/me").json()["role"] == "marketer"
    # the log-in page, once logged in, goes straight on
    assert client.get("/console/login", follow_redirects=False).status_code == 303
    # When logging out without the CSRF token, Then refused; with it, the session ends
    assert client.post("/console/logout", data={}, follow_redirects=False).status_code == 403
    r = client.post("/console/logout", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/console/login"
    client.cookies.clear()
    assert client.get("/console/", follow_redirects=False).status_code == 303


def test_a_wrong_password_shows_the_form_again_with_the_reason(api):
    r = api.client.post("/console/login", data={"username": api.username("admin"),
                                                "password": "not the password"})  # fmt: skip
    assert r.status_code == 401 and "jx_session" not in r.headers.get("set-cookie", "")
    assert "用户名或密码错误" in r.text and api.username("admin") in r.text
    r = api.client.post("/console/login?lang=en", data={"username": "", "password": ""})
    assert r.status_code == 422 and "Enter your username" in r.text


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x",
                                    "/api/v1/me", "/console\\@evil"])
def test_next_never_leaves_the_console(api, target):
    r = api.client.post("/console/login", data={"username": api.username("admin"),
                                                "password": PASSWORD, "next": target},
                        follow_redirects=False)  # fmt: skip
    assert r.headers["location"] == "/console/"


def test_a_cross_site_log_in_post_is_refused(api):
    r = api.client.post("/console/login", headers={"Origin": "https://evil.example"},
                        data={"username": api.username("admin"), "password": PASSWORD})
    assert r.status_code == 403 and "jx_session" not in r.headers.get("set-cookie", "")


def test_static_files_and_plotly_are_served_offline_and_cached(api):
    r = api.client.get("/console/static/console.js")
    assert r.status_code == 200 and "javascript" in r.headers["content-type"]
    assert "immutable" in r.headers["cache-control"]
    r = api.client.get("/console/static/plotly.min.js")
    assert r.status_code == 200 and len(r.content) > 1_000_000
    assert r.headers.get("content-encoding") == "gzip"  # TestClient asks for it
    for name in ("nope.js", "..%2Fshell.py", "shell.py"):
        assert api.client.get(f"/console/static/{name}").status_code == 404


def test_repeated_wrong_passwords_are_throttled_like_the_api(api):
    form = {"username": api.username("analyst"), "password": "not the password"}
    statuses = [api.client.post("/console/login", data=form).status_code for _ in range(6)]
    assert statuses == [401] * 5 + [429]
    # the API's own log-in shares the count
    r = api.client.post("/api/v1/auth/login", json={"username": form["username"],
                                                    "password": PASSWORD})  # fmt: skip
    assert r.status_code == 429


def test_every_label_the_pages_use_is_in_both_languages():
    from importlib import resources

    from jingxin.console.i18n import LABELS

    folder = resources.files("jingxin.console")
    used: set[str] = set()
    for sub, pattern in (("templates", r'\bt\("([\w.-]+)"\)'), ("static", r'\bt\("([\w.-]+)"\)')):
        for item in (folder / sub).iterdir():
            used |= set(re.findall(pattern, item.read_text(encoding="utf-8")))
    assert used, "no labels found: the pattern is wrong"
    assert sorted(used - set(LABELS)) == []
    for key, (zh, en) in LABELS.items():
        assert zh.strip() and en.strip(), key


def test_the_wizard_offers_segments_to_the_operator_only(api):
    operator = api.as_user("marketer").get("/console/campaigns/new").text
    enterprise = api.as_user("marketer", tenant="acme").get("/console/campaigns/new").text
    assert 'name="spec"' in operator and 'value="segment"' in operator
    assert 'name="spec"' not in enterprise and 'name="path"' in enterprise
