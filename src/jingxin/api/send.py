"""The send API: an enterprise's messages into the delivery entry, and their status.

- ``POST /api/v1/send``: one message of the caller's tenant (its approved template, its
  signature) through :func:`jingxin.dispatch.deliver.deliver_many`, source ``api``, key
  ``api:<tenant>:<idempotency_key>``. 202 with the decision; a policy refusal (opt-out,
  quiet hours, caps, blacklist) is a decision, not an HTTP error. The same key again: 200,
  the first answer, ``Idempotent-Replay: true``; the same key with another body: 409.
- ``POST /api/v1/send/batch``: up to ``[api] batch_max`` messages, all checked first (422
  listing every bad item, nothing sent), then ONE ``deliver_many`` call.

The fast path is :mod:`.send_queue`: requests are parked on the event loop and delivered
together in a thread. Message status is :mod:`.messages`.

A request's digest (number, category, template, variables, send_at, link) is the
message's ``source_id``: a replay is told from a conflicting reuse of its key by it.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from jingxin.access.principal import Principal
from jingxin.api.auth import allow
from jingxin.api.errors import ApiError
from jingxin.api.send_queue import Refusal, Sent, SendQueue
from jingxin.dispatch.deliver import (
    Delivery,
)
from jingxin.errors import InputError

router = APIRouter(prefix="/api/v1")

MERGE = 256  # single sends handed to one deliver_many call at most
REPLAY_HEADER = "Idempotent-Replay"
SEND_AHEAD_DAYS = 90  # a send_at further ahead is refused (a typo in the year, mostly)
CONFLICT = "idempotency_conflict"  # a batch item whose key a concurrent request took
DECISIONS = {"queued": "send", "deferred": "defer", "rejected": "reject"}
CODE = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"  # a template code, as the catalogue has them


# -- the request and the answer ---------------------------------------------------------


class SendRequest(BaseModel):
    """One message: a number, the category, an approved template of your tenant and its
    variables, your idempotency key; optionally when (send_at) and a link."""

    model_config = ConfigDict(extra="forbid")

    msisdn: str = Field(min_length=1, max_length=32, examples=["13812345678"])
    category: Literal["otp", "notification", "marketing"]
    template: str = Field(pattern=CODE, examples=["verify.code"])
    variables: dict[str, Any] = Field(default_factory=dict, max_length=64)
    idempotency_key: str = Field(pattern=r"^\S{1,100}$", examples=["order-20261123-0042"])
    send_at: AwareDatetime | None = None  # ISO 8601 with an offset; none: as soon as allowed
    link: str | None = Field(default=None, pattern=r"^https://\S+$", max_length=2000)

    @field_validator("send_at")
    @classmethod
    def _not_too_far(cls, value: datetime | None) -> datetime | None:
        if value is not None and value > datetime.now(UTC) + timedelta(days=SEND_AHEAD_DAYS):
            raise ValueError(f"at most {SEND_AHEAD_DAYS} days ahead; schedule later sends "
                             "later, or as a campaign")
        return value


class SendBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    messages: list[SendRequest] = Field(min_length=1)


class SendResult(BaseModel):
    """What became of one message. ``decision`` is policy's: ``send``, ``defer`` (later:
    quiet hours, a blackout) or ``reject`` (``reasons`` say why; no message then)."""

    message_id: int | None
    status: str  # the message's state (queued, submitted, delivered, ...); "refused" if rejected
    decision: Literal["send", "defer", "reject"]
    reasons: list[str]
    parts: int | None
    send_at: datetime | None
    replayed: bool = False  # the key was used before: this is the first request's message


class BatchResult(BaseModel):
    results: list[SendResult]


def _digest(body: SendRequest) -> str:
    """The request as its key's owner sent it: a replay has the same digest."""
    from jingxin.dispatch.deliver import normalised

    try:
        number = normalised(body.msisdn)
    except InputError:
        number = body.msisdn
    send_at = body.send_at.astimezone(UTC).isoformat() if body.send_at else None
    raw = json.dumps([number, body.category, body.template, body.variables, send_at, body.link],
                     ensure_ascii=False, sort_keys=True, default=str, separators=(",", ":"))  # fmt: skip
    return "req:" + hashlib.blake2b(raw.encode(), digest_size=16).hexdigest()


def _delivery(body: SendRequest, tenant: str, validity: timedelta) -> Delivery:
    return Delivery(msisdn=body.msisdn, source="api", category=body.category,
                    idempotency_key=f"api:{tenant}:{body.idempotency_key}", tenant_id=tenant,
                    source_id=_digest(body), template=body.template, variables=body.variables,
                    wanted_at=body.send_at, validity=validity, link=body.link)  # fmt: skip


def _out(sent: Sent) -> SendResult:
    return SendResult(message_id=sent.message_id, status=sent.status, decision=sent.decision,
                      reasons=list(sent.reasons), parts=sent.parts, send_at=sent.send_at,
                      replayed=sent.replayed)  # fmt: skip


# -- routes -----------------------------------------------------------------------------

Sender = Annotated[Principal, Depends(allow("send"))]

SEND_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "the body is not JSON"}, 403: {"description": "no send permission"},
    409: {"description": "the idempotency key was used for another request"},
    422: {"description": "a bad field (number, template, category, variable, ...)"},
    429: {"description": "over the key's rate; see Retry-After"}}  # fmt: skip


@router.post("/send", tags=["send"], status_code=202, response_model=SendResult,
             responses={**SEND_ERRORS, 200: {"model": SendResult,
                                             "description": "a replay of the key"}})  # fmt: skip
async def send_one(body: SendRequest, request: Request, response: Response,
                   who: Sender) -> Any:  # fmt: skip
    """Send one message of your tenant: an approved template of yours, with its variables,
    under your signature. Answers 202 with policy's decision (a refusal by policy is
    ``decision: reject`` with its reasons, not an error). The same ``idempotency_key``
    again answers 200 with the first request's message and ``Idempotent-Replay: true``;
    with a different body, 409."""
    queue = SendQueue.of(request.app.state)
    try:
        (sent,) = await queue.send([_delivery(body, who.tenant_id, queue.validity)], batch=False)
    except Refusal as refusal:
        return refusal.response()
    if sent.replayed:
        response.status_code = 200
        response.headers[REPLAY_HEADER] = "true"
    return _out(sent)


async def _batch_sender(request: Request, who: Sender) -> Principal:
    """The caller, once the batch is known to fit ``[api] batch_max`` (413 before the
    items are validated: a huge batch is refused without reading each item)."""
    limit = request.app.state.settings.api.batch_max
    try:
        raw = await request.json()
    except ValueError:
        return who  # FastAPI answers 400 for it
    messages = raw.get("messages") if isinstance(raw, dict) else None
    if isinstance(messages, list) and len(messages) > limit:
        raise ApiError(413, f"the batch holds {len(messages)} messages; at most {limit} may "
                       "be sent in one request ([api] batch_max): split it")  # fmt: skip
    return who


@router.post("/send/batch", tags=["send"], status_code=202, response_model=BatchResult,
             responses={**SEND_ERRORS, 413: {"description": "more than batch_max messages"}})
async def send_batch(body: SendBatch, request: Request,
                     who: Annotated[Principal, Depends(_batch_sender)]) -> Any:  # fmt: skip
    """Send up to ``[api] batch_max`` messages at once. Every message is checked first: if
    any is bad, 422 lists each bad one (``body.messages.<index>.<field>``) and nothing is
    sent. Otherwise one call of the delivery entry; the results in the same order (a key
    used before answers its first message, ``replayed: true``). A batch counts as one
    request for the key's rate limit."""
    queue = SendQueue.of(request.app.state)
    deliveries = [_delivery(m, who.tenant_id, queue.validity) for m in body.messages]
    try:
        sent = await queue.send(deliveries, batch=True)
    except Refusal as refusal:
        return refusal.response()
    return BatchResult(results=[_out(s) for s in sent])


__all__ = ["router"]
