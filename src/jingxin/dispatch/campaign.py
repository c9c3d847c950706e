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

import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import func, select, update
from sqlalchemy.pool import StaticPool

from jingxin.data.store.engine import Store, store_errors
from jingxin.data.store.models import DEFAULT_TENANT_ID, Campaign, Message, utc_now
from jingxin.dispatch.outbox import EnqueueResult, enqueue_table
from jingxin.errors import ImportFileError, SpecError, TemplateError

if TYPE_CHECKING:
    from jingxin.config import ContentSettings

CHUNK = 50_000
TS = pa.timestamp("us", tz="UTC")
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
    # Seconds spent per stage (read, render, state, decide, enqueue, ledger): for the
    # benchmark and for anyone asking where a slow campaign's time went.
    stages: Counter[str] = field(default_factory=Counter)

    @contextmanager
    def timing(self, stage: str) -> Iterator[None]:
        """Add the wall time of the ``with`` body to ``stages[stage]``."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.stages[stage] += time.perf_counter() - started

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
    started = time.perf_counter()
    chunks = read_audience(spec.audience)  # opens the file before anything is written
    first = next(chunks, None)
    read_seconds = time.perf_counter() - started
    campaign_id = _create(store, spec, now)
    summary = Summary(campaign_id=campaign_id)
    summary.stages["read"] += read_seconds
    zone = config.rules_for(spec.tenant).default_timezone
    with _OutboxWriter(store, now=now, summary=summary, progress=progress) as writer:
        for chunk in ([first] if first is not None else []) + list(chunks):
            with summary.timing("render"):
                rendered, rejected = _render(
                    chunk, spec, compiled, signature, unsubscribe_text, max_parts
                )
            summary.rows += chunk.num_rows
            summary.rejected.update(rejected)
            decided = decide_chunk(store, spec=spec, campaign_id=campaign_id,
                                   msisdns=rendered.msisdns, config=config, now=now,
                                   timing=summary.timing)  # fmt: skip
            with summary.timing("build"):
                accepted = _accepted(rendered, decided, spec=spec, campaign_id=campaign_id,
                                     now=now, summary=summary)  # fmt: skip
            writer.wait()  # the previous chunk is queued before this one is counted
            with summary.timing("ledger"):
                _record_contacts(store, accepted, zone=zone)
            writer.submit(accepted, rows=chunk.num_rows)
    summary.accepted -= summary.deferred
    return summary


class _OutboxWriter:
    """Enqueues a chunk's accepted rows while the next chunk is rendered and decided.

    The insert is mostly the database's work (PostgreSQL's server process; SQLite's B-tree
    code, which runs without the GIL), so a thread that waits for it frees the runner. An
    in-memory SQLite store has one shared connection: it writes in line. At most one chunk
    is in flight, and a chunk's
    ledger rows are written only once the chunk before it is queued: a failed enqueue
    stops the campaign with at most that chunk counted in the ledger and not queued (the
    side of the caps that protects subscribers; a chunk's ledger rows are what the next
    chunk's caps and duplicate check read, so they go first).
    """

    def __init__(self, store: Store, *, now: datetime, summary: Summary,
                 progress: Callable[[int], None] | None) -> None:  # fmt: skip
        self._store, self._now, self._summary, self._progress = store, now, summary, progress
        shared = isinstance(store.engine.pool, StaticPool)  # one connection for everyone
        self._pool = (None if shared
                      else ThreadPoolExecutor(1, thread_name_prefix="campaign-outbox"))  # fmt: skip
        self._pending: tuple[Future, int] | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if exc_info[0] is None:
            self.wait()
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def submit(self, accepted: pa.Table, *, rows: int) -> None:
        """Queue ``accepted`` (a chunk of ``rows`` audience rows), now or in the thread."""
        self.wait()
        if self._pool is None:
            self._collect(self._enqueue(accepted), rows)
        else:
            self._pending = (self._pool.submit(self._enqueue, accepted), rows)

    def wait(self) -> None:
        """Wait for the chunk in flight; its error, if any, is raised here."""
        if self._pending is None:
            return
        future, rows = self._pending
        self._pending = None
        with self._summary.timing("enqueue_wait"):
            outcome = future.result()
        self._collect(outcome, rows)

    def _enqueue(self, accepted: pa.Table) -> tuple[EnqueueResult, float]:
        started = time.perf_counter()
        result = enqueue_table(self._store, table=accepted, now=self._now)
        return result, time.perf_counter() - started

    def _collect(self, outcome: tuple[EnqueueResult, float], rows: int) -> None:
        result, seconds = outcome
        self._summary.stages["enqueue"] += seconds
        self._summary.accepted += result.inserted
        self._summary.duplicates += result.duplicates
        if self._progress is not None:
            self._progress(rows)


def _accepted(rendered: Rendered, decided: pa.Table, *, spec: CampaignSpec, campaign_id: int,
              now: datetime, summary: Summary) -> pa.Table:  # fmt: skip
    """The outbox rows (columns of :class:`OutboxEntry`) of the rows not rejected, sent at
    the later of the policy's send time and the spec's ``start_at``; counts the rejected
    (by first reason), the deferred, the parts and the cost into ``summary``."""
    outcome = decided.column("outcome")
    rejected = pc.equal(outcome, "reject")
    for item in pc.value_counts(decided.column("reasons").filter(rejected)).to_pylist():
        summary.rejected[item["values"].split(",")[0]] += item["counts"]
    summary.deferred += pc.sum(pc.equal(outcome, "defer")).as_py() or 0
    keep = pc.invert(rejected)
    msisdns = pa.array(rendered.msisdns, pa.string()).filter(keep)
    parts = pa.array(rendered.parts, pa.int64()).filter(keep)
    send_at = decided.column("send_at").filter(keep).fill_null(pa.scalar(now, TS))
    start = pa.scalar(spec.start_at or now, TS).cast(pa.int64())
    scheduled = pc.max_element_wise(send_at.cast(pa.int64()), start).cast(TS)
    n = len(msisdns)
    table = pa.table({
        "tenant_id": pa.array([spec.tenant] * n, pa.string()), "msisdn": msisdns,
        "category": pa.array([spec.category] * n, pa.string()),
        "text": pa.array(rendered.texts, pa.string()).filter(keep),
        "idempotency_key": pc.binary_join_element_wise(f"campaign:{campaign_id}:", msisdns, ""),
        "parts": parts, "scheduled_at": scheduled,
        "expires_at": pc.add(scheduled, pa.scalar(timedelta(hours=spec.validity_hours))),
        "campaign_id": pa.array([campaign_id] * n, pa.int64()),
        "cost": _costs(parts, spec.tariff),
    })  # fmt: skip
    summary.parts += pc.sum(parts).as_py() or 0
    summary.cost += sum(c for c in table.column("cost").to_pylist() if c is not None)
    return table


def _costs(parts: pa.Array, tariff: float | None) -> pa.Array:
    """``round(parts * tariff, 4)`` per row (None without a tariff), once per part count."""
    if tariff is None:
        return pa.nulls(len(parts), pa.float64())
    prices = {p: round(p * tariff, 4) for p in pc.unique(parts).to_pylist()}
    return pa.array([prices[p] for p in parts.to_pylist()], pa.float64())


def _record_contacts(store: Store, accepted: pa.Table, *, zone: str) -> None:
    """Count the accepted messages in the contact ledger, so the next campaign's caps see
    them. Counted when accepted, not when delivered: for caps, over-counting a contact that
    then failed is the side that protects subscribers. The local date is the tenant's."""
    from zoneinfo import ZoneInfo

    from jingxin.data.store.ledger import record_contact_table

    tz = ZoneInfo(zone)
    when = accepted.column("scheduled_at")
    encoded = when.combine_chunks().dictionary_encode() if len(when) else None
    if encoded is None:
        return
    days = pa.array([w.astimezone(tz).date() for w in encoded.dictionary.to_pylist()],
                    pa.date32())  # fmt: skip
    rows = accepted.select(["tenant_id", "msisdn", "category", "campaign_id",
                            "idempotency_key"]).append_column(
        "contact_at", when).append_column("local_date", pc.take(days, encoded.indices))  # fmt: skip
    with store.transaction() as session:
        record_contact_table(session, table=rows)


def _create(store: Store, spec: CampaignSpec, now: datetime) -> int:
    with store.transaction() as session:
        campaign = Campaign(tenant_id=spec.tenant, name=spec.name, category=spec.category,
                            spec=spec.model_dump(mode="json"), status="running", started_at=now)  # fmt: skip
        session.add(campaign)
        session.flush()
        return campaign.id


def _render(chunk: pa.Table, spec: CampaignSpec, compiled, signature, unsubscribe_text,
            max_parts) -> tuple[Rendered, Counter[str]]:  # fmt: skip
    """Render every row with a valid number. A campaign's variables take few distinct
    values, so each distinct tuple of values is rendered (and its parts counted) once; a
    value that cannot be a dict key (a list, a map) is rendered for its row alone."""
    from jingxin.content.templates import render
    from jingxin.data.msisdn import normalise_msisdns

    numbers = normalise_msisdns(
        chunk.column(spec.audience.msisdn_column)
    ).e164.to_pylist()
    names = [n for n in compiled.variables if n in chunk.column_names]
    rows = zip(*(chunk.column(n).to_pylist() for n in names), strict=True) if names else None
    rejected: Counter[str] = Counter()
    done: dict[tuple, tuple[str, int] | str] = {}
    out = Rendered()

    def one(i: int, values: tuple) -> tuple[str, int] | str:
        """(text, parts), or the reason the row is rejected."""
        try:
            result = render(compiled, dict(zip(names, values, strict=True)),
                            category=spec.category, signature=signature,
                            unsubscribe_text=unsubscribe_text, max_parts=max_parts,
                            where=f"{spec.audience.path.name} row {i + 1}")  # fmt: skip
        except TemplateError:
            return "render_error"
        return (result.text, result.parts.parts) if result.fits else "too_long"

    for i, msisdn in enumerate(numbers):
        values = next(rows) if rows is not None else ()
        if msisdn is None:
            rejected["invalid_number"] += 1
            continue
        try:
            made = done.get(values)
        except TypeError:  # unhashable: a list or map value
            made = one(i, values)
        else:
            if made is None:
                made = done[values] = one(i, values)
        if isinstance(made, str):
            rejected[made] += 1
            continue
        out.msisdns.append(msisdn)
        out.texts.append(made[0])
        out.parts.append(made[1])
    return out, rejected


@dataclass
class Rendered:
    """A chunk's rendered rows, as columns (the row objects were most of the chunk time)."""

    msisdns: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    parts: list[int] = field(default_factory=list)


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
