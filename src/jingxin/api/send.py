"""The send API: an enterprise's messages into the delivery entry, and their status.

- ``POST /api/v1/send``: one message of the caller's tenant (its approved template, its
  signature) through :func:`jingxin.dispatch.deliver.deliver_many`, source ``api``, key
  ``api:<tenant>:<idempotency_key>``. 202 with the decision; a policy refusal (opt-out,
  quiet hours, caps, blacklist) is a decision, not an HTTP error. The same key again: 200,
  the first answer, ``Idempotent-Replay: true``; the same key with another body: 409.
- ``POST /api/v1/send/batch``: up to ``[api] batch_max`` messages, all checked first (422
  listing every bad item, nothing sent), then ONE ``deliver_many`` call.
- ``GET /api/v1/messages`` and ``/messages/{id}``: the tenant's messages, their parts and
  receipts (another tenant's id: 404).

The fast path: the event loop only parses, authenticates and parks the request with the
app's :class:`SendQueue`. One task at a time hands everything parked meanwhile to a
thread: each message checked with the delivery entry's own functions (number, approved
template, category, variables), the single sends merged into ONE ``deliver_many`` call (one
state read, one write: a group commit), then one read of the new rows (their parts). A
request pays for its share of a transaction instead of a whole one, and only one thread
writes (SQLite has one writer). The route never writes the outbox or the ledger itself.

A request's digest (number, category, template, variables, send_at, link) is the
message's ``source_id``: a replay is told from a conflicting reuse of its key by it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from jingxin.access.principal import Principal
from jingxin.api.auth import allow
from jingxin.api.errors import ApiError, not_found, respond
from jingxin.data.store.engine import Store, store_errors
from jingxin.data.store.models import Message, Receipt
from jingxin.data.store.models.audit import DecisionRecord
from jingxin.data.store.models.dispatch import MessagePart
from jingxin.data.store.models.messages import MESSAGE_STATES
from jingxin.dispatch.deliver import (
    Delivered,
    Delivery,
    DeliveryContext,
    deliver_many,
    deliver_one,
)
from jingxin.errors import InputError, TemplateError
from jingxin.logs import mask_text

router = APIRouter(prefix="/api/v1")

MERGE = 256  # single sends handed to one deliver_many call at most
REPLAY_HEADER = "Idempotent-Replay"
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


class PartOut(BaseModel):
    part_no: int
    state: str
    smsc_id: str
    error_code: str | None
    submitted_at: datetime
    receipt_at: datetime | None


class ReceiptOut(BaseModel):
    smsc_message_id: str
    status: str
    error_code: str | None
    received_at: datetime


class MessageOut(BaseModel):
    id: int
    msisdn: str | None
    category: str
    source: str
    status: str
    error_code: str | None
    parts: int
    idempotency_key: str
    created_at: datetime
    scheduled_at: datetime
    sent_at: datetime | None  # the SMSC took it (submitted)
    finished_at: datetime | None  # it reached its final state
    delivered_at: datetime | None


class MessageDetail(MessageOut):
    text: str | None  # None for OTP: a code is nobody's to read again
    expires_at: datetime | None
    part_states: list[PartOut]
    receipts: list[ReceiptOut]


class MessagePage(BaseModel):
    items: list[MessageOut]
    total: int


# -- the queue --------------------------------------------------------------------------


class Refusal(Exception):
    """An answer other than the results: 422 with the bad fields, or 409."""

    def __init__(self, status: int, message: str, fields: list[dict[str, str]] | None = None):
        super().__init__(message)
        self.status, self.message, self.fields = status, message, fields

    def response(self) -> JSONResponse:
        return respond(self.status, self.message, fields=self.fields)


@dataclass(slots=True)
class _Unit:
    deliveries: tuple[Delivery, ...]
    batch: bool
    future: asyncio.Future[Any]
    result: Any = None


@dataclass(frozen=True, slots=True)
class Sent:
    message_id: int | None
    status: str
    decision: str
    reasons: tuple[str, ...]
    parts: int | None
    send_at: datetime | None
    replayed: bool = False


class SendQueue:
    """The app's sends, parked on the event loop and delivered by one task at a time in a
    thread, everything parked meanwhile at once (see the module docstring)."""

    def __init__(self, store: Store, context: DeliveryContext, *, validity: timedelta,
                 merge: int = MERGE) -> None:  # fmt: skip
        self.store, self.context, self.validity, self.merge = store, context, validity, merge
        self._pending: list[_Unit] = []
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def of(cls, app_state: Any) -> SendQueue:
        """The app's queue, made on first use (the one DeliveryContext of its sends)."""
        queue = getattr(app_state, "send_queue", None)
        if queue is None:
            settings = app_state.settings
            queue = app_state.send_queue = cls(
                app_state.store, DeliveryContext.from_settings(settings),
                validity=timedelta(hours=settings.dispatch.validity_hours))  # fmt: skip
        return queue

    async def send(self, deliveries: list[Delivery], *, batch: bool) -> list[Sent]:
        loop = asyncio.get_running_loop()
        unit = _Unit(tuple(deliveries), batch, loop.create_future())
        self._pending.append(unit)
        task = self._task
        if task is None or task.done() or task.get_loop() is not loop:
            self._task = loop.create_task(self._drain())
        return await unit.future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while units := self._take(loop):
            try:
                await asyncio.to_thread(work, self.store, self.context, units)
            except Exception as exc:  # noqa: BLE001 - a bug: every waiter of the pass gets it
                for unit in units:
                    unit.result = exc
            for unit in units:
                if unit.future.done():  # the client went away; its messages were sent
                    continue
                if isinstance(unit.result, BaseException):
                    unit.future.set_exception(unit.result)
                else:
                    unit.future.set_result(unit.result)

    def _take(self, loop: asyncio.AbstractEventLoop) -> list[_Unit]:
        taken, kept, count = [], [], 0
        for unit in self._pending:
            if unit.future.get_loop() is loop and (not taken or count < self.merge):
                taken.append(unit)
                count += len(unit.deliveries)
            else:
                kept.append(unit)
        self._pending = kept
        return taken


def work(store: Store, context: DeliveryContext, units: list[_Unit]) -> None:
    """In a thread: check, deliver and read back each unit; its ``result`` is its list of
    :class:`Sent`, a :class:`Refusal` or the exception that failed it."""
    for unit in units:
        try:
            problems = [p for i, d in enumerate(unit.deliveries)
                        for p in check(store, context, d, item=i if unit.batch else None)]  # fmt: skip
            if problems:
                unit.result = _invalid(problems)
            elif unit.batch:
                unit.result = _conflicts(store, unit.deliveries)
        except Exception as exc:  # noqa: BLE001 - the store (503): this unit's answer
            unit.result = exc
    singles = [u for u in units if u.result is None and not u.batch]
    if singles:
        _deliver_singles(store, context, singles)
    for unit in units:
        if unit.result is None:
            try:
                unit.result = deliver_many(store, deliveries=unit.deliveries, context=context)
            except InputError as exc:
                unit.result = _invalid([_entry_problem(exc, batch=True)])
            except Exception as exc:  # noqa: BLE001 - this unit's answer (503, 500)
                unit.result = exc
    done = [u for u in units if isinstance(u.result, list)]
    if done:
        try:
            _answers(store, done)
        except Exception as exc:  # noqa: BLE001
            for unit in done:
                unit.result = exc


def _deliver_singles(store: Store, context: DeliveryContext, singles: list[_Unit]) -> None:
    """One deliver_many for every single send; if one of them is bad input after all
    (too long, a link with no place), each alone, so only that one fails."""
    try:
        made = deliver_many(store, deliveries=[u.deliveries[0] for u in singles], context=context)
    except InputError:
        made = None
    except Exception as exc:  # noqa: BLE001 - the store: every one of them answers 503
        for unit in singles:
            unit.result = exc
        return
    for n, unit in enumerate(singles):
        if made is not None:
            unit.result = [made[n]]
            continue
        try:
            unit.result = [deliver_one(store, delivery=unit.deliveries[0], context=context)]
        except InputError as exc:
            unit.result = _invalid([_entry_problem(exc, batch=False)])
        except Exception as exc:  # noqa: BLE001
            unit.result = exc


def _answers(store: Store, units: list[_Unit]) -> None:
    """Each unit's Delivered as :class:`Sent`, from ONE read of the rows (parts, state,
    the request digest) and, for replays only, of their first decisions."""
    ids = {d.message_id for u in units for d in u.result if d.message_id is not None}
    replays = [(dl, d) for u in units for dl, d in zip(u.deliveries, u.result, strict=True)
               if d.outcome == "duplicate"]  # fmt: skip
    M = Message.__table__.c
    with store_errors("reading the messages just sent"), store.engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(select(
            M.id, M.state, M.parts, M.source_id, M.scheduled_at, M.msisdn
        ).where(M.id.in_(ids)))} if ids else {}  # fmt: skip
        first = _first_decisions(conn, [(rows[d.message_id].msisdn, dl.idempotency_key)
                                        for dl, d in replays if d.message_id in rows])  # fmt: skip
    for unit in units:
        out = [_sent(dl, d, rows.get(d.message_id), first)
               for dl, d in zip(unit.deliveries, unit.result, strict=True)]  # fmt: skip
        clash = next((s for s in out if isinstance(s, str)), None)
        if clash is not None and not unit.batch:
            unit.result = Refusal(409, clash)
        else:
            unit.result = [s if isinstance(s, Sent) else
                           Sent(None, "refused", "reject", (CONFLICT,), None, None)
                           for s in out]  # fmt: skip


def _first_decisions(conn: Any, pairs: list[tuple[str, str]]) -> dict[str, tuple[str, str]]:
    if not pairs:
        return {}
    D = DecisionRecord.__table__.c
    found = conn.execute(select(D.idempotency_key, D.outcome, D.reasons).where(
        D.msisdn.in_({m for m, _ in pairs}), D.idempotency_key.in_({k for _, k in pairs}),
        D.outcome.in_(("send", "defer"))).order_by(D.id))  # fmt: skip
    kept: dict[str, tuple[str, str]] = {}
    for key, outcome, reasons in found:
        kept.setdefault(key, (outcome, reasons))
    return kept


def _sent(delivery: Delivery, got: Delivered, row: Any,
          first: dict[str, tuple[str, str]]) -> Sent | str:  # fmt: skip
    """The answer for one message, or why its key clashes (a str)."""
    if got.outcome == "rejected" or row is None:
        return Sent(None, "refused", "reject", got.reasons, None, None)
    if got.outcome != "duplicate":
        return Sent(row.id, row.state, DECISIONS[got.outcome], got.reasons, row.parts,
                    got.send_at)  # fmt: skip
    if row.source_id != delivery.source_id:
        key = delivery.idempotency_key.split(":", 2)[2]
        return (f"idempotency_key {key!r} was used for a different request (message "
                f"{row.id}); give a new key for a new message")  # fmt: skip
    outcome, reasons = first.get(delivery.idempotency_key, ("send", ""))
    return Sent(row.id, row.state, outcome, tuple(r for r in reasons.split(",") if r),
                row.parts, row.scheduled_at, replayed=True)  # fmt: skip


# -- checks -----------------------------------------------------------------------------


def check(store: Store, context: DeliveryContext, delivery: Delivery, *,
          item: int | None) -> list[dict[str, str]]:  # fmt: skip
    """What is wrong with one message, field by field, found by the delivery entry's own
    functions (number, approved template, category, variables); [] if nothing."""
    from jingxin.content.variables import validate_values
    from jingxin.dispatch.approval import check_category
    from jingxin.dispatch.deliver import LINK_VARIABLE, normalised

    at = "body." if item is None else f"body.messages.{item}."
    problems = []
    try:
        normalised(delivery.msisdn)
    except InputError as exc:
        problems.append({"field": at + "msisdn", "message": _after(str(exc), "msisdn: ")})
    code = delivery.template or ""
    try:
        approved = context.approved(store, tenant_id=delivery.tenant_id, code=code)
    except TemplateError as exc:
        text = (f"no template {code!r} approved for your tenant"
                if "no approved version" in str(exc) else str(exc))  # fmt: skip
        return [*problems, {"field": at + "template", "message": text}]
    try:
        check_category(approved=approved.category, sending=delivery.category,
                       what=f"template {code}")  # fmt: skip
    except InputError as exc:
        problems.append({"field": at + "category", "message": _after(str(exc), "category: ")})
    values = dict(delivery.variables)
    if delivery.link is not None and LINK_VARIABLE in approved.compiled.variables:
        values.setdefault(LINK_VARIABLE, delivery.link)  # the entry puts the short link there
    try:
        validate_values(approved.compiled.variables, values, where=f"template {code}")
    except TemplateError as exc:
        for problem in _after(str(exc), f"template {code}: ").split("; "):
            name = re.search(r"variable '([^']+)'", problem)
            where = f"variables.{name[1]}" if name else "variables"
            problems.append({"field": at + where, "message": problem})
    return problems


def _after(text: str, marker: str) -> str:
    return text.split(marker, 1)[1] if marker in text else text


def _invalid(problems: list[dict[str, str]]) -> Refusal:
    summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems[:5])
    more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
    return Refusal(422, summary + more, problems)


ENTRY_FIELDS = (("msisdn: ", "msisdn"), ("link: ", "link"), ("category: ", "category"),
                ("variable '", "variables"), ("template", "template"))  # fmt: skip


def _entry_problem(exc: InputError, *, batch: bool) -> dict[str, str]:
    """The field a refusal of the delivery entry names (it says "delivery #3 (key): link:
    ..." in a batch)."""
    text = str(exc)
    at = "body."
    index = re.match(r"delivery #(\d+) ", text)
    if batch and index:
        at = f"body.messages.{int(index[1]) - 1}."
    name = next((name for marker, name in ENTRY_FIELDS if marker in text), None)
    return {"field": at + (name or "template"), "message": text}


def _conflicts(store: Store, deliveries: tuple[Delivery, ...]) -> Refusal | None:
    """409 if a key of the batch was used for another request, before or in the batch."""
    seen: dict[str, tuple[int, str | None]] = {}
    clashes = []
    for i, d in enumerate(deliveries):
        before = seen.setdefault(d.idempotency_key, (i, d.source_id))
        if before[1] != d.source_id:
            clashes.append(f"messages.{i}: its idempotency_key is messages.{before[0]}'s "
                           "with another body")  # fmt: skip
    M = Message.__table__.c
    with store_errors("reading earlier keys"), store.engine.connect() as conn:
        found = conn.execute(select(M.idempotency_key, M.id, M.source_id).where(
            M.idempotency_key.in_(seen)))  # fmt: skip
        for key, message_id, digest in found:
            if digest != seen[key][1]:
                clashes.append(f"messages.{seen[key][0]}: its idempotency_key was used for a "
                               f"different request (message {message_id})")  # fmt: skip
    if not clashes:
        return None
    return Refusal(409, "; ".join(clashes[:5]) + "; give new keys for new messages")


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
Reader = Annotated[Principal, Depends(allow("messages.read"))]

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


def _message_out(m: Message, who: Principal) -> dict[str, Any]:
    key = m.idempotency_key.removeprefix(f"api:{m.tenant_id}:")  # the key its sender gave
    return {"id": m.id, "msisdn": who.number(m.msisdn), "category": m.category,
            "source": m.source, "status": m.state, "error_code": m.error_code,
            "parts": m.parts, "idempotency_key": key,
            "created_at": m.created_at, "scheduled_at": m.scheduled_at,
            "sent_at": m.submitted_at, "finished_at": m.finished_at,
            "delivered_at": m.finished_at if m.state == "delivered" else None}  # fmt: skip


@router.get("/messages/{message_id}", tags=["messages"], response_model=MessageDetail,
            responses={404: {"description": "no such message of your tenant"}})  # fmt: skip
def get_message(message_id: int, request: Request, who: Reader) -> Any:
    """One message of your tenant: its state, its parts with their own states, the
    receipts the SMSC sent, and when it was queued, sent and delivered. The number is
    masked for roles without ``numbers.view``."""
    store: Store = request.app.state.store
    with store.transaction() as session:
        m = session.get(Message, message_id)
        if m is None or m.tenant_id != who.tenant_id:
            raise not_found("message", message_id)
        parts = session.scalars(select(MessagePart).where(MessagePart.message_id == m.id)
                                .order_by(MessagePart.part_no)).all()  # fmt: skip
        receipts = session.scalars(select(Receipt).where(Receipt.message_id == m.id)
                                   .order_by(Receipt.id)).all()  # fmt: skip
        text = None if m.category == "otp" else m.text
        if text is not None and not who.can("numbers.view"):
            text = mask_text(text)
        return {**_message_out(m, who), "text": text, "expires_at": m.expires_at,
                "part_states": [PartOut.model_validate(p, from_attributes=True) for p in parts],
                "receipts": [ReceiptOut.model_validate(r, from_attributes=True)
                             for r in receipts]}  # fmt: skip


@router.get("/messages", tags=["messages"], response_model=MessagePage)
def list_messages(request: Request, who: Reader, msisdn: str | None = None,
                  status: str | None = Query(None, max_length=16),
                  since: AwareDatetime | None = None,
                  limit: int = Query(50, ge=1, le=500),
                  offset: int = Query(0, ge=0)) -> Any:  # fmt: skip
    """Your tenant's messages, newest first: by number (any form), state (``queued``,
    ``delivered``, ...) and created since (ISO 8601 with an offset)."""
    from jingxin.dispatch.deliver import normalised

    conditions = [Message.tenant_id == who.tenant_id]
    if msisdn is not None:
        try:
            conditions.append(Message.msisdn == normalised(msisdn))
        except InputError as exc:
            raise ApiError(422, _after(str(exc), "msisdn: "), field="query.msisdn") from exc
    if status is not None:
        if status not in MESSAGE_STATES:
            raise ApiError(422, f"unknown status {status!r}; use one of "
                           f"{', '.join(MESSAGE_STATES)}", field="query.status")  # fmt: skip
        conditions.append(Message.state == status)
    if since is not None:
        conditions.append(Message.created_at >= since)
    store: Store = request.app.state.store
    with store.transaction() as session:
        total = session.scalar(select(func.count()).select_from(Message).where(*conditions))
        rows = session.scalars(select(Message).where(*conditions).order_by(Message.id.desc())
                               .limit(limit).offset(offset)).all()  # fmt: skip
        return {"items": [_message_out(m, who) for m in rows], "total": total or 0}


__all__ = ["SendQueue", "router"]
