"""Journeys over the API: the daily scan's triggers (to the tenant the scan sends as) and
the journey files of each tenant, listed with their enrolments and last runs; one journey's
steps, positions and conversion; a trigger's scan run by hand (dry run, on a tiny
warehouse), a flow advanced (its due send goes through the delivery entry); what cannot be
done is 409, bad bodies 422; permissions, tenant isolation and the audit log."""

from __future__ import annotations

import datetime as dt
from textwrap import dedent

import pyarrow as pa
import pytest
from sqlalchemy import select

from jingxin.content import catalog
from jingxin.content.library import TemplateDocument
from jingxin.data.store.models import AuditEntry, JourneyRun, Message
from jingxin.data.warehouse.connection import open_duckdb
from jingxin.data.warehouse.schema import TABLES
from jingxin.journeys.engine import enrol
from jingxin.journeys.flow import load_flow
from jingxin.journeys.triggers import TRIGGERS

URL = "/api/v1/journeys"
NUDGE = dedent("""\
    name: care_nudge
    category: notification
    entry: {audience: people.csv}
    steps:
      - {id: offer, type: send, template: journey.nudge}
      - {id: pause, type: wait, days: 3}
      - id: check
        type: branch
        on:
          - {event: replied, within: {days: 3}, goto: won}
        default: lost
      - {id: won, type: exit, outcome: converted}
      - {id: lost, type: exit, outcome: no_response}
    """)
ACME = dedent("""\
    name: acme_offer
    tenant: acme
    entry: {trigger: renewal}
    steps:
      - {id: offer, type: send, template: acme.offer}
    """)
BROKEN = "name: broken\nentry: {trigger: nope}\nsteps:\n  - {id: a, type: exit, outcome: x}\n"
NOW = dt.datetime.now(dt.UTC)


@pytest.fixture
def journeys(api, tmp_path):
    """Two journey files (the operator's, acme's) and a broken one; three enrolments;
    a day of the birthday trigger and of acme's enrolment in journey_runs."""
    folder = tmp_path / "journeys"
    folder.mkdir()
    for name, text in (("nudge.yaml", NUDGE), ("acme.yaml", ACME), ("broken.yaml", BROKEN)):
        (folder / name).write_text(text, encoding="utf-8")
    (folder / "people.csv").write_text("msisdn\n", encoding="utf-8")
    api.settings.journeys.journeys_dir = str(folder)
    enrol(api.store, load_flow(folder / "nudge.yaml"), ["+8613912340001", "+8613912340002"],
          entry_key="2026-10-01", now=NOW)
    enrol(api.store, load_flow(folder / "acme.yaml"), ["+8613912340003"], entry_key="2026-10-01",
          now=NOW, default_holdout=0.0)
    with api.store.transaction() as session:
        for trigger, day in (("birthday", dt.date(2026, 10, 13)), ("birthday", dt.date(2026, 10, 14)),
                             ("flow:acme_offer", dt.date(2026, 10, 14))):
            session.add(JourneyRun(trigger=trigger, day=day, state="done", candidates=3, queued=2))
    return api


def approve(api, code: str, body: str, *, tenant: str = "operator") -> None:
    with api.store.transaction() as session:
        made = catalog.add_template(session, tenant_id=tenant, document=TemplateDocument(
            code=code, category="notification", body=body, variables={}))
        catalog.submit_template(session, template_id=made.id)
        catalog.approve_template(session, template_id=made.id, reviewer="r")


def audited(api) -> list[tuple[str, str, str]]:
    with api.store.transaction() as session:
        return [(a.action, a.object_id, a.tenant_id) for a in session.scalars(
            select(AuditEntry).where(AuditEntry.object_type == "journey").order_by(AuditEntry.id))]


def test_each_tenant_lists_its_own(journeys) -> None:
    # The operator sees the scan's triggers and its journey file, and the broken file's problems
    body = journeys.as_key("analyst", tenant="operator").get(URL).json()
    ids = [j["id"] for j in body["items"]]
    assert ids == [*TRIGGERS, "care_nudge"] and body["total"] == len(TRIGGERS) + 1
    by_id = {j["id"]: j for j in body["items"]}
    assert by_id["birthday"]["last_run"]["day"] == "2026-10-14"
    assert by_id["renewal"]["last_run"] is None and by_id["birthday"]["kind"] == "trigger"
    nudge = by_id["care_nudge"]
    assert (nudge["kind"], nudge["entry"], nudge["category"]) == ("flow", "audience:people.csv",
                                                                   "notification")
    assert nudge["enrolments"] == {"active": 2}
    assert [p.split(":")[:3] for p in body["problems"]] == [["broken.yaml", "2", " entry.trigger"]]
    # And pages
    page = journeys.as_key("analyst", tenant="operator").get(URL, params={"offset": 10, "limit": 5})
    assert [j["id"] for j in page.json()["items"]] == ["care_nudge"]
    # acme sees its own file only: no triggers, no problems of the operator's files
    acme = journeys.as_key("analyst", tenant="acme").get(URL).json()
    assert [j["id"] for j in acme["items"]] == ["acme_offer"] and acme["problems"] == []
    assert acme["items"][0]["enrolments"] == {"active": 1}
    assert acme["items"][0]["last_run"]["trigger"] == "flow:acme_offer"


def test_one_journey_in_detail(journeys) -> None:
    analyst = journeys.as_user("analyst")
    r = analyst.get(f"{URL}/care_nudge")
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["file"], body["goal"], body["holdout"], body["holdout_default"]) == (
        "nudge.yaml", "ordered", 0.0, True)
    steps = body["steps"]
    assert [s["type"] for s in steps] == ["send", "wait", "branch", "exit", "exit"]
    assert (steps[0]["template"], steps[0]["next"], steps[1]["seconds"]) == (
        "journey.nudge", "pause", 3 * 86400)
    assert steps[2]["rules"] == [{"event": "replied", "within_seconds": 3 * 86400, "goto": "won"}]
    assert body["positions"] == [{"step": "offer", "state": "active", "outcome": None, "n": 2}]
    assert body["treated"] == {"enrolled": 2, "converted": 0, "rate": 0.0}
    # A trigger: its runs, newest first
    runs = analyst.get(f"{URL}/birthday").json()["runs"]
    assert [r["day"] for r in runs] == ["2026-10-14", "2026-10-13"]
    # Another tenant's, or none: 404
    assert analyst.get(f"{URL}/acme_offer").status_code == 404
    assert analyst.get(f"{URL}/nothing").status_code == 404
    acme = journeys.as_key("admin", tenant="acme")
    for name in ("care_nudge", "birthday"):
        assert acme.get(f"{URL}/{name}").status_code == 404


def test_advance_a_flow(journeys) -> None:
    marketer = journeys.as_user("marketer")
    # Its template not approved: the file does not validate, nothing moves
    refused = marketer.post(f"{URL}/care_nudge/advance")
    assert refused.status_code == 409 and "journey.nudge" in refused.json()["error"]["message"]
    # Approved: the due sends go through the delivery entry
    approve(journeys, "journey.nudge", "您的套餐有新权益，回复1了解。")
    r = marketer.post(f"{URL}/care_nudge/advance")
    assert r.status_code == 200, r.text
    assert r.json()["counts"].get("sent") == 2
    with journeys.store.transaction() as session:
        keys = session.scalars(select(Message.idempotency_key)).all()
    assert len(keys) == 2 and all(k.startswith("journey:care_nudge:") for k in keys)
    # Again: nothing is due
    assert marketer.post(f"{URL}/care_nudge/advance").json()["counts"] == {}
    # A trigger has no steps; another tenant's flow is 404
    assert marketer.post(f"{URL}/birthday/advance").status_code == 409
    assert marketer.post(f"{URL}/acme_offer/advance").status_code == 404
    assert ("journey.advance", "care_nudge", "operator") in audited(journeys)


def test_run_a_trigger_dry(journeys, tmp_path) -> None:
    # Given a warehouse with one subscriber born on the day
    schema = TABLES["subscribers"].schema
    row = {"subscriber_id": 1, "msisdn": "+8613900000001", "carrier": "china_mobile",
           "plan_id": "P1", "payment": "prepaid", "status": "active", "gender": "F",
           "birthday": dt.date(1990, 10, 15), "entry_date": dt.date(2015, 6, 1),
           "contract_end": None, "star_level": 2, "region": "浦东新区", "handset_model": None,
           "handset_generation": 4, "app_user": False, "suspended_since": None}  # fmt: skip
    path = tmp_path / "wh.duckdb"
    wh = open_duckdb(path)
    wh.con.create_table("subscribers", pa.table({f.name: pa.array([row[f.name]], f.type)
                                                 for f in schema}, schema=schema))
    wh.close()
    journeys.settings.warehouse.path = str(path)
    # When the marketer runs the birthday trigger of that day, dry
    marketer = journeys.as_key("marketer", tenant="operator")
    r = marketer.post(f"{URL}/birthday/run", json={"date": "2026-10-15", "dry_run": True})
    # Then it counts the one candidate and sends nothing
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["day"], body["dry_run"], body["enrolment"]) == ("2026-10-15", True, None)
    assert body["scan"]["candidates"] == 1 and body["scan"]["queued"] == 0, body
    with journeys.store.transaction() as session:
        assert session.scalars(select(Message)).all() == []
    assert ("journey.run", "birthday", "operator") in audited(journeys)


def test_what_cannot_run(journeys) -> None:
    marketer = journeys.as_key("marketer", tenant="operator")
    # A flow entering from an audience file is enrolled from the CLI
    r = marketer.post(f"{URL}/care_nudge/run", json={})
    assert r.status_code == 409 and "jingxin flow enrol" in r.json()["error"]["message"]
    # A flow has no dry run; bad bodies are 422 naming the field
    for body, field in (({"dry_run": True}, "body.dry_run"), ({"date": "yesterday"}, "body.date"),
                        ({"when": "2026-10-15"}, "body.when")):  # fmt: skip
        bad = marketer.post(f"{URL}/care_nudge/run", json=body)
        assert bad.status_code == 422 and field in [f["field"] for f in bad.json()["error"]["fields"]]
    # A flow whose template is not approved does not validate: 409 before anything runs
    acme = journeys.as_key("marketer", tenant="acme")
    r = acme.post(f"{URL}/acme_offer/run", json={})
    assert r.status_code == 409 and "acme.offer" in r.json()["error"]["message"]
    # The operator's trigger is none of acme's business
    assert acme.post(f"{URL}/birthday/run", json={"dry_run": True}).status_code == 404
    # No warehouse: 503
    journeys.settings.warehouse.path = "/nonexistent/wh.duckdb"
    assert marketer.post(f"{URL}/birthday/run", json={"dry_run": True}).status_code == 503
    assert audited(journeys) == []


def test_roles(journeys) -> None:
    analyst = journeys.as_key("analyst", tenant="operator")
    for path in (f"{URL}/care_nudge/advance", f"{URL}/birthday/run"):
        refused = analyst.post(path, json={})
        assert refused.status_code == 403 and "journeys.write" in refused.json()["error"]["message"]
    assert journeys.as_key("api-client", tenant="acme").get(URL).status_code == 403
    assert journeys.client.get(URL).status_code == 401
