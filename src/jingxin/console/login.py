"""Log-in and log-out of the console: a plain HTML form (it works without JavaScript) whose
post is handed to the API's own ``POST /auth/login`` and ``POST /auth/logout`` functions
(:mod:`jingxin.api.accounts`): the same password check, throttle, audit entries and session
cookie. This module only turns their answers into pages and redirects.

The log-in form carries no CSRF token (there is no session yet): a cross-site post is
refused by its ``Origin`` instead. The log-out form carries the session's token like any
other post. ``next`` may only lead back into the console (no open redirect).
"""

from __future__ import annotations

import asyncio
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Form, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import ValidationError

from jingxin.access.principal import Principal
from jingxin.api import accounts
from jingxin.api.auth import SESSION_COOKIE, principal
from jingxin.api.errors import ApiError
from jingxin.console.i18n import language_of, translator
from jingxin.console.shell import LOGIN_PATH, ConsoleRoute, render, secure

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)
HOME = "/console/"


def safe_next(target: str | None) -> str:
    """``target`` if it is a console path of this site, else the dashboard."""
    if not target or not target.startswith("/console") or target.startswith("//"):
        return HOME
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or "\\" in target:
        return HOME
    return target


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None:
        return True  # older browsers send none on a same-origin post
    return urlsplit(origin).netloc == request.headers.get("host", "")


def _form(request: Request, *, next: str, error: str | None = None, username: str = "",
          status: int = 200) -> Response:  # fmt: skip
    return render(request, "login.html", who=None, page="login", next=safe_next(next),
                  error=error, username=username, status=status)  # fmt: skip


@router.get("/login")
async def login_page(request: Request, next: str | None = None) -> Response:
    """The log-in form (or straight on, when already logged in)."""
    if request.cookies.get(SESSION_COOKIE):
        try:
            await principal(request)
            return RedirectResponse(safe_next(next), status_code=303)
        except ApiError:
            pass  # an expired session: the form
    return _form(request, next=next or HOME)


@router.post("/login")
async def login(request: Request, username: Annotated[str, Form()] = "",
                password: Annotated[str, Form()] = "",
                next: Annotated[str, Form()] = HOME) -> Response:  # fmt: skip
    """Log in through ``POST /api/v1/auth/login``'s function, then go on to ``next``."""
    t = translator(language_of(request))
    if not _same_origin(request):
        raise ApiError(403, "a log-in from another site is refused")
    try:
        body = accounts.LoginBody(username=username, password=password)
    except ValidationError:
        return _form(request, next=next, error=t("login.missing"), username=username,
                     status=422)  # fmt: skip
    answer = Response()  # collects the session cookie the API's function sets
    try:
        await asyncio.to_thread(accounts.login, body, request, answer)
    except ApiError as exc:
        if exc.status not in (401, 429):
            raise
        error = t("login.failed") if exc.status == 401 else exc.message
        return _form(request, next=next, error=error, username=username, status=exc.status)
    response = RedirectResponse(safe_next(next), status_code=303)
    for name, value in answer.raw_headers:
        if name == b"set-cookie":
            response.raw_headers.append((name, value))
    return secure(response)


@router.post("/logout")
async def logout(request: Request, who: Annotated[Principal, Depends(principal)]) -> Response:
    """Log out through ``POST /api/v1/auth/logout``'s function (the form carries the CSRF
    token), then back to the log-in form."""
    answer = await asyncio.to_thread(accounts.logout, request, who)
    response = RedirectResponse(LOGIN_PATH, status_code=303)
    for name, value in answer.raw_headers:
        if name == b"set-cookie":
            response.raw_headers.append((name, value))
    return secure(response)
