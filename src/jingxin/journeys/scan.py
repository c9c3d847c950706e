"""The daily scan: every trigger's candidates for one day, through the delivery entry.

:func:`run_scan` asks each wanted trigger (:mod:`jingxin.journeys.triggers`) for the
day's candidates, fills what the trigger left to the scan (the template's category, the
wanted time: the day at ``[journeys] send_at`` in the operator's time zone, or now once
that has passed), and hands them to :func:`jingxin.dispatch.deliver.deliver_table` -
source ``journey``, source id ``<trigger>:<day>``, tenant ``[journeys] tenant`` - one call
per template, with only that template's variables (a trigger may mix templates: the usage
alerts, the renewal's fallback). It renders the first candidate of each trigger as a
sample, for the operator and the demo.

Crash-safety contract
---------------------
Each trigger of a day has one :class:`~jingxin.data.store.models.JourneyRun` row. It is
written ``running`` (its own transaction) before the trigger computes anything and
``done`` with the counts (its own transaction) once every candidate has been handed over.
Every message's idempotency key is ``journey:<trigger>:<day>:<msisdn>`` (unless the
trigger sets its own), unique in the outbox. So:

* a day scanned again skips its ``done`` triggers (the report says so) and sends nothing
  twice;
* a trigger left ``running`` by a crash, or ``failed``, is simply run again: what it had
  queued before comes back as ``duplicate``, the rest is queued now.

A trigger that raises :class:`~jingxin.errors.JingxinError` (a missing table, a template
not approved, a year without a holiday schedule) is recorded ``failed`` with the message
and logged, and the scan goes on with the others. A :class:`~jingxin.errors.StoreError`
stops the scan: with the store gone nothing more can be delivered or recorded. A dry run
computes and counts, renders the samples, and delivers and records nothing.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time as clock
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import select

from jingxin.data.store.engine import store_errors
from jingxin.data.store.models import JourneyRun, utc_now
from jingxin.dispatch.deliver import DeliveryContext
from jingxin.errors import InputError, JingxinError, StoreError
from jingxin.journeys.trigger import TriggerContext, TriggerOutput

if TYPE_CHECKING:
    from jingxin.config import Settings
    from jingxin.data.store.engine import Store
    from jingxin.data.warehouse.connection import Warehouse
    from jingxin.dispatch.approval import ApprovedTemplate
    from jingxin.dispatch.delivery_table import DeliverySummary

__all__ = ["ScanReport", "TriggerReport", "journey_key", "run_scan", "wanted_at"]

log = logging.getLogger(__name__)

SOURCE = "journey"
# Candidate columns the delivery entry reads besides the template's variables.
DELIVERY_COLUMNS = ("msisdn", "template", "category", "wanted_at", "idempotency_key",
                    "tenant_id", "sender", "arm")  # fmt: skip


@dataclass
class TriggerReport:
    """What one trigger of the scan found and what became of it."""

    trigger: str
    state: str = "running"  # 'done' | 'failed' (a dry run that ran: 'done')
    already_done: bool = False  # done by an earlier scan of the day: not run again
    candidates: int = 0
    queued: int = 0
    deferred: int = 0
    duplicates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0  # the whole trigger: computing its candidates and delivering them
    delivery_seconds: float = 0.0  # of which in the delivery entry
    warning: str | None = None
    error: str | None = None
    sample: str | None = None  # the first candidate's message, rendered

    def as_dict(self) -> dict[str, Any]:
        return {"trigger": self.trigger, "state": self.state, "already_done": self.already_done,
                "candidates": self.candidates, "queued": self.queued,
                "deferred": self.deferred, "duplicates": self.duplicates,
                "rejected": dict(self.rejected), "skipped": dict(self.skipped),
                "seconds": round(self.seconds, 3),
                "delivery_seconds": round(self.delivery_seconds, 3), "warning": self.warning,
                "error": self.error, "sample": self.sample}  # fmt: skip

    def add(self, summary: DeliverySummary) -> None:
        """Count a delivery. A key the ledger already holds (a message handed over by an
        earlier run of the day) is policy's ``duplicate`` rejection: counted here with the
        outbox's duplicates, as what it is - sent before, not refused."""
        rejected = Counter(summary.rejected)
        self.queued += summary.accepted
        self.deferred += summary.deferred
        self.duplicates += summary.duplicates + rejected.pop("duplicate", 0)
        self.rejected.update(rejected)


@dataclass
class ScanReport:
    """The scan of one day, trigger by trigger in the order they ran."""

    day: date
    dry_run: bool = False
    triggers: list[TriggerReport] = field(default_factory=list)

    @property
    def failed(self) -> list[str]:
        return [t.trigger for t in self.triggers if t.state == "failed"]

    def total(self, name: str) -> int:
        """The sum of a count (``candidates``, ``queued``, ...) over the triggers."""
        return sum(getattr(t, name) for t in self.triggers)

    def as_dict(self) -> dict[str, Any]:
        return {"day": self.day.isoformat(), "dry_run": self.dry_run,
                "triggers": [t.as_dict() for t in self.triggers]}  # fmt: skip


@dataclass(frozen=True)
class _Scan:
    """The scan's fixed inputs."""

    settings: Settings
    store: Store
    warehouse: Warehouse
    day: date
    now: datetime
    dry_run: bool
    context: DeliveryContext

    @property
    def tenant(self) -> str:
        return self.settings.journeys.tenant


def run_scan(settings: Settings, store: Store, warehouse: Warehouse, *, day: date,
             triggers: list[str] | None = None, now: datetime | None = None,
             dry_run: bool = False) -> ScanReport:  # fmt: skip
    """Scan ``day`` (a date in the operator's time zone) with ``triggers`` (default:
    ``[journeys] triggers``, empty: all), delivering as of ``now`` (default: the clock).
    An unknown trigger name is a ConfigError before anything runs; see the module's
    contract for what a failure leaves behind."""
    from jingxin.journeys.triggers import wanted

    names = wanted(triggers or settings.journeys.triggers)
    scan = _Scan(settings=settings, store=store, warehouse=warehouse, day=day,
                 now=now or utc_now(), dry_run=dry_run,
                 context=DeliveryContext.from_settings(settings))  # fmt: skip
    report = ScanReport(day=day, dry_run=dry_run)
    for name in names:
        report.triggers.append(_run_trigger(scan, name))
    return report


def wanted_at(settings: Settings, *, day: date, now: datetime) -> datetime:
    """When the day's messages are wanted (UTC): ``day`` at ``[journeys] send_at`` in the
    operator's time zone, or ``now`` once that has passed."""
    zone = ZoneInfo(settings.policy.default_timezone)
    local = datetime.combine(day, clock.fromisoformat(settings.journeys.send_at), tzinfo=zone)
    return max(local.astimezone(UTC), now.astimezone(UTC))


def journey_key(trigger: str, day: date, msisdn: str) -> str:
    """The idempotency key of ``trigger``'s message to ``msisdn`` on ``day``."""
    return f"{SOURCE}:{trigger}:{day.isoformat()}:{msisdn}"


# ------------------------------------------------------------------------ one trigger


def _run_trigger(scan: _Scan, name: str) -> TriggerReport:
    started = time.perf_counter()
    if not scan.dry_run:
        finished = _finished_run(scan, name)
        if finished is not None:
            log.info("journeys %s: %s already done", scan.day, name)
            return finished
        _start_run(scan, name)
    report = TriggerReport(trigger=name)
    try:
        _deliver(scan, name, report)
        report.state = "done"
    except StoreError:
        raise
    except JingxinError as exc:
        report.state, report.error = "failed", str(exc)
        log.error("journeys %s: trigger %s failed: %s", scan.day, name, exc)
    report.seconds = time.perf_counter() - started
    if not scan.dry_run:
        _finish_run(scan, report)
    log.info("journeys %s: %s %s: %d candidates, %d queued, %d deferred, %d duplicates, "
             "%d rejected", scan.day, name, report.state, report.candidates, report.queued,
             report.deferred, report.duplicates, sum(report.rejected.values()))  # fmt: skip
    return report


def _deliver(scan: _Scan, name: str, report: TriggerReport) -> None:
    """Compute ``name``'s candidates and hand them over, counting into ``report``."""
    from jingxin.dispatch.delivery_table import deliver_table
    from jingxin.journeys.triggers import trigger

    ctx = TriggerContext(warehouse=scan.warehouse, day=scan.day, settings=scan.settings,
                         store=scan.store)  # fmt: skip
    with store_errors(f"trigger {name} reading the store"):
        output = trigger(name).candidates(ctx)
    report.candidates = output.candidates.num_rows
    report.skipped.update(output.skipped)
    report.warning = output.warning
    groups = _by_template(scan, name, output)
    report.sample = _sample(scan, groups)
    if scan.dry_run:
        return
    # From the SMS hall's number: what a message teaches (KTLL10, LB, YE) is answered by
    # the hall or the inbox there, and a reply is attributed to the message.
    defaults = {"source": SOURCE, "source_id": f"{name}:{scan.day.isoformat()}",
                "tenant_id": scan.tenant, "sender": scan.settings.journeys.hall_number}  # fmt: skip
    started = time.perf_counter()
    for approved, whole in groups:
        table = _held_out(scan, name, whole, approved, report)
        with store_errors(f"delivering the {name} candidates of {scan.day}"):
            summary = deliver_table(scan.store, table=table, context=scan.context, now=scan.now,
                                    defaults={**defaults, "category": approved.category},
                                    where=f"journey {name} ({approved.code})")  # fmt: skip
        report.add(summary)
    report.delivery_seconds = time.perf_counter() - started


def _held_out(scan: _Scan, name: str, table: pa.Table, approved: ApprovedTemplate,
              report: TriggerReport) -> pa.Table:  # fmt: skip
    """The candidates to send: a marketing trigger (a birthday, a renewal offer) holds out
    ``[analytics] holdout`` of them by a hash of the number under ``journey:<trigger>`` -
    chosen before policy, so the comparison is fair, and the same subscriber lands on the
    same side every day. Every assignment is recorded (idempotently: a subscriber is
    assigned once per trigger, when first met); the held-out are counted as skipped
    ``holdout``. A notification trigger (a usage alert) holds out nobody."""
    from jingxin.analytics.assign import HOLDOUT, assign, record_assignments
    from jingxin.analytics.holdout import default_share, share_for

    share = share_for(None, category=approved.category, default=default_share(scan.settings))
    if not share or not table.num_rows:
        return table
    experiment = f"{SOURCE}:{name}"
    numbers = table.column("msisdn").cast(pa.string())
    arms = assign(numbers, experiment=experiment, holdout=share)
    with store_errors(f"recording the hold-out of {name}"):
        record_assignments(scan.store, experiment=experiment, tenant_id=scan.tenant,
                           msisdns=numbers, arms=arms, at=scan.now)  # fmt: skip
    treated = pc.not_equal(arms, HOLDOUT)
    held = table.num_rows - pc.sum(treated).as_py()
    if held:
        report.skipped["holdout"] += held
    kept = table.filter(treated)
    arm = pa.repeat(pa.scalar("main"), kept.num_rows)
    if "arm" in kept.column_names:
        return _fill(kept, "arm", pc.coalesce(kept.column("arm"), arm))
    return kept.append_column("arm", arm)


def _by_template(scan: _Scan, name: str,
                 output: TriggerOutput) -> list[tuple[ApprovedTemplate, pa.Table]]:  # fmt: skip
    """The candidates split by template, each part with the delivery columns and that
    template's variables only, its defaults filled. Every template is looked up (and must
    be approved) before anything is delivered; a variable the candidates lack is an
    InputError naming the trigger."""
    table, where = output.candidates, f"trigger {name}"
    if not table.num_rows:
        return []
    for column in ("msisdn", "template"):
        if column not in table.column_names:
            raise InputError(f"{where}: the candidates have no {column!r} column "
                             f"(columns: {', '.join(table.column_names)})")  # fmt: skip
    codes = pc.unique(table.column("template")).to_pylist()
    if None in codes:
        raise InputError(f"{where}: a candidate has no template")
    groups = []
    for code in codes:  # in order of first appearance: the first group holds row 0
        approved = scan.context.approved(scan.store, tenant_id=scan.tenant, code=code)
        missing = [v for v in approved.compiled.variables if v not in table.column_names]
        if missing:
            raise InputError(f"{where}: template {code} needs variable(s) {', '.join(missing)}"
                             " and the candidates have no such column")  # fmt: skip
        part = table if len(codes) == 1 else table.filter(pc.equal(table.column("template"), code))
        keep = [c for c in (*DELIVERY_COLUMNS, *approved.compiled.variables)
                if c in part.column_names]  # fmt: skip
        groups.append((approved, _filled(scan, name, part.select(keep), approved)))
    return groups


def _filled(scan: _Scan, name: str, table: pa.Table, approved: ApprovedTemplate) -> pa.Table:
    """``table`` with the defaults the trigger left to the scan: the wanted time for every
    row, and nulls of a category or key column filled (a column the trigger did not give
    at all is the delivery entry's default: the template's category, ``deliver_table``'s
    key ``journey:<trigger>:<day>:<msisdn>``)."""
    from jingxin.dispatch.admission import TS

    when = pa.scalar(wanted_at(scan.settings, day=scan.day, now=scan.now), TS)
    if "wanted_at" in table.column_names:
        column = table.column("wanted_at").cast(TS)
        table = table.set_column(table.schema.get_field_index("wanted_at"), "wanted_at",
                                 column.fill_null(when))  # fmt: skip
    else:
        table = table.append_column("wanted_at", pa.repeat(when, table.num_rows))
    if "category" in table.column_names:
        table = _fill(table, "category", table.column("category").fill_null(approved.category))
    if "idempotency_key" in table.column_names:
        prefix = journey_key(name, scan.day, "")
        own = pc.binary_join_element_wise(prefix, table.column("msisdn").cast(pa.string()), "")
        table = _fill(table, "idempotency_key",
                      pc.coalesce(table.column("idempotency_key"), own))  # fmt: skip
    return table


def _fill(table: pa.Table, name: str, column: Any) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), name, column)


def _sample(scan: _Scan, groups: list[tuple[ApprovedTemplate, pa.Table]]) -> str | None:
    """The first candidate's message as it would be sent (signature, unsubscribe route);
    None when there is no candidate or it does not render."""
    from jingxin.content.templates import render
    from jingxin.errors import TemplateError

    if not groups:
        return None
    approved, table = groups[0]
    row = table.slice(0, 1).to_pylist()[0]
    tenant = row.get("tenant_id") or scan.tenant
    category = row.get("category") or approved.category
    _, signature = scan.context.tenant(scan.store, tenant)
    content = scan.settings.content
    values = {v: row[v] for v in approved.compiled.variables}
    try:
        rendered = render(approved.compiled, values, category=category, signature=signature,
                          unsubscribe_text=content.unsubscribe_text,
                          max_parts=content.max_parts, where=f"template {approved.code}")  # fmt: skip
    except TemplateError as exc:
        log.warning("journeys %s: the sample of %s does not render: %s", scan.day,
                    approved.code, exc)  # fmt: skip
        return None
    return rendered.text


# ------------------------------------------------------------------------ run records


def _finished_run(scan: _Scan, name: str) -> TriggerReport | None:
    """The report of ``name``'s run of the day if it is done, else None."""
    with store_errors(f"reading the {name} run of {scan.day}"), scan.store.sessions() as session:
        run = session.scalar(select(JourneyRun).where(JourneyRun.trigger == name,
                                                      JourneyRun.day == scan.day))  # fmt: skip
        if run is None or run.state != "done":
            return None
        # The run keeps how many were rejected, not why.
        rejected = Counter({"total": run.rejected}) if run.rejected else Counter()
        return TriggerReport(trigger=name, state="done", already_done=True,
                             candidates=run.candidates, queued=run.queued,
                             deferred=run.deferred, duplicates=run.duplicates,
                             rejected=rejected, skipped=Counter(run.skipped or {}),
                             warning=run.detail)  # fmt: skip


def _start_run(scan: _Scan, name: str) -> None:
    """``name``'s run of the day, new or left running or failed, marked running."""
    with store_errors(f"starting the {name} run of {scan.day}"), scan.store.transaction() as s:
        run = s.scalar(select(JourneyRun).where(JourneyRun.trigger == name,
                                                JourneyRun.day == scan.day))  # fmt: skip
        if run is None:
            s.add(JourneyRun(trigger=name, day=scan.day, state="running", started_at=utc_now()))
            return
        run.state, run.detail, run.started_at, run.finished_at = "running", None, utc_now(), None


def _finish_run(scan: _Scan, report: TriggerReport) -> None:
    """Record the run's outcome and counts (a failure's message in ``detail``)."""
    with store_errors(f"recording the {report.trigger} run of {scan.day}"), \
            scan.store.transaction() as s:  # fmt: skip
        run = s.scalar(select(JourneyRun).where(JourneyRun.trigger == report.trigger,
                                                JourneyRun.day == scan.day))  # fmt: skip
        run.state = report.state
        run.candidates, run.queued, run.deferred = (report.candidates, report.queued,
                                                    report.deferred)  # fmt: skip
        run.rejected = sum(report.rejected.values())
        run.duplicates = report.duplicates
        run.skipped = dict(report.skipped)
        run.detail = report.error or report.warning
        run.finished_at = utc_now()
