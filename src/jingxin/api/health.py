"""``GET /healthz``: is the store answering, and how the click recorder is doing.

200 with ``{"status": "ok", ...}`` when a ``SELECT 1`` succeeds (asked in a thread, the
event loop never waits on it); 503 with ``"status": "unavailable"`` and the store's error
otherwise. The recorder's figures say whether clicks are being written or piling up.
"""

from __future__ import annotations

import logging

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from jingxin.data.store import Store, store_errors
from jingxin.errors import StoreError

router = APIRouter()


log = logging.getLogger(__name__)


def check_store(store: Store) -> None:
    """One round trip to the store; raises :class:`StoreError` if it fails."""
    with store_errors("checking the store"), store.engine.connect() as conn:
        conn.execute(text("SELECT 1"))


@router.get("/healthz", tags=["health"])
async def healthz(request: Request) -> JSONResponse:
    """The store answers (200) or not (503); click recorder and link cache figures."""
    state = request.app.state
    body: dict[str, Any] = {"status": "ok", "store": "ok"}
    try:
        await asyncio.to_thread(check_store, state.store)
    except StoreError as exc:  # the detail (host, port, user) goes to the log, not out
        log.warning("health check: %s", exc)
        body = {"status": "unavailable", "store": "unavailable"}
    recorder = state.links.recorder
    body.update(clicks_pending=recorder.pending, clicks_written=recorder.written,
                clicks_dropped=recorder.dropped, click_write_failures=recorder.failures,
                links_cached=len(state.links.directory))  # fmt: skip
    return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503,
                        headers={"Cache-Control": "no-store"})  # fmt: skip
