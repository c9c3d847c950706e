"""The page shell every console page shares: its templates, its navigation (only what the
role may see), its security headers, and the route class that turns "not logged in" into
the log-in page.

A page is server-rendered HTML with no data of its own beyond who is looking: its script
(``static/<page>.js``) fetches the JSON API with the session cookie and the CSRF token
the shell puts in ``<meta name="csrf-token">``, so the console applies exactly the rules
the API does. Nothing is inline: the Content-Security-Policy allows scripts, styles,
images and requests from this origin only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from importlib import metadata, resources
from typing import Any
from urllib.parse import quote

from fastapi import Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader, select_autoescape

from jingxin.access.principal import Principal
from jingxin.api.errors import ApiError
from jingxin.console.i18n import HTML_LANG, LANG_COOKIE, labels, language_of, translator

LOGIN_PATH = "/console/login"
STATIC_PATH = "/console/static"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
       "frame-ancestors 'none'; form-action 'self'")  # fmt: skip
# plotly.js adds its own stylesheet rules (modebar, hover labels) through an inline <style>
# (plotly/plotly.js#2355): pages with a chart allow inline styles - never inline scripts.
CSP_CHARTS = CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",  # pages show who is logged in: never from a cache
}
LANG_COOKIE_SECONDS = 365 * 24 * 3600


@dataclass(frozen=True, slots=True)
class NavItem:
    key: str  # the i18n label "nav.<key>" and the page's name
    path: str
    permission: str


NAV = (
    NavItem("dashboard", "/console/", "dashboard.read"),
    NavItem("campaigns", "/console/campaigns", "campaigns.read"),
    NavItem("templates", "/console/templates", "templates.read"),
    NavItem("fences", "/console/fences", "fences.read"),
    NavItem("hall", "/console/hall", "hall.read"),
    NavItem("probes", "/console/probes", "probes.read"),
    NavItem("workorders", "/console/workorders", "workorders.read"),
)

environment = Environment(loader=PackageLoader("jingxin.console", "templates"),
                          autoescape=select_autoescape(["html"]),
                          trim_blocks=True, lstrip_blocks=True)  # fmt: skip


def _static_version() -> str:
    """A digest of the static files: asset URLs carry it, so they can be cached for good
    and still change with a new release."""
    digest = hashlib.sha256(metadata.version("plotly").encode())  # plotly.min.js too
    folder = resources.files("jingxin.console") / "static"
    for item in sorted(folder.iterdir(), key=lambda entry: entry.name):
        if item.is_file():
            digest.update(item.name.encode())
            digest.update(item.read_bytes())
    return digest.hexdigest()[:12]


STATIC_VERSION = _static_version()


def asset(name: str) -> str:
    return f"{STATIC_PATH}/{name}?v={STATIC_VERSION}"


def secure(response: Response, *, charts: bool = False) -> Response:
    response.headers.update(SECURITY_HEADERS)
    if charts:
        response.headers["Content-Security-Policy"] = CSP_CHARTS
    return response


def render(request: Request, name: str, *, who: Principal | None, page: str,
           status: int = 200, charts: bool = False, **context: Any) -> HTMLResponse:
    """The page ``name`` (a template) in the caller's language, with its security headers;
    ``page`` names the nav entry to highlight and the script to load (static/<page>.js);
    ``charts``: the page draws plotly charts (see :data:`CSP_CHARTS`)."""
    language = language_of(request)
    nav = [item for item in NAV if who is not None and who.can(item.permission)]
    html = environment.get_template(name).render(
        request=request, who=who, page=page, nav=nav, lang=language,
        html_lang=HTML_LANG[language], t=translator(language), asset=asset,
        labels_json=json.dumps(labels(language), ensure_ascii=False).replace("</", "<\\/"),
        can=(who.can if who is not None else (lambda _permission: False)), **context)
    response = secure(HTMLResponse(html, status_code=status), charts=charts)
    if request.query_params.get("lang") == language:
        response.set_cookie(LANG_COOKIE, language, max_age=LANG_COOKIE_SECONDS,
                            samesite="lax", path="/")  # fmt: skip
    return response


def login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"{LOGIN_PATH}?next={quote(target, safe='')}", status_code=303)


class ConsoleRoute(APIRoute):
    """A page route: without a session the answer is the log-in page (303), and a role
    that may not see the page gets a page saying so (403), not the API's JSON error."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except ApiError as exc:
                if exc.status == 401:
                    return login_redirect(request)
                if exc.status in (403, 404):
                    who = getattr(request.state, "principal", None)
                    key = "forbidden" if exc.status == 403 else "notfound"
                    return render(request, "message.html", who=who, page=key,
                                  status=exc.status, title_key=f"{key}.title",
                                  message=exc.message)  # fmt: skip
                raise

        return page_handler
