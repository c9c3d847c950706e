"""The web application of ``jingxin serve``: one FastAPI app, one router per concern.

Now: ``/healthz`` (:mod:`.health`) and the short-link redirect (:mod:`.links`). The API
and the console add their routers beside these in :func:`create_app`; the links router is
included last because its ``/{token}`` answers any one-segment path.

The object graph is built here from the settings (tests pass their own store). The
lifespan starts the click recorder's thread and, on shutdown, stops it - which writes the
clicks still pending - before the store is closed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from jingxin.api import health, links
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

    app = FastAPI(title="jingxin", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None if production else "/openapi.json")  # fmt: skip
    app.state.settings = settings
    app.state.store = store
    app.state.links = short_links
    app.include_router(health.router)
    app.include_router(links.router)  # last: see the module docstring
    return app
