"""Triggers to offers: the stay's idempotency key, the fence's template, category, tenant
and variables plus place and local time, the sender's precedence, the validity; handed
to a real store in chunks - queued once, duplicate on a replay, a fence whose template is
not approved counted invalid without holding back the others."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import select

from jingxin.content.library import TemplateDocument
from jingxin.data.store import open_store
from jingxin.data.store.models import Message
from jingxin.dispatch.deliver import DeliveryContext
from jingxin.geofence.compiled import CompiledFences
from jingxin.geofence.directory import CellIndex
from jingxin.geofence.fences import fence_of
from jingxin.geofence.offers import (
    DEFAULT_VALIDITY_MINUTES,
    deliver_offers,
    offer_deliveries,
    offer_key,
)
from jingxin.geofence.types import Fence, Triggers

NOW = datetime(2026, 5, 10, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
AT = int(datetime(2026, 5, 10, 1, 37, tzinfo=UTC).timestamp() * 1000)  # 09:37 local
OFFER = TemplateDocument(code="fence.test_offer", category="marketing",
                         body="{{ place }}专享：{{ pack }}，{{ local_time }}起可办理。",
                         variables={"place": "str", "local_time": "str",
                                    "pack": "str"})  # fmt: skip

AIRPORT = Fence(code="pvg-t2", name="浦东机场T2", scenario="airport_departure", cells=("C1",),
                template="fence.test_offer",
                variables={"pack": "日韩多日包", "unused": "x"})  # fmt: skip
MALL = fence_of({"code": "mall", "name": "正大广场", "scenario": "mall", "template":
                 "fence.test_offer", "category": "marketing", "sender": "1065800",
                 "variables": {"pack": "周末流量包"}, "validity_minutes": 30}, ["C2"])  # fmt: skip
LOST = Fence(code="lost", name="无模板", scenario="other", cells=("C2",),
             template="fence.not_approved")  # fmt: skip


def compiled(*fences: Fence) -> CompiledFences:
    return CompiledFences.build(list(fences), CellIndex.from_ids(["C1", "C2"]))


def triggers(rows: list[tuple[int, int, int]]) -> Triggers:
    """(fence index, msisdn, entered_ms) rows, due at AT."""
    n = len(rows)
    return Triggers(np.arange(n, dtype=np.int32), np.array([m for _, m, _ in rows], np.int64),
                    np.array([f for f, _, _ in rows], np.int32),
                    np.array([e for _, _, e in rows], np.int64), np.full(n, AT, np.int64),
                    np.full(n, -1, np.int64))  # fmt: skip


@pytest.fixture
def store(tmp_path, migrated_sqlite):
    from jingxin.content import catalog
    from jingxin.data.store.tenants import ensure_default_tenant

    opened = open_store(migrated_sqlite(tmp_path / "jx.db"))
    with opened.transaction() as session:
        ensure_default_tenant(session)
        catalog.seed_library(session, documents=[OFFER], approve_as="reviewer", reviewer=None)
    yield opened
    opened.dispose()


def test_a_trigger_becomes_the_fence_s_offer_for_that_stay() -> None:
    fences = compiled(AIRPORT, MALL)
    out = offer_deliveries(triggers([(0, 8613900000001, AT - 600_000), (1, 8613900000002, AT)]),
                           fences, sender="10086", now=NOW, zone="Asia/Shanghai")  # fmt: skip
    airport, mall = out
    assert airport.idempotency_key == f"fence:pvg-t2:8613900000001:{AT - 600_000}"
    assert airport.idempotency_key == offer_key("pvg-t2", 8613900000001, AT - 600_000)
    assert (airport.msisdn, airport.source, airport.source_id, airport.template,
            airport.category, airport.tenant_id) == (
        "+8613900000001", "fence", "pvg-t2", "fence.test_offer", "marketing", "operator")
    assert dict(airport.variables) == {"pack": "日韩多日包", "unused": "x",
                                       "place": "浦东机场T2", "local_time": "09:37"}  # fmt: skip
    # The default sender and validity; the mall's own sender and validity_minutes
    assert (airport.sender, airport.validity) == ("10086",
                                                  timedelta(minutes=DEFAULT_VALIDITY_MINUTES))
    assert (mall.sender, mall.validity) == ("1065800", timedelta(minutes=30))
    assert airport.wanted_at == NOW


def test_no_triggers_no_offers() -> None:
    assert offer_deliveries(Triggers.empty(), compiled(AIRPORT), sender=None, now=NOW,
                            zone="Asia/Shanghai") == []  # fmt: skip


def test_an_offer_is_queued_once_and_a_replay_is_a_duplicate(store) -> None:
    context = DeliveryContext()
    fences = compiled(AIRPORT, MALL)
    rows = [(0, 8613900000001, AT), (1, 8613900000002, AT)]
    offers = offer_deliveries(triggers(rows), fences, sender="10086", now=NOW,
                              zone="Asia/Shanghai")  # fmt: skip
    # When handed over in chunks of one (two transactions)
    assert deliver_offers(store, context, offers, now=NOW, chunk=1) == {"queued": 2}
    with store.sessions() as session:
        messages = session.scalars(select(Message).order_by(Message.msisdn)).all()
    assert [(m.source, m.source_id, m.sender) for m in messages] == [
        ("fence", "pvg-t2", "10086"), ("fence", "mall", "1065800")]
    # Then the text is the template's with the fence's variables (the undeclared one dropped)
    assert messages[0].text.startswith("【中国移动】浦东机场T2专享：日韩多日包，09:37起可办理。")
    # When the same stays trigger again (a restart from an older checkpoint)
    again = offer_deliveries(triggers(rows), fences, sender="10086", now=NOW,
                             zone="Asia/Shanghai")  # fmt: skip
    assert deliver_offers(store, context, again, now=NOW) == {"duplicate": 2}
    with store.sessions() as session:
        assert len(session.scalars(select(Message)).all()) == 2


def test_a_fence_whose_template_is_not_approved_does_not_hold_back_the_others(store) -> None:
    fences = compiled(AIRPORT, LOST)
    offers = offer_deliveries(triggers([(1, 8613900000003, AT), (0, 8613900000001, AT)]),
                              fences, sender="10086", now=NOW, zone="Asia/Shanghai")  # fmt: skip
    assert deliver_offers(store, DeliveryContext(), offers, now=NOW) == Counter(
        {"queued": 1, "invalid": 1})


def test_bad_input_in_a_chunk_is_retried_one_by_one(store) -> None:
    # Given a chunk with an invalid number among good ones
    fences = compiled(AIRPORT)
    offers = offer_deliveries(triggers([(0, 8613900000001, AT), (0, 8612, AT),
                                        (0, 8613900000002, AT)]), fences, sender="10086",
                              now=NOW, zone="Asia/Shanghai")  # fmt: skip
    # Then the good ones are queued, the bad one counted invalid
    assert deliver_offers(store, DeliveryContext(), offers, now=NOW) == Counter(
        {"queued": 2, "invalid": 1})
