"""An experiment's rows read once as Arrow columns (analytics.experiment_rows): the joined
columns line up, a value holding the separator is read row by row instead, and the tables
counted from rows read once equal those each function reads itself."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jingxin.analytics.events import record_events
from jingxin.analytics.experiment_rows import SEPARATOR
from jingxin.analytics.metrics import arm_table, experiment_rows, subscriber_outcomes
from jingxin.data.store import open_store
from jingxin.data.store.models import LANES, ExperimentAssignment, Message

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
ODD = f"+86138{SEPARATOR}0009"  # a number as received, with the separator in it


@pytest.fixture
def store(store_url):
    opened = open_store(store_url, upgrade=True)
    yield opened
    opened.dispose()


def seed(store) -> None:
    """Arms A and B and a hold-out; A's and B's sent, some delivered, one order each way."""
    numbers = {"A": [f"+861380000{i:03d}" for i in range(5)],
               "B": [f"+861381000{i:03d}" for i in range(4)],
               "holdout": ["+861382000000", "+861382000001"]}  # fmt: skip
    with store.transaction() as s:
        for arm, msisdns in numbers.items():
            for n in msisdns:
                s.add(ExperimentAssignment(experiment="campaign:7", msisdn=n, arm=arm,
                                           holdout=arm == "holdout", tenant_id="t",
                                           assigned_at=T0))  # fmt: skip
                if arm != "holdout":
                    s.add(Message(tenant_id="t", campaign_id=7, msisdn=n, category="marketing",
                                  lane=LANES["marketing"], text="offer", parts=2,
                                  idempotency_key=f"k{n}", state="delivered", source="campaign",
                                  source_id="7", arm=arm, submitted_at=T0, finished_at=T0))
    events = []
    for arm, msisdns in numbers.items():
        for i, n in enumerate(msisdns):
            base = {"msisdn": n, "tenant_id": "t", "source": "campaign", "source_id": "7",
                    "campaign_id": 7, "arm": arm}  # fmt: skip
            if arm != "holdout":
                events.append({**base, "event_key": f"sent:{n}", "kind": "sent", "at": T0})
                if i % 2 == 0:
                    events.append({**base, "event_key": f"delivered:{n}", "kind": "delivered",
                                   "at": T0 + timedelta(hours=1)})  # fmt: skip
            if i == 0:
                events.append({**base, "event_key": f"ordered:{n}", "kind": "ordered",
                               "at": T0 + timedelta(days=1), "value": 20.0})  # fmt: skip
    record_events(store, events)


def test_rows_read_once_give_the_same_tables(store) -> None:
    # Given an experiment with arms, a hold-out, sends, deliveries and orders
    seed(store)
    # When its rows are read once (with hours) and handed to both functions
    rows = experiment_rows(store, "campaign:7", hours=True)
    # Then the joined columns line up: each event's number, arm and hour together
    sent = rows.events["sent"]
    assert sent.num_rows == 9 and all(
        arm == {"0": "A", "1": "B"}[n[6]] and hour == "2026-03-02 10"
        for n, arm, hour in zip(*(sent[c].to_pylist() for c in ("msisdn", "arm", "hour")),
                                strict=True))  # fmt: skip
    assert set(rows.events["delivered"]["hour"].to_pylist()) == {"2026-03-02 11"}
    assert rows.assigned.num_rows == 11 and rows.assigned["holdout"].to_pylist().count(True) == 2
    # And the tables equal those read by each function itself
    assert arm_table(store, "campaign:7", rows=rows) == arm_table(store, "campaign:7")
    assert subscriber_outcomes(store, "campaign:7", rows=rows) \
        == subscriber_outcomes(store, "campaign:7")  # fmt: skip
    arms = {r["arm"]: r for r in arm_table(store, "campaign:7").to_pylist()}
    assert [(arms[a]["assigned"], arms[a]["sent"], arms[a]["delivered"], arms[a]["ordered"])
            for a in ("A", "B", "holdout")] == [(5, 5, 3, 1), (4, 4, 2, 1), (2, 0, 0, 1)]
    assert (arms["A"]["parts"], arms["A"]["cost"]) == (10, pytest.approx(10 * 0.05))


def test_a_value_with_the_separator_is_read_row_by_row(store) -> None:
    # Given a number that holds the separator, assigned to A and replying
    seed(store)
    with store.transaction() as s:
        s.add(ExperimentAssignment(experiment="campaign:7", msisdn=ODD, arm="A", holdout=False,
                                   tenant_id="t", assigned_at=T0))  # fmt: skip
    record_events(store, [{"event_key": "replied:odd", "kind": "replied", "at": T0,
                           "msisdn": ODD, "tenant_id": "t", "source": "campaign",
                           "source_id": "7", "arm": "A"}])  # fmt: skip
    # When the rows are read
    rows = experiment_rows(store, "campaign:7")
    # Then that kind was read row by row: the number whole, the others unharmed
    assert rows.events["replied"]["msisdn"].to_pylist() == [ODD]
    assert rows.events["sent"].num_rows == 9
    assert rows.assigned.num_rows == 12 and rows.assigned["holdout"].to_pylist().count(True) == 2
    arms = {r["arm"]: r for r in arm_table(store, "campaign:7", rows=rows).to_pylist()}
    assert (arms["A"]["assigned"], arms["A"]["replied"], arms["A"]["sent"]) == (6, 1, 5)
    people = subscriber_outcomes(store, "campaign:7", rows=rows).to_pylist()
    assert [p["replied"] for p in people if p["msisdn"] == ODD] == [True]
