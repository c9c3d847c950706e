"""The short-link redirect through the web application (FastAPI's TestClient): 302 to the
link, bots flagged, 404 and 410 pages with nothing of the subscriber in them, clicks
written when the application stops; ``jingxin serve`` refuses the development secret in
production."""

from __future__ import annotations

import asyncio
import re
import shutil
import warnings
from datetime import UTC, datetime, timedelta

import pytest
from starlette.exceptions import StarletteDeprecationWarning
from typer.testing import CliRunner

from jingxin.analytics.clicks import LinkTarget, click_summary
from jingxin.api import create_app
from jingxin.api.links import TokenResolver
from jingxin.cli import app as cli_app
from jingxin.config import AnalyticsSettings, ServeSettings, Settings, StoreSettings
from jingxin.data.store import open_store
from jingxin.data.store.models import LinkClick, Message
from jingxin.errors import ConfigError

with warnings.catch_warnings():
    # Starlette 1.x asks for httpx2 under its TestClient; httpx (the test extra) still works.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

NUMBER = "+8613912345678"
FRESH, OLD = "AbCdEf1234", "OldOld9876"
TARGET = "https://shop.example.cn/offer?id=7"
PHONE = "Mozilla/5.0 (Linux; Android 14; V2309A) Chrome/124.0 Mobile"


@pytest.fixture(scope="module")
def migrated(tmp_path_factory):
    path = tmp_path_factory.mktemp("serve") / "template.db"
    open_store(f"sqlite:///{path}", upgrade=True).dispose()
    return path


@pytest.fixture
def store(migrated, tmp_path):
    shutil.copy(migrated, tmp_path / "jx.db")
    opened = open_store(f"sqlite:///{tmp_path / 'jx.db'}")
    now = datetime.now(UTC)
    with opened.transaction() as session:
        session.add_all([
            Message(tenant_id="operator", msisdn=NUMBER, category="marketing", lane=2,
                    text=f"offer https://jx.cn/{FRESH}", idempotency_key="campaign:1:a",
                    link_token=FRESH, link_url=TARGET, created_at=now - timedelta(hours=1),
                    scheduled_at=now - timedelta(hours=1)),
            Message(tenant_id="operator", msisdn=NUMBER, category="marketing", lane=2,
                    text=f"offer https://jx.cn/{OLD}", idempotency_key="campaign:1:b",
                    link_token=OLD, link_url=TARGET, created_at=now - timedelta(days=31),
                    scheduled_at=now - timedelta(days=31)),
        ])  # fmt: skip
    yield opened
    opened.dispose()


def settings(**analytics) -> Settings:
    # flush_seconds long: nothing is written before the application stops.
    options = {"click_flush_seconds": 60.0, "link_secret": "test-secret", **analytics}
    return Settings(analytics=AnalyticsSettings(**options))


def clicks(store) -> list[LinkClick]:
    with store.sessions() as session:
        return session.query(LinkClick).order_by(LinkClick.id).all()


def test_a_click_redirects_and_is_written_when_the_app_stops(store):
    app = create_app(settings(), store=store)
    with TestClient(app, follow_redirects=False) as client:
        answer = client.get(f"/{FRESH}", headers={"User-Agent": PHONE})
        assert answer.status_code == 302
        assert answer.headers["location"] == TARGET
        assert answer.headers["cache-control"] == "no-store"
        assert answer.headers["referrer-policy"] == "no-referrer"
        assert NUMBER[3:] not in answer.text and NUMBER[3:] not in str(answer.headers)
        assert clicks(store) == []  # still in the recorder
    [click] = clicks(store)  # the lifespan's shutdown wrote it
    assert (click.token, click.bot, click.method, click.agent) == (FRESH, False, "GET", PHONE)
    assert click.client is not None and len(click.client) == 32
    assert "testclient" not in click.client  # the address is hashed, never kept
    assert click_summary(store)["unique_clickers"] == 1


def test_head_and_previews_are_stored_as_bots_not_clicks(store):
    app = create_app(settings(), store=store)
    with TestClient(app, follow_redirects=False) as client:
        assert client.head(f"/{FRESH}", headers={"User-Agent": PHONE}).status_code == 302
        preview = client.get(f"/{FRESH}", headers={"User-Agent": "TelegramBot (like TwitterBot)"})
        assert preview.status_code == 302
    assert [(c.method, c.bot) for c in clicks(store)] == [("HEAD", True), ("GET", True)]
    summary = click_summary(store)
    assert (summary["clicks"], summary["unique_clickers"], summary["bot_requests"]) == (0, 0, 2)


@pytest.mark.parametrize("path", [
    "/ZZZZZZ9999",  # well formed, no such token
    "/AbCdEf123",  # one short
    "/AbCdEf12345",  # one long
    "/AbCdEf-123",  # not base62
    "/favicon.ico",
])  # fmt: skip
def test_unknown_or_malformed_tokens_get_the_not_found_page(store, path):
    app = create_app(settings(), store=store)
    with TestClient(app, follow_redirects=False) as client:
        answer = client.get(path)
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("text/html")
    assert "链接不存在" in answer.text and "link not found" in answer.text.lower()
    assert clicks(store) == []  # only known tokens are recorded


def test_an_expired_link_gets_the_gone_page_and_the_click_is_kept(store):
    app = create_app(settings(), store=store)
    with TestClient(app, follow_redirects=False) as client:
        answer = client.get(f"/{OLD}", headers={"User-Agent": PHONE})
    assert answer.status_code == 410
    assert "链接已过期" in answer.text and "link expired" in answer.text.lower()
    assert "location" not in answer.headers
    assert [c.token for c in clicks(store)] == [OLD]


def test_no_page_shows_a_number_or_an_id(store):
    app = create_app(settings(), store=store)
    with TestClient(app, follow_redirects=False) as client:
        pages = [client.get(f"/{OLD}"), client.get("/ZZZZZZ9999"), client.get("/x")]
    for page in pages:
        assert not re.search(r"\d{4,}", page.text), page.text  # no number, no message id


def test_healthz_checks_the_store(store, tmp_path):
    app = create_app(settings(), store=store)
    with TestClient(app) as client:
        answer = client.get("/healthz")
    assert answer.status_code == 200
    assert answer.json()["status"] == "ok" and answer.json()["store"] == "ok"


def test_a_store_without_the_schema_is_unavailable_not_an_error(tmp_path):
    empty = open_store(f"sqlite:///{tmp_path / 'empty.db'}")  # never migrated
    try:
        app = create_app(settings(), store=empty)
        with TestClient(app, follow_redirects=False) as client:
            answer = client.get(f"/{FRESH}")
        assert answer.status_code == 503 and "暂时无法打开" in answer.text
    finally:
        empty.dispose()


async def test_cache_misses_are_looked_up_together():
    # Given a directory whose store answers slowly enough for misses to pile up
    class SlowDirectory:
        def __init__(self):
            self.loads: list[list[str]] = []

        def cached(self, token):
            return None

        def load(self, tokens):
            self.loads.append(list(tokens))
            return {t: LinkTarget(1, "https://x.cn/", datetime.now(UTC)) for t in tokens
                    if t != "Missing000"}

    directory = SlowDirectory()
    resolver = TokenResolver(directory)
    # When six requests miss at once (two on the same token, one unknown)
    tokens = ["Aaaaaaaaa1", "Aaaaaaaaa2", "Aaaaaaaaa2", "Aaaaaaaaa3", "Missing000", "Aaaaaaaaa4"]
    found = await asyncio.gather(*(resolver.resolve(t) for t in tokens))
    # Then the store was asked once, for each token once
    assert directory.loads == [["Aaaaaaaaa1", "Aaaaaaaaa2", "Aaaaaaaaa3", "Missing000",
                                "Aaaaaaaaa4"]]  # fmt: skip
    assert [f is None for f in found] == [False, False, False, False, True, False]


def test_production_with_a_secret_of_its_own_serves(store):
    production = Settings(serve=ServeSettings(environment="production"),
                          analytics=AnalyticsSettings(link_secret="s3cret-of-our-own"))
    with pytest.raises(ConfigError, match=r"\[analytics\] link_secret"):
        create_app(Settings(serve=ServeSettings(environment="production")), store=store)
    assert create_app(production, store=store).openapi_url is None  # no schema in public


def test_jingxin_serve_refuses_the_default_secret_in_production(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("JINGXIN_CONFIG", "JINGXIN_ANALYTICS__LINK_SECRET"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(cli_app, ["serve", "--port", "0"], env={
        "JINGXIN_SERVE__ENVIRONMENT": "production",
        "JINGXIN_STORE__URL": f"sqlite:///{tmp_path / 'never.db'}"})  # fmt: skip
    assert isinstance(result.exception, ConfigError)
    assert "[analytics] link_secret" in str(result.exception)
    assert not (tmp_path / "never.db").exists()  # refused before touching the store


def test_without_a_store_the_app_opens_the_settings_store(tmp_path):
    url = f"sqlite:///{tmp_path / 'own.db'}"
    open_store(url, upgrade=True).dispose()
    app = create_app(Settings(store=StoreSettings(url=url)))
    with TestClient(app) as client:
        assert client.get("/healthz").json()["status"] == "ok"
        assert client.get("/robots.txt").text == "User-agent: *\nDisallow: /\n"
