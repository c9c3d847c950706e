"""The caller's callback endpoint and its deliveries (``jingxin callbacks`` over HTTP).

A tenant has at most one endpoint: the URL its receipts and MO are POSTed to, the kinds
it takes, and the secret each POST is signed with (:mod:`jingxin.callbacks`). ``PUT``
creates or changes it and answers the secret only when one is made (on create, or with
``?rotate=true``); ``GET`` never shows it. Changing it needs ``callbacks.manage``;
reading it and its deliveries ``messages.read`` or ``callbacks.manage``. Everything is the
caller's tenant's: there is no id to name another's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from jingxin.access.principal import Principal
from jingxin.api.auth import allow, audit, principal
from jingxin.api.errors import ApiError
from jingxin.api.limits import OFFSET_MAX
from jingxin.callbacks import (
    HttpPoster,
    delete_endpoint,
    get_endpoint,
    kinds_of,
    list_deliveries,
    requeue,
    send_test,
    set_endpoint,
)
from jingxin.callbacks.queue import counts
from jingxin.data.store.models import CallbackDelivery, CallbackEndpoint
from jingxin.logs import mask_text

router = APIRouter(prefix="/api/v1", tags=["callbacks"])

Kind = Literal["receipt", "mo"]
State = Literal["pending", "delivered", "dead"]
NO_ENDPOINT = {404: {"description": "The caller's tenant has no callback endpoint"}}
FORBIDDEN = {403: {"description": "The caller's role lacks the permission"}}


async def reader(who: Principal = Depends(principal)) -> Principal:
    """A dependency: the caller, if they may read callbacks (``messages.read`` or
    ``callbacks.manage``), else 403."""
    if not (who.can("messages.read") or who.can("callbacks.manage")):
        raise ApiError(403, f"the role {who.role!r} may not do this (needs messages.read "
                       "or callbacks.manage)")  # fmt: skip
    return who


Reader = Annotated[Principal, Depends(reader)]
Manager = Annotated[Principal, Depends(allow("callbacks.manage"))]


# ----------------------------------------------------------------------------- schemas


class EndpointBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2000, examples=["https://example.com/jingxin"],
                     description="http(s) URL to POST to (https only in production)")
    kinds: list[Kind] = Field(default=["receipt", "mo"], min_length=1, max_length=2,
                              description="What to push: delivery receipts, MO replies")
    enabled: bool = Field(True, description="false: keep the endpoint, push nothing")


class Deliveries(BaseModel):
    pending: int = 0
    delivered: int = 0
    dead: int = 0


class EndpointOut(BaseModel):
    url: str
    kinds: list[Kind]
    enabled: bool
    created_at: datetime
    updated_at: datetime
    deliveries: Deliveries = Field(description="The tenant's deliveries by state")

    @classmethod
    def of(cls, row: CallbackEndpoint, by_state: dict[str, int] | None = None) -> EndpointOut:
        return cls(url=row.url, kinds=list(kinds_of(row)), enabled=row.enabled,  # type: ignore[arg-type]
                   created_at=row.created_at, updated_at=row.updated_at,
                   deliveries=Deliveries(**(by_state or {})))  # fmt: skip


class EndpointSetOut(EndpointOut):
    created: bool
    secret: str | None = Field(description="The signing secret: only when made (create, or "
                               "rotate=true); store it now, it is not shown again")  # fmt: skip


class PingOut(BaseModel):
    delivery_id: str = Field(description="The X-Jingxin-Delivery header sent")
    ok: bool = Field(description="The endpoint answered 2xx")
    status: int | None = Field(description="Its HTTP status; null when it did not answer")
    error: str | None
    seconds: float


class DeliveryOut(BaseModel):
    id: int = Field(description="Also the X-Jingxin-Delivery header: the same on retries")
    kind: Kind
    event_key: str
    state: State
    attempts: int
    next_attempt_at: datetime | None = Field(description="When a pending one is tried next")
    last_status: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    payload: dict[str, Any] = Field(description="The event: the body's data")


class DeliveryList(BaseModel):
    items: list[DeliveryOut]
    total: int


class RetryBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dead: bool = Field(False, description="Also bring dead deliveries back (attempts reset)")


class RetryOut(BaseModel):
    requeued: int


def _delivery(row: CallbackDelivery, who: Principal) -> DeliveryOut:
    payload = dict(row.payload or {})
    if not who.can("numbers.view"):
        payload["msisdn"] = who.number(payload.get("msisdn"))
        if isinstance(payload.get("text"), str):
            payload["text"] = mask_text(payload["text"])
    return DeliveryOut(id=row.id, kind=row.kind, event_key=row.event_key, state=row.state,  # type: ignore[arg-type]
                       attempts=row.attempts,
                       next_attempt_at=row.next_attempt_at if row.state == "pending" else None,
                       last_status=row.last_status, last_error=row.last_error,
                       created_at=row.created_at, delivered_at=row.delivered_at,
                       payload=payload)  # fmt: skip


def _no_endpoint(who: Principal) -> ApiError:
    return ApiError(404, f"tenant {who.tenant_id} has no callback endpoint; PUT "
                    "/api/v1/callbacks to set one")  # fmt: skip


# ----------------------------------------------------------------------------- routes


@router.get("/callbacks", response_model=EndpointOut, responses={**NO_ENDPOINT, **FORBIDDEN})
def show_endpoint(request: Request, who: Reader) -> EndpointOut:
    """The caller's callback endpoint (never its secret) and its deliveries by state."""
    with request.app.state.store.transaction() as session:
        row = get_endpoint(session, tenant_id=who.tenant_id)
        if row is None:
            raise _no_endpoint(who)
        by_state = counts(session, tenant_id=who.tenant_id).get(who.tenant_id)
        return EndpointOut.of(row, by_state)


@router.put("/callbacks", response_model=EndpointSetOut, responses={
    201: {"description": "Created: the answer carries the secret", "model": EndpointSetOut},
    **FORBIDDEN})  # fmt: skip
def put_endpoint(body: EndpointBody, request: Request, response: Response, who: Manager,
                 rotate: Annotated[bool, Query(description="Make a new signing secret")] = False,
                 ) -> EndpointSetOut:  # fmt: skip
    """Set the caller's callback endpoint. A new endpoint (201), or ``rotate=true``, gets a
    new signing secret, answered here once; otherwise the secret stays as it was.
    Deliveries are signed ``X-Jingxin-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret,
    "<t>.<body>")>``."""
    production = request.app.state.settings.serve.environment == "production"
    with request.app.state.store.transaction() as session:
        made = set_endpoint(session, tenant_id=who.tenant_id, url=body.url, kinds=body.kinds,
                            enabled=body.enabled, rotate=rotate, production=production)  # fmt: skip
        row = made.endpoint
        audit(session, who, "callbacks.set", "callback_endpoint", who.tenant_id,
              {"url": row.url, "kinds": row.kinds, "enabled": row.enabled,
               "rotated": made.secret is not None and not made.created})  # fmt: skip
        by_state = counts(session, tenant_id=who.tenant_id).get(who.tenant_id)
        view = EndpointOut.of(row, by_state)
    if made.created:
        response.status_code = 201
    return EndpointSetOut(**view.model_dump(), created=made.created, secret=made.secret)


@router.delete("/callbacks", status_code=204, response_class=Response,
               responses={**NO_ENDPOINT, **FORBIDDEN})  # fmt: skip
def remove_endpoint(request: Request, who: Manager) -> Response:
    """Remove the caller's endpoint. Deliveries not yet sent stay queued and go to the
    next endpoint set; nothing new is collected meanwhile."""
    with request.app.state.store.transaction() as session:
        if not delete_endpoint(session, tenant_id=who.tenant_id):
            raise _no_endpoint(who)
        audit(session, who, "callbacks.delete", "callback_endpoint", who.tenant_id)
    return Response(status_code=204)


@router.post("/callbacks/test", response_model=PingOut, responses={**NO_ENDPOINT, **FORBIDDEN})
def ping_endpoint(request: Request, who: Manager) -> PingOut:
    """POST a signed ``test`` event (``X-Jingxin-Event: test``) to the caller's endpoint
    now, outside the queue, and answer what it got (waits up to ``[api]
    callback_timeout_seconds``)."""
    with request.app.state.store.transaction() as session:
        row = get_endpoint(session, tenant_id=who.tenant_id)
        if row is None:
            raise _no_endpoint(who)
        url, secret = row.url, row.secret
    poster = HttpPoster(timeout=request.app.state.settings.api.callback_timeout_seconds)
    try:
        delivery_id, got = send_test(poster, url=url, secret=secret, tenant_id=who.tenant_id)
    finally:
        poster.close()
    return PingOut(delivery_id=delivery_id, ok=got.ok, status=got.status, error=got.error,
                   seconds=round(got.seconds, 3))  # fmt: skip


@router.get("/callbacks/deliveries", response_model=DeliveryList, responses=FORBIDDEN)
def deliveries(request: Request, who: Reader,
               state: Annotated[State | None, Query(description="Only in this state")] = None,
               limit: Annotated[int, Query(ge=1, le=500)] = 50,
               offset: Annotated[int, Query(ge=0, le=OFFSET_MAX)] = 0,
               ) -> DeliveryList:  # fmt: skip
    """The caller's deliveries, newest first: what was pushed, what waits for a retry
    (``last_error`` says why) and what is dead."""
    with request.app.state.store.transaction() as session:
        rows, total = list_deliveries(session, tenant_id=who.tenant_id, state=state,
                                      limit=limit, offset=offset)  # fmt: skip
        return DeliveryList(items=[_delivery(row, who) for row in rows], total=total)


@router.post("/callbacks/retry", response_model=RetryOut, responses=FORBIDDEN)
def retry(body: RetryBody, request: Request, who: Manager) -> RetryOut:
    """Make the caller's deliveries waiting out a back-off due now; with ``dead: true``
    also bring its dead ones back (``jingxin callbacks retry [--dead]``)."""
    with request.app.state.store.transaction() as session:
        changed = requeue(session, tenant_id=who.tenant_id, dead=body.dead)
        audit(session, who, "callbacks.retry", "callback_endpoint", who.tenant_id,
              {"dead": body.dead, "requeued": changed})
    return RetryOut(requeued=changed)
