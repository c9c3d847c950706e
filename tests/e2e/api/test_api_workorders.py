"""Work orders over the API: the worklist (filters, paging, masked numbers), one order
with its lifecycle, assign / visit / close through the retention module's own moves (a
move the lifecycle refuses: 409 in its words; a bad body: 422), permissions, tenant
isolation, and the audit log."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from jingxin.data.store.models import AuditEntry
from jingxin.data.store.models.journeys import WorkOrder, WorkOrderEvent

URL = "/api/v1/workorders"


def add_order(api, subscriber_id: int, *, tenant: str = "operator", branch: str = "浦东分公司",
              propensity: float | None = None, state: str = "created") -> int:
    with api.store.transaction() as session:
        order = WorkOrder(subscriber_id=subscriber_id, msisdn=f"+861380000{subscriber_id:04d}",
                          tenant_id=tenant, episode="2026-03-01", branch=branch,
                          propensity=propensity, state=state,
                          barred_since=dt.date(2026, 3, 1), extracted_on=dt.date(2026, 3, 10))
        session.add(order)
        session.flush()
        session.add(WorkOrderEvent(order_id=order.id, state="created", by="system",
                                   note="churn reasons: arpu_3m=12 (+0.310)"))
        return order.id


@pytest.fixture
def orders(api) -> dict[str, int]:
    return {"low": add_order(api, 1, propensity=0.2),
            "high": add_order(api, 2, propensity=0.9, branch="闵行分公司"),
            "lost": add_order(api, 3, state="lost"),
            "acme": add_order(api, 4, tenant="acme")}


def test_the_worklist_ranks_filters_pages_and_masks(api, orders) -> None:
    # Given three operator orders and one of acme
    analyst = api.as_key("analyst", tenant="operator")
    # When the analyst lists them
    r = analyst.get(URL)
    # Then the most at risk comes first, acme's is not there, numbers are masked
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] == 3
    assert [o["id"] for o in body["items"]] == [orders["high"], orders["low"], orders["lost"]]
    assert body["items"][0]["msisdn"] != "+8613800000002" and "*" in body["items"][0]["msisdn"]
    assert body["items"][1]["reasons"] == [{"feature": "arpu_3m", "value": "12",
                                            "contribution": 0.31}]
    # And the filters and paging apply
    assert [o["id"] for o in analyst.get(URL, params={"status": "open"}).json()["items"]] == [
        orders["high"], orders["low"]]
    assert analyst.get(URL, params={"branch": "闵行分公司"}).json()["total"] == 1
    page = analyst.get(URL, params={"limit": 1, "offset": 1}).json()
    assert (page["total"], [o["id"] for o in page["items"]]) == (3, [orders["low"]])
    # And the admin sees whole numbers
    whole = api.as_key("admin", tenant="operator").get(f"{URL}/{orders['high']}").json()
    assert whole["msisdn"] == "+8613800000002"
    # And a state that is none is a 422 naming the parameter
    bad = analyst.get(URL, params={"status": "closed"})
    assert bad.status_code == 422 and "status" in bad.json()["error"]["message"]


def test_the_lifecycle_through_the_api(api, orders) -> None:
    marketer = api.as_user("marketer")
    order = orders["low"]
    # When the marketer assigns, visits and closes it
    r = marketer.post(f"{URL}/{order}/assign", json={"assignee": "李娜", "note": "优先"})
    assert r.status_code == 200, r.text
    assert (r.json()["state"], r.json()["assignee"]) == ("assigned", "李娜")
    assert marketer.post(f"{URL}/{order}/visit", json={"note": "上门"}).json()["state"] == "visited"
    r = marketer.post(f"{URL}/{order}/close", json={"outcome": "reactivated"})
    # Then each step is an event, by the user
    assert r.status_code == 200, r.text
    by = f"user:{api.username('marketer')}"
    assert [(e["state"], e["by"], e["note"]) for e in r.json()["events"]] == [
        ("created", "system", "churn reasons: arpu_3m=12 (+0.310)"),
        ("assigned", by, "to 李娜: 优先"), ("visited", by, "上门"), ("reactivated", by, None)]
    # And the detail shows the same
    assert len(marketer.get(f"{URL}/{order}").json()["events"]) == 4
    # And each move is in the audit log
    with api.store.transaction() as session:
        audited = session.scalars(select(AuditEntry.action).where(
            AuditEntry.object_type == "work_order", AuditEntry.object_id == str(order))
            .order_by(AuditEntry.id)).all()
    assert audited == ["workorder.assigned", "workorder.visited", "workorder.reactivated"]


def test_a_move_the_lifecycle_refuses_is_409_and_changes_nothing(api, orders) -> None:
    marketer = api.as_key("marketer", tenant="operator")
    # When a created order is closed, or a lost one assigned
    early = marketer.post(f"{URL}/{orders['low']}/close", json={"outcome": "lost"})
    final = marketer.post(f"{URL}/{orders['lost']}/assign", json={"assignee": "王强"})
    # Then 409 in the domain's words, and nothing moved or was audited
    assert early.status_code == 409
    assert "cannot go from created to lost" in early.json()["error"]["message"]
    assert final.status_code == 409 and "it is closed" in final.json()["error"]["message"]
    assert marketer.get(f"{URL}/{orders['low']}").json()["state"] == "created"
    with api.store.transaction() as session:
        assert session.scalars(select(AuditEntry).where(
            AuditEntry.object_type == "work_order")).all() == []


@pytest.mark.parametrize(("action", "body", "field"), [
    ("assign", {}, "body.assignee"),
    ("assign", {"assignee": "  "}, "body.assignee"),
    ("close", {"outcome": "won"}, "body.outcome"),
    ("visit", {"note": "x", "by": "someone"}, "body.by"),
])  # fmt: skip
def test_bad_bodies_are_422_naming_the_field(api, orders, action, body, field) -> None:
    r = api.as_key("admin", tenant="operator").post(f"{URL}/{orders['low']}/{action}", json=body)
    assert r.status_code == 422
    assert field in [f["field"] for f in r.json()["error"]["fields"]]


def test_roles_and_tenants(api, orders) -> None:
    # A reader may list but not move
    analyst = api.as_key("analyst", tenant="operator")
    assert analyst.get(URL).status_code == 200
    refused = analyst.post(f"{URL}/{orders['low']}/visit", json={})
    assert refused.status_code == 403 and "workorders.write" in refused.json()["error"]["message"]
    # An enterprise's system may do neither
    assert api.as_key("api-client", tenant="acme").get(URL).status_code == 403
    # acme sees only its own; the operator's ids are 404, as missing ones
    acme = api.as_key("admin", tenant="acme")
    assert [o["id"] for o in acme.get(URL).json()["items"]] == [orders["acme"]]
    for path in (f"{URL}/{orders['low']}", f"{URL}/999999"):
        assert acme.get(path).status_code == 404
    moved = acme.post(f"{URL}/{orders['low']}/assign", json={"assignee": "x"})
    assert moved.status_code == 404
    # And the operator's order did not move
    assert analyst.get(f"{URL}/{orders['low']}").json()["state"] == "created"
    # And an unknown action is no route
    assert api.as_key("admin", tenant="operator").post(
        f"{URL}/{orders['low']}/start", json={}).status_code in (404, 405)
