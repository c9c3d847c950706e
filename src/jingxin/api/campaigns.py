"""API routes: campaigns of the caller's tenant - draft, preview, schedule, watch, control.

A campaign is the spec ``jingxin campaign run`` reads (:class:`~jingxin.dispatch.
campaign_spec.CampaignSpec`), sent as JSON. ``POST /campaigns`` checks it as the run
would (tenant, approved templates and their category, an inline body's content review,
the link, the audience) and keeps it as a draft (:mod:`jingxin.dispatch.campaign_drafts`:
the audience is a file of the tenant's audience folder or, for the operator, a segment
spec); ``POST /campaigns/{id}/schedule`` runs it - now, or with ``at`` queued to go out
then (the outbox holds the messages until they are due). ``POST /campaigns/preview``
estimates a spec without writing anything (:mod:`jingxin.dispatch.campaign_estimate`).

Pause, resume and cancel are :func:`jingxin.dispatch.campaign.apply_control`, audited in
the same transaction; a move the status does not allow, or one that changes nothing
(cancel a finished campaign), is 409 with the domain's reason. Another tenant's campaign
is 404, as if it did not exist.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from jingxin.access.principal import Principal
from jingxin.api import errors
from jingxin.api.auth import allow, audit
from jingxin.api.errors import ApiError
from jingxin.data.store.models import Campaign, Tenant
from jingxin.data.store.models.content import CAMPAIGN_STATUSES
from jingxin.dispatch.campaign import CampaignStateError

router = APIRouter(prefix="/api/v1", tags=["campaigns"])

Status = Literal["draft", "testing", "running", "paused", "cancelled", "finished"]
assert set(CAMPAIGN_STATUSES) == set(Status.__args__)  # type: ignore[attr-defined]
PAST_GRACE = timedelta(minutes=1)  # an ``at`` this close to now is "now"
MAX_AHEAD = timedelta(days=366)  # queued messages wait in the outbox; a year is plenty
CampaignId = Annotated[int, PathParam(ge=1, le=2**63 - 1, description="the campaign's id")]
ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such campaign in your tenant"},
    409: {"description": "The campaign's status does not allow this, or it changes nothing"},
    422: {"description": "The spec does not validate (the message names the field)"},
}


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CampaignIn(_In):
    spec: dict[str, Any] = Field(description=(
        "the campaign spec as `jingxin campaign run` reads it, as JSON; audience: {path: "
        "FILE in your audience folder} or {segment: {...a segment spec...}} (operator only)"))


class ScheduleIn(_In):
    at: AwareDatetime | None = Field(default=None, description="when the messages go out "
                                     "(with a zone); left out: now, or the spec's start_at")
    again: bool = Field(default=False, description="send a spec that already ran again")


class CampaignRow(BaseModel):
    id: int
    name: str
    category: str
    status: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    template_id: int | None
    start_at: str | None = Field(description="when its messages are wanted (spec.start_at)")


class CampaignList(BaseModel):
    items: list[CampaignRow]
    total: int


class CampaignDetail(CampaignRow):
    messages: dict[str, int] = Field(description="messages by state")
    rejected_by: dict[str, int]
    parts: int
    cost: float
    experiment: str
    held_out: int
    arms: dict[str, dict[str, int]] = Field(description="per treated arm: assigned, queued")
    promotion: dict[str, Any] | None = None
    spec: dict[str, Any]


class ArmPreview(BaseModel):
    name: str
    assigned: int
    messages: int
    sampled: int
    parts_min: int | None
    parts_max: int | None
    parts_mean: float | None
    failed: dict[str, int]
    example: str | None = Field(description="the first sampled row's text, as sent")
    error: str | None


class CampaignPreview(BaseModel):
    count: int = Field(description="distinct valid numbers in the audience")
    rows: int
    invalid: int
    held_out: int
    waiting: int = Field(description="left for `campaign promote` by a test share")
    messages: int = Field(description="sent now, before policy (an upper bound)")
    parts: int
    parts_per_message: float | None
    tariff: float
    cost: float
    arms: list[ArmPreview]
    warnings: list[str]


class Scheduled(BaseModel):
    campaign: CampaignDetail
    summary: dict[str, Any] = Field(description="what the run queued, deferred and rejected")


class Controlled(BaseModel):
    id: int
    action: str
    before: str
    status: str


# ------------------------------------------------------------------------------ helpers


@contextmanager
def conflicts() -> Iterator[None]:
    try:
        yield
    except CampaignStateError as exc:
        raise ApiError(409, str(exc)) from None


def own_campaign(session: Any, who: Principal, campaign_id: int) -> Campaign:
    return errors.owned(session, Campaign, campaign_id, tenant_id=who.tenant_id,
                        what="campaign")  # fmt: skip


def _shown_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The stored spec without the server's paths: an audience file by its name."""
    shown = dict(spec or {})
    audience = shown.get("audience")
    if isinstance(audience, dict) and isinstance(audience.get("path"), str):
        shown["audience"] = {**audience, "path": Path(audience["path"]).name}
    return shown


def _row(row: Campaign) -> CampaignRow:
    start = (row.spec or {}).get("start_at")
    return CampaignRow(id=row.id, name=row.name, category=row.category, status=row.status,
                       created_at=row.created_at, started_at=row.started_at,
                       finished_at=row.finished_at, template_id=row.template_id,
                       start_at=str(start) if start else None)  # fmt: skip


def _detail(request: Request, campaign_id: int) -> CampaignDetail:
    from jingxin.dispatch.campaign import campaign_status

    store = request.app.state.store
    status = campaign_status(store, campaign_id=campaign_id)  # may finish a final one
    with store.transaction() as session:
        row = session.get(Campaign, campaign_id)
        base = _row(row).model_dump()
        spec = _shown_spec(row.spec)
    base["status"] = status["status"]
    return CampaignDetail(**base, messages=status["messages"], rejected_by=status["rejected_by"],
                          parts=status["parts"], cost=status["cost"],
                          experiment=status["experiment"], held_out=status["held_out"],
                          arms=status["arms"], promotion=status.get("promotion"), spec=spec)  # fmt: skip


def _draft(request: Request, who: Principal, data: dict[str, Any]) -> Any:
    """The spec checked as a draft of the caller's tenant (422 naming the field)."""
    from jingxin.dispatch.campaign_drafts import parse_draft

    settings = request.app.state.settings
    with request.app.state.store.transaction() as session:
        tenant = session.get(Tenant, who.tenant_id)
        signature = tenant.signature if tenant is not None else None
    draft = parse_draft(data, tenant_id=who.tenant_id, var_dir=settings.var_dir(),
                        own_signature=signature, operator=who.operator)  # fmt: skip
    if draft.segment is not None:
        from jingxin.api.segments import operator_only, prepared_spec

        operator_only(who)
        prepared_spec(draft.segment, source="audience.segment")
    return draft


def _prepared(request: Request, spec: Any) -> Any:
    from jingxin.dispatch.campaign import prepare_campaign
    from jingxin.dispatch.deliver import DeliveryContext

    settings = request.app.state.settings
    return prepare_campaign(request.app.state.store, spec=spec, content=settings.content,
                            analytics=settings.analytics,
                            policy_defaults=DeliveryContext.from_settings(settings).policy_defaults)  # fmt: skip


def _segment_compiled(request: Request, segment: dict[str, Any], wh: Any) -> Any:
    from jingxin.api.segments import prepared_spec
    from jingxin.audience.compile import compile_prepared

    return compile_prepared(wh, prepared_spec(segment, source="audience.segment"))


# ------------------------------------------------------------------------------- routes


@router.get("/campaigns", response_model=CampaignList)
def list_campaigns(
    request: Request,
    status: Status | None = Query(default=None, description="only this status"),
    limit: int = Query(default=50, ge=1, le=500),
    offset: int = Query(default=0, ge=0, le=2**31),
    who: Principal = Depends(allow("campaigns.read")),
) -> CampaignList:
    """The campaigns of your tenant, newest first."""
    where = [Campaign.tenant_id == who.tenant_id]
    if status is not None:
        where.append(Campaign.status == status)
    with request.app.state.store.transaction() as session:
        total = session.scalar(select(func.count()).select_from(Campaign).where(*where))
        rows = session.scalars(select(Campaign).where(*where).order_by(Campaign.id.desc())
                               .limit(limit).offset(offset))  # fmt: skip
        return CampaignList(items=[_row(r) for r in rows], total=total or 0)


@router.post("/campaigns", response_model=CampaignDetail, status_code=201,
             responses={403: {"description": "A segment audience outside the operator"},
                        422: ERRORS[422]})  # fmt: skip
def create_campaign(body: CampaignIn, request: Request,
                    who: Principal = Depends(allow("campaigns.write"))) -> CampaignDetail:  # fmt: skip
    """Check a campaign spec as its run would - the tenant, each template approved for the
    category, an inline body through the content review, the link, the audience - and keep
    it as a draft. Nothing is assigned or queued until it is scheduled."""
    from jingxin.dispatch.campaign_drafts import draft_audience

    draft = _draft(request, who, body.spec)
    if draft.segment is None:
        draft_audience(draft)  # readable, with its number column (read again when it runs)
    _prepared(request, draft.spec)
    with request.app.state.store.transaction() as session:
        row = Campaign(tenant_id=who.tenant_id, name=draft.spec.name,
                       category=draft.spec.category, spec=draft.data, status="draft")  # fmt: skip
        session.add(row)
        session.flush()
        campaign_id = row.id
        audit(session, who, "campaign.create", "campaign", campaign_id,
              {"name": row.name, "audience": draft.audience_name()})  # fmt: skip
    return _detail(request, campaign_id)


@router.post("/campaigns/preview", response_model=CampaignPreview,
             responses={403: {"description": "A segment audience outside the operator"},
                        422: ERRORS[422]})  # fmt: skip
def preview_campaign(body: CampaignIn, request: Request,
                     who: Principal = Depends(allow("campaigns.write"))) -> CampaignPreview:  # fmt: skip
    """What the spec would send, without sending or writing anything: the audience's
    numbers, the hold-out and each arm, a sample rendered as the delivery entry renders it
    (parts, failures, an example text), the messages and their cost (the spec's tariff,
    else ``[analytics] tariff``). Policy is decided only when it runs, so the messages are
    an upper bound."""
    from jingxin.dispatch.campaign_drafts import draft_audience
    from jingxin.dispatch.campaign_estimate import estimate_campaign

    draft = _draft(request, who, body.spec)
    prepared = _prepared(request, draft.spec)
    settings = request.app.state.settings
    if draft.segment is not None:
        from jingxin.api.warehouse import read_warehouse
        from jingxin.audience.explain import audience_table

        with read_warehouse(settings) as wh:
            table = audience_table(_segment_compiled(request, draft.segment, wh))
    else:
        table = draft_audience(draft)
    tariff = draft.spec.tariff if draft.spec.tariff is not None else settings.analytics.tariff
    estimate = estimate_campaign(prepared, table, tariff=tariff)
    return CampaignPreview(count=estimate.numbers, **{
        k: v for k, v in vars(estimate).items() if k not in ("numbers", "arms")},
        arms=[ArmPreview(**vars(a)) for a in estimate.arms])  # fmt: skip


@router.get("/campaigns/{campaign_id:int}", response_model=CampaignDetail, responses=ERRORS)
def get_campaign(campaign_id: CampaignId, request: Request,
                 who: Principal = Depends(allow("campaigns.read"))) -> CampaignDetail:  # fmt: skip
    """A campaign: its messages by state, parts and cost, the hold-out and each arm's
    numbers assigned and messages queued (as ``jingxin campaign status``), and its spec."""
    with request.app.state.store.transaction() as session:
        own_campaign(session, who, campaign_id)
    return _detail(request, campaign_id)


@router.post("/campaigns/{campaign_id}/schedule", response_model=Scheduled, responses=ERRORS)
def schedule_campaign(campaign_id: CampaignId, request: Request, body: ScheduleIn | None = None,
                      who: Principal = Depends(allow("campaigns.control"))) -> Scheduled:  # fmt: skip
    """Run a draft: draw its hold-out and arms, let policy decide and queue its messages -
    to go out now, or at ``at`` (they wait in the outbox until then). The audience is read
    now (a segment is exported to your audience folder as ``campaign-<id>.parquet``).
    Only a draft is scheduled (409 otherwise); a spec that already ran needs ``again``."""
    from jingxin.dispatch.campaign import run_campaign
    from jingxin.dispatch.campaign_drafts import parse_draft, segment_file, with_start
    from jingxin.dispatch.deliver import DeliveryContext

    body = body or ScheduleIn()
    settings, store = request.app.state.settings, request.app.state.store
    if body.at is not None and body.at < datetime.now(UTC) - PAST_GRACE:
        raise ApiError(422, f"at: {body.at.isoformat()} is in the past", field="body.at")
    if body.at is not None and body.at > datetime.now(UTC) + MAX_AHEAD:
        raise ApiError(422, f"at: {body.at.isoformat()} is more than {MAX_AHEAD.days} days "
                       "ahead", field="body.at")  # fmt: skip
    with store.transaction() as session:
        row = own_campaign(session, who, campaign_id)
        if row.status != "draft":
            raise ApiError(409, f"campaign {campaign_id} is {row.status}: only a draft is "
                           "scheduled")  # fmt: skip
        stored = dict(row.spec or {})
        tenant = session.get(Tenant, who.tenant_id)
        signature = tenant.signature if tenant is not None else None
    draft = parse_draft(stored, tenant_id=who.tenant_id, var_dir=settings.var_dir(),
                        own_signature=signature, operator=who.operator)  # fmt: skip
    exported = None
    if draft.segment is not None:
        from jingxin.api.segments import operator_only
        from jingxin.api.warehouse import read_warehouse
        from jingxin.audience.explain import export

        operator_only(who)
        exported = segment_file(draft, campaign_id)
        with read_warehouse(settings) as wh:
            export(_segment_compiled(request, draft.segment, wh), out=exported)
    spec = with_start(draft, body.at, audience=exported)

    def started(session: Any, started_id: int) -> None:
        audit(session, who, "campaign.schedule", "campaign", started_id,
              {"at": spec.start_at.isoformat() if spec.start_at else None,
               "audience": draft.audience_name(), "again": body.again})  # fmt: skip

    with conflicts():
        summary = run_campaign(store, spec=spec, draft_id=campaign_id,
                               content=settings.content, analytics=settings.analytics,
                               policy_defaults=DeliveryContext.from_settings(settings).policy_defaults,
                               again=body.again, on_start=started)  # fmt: skip
    return Scheduled(campaign=_detail(request, campaign_id), summary=summary.as_dict())


def _control_route(action: Literal["pause", "resume", "cancel"]) -> None:
    doc = {"pause": "Pause a running or testing campaign: its messages are not claimed "
                    "until it resumes.",
           "resume": "Resume a paused campaign (testing again if its test phase was not "
                     "promoted yet).",
           "cancel": "Cancel a campaign (a draft too): its queued messages end rejected "
                     "as cancelled."}[action]  # fmt: skip

    def route(campaign_id: CampaignId, request: Request,
              who: Principal = Depends(allow("campaigns.control"))) -> Controlled:  # fmt: skip
        from jingxin.dispatch.campaign import apply_control

        with request.app.state.store.transaction() as session, conflicts():
            own_campaign(session, who, campaign_id)
            done = apply_control(session, campaign_id=campaign_id, action=action)
            if not done.changed:
                raise ApiError(409, done.line)
            audit(session, who, f"campaign.{action}", "campaign", campaign_id,
                  {"from": done.before, "to": done.status})  # fmt: skip
            return Controlled(id=campaign_id, action=action, before=done.before,
                              status=done.status)  # fmt: skip

    route.__doc__ = doc + " 409 when the status does not allow it or nothing would change."
    route.__name__ = f"{action}_campaign"
    router.post(f"/campaigns/{{campaign_id}}/{action}", response_model=Controlled,
                responses=ERRORS, name=f"{action}_campaign")(route)  # fmt: skip


for _action in ("pause", "resume", "cancel"):
    _control_route(_action)  # type: ignore[arg-type]
