"""The web application of ``jingxin serve``: one FastAPI app, one router per concern.

- ``/healthz`` (:mod:`.health`);
- the REST API under ``/api/v1`` (one module per resource: :mod:`.accounts`, :mod:`.send`,
  :mod:`.templates`, ...), its OpenAPI spec at ``/api/openapi.json`` and the docs page at
  ``/api/docs`` (development only);
- the web console under ``/console`` (:mod:`jingxin.console`), on the same functions;
- the short-link redirect (:mod:`.links`), included last because its ``/{token}``
  answers any one-segment path.

The object graph is built here from the settings (tests pass their own store). The
lifespan starts the click recorder's thread and, on shutdown, stops it - which writes the
clicks still pending - before the store is closed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from jingxin import console
from jingxin.api import (
    accounts,
    callbacks,
    campaigns,
    dashboard,
    errors,
    fences,
    hall,
    health,
    inbox,
    journeys,
    links,
    messages,
    probes,
    reports,
    segments,
    send,
    templates,
    workorders,
)
from jingxin.access.logins import LoginThrottle
from jingxin.api.auth import KeyCache
from jingxin.api.limits import BodyLimit
from jingxin.api.ratelimit import KeyLimiter
from jingxin.config import AnalyticsSettings, Settings
from jingxin.data.store import Store, open_store
from jingxin.errors import ConfigError

DEFAULT_LINK_SECRET = AnalyticsSettings.model_fields["link_secret"].default


def check_serving(settings: Settings) -> None:
    """Refuse to serve production with the development link secret: anyone could then
    forge tokens and hashed client addresses could be reversed by guessing."""
    if (settings.serve.environment == "production"
            and settings.analytics.link_secret == DEFAULT_LINK_SECRET):
        raise ConfigError(
            "[analytics] link_secret is the development default: set a secret of your own "
            "(link_secret in jingxin.toml, or JINGXIN_ANALYTICS__LINK_SECRET) before serving "
            'with [serve] environment = "production"')


def create_app(settings: Settings, *, store: Store | None = None) -> FastAPI:
    """The application for ``settings``; ``store`` (else the settings' store, opened here
    and closed on shutdown) must already have the current schema."""
    check_serving(settings)
    owned = store is None
    store = store if store is not None else open_store(settings.store.url)
    short_links = links.ShortLinks.from_settings(settings, store)
    production = settings.serve.environment == "production"

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        short_links.recorder.start()
        try:
            yield
        finally:
            await asyncio.to_thread(short_links.recorder.stop)
            if owned:
                store.dispose()

    app = FastAPI(
        title="jingxin API", version="1", lifespan=lifespan, redoc_url=None,
        description="Campaigns, templates, sending, replies and reports of jingxin (精信). "
        "Authenticate with an API key (Authorization: Bearer jx_...) or a console session.",
        docs_url=None if production else "/api/docs",
        openapi_url=None if production else "/api/openapi.json")  # fmt: skip
    app.state.settings = settings
    app.state.store = store
    app.state.links = short_links
    app.state.key_cache = KeyCache(store)
    app.state.key_limiter = KeyLimiter(burst_seconds=settings.api.key_burst_seconds)
    app.state.login_throttle = LoginThrottle()
    errors.install(app)
    app.add_middleware(BodyLimit, max_bytes=settings.api.body_max_bytes)
    app.include_router(health.router)
    routers = [module.router for module in (
        accounts, send, messages, callbacks, segments, templates, campaigns, reports, journeys,
        fences, hall, inbox, probes, workorders, dashboard)]  # fmt: skip
    for router in routers:
        app.include_router(router)
    app.include_router(console.router)

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/console/", status_code=303)

    app.include_router(links.router)  # last: see the module docstring
    errors.document(app, routers)
    return app
