"""The event log (analytics.events): what each source table gives, idempotent collects,
late receipts, orders and complaints attributed to a message or a hold-out within the
window, hand-recorded events, the warehouse copy; the ON CONFLICT path on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import count

import pytest
from sqlalchemy import select

from jingxin.analytics.events import collect, record_events, to_warehouse
from jingxin.analytics.metrics import arm_table, subscriber_outcomes
from jingxin.data.store import Store, open_store
from jingxin.data.store.models import (
    LANES,
    AnalyticsEvent,
    Base,
    BossOrder,
    EventMark,
    ExperimentAssignment,
    HallComplaint,
    LinkClick,
    Message,
    MoMessage,
    MoOutcome,
)
from jingxin.errors import InputError

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
LATER = T0 + timedelta(days=30)  # collect "now": everything long settled
A, B, C = "+8613800000001", "+8613800000002", "+8613800000003"
_keys = count(1)


@pytest.fixture
def store(tmp_path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'events.db'}")
    Base.metadata.create_all(opened.engine)
    yield opened
    opened.dispose()


def add_message(store: Store, msisdn: str = A, *, at: datetime = T0, **fields) -> int:
    values = {"tenant_id": "operator", "campaign_id": 7, "msisdn": msisdn,
              "category": "marketing", "lane": LANES["marketing"], "text": "offer",
              "idempotency_key": f"k{next(_keys)}", "source": "campaign", "source_id": "7",
              "arm": "A", "parts": 1, "state": "submitted", "created_at": at,
              "scheduled_at": at, "submitted_at": at, **fields}
    with store.transaction() as s:
        message = Message(**values)
        s.add(message)
        s.flush()
        return message.id


def add(store: Store, *rows) -> None:
    with store.transaction() as s:
        s.add_all(rows)


def events(store: Store) -> dict[str, AnalyticsEvent]:
    with store.sessions() as s:
        return {e.event_key: e for e in s.scalars(select(AnalyticsEvent))}


def holdout(msisdn: str, *, at: datetime, experiment: str = "campaign:7") -> ExperimentAssignment:
    return ExperimentAssignment(experiment=experiment, msisdn=msisdn, arm="holdout",
                                holdout=True, tenant_id="tenant-h", assigned_at=at)  # fmt: skip


def order(ref: str, msisdn: str, *, at: datetime, fee_fen: int = 1500,
          state: str = "placed") -> BossOrder:  # fmt: skip
    return BossOrder(boss_ref=ref, request_key=f"r-{ref}", msisdn=msisdn, product_id="P10",
                     fee_fen=fee_fen, state=state, at=at)  # fmt: skip


def test_messages_give_sent_delivered_failed_once(store):
    # Given a delivered, an undeliverable, a cancelled and a still queued message
    delivered = add_message(store, state="delivered", finished_at=T0 + timedelta(minutes=1))
    undeliverable = add_message(store, B, state="undeliverable", error_code="EC13",
                                finished_at=T0 + timedelta(minutes=2))  # fmt: skip
    add_message(store, C, state="rejected", error_code="cancelled", submitted_at=None,
                finished_at=T0)  # fmt: skip
    add_message(store, C, state="queued", submitted_at=None)
    # When collected twice
    first = collect(store, now=LATER)
    second = collect(store, now=LATER)
    # Then each message's events once; the cancelled one is no failure
    assert first == {"sent": 2, "delivered": 1, "failed": 1}
    assert second == {}
    log = events(store)
    assert log[f"delivered:{delivered}"].at == T0 + timedelta(minutes=1)
    failed = log[f"failed:{undeliverable}"]
    assert (failed.detail, failed.msisdn, failed.source, failed.source_id, failed.arm,
            failed.campaign_id) == ("undeliverable:EC13", B, "campaign", "7", "A", 7)


def test_a_late_receipt_gives_delivered_on_the_next_collect(store):
    # Given a message submitted but not yet receipted, collected
    message = add_message(store)
    assert collect(store, now=LATER) == {"sent": 1}
    # When its receipt arrives afterwards
    with store.transaction() as s:
        row = s.get(Message, message)
        row.state, row.finished_at = "delivered", T0 + timedelta(hours=1)
    # Then the next collect gives its delivered event, and the mark moves past it
    assert collect(store, now=LATER) == {"delivered": 1}
    with store.sessions() as s:
        assert s.get(EventMark, "messages").last_id == message


def test_new_rows_are_read_again_until_settled(store):
    # Given a click younger than the settle margin at collect time
    message = add_message(store, link_token="tok1")
    add(store, LinkClick(token="tok1", message_id=message, at=T0))
    collect(store, now=T0 + timedelta(minutes=1))
    with store.sessions() as s:
        assert s.get(EventMark, "link_clicks").last_id == 0  # read, not yet passed
    # When collected once it is old: the mark moves past it, nothing is added twice
    assert collect(store, now=LATER) == {}
    with store.sessions() as s:
        assert s.get(EventMark, "link_clicks").last_id == 1


def test_clicked_is_the_first_human_click_found_by_id_or_token(store):
    first = add_message(store, link_token="tokA")
    other = add_message(store, B, link_token="tokB")
    add(store,
        LinkClick(token="tokA", message_id=first, at=T0 + timedelta(minutes=9)),
        LinkClick(token="tokA", message_id=None, at=T0 + timedelta(minutes=4)),  # by token
        LinkClick(token="tokA", message_id=first, at=T0 + timedelta(minutes=1), bot=True),
        LinkClick(token="tokB", message_id=other, at=T0, bot=True, method="HEAD"),
        LinkClick(token="nope", message_id=None, at=T0))  # fmt: skip
    assert collect(store, now=LATER)["clicked"] == 1
    clicked = events(store)[f"clicked:{first}"]
    assert (clicked.at, clicked.msisdn, clicked.arm) == (T0 + timedelta(minutes=4), A, "A")


def test_replies_and_unsubscribes_attributed_by_the_inbox(store):
    # Given two replies to one message (one an unsubscribe), and an unattributed MO
    message = add_message(store)
    mos = [MoMessage(channel="sim", msisdn=A, service_number="10690000", text=text, coding=0,
                     parts=1, parts_expected=1, complete=True, undecodable=False,
                     received_at=T0 + timedelta(minutes=m), dedup_key=f"d{m}")
           for m, text in ((5, "TD"), (3, "hi"), (7, "??"))]  # fmt: skip
    add(store, *mos)
    add(store,
        MoOutcome(mo_id=mos[0].id, handler="unsubscribe", outcome="handled", message_id=message,
                  tenant_id="operator", source="campaign", source_id="7", campaign_id=7,
                  arm="A"),
        MoOutcome(mo_id=mos[1].id, handler="keyword", outcome="handled", message_id=message,
                  tenant_id="operator", source="campaign", source_id="7", campaign_id=7,
                  arm="A"),
        MoOutcome(mo_id=mos[2].id, handler=None, outcome="no_handler"))  # fmt: skip
    # When collected
    counts = collect(store, now=LATER)
    # Then one reply (the earliest) and one opt-out, both tied to the message
    assert (counts["replied"], counts["opted_out"]) == (1, 1)
    log = events(store)
    assert log[f"replied:{message}"].at == T0 + timedelta(minutes=3)
    assert log[f"opted_out:{message}"].detail == "unsubscribe"
    assert log[f"opted_out:{message}"].msisdn == A


def test_orders_go_to_the_later_of_message_and_holdout_within_the_window(store):
    # A: messaged day 0, held out (another experiment) day 2, orders day 3 -> the hold-out
    # B: held out day 0, messaged day 1, orders day 2 -> the message
    # C: messaged day 0, orders day 9 (window 7 days) -> unattributed
    add_message(store, A, at=T0)
    b_message = add_message(store, B, at=T0 + timedelta(days=1), arm="B")
    add_message(store, C, at=T0)
    add(store, holdout(A, at=T0 + timedelta(days=2), experiment="journey:welcome"),
        holdout(B, at=T0),
        order("O1", A, at=T0 + timedelta(days=3)), order("O2", B, at=T0 + timedelta(days=2)),
        order("O3", C, at=T0 + timedelta(days=9), fee_fen=990),
        order("O4", A, at=T0 + timedelta(days=3), state="refused"))  # fmt: skip
    counts = collect(store, now=LATER, attribution_days=7)
    assert counts["ordered"] == 3
    log = events(store)
    o1, o2, o3 = log["ordered:O1"], log["ordered:O2"], log["ordered:O3"]
    assert (o1.source, o1.source_id, o1.campaign_id, o1.arm, o1.message_id, o1.tenant_id) \
        == ("journey", "welcome", None, "holdout", None, "tenant-h")
    assert (o2.source, o2.source_id, o2.campaign_id, o2.arm, o2.message_id) \
        == ("campaign", "7", 7, "B", b_message)
    assert (o3.source, o3.message_id, o3.value, o3.tenant_id) == (None, None, 9.9, "operator")
    assert o1.value == 15.0
    # A wider window attributes nothing anew: an order is recorded once
    assert collect(store, now=LATER, attribution_days=30) == {}


def test_complaints_are_attributed_to_the_latest_message_within_the_window(store):
    add_message(store, A, at=T0, arm="A")
    latest = add_message(store, A, at=T0 + timedelta(days=1), arm="B")
    add_message(store, B, at=T0)
    add(store,
        HallComplaint(mo_id=1, msisdn=A, category="marketing_sms", text="stop",
                      at=T0 + timedelta(days=2)),
        HallComplaint(mo_id=2, msisdn=B, category="billing", text="?",
                      at=T0 + timedelta(days=8)))  # fmt: skip
    assert collect(store, now=LATER)["complained"] == 2
    log = events(store)
    assert (log["complained:1"].message_id, log["complained:1"].arm) == (latest, "B")
    assert (log["complained:2"].source, log["complained:2"].detail) == (None, "billing")


def test_held_out_events_split_the_experiment_name(store):
    add(store, holdout(A, at=T0), holdout(B, at=T0, experiment="fence:SH:PVG"),
        ExperimentAssignment(experiment="campaign:7", msisdn=C, arm="A", tenant_id="operator",
                             assigned_at=T0))  # fmt: skip
    assert collect(store, now=LATER) == {"held_out": 2}
    log = events(store)
    assert (log[f"held_out:campaign:7:{A}"].source, log[f"held_out:campaign:7:{A}"].campaign_id) \
        == ("campaign", 7)
    fence = log[f"held_out:fence:SH:PVG:{B}"]
    assert (fence.source, fence.source_id, fence.campaign_id, fence.arm) \
        == ("fence", "SH:PVG", None, "holdout")


def test_record_events_is_idempotent_and_checks_every_row(store):
    row = {"event_key": "clicked:x", "kind": "clicked", "at": T0, "msisdn": A,
           "tenant_id": "operator", "source": "api"}
    assert record_events(store, [row, dict(row)]) == 1
    assert record_events(store, [row]) == 0
    with pytest.raises(InputError) as caught:
        record_events(store, [{**row, "event_key": "y"}, {**row, "kind": "bought"},
                              {**row, "at": T0.replace(tzinfo=None)}])  # fmt: skip
    assert "row 1 (clicked:x): kind 'bought'" in str(caught.value)
    assert "row 2 (clicked:x): at" in str(caught.value)
    assert "y" not in events(store)  # nothing written


def test_bad_attribution_window_is_refused(store):
    with pytest.raises(InputError, match="attribution_days"):
        collect(store, attribution_days=0)


def test_to_warehouse_replaces_the_events_table(store):
    from jingxin.data.warehouse.connection import open_duckdb

    add_message(store, state="delivered", finished_at=T0)
    collect(store, now=LATER)
    warehouse = open_duckdb()
    try:
        assert to_warehouse(store, warehouse) == 2
        assert to_warehouse(store, warehouse.con) == 2  # replaced, not appended
        table = warehouse.table("events").to_pyarrow()
        assert table.num_rows == 2
        at = table.column("at")[0].as_py()
        assert at == datetime(2026, 3, 2, 18, 0)  # China Standard Time, naive
    finally:
        warehouse.close()


@pytest.mark.postgres
def test_collect_on_postgresql(pg_url):
    # The same log on PostgreSQL: INSERT ... SELECT ... ON CONFLICT DO NOTHING, twice
    pg = open_store(pg_url, upgrade=True)
    try:
        message = add_message(pg, link_token="tokP")
        add(pg, LinkClick(token="tokP", message_id=message, at=T0 + timedelta(minutes=2)),
            holdout(B, at=T0), order("P1", B, at=T0 + timedelta(days=1)),
            HallComplaint(mo_id=9, msisdn=A, category="marketing_sms", text="x",
                          at=T0 + timedelta(hours=2)))  # fmt: skip
        assert collect(pg, now=LATER) == {"sent": 1, "clicked": 1, "held_out": 1,
                                          "ordered": 1, "complained": 1}
        assert collect(pg, now=LATER) == {}
        with pg.transaction() as s:
            s.get(Message, message).state = "delivered"
            s.get(Message, message).finished_at = T0 + timedelta(minutes=1)
        assert collect(pg, now=LATER) == {"delivered": 1}
        assert events(pg)["ordered:P1"].arm == "holdout"
        # The per-arm metrics read the same log there
        arms = {r["arm"]: r for r in arm_table(pg, "campaign:7").to_pylist()}
        assert (arms["A"]["delivered"], arms["A"]["clicked"], arms["A"]["complained"]) \
            == (1, 1, 1)
        assert (arms["holdout"]["assigned"], arms["holdout"]["ordered"]) == (1, 1)
        people = subscriber_outcomes(pg, "campaign:7").to_pylist()
        assert [(p["msisdn"], p["holdout"], p["ordered"]) for p in people] \
            == [(A, False, False), (B, True, True)]
        assert record_events(pg, [{"event_key": f"sent:{message}", "kind": "sent", "at": T0,
                                   "msisdn": A, "tenant_id": "operator"}]) == 0
    finally:
        pg.dispose()
