"""Request bodies larger than ``[api] body_max_bytes`` are refused with 413 before they are
read: by their Content-Length when they give one, else while they stream in."""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jingxin.api.errors import error_body

# The store's ids are 64-bit: a larger number cannot name anything, and would overflow the
# database driver (500) rather than answer 404. Routes bound their path ids with it.
BIGINT_MAX = 2**63 - 1
# A list's offset: far past any page a client walks, and safe to add a limit to.
OFFSET_MAX = 2**31 - 1


class TooLarge(Exception):
    pass


class BodyLimit:
    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._refuse(send)
            return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise TooLarge
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except TooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body: dict[str, Any] = error_body(
            413, f"the request body is larger than {self.max_bytes} bytes; send less per "
            "request (a send batch holds at most [api] batch_max messages)")
        raw = json.dumps(body, ensure_ascii=False).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(raw)).encode())]})  # fmt: skip
        await send({"type": "http.response.body", "body": raw})
