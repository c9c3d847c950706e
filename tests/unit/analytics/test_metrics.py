"""Per-arm metrics (analytics.metrics): arms from assignments and from the outbox, distinct
subscribers per kind, value, parts and cost; zeros without events; one row per subscriber;
unknown experiments named."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import count

import pytest

from jingxin.analytics.events import collect
from jingxin.analytics.metrics import ARM_SCHEMA, SUBSCRIBER_SCHEMA, arm_table, subscriber_outcomes
from jingxin.data.store import Store, open_store
from jingxin.data.store.models import (
    LANES,
    Base,
    BossOrder,
    ExperimentAssignment,
    LinkClick,
    Message,
)
from jingxin.errors import InputError

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
LATER = T0 + timedelta(days=30)
_keys = count(1)


@pytest.fixture
def store(tmp_path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'metrics.db'}")
    Base.metadata.create_all(opened.engine)
    yield opened
    opened.dispose()


def number(i: int) -> str:
    return f"+86138{i:08d}"


def assign(store: Store, arms: dict[str, list[int]], experiment: str = "campaign:7") -> None:
    with store.transaction() as s:
        s.add_all(ExperimentAssignment(experiment=experiment, msisdn=number(i), arm=arm,
                                       holdout=arm == "holdout", tenant_id="operator",
                                       assigned_at=T0)
                  for arm, numbers in arms.items() for i in numbers)  # fmt: skip


def send(store: Store, i: int, arm: str | None, **fields) -> int:
    values = {"tenant_id": "operator", "campaign_id": 7, "msisdn": number(i),
              "category": "marketing", "lane": LANES["marketing"], "text": "offer",
              "idempotency_key": f"k{next(_keys)}", "source": "campaign", "source_id": "7",
              "arm": arm, "parts": 1, "state": "delivered", "created_at": T0,
              "scheduled_at": T0, "submitted_at": T0, "finished_at": T0, **fields}
    with store.transaction() as s:
        message = Message(**values)
        s.add(message)
        s.flush()
        return message.id


def buy(store: Store, ref: str, i: int, fee_fen: int, *, days: float = 1) -> None:
    with store.transaction() as s:
        s.add(BossOrder(boss_ref=ref, request_key=ref, msisdn=number(i), product_id="P",
                        fee_fen=fee_fen, state="placed", at=T0 + timedelta(days=days)))


@pytest.fixture
def experiment(store: Store) -> Store:
    # A: numbers 1-3 (1 bought twice, 2 clicked twice), B: 4-5 (5 undeliverable),
    # hold-out: 6-7 (6 bought). Costs: a route price on one message, the tariff elsewhere.
    assign(store, {"A": [1, 2, 3], "B": [4, 5], "holdout": [6, 7]})
    first = send(store, 1, "A", parts=2, cost=0.2)
    send(store, 1, "A", submitted_at=T0 + timedelta(hours=1))
    clicked = send(store, 2, "A", link_token="t2")
    send(store, 3, "A", state="queued", submitted_at=None, finished_at=None)
    send(store, 4, "B")
    send(store, 5, "B", state="undeliverable", error_code="EC1")
    with store.transaction() as s:
        s.add_all([LinkClick(token="t2", message_id=clicked, at=T0 + timedelta(minutes=m))
                   for m in (1, 2)])  # fmt: skip
    buy(store, "O1", 1, 1000)
    buy(store, "O2", 1, 550, days=2)
    buy(store, "O3", 6, 800)
    assert first
    collect(store, now=LATER)
    return store


def test_arm_table_counts_distinct_subscribers_value_and_cost(experiment):
    table = arm_table(experiment, "campaign:7", tariff=0.05)
    assert table.schema == ARM_SCHEMA
    rows = {r["arm"]: r for r in table.to_pylist()}
    assert table.column("arm").to_pylist() == ["A", "B", "holdout"]  # treated, then hold-out
    a, b, held = rows["A"], rows["B"], rows["holdout"]
    assert (a["assigned"], a["sent"], a["delivered"], a["clicked"], a["ordered"]) \
        == (3, 2, 2, 1, 1)
    assert a["value"] == pytest.approx(15.5)  # both orders, in yuan
    assert (a["parts"], a["cost"]) == (4, pytest.approx(0.2 + 0.05 + 0.05))  # queued: none
    assert (b["assigned"], b["sent"], b["delivered"], b["failed"]) == (2, 2, 1, 1)
    assert (held["holdout"], held["assigned"], held["sent"], held["ordered"], held["value"]) \
        == (True, 2, 0, 1, 8.0)
    assert not a["holdout"] and not b["holdout"]


def test_arms_seen_only_in_messages_count_the_numbers_messaged(store):
    # Given a campaign sent without assignments: arm "main" (no arm) and arm "X"
    for i in (1, 2):
        send(store, i, None)
    send(store, 2, None)
    send(store, 3, "X")
    rows = {r["arm"]: r for r in arm_table(store, "campaign:7").to_pylist()}
    # Then assigned is the distinct numbers messaged; no events collected yet: zeros
    assert (rows["main"]["assigned"], rows["main"]["parts"], rows["main"]["sent"]) == (2, 3, 0)
    assert rows["X"]["assigned"] == 1
    people = subscriber_outcomes(store, "campaign:7")
    assert sorted(zip(people["arm"].to_pylist(), people["msisdn"].to_pylist())) \
        == [("X", number(3)), ("main", number(1)), ("main", number(2))]


def test_an_experiment_without_events_has_zeros(store):
    assign(store, {"A": [1], "holdout": [2]}, experiment="journey:welcome")
    table = arm_table(store, "journey:welcome")
    assert table.column("assigned").to_pylist() == [1, 1]
    for column in ("sent", "delivered", "clicked", "ordered", "parts"):
        assert table.column(column).to_pylist() == [0, 0]
    assert table.column("value").to_pylist() == [0.0, 0.0]
    outcomes = subscriber_outcomes(store, "journey:welcome")
    assert outcomes.num_rows == 2 and not any(outcomes.column("sent").to_pylist())


@pytest.mark.parametrize("name, message", [
    ("campaign:99", "experiment campaign:99: no assignments and no messages"),
    ("campaign", "experiment 'campaign': expected <source>:<source id>"),
    (":7", "expected <source>:<source id>"),
])  # fmt: skip
def test_unknown_or_malformed_experiments_are_named(store, name, message):
    for read in (arm_table, subscriber_outcomes):
        with pytest.raises(InputError, match=message):
            read(store, name)


def test_subscriber_outcomes_one_row_per_subscriber(experiment):
    table = subscriber_outcomes(experiment, "campaign:7")
    assert table.schema == SUBSCRIBER_SCHEMA
    rows = {r["msisdn"]: r for r in table.to_pylist()}
    assert len(rows) == 7
    one, two, five, six = rows[number(1)], rows[number(2)], rows[number(5)], rows[number(6)]
    assert (one["arm"], one["sent"], one["delivered"], one["ordered"], one["value"]) \
        == ("A", True, True, True, pytest.approx(15.5))
    assert (two["clicked"], two["ordered"], two["value"]) == (True, False, 0.0)
    assert (five["sent"], five["delivered"]) == (True, False)
    assert (six["holdout"], six["sent"], six["ordered"], six["value"]) == (True, False, True, 8.0)
    assert table.column("arm").to_pylist() == sorted(table.column("arm").to_pylist())


def test_a_journeys_steps_count_for_the_journey(store):
    # Given journey:welcome with a hold-out, its steps' messages "welcome:<step>", and
    # another journey whose name starts the same
    assign(store, {"A": [1, 2], "holdout": [3]}, experiment="journey:welcome")
    send(store, 1, "A", campaign_id=None, source="journey", source_id="welcome:day1")
    send(store, 2, "A", campaign_id=None, source="journey", source_id="welcome:day3")
    send(store, 4, "A", campaign_id=None, source="journey", source_id="welcomeback:day1")
    collect(store, now=LATER)
    rows = {r["arm"]: r for r in arm_table(store, "journey:welcome").to_pylist()}
    assert (rows["A"]["assigned"], rows["A"]["sent"], rows["A"]["parts"]) == (2, 2, 2)
    assert (rows["holdout"]["assigned"], rows["holdout"]["sent"]) == (1, 0)
    people = subscriber_outcomes(store, "journey:welcome")
    assert people.column("delivered").to_pylist() == [True, True, False]


def test_orders_count_for_the_arm_assigned_whatever_message_they_were_last_attributed_to(
        store: Store) -> None:  # fmt: skip
    # Given campaign 7 (A: 1, 2; hold-out: 6) and another sender's message to 1 and 6
    # after it, then orders: 1 (last touch: the other message), 6 (the same), 2 after the
    # attribution window, 1 never assigned to anything else
    assign(store, {"A": [1, 2], "holdout": [6]})
    send(store, 1, "A")
    send(store, 2, "A")
    for i in (1, 6):
        send(store, i, None, campaign_id=8, source_id="8",
             submitted_at=T0 + timedelta(hours=2), finished_at=T0 + timedelta(hours=2))
    buy(store, "o1", 1, 1000, days=1)
    buy(store, "o6", 6, 2000, days=1)
    buy(store, "o2", 2, 3000, days=8)  # past the 7 days of the window
    collect(store, now=LATER, attribution_days=30)
    # When the arms of campaign 7 are counted (7 days)
    arms = {r["arm"]: r for r in arm_table(store, "campaign:7").to_pylist()}
    # Then both last-touched orders count for the arms assigned; the late one does not
    assert (arms["A"]["ordered"], arms["A"]["value"]) == (1, 10.0)
    assert (arms["holdout"]["ordered"], arms["holdout"]["value"]) == (1, 20.0)
    people = {r["msisdn"]: r["ordered"] for r in subscriber_outcomes(store, "campaign:7")
              .to_pylist()}  # fmt: skip
    assert people == {number(1): True, number(2): False, number(6): True}
    # And the other campaign, with no assignments, keeps its last-touch attribution
    other = {r["arm"]: r["ordered"] for r in arm_table(store, "campaign:8").to_pylist()}
    assert other == {"main": 2}
