"""The SMS business hall over the API: its menus, the conversations of a number, its report.

- ``GET /hall/menus``, ``GET /hall/menus/{service_number}`` (``hall.read``): the halls in
  use - the menu file's, with the edits made here (:mod:`jingxin.hall.menu_edits`) - as
  YAML text and as parsed JSON;
- ``PUT /hall/menus/{service_number}`` (``hall.write``): replace a hall's menu. Checked as
  the hall checks its menu file (the same model, the texts' fields as ``jingxin hall menu
  check``); refused with 422 naming each field and line, nothing written. The running
  worker answers with it from its next batch (within ``RELOAD_SECONDS``);
- ``GET /hall/conversations?msisdn=`` (``hall.read``): a number's MO and the messages it
  was sent, in time order;
- ``GET /hall/report`` (``hall.read``): the figures of ``jingxin hall report``.

Whose a hall is: its ``tenant`` in the menu file. An enterprise sees and edits its own
halls only (another's answers 404); the operator sees and edits every hall.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from jingxin.access.principal import Principal
from jingxin.api import auth, errors
from jingxin.api.auth import allow
from jingxin.config import Settings
from jingxin.errors import ConfigError
from jingxin.hall.menu import HallMenu

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1", tags=["hall"])

NOT_FOUND = {404: {"description": "No such hall (or another tenant's)"}}


class ZoneOut(BaseModel):
    zone: str
    title: str


class HallSummary(BaseModel):
    service_number: str
    tenant: str
    name: str
    zones: list[ZoneOut]
    rewards: int = Field(description="Rewards points buy (DH<code>)")
    edited: bool = Field(description="The menu was edited over the API")
    updated_at: datetime | None = Field(description="When it was edited (None: never)")
    edit_problem: str | None = Field(
        description="Why an edit on disk is not in use (it no longer validates)")


class HallList(BaseModel):
    items: list[HallSummary]
    total: int


class HallMenuOut(HallSummary):
    yaml: str = Field(description="The hall as YAML: the edit as written, else its entry "
                                  "of the menu file (re-emitted, without comments)")
    menu: dict[str, Any] = Field(description="The hall as the hall reads it, defaults filled")


class MenuEdit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    yaml: str = Field(min_length=1, max_length=64 * 1024, description=(
        "One hall in YAML: service_number, name, menu, zones, complaint_words, rewards, "
        "survey, texts (as an entry of the menu file; service_number and tenant may be "
        "left out, neither may change)"))  # fmt: skip


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _visible(who: Principal, hall: HallMenu) -> bool:
    return who.operator or hall.tenant == who.tenant_id


def _summary(hall: HallMenu, edit: Any) -> dict[str, Any]:
    return {
        "service_number": hall.service_number, "tenant": hall.tenant, "name": hall.name,
        "zones": [{"zone": key, "title": zone.title} for key, zone in sorted(hall.zones.items())],
        "rewards": len(hall.rewards), "edited": edit is not None and edit.hall is not None,
        "updated_at": edit.updated_at if edit is not None else None,
        "edit_problem": edit.problem if edit is not None else None,
    }  # fmt: skip


def _halls(settings: Settings) -> tuple[Any, dict[str, Any]]:
    """The menu in use and the edits on disk (by service number)."""
    from jingxin.hall.menu import load_menu
    from jingxin.hall.menu_edits import edits_dir, read_edits, with_edits

    try:
        base = load_menu(settings.hall.menu_path)
    except ConfigError as exc:
        log.error("hall menu: %s", exc)
        raise errors.ApiError(503, "the hall's menu file does not load; the server's log "
                                   "says why ([hall] menu_path)") from exc  # fmt: skip
    edits = read_edits(edits_dir(settings), base)
    return with_edits(base, edits), edits


def _one(settings: Settings, who: Principal, service_number: str) -> HallMenuOut:
    from jingxin.hall.menu_edits import base_hall_yaml

    menu, edits = _halls(settings)
    hall = menu.hall_at(service_number)
    if hall is None or not _visible(who, hall):
        raise errors.not_found("hall at", service_number)
    edit = edits.get(service_number)
    text = edit.text if edit is not None and edit.hall is not None else (
        base_hall_yaml(settings, service_number) or "")  # fmt: skip
    return HallMenuOut(**_summary(hall, edit), yaml=text, menu=hall.model_dump(mode="json"))


@router.get("/hall/menus", response_model=HallList)
def list_menus(request: Request, limit: int = Query(50, ge=1, le=500),
               offset: int = Query(0, ge=0, le=1_000_000),
               who: Principal = Depends(allow("hall.read"))) -> dict[str, Any]:  # fmt: skip
    """The halls in use, by service number: the caller's tenant's (the operator: all)."""
    menu, edits = _halls(_settings(request))
    halls = [_summary(h, edits.get(h.service_number)) for h in menu.halls if _visible(who, h)]
    return {"items": halls[offset:offset + limit], "total": len(halls)}


@router.get("/hall/menus/{service_number}", response_model=HallMenuOut, responses=NOT_FOUND)
def get_menu(request: Request, service_number: str,
             who: Principal = Depends(allow("hall.read"))) -> HallMenuOut:  # fmt: skip
    """One hall's menu, as YAML text and as parsed JSON (exactly this service number)."""
    return _one(_settings(request), who, service_number)


@router.put("/hall/menus/{service_number}", response_model=HallMenuOut, responses={
    **NOT_FOUND, 422: {"description": "The menu does not validate: every field and line"}})
def put_menu(request: Request, service_number: str, body: MenuEdit,
             who: Principal = Depends(allow("hall.write"))) -> Any:  # fmt: skip
    """Replace a hall's menu (texts, zones, rewards, survey). The running hall answers with
    it from its next batch of MO, within a few seconds."""
    from jingxin.hall.menu_edits import MenuRefused, parse_hall, save_edit

    settings = _settings(request)
    menu, _ = _halls(settings)
    hall = menu.hall_at(service_number)
    if hall is None or not _visible(who, hall):
        raise errors.not_found("hall at", service_number)
    try:
        parse_hall(body.yaml, service_number=service_number, tenant=hall.tenant)
    except MenuRefused as exc:
        fields = [{"field": f"body.yaml.{p.field}" if p.field != "yaml" else "body.yaml",
                   "message": str(p)} for p in exc.problems]  # fmt: skip
        return errors.respond(422, f"the menu of {service_number} does not validate: {exc}",
                              fields=fields)  # fmt: skip
    store = request.app.state.store
    with store.transaction() as session:
        auth.audit(session, who, "hall.menu.update", "hall", service_number,
                   {"tenant": hall.tenant, "bytes": len(body.yaml.encode())})  # fmt: skip
        save_edit(settings, service_number=service_number, text=body.yaml)
    return _one(settings, who, service_number)


# ----------------------------------------------------------------------------- conversations


class TurnOut(BaseModel):
    direction: str = Field(description="mo: the number wrote; mt: it was sent a message")
    id: int = Field(description="The MO's id (GET /inbox/{id}), or the message's")
    at: datetime
    text: str
    service_number: str | None = Field(description="MO: the number written to; MT: the "
                                                   "sender, when recorded")
    state: str = Field(description="MO: handled, no_handler, failed or pending; MT: the "
                                   "message's state")
    handler: str | None = None
    command: str | None = Field(None, description="The hall's command, when it answered")
    category: str | None = None
    source: str | None = None


class Conversation(BaseModel):
    msisdn: str
    items: list[TurnOut]
    total: int


@router.get("/hall/conversations", response_model=Conversation)
def conversations(request: Request, msisdn: str = Query(min_length=3, max_length=32),
                  limit: int = Query(50, ge=1, le=500),
                  who: Principal = Depends(allow("hall.read"))) -> dict[str, Any]:  # fmt: skip
    """The last ``limit`` MO of a number and the messages it was sent (hall replies
    among them), oldest first. An enterprise sees its own MO (attributed to its messages,
    or answered by its hall) and its own messages."""
    from jingxin.api.inbox import shown_text
    from jingxin.dispatch.inbox_view import conversation

    turns = conversation(request.app.state.store, msisdn=msisdn, limit=limit,
                         tenant_id=None if who.operator else who.tenant_id)  # fmt: skip
    items = [{"direction": t.direction, "id": t.id, "at": t.at,
              "text": shown_text(who, t.text, category=t.category),
              "service_number": t.service_number, "state": t.state, "handler": t.handler,
              "command": t.command, "category": t.category, "source": t.source}
             for t in turns]  # fmt: skip
    return {"msisdn": who.number(msisdn), "items": items, "total": len(items)}


# ----------------------------------------------------------------------------- report


class ZoneConversionOut(BaseModel):
    zone: str
    viewers: int = Field(description="Distinct numbers that listed the zone")
    orders: int
    placed: int
    conversion: float | None = Field(description="placed / viewers")


class ChainOut(BaseModel):
    msisdns: list[str] = Field(description="Root referrer first (masked without numbers.view)")
    depth: int
    converted: int


class ReferralsOut(BaseModel):
    referrals: int
    converted: int
    converted_share: float | None
    chains: int
    max_depth: int
    depths: dict[str, int] = Field(description="Depth of a root's longest chain -> roots")
    longest: list[ChainOut]


class NpsOut(BaseModel):
    answers: int
    promoters: int
    passives: int
    detractors: int
    score: float | None = Field(description="-100 .. 100")


class HallReportOut(BaseModel):
    since: datetime
    until: datetime
    months: int
    tenant_id: str | None = Field(description="None: every tenant's halls")
    users: int
    interactions: int
    kinds: dict[str, int] = Field(description="query, order, other -> interactions")
    zones: list[ZoneConversionOut]
    order_states: dict[str, int]
    referrals: ReferralsOut
    nps: NpsOut
    complaints: int


@router.get("/hall/report", response_model=HallReportOut, responses=NOT_FOUND)
def report(request: Request, months: int = Query(3, ge=1, le=36),
           tenant: str | None = Query(None, max_length=64, description=(
               "The operator only: one tenant's halls (default: every tenant's)")),
           who: Principal = Depends(allow("hall.read"))) -> dict[str, Any]:  # fmt: skip
    """The hall's report (``jingxin hall report --json``): users, queries versus orders,
    conversion per zone, orders by state, referral chains, NPS, complaints - of the
    caller's tenant's halls (the operator: every tenant's, or ``tenant``'s)."""
    from jingxin.hall.report import hall_report

    if not who.operator:
        if tenant not in (None, who.tenant_id):
            raise errors.not_found("tenant", tenant)
        tenant = who.tenant_id
    found = hall_report(request.app.state.store, now=datetime.now(UTC), months=months,
                        tenant_id=tenant).to_json()  # fmt: skip
    for chain in found["referrals"]["longest"]:
        chain["msisdns"] = [who.number(n) for n in chain["msisdns"]]
    return found
