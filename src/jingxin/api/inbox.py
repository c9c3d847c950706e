"""The MO inbox over the API (``inbox.read``): the search of ``jingxin inbox list`` and one
MO in full (``jingxin inbox show``), from :mod:`jingxin.dispatch.inbox_view`.

Whose an MO is: the tenant of the message it is attributed to (``mo_outcomes.tenant_id``),
or of the hall that answered it. An enterprise sees only its own MO - another's, or one
still pending (not yet attributed), answers 404 as a missing id does; the operator sees
every MO. Numbers are whole for roles with ``numbers.view``, masked (also inside the
texts) for the others.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field

from jingxin.access.principal import Principal
from jingxin.api import errors
from jingxin.api.auth import allow

router = APIRouter(prefix="/api/v1", tags=["inbox"])

Outcome = Literal["handled", "no_handler", "failed", "pending"]


class Attribution(BaseModel):
    message_id: int = Field(description="The message the MO answers (GET /messages/{id})")
    tenant_id: str | None
    campaign_id: int | None
    source: str | None = Field(description="campaign, journey, fence, api, hall ...")
    source_id: str | None
    arm: str | None = Field(description="The experiment arm of the message, if any")
    text: str = Field(description="campaign 3 (message 17, arm B)")


class MoOut(BaseModel):
    id: int
    msisdn: str
    service_number: str
    channel: str
    text: str
    received_at: datetime
    complete: bool
    undecodable: bool = Field(description="The text is the payload as hex")
    parts: int
    parts_expected: int
    outcome: Outcome
    handler: str | None
    attribution: Attribution | None


class MoList(BaseModel):
    items: list[MoOut]
    total: int


class PartOut(BaseModel):
    seq: int
    total: int
    ref: int | None = Field(description="The concatenation reference (None: a single part)")
    coding: int
    octets: int
    smsc_id: str | None
    received_at: datetime


class MoDetail(MoOut):
    coding: int
    tenant_id: str | None = Field(description="Whose the MO counted for (None: pending)")
    detail: str | None = Field(description="What the handler did, or why it failed")
    reply_message_id: int | None
    handled_at: datetime | None
    parts_received: list[PartOut]


def shown_text(who: Principal, text: str, *, category: str | None = None) -> str:
    """A text as ``who`` may read it: numbers in it masked without ``numbers.view``, and a
    one-time code's text not shown at all then."""
    from jingxin.logs import mask_text

    if who.can("numbers.view"):
        return text
    return "(one-time code, not shown)" if category == "otp" else mask_text(text)


def _mo(who: Principal, r: Any) -> dict[str, Any]:
    attribution = None if r.message_id is None else {
        "message_id": r.message_id, "tenant_id": r.tenant_id, "campaign_id": r.campaign_id,
        "source": r.source, "source_id": r.source_id, "arm": r.arm,
        "text": r.attributed_to}  # fmt: skip
    return {"id": r.id, "msisdn": who.number(r.msisdn), "service_number": r.service_number,
            "channel": r.channel, "text": shown_text(who, r.text), "received_at": r.received_at,
            "complete": r.complete, "undecodable": r.undecodable, "parts": r.parts,
            "parts_expected": r.parts_expected, "outcome": r.outcome, "handler": r.handler,
            "attribution": attribution}  # fmt: skip


def _since(request: Request, who: Principal, since: str | None) -> datetime | None:
    """``since`` as an instant; without an offset, in the caller's tenant's zone."""
    if since is None:
        return None
    from jingxin.api.dashboard import tenant_zone
    from jingxin.cli.instants import parse_instant

    return parse_instant(since, option="since", zone=tenant_zone(request, who))


@router.get("/inbox", response_model=MoList)
def list_inbox(
    request: Request,
    q: str | None = Query(None, max_length=160, description="Text containing this"),
    msisdn: str | None = Query(None, max_length=32, description="Only from this number"),
    service_number: str | None = Query(None, max_length=21, pattern=r"^\d+$",
                                       description="To this number or its extensions"),
    since: str | None = Query(None, max_length=40, description=(
        "Received at or after this ISO instant (without an offset: the tenant's zone)")),
    status: Outcome | None = Query(None, description="What became of the MO"),
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=1_000_000),
    who: Principal = Depends(allow("inbox.read")),
) -> dict[str, Any]:
    """MO received, newest first, with their attribution and outcome (``jingxin inbox
    list``): the caller's tenant's (the operator: all)."""
    from jingxin.dispatch.inbox_view import MoFilter, count_mo, list_mo

    where = MoFilter(msisdn=msisdn, service_number=service_number, text=q,
                     since=_since(request, who, since), outcome=status, limit=limit,
                     offset=offset, tenant_id=None if who.operator else who.tenant_id)  # fmt: skip
    store = request.app.state.store
    rows = list_mo(store, where=where)
    total = count_mo(store, where=where) if rows or offset else 0
    return {"items": [_mo(who, r) for r in rows], "total": total}


@router.get("/inbox/{mo_id}", response_model=MoDetail,
            responses={404: {"description": "No such MO (or another tenant's)"}})
def get_inbox(request: Request, mo_id: int = Path(ge=1, le=2**63 - 1),
              who: Principal = Depends(allow("inbox.read"))) -> dict[str, Any]:  # fmt: skip
    """One MO in full (``jingxin inbox show``): text, parts, attribution, handler, outcome
    and its detail, the reply's message id."""
    from jingxin.dispatch.inbox_view import find_mo, mo_parts

    store = request.app.state.store
    r = find_mo(store, mo_id=mo_id, tenant_id=None if who.operator else who.tenant_id)
    if r is None:
        raise errors.not_found("MO", mo_id)
    parts = [asdict(p) for p in mo_parts(store, mo_id=mo_id)]
    return {**_mo(who, r), "coding": r.coding, "tenant_id": r.tenant_id,
            "detail": shown_text(who, r.detail) if r.detail else None,
            "reply_message_id": r.reply_message_id, "handled_at": r.handled_at,
            "parts_received": parts}  # fmt: skip
