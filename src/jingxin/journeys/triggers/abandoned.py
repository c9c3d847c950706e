"""Abandoned-order reminders: a subscriber who asked the SMS business hall for a product
(``KT<code>``), got the confirmation question and never answered ``Y`` is reminded the
next day, with the code to order again.

Read from the store, not the warehouse (the hall's sessions and orders live there): a
``hall_sessions`` row whose pending action is an ``order`` that expired on day D-1 (the
operator's time zone) - a ``Y`` or ``QX`` would have cleared it, an expired ``Y`` too - and
no ``hall_orders`` row for that number and product created since the question was asked
(ordered after all, through another hall number), but for ``failed`` ones. The question's
time is the pending's expiry less ``[hall] confirm_seconds``.

One reminder per number and day (key ``journey:abandoned_order:<D>:<msisdn>``); a number
with pending orders at two hall numbers is reminded of the one that expired last. The
reminder goes out from that hall's number (``sender``) for the hall's tenant, so a ``KT``
sent back as a reply reaches the hall. ``subscriber_id`` is null: the hall knows numbers,
not subscribers. Skipped, by reason: ``ordered_since``, ``bad_pending`` (a pending that is
not a quote), ``unsendable_code`` (``KT<product>`` longer than a template code may be).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pyarrow as pa
from sqlalchemy import select

from jingxin.data.store.bulk import among
from jingxin.data.store.engine import store_errors
from jingxin.data.store.models import HallOrder, HallSession
from jingxin.errors import ConfigError, InputError
from jingxin.journeys.trigger import TriggerContext, TriggerOutput

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from jingxin.data.store.engine import Store

TEMPLATE = "care.abandoned_order"
SALUTATION = "尊敬的客户"
ORDER_CODE = re.compile(r"^[A-Za-z0-9]{2,12}$")  # what a template's ``code`` variable takes
NOT_AN_ORDER = ("failed",)  # an order in these states did not get the subscriber the product
CHUNK = 400  # numbers per IN list (SQLite's parameter limit)


@dataclass(frozen=True, slots=True)
class Abandoned:
    """One pending order that ran out: whose, at which hall, for what."""

    msisdn: str
    service_number: str
    tenant_id: str
    product_id: str
    product: str
    price_fen: int
    asked_at: datetime
    expired_at: datetime


def day_bounds(day: date, zone: str) -> tuple[datetime, datetime]:
    """``day`` in time zone ``zone`` as a half-open UTC interval."""
    start = datetime.combine(day, time(), tzinfo=ZoneInfo(zone))
    return start.astimezone(UTC), (start + timedelta(days=1)).astimezone(UTC)


@dataclass(frozen=True)
class AbandonedOrderTrigger:
    """Reminds the hall's subscribers of orders they left unconfirmed (module docstring)."""

    name: str = "abandoned_order"

    def candidates(self, ctx: TriggerContext) -> TriggerOutput:
        if ctx.store is None:
            raise ConfigError("abandoned_order: the scan gave no store (TriggerContext.store); "
                              "hall sessions and orders are read from it")  # fmt: skip
        start, end = day_bounds(ctx.day - timedelta(days=1), ctx.settings.policy.default_timezone)
        pending, skipped = abandoned_orders(ctx.store, start=start, end=end,
                                            confirm_seconds=ctx.settings.hall.confirm_seconds)
        rows = []
        for order in pending:
            code = f"KT{order.product_id.upper()}"
            if not ORDER_CODE.match(code):
                skipped["unsendable_code"] += 1
                continue
            rows.append({"msisdn": order.msisdn, "subscriber_id": None, "template": TEMPLATE,
                         "name": SALUTATION, "product": order.product,
                         "price": Decimal(order.price_fen) / 100, "order_code": code,
                         "hall_number": order.service_number,
                         "sender": order.service_number, "tenant_id": order.tenant_id})  # fmt: skip
        return TriggerOutput(candidates=pa.Table.from_pylist(rows, schema=SCHEMA), skipped=skipped)


SCHEMA = pa.schema([("msisdn", pa.string()), ("subscriber_id", pa.int64()),
                    ("template", pa.string()), ("name", pa.string()), ("product", pa.string()),
                    ("price", pa.decimal128(12, 2)), ("order_code", pa.string()),
                    ("hall_number", pa.string()), ("sender", pa.string()),
                    ("tenant_id", pa.string())])  # fmt: skip


def abandoned_orders(store: Store, *, start: datetime, end: datetime,
                     confirm_seconds: float) -> tuple[list[Abandoned], Counter[str]]:  # fmt: skip
    """The pending orders that expired in ``[start, end)`` with nothing ordered since, one
    per number (the latest), by number; and what was left out, by reason."""
    skipped: Counter[str] = Counter()
    with store.transaction() as session:
        with store_errors("reading the hall's expired pending orders"):
            sessions = session.execute(select(
                HallSession.msisdn, HallSession.service_number, HallSession.tenant_id,
                HallSession.pending,
                HallSession.pending_expires_at).where(
                    HallSession.pending_kind == "order", HallSession.pending_expires_at >= start,
                    HallSession.pending_expires_at < end)).all()  # fmt: skip
        found = []
        for msisdn, service_number, tenant_id, pending, expired_at in sessions:
            quote = _quote(pending)
            if quote is None:
                skipped["bad_pending"] += 1
                continue
            asked_at = expired_at - timedelta(seconds=confirm_seconds)
            found.append(Abandoned(msisdn, service_number, tenant_id, quote.product_id,
                                   quote.name, quote.price_fen, asked_at, expired_at))  # fmt: skip
        ordered = _orders_since(session, found)
    latest: dict[str, Abandoned] = {}
    for item in found:
        since = ordered.get((item.msisdn, item.product_id.casefold()), ())
        if any(at >= item.asked_at for at in since):
            skipped["ordered_since"] += 1
            continue
        kept = latest.get(item.msisdn)
        if kept is None or (item.expired_at, item.service_number) > (kept.expired_at,
                                                                     kept.service_number):
            latest[item.msisdn] = item
    return [latest[m] for m in sorted(latest)], skipped


def _quote(pending: str | None) -> Any:
    """The quote a pending order holds, or None when it holds none."""
    import json

    from jingxin.hall.orders import Quote

    try:
        payload = json.loads(pending or "")
        return Quote.from_json(payload["quote"])
    except (ValueError, TypeError, KeyError, InputError):
        return None


def _orders_since(session: Session,
                  found: list[Abandoned]) -> dict[tuple[str, str], list[datetime]]:  # fmt: skip
    """When each (number, product) of ``found`` was ordered through the hall (but for
    failed orders) since the earliest question among them."""
    if not found:
        return {}
    numbers = sorted({item.msisdn for item in found})
    since = min(item.asked_at for item in found)
    ordered: dict[tuple[str, str], list[datetime]] = {}
    with store_errors(f"reading the hall orders of {len(numbers)} number(s)"):
        for at in range(0, len(numbers), CHUNK):
            rows = session.execute(select(HallOrder.msisdn, HallOrder.product_id,
                                          HallOrder.created_at).where(
                among(session.connection(), HallOrder.msisdn, numbers[at:at + CHUNK]),
                HallOrder.created_at >= since, HallOrder.state.not_in(NOT_AN_ORDER)))  # fmt: skip
            for msisdn, product_id, created_at in rows:
                ordered.setdefault((msisdn, product_id.casefold()), []).append(created_at)
    return ordered


ABANDONED_ORDER = AbandonedOrderTrigger()
