"""Campaigns over the API: preview, draft, schedule (now and later), status, pause,
resume and cancel; roles, tenant isolation, and specs that cannot run."""

from __future__ import annotations

import datetime as dt
import shutil
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from jingxin.config import WarehouseSettings
from jingxin.content.catalog import add_template, approve_template, submit_template
from jingxin.content.library import TemplateDocument
from jingxin.data.store.audit import list_actions
from jingxin.data.store.models import Campaign, Message
from jingxin.data.warehouse.schema import TABLES
from tests.e2e.api.conftest import ENTERPRISE, make_api

BILL = TemplateDocument(code="care.bill", category="notification",
                        body="{{ name }}，您本月账单{{ amount }}元，请按时缴纳。",
                        variables={"name": "str", "amount": "float"})  # fmt: skip
GREETING = TemplateDocument(code="care.hello", category="notification",
                            body="您好，感谢您一直以来的支持。")  # fmt: skip
AUDIENCE = 40  # numbers in bills.csv


def spec(**changes) -> dict:
    base = {"name": "十一月账单", "category": "notification", "template": {"code": "care.bill"},
            "audience": {"path": "bills.csv"}, "experiment": {"holdout": "none"}}  # fmt: skip
    return {**base, **changes}


def number(i: int) -> str:
    return f"+86139{i:08d}"


def warehouse(path) -> None:
    """A DuckDB warehouse of 60 subscribers: star levels 0..5, half in 浦东新区."""
    from jingxin.data.warehouse.connection import open_duckdb

    schema = TABLES["subscribers"].schema
    n = 60
    data = {"subscriber_id": list(range(1, n + 1)), "msisdn": [number(i) for i in range(n)],
            "carrier": ["china_mobile"] * n, "plan_id": ["P1"] * n, "payment": ["prepaid"] * n,
            "status": ["active"] * n, "gender": [None] * n, "birthday": [None] * n,
            "entry_date": [dt.date(2020, 1, 1)] * n, "contract_end": [None] * n,
            "star_level": [i % 6 for i in range(n)],
            "region": ["浦东新区" if i % 2 else "徐汇区" for i in range(n)],
            "handset_model": [None] * n, "handset_generation": [4] * n,
            "app_user": [True] * n, "suspended_since": [None] * n}  # fmt: skip
    wh = open_duckdb(path)
    wh.con.create_table("subscribers", pa.table(
        {f.name: pa.array(data[f.name], f.type) for f in schema}, schema=schema))  # fmt: skip
    wh.close()


@pytest.fixture(scope="module")
def wh_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("wh") / "wh.duckdb"
    warehouse(path)
    return path


@pytest.fixture
def capi(tmp_path, migrated_templates, wh_file):
    """The API with its home in tmp_path (audience folders under var/audiences), the
    warehouse above, approved templates and an audience file for the operator and acme."""
    path = tmp_path / "jingxin.db"
    shutil.copyfile(migrated_templates["sqlite"], path)
    made, client = make_api(f"sqlite:///{path}", home=tmp_path,
                            warehouse=WarehouseSettings(path=str(wh_file)))  # fmt: skip
    with made.store.transaction() as session:
        for tenant in ("operator", ENTERPRISE):
            for document in (BILL, GREETING):
                t = add_template(session, document=document, tenant_id=tenant)
                submit_template(session, template_id=t.id)
                approve_template(session, template_id=t.id, reviewer="seed")
    for tenant in ("operator", ENTERPRISE):
        folder = tmp_path / "var" / "audiences" / tenant
        folder.mkdir(parents=True)
        rows = "".join(f"{number(i)},王{i},{10 + i}.5\n" for i in range(AUDIENCE))
        (folder / "bills.csv").write_text("msisdn,name,amount\n" + rows, encoding="utf-8")
    with client:
        yield made
    made.store.dispose()


def campaigns(api) -> list[Campaign]:
    with api.store.transaction() as session:
        rows = session.query(Campaign).all()
        session.expunge_all()
        return rows


def test_preview_estimates_without_writing(capi) -> None:
    marketer = capi.as_user("marketer")
    # When a notification spec is previewed
    r = marketer.post("/api/v1/campaigns/preview", json={"spec": spec(tariff=0.04)})
    assert r.status_code == 200, r.text
    shown = r.json()
    # Then every number gets one one-part message, priced at the spec's tariff
    assert (shown["count"], shown["rows"], shown["invalid"], shown["held_out"]) == (
        AUDIENCE, AUDIENCE, 0, 0)
    assert (shown["messages"], shown["parts"], shown["parts_per_message"]) == (AUDIENCE, 40, 1)
    assert shown["cost"] == pytest.approx(40 * 0.04)
    (arm,) = shown["arms"]
    assert arm["example"] == "【中国移动】王0，您本月账单10.5元，请按时缴纳。"
    # And a marketing spec holds some out, at the analytics tariff
    r = marketer.post("/api/v1/campaigns/preview", json={"spec": spec(
        category="marketing", experiment={"holdout": 0.25})})  # fmt: skip
    shown = r.json()
    assert shown["held_out"] > 0 and shown["messages"] == AUDIENCE - shown["held_out"]
    assert shown["tariff"] == capi.settings.analytics.tariff
    assert shown["arms"][0]["example"].endswith("回T退订")
    # And nothing was written
    assert campaigns(capi) == []


def test_draft_schedule_and_status(capi) -> None:
    marketer = capi.as_user("marketer")
    # When a spec is created, Then it is a draft that queued nothing
    r = marketer.post("/api/v1/campaigns", json={"spec": spec()})
    assert r.status_code == 201, r.text
    draft = r.json()
    assert (draft["status"], draft["messages"], draft["spec"]["audience"]) == (
        "draft", {}, {"path": "bills.csv"})
    listed = marketer.get("/api/v1/campaigns").json()
    assert [c["id"] for c in listed["items"]] == [draft["id"]] and listed["total"] == 1
    # When it is scheduled now, Then its messages are queued under the same id
    url = f"/api/v1/campaigns/{draft['id']}"
    r = marketer.post(f"{url}/schedule")
    assert r.status_code == 200, r.text
    assert r.json()["summary"]["accepted"] == AUDIENCE
    status = marketer.get(url).json()
    assert (status["status"], status["messages"], status["parts"]) == (
        "running", {"queued": AUDIENCE}, AUDIENCE)
    assert status["arms"] == {"main": {"assigned": AUDIENCE, "queued": AUDIENCE}}
    # And scheduling it again is a conflict
    r = marketer.post(f"{url}/schedule")
    assert r.status_code == 409 and "only a draft is scheduled" in r.json()["error"]["message"]
    # And both steps are audited with the actor and the tenant
    with capi.store.transaction() as session:
        done = {(a.action, a.actor, a.tenant_id) for a in list_actions(
            session, object_type="campaign", object_id=draft["id"])}  # fmt: skip
    actor = f"user:{capi.username('marketer')}"
    assert done == {("campaign.create", actor, "operator"),
                    ("campaign.schedule", actor, "operator")}  # fmt: skip


def test_schedule_later_queues_the_messages_for_then(capi) -> None:
    marketer = capi.as_user("marketer")
    draft = marketer.post("/api/v1/campaigns", json={"spec": spec()}).json()
    at = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    r = marketer.post(f"/api/v1/campaigns/{draft['id']}/schedule", json={"at": at.isoformat()})
    assert r.status_code == 200, r.text
    assert r.json()["campaign"]["start_at"].startswith(at.date().isoformat())
    with capi.store.transaction() as session:
        due = {m.scheduled_at.replace(tzinfo=UTC) if m.scheduled_at.tzinfo is None
               else m.scheduled_at for m in session.query(Message)}  # fmt: skip
    assert due == {at}
    # A time in the past, or without a zone, is refused
    other = marketer.post("/api/v1/campaigns", json={"spec": spec(name="again")}).json()
    for when, words in (((datetime.now(UTC) - timedelta(hours=1)).isoformat(), "in the past"),
                        ("2030-01-01T10:00:00", "timezone")):  # fmt: skip
        r = marketer.post(f"/api/v1/campaigns/{other['id']}/schedule", json={"at": when})
        assert r.status_code == 422 and words in r.json()["error"]["message"], r.text


def test_pause_resume_cancel_and_bad_transitions(capi) -> None:
    marketer = capi.as_user("marketer")
    draft = marketer.post("/api/v1/campaigns", json={"spec": spec()}).json()
    url = f"/api/v1/campaigns/{draft['id']}"
    # A draft cannot be paused
    r = marketer.post(f"{url}/pause")
    assert r.status_code == 409 and "is draft; pause needs running or testing" in r.json()[
        "error"]["message"]
    marketer.post(f"{url}/schedule")
    # Roles without campaigns.control are refused
    for role in ("analyst", "reviewer"):
        r = capi.as_user(role).post(f"{url}/pause")
        assert r.status_code == 403 and "campaigns.control" in r.json()["error"]["message"]
    r = marketer.post(f"{url}/pause")
    assert r.json() == {"id": draft["id"], "action": "pause", "before": "running",
                        "status": "paused"}  # fmt: skip
    r = marketer.post(f"{url}/pause")
    assert r.status_code == 409 and "is paused; pause needs running" in r.json()["error"]["message"]
    assert marketer.post(f"{url}/resume").json()["status"] == "running"
    r = marketer.post(f"{url}/resume")
    assert r.status_code == 409 and "resume needs paused" in r.json()["error"]["message"]
    # Cancel ends the queued messages; then resume changes nothing: 409 with the reason
    assert marketer.post(f"{url}/cancel").json()["status"] == "cancelled"
    status = marketer.get(url).json()
    assert status["messages"] == {"rejected": AUDIENCE}
    assert status["rejected_by"] == {"cancelled": AUDIENCE}
    r = marketer.post(f"{url}/resume")
    assert r.status_code == 409
    assert r.json()["error"]["message"] == f"campaign {draft['id']} is cancelled: resume changes nothing"


def test_a_cancelled_draft_is_not_scheduled(capi) -> None:
    marketer = capi.as_user("marketer")
    draft = marketer.post("/api/v1/campaigns", json={"spec": spec()}).json()
    assert marketer.post(f"/api/v1/campaigns/{draft['id']}/cancel").json()["status"] == "cancelled"
    r = marketer.post(f"/api/v1/campaigns/{draft['id']}/schedule")
    assert r.status_code == 409 and "is cancelled" in r.json()["error"]["message"]


def test_tenants_do_not_see_or_act_on_each_others_campaigns(capi) -> None:
    # Given a campaign of the operator and one of acme (from acme's own folder)
    operator = capi.as_user("marketer")
    mine = operator.post("/api/v1/campaigns", json={"spec": spec()}).json()
    acme = capi.as_user("marketer", tenant=ENTERPRISE)
    theirs = acme.post("/api/v1/campaigns", json={"spec": spec()})
    assert theirs.status_code == 201, theirs.text
    # Then each lists only its own
    assert [c["id"] for c in acme.get("/api/v1/campaigns").json()["items"]] == [theirs.json()["id"]]
    # And every action on the other's id is 404, changing nothing
    url = f"/api/v1/campaigns/{mine['id']}"
    for r in (acme.get(url), acme.post(f"{url}/schedule"), acme.post(f"{url}/cancel"),
              acme.post(f"{url}/pause")):  # fmt: skip
        assert r.status_code == 404 and r.json()["error"]["message"] == f"no campaign {mine['id']}"
    assert operator.get(url).json()["status"] == "draft"


def test_specs_that_cannot_run_are_refused_naming_the_field(capi) -> None:
    marketer = capi.as_user("marketer")
    cases = [
        ({k: v for k, v in spec().items() if k != "name"}, "name: Field required"),
        (spec(colour="red"), "colour: Extra inputs are not permitted"),
        (spec(audience={"path": "../operator/bills.csv"}), "audience.path"),
        (spec(audience={"path": "/etc/passwd"}), "no absolute path"),
        (spec(audience={"path": "missing.csv"}), "there is no missing.csv in your audience"),
        (spec(tenant=ENTERPRISE), "tenant: you act for tenant 'operator'"),
        (spec(template={"code": "nope"}), "template operator/nope has no approved version"),
        (spec(category="otp"), "template care.bill is approved as notification"),
        (spec(experiment={"holdout": 2}), "experiment.holdout"),
        (spec(audience={"path": "bills.csv", "msisdn_column": "phone"}), "no column 'phone'"),
    ]  # fmt: skip
    for body, words in cases:
        for route in ("/api/v1/campaigns", "/api/v1/campaigns/preview"):
            r = marketer.post(route, json={"spec": body})
            assert r.status_code == 422, (route, body, r.text)
            assert words in r.json()["error"]["message"], (route, r.text)
    assert campaigns(capi) == []


def test_an_enterprise_sends_under_its_own_signature(capi) -> None:
    acme = capi.as_key("admin", tenant=ENTERPRISE)
    r = acme.post("/api/v1/campaigns/preview", json={"spec": spec(signature="【中国移动】")})
    assert r.status_code == 422 and "your own signature 【爱客美】" in r.json()["error"]["message"]
    r = acme.post("/api/v1/campaigns/preview", json={"spec": spec()})
    assert r.json()["arms"][0]["example"].startswith("【爱客美】王0")


def test_roles_for_campaign_routes(capi) -> None:
    for role in ("analyst", "reviewer", "auditor"):
        client = capi.as_user(role)
        assert client.get("/api/v1/campaigns").status_code == 200
        r = client.post("/api/v1/campaigns", json={"spec": spec()})
        assert r.status_code == 403 and "campaigns.write" in r.json()["error"]["message"]
    assert capi.as_key("api-client").get("/api/v1/campaigns").status_code == 403
    assert capi.client.get("/api/v1/campaigns").status_code == 401


def test_a_segment_audience_is_counted_and_exported_when_scheduled(capi, tmp_path) -> None:
    marketer = capi.as_user("marketer")
    segment = {"name": "vip", "where": {"field": "star_level", "op": "ge", "value": 4}}
    body = spec(template={"code": "care.hello"}, audience={"segment": segment})
    # When the operator previews a campaign to a segment, Then the warehouse counts it
    r = marketer.post("/api/v1/campaigns/preview", json={"spec": body})
    assert r.status_code == 200, r.text
    assert (r.json()["count"], r.json()["messages"]) == (20, 20)
    # And scheduled, the segment is exported to the folder and sent
    draft = marketer.post("/api/v1/campaigns", json={"spec": body}).json()
    assert draft["spec"]["audience"] == {"segment": segment}
    done = marketer.post(f"/api/v1/campaigns/{draft['id']}/schedule").json()
    assert done["summary"]["accepted"] == 20
    assert (tmp_path / "var" / "audiences" / "operator" / f"campaign-{draft['id']}.parquet").is_file()
    # A bad segment names its path; an enterprise may not use the warehouse
    bad = spec(audience={"segment": {"where": {"field": "stars", "op": "ge", "value": 4}}})
    r = marketer.post("/api/v1/campaigns", json={"spec": bad})
    assert r.status_code == 422
    assert "audience.segment: where.field: unknown field 'stars'" in r.json()["error"]["message"]
    r = capi.as_user("marketer", tenant=ENTERPRISE).post("/api/v1/campaigns", json={"spec": body})
    assert r.status_code == 403
