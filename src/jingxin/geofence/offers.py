"""The matcher's triggers as offers through the delivery entry.

:func:`offer_deliveries` turns the triggers of a round into :class:`Delivery` rows: source
``fence``, source id the fence's code, the fence's template, category and tenant, its
constant variables plus ``place`` (the fence's name) and ``local_time`` (``HH:MM`` when the
offer became due, the operator's time), valid ``validity_minutes`` (default 120: an offer
for the departure hall is worthless once the plane has left).

The idempotency key names the stay, ``fence:<code>:<msisdn digits>:<entered_ms>``: the same
entry triggered again (a restart from a checkpoint, a stream entry delivered twice) is the
same key, which the delivery entry answers ``duplicate``. So an offer is never sent twice
for one entry, whatever the matcher replays.

:func:`deliver_offers` hands them over in chunks (:func:`deliver_many`, one transaction
each). Variables a template does not declare are dropped first (a fence may carry more
than its template uses). Bad input in a chunk (a template not approved, a variable
missing) is retried one delivery at a time so that one bad fence does not hold back the
others; those are counted ``invalid`` and logged. A
:class:`~jingxin.errors.StoreError` is raised: the runner must not checkpoint past offers
it could not hand over (they are asked for again after the restart, under the same keys).

Hold-out: before any offer is built, :func:`split_holdout` puts each due stay of a fence
with a hold-out share (its ``holdout``, else ``[analytics] holdout`` for a marketing
fence) in experiment ``fence:<code>`` by a hash of the number
(:func:`jingxin.analytics.assign.assign`): the same subscriber is always on the same side,
so a replay splits the same way. Held-out stays are sent nothing; treated ones go out with
``arm="main"``. Both are recorded in ``experiment_assignments`` (one bulk, idempotent
insert per fence per round) before the treated offers are handed over, so the comparison
is between who was *assigned*, whatever policy then did. A fence without a hold-out
(``holdout: none``, or a notification fence) is no experiment: no arm, nothing recorded.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import numpy as np

from jingxin.dispatch.deliver import Delivery, deliver_many, deliver_one
from jingxin.errors import InputError
from jingxin.geofence.types import Fence, Triggers, msisdn_text

if TYPE_CHECKING:
    from jingxin.data.store.engine import Store
    from jingxin.dispatch.deliver import Delivered, DeliveryContext
    from jingxin.geofence.compiled import CompiledFences

__all__ = ["CHUNK", "DEFAULT_VALIDITY_MINUTES", "HOLDOUT_REASON", "deliver_offers",
           "experiment_of", "offer_deliveries", "offer_key", "split_holdout",
           "utc_offset_seconds"]  # fmt: skip

log = logging.getLogger(__name__)

SOURCE = "fence"
DEFAULT_VALIDITY_MINUTES = 120
CHUNK = 500  # deliveries per deliver_many transaction
HOLDOUT_REASON = "holdout"  # the outcome of a held-out stay in the runner's counts


def offer_key(code: str, msisdn: int, entered_ms: int) -> str:
    """The idempotency key of the offer for one stay."""
    return f"{SOURCE}:{code}:{int(msisdn)}:{int(entered_ms)}"


def experiment_of(code: str) -> str:
    """The experiment a fence's hold-out belongs to."""
    return f"{SOURCE}:{code}"


def utc_offset_seconds(zone: str, at: datetime | None = None) -> int:
    """The fixed UTC offset of ``zone`` (an IANA name) at ``at`` (default: now), in seconds:
    what the fences' local hours and days use."""
    when = at or datetime.now(ZoneInfo(zone))
    offset = when.astimezone(ZoneInfo(zone)).utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


def validity_minutes(fence: Fence) -> int:
    """How long an offer of ``fence`` stays worth sending (``validity_minutes`` of its
    definition when the fence carries one, else the default)."""
    value = getattr(fence, "validity_minutes", None)
    return int(value) if value else DEFAULT_VALIDITY_MINUTES


def local_times(at_ms: np.ndarray, offset_seconds: int) -> list[str]:
    """``HH:MM`` of each instant at the fixed UTC offset."""
    minute = ((np.asarray(at_ms, np.int64) // 1000 + offset_seconds) // 60) % (24 * 60)
    return [f"{m // 60:02d}:{m % 60:02d}" for m in minute.tolist()]


def split_holdout(store: Store | None, triggers: Triggers, compiled: CompiledFences, *,
                  default_share: float, now: datetime) -> tuple[Triggers, list[str | None], int]:  # fmt: skip
    """The treated triggers, their arms (``main``; None for a fence without a hold-out)
    and how many stays were held out (module docstring). With ``store``, every assignment
    is recorded first (one insert per fence); StoreError propagates."""
    from jingxin.analytics.assign import HOLDOUT, assign, record_assignments

    arms: list[str | None] = [None] * len(triggers)
    if not len(triggers):
        return triggers, arms, 0
    held = np.zeros(len(triggers), bool)
    for index in np.unique(triggers.fence).tolist():
        fence = compiled.fences[index]
        share = fence.holdout_share(default_share)
        if share <= 0:
            continue
        rows = np.flatnonzero(triggers.fence == index)
        numbers = [msisdn_text(m) for m in triggers.msisdn[rows].tolist()]
        chosen = assign(numbers, experiment=experiment_of(fence.code), holdout=share)
        if store is not None:
            record_assignments(store, experiment=experiment_of(fence.code),
                               tenant_id=fence.tenant_id, msisdns=numbers, arms=chosen,
                               at=now)  # fmt: skip
        for row, arm in zip(rows.tolist(), chosen.to_pylist(), strict=True):
            arms[row] = arm
            held[row] = arm == HOLDOUT
    if not held.any():
        return triggers, arms, 0
    kept = np.flatnonzero(~held)
    return triggers.take(kept), [arms[i] for i in kept.tolist()], int(held.sum())


def offer_deliveries(triggers: Triggers, compiled: CompiledFences, *, sender: str | None,
                     now: datetime, zone: str,
                     arms: Sequence[str | None] | None = None) -> list[Delivery]:  # fmt: skip
    """One delivery per trigger row (module docstring). ``sender`` is the number offers go
    out from when the fence names none; ``zone`` the operator's time zone (IANA name);
    ``now`` when the offers are wanted; ``arms`` each row's experiment arm (from
    :func:`split_holdout`; None: none)."""
    if not len(triggers):
        return []
    offset = utc_offset_seconds(zone, now)
    times = local_times(triggers.at_ms, offset)
    out = []
    rows = zip(triggers.fence.tolist(), triggers.msisdn.tolist(), triggers.entered_ms.tolist(),
               times, arms if arms is not None else [None] * len(triggers), strict=True)  # fmt: skip
    for fence_index, msisdn, entered_ms, local_time, arm in rows:
        fence = compiled.fences[fence_index]
        variables = {**fence.variables, "place": fence.name, "local_time": local_time}
        out.append(Delivery(
            msisdn=msisdn_text(msisdn), source=SOURCE,
            idempotency_key=offer_key(fence.code, msisdn, entered_ms),
            category=fence.category, tenant_id=fence.tenant_id, source_id=fence.code,
            template=fence.template, variables=variables, wanted_at=now,
            validity=timedelta(minutes=validity_minutes(fence)),
            sender=fence.sender or sender, arm=arm))  # fmt: skip
    return out


def deliver_offers(store: Store, context: DeliveryContext, deliveries: Sequence[Delivery], *,
                   now: datetime | None = None, chunk: int = CHUNK) -> Counter:  # fmt: skip
    """Hand ``deliveries`` to the delivery entry in chunks; a Counter of outcomes
    (``queued``, ``deferred``, ``rejected``, ``duplicate``, ``invalid``), and of why
    (``rejected:cap_day``, ``deferred:quiet_hours``: the first reason, beside the totals). A key the contact
    ledger already holds (policy's ``duplicate`` rejection) counts as ``duplicate``: sent
    before, not refused. StoreError propagates (module docstring)."""
    outcomes: Counter = Counter()
    fitted = _fitted(store, context, deliveries, outcomes)
    for start in range(0, len(fitted), chunk):
        part = fitted[start:start + chunk]
        try:
            results = deliver_many(store, deliveries=part, context=context, now=now)
        except InputError:
            results = _one_by_one(store, context, part, outcomes, now=now)
        for result in results:
            outcome = _outcome(result)
            outcomes[outcome] += 1
            if outcome in ("rejected", "deferred") and result.reasons:
                outcomes[f"{outcome}:{result.reasons[0]}"] += 1  # why, by the first reason
    return outcomes


def _outcome(result: Delivered) -> str:
    if result.outcome == "rejected" and "duplicate" in result.reasons:
        return "duplicate"
    return result.outcome


def _fitted(store: Store, context: DeliveryContext, deliveries: Sequence[Delivery],
            outcomes: Counter) -> list[Delivery]:  # fmt: skip
    """The deliveries with only the variables their template declares; those whose
    template is not approved are counted ``invalid`` (one ERROR per template)."""
    declared: dict[tuple[str, str], Any] = {}
    out = []
    for delivery in deliveries:
        if delivery.template is None:
            out.append(delivery)
            continue
        key = (delivery.tenant_id, delivery.template)
        if key not in declared:
            try:
                approved = context.approved(store, tenant_id=key[0], code=key[1])
                declared[key] = set(approved.compiled.variables)
            except InputError as exc:
                log.error("%s %s: template %s cannot be sent: %s", delivery.source,
                          delivery.source_id, delivery.template, exc)  # fmt: skip
                declared[key] = None
        names = declared[key]
        if names is None:
            outcomes["invalid"] += 1
            continue
        variables = {k: v for k, v in delivery.variables.items() if k in names}
        out.append(dataclasses.replace(delivery, variables=variables))
    return out


def _one_by_one(store: Store, context: DeliveryContext, deliveries: Sequence[Delivery],
                outcomes: Counter, *, now: datetime | None) -> list[Delivered]:  # fmt: skip
    """Each delivery on its own; one with bad input is counted ``invalid`` and logged."""
    results = []
    for delivery in deliveries:
        try:
            results.append(deliver_one(store, delivery=delivery, context=context, now=now))
        except InputError as exc:
            outcomes["invalid"] += 1
            log.error("%s %s: offer %s not sent: %s", delivery.source, delivery.source_id,
                      delivery.idempotency_key, exc)  # fmt: skip
    return results
