"""Work-order lifecycle: the allowed moves, the refused ones (naming the order and both
states), the worklist's order and the reactivation rate per branch; SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest

from jingxin.data.store import open_store
from jingxin.data.store.models.journeys import WorkOrder
from jingxin.errors import InputError
from jingxin.retention.workorders import (
    TRANSITIONS,
    close_by_system,
    list_orders,
    order_events,
    reactivation_rate,
    transition,
)

D = dt.date(2026, 3, 10)


@pytest.fixture
def store(store_url):
    opened = open_store(store_url, upgrade=True)
    yield opened
    opened.dispose()


def add(store, subscriber_id: int, *, branch: str = "浦东分公司", propensity: float | None = None,
        barred: dt.date = dt.date(2026, 3, 1), extracted: dt.date = D) -> int:
    with store.transaction() as session:
        order = WorkOrder(subscriber_id=subscriber_id, msisdn=f"+86138000000{subscriber_id:02d}",
                          episode=barred.isoformat(), branch=branch, propensity=propensity,
                          barred_since=barred, extracted_on=extracted)
        session.add(order)
        session.flush()
        return order.id


def test_the_whole_road_to_reactivated(store) -> None:
    order = add(store, 1)
    transition(store, order, "assigned", by="张经理", assignee="李娜")
    transition(store, order, "visited", by="李娜", note="上门，用户说下周充值")
    done = transition(store, order, "reactivated", by="李娜")
    assert (done.state, done.assignee) == ("reactivated", "李娜")
    events = [(e.state, e.by, e.note) for e in order_events(store, order)]
    assert events == [("assigned", "张经理", "to 李娜"),
                      ("visited", "李娜", "上门，用户说下周充值"),
                      ("reactivated", "李娜", None)]


def test_reassigning_keeps_the_trace(store) -> None:
    order = add(store, 1)
    transition(store, order, "assigned", by="张经理", assignee="李娜")
    again = transition(store, order, "assigned", by="张经理", assignee="王强", note="李娜休假")
    assert again.assignee == "王强"
    assert [e.note for e in order_events(store, order)] == ["to 李娜", "to 王强: 李娜休假"]


REFUSED = [  # the road taken, the refused move, what the refusal says
    ((), "visited", "work order {id}: cannot go from created to visited (from created: "
                    "assigned)"),
    ((), "reactivated", "cannot go from created to reactivated"),
    ((), "lost", "cannot go from created to lost"),
    (("assigned", "lost"), "visited", "work order {id}: cannot go from lost to visited "
                                      "(from lost: nothing, it is closed)"),
    (("assigned", "visited"), "assigned", "cannot go from visited to assigned"),
    (("assigned", "reactivated"), "lost", "cannot go from reactivated to lost"),
]


def test_refused_moves_name_the_order_and_both_states(store) -> None:
    for subscriber, (road, to, message) in enumerate(REFUSED, start=1):
        order = add(store, subscriber)
        for state in road:
            transition(store, order, state, by="张经理",
                       assignee="李娜" if state == "assigned" else None)
        with pytest.raises(InputError) as refused:
            transition(store, order, to, by="张经理",
                       assignee="李娜" if to == "assigned" else None)
        assert message.format(id=order) in str(refused.value), (road, to)
        # And nothing changed
        states = {o.id: o.state for o in list_orders(store)}
        assert states[order] == (road[-1] if road else "created")


BAD = [  # the move, its arguments, what the refusal says after "work order N: "
    ("assigned", {}, "assigning needs an assignee (--to NAME)"),
    ("assigned", {"assignee": "  "}, "assigning needs an assignee"),
    ("visited", {"assignee": "李娜"}, "an assignee goes with 'assigned' only, not 'visited'"),
    ("shelved", {}, "'shelved' is not a state"),
    ("created", {}, "only the extraction creates orders"),
    ("assigned", {"assignee": "李娜", "by": ""}, "say who moves it"),
]


def test_bad_requests(store) -> None:
    order = add(store, 1)
    for to, kwargs, message in BAD:
        with pytest.raises(InputError) as refused:
            transition(store, order, to, **{"by": "张经理", **kwargs})
        assert str(refused.value).startswith(f"work order {order}: {message}"), to
    assert order_events(store, order) == []


def test_an_unknown_order(store) -> None:
    with pytest.raises(InputError, match="work order 999: no such order"):
        transition(store, 999, "assigned", by="张经理", assignee="李娜")


def test_every_state_has_a_row_and_closed_ones_are_final() -> None:
    assert set(TRANSITIONS) == {"created", "assigned", "visited", "reactivated", "lost"}
    assert TRANSITIONS["reactivated"] == TRANSITIONS["lost"] == ()


def test_the_system_closes_only_open_orders(store) -> None:
    a, b = add(store, 1), add(store, 2)
    transition(store, b, "assigned", by="张经理", assignee="李娜")
    transition(store, b, "lost", by="李娜")
    # When the system closes both as reactivated: only the open one moves
    assert close_by_system(store, [a, b], to="reactivated", note="active again") == 1
    assert {o.id: o.state for o in list_orders(store)} == {a: "reactivated", b: "lost"}
    assert [(e.state, e.by) for e in order_events(store, a)] == [("reactivated", "system")]
    with pytest.raises(InputError, match="not 'visited'"):
        close_by_system(store, [a], to="visited", note="x")


def test_the_worklist_puts_the_riskiest_first(store) -> None:
    low = add(store, 1, propensity=0.2)
    high = add(store, 2, propensity=0.9, branch="闵行分公司")
    old_unscored = add(store, 3, barred=dt.date(2026, 1, 1))
    new_unscored = add(store, 4, barred=dt.date(2026, 2, 1))
    assert [o.id for o in list_orders(store)] == [high, low, old_unscored, new_unscored]
    assert [o.id for o in list_orders(store, branch="闵行分公司")] == [high]
    assert [o.id for o in list_orders(store, limit=2)] == [high, low]
    transition(store, high, "assigned", by="张经理", assignee="李娜")
    transition(store, high, "lost", by="李娜")
    assert [o.id for o in list_orders(store, state="open")] == [low, old_unscored, new_unscored]
    assert [o.id for o in list_orders(store, state="lost")] == [high]
    with pytest.raises(InputError, match="--state: 'done' is not one of"):
        list_orders(store, state="done")
    with pytest.raises(InputError, match="--limit: 0 must be at least 1"):
        list_orders(store, limit=0)


def test_reactivation_rate_per_branch(store) -> None:
    # Given 浦东: 4 orders - visited+reactivated, visited+lost, reactivated by the system
    # unvisited, one still open; 闵行: 2 orders - assigned then reactivated, one open;
    # and one 浦东 order extracted long before
    def road(order: int, *states: str) -> None:
        for state in states:
            transition(store, order, state, by="李娜",
                       assignee="李娜" if state == "assigned" else None)

    pd1, pd2, pd3, _ = (add(store, i) for i in (1, 2, 3, 4))
    road(pd1, "assigned", "visited", "reactivated")
    road(pd2, "assigned", "visited", "lost")
    close_by_system(store, [pd3], to="reactivated", note="active again")
    mh1, _ = add(store, 5, branch="闵行分公司"), add(store, 6, branch="闵行分公司")
    road(mh1, "assigned", "reactivated")
    add(store, 7, extracted=dt.date(2025, 12, 1))
    rows = reactivation_rate(store, since=dt.date(2026, 3, 1))
    got = [(r.branch, r.orders, r.open, r.visited, r.reactivated, r.lost) for r in rows]
    assert got == [("浦东分公司", 4, 1, 2, 2, 1), ("闵行分公司", 2, 1, 0, 1, 0)]
    assert [r.rate for r in rows] == [pytest.approx(0.5), pytest.approx(0.5)]
    # And without since, the old order counts too
    everything = reactivation_rate(store)
    assert [(r.branch, r.orders, r.open) for r in everything] == [("浦东分公司", 5, 2),
                                                                   ("闵行分公司", 2, 1)]
    assert everything[0].rate == pytest.approx(2 / 5)
