"""Message status: ``GET /api/v1/messages`` and ``/messages/{id}``, the tenant's messages
(whichever sender queued them), their parts and receipts; another tenant's id: 404."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import AwareDatetime, BaseModel
from sqlalchemy import func, select

from jingxin.access.principal import Principal
from jingxin.api.auth import allow
from jingxin.api.errors import ApiError, owned
from jingxin.api.limits import BIGINT_MAX, OFFSET_MAX
from jingxin.data.store.engine import Store
from jingxin.data.store.models import Message, Receipt
from jingxin.data.store.models.dispatch import MessagePart
from jingxin.data.store.models.messages import MESSAGE_STATES
from jingxin.errors import InputError
from jingxin.logs import mask_text

router = APIRouter(prefix="/api/v1")

Reader = Annotated[Principal, Depends(allow("messages.read"))]


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
def get_message(request: Request, who: Reader,
                message_id: int = Path(ge=1, le=BIGINT_MAX)) -> Any:  # fmt: skip
    """One message of your tenant: its state, its parts with their own states, the
    receipts the SMSC sent, and when it was queued, sent and delivered. The number is
    masked for roles without ``numbers.view``."""
    store: Store = request.app.state.store
    with store.transaction() as session:
        m = owned(session, Message, message_id, tenant_id=who.tenant_id, what="message")
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
                  offset: int = Query(0, ge=0, le=OFFSET_MAX)) -> Any:  # fmt: skip
    """Your tenant's messages, newest first: by number (any form), state (``queued``,
    ``delivered``, ...) and created since (ISO 8601 with an offset)."""
    from jingxin.dispatch.deliver import normalised

    conditions = [Message.tenant_id == who.tenant_id]
    if msisdn is not None:
        try:
            conditions.append(Message.msisdn == normalised(msisdn))
        except InputError as exc:
            raise ApiError(422, str(exc).split("msisdn: ", 1)[-1], field="query.msisdn") from exc
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
