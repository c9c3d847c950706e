"""The console's static files (``/console/static/<name>``) and plotly.js, from the installed
packages: the console works offline, nothing comes from a CDN.

Asset URLs carry a version (``?v=``, see :func:`jingxin.console.shell.asset`), so they are
cached for a year. plotly.js (3.5 MB) is read from the plotly package once, on first
request, and sent gzipped to browsers that accept it.
"""

from __future__ import annotations

import gzip
import re
from functools import lru_cache
from importlib import resources

from fastapi import APIRouter, Request, Response

from jingxin.api.errors import not_found
from jingxin.console.shell import STATIC_PATH

router = APIRouter(prefix=STATIC_PATH, include_in_schema=False)

MEDIA_TYPES = {"js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8",
               "svg": "image/svg+xml"}  # fmt: skip
NAME = re.compile(r"[a-z0-9][a-z0-9_-]*\.(js|css|svg)")
CACHE = {"Cache-Control": "public, max-age=31536000, immutable",
         "X-Content-Type-Options": "nosniff"}  # fmt: skip


@lru_cache(maxsize=1)
def _plotly() -> tuple[bytes, bytes]:
    from plotly.offline import get_plotlyjs

    plain = get_plotlyjs().encode()
    return plain, gzip.compress(plain, compresslevel=6, mtime=0)


@lru_cache(maxsize=64)
def _static(name: str) -> bytes | None:
    item = resources.files("jingxin.console") / "static" / name
    return item.read_bytes() if item.is_file() else None


@router.get("/plotly.min.js")
def plotly_js(request: Request) -> Response:
    """plotly.js of the installed plotly package."""
    plain, packed = _plotly()
    headers = dict(CACHE, Vary="Accept-Encoding")
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return Response(packed, media_type=MEDIA_TYPES["js"], headers=headers)
    return Response(plain, media_type=MEDIA_TYPES["js"], headers=headers)


@router.get("/{name}")
def static_file(name: str) -> Response:
    """A file of the console's static folder."""
    found = NAME.fullmatch(name)
    body = _static(name) if found else None
    if body is None:
        raise not_found("file", name)
    return Response(body, media_type=MEDIA_TYPES[found.group(1)], headers=CACHE)
