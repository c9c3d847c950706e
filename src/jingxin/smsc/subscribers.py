"""Simulated subscribers answering an experiment's messages - a SIMULATION, not real
behaviour - so the demo's results come from behaviour, not constants.

:func:`respond` takes an experiment (``<source>:<source id>``, e.g. ``campaign:12``), the
subscribers assigned to it (``experiment_assignments``) and the messages it sent, and
lets each subscriber act as the model of :mod:`jingxin.smsc.reactions` draws:

* reached subscribers (the latest *delivered* message of the experiment to them) may click
  its short link, reply (``好的``, ``多少钱`` ...), unsubscribe (``TD``), complain to the
  hall (``投诉 骚扰短信``) and order a product of the offer's kind;
* everybody else assigned - the hold-out, and those the message never reached - may
  order at the base rate, so uplift is treated minus base.

The probabilities follow the offer's relevance to the subscriber's warehouse features
(:func:`relevance_scores`) and the local hour the message arrived against the
subscriber's latent responsive hours. How each action enters the system is in
:mod:`jingxin.smsc.subscriber_effects`: through the real entry points (the short-link
redirect or the click recorder, the simulator's MO endpoint or the MO inbox, the BOSS).

Deterministic for a seed; idempotent: every effect has a key (BOSS request key per
experiment and number, MO id per message and action, one click per link), so running it
again for the same experiment does nothing new.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
from sqlalchemy import or_, select

from jingxin.data.store.engine import Store, store_errors
from jingxin.data.store.models import ExperimentAssignment, Message, utc_now
from jingxin.errors import InputError
from jingxin.smsc.reactions import (
    DEFAULT_PARAMS,
    NEUTRAL,
    OFFER_KINDS,
    PROFILE,
    BehaviourParams,
    chances,
    hour_factor,
    offer_kind,
    peak_hours,
    profile_table,
    react,
    relevance,
)

if TYPE_CHECKING:
    from jingxin.config import Settings
    from jingxin.data.warehouse.connection import Warehouse

__all__ = ["NOTICE", "Audience", "Sent", "parse_experiment", "profiles", "relevance_scores",
           "respond"]  # fmt: skip

log = logging.getLogger(__name__)

NOTICE = "simulated subscribers (a simulation, not real behaviour)"
DEFAULT_ZONE = "Asia/Shanghai"
_SOURCES = ("campaign", "journey", "fence")


class Sent(NamedTuple):
    """The message of the experiment a subscriber reacts to (the latest delivered one)."""

    id: int
    tenant_id: str
    text: str
    state: str
    sender: str | None
    channel: str | None
    link_token: str | None
    arrived_at: datetime  # submitted_at, else scheduled_at (aware UTC)


@dataclass(frozen=True)
class Audience:
    """Everybody of an experiment, one row each: assigned or sent to (or both)."""

    msisdns: list[str]
    tenants: list[str]
    holdout: np.ndarray  # bool
    sent: list[Sent | None]  # None: never reached (held out, or no delivered message)
    kinds: list[str]  # the offer each subscriber is exposed to (or would have been)

    @property
    def reached(self) -> np.ndarray:
        return np.fromiter((s is not None for s in self.sent), dtype=bool, count=len(self.sent))


def parse_experiment(experiment: str) -> tuple[str, str]:
    """``campaign:12`` → ("campaign", "12"); anything else is an :class:`InputError`."""
    source, _, source_id = experiment.partition(":")
    if source not in _SOURCES or not source_id.strip():
        raise InputError(f"experiment {experiment!r}: expected <source>:<source id> with a "
                         f"source of {', '.join(_SOURCES)} (e.g. campaign:12)")  # fmt: skip
    if source == "campaign" and not source_id.isdigit():
        raise InputError(f"experiment {experiment!r}: a campaign is named by its number")
    return source, source_id


def respond(store: Store, warehouse_con: Any, *, experiment: str, seed: int = 0,
            now: datetime | None = None, click_via: str | None = None,
            mo_via: str | None = None, settings: Settings | None = None,
            params: BehaviourParams = DEFAULT_PARAMS) -> Counter[str]:  # fmt: skip
    """Let the subscribers of ``experiment`` react (see the module docstring).

    ``click_via``: the short-link server (``jingxin serve``) to click through, else clicks
    are recorded directly. ``mo_via``: the simulator's MO endpoint, else MO are stored as
    the inbox stores them - and, with ``settings``, handled at once (unsubscribe, the
    hall's complaints) as ``jingxin inbox process`` would. ``settings`` also give each
    channel's default service number, the unsubscribe word, the hall's number and
    complaint word, and the local time zone. Returns counts: ``assigned``, ``reached``,
    ``held_out``, each action done now (``clicked``, ``replied``, ``opted_out``,
    ``complained``, ``ordered``; ``ordered_unreached`` of those by subscribers the message
    never reached), ``already:<action>`` for those done by an earlier run, and
    ``refused:…`` / ``failed:…`` / ``skipped:…`` with the reason."""
    from jingxin.smsc.subscriber_effects import Routes, click, order, send_mo

    now = now or utc_now()
    if now.tzinfo is None:
        raise InputError("respond: 'now' must be an aware datetime")
    audience = load_audience(store, experiment=experiment)
    if not audience.msisdns:
        raise InputError(f"experiment {experiment}: no subscriber is assigned to it and it "
                         "sent no message; run it first")  # fmt: skip
    table = profiles(warehouse_con, audience.msisdns)
    r = _relevance_by_kind(table, audience.kinds, params)
    reached = audience.reached
    zone = ZoneInfo(settings.policy.default_timezone if settings is not None else DEFAULT_ZONE)
    hours = np.array([s.arrived_at.astimezone(zone).hour if s is not None else -1
                      for s in audience.sent], dtype=np.int16)  # fmt: skip
    factor = hour_factor(peak_hours(audience.msisdns, seed=seed), hours, params)
    odds = chances(r, factor=factor, electronic=table.column("electronic").to_numpy(),
                   complaint_sensitive=table.column("complaint_sensitive").to_numpy(),
                   params=params)  # fmt: skip
    did = react(audience.msisdns, odds=odds, treated=reached, factor=factor,
                experiment=experiment, seed=seed, params=params)  # fmt: skip
    counts: Counter[str] = Counter(assigned=len(audience.msisdns), reached=int(reached.sum()),
                                   held_out=int(audience.holdout.sum()))  # fmt: skip
    order(store, audience, did, experiment=experiment, counts=counts, now=now)
    click(store, audience, did, now=now, via=click_via, counts=counts)
    send_mo(store, audience, did, now=now, via=mo_via, seed=seed, experiment=experiment,
            routes=Routes.of(settings), settings=settings, counts=counts)  # fmt: skip
    return counts


# --------------------------------------------------------------------------- the store


def load_audience(store: Store, *, experiment: str) -> Audience:
    """The experiment's assignments and messages, one row per number (assignments first,
    then numbers only messages name, each in id order)."""
    source, source_id = parse_experiment(experiment)
    assigned = select(ExperimentAssignment.msisdn, ExperimentAssignment.tenant_id,
                      ExperimentAssignment.holdout).where(
        ExperimentAssignment.experiment == experiment).order_by(ExperimentAssignment.id)  # fmt: skip
    mine = Message.source_id == source_id
    if source != "campaign":  # a journey's steps are "<flow>:<step>"
        mine = or_(mine, Message.source_id.startswith(f"{source_id}:", autoescape=True))
    sent = select(Message.id, Message.msisdn, Message.tenant_id, Message.text, Message.state,
                  Message.sender, Message.channel, Message.link_token, Message.submitted_at,
                  Message.scheduled_at).where(Message.source == source, mine).order_by(
        Message.id)  # fmt: skip
    with store_errors(f"reading experiment {experiment}"), store.transaction() as session:
        assignments = session.execute(assigned).all()
        messages = session.execute(sent).all()
    order: dict[str, int] = {}
    tenants: list[str] = []
    holdout: list[bool] = []
    for msisdn, tenant, held in assignments:
        order[msisdn] = len(tenants)
        tenants.append(tenant)
        holdout.append(bool(held))
    latest: dict[str, Sent] = {}
    for row in messages:
        if row.msisdn not in order:
            order[row.msisdn] = len(tenants)
            tenants.append(row.tenant_id)
            holdout.append(False)
        if row.state == "delivered":  # later ids win: the latest delivered message
            latest[row.msisdn] = Sent(row.id, row.tenant_id, row.text, row.state, row.sender,
                                      row.channel, row.link_token,
                                      row.submitted_at or row.scheduled_at)  # fmt: skip
    usual = Counter(offer_kind(row.text) for row in messages).most_common(1)
    usual_kind = usual[0][0] if usual else "generic"
    msisdns = list(order)
    reached = [latest.get(m) for m in msisdns]
    kinds = [offer_kind(s.text) if s is not None else usual_kind for s in reached]
    return Audience(msisdns=msisdns, tenants=tenants, holdout=np.array(holdout, dtype=bool),
                    sent=reached, kinds=kinds)  # fmt: skip


# ------------------------------------------------------------------------ the warehouse


def relevance_scores(warehouse_con: Any, msisdns: Sequence[str], offer: str,
                     params: BehaviourParams = DEFAULT_PARAMS) -> np.ndarray:  # fmt: skip
    """Relevance in [0, 1] of ``offer`` (a kind of :data:`OFFER_KINDS`, or a message text
    whose kind is read from it) to each number, in the order given (an unknown number is
    an average subscriber)."""
    kind = offer if offer in OFFER_KINDS else offer_kind(offer)
    return relevance(profiles(warehouse_con, msisdns), kind, params)


def profiles(warehouse_con: Any, msisdns: Sequence[str]) -> pa.Table:
    """The :data:`~jingxin.smsc.reactions.PROFILE` of each number, in the order given: the
    latest ``features`` build joined to ``subscribers`` by number, plus roaming days of
    the last three months of ``usage_monthly`` (0 without that table)."""
    warehouse = _warehouse(warehouse_con)
    wanted = sorted({m for m in msisdns if m})
    rows = _feature_rows(warehouse, wanted) if wanted else {}
    columns: dict[str, list] = {field.name: [] for field in PROFILE}
    for msisdn in msisdns:
        row = rows.get(msisdn)
        columns["msisdn"].append(msisdn)
        for name in PROFILE.names[1:]:
            value = NEUTRAL[name] if row is None else row.get(name)
            columns[name].append(NEUTRAL[name] if value is None else value)
    return profile_table(columns)


def _feature_rows(warehouse: Warehouse, wanted: list[str]) -> dict[str, dict]:
    import ibis

    from jingxin.audience.source import read
    from jingxin.audience.store import dates
    from jingxin.errors import WarehouseError

    built = dates(warehouse, "features")
    if not built:
        raise WarehouseError("warehouse table 'features' is missing: the simulated "
                             "subscribers read it (run `jingxin audience features` first)")  # fmt: skip
    as_of = built[-1]
    features = warehouse.table("features")
    features = features.filter(features.as_of == as_of)
    subscribers = read(warehouse, "subscribers", columns=("subscriber_id", "msisdn", "app_user"))
    keys = ibis.memtable(pa.table({"number": pa.array(wanted, pa.string())}))
    t = keys.join(subscribers, keys.number == subscribers.msisdn)
    f = features.select(fid=features.subscriber_id, pref=features.product_preference,
                        trend=features.usage_trend, fit=features.plan_fit,
                        tier=features.value_tier, price=features.price_sensitivity,
                        sensitive=features.complaint_sensitive, tenure=features.tenure_months,
                        channel=features.channel_preference)  # fmt: skip
    t = t.left_join(f, t.subscriber_id == f.fid)
    roaming = _roaming(warehouse, as_of)
    if roaming is not None:
        t = t.left_join(roaming, t.subscriber_id == roaming.rid)
    t = t.select(
        msisdn=t.number, product_preference=t.pref, usage_trend=t.trend, plan_fit=t.fit,
        value_tier=t.tier, price_sensitivity=t.price, complaint_sensitive=t.sensitive,
        tenure_months=t.tenure,
        electronic=(t.channel == "electronic").fill_null(False) | t.app_user.fill_null(False),
        roaming_days=t.days.fill_null(0.0) if roaming is not None else ibis.literal(0.0))
    try:
        found = t.to_pyarrow().to_pylist()
    except Exception as exc:  # the engine's own error types
        raise WarehouseError(f"cannot read the subscribers' features: {exc}") from exc
    return {row.pop("msisdn"): {**row, "known": True} for row in found}


def _roaming(warehouse: Warehouse, as_of) -> Any:
    """(rid, days): roaming days (domestic + international) of the three months before
    ``as_of``, or None without a usage table."""
    from jingxin.audience.window import add_months

    if not warehouse.has_table("usage_monthly"):
        return None
    u = warehouse.table("usage_monthly")
    u = u.filter((u.month >= add_months(as_of.replace(day=1), -3)) & (u.month < as_of))
    return u.group_by(rid=u.subscriber_id).aggregate(
        days=(u.roaming_days_domestic + u.roaming_days_international).sum().cast("float64"))


def _warehouse(warehouse_con: Any) -> Warehouse:
    """A :class:`Warehouse`, from itself or from a bare Ibis backend."""
    from jingxin.data.warehouse.connection import Warehouse

    if isinstance(warehouse_con, Warehouse):
        return warehouse_con
    if not hasattr(warehouse_con, "table"):
        raise InputError(f"warehouse: expected a Warehouse or an Ibis backend, got "
                         f"{type(warehouse_con).__name__}")  # fmt: skip
    return Warehouse(con=warehouse_con, backend=getattr(warehouse_con, "name", "duckdb"))


def _relevance_by_kind(table: pa.Table, kinds: list[str], params: BehaviourParams
                       ) -> np.ndarray:  # fmt: skip
    """Each subscriber's relevance for the kind of offer they saw (or would have)."""
    kinds_array = np.array(kinds, dtype=object)
    out = np.zeros(len(kinds), dtype=float)
    for kind in set(kinds):
        mask = kinds_array == kind
        out[mask] = relevance(table.filter(pa.array(mask)), kind, params)
    return out
