"""The campaign runner: audience file → render → policy (batch) → outbox, with a summary.

A spec (YAML, :class:`CampaignSpec`) names the audience file (CSV or Parquet: a msisdn
column plus template variables), the template and the tenant. :func:`run_campaign` works
in chunks of ``CHUNK`` rows: normalise numbers, render each row (a row that does not
render is rejected with ``render_error``, never the batch), decide the chunk with the
vectorised policy, enqueue what was accepted (send now or deferred to ``send_at``).
Idempotency keys are ``campaign:<id>:<msisdn>``: a number twice in the file is sent once.

Pause, resume and cancel change the campaign's status; claims skip paused and cancelled
campaigns, and cancel also ends the queued messages as ``rejected`` / ``cancelled``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import func, select, update

from jingxin.data.store.engine import Store, store_errors
from jingxin.data.store.models import DEFAULT_TENANT_ID, Campaign, Message, utc_now
from jingxin.dispatch.outbox import OutboxEntry, enqueue
from jingxin.errors import ImportFileError, SpecError, TemplateError

if TYPE_CHECKING:
    from jingxin.config import ContentSettings

CHUNK = 50_000
OPEN_STATES = {"queued", "submitting", "submitted"}


class TemplateSpec(BaseModel):
    """Either ``code`` — the approved version of a catalogue template (the normal way: it has
    been through review and approval) — or an inline ``body`` with its ``variables``, which
    must pass the automatic content review before anything is queued."""

    model_config = ConfigDict(extra="forbid")
    code: str | None = None
    body: str | None = None
    variables: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_source(self) -> TemplateSpec:
        if (self.code is None) == (self.body is None):
            raise ValueError("give either code (an approved catalogue template) or body")
        return self


class AudienceSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: Path
    msisdn_column: str = "msisdn"


class CampaignSpec(BaseModel):
    """What ``jingxin campaign run SPEC.yaml`` reads."""

    model_config = ConfigDict(extra="forbid")
    name: str
    tenant: str = DEFAULT_TENANT_ID  # the operator itself, created on first use
    category: str = "marketing"
    template: TemplateSpec
    audience: AudienceSpec
    signature: str | None = None  # None: the tenant's
    start_at: datetime | None = None
    validity_hours: float = Field(default=24.0, gt=0)
    tariff: float | None = None  # price per part for the cost estimate


def load_spec(path: Path) -> CampaignSpec:
    """Read and validate a spec; errors name the file and the field."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise SpecError(f"{path}: cannot read the campaign spec: {exc}") from exc
    try:
        spec = CampaignSpec.model_validate(data)
    except ValidationError as exc:
        lines = [
            f"  {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        ]
        raise SpecError(f"{path}: invalid campaign spec:\n" + "\n".join(lines)) from exc
    if not spec.audience.path.is_absolute():
        spec.audience.path = path.parent / spec.audience.path
    return spec


@dataclass
class Summary:
    campaign_id: int
    rows: int = 0
    accepted: int = 0
    deferred: int = 0
    duplicates: int = 0
    parts: int = 0
    cost: float = 0.0
    rejected: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {"campaign_id": self.campaign_id, "rows": self.rows, "accepted": self.accepted,
                "deferred": self.deferred, "duplicates": self.duplicates, "parts": self.parts,
                "cost": round(self.cost, 4), "rejected": dict(self.rejected)}  # fmt: skip


def read_audience(spec: AudienceSpec) -> Iterator[pa.Table]:
    """The audience in chunks; a missing file or column is an ImportFileError naming it."""
    path = spec.path
    try:
        if path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(path)
        else:
            import pyarrow.csv as pcsv

            table = pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(
                column_types={spec.msisdn_column: pa.string()}, strings_can_be_null=True))  # fmt: skip
    except (OSError, pa.ArrowInvalid) as exc:
        raise ImportFileError(f"{path}: cannot read the audience: {exc}") from exc
    if spec.msisdn_column not in table.column_names:
        raise ImportFileError(
            f"{path}: no column {spec.msisdn_column!r} (columns: {', '.join(table.column_names)})"
        )
    for start in range(0, table.num_rows, CHUNK):
        yield table.slice(start, CHUNK)


def resolve_template(store: Store, *, spec: CampaignSpec, signature: str | None,
                     content: ContentSettings | None) -> Any:  # fmt: skip
    """The compiled template the campaign sends: the approved catalogue version of
    ``template.code``, or the inline body once it passes the content review."""
    from jingxin.content.templates import compile_template

    if spec.template.code is not None:
        from jingxin.content.catalog import approved_version

        with store.transaction() as session:
            template = approved_version(session, tenant_id=spec.tenant, code=spec.template.code)
            body, variables = template.body, dict(template.variables or {})
        return compile_template(body, variables, where=f"template {spec.template.code}")
    compiled = compile_template(spec.template.body, spec.template.variables, where="template.body")
    _review_inline(compiled, spec=spec, signature=signature, content=content)
    return compiled


def _review_inline(compiled: Any, *, spec: CampaignSpec, signature: str | None,
                   content: ContentSettings | None) -> None:  # fmt: skip
    """An inline body skipped the approval workflow, so the automatic review must pass its
    fixed text, as sent: with the signature and the unsubscribe route."""
    from jingxin.config import ContentSettings
    from jingxin.content.review import build_reviewer, static_text
    from jingxin.content.templates import compose

    reviewer = build_reviewer(content or ContentSettings())
    text = compose(static_text(compiled), category=spec.category, signature=signature,
                   unsubscribe_text=reviewer.unsubscribe_text)  # fmt: skip
    result = reviewer.review(text, category=spec.category, require_signature=bool(signature))
    if result.verdict == "block":
        why = "; ".join(r.describe() for r in result.reasons)
        raise SpecError(f"template.body is blocked by the content review: {why}")


def run_campaign(
    store: Store, *, spec: CampaignSpec, now: datetime | None = None,
    unsubscribe_text: str = "回T退订", max_parts: int = 6,
    policy_defaults: Mapping[str, Any] | None = None,
    content: ContentSettings | None = None,
    progress: Callable[[int], None] | None = None,
) -> Summary:  # fmt: skip
    """Create the campaign and put its accepted messages in the outbox. ``now`` is the
    decision time (default: the clock); ``policy_defaults`` are the ``[policy]`` settings,
    the same ones ``jingxin policy batch`` applies."""
    from jingxin.dispatch.admission import decide_chunk, policy_for

    now = now or utc_now()
    config, signature = policy_for(store, spec=spec, defaults=policy_defaults)
    compiled = resolve_template(store, spec=spec, signature=signature, content=content)
    chunks = read_audience(spec.audience)  # opens the file before anything is written
    first = next(chunks, None)
    campaign_id = _create(store, spec, now)
    summary = Summary(campaign_id=campaign_id)
    for chunk in ([first] if first is not None else []) + list(chunks):
        rendered, rejected = _render(
            chunk, spec, compiled, signature, unsubscribe_text, max_parts
        )
        summary.rows += chunk.num_rows
        summary.rejected.update(rejected)
        decided = decide_chunk(store, spec=spec, campaign_id=campaign_id, rows=rendered,
                               config=config, now=now)  # fmt: skip
        entries = []
        for (msisdn, text, parts), (outcome, send_at, reasons) in zip(
            rendered, decided, strict=True
        ):
            if outcome == "reject":
                summary.rejected.update(reasons.split(",")[:1])
                continue
            start = max(send_at or now, spec.start_at or now)
            entries.append(OutboxEntry(
                tenant_id=spec.tenant, msisdn=msisdn, category=spec.category, text=text,
                idempotency_key=f"campaign:{campaign_id}:{msisdn}", parts=parts,
                scheduled_at=start, expires_at=start + timedelta(hours=spec.validity_hours),
                campaign_id=campaign_id,
                cost=None if spec.tariff is None else round(parts * spec.tariff, 4),
            ))  # fmt: skip
            summary.deferred += outcome == "defer"
        result = enqueue(store, entries=entries, now=now)
        _record_contacts(
            store, entries, zone=config.rules_for(spec.tenant).default_timezone
        )
        summary.accepted += result.inserted
        summary.duplicates += result.duplicates
        summary.parts += sum(e.parts for e in entries)
        summary.cost += sum(e.cost or 0.0 for e in entries)
        if progress is not None:
            progress(chunk.num_rows)
    summary.accepted -= summary.deferred
    return summary


def _record_contacts(store: Store, entries: list[OutboxEntry], *, zone: str) -> None:
    """Count the accepted messages in the contact ledger, so the next campaign's caps see
    them. Counted when accepted, not when delivered: for caps, over-counting a contact that
    then failed is the side that protects subscribers. The local date is the tenant's."""
    from zoneinfo import ZoneInfo

    from jingxin.data.store.ledger import record_contacts

    tz = ZoneInfo(zone)
    days: dict[datetime, Any] = {}
    rows = []
    for e in entries:
        when = e.scheduled_at
        day = days.get(when) or days.setdefault(when, when.astimezone(tz).date())
        rows.append({"tenant_id": e.tenant_id, "msisdn": e.msisdn, "category": e.category,
                     "campaign_id": e.campaign_id, "contact_at": when, "local_date": day,
                     "idempotency_key": e.idempotency_key})  # fmt: skip
    with store.transaction() as session:
        record_contacts(session, entries=rows)


def _create(store: Store, spec: CampaignSpec, now: datetime) -> int:
    with store.transaction() as session:
        campaign = Campaign(tenant_id=spec.tenant, name=spec.name, category=spec.category,
                            spec=spec.model_dump(mode="json"), status="running", started_at=now)  # fmt: skip
        session.add(campaign)
        session.flush()
        return campaign.id


def _render(chunk: pa.Table, spec: CampaignSpec, compiled, signature, unsubscribe_text,
            max_parts) -> tuple[list[tuple[str, str, int]], Counter[str]]:  # fmt: skip
    from jingxin.content.templates import render
    from jingxin.data.msisdn import normalise_msisdns

    numbers = normalise_msisdns(
        chunk.column(spec.audience.msisdn_column)
    ).e164.to_pylist()
    names = [n for n in compiled.variables if n in chunk.column_names]
    columns = {n: chunk.column(n).to_pylist() for n in names}
    rejected: Counter[str] = Counter()
    out = []
    for i, msisdn in enumerate(numbers):
        if msisdn is None:
            rejected["invalid_number"] += 1
            continue
        values = {n: columns[n][i] for n in names}
        try:
            result = render(compiled, values, category=spec.category, signature=signature,
                            unsubscribe_text=unsubscribe_text, max_parts=max_parts,
                            where=f"{spec.audience.path.name} row {i + 1}")  # fmt: skip
        except TemplateError:
            rejected["render_error"] += 1
            continue
        if not result.fits:
            rejected["too_long"] += 1
            continue
        out.append((msisdn, result.text, result.parts.parts))
    return out, rejected


# --------------------------------------------------------------------------- control


def campaign_status(store: Store, *, campaign_id: int) -> dict[str, Any]:
    with store_errors(f"reading campaign {campaign_id}"), store.sessions() as session:
        campaign = session.get(Campaign, campaign_id)
        if campaign is None:
            raise SpecError(f"no campaign with id {campaign_id}")
        rows = session.execute(
            select(Message.state, func.count(), func.sum(Message.parts), func.sum(Message.cost))
            .where(Message.campaign_id == campaign_id).group_by(Message.state)
        ).all()  # fmt: skip
    states = {state: count for state, count, _, _ in rows}
    if campaign.status == "running" and rows and not set(states) & OPEN_STATES:
        with (
            store.transaction() as session
        ):  # every message is final: the campaign is done
            session.execute(update(Campaign).where(Campaign.id == campaign_id,
                                                   Campaign.status == "running")
                            .values(status="done", finished_at=utc_now()))  # fmt: skip
        campaign.status = "done"
    return {"id": campaign_id, "name": campaign.name, "status": campaign.status,
            "messages": states, "parts": sum(p or 0 for _, _, p, _ in rows),
            "cost": round(sum(c or 0.0 for _, _, _, c in rows), 4)}  # fmt: skip


MOVES = {"pause": ("running", "paused"), "resume": ("paused", "running"),
         "cancel": (None, "cancelled")}  # fmt: skip


def control(
    store: Store, *, campaign_id: int, action: str, now: datetime | None = None
) -> str:
    """Pause, resume or cancel; returns the new status. Cancel ends queued messages."""
    now = now or utc_now()
    need, status = MOVES[action]
    with store.transaction() as session:
        campaign = session.get(Campaign, campaign_id)
        if campaign is None:
            raise SpecError(f"no campaign with id {campaign_id}")
        if need is not None and campaign.status != need:
            raise SpecError(
                f"campaign {campaign_id} is {campaign.status}; {action} needs {need}"
            )
        campaign.status = status
        if action == "cancel":
            campaign.finished_at = now
            session.execute(
                update(Message)
                .where(Message.campaign_id == campaign_id, Message.state == "queued")
                .values(
                    state="rejected",
                    error_code="cancelled",
                    finished_at=now,
                    updated_at=now,
                )
            )
    return status
