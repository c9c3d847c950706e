"""Abandoned-order reminders from a hand-made store: exactly the hall orders whose
confirmation ran out yesterday (in the operator's time zone) with nothing ordered since,
one per number, from the hall's number, with the code to order again."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from jingxin.config import Settings
from jingxin.content.library import library_document
from jingxin.content.templates import render
from jingxin.data.store import open_store
from jingxin.data.store.models import HallOrder, HallSession
from jingxin.errors import ConfigError
from jingxin.hall.orders import Quote
from jingxin.journeys.trigger import TriggerContext
from jingxin.journeys.triggers import trigger
from jingxin.journeys.triggers.abandoned import ABANDONED_ORDER

DAY = date(2026, 5, 10)
# 9 May in Shanghai, the day before the scan, is [8 May 16:00, 9 May 16:00) UTC.
YESTERDAY = datetime(2026, 5, 8, 16, 0, tzinfo=UTC)
TODAY = datetime(2026, 5, 9, 16, 0, tzinfo=UTC)
HALL, OTHER_HALL = "10086", "1008611"
CONFIRM = timedelta(seconds=Settings().hall.confirm_seconds)


def number(n: int) -> str:
    return f"+86139000000{n:02d}"


def quote(product_id: str = "LL10", name: str = "10GB流量包", price_fen: int = 2400) -> str:
    q = Quote(product_id=product_id, name=name, list_fee_fen=3000, price_fen=price_fen, zone="42")
    return json.dumps({"quote": q.to_json(), "mo_id": 1})


def pending(n: int, expired_at: datetime, *, service_number: str = HALL, kind: str = "order",
            payload: str | None = None, tenant: str = "operator") -> HallSession:  # fmt: skip
    return HallSession(msisdn=number(n), service_number=service_number, tenant_id=tenant,
                       pending_kind=kind, pending=payload or quote(),
                       pending_expires_at=expired_at, expires_at=expired_at)  # fmt: skip


def order(n: int, created_at: datetime, *, product_id: str = "LL10",
          state: str = "placed") -> HallOrder:  # fmt: skip
    return HallOrder(request_key=f"k{n}:{created_at.isoformat()}", msisdn=number(n),
                     service_number=OTHER_HALL, product_id=product_id, list_fee_fen=3000,
                     price_fen=2400, state=state, created_at=created_at)  # fmt: skip


def rows() -> list:
    noon = YESTERDAY + timedelta(hours=20)  # 9 May 12:00 in Shanghai
    return [
        pending(1, noon),  # abandoned yesterday: reminded
        pending(2, YESTERDAY),  # yesterday's first instant: reminded
        pending(3, TODAY - timedelta(microseconds=1), payload=quote("JT5", "5元来电提醒", 499),
                tenant="acme"),  # yesterday's last instant: reminded, for its hall's tenant
        pending(4, TODAY),  # today: tomorrow's reminder
        pending(5, YESTERDAY - timedelta(seconds=1)),  # the day before
        pending(6, noon), order(6, noon - CONFIRM + timedelta(seconds=1)),  # ordered since
        pending(7, noon), order(7, noon, state="failed"),  # a failed order is no order
        pending(8, noon), order(8, noon - CONFIRM - timedelta(seconds=1)),  # ordered before
        pending(9, noon), order(9, noon, product_id="JT5"),  # another product ordered
        pending(10, noon, kind="survey", payload="{}"),  # not an order
        pending(11, noon, payload="{not json"),  # broken: skipped
        pending(12, noon), pending(12, noon + timedelta(hours=1), service_number=OTHER_HALL,
                                   payload=quote("AQY", "爱奇艺会员", 1500)),  # two halls
        pending(13, noon, payload=quote("VERYLONGPRODUCT", "长编码业务", 100)),  # too long
        pending(14, noon), order(14, noon, product_id="ll10"),  # the same code in lower case
    ]


@pytest.fixture
def store(store_url: str) -> Iterator:
    opened = open_store(store_url, upgrade=True)
    with opened.transaction() as session:
        session.add_all(rows())
    yield opened
    opened.dispose()


def on(day: date, store=None) -> TriggerContext:
    """The scan's context on ``day``: the store only (the trigger reads no warehouse)."""
    return TriggerContext(warehouse=None,  # type: ignore[arg-type]
                          day=day, settings=Settings(), store=store)


def run(store, *, day: date = DAY):
    return ABANDONED_ORDER.candidates(on(day, store))


def test_exactly_yesterday_s_abandoned_orders_are_reminded(store) -> None:
    # When the scan of 10 May runs
    out = run(store)
    # Then one reminder per number whose order confirmation ran out on 9 May (Shanghai)
    # with nothing ordered since, from the hall it was asked at, with the code again
    assert out.candidates.to_pylist() == [
        _row(1), _row(2), _row(3, product="5元来电提醒", price="4.99", code="KTJT5", tenant="acme"),
        _row(7), _row(8), _row(9),
        _row(12, product="爱奇艺会员", price="15.00", code="KTAQY", hall=OTHER_HALL),
    ]
    # And the others, by reason (4 and 5 expired on other days, 10 waited for a survey)
    assert out.skipped == {"ordered_since": 2, "bad_pending": 1, "unsendable_code": 1}


def test_the_reminder_renders_with_the_hall_s_number(store) -> None:
    first = run(store).candidates.to_pylist()[0]
    document = library_document(first["template"])
    compiled = document.compile()
    text = render(compiled, {n: first[n] for n in compiled.variables},
                  category=document.category, signature=None).text  # fmt: skip
    assert text.startswith("尊敬的客户，您在短信营业厅办理10GB流量包（首月24元）时未回复确认，业务尚未开通。"
                           "如仍需要，发送“KTLL10”到10086，按提示回复Y即可办理。")  # fmt: skip
    assert text.endswith("回T退订")  # marketing


def test_the_next_day_reminds_today_s(store) -> None:
    assert [r["msisdn"] for r in run(store, day=DAY + timedelta(days=1)).candidates.to_pylist()
            ] == [number(4)]  # fmt: skip


def test_without_a_store_the_trigger_cannot_run() -> None:
    with pytest.raises(ConfigError, match="abandoned_order: the scan gave no store"):
        ABANDONED_ORDER.candidates(on(DAY))


def test_the_registry_names_this_trigger() -> None:
    assert trigger("abandoned_order") is ABANDONED_ORDER


def _row(n: int, *, product: str = "10GB流量包", price: str = "24.00", code: str = "KTLL10",
         hall: str = HALL, tenant: str = "operator") -> dict:  # fmt: skip
    return {"msisdn": number(n), "subscriber_id": None, "template": "care.abandoned_order",
            "name": "尊敬的客户", "product": product, "price": Decimal(price),
            "order_code": code, "hall_number": hall, "sender": hall,
            "tenant_id": tenant}  # fmt: skip
