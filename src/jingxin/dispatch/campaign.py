"""The campaign runner and its lifecycle, on the delivery entry.

:func:`run_campaign` checks the spec (:mod:`jingxin.dispatch.campaign_spec`) - its tenant,
its category against the template's approved category, an inline body against the
content review, and that the same spec has not run before (unless ``again``) - creates
the campaign and hands its audience to :func:`jingxin.dispatch.deliver.deliver_table`
(source ``campaign``, source id the campaign id, keys ``campaign:<id>:<msisdn>``: a number
twice in the file is sent once). Every row's decision is kept for ``jingxin why``.

Lifecycle::

    running ─► paused ─► running ...
       │                    │
       ├─ every message final ─► finished      (at the end of the run, or on status)
       └─ cancel (running or paused) ─► cancelled: queued messages end rejected/cancelled

Claims skip paused and cancelled campaigns. Pause, resume or cancel of a finished or
cancelled campaign changes nothing and says so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update

from jingxin.data.store.engine import Store, store_errors
from jingxin.data.store.models import Campaign, Message, utc_now
from jingxin.dispatch.approval import ApprovedTemplate, check_category
from jingxin.dispatch.campaign_spec import (
    AudienceSpec,
    CampaignSpec,
    TemplateSpec,
    fingerprint,
    load_spec,
    read_audience,
)
from jingxin.dispatch.deliver import DeliveryContext
from jingxin.dispatch.delivery_table import DeliverySummary, deliver_table
from jingxin.errors import InputError, SpecError

if TYPE_CHECKING:
    from jingxin.config import ContentSettings

__all__ = ["AudienceSpec", "CampaignSpec", "Summary", "TemplateSpec", "campaign_status",
           "control", "finish_if_final", "load_spec", "run_campaign"]  # fmt: skip

Summary = DeliverySummary
OPEN_STATES = ("queued", "submitting", "submitted")
CLOSED = ("finished", "cancelled")
INLINE = "<inline body>"


def run_campaign(
    store: Store, *, spec: CampaignSpec, now: datetime | None = None,
    unsubscribe_text: str = "回T退订", max_parts: int = 6,
    policy_defaults: Mapping[str, Any] | None = None,
    content: ContentSettings | None = None,
    progress: Callable[[int], None] | None = None, again: bool = False,
) -> DeliverySummary:  # fmt: skip
    """Create the campaign and deliver its audience. ``now`` is the decision time (default:
    the clock); ``policy_defaults`` are the ``[policy]`` settings, the same ones ``jingxin
    policy batch`` applies. Everything that can be refused is refused before the campaign
    row is written."""
    from jingxin.config import ContentSettings

    now = now or utc_now()
    content = content or ContentSettings(unsubscribe_text=unsubscribe_text, max_parts=max_parts)
    context = DeliveryContext(policy_defaults=policy_defaults, content=content)
    try:
        _, signature = context.tenant(store, spec.tenant)
    except InputError as exc:
        raise SpecError(str(exc)) from exc
    signature = spec.signature if spec.signature is not None else signature
    approved = _template(store, spec=spec, context=context, signature=signature)
    marks = fingerprint(spec)
    audience = read_audience(spec.audience)  # opens the file before anything is written
    with store.transaction() as session:
        _refuse_a_rerun(session, spec, marks, again)
        campaign = Campaign(tenant_id=spec.tenant, name=spec.name, category=spec.category,
                            spec=spec.model_dump(mode="json"), status="running",
                            started_at=now, fingerprint=marks,
                            template_id=approved.template_id)  # fmt: skip
        session.add(campaign)
        session.flush()
        campaign_id = campaign.id
    defaults = {"tenant_id": spec.tenant, "category": spec.category, "source": "campaign",
                "source_id": str(campaign_id), "template": approved.code,
                "wanted_at": spec.start_at, "sender": spec.sender}  # fmt: skip
    summary = deliver_table(
        store, table=audience, context=context, now=now, defaults=defaults,
        templates={approved.code: approved}, campaign_id=campaign_id, tariff=spec.tariff,
        validity=timedelta(hours=spec.validity_hours), where=spec.audience.path.name,
        msisdn_column=spec.audience.msisdn_column, progress=progress,
        signatures={spec.tenant: signature},
    )  # fmt: skip
    with store.transaction() as session:
        finish_if_final(session, campaign_id=campaign_id, now=now)
    return summary


def _template(store: Store, *, spec: CampaignSpec, context: DeliveryContext,
              signature: str | None) -> ApprovedTemplate:  # fmt: skip
    """The template the campaign sends: the approved catalogue version of ``code`` (which
    must be approved for the spec's category or a laxer one), or the inline body once it
    passes the content review for the spec's category."""
    from jingxin.content.templates import compile_template

    if spec.template.code is not None:
        approved = context.approved(store, tenant_id=spec.tenant, code=spec.template.code)
        check_category(approved=approved.category, sending=spec.category,
                       what=f"template {spec.template.code}")  # fmt: skip
        return approved
    compiled = compile_template(spec.template.body, spec.template.variables, where="template.body")
    _review_inline(compiled, spec=spec, signature=signature, content=context.content)
    return ApprovedTemplate(code=INLINE, category=spec.category, compiled=compiled)


def _review_inline(compiled: Any, *, spec: CampaignSpec, signature: str | None,
                   content: ContentSettings) -> None:  # fmt: skip
    """An inline body skipped the approval workflow, so the automatic review must pass its
    fixed text, as sent: with the signature and the unsubscribe route."""
    from jingxin.content.review import build_reviewer, static_text
    from jingxin.content.templates import compose

    reviewer = build_reviewer(content)
    text = compose(static_text(compiled), category=spec.category, signature=signature,
                   unsubscribe_text=reviewer.unsubscribe_text)  # fmt: skip
    result = reviewer.review(text, category=spec.category, require_signature=bool(signature))
    if result.verdict == "block":
        why = "; ".join(r.describe() for r in result.reasons)
        raise SpecError(f"template.body is blocked by the content review: {why}")


def _refuse_a_rerun(session, spec: CampaignSpec, marks: str, again: bool) -> None:
    if again:
        return
    earlier = session.execute(
        select(Campaign.id, Campaign.status).where(Campaign.fingerprint == marks)
        .order_by(Campaign.id.desc()).limit(1)
    ).first()  # fmt: skip
    if earlier is not None:
        raise SpecError(
            f"campaign {spec.name!r} already ran as campaign {earlier.id} ({earlier.status}) "
            f"with this template and audience; run it with --again to send it again"
        )


# --------------------------------------------------------------------------- lifecycle


def finish_if_final(session, *, campaign_id: int, now: datetime | None = None) -> bool:
    """Mark a running campaign ``finished`` once none of its messages is open (queued,
    submitting or submitted); True if it moved. Called at the end of a run and by status."""
    open_rows = session.scalar(
        select(func.count()).select_from(Message)
        .where(Message.campaign_id == campaign_id, Message.state.in_(OPEN_STATES))
    )  # fmt: skip
    if open_rows:
        return False
    moved = session.execute(
        update(Campaign).where(Campaign.id == campaign_id, Campaign.status == "running")
        .values(status="finished", finished_at=now or utc_now())
    )  # fmt: skip
    return bool(moved.rowcount)


def finish_campaigns(store: Store, *, now: datetime | None = None,
                     settled: timedelta = timedelta(seconds=60)) -> list[int]:  # fmt: skip
    """Every running campaign whose messages are all final, marked ``finished`` in one
    ``UPDATE`` (a worker's periodic sweep); returns their ids. A campaign counts only once
    it has a message and started ``settled`` ago, so a run still rendering its first chunk
    is not finished under it (the runner finishes a campaign that queued nothing itself)."""
    now = now or utc_now()
    mine = Message.campaign_id == Campaign.id
    finished = (
        update(Campaign)
        .where(Campaign.status == "running", Campaign.started_at <= now - settled,
               select(Message.id).where(mine).exists(),
               ~select(Message.id).where(mine, Message.state.in_(OPEN_STATES)).exists())
        .values(status="finished", finished_at=now)
        .returning(Campaign.id)
    )  # fmt: skip
    with store_errors("finishing campaigns"), store.engine.begin() as conn:
        return sorted(conn.execute(finished).scalars())


def campaign_status(store: Store, *, campaign_id: int) -> dict[str, Any]:
    with store_errors(f"reading campaign {campaign_id}"), store.transaction() as session:
        if session.get(Campaign, campaign_id) is None:
            raise SpecError(f"no campaign with id {campaign_id}")
        finish_if_final(session, campaign_id=campaign_id)
        campaign = session.get(Campaign, campaign_id)
        rows = session.execute(
            select(Message.state, func.count(), func.sum(Message.parts), func.sum(Message.cost))
            .where(Message.campaign_id == campaign_id).group_by(Message.state)
        ).all()  # fmt: skip
        # Why messages ended without being sent: the campaign's own cancel ('cancelled')
        # and the send-time re-check ('opted_out', 'blacklisted', 'consent_withdrawn').
        stopped = dict(session.execute(
            select(Message.error_code, func.count())
            .where(Message.campaign_id == campaign_id, Message.state == "rejected")
            .group_by(Message.error_code)).all())  # fmt: skip
        name, status = campaign.name, campaign.status
    return {"id": campaign_id, "name": name, "status": status,
            "messages": {state: count for state, count, _, _ in rows},
            "rejected_by": {code or "unknown": n for code, n in stopped.items()},
            "parts": sum(p or 0 for _, _, p, _ in rows),
            "cost": round(sum(c or 0.0 for _, _, _, c in rows), 4)}  # fmt: skip


MOVES = {"pause": ("running", "paused"), "resume": ("paused", "running"),
         "cancel": (None, "cancelled")}  # fmt: skip


def control(store: Store, *, campaign_id: int, action: str, now: datetime | None = None) -> str:
    """Pause, resume or cancel; returns the one line to show. Cancel ends queued messages.
    A finished or cancelled campaign is left as it is, and the line says so."""
    now = now or utc_now()
    need, status = MOVES[action]
    with store.transaction() as session:
        campaign = session.get(Campaign, campaign_id)
        if campaign is None:
            raise SpecError(f"no campaign with id {campaign_id}")
        if campaign.status == "running":
            finish_if_final(session, campaign_id=campaign_id, now=now)
            session.refresh(campaign)
        if campaign.status in CLOSED:
            return f"campaign {campaign_id} is {campaign.status}: {action} changes nothing"
        if need is not None and campaign.status != need:
            raise SpecError(f"campaign {campaign_id} is {campaign.status}; {action} needs {need}")
        campaign.status = status
        if action == "cancel":
            campaign.finished_at = now
            session.execute(
                update(Message)
                .where(Message.campaign_id == campaign_id, Message.state == "queued")
                .values(state="rejected", error_code="cancelled", finished_at=now, updated_at=now)
            )  # fmt: skip
    return f"campaign {campaign_id}: {status}"
