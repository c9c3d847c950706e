"""One shape for every error the API answers, and the status each kind of failure gets.

Every error body is ``{"error": {"status", "code", "message", "fields"?}}``; ``message``
says what to fix. Routes raise :class:`ApiError` for the HTTP-specific answers (404, 409,
413, 429, ...); the domain's own errors map here, so a rule that refuses in the CLI refuses
with the same words over HTTP:

- request validation (pydantic) → 422, one entry per field (``body.messages.3.msisdn``);
  a body that is not JSON at all → 400;
- :class:`~jingxin.errors.ConflictError` (the state refuses: a name taken) → 409;
- :class:`~jingxin.errors.InputError` (and its SpecError, TemplateError, ...) and
  :class:`~jingxin.errors.PolicyError` → 422;
- :class:`~jingxin.errors.StoreError` → 503, the detail (host, user) to the log only;
- anything else → 500, logged with its traceback, nothing of it in the answer.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from jingxin.errors import ConflictError, InputError, JingxinError, PolicyError, StoreError

log = logging.getLogger(__name__)

CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
         405: "method_not_allowed", 409: "conflict", 413: "too_large", 415: "unsupported",
         422: "invalid", 429: "too_many_requests", 500: "internal", 503: "unavailable"}  # fmt: skip


class ApiError(Exception):
    """An answer with ``status`` and a message saying what to fix."""

    def __init__(self, status: int, message: str, *, field: str | None = None,
                 headers: dict[str, str] | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.headers = headers
        self.code = code or CODES.get(status, "error")


def not_found(what: str, ident: object) -> ApiError:
    """404 for a thing that does not exist *or belongs to another tenant*: the same answer,
    so ids cannot be probed."""
    return ApiError(404, f"no {what} {ident}")


def error_body(status: int, message: str, *, code: str | None = None,
               fields: list[dict[str, str]] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"status": status, "code": code or CODES.get(status, "error"),
                             "message": message}  # fmt: skip
    if fields:
        error["fields"] = fields
    return {"error": error}


def respond(status: int, message: str, *, code: str | None = None,
            fields: list[dict[str, str]] | None = None,
            headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, message, code=code, fields=fields),
                        status_code=status, headers=headers)  # fmt: skip


def _where(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(part) for part in loc)


def _message(error: dict[str, Any]) -> str:
    """pydantic's message without the "Value error, " it puts before a validator's own."""
    message = str(error.get("msg", ""))
    return message.removeprefix("Value error, ").removeprefix("Assertion failed, ")


async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    if any(error.get("type") == "json_invalid" for error in errors):
        first = next(error for error in errors if error.get("type") == "json_invalid")
        detail = (first.get("ctx") or {}).get("error", "")
        return respond(400, f"the body is not valid JSON{': ' + str(detail) if detail else ''}")
    fields = [{"field": _where(error.get("loc", ())), "message": _message(error)}
              for error in errors]  # fmt: skip
    summary = "; ".join(f"{item['field']}: {item['message']}" for item in fields[:5])
    more = f" (and {len(fields) - 5} more)" if len(fields) > 5 else ""
    return respond(422, summary + more, fields=fields)


async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
    fields = [{"field": exc.field, "message": exc.message}] if exc.field else None
    return respond(exc.status, exc.message, code=exc.code, fields=fields, headers=exc.headers)


async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
    message = exc.detail if isinstance(exc.detail, str) else CODES.get(exc.status_code, "error")
    return respond(exc.status_code, message, headers=getattr(exc, "headers", None))


async def _jingxin(request: Request, exc: JingxinError) -> JSONResponse:
    if isinstance(exc, ConflictError):
        return respond(409, str(exc))
    if isinstance(exc, (InputError, PolicyError)):
        return respond(422, str(exc))
    if isinstance(exc, StoreError):
        log.warning("%s %s: %s", request.method, request.url.path, exc)
        return respond(503, "the store is unavailable; try again shortly")
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return respond(500, "internal error; the server's log has the details")


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return respond(500, "internal error; the server's log has the details")


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(RequestValidationError, _validation)  # type: ignore[arg-type]
    app.add_exception_handler(ApiError, _api_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http)  # type: ignore[arg-type]
    app.add_exception_handler(JingxinError, _jingxin)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)
