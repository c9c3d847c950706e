"""The campaign runner, on the delivery entry.

:func:`run_campaign` checks the spec (:mod:`jingxin.dispatch.campaign_spec`) - its tenant,
its category against each template's approved category, an inline body against the
content review, and that the same spec has not run before (unless ``again``) - creates
the campaign (or starts a draft's row, :mod:`jingxin.dispatch.campaign_drafts`), assigns
every number of its audience to the experiment ``campaign:<id>``
(:mod:`jingxin.dispatch.campaign_arms`: the hold-out, the variants' arms, the test share)
and records the assignments, then hands the treated rows, each with its ``arm`` and
template, to :func:`jingxin.dispatch.deliver.deliver_table` (source ``campaign``, source id
the campaign id, keys ``campaign:<id>:<msisdn>``: a number twice in the file is sent once).
Held-out numbers never reach policy. Every row's decision is kept for ``jingxin why``.
:func:`prepare_campaign` is its first half, the checks, for previews and drafts.

The lifecycle - status, pause, resume, cancel, finished - is
:mod:`jingxin.dispatch.campaign_lifecycle`; its functions are importable from here too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update

from jingxin.data.store.engine import Store
from jingxin.data.store.models import Campaign, utc_now
from jingxin.dispatch.approval import ApprovedTemplate, check_category
from jingxin.dispatch.campaign_arms import (
    Arm,
    arms_of,
    experiment_name,
    split_audience,
    wanted_times,
)
from jingxin.dispatch.campaign_lifecycle import (
    ACTIONS,
    CLOSED,
    OPEN_STATES,
    PAUSABLE,
    PROMOTION,
    CampaignStateError,
    Controlled,
    apply_control,
    arm_counts,
    awaiting_promotion,
    campaign_status,
    control,
    finish_campaigns,
    finish_if_final,
)
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
    import pyarrow as pa

    from jingxin.config import AnalyticsSettings, ContentSettings

__all__ = ["ACTIONS", "CLOSED", "OPEN_STATES", "PAUSABLE", "PROMOTION", "AudienceSpec",
           "CampaignSpec", "CampaignStateError", "CampaignSummary", "Controlled",
           "PreparedCampaign", "Summary", "TemplateSpec", "apply_control", "arm_counts",
           "awaiting_promotion", "campaign_status", "control", "finish_campaigns",
           "finish_if_final", "load_spec", "prepare_campaign", "run_campaign"]  # fmt: skip

Summary = DeliverySummary
INLINE = "<inline body>"
DEFAULT_ZONE = "Asia/Shanghai"


@dataclass
class CampaignSummary(DeliverySummary):
    """:class:`DeliverySummary` plus the experiment: numbers ``held_out``, treated numbers
    ``waiting`` for ``campaign promote``, per arm the numbers ``assigned`` and messages
    ``queued``, and ``warnings`` (an arm that got nobody). ``rows`` counts every row of the
    audience: accepted + deferred + duplicates + rejected + held_out + waiting."""

    held_out: int = 0
    waiting: int = 0
    arms: dict[str, dict[str, int]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out = super().as_dict()
        out.update(held_out=self.held_out, arms=self.arms)
        if self.waiting:
            out["waiting"] = self.waiting
        if self.warnings:
            out["warnings"] = self.warnings
        return out


@dataclass(frozen=True)
class PreparedCampaign:
    """A spec checked as far as it can be before anything is written: its delivery
    context, the tenant's signature (or the spec's), the treated arms with their approved
    templates, and the hold-out share it will use."""

    spec: CampaignSpec
    context: DeliveryContext
    signature: str | None
    arms: list[Arm]
    holdout: float


def prepare_campaign(store: Store, *, spec: CampaignSpec, content: ContentSettings,
                     analytics: AnalyticsSettings,
                     policy_defaults: Mapping[str, Any] | None = None) -> PreparedCampaign:  # fmt: skip
    """Check ``spec``'s tenant, its templates (approved, for its category or a laxer one;
    an inline body through the content review) and its link; nothing is written. What
    :func:`run_campaign` does first, and what a preview or a draft checks."""
    context = DeliveryContext(policy_defaults=policy_defaults, content=content,
                              analytics=analytics)  # fmt: skip
    signature = tenant_signature(store, spec=spec, context=context)
    arms = arms_of(spec, templates_of(store, spec=spec, context=context, signature=signature))
    _check_link(spec, arms, context)
    holdout = spec.experiment.holdout_share(category=spec.category, default=analytics.holdout)
    return PreparedCampaign(spec=spec, context=context, signature=signature, arms=arms,
                            holdout=holdout)  # fmt: skip


def run_campaign(
    store: Store, *, spec: CampaignSpec, now: datetime | None = None,
    unsubscribe_text: str = "回T退订", max_parts: int = 6,
    policy_defaults: Mapping[str, Any] | None = None,
    content: ContentSettings | None = None,
    progress: Callable[[int], None] | None = None, again: bool = False,
    analytics: AnalyticsSettings | None = None,
    draft_id: int | None = None,
    on_start: Callable[[Any, int], None] | None = None,
) -> CampaignSummary:  # fmt: skip
    """Create the campaign, assign its audience and deliver the treated. ``now`` is the
    decision time (default: the clock); ``policy_defaults`` are the ``[policy]`` settings,
    the same ones ``jingxin policy batch`` applies; ``analytics`` the ``[analytics]`` ones
    (the default hold-out of a marketing campaign). Everything that can be refused is
    refused before the campaign row is written.

    ``draft_id``: run the campaign a draft row holds (:mod:`.campaign_drafts`) instead of
    adding a row; it must still be a draft of the spec's tenant (else
    :class:`CampaignStateError`), and two runs of one draft cannot both start.
    ``on_start(session, campaign_id)`` is called in the transaction that starts the
    campaign (the API's audit entry)."""
    from jingxin.config import AnalyticsSettings, ContentSettings

    now = now or utc_now()
    analytics = analytics or AnalyticsSettings()
    content = content or ContentSettings(unsubscribe_text=unsubscribe_text, max_parts=max_parts)
    prepared = prepare_campaign(store, spec=spec, content=content, analytics=analytics,
                                policy_defaults=policy_defaults)  # fmt: skip
    context, signature = prepared.context, prepared.signature
    arms, holdout = prepared.arms, prepared.holdout
    marks = fingerprint(spec)
    audience = read_audience(spec.audience)  # opens the file before anything is written
    testing = spec.experiment.test_share is not None
    with store.transaction() as session:
        _refuse_a_rerun(session, spec, marks, again)
        values = {"tenant_id": spec.tenant, "name": spec.name, "category": spec.category,
                  "spec": spec.model_dump(mode="json"),
                  "status": "testing" if testing else "running", "started_at": now,
                  "fingerprint": marks, "template_id": arms[0].template.template_id}  # fmt: skip
        if draft_id is None:
            campaign = Campaign(**values)
            session.add(campaign)
            session.flush()
            campaign_id = campaign.id
        else:
            campaign_id = _start_draft(session, draft_id=draft_id, tenant_id=spec.tenant,
                                       values=values)  # fmt: skip
        if on_start is not None:
            on_start(session, campaign_id)
    summary = CampaignSummary(campaign_id=campaign_id)
    with summary.timing("assign"):
        split = split_audience(audience, msisdn_column=spec.audience.msisdn_column,
                               campaign_id=campaign_id, arms=arms, holdout=holdout,
                               test_share=spec.experiment.test_share)  # fmt: skip
    with summary.timing("assignments"):
        _record(store, spec=spec, campaign_id=campaign_id, split=split, now=now)
    summary.held_out, summary.waiting = split.held_out, split.waiting
    summary.warnings = split.warnings
    summary.rows += split.held_out + split.waiting + split.repeated
    summary.duplicates += split.repeated
    deliver_arms(store, spec=spec, table=split.now, arms=arms, campaign_id=campaign_id,
                 context=context, now=now, summary=summary, progress=progress,
                 signature=signature)  # fmt: skip
    summary.arms = arm_counts(store, campaign_id=campaign_id, assigned=split.assigned)
    with store.transaction() as session:
        finish_if_final(session, campaign_id=campaign_id, now=now)
    return summary


def _start_draft(session, *, draft_id: int, tenant_id: str, values: dict[str, Any]) -> int:
    """Turn the draft ``draft_id`` into the started campaign ``values`` describe, in one
    ``UPDATE ... WHERE status = 'draft'``: of two runs of one draft only one starts."""
    moved = session.execute(
        update(Campaign)
        .where(Campaign.id == draft_id, Campaign.tenant_id == tenant_id,
               Campaign.status == "draft")
        .values(**values)
    )  # fmt: skip
    if not moved.rowcount:
        campaign = session.get(Campaign, draft_id)
        if campaign is None or campaign.tenant_id != tenant_id:
            raise SpecError(f"no campaign with id {draft_id}")
        raise CampaignStateError(f"campaign {draft_id} is {campaign.status}: only a draft is "
                                 "scheduled (it was scheduled already, or cancelled)")  # fmt: skip
    return draft_id


def deliver_arms(store: Store, *, spec: CampaignSpec, table: pa.Table, arms: list[Arm],
                 campaign_id: int, context: DeliveryContext, now: datetime,
                 summary: DeliverySummary, signature: str | None,
                 progress: Callable[[int], None] | None = None) -> DeliverySummary:  # fmt: skip
    """Hand ``table`` (with its ``arm`` and, for variants, ``template`` columns) to the
    delivery entry as the campaign's messages, planning send times if the spec asks."""
    if spec.send_time is not None and table.num_rows:
        zone = (context.policy_defaults.get("default_timezone") or DEFAULT_ZONE)
        wanted = wanted_times(store, table, msisdn_column=spec.audience.msisdn_column,
                              arms=arms, send_time=spec.send_time, tz=zone, now=now,
                              seed=campaign_id)  # fmt: skip
        table = _set_column(table, "wanted_at", wanted)
    defaults = {"tenant_id": spec.tenant, "category": spec.category, "source": "campaign",
                "source_id": str(campaign_id), "template": arms[0].template.code,
                "wanted_at": spec.start_at, "sender": spec.sender, "link": spec.link}  # fmt: skip
    return deliver_table(
        store, table=table, context=context, now=now, defaults=defaults,
        templates={a.template.code: a.template for a in arms}, campaign_id=campaign_id,
        tariff=spec.tariff, validity=timedelta(hours=spec.validity_hours),
        where=spec.audience.path.name, msisdn_column=spec.audience.msisdn_column,
        progress=progress, signatures={spec.tenant: signature}, summary=summary,
    )  # fmt: skip


def _check_link(spec: CampaignSpec, arms: list[Arm], context: DeliveryContext) -> None:
    """With a ``link``, every arm's template must carry it, and the short links' domain
    must pass content review: checked before anything is written."""
    from jingxin.dispatch.deliver import LINK_VARIABLE

    if spec.link is None:
        return
    for arm in arms:
        if LINK_VARIABLE not in arm.template.compiled.variables:
            which = (f"experiment.variants[{arm.name}].template" if spec.experiment.variants
                     else "template")  # fmt: skip
            raise SpecError(f"link: {which} ({arm.template.code}) does not use "
                            f"{{{{ {LINK_VARIABLE} }}}}: the link would be lost")  # fmt: skip
    context.links()


def _set_column(table: pa.Table, name: str, column: pa.Array) -> pa.Table:
    if name in table.column_names:
        return table.set_column(table.column_names.index(name), name, column)
    return table.append_column(name, column)


def _record(store: Store, *, spec: CampaignSpec, campaign_id: int, split: Any,
            now: datetime) -> int:  # fmt: skip
    from jingxin.analytics.assign import record_assignments

    return record_assignments(store, experiment=experiment_name(campaign_id),
                              tenant_id=spec.tenant, msisdns=split.numbers, arms=split.arms,
                              at=now)  # fmt: skip


def tenant_signature(store: Store, *, spec: CampaignSpec, context: DeliveryContext) -> str | None:
    try:
        _, signature = context.tenant(store, spec.tenant)
    except InputError as exc:
        raise SpecError(str(exc)) from exc
    return spec.signature if spec.signature is not None else signature


def templates_of(store: Store, *, spec: CampaignSpec, context: DeliveryContext,
                 signature: str | None) -> dict[str, ApprovedTemplate]:  # fmt: skip
    """The approved template of each arm, by arm name (``main`` without variants); a
    variant's error names it (``experiment.variants[B].template``)."""
    if not spec.experiment.variants:
        return {"main": _template(store, spec=spec, template=spec.template, context=context,
                                  signature=signature, where="template", code=INLINE)}  # fmt: skip
    out = {}
    for variant in spec.experiment.variants:
        where = f"experiment.variants[{variant.name}].template"
        try:
            out[variant.name] = _template(store, spec=spec, template=variant.template,
                                          context=context, signature=signature, where=where,
                                          code=f"<inline body {variant.name}>")  # fmt: skip
        except InputError as exc:
            if str(exc).startswith(where):
                raise
            raise type(exc)(f"{where}: {exc}") from exc  # the same kind, saying which variant
    return out


def _template(store: Store, *, spec: CampaignSpec, template: TemplateSpec,
              context: DeliveryContext, signature: str | None, where: str,
              code: str) -> ApprovedTemplate:  # fmt: skip
    """The approved catalogue version of ``template.code`` (which must be approved for the
    spec's category or a laxer one), or the inline body once it passes the content review
    for the spec's category."""
    from jingxin.content.templates import compile_template

    if template.code is not None:
        approved = context.approved(store, tenant_id=spec.tenant, code=template.code)
        check_category(approved=approved.category, sending=spec.category,
                       what=f"template {template.code}")  # fmt: skip
        return approved
    variables = dict(template.variables)
    if spec.link is not None and _mentions_link(template.body):
        from jingxin.dispatch.deliver import LINK_VARIABLE

        # The delivery entry fills {{ link }} in: an inline body need not declare it.
        variables.setdefault(LINK_VARIABLE, "str")
    compiled = compile_template(template.body, variables, where=f"{where}.body")
    _review_inline(compiled, spec=spec, signature=signature, content=context.content,
                   where=f"{where}.body")  # fmt: skip
    return ApprovedTemplate(code=code, category=spec.category, compiled=compiled)


def _mentions_link(body: str) -> bool:
    """Whether ``body`` uses ``{{ link }}`` (a syntax error is left to compile_template)."""
    import jinja2
    import jinja2.meta

    from jingxin.dispatch.deliver import LINK_VARIABLE

    try:
        names = jinja2.meta.find_undeclared_variables(jinja2.Environment().parse(body))
    except jinja2.TemplateSyntaxError:
        return False
    return LINK_VARIABLE in names


def _review_inline(compiled: Any, *, spec: CampaignSpec, signature: str | None,
                   content: ContentSettings, where: str) -> None:  # fmt: skip
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
        raise SpecError(f"{where} is blocked by the content review: {why}")


def _refuse_a_rerun(session, spec: CampaignSpec, marks: str, again: bool) -> None:
    if again:
        return
    earlier = session.execute(
        select(Campaign.id, Campaign.status).where(Campaign.fingerprint == marks)
        .order_by(Campaign.id.desc()).limit(1)
    ).first()  # fmt: skip
    if earlier is not None:
        raise CampaignStateError(
            f"campaign {spec.name!r} already ran as campaign {earlier.id} ({earlier.status}) "
            f"with this template and audience; run it with --again to send it again"
        )
