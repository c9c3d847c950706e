"""The hall report and the incentive leaderboard, over a store built by hand: every count
is known, on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from jingxin.data.store.engine import open_store
from jingxin.data.store.models.hall import (
    HallComplaint,
    HallFeedback,
    HallInteraction,
    HallOrder,
    HallReferral,
    HallStaff,
    PointsEntry,
)
from jingxin.errors import InputError
from jingxin.hall.report import (
    UNREGISTERED,
    hall_report,
    leaderboard,
    list_orders,
    months_before,
    referral_chains,
)

NOW = datetime(2026, 10, 8, 4, 0, tzinfo=UTC)
RECENT = NOW - timedelta(days=1)
OLD = NOW - timedelta(days=120)  # outside three months (and 30 days)
A, B, C, D, E = (f"+86139000000{i:02d}" for i in range(1, 6))
F, G, H, I, X, Y, Z = (f"+86138000000{i:02d}" for i in range(1, 8))  # noqa: E741
_ids = itertools.count(1)


@pytest.fixture
def store(store_url):
    opened = open_store(store_url, upgrade=True)
    _build(opened)
    yield opened
    opened.dispose()


def _seen(msisdn: str, command: str, kind: str, *, zone: str | None = None, at=RECENT,
          tenant: str = "operator") -> HallInteraction:
    return HallInteraction(mo_id=next(_ids), msisdn=msisdn, service_number="10086",
                           tenant_id=tenant, command=command, zone=zone, kind=kind,
                           outcome="answered", at=at)  # fmt: skip


def _order(msisdn: str, zone: str | None, state: str, *, staff: str | None = None,
           at=RECENT, tenant: str = "operator") -> HallOrder:
    return HallOrder(request_key=f"hall:{next(_ids)}", msisdn=msisdn, tenant_id=tenant,
                     service_number="10086", product_id="LL10", zone=zone, list_fee_fen=1000,
                     price_fen=800, state=state, staff_code=staff, created_at=at,
                     updated_at=at)  # fmt: skip


def _referral(referrer: str, friend: str, *, converted: bool = False, staff: str | None = None,
              at=RECENT) -> HallReferral:
    return HallReferral(referrer=referrer, friend=friend, product_id="RBT5",
                        state="converted" if converted else "offered", staff_code=staff,
                        created_at=at, converted_at=at if converted else None)  # fmt: skip


def _build(store) -> None:
    rows = [
        # interactions: A and B list 41, B and C 42 (C twice), E 42 for another tenant;
        # D listed 41 four months ago
        _seen(A, "zone", "query", zone="41"), _seen(A, "balance", "query"),
        _seen(A, "order", "order", zone="41"),
        _seen(B, "zone", "query", zone="41"), _seen(B, "zone", "query", zone="42"),
        _seen(B, "order", "order", zone="42"),
        _seen(C, "zone", "query", zone="42"), _seen(C, "zone", "query", zone="42"),
        _seen(C, "menu", "other"),
        _seen(D, "zone", "query", zone="41", at=OLD),
        _seen(E, "zone", "query", zone="42", tenant="t2"),
        # orders (staff codes in any case; X9 is nobody's)
        _order(A, "41", "placed", staff="S1001"), _order(B, "42", "placed", staff="s1001"),
        _order(B, "42", "failed", staff="S2001"), _order(C, "42", "unknown"),
        _order(A, None, "placed", staff="S2001"), _order(D, "41", "placed", staff="S1002", at=OLD),
        _order(E, "42", "placed", staff="X9", tenant="t2"),
        # referrals: A → B → C → F and A → G; H → I; X ⇄ Y with Y → Z; one old
        _referral(A, B, converted=True, staff="S2001"), _referral(B, C, converted=True),
        _referral(C, F), _referral(A, G), _referral(H, I), _referral(X, Y), _referral(Y, X),
        _referral(Y, Z, converted=True, staff="S1002"), _referral(D, E, at=OLD),
        # points: grants with staff codes; a redemption and an old grant do not count
        PointsEntry(key="referral:1", msisdn=A, delta=100, reason="referral", staff_code="S2001",
                    at=RECENT),
        PointsEntry(key="referral:2", msisdn=Y, delta=100, reason="referral", staff_code="S1002",
                    at=RECENT),
        PointsEntry(key="redeem:1", msisdn=A, delta=-50, reason="redeem", staff_code="S1001",
                    at=RECENT),
        PointsEntry(key="referral:0", msisdn=D, delta=100, reason="referral", staff_code="S1001",
                    at=OLD),
        HallStaff(code="S1001", name="王芳", branch="浦东营业厅"),
        HallStaff(code="S1002", name="李强", branch="浦东营业厅"),
        HallStaff(code="S2001", name="张敏", branch="徐汇营业厅"),
        # NPS 10, 10, 9, 7, 3 (and a suggestion, and an old answer); two recent complaints
        *(HallFeedback(mo_id=next(_ids), msisdn=A, kind="nps", score=s, at=RECENT)
          for s in (10, 10, 9, 7, 3)),
        HallFeedback(mo_id=next(_ids), msisdn=A, kind="suggestion", text="好", at=RECENT),
        HallFeedback(mo_id=next(_ids), msisdn=A, kind="nps", score=0, at=OLD),
        HallComplaint(mo_id=next(_ids), msisdn=B, category="marketing_sms", text="投诉", at=RECENT),
        HallComplaint(mo_id=next(_ids), msisdn=C, category="other", text="举报", at=RECENT),
        HallComplaint(mo_id=next(_ids), msisdn=C, category="other", text="投诉", at=OLD),
    ]  # fmt: skip
    with store.transaction() as session:
        session.add_all(rows)


def test_the_report_counts_users_kinds_zones_states_nps_and_complaints(store) -> None:
    # When the report covers the last three months, every tenant
    r = hall_report(store, now=NOW, months=3)
    # Then D (four months ago) is out, and everything else is counted as built
    assert r.since == datetime(2026, 7, 8, 4, 0, tzinfo=UTC) and r.until == NOW
    assert r.users == 4
    assert r.interactions == 10 and r.kinds == {"order": 2, "other": 1, "query": 7}
    zones = {z.zone: (z.viewers, z.orders, z.placed) for z in r.zones}
    assert zones == {"41": (2, 1, 1), "42": (3, 4, 2)}
    assert [z.conversion for z in r.zones] == [0.5, pytest.approx(2 / 3)]
    assert r.order_states == {"failed": 1, "placed": 4, "unknown": 1}
    n = r.nps
    assert (n.answers, n.promoters, n.passives, n.detractors, n.score) == (5, 3, 1, 1, 40.0)
    assert r.complaints == 2


def test_the_referral_chains(store) -> None:
    ref = hall_report(store, now=NOW).referrals
    # Then eight referrals in the window, three converted
    assert (ref.referrals, ref.converted, ref.converted_share) == (8, 3, 3 / 8)
    # And three chains: from A (depth 3), from the X ⇄ Y group (2), from H (1)
    assert (ref.chains, ref.max_depth, ref.depths) == (3, 3, {1: 1, 2: 1, 3: 1})
    assert [(c.msisdns, c.depth, c.converted) for c in ref.longest] == [
        ((A, B, C, F), 3, 2), ((X, Y, Z), 2, 1), ((H, I), 1, 0)]


def test_one_tenant_and_a_shorter_window(store) -> None:
    # When only the operator's hall is asked for, Then E (tenant t2) is left out
    r = hall_report(store, now=NOW, tenant_id="operator")
    assert r.users == 3
    assert {z.zone: (z.viewers, z.orders, z.placed) for z in r.zones} == {
        "41": (2, 1, 1), "42": (2, 3, 1)}
    # And a report of six months takes D's visit in, of one month that of nobody old
    assert hall_report(store, now=NOW, months=6).users == 5
    assert hall_report(store, now=NOW - timedelta(days=2), months=1).users == 0
    with pytest.raises(InputError, match="--months: 0 must be at least 1"):
        hall_report(store, now=NOW, months=0)


def test_the_leaderboard_by_staff(store) -> None:
    rows = leaderboard(store, since=NOW - timedelta(days=30))
    # Then ranked by orders, converted referrals, points; codes matched in any case
    assert [(r.rank, r.key, r.name, r.branch, r.orders, r.referrals, r.points) for r in rows] == [
        (1, "S1001", "王芳", "浦东营业厅", 2, 0, 0),
        (2, "S2001", "张敏", "徐汇营业厅", 1, 1, 100),
        (3, "X9", None, UNREGISTERED, 1, 0, 0),
        (4, "S1002", "李强", "浦东营业厅", 0, 1, 100),
    ]  # fmt: skip
    # And one tenant's leaderboard leaves the other's orders out
    assert [r.key for r in leaderboard(store, since=NOW - timedelta(days=30),
                                       tenant_id="operator")] == ["S1001", "S2001", "S1002"]


def test_the_leaderboard_by_branch(store) -> None:
    rows = leaderboard(store, since=NOW - timedelta(days=30), by="branch")
    assert [(r.rank, r.key, r.staff, r.orders, r.referrals, r.points) for r in rows] == [
        (1, "浦东营业厅", 2, 2, 1, 100),
        (2, "徐汇营业厅", 1, 1, 1, 100),
        (3, UNREGISTERED, 1, 1, 0, 0),
    ]  # fmt: skip
    # And since long ago, the old order and grant count too
    old = leaderboard(store, since=NOW - timedelta(days=365), by="branch")
    assert (old[0].key, old[0].orders, old[0].points) == ("浦东营业厅", 3, 200)
    with pytest.raises(InputError, match="--by: 'region' is not one of staff, branch"):
        leaderboard(store, since=NOW, by="region")  # type: ignore[arg-type]


def test_orders_are_listed_newest_first_and_filtered(store) -> None:
    assert len(list_orders(store)) == 7
    assert [o.msisdn for o in list_orders(store, state="unknown")] == [C]
    assert [o.state for o in list_orders(store, msisdn=A)] == ["placed", "placed"]
    assert list_orders(store)[-1].msisdn == D  # the oldest last
    with pytest.raises(InputError, match="--state: 'lost' is not one of"):
        list_orders(store, state="lost")


# ----------------------------------------------------------------------------- pure parts


@pytest.mark.parametrize(("moment", "months", "expected"), [
    (datetime(2026, 10, 8, 4, tzinfo=UTC), 3, datetime(2026, 7, 8, 4, tzinfo=UTC)),
    (datetime(2026, 5, 31, tzinfo=UTC), 3, datetime(2026, 2, 28, tzinfo=UTC)),
    (datetime(2024, 5, 31, tzinfo=UTC), 3, datetime(2024, 2, 29, tzinfo=UTC)),
    (datetime(2026, 2, 15, tzinfo=UTC), 3, datetime(2025, 11, 15, tzinfo=UTC)),
    (datetime(2026, 1, 1, tzinfo=UTC), 12, datetime(2025, 1, 1, tzinfo=UTC)),
])  # fmt: skip
def test_months_before(moment, months, expected) -> None:
    assert months_before(moment, months) == expected


def test_a_diamond_is_walked_once_and_its_longest_way_kept() -> None:
    # A → B → D → E and A → C → D: D is reached twice but walked once
    edges = [("A", "B", "offered"), ("A", "C", "converted"), ("B", "D", "offered"),
             ("C", "D", "offered"), ("D", "E", "converted")]  # fmt: skip
    summary = referral_chains(edges)
    assert summary.chains == 1
    (chain,) = summary.longest
    assert (chain.msisdns, chain.depth, chain.converted) == (("A", "C", "D", "E"), 3, 2)


def test_a_very_long_chain_and_a_pure_cycle() -> None:
    # Given a chain of 5,000 referrals (deeper than Python's recursion limit) and a
    # group that only referred each other
    numbers = [f"n{i:05d}" for i in range(5_001)]
    edges = [(a, b, "converted") for a, b in itertools.pairwise(numbers)]
    edges += [("x", "y", "offered"), ("y", "z", "offered"), ("z", "x", "offered")]
    summary = referral_chains(edges)
    assert (summary.chains, summary.max_depth, summary.depths) == (2, 5_000, {2: 1, 5_000: 1})
    assert summary.longest[0].converted == 5_000
    assert summary.longest[1].msisdns == ("x", "y", "z")


def test_no_referrals() -> None:
    summary = referral_chains([])
    assert (summary.referrals, summary.converted_share, summary.chains, summary.max_depth,
            summary.longest) == (0, None, 0, 0, ())  # fmt: skip
