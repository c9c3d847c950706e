"""The short-link redirect: ``GET``/``HEAD /{token}`` answers 302 to the message's link.

- a known token: ``302`` to ``messages.link_url`` (``Cache-Control: no-store`` so every
  click reaches us, ``Referrer-Policy: no-referrer`` so the token does not travel on);
- a token older than ``[analytics] link_days``: ``410``, a short page (链接已过期);
- an unknown or malformed token: ``404``, a short page (链接不存在);
- the store away and the token not cached: ``503``, a short page (暂时无法打开).

Every request on a known token is recorded as a click (expired ones too: the subscriber did
click), bots flagged (:func:`jingxin.analytics.clicks.is_bot`), the client address keyed
with the link secret, never kept raw. Nothing about the subscriber - no number, no message
id - appears in a page, a header or a log line.

The request path stays on the event loop and touches no database: the token's target from
the cache, a click appended to the recorder (written by its own thread), the answer. A
token not cached waits for :class:`TokenResolver`, which asks the store in a thread for
every token missed meanwhile in one query: a campaign's clicks are mostly first clicks on
distinct tokens, so misses are the common case, and they cost one round trip per batch,
not one per request.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response

from jingxin.analytics.clicks import (
    ClickRecorder,
    ClickRow,
    LinkDirectory,
    LinkTarget,
    clean_agent,
    hash_client,
    is_bot,
)
from jingxin.analytics.links import TOKEN_LENGTH
from jingxin.errors import StoreError

if TYPE_CHECKING:
    from jingxin.config import Settings
    from jingxin.data.store import Store

TOKEN = re.compile(f"[0-9A-Za-z]{{{TOKEN_LENGTH}}}")  # base62, as analytics.links writes them
BATCH = 500  # tokens per store query of the resolver
# What RedirectResponse leaves unquoted: a target with Chinese in its path still fits a header.
URL_SAFE = ":/%#?=@[]!$&'()*+,;~"
NO_STORE = {"Cache-Control": "no-store"}

router = APIRouter()


def _page(title_zh: str, title_en: str, text_zh: str, text_en: str) -> bytes:
    return (
        '<!doctype html>\n<html lang="zh-CN"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<meta name="robots" content="noindex">'
        f"<title>{title_zh} · {title_en}</title></head>\n"
        '<body style="font-family:sans-serif;text-align:center;margin:20vh 1em 0;color:#333">'
        f"<h1>{title_zh}</h1><p>{text_zh}</p><h2>{title_en}</h2><p>{text_en}</p>"
        "</body></html>\n"
    ).encode()


NOT_FOUND_PAGE = _page("链接不存在", "Link not found", "请检查短信中的链接是否完整。",
                       "Please check that the link in your message is complete.")  # fmt: skip
EXPIRED_PAGE = _page("链接已过期", "Link expired", "此链接的有效期已过。",
                     "This link is no longer valid.")  # fmt: skip
UNAVAILABLE_PAGE = _page("暂时无法打开", "Temporarily unavailable", "请稍后再试。",
                         "Please try again in a moment.")  # fmt: skip
ROBOTS = "User-agent: *\nDisallow: /\n"


class TokenResolver:
    """Targets of tokens, from the directory's cache or, in batches, from the store.

    A miss parks a future; one task at a time loads the waiting tokens (up to BATCH per
    query) in a thread and resolves their futures, then takes the tokens missed meanwhile.
    A failed load fails its waiters with the :class:`StoreError`; the next miss tries again.
    """

    def __init__(self, directory: LinkDirectory) -> None:
        self.directory = directory
        self._waiting: dict[str, list[asyncio.Future[LinkTarget | None]]] = {}
        self._task: asyncio.Task[None] | None = None

    async def resolve(self, token: str) -> LinkTarget | None:
        target = self.directory.cached(token)
        if target is not None:
            return target
        loop = asyncio.get_running_loop()
        future: asyncio.Future[LinkTarget | None] = loop.create_future()
        self._waiting.setdefault(token, []).append(future)
        if self._task is None:
            self._task = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._waiting:
                tokens = list(self._waiting)[:BATCH]
                batch = {token: self._waiting.pop(token) for token in tokens}
                failure: Exception | None = None
                found: dict[str, LinkTarget] = {}
                try:
                    found = await asyncio.to_thread(self.directory.load, tokens)
                except Exception as exc:  # noqa: BLE001 - handed to every waiter
                    failure = exc
                for token, futures in batch.items():
                    for future in futures:
                        if future.done():  # a client that went away cancelled its own
                            continue
                        if failure is not None:
                            future.set_exception(failure)
                        else:
                            future.set_result(found.get(token))
        finally:
            self._task = None


class ShortLinks:
    """The redirect's answers and the clicks they record (one per application)."""

    def __init__(self, *, directory: LinkDirectory, recorder: ClickRecorder, link_days: int,
                 bot_agents: tuple[str, ...], secret: str,
                 clock: Callable[[], datetime] | None = None) -> None:  # fmt: skip
        self.directory = directory
        self.resolver = TokenResolver(directory)
        self.recorder = recorder
        self.lifetime = timedelta(days=link_days)
        self.bot_agents = bot_agents
        self.secret = secret
        self.clock = clock or (lambda: datetime.now(UTC))

    @classmethod
    def from_settings(cls, settings: Settings, store: Store) -> ShortLinks:
        config = settings.analytics
        return cls(directory=LinkDirectory(store),
                   recorder=ClickRecorder.to_store(store,
                                                   flush_seconds=config.click_flush_seconds),
                   link_days=config.link_days, bot_agents=tuple(config.bot_agents),
                   secret=config.link_secret)  # fmt: skip

    async def answer(self, token: str, *, method: str, agent: str | None,
                     client: str | None) -> Response:  # fmt: skip
        """The response to ``method /token`` (and the click it records, if any)."""
        if TOKEN.fullmatch(token) is None:
            return HTMLResponse(NOT_FOUND_PAGE, status_code=404, headers=NO_STORE)
        try:
            target = await self.resolver.resolve(token)
        except StoreError:
            return HTMLResponse(UNAVAILABLE_PAGE, status_code=503,
                                headers={**NO_STORE, "Retry-After": "5"})  # fmt: skip
        if target is None:
            return HTMLResponse(NOT_FOUND_PAGE, status_code=404, headers=NO_STORE)
        now = self.clock()
        self.recorder.add(ClickRow(
            token=token, message_id=target.message_id, at=now,
            bot=is_bot(method, agent, self.bot_agents), method=method,
            agent=clean_agent(agent), client=hash_client(client, self.secret)))  # fmt: skip
        if now - target.due_at > self.lifetime:
            return HTMLResponse(EXPIRED_PAGE, status_code=410, headers=NO_STORE)
        return Response(status_code=302, headers={
            "Location": quote(target.url, safe=URL_SAFE), "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer"})  # fmt: skip


@router.get("/robots.txt", include_in_schema=False)
async def robots() -> PlainTextResponse:
    """Crawlers that ask are told to keep away from short links."""
    return PlainTextResponse(ROBOTS)


async def follow(request: Request) -> Response:
    """``GET``/``HEAD /{token}``: see the module docstring."""
    links: ShortLinks = request.app.state.links
    client = request.client
    return await links.answer(request.path_params["token"], method=request.method,
                              agent=request.headers.get("user-agent"),
                              client=client.host if client else None)  # fmt: skip


# A plain Starlette route, not an API route: the redirect validates its one parameter
# itself, and FastAPI's dependency solving was half the cost of a request. Included last
# of the application's routers: it answers any one-segment path.
router.add_route("/{token}", follow, methods=["GET", "HEAD"], include_in_schema=False)
