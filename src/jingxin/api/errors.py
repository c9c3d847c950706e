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

:func:`document` writes these answers into the OpenAPI spec (the body's schema, and which
operations may answer what), so a client generated from it expects them.
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar

from fastapi import APIRouter, FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from jingxin.errors import ConflictError, InputError, JingxinError, PolicyError, StoreError

log = logging.getLogger(__name__)
T = TypeVar("T")

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


def owned(session: Any, model: type[T], ident: int, *, tenant_id: str, what: str) -> T:
    """The row ``ident`` of ``model`` if it belongs to ``tenant_id``; else 404, the same
    answer for another tenant's row as for a missing one."""
    row = session.get(model, ident)
    if row is None or row.tenant_id != tenant_id:
        raise not_found(what, ident)
    return row


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


async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    message = exc.detail if isinstance(exc.detail, str) else CODES.get(exc.status_code, "error")
    headers = getattr(exc, "headers", None)
    if exc.status_code == 405:
        headers = {**(headers or {}), "Allow": ", ".join(_allowed(request))}
    return respond(exc.status_code, message, headers=headers)


def _allowed(request: Request) -> list[str]:
    """Every method some route answers at this path: Starlette's 405 names only the first
    route's (``GET /templates`` and ``POST /templates`` are two routes)."""
    path = request.url.path
    routes: list[APIRoute] = getattr(request.app.state, "api_routes", [])
    return sorted({method for route in routes if route.path_regex.fullmatch(path)
                   for method in route.methods or ()})  # fmt: skip


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


class ErrorField(BaseModel):
    field: str = Field(description="Where: body.messages.3.msisdn, query.limit, path.id")
    message: str


class ErrorDetail(BaseModel):
    status: int
    code: str = Field(description="The status as a word: " + ", ".join(sorted(set(CODES.values()))))
    message: str = Field(description="What went wrong and what to do about it")
    fields: list[ErrorField] | None = Field(None, description="Per field, for 422")


class ErrorBody(BaseModel):
    """Every error answer's body."""

    error: ErrorDetail


SAFE = frozenset({"get", "head", "options"})
_ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}
_COMMON = {
    400: "The body is not valid JSON",
    401: "No credentials, or an unknown, revoked or expired one",
    403: "The caller's role lacks the permission, or the CSRF token is missing",
    413: "The body is larger than [api] body_max_bytes",
    422: "A field is invalid; ``fields`` names each",
    429: "Over the key's request rate; see Retry-After",
    503: "The store (or a service the request needs) is unavailable; try again shortly",
}


def _asks_who(dependant: Dependant) -> bool:
    from jingxin.api.auth import principal

    return any(sub.call is principal or _asks_who(sub) for sub in dependant.dependencies)


def _guards(dependant: Dependant) -> bool:
    """Does a check stand between the caller and the route beyond who they are (a
    permission, a check of its own on the principal)? Then it may answer 403."""
    from jingxin.api.auth import principal

    return any(sub.call is not principal and _asks_who(sub) for sub in dependant.dependencies)


def _security_schemes() -> dict[str, Any]:
    """The credentials :mod:`.auth` takes, as OpenAPI security schemes (any one will do)."""
    from jingxin.api.auth import CSRF_HEADER, SESSION_COOKIE

    return {
        "apiKey": {"type": "http", "scheme": "bearer",
                   "description": "An API key: Authorization: Bearer jx_..."},
        "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                         "description": "An API key in X-API-Key instead"},
        "consoleSession": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE,
                           "description": "A console session (log in first); unsafe "
                           f"methods also need its CSRF token in {CSRF_HEADER}"},
    }  # fmt: skip


def document(app: FastAPI, routers: list[APIRouter]) -> None:
    """Make ``app``'s OpenAPI spec say, for each operation of ``routers`` (the API's),
    which credentials it needs (those routes that ask for :func:`~.auth.principal`) and
    which errors it may answer, each with :class:`ErrorBody`: 401/429 where credentials
    are needed, 403 where a permission is (or CSRF, on unsafe methods), 400/413 with a
    body, 422 with any input, 503 everywhere (the store). FastAPI's own 422 schema
    (``detail``) is replaced: we never send it."""
    api_routes = [route for router in routers for route in router.routes
                  if isinstance(route, APIRoute)]  # fmt: skip
    app.state.api_routes = api_routes  # for the Allow header of a 405
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        spec = build()
        components = spec.setdefault("components", {})
        schemes = _security_schemes()
        components.setdefault("securitySchemes", {}).update(schemes)
        schemas = components.setdefault("schemas", {})
        body = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(body.pop("$defs", {}))
        schemas["ErrorBody"] = body
        routes = {(route.path_format, method.lower()): route for route in api_routes
                  for method in route.methods}  # fmt: skip
        for path, operations in spec.get("paths", {}).items():
            for method, operation in operations.items():
                route = routes.get((path, method))
                if route is None:
                    continue
                if _asks_who(route.dependant):
                    operation["security"] = [{name: []} for name in schemes]
                _document_operation(operation, route, method)
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]


def _document_operation(operation: dict[str, Any], route: APIRoute, method: str) -> None:
    responses = operation.setdefault("responses", {})
    statuses = {503}
    if operation.get("security"):
        statuses |= {401, 429}
        if method not in SAFE or _guards(route.dependant):
            statuses.add(403)
    if "requestBody" in operation:
        statuses |= {400, 413, 422}
    if operation.get("parameters"):
        statuses.add(422)
    for status in statuses:
        responses.setdefault(str(status), {"description": _COMMON[status]})
    for status, response in responses.items():
        if not status.startswith(("4", "5")):
            continue
        content = response.setdefault("content", {})
        if not content or _is_fastapi_validation(content):
            content.clear()
            content["application/json"] = {"schema": _ERROR_REF}


def _is_fastapi_validation(content: dict[str, Any]) -> bool:
    schema = content.get("application/json", {}).get("schema", {})
    return schema.get("$ref") == "#/components/schemas/HTTPValidationError"


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(RequestValidationError, _validation)  # type: ignore[arg-type]
    app.add_exception_handler(ApiError, _api_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http)  # type: ignore[arg-type]
    app.add_exception_handler(JingxinError, _jingxin)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)
