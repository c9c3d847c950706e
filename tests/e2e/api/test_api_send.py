"""The send API: one message and a batch through the delivery entry, replays and
conflicts of a key, bad fields named, policy refusals as decisions, limits, and the status
of messages scoped by tenant."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from jingxin.data.store.models import Message

SIGNATURE = "【爱客美】"


@pytest.fixture
def api(api):
    """The API with approved templates: acme's OTP, notification and marketing ones, and
    one of the operator's (which acme must not be able to send)."""
    from jingxin.content import catalog
    from jingxin.content.library import TemplateDocument

    acme = [TemplateDocument(code="verify.code", category="otp", variables={"code": "str"},
                             body="您的验证码是{{ code }}，5分钟内有效。"),
            TemplateDocument(code="order.shipped", category="notification",
                             variables={"order": "str"}, body="您的订单{{ order }}已发货。"),
            TemplateDocument(code="promo.sale", category="marketing", variables={},
                             body="爱客美双十一全场五折。"),
            TemplateDocument(code="order.track", category="notification",
                             variables={"link": "str"}, body="物流详情：{{ link }}")]  # fmt: skip
    operator = [TemplateDocument(code="op.notice", category="notification", variables={},
                                 body="系统维护通知。")]  # fmt: skip
    with api.store.transaction() as session:
        catalog.seed_library(session, documents=acme, tenant_id="acme", approve_as="reviewer")
        catalog.seed_library(session, documents=operator, approve_as="reviewer")
    return api


def otp(key: str = "k1", *, msisdn: str = "13812345678", code: str = "123456", **more):
    return {"msisdn": msisdn, "category": "otp", "template": "verify.code",
            "variables": {"code": code}, "idempotency_key": key, **more}  # fmt: skip


def outbox(api) -> list[Message]:
    with api.store.transaction() as session:
        return list(session.scalars(select(Message).order_by(Message.id)))


def test_one_message_is_queued_in_the_otp_lane_under_the_tenants_signature(api):
    r = api.as_key().post("/api/v1/send", json=otp())
    assert r.status_code == 202, r.text
    body = r.json()
    assert (body["decision"], body["status"], body["parts"], body["reasons"]) == \
        ("send", "queued", 1, [])  # fmt: skip
    (m,) = outbox(api)
    assert (m.id, m.tenant_id, m.source, m.category, m.lane, m.msisdn) == \
        (body["message_id"], "acme", "api", "otp", 0, "+8613812345678")  # fmt: skip
    assert m.text == f"{SIGNATURE}您的验证码是123456，5分钟内有效。"
    assert m.idempotency_key == "api:acme:k1" and m.expires_at is not None


def test_a_batch_is_sent_in_order(api):
    messages = [otp("b1", msisdn="13812340001"),
                {"msisdn": "+8613812340002", "category": "notification",
                 "template": "order.shipped", "variables": {"order": "A-7"},
                 "idempotency_key": "b2"}]  # fmt: skip
    r = api.as_key().post("/api/v1/send/batch", json={"messages": messages})
    assert r.status_code == 202, r.text
    results = r.json()["results"]
    rows = outbox(api)
    assert [x["message_id"] for x in results] == [m.id for m in rows]
    assert [m.category for m in rows] == ["otp", "notification"]
    assert all(x["decision"] == "send" and not x["replayed"] for x in results)
    # the same batch again: the same messages, replayed, nothing new
    again = api.as_key().post("/api/v1/send/batch", json={"messages": messages}).json()
    assert [x["message_id"] for x in again["results"]] == [m.id for m in rows]
    assert all(x["replayed"] for x in again["results"]) and len(outbox(api)) == 2


def test_a_link_becomes_a_short_link(api):
    target = "https://shop.example.cn/track?order=A-7"
    r = api.as_key().post("/api/v1/send", json={
        "msisdn": "13812345678", "category": "notification", "template": "order.track",
        "idempotency_key": "t1", "link": target})  # fmt: skip
    assert r.status_code == 202, r.text
    (m,) = outbox(api)
    assert m.link_url == target and m.link_token and m.link_token in m.text
    assert target not in m.text


def test_the_same_key_replays_and_another_body_conflicts(api):
    client = api.as_key()
    first = client.post("/api/v1/send", json=otp())
    again = client.post("/api/v1/send", json=otp(msisdn="+8613812345678"))  # same number
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.headers["Idempotent-Replay"] == "true"
    assert {**again.json(), "replayed": False} == first.json()
    conflict = client.post("/api/v1/send", json=otp(code="999999"))
    assert conflict.status_code == 409
    assert "k1" in conflict.json()["error"]["message"]
    # a batch reusing it with another body sends nothing at all
    r = client.post("/api/v1/send/batch", json={"messages": [otp("new"), otp(code="1")]})
    assert r.status_code == 409 and "messages.1" in r.json()["error"]["message"]
    assert len(outbox(api)) == 1


def test_another_tenants_template_is_refused_and_nothing_sent(api):
    r = api.as_key().post("/api/v1/send", json={
        "msisdn": "13812345678", "category": "notification", "template": "op.notice",
        "variables": {}, "idempotency_key": "x"})  # fmt: skip
    assert r.status_code == 422
    assert r.json()["error"]["fields"][0]["field"] == "body.template"
    assert "no template 'op.notice'" in r.json()["error"]["message"]
    assert outbox(api) == []


def test_an_opt_out_is_a_reject_decision_not_an_error(api):
    from jingxin.data.store.contact import record_opt_out

    with api.store.transaction() as session:
        record_opt_out(session, msisdn="13812345678", source="sms_reply")
    r = api.as_key().post("/api/v1/send", json={
        "msisdn": "13812345678", "category": "marketing", "template": "promo.sale",
        "idempotency_key": "m1"})  # fmt: skip
    assert r.status_code == 202, r.text
    body = r.json()
    assert (body["decision"], body["message_id"], body["status"]) == ("reject", None, "refused")
    assert "opted_out" in body["reasons"]
    assert outbox(api) == []


@pytest.mark.parametrize(("change", "field"), [
    ({"msisdn": "12345"}, "body.msisdn"),
    ({"variables": {}}, "body.variables.code"),
    ({"variables": {"code": "1", "extra": "x"}}, "body.variables.extra"),
    ({"category": "sms"}, "body.category"),
    ({"send_at": "2030-01-01T08:00:00"}, "body.send_at"),  # no offset
    ({"link": "http://example.cn/x"}, "body.link"),
    ({"idempotency_key": ""}, "body.idempotency_key"),
])  # fmt: skip
def test_bad_fields_are_named(api, change, field):
    r = api.as_key().post("/api/v1/send", json={**otp(), **change})
    assert r.status_code == 422, r.text
    assert field in [f["field"] for f in r.json()["error"]["fields"]]
    assert outbox(api) == []


def test_a_bad_batch_names_every_bad_item_and_sends_nothing(api):
    messages = [otp("g1", msisdn="13812340001"), otp("g2", msisdn="999"),
                {**otp("g3"), "template": "nope"}, {**otp("g4"), "variables": {}}]  # fmt: skip
    r = api.as_key().post("/api/v1/send/batch", json={"messages": messages})
    assert r.status_code == 422
    fields = {f["field"] for f in r.json()["error"]["fields"]}
    assert fields == {"body.messages.1.msisdn", "body.messages.2.template",
                      "body.messages.3.variables.code"}  # fmt: skip
    assert outbox(api) == []


def test_an_entry_refusal_in_a_batch_names_its_index(api):
    # a link on a template with no place for it: only the delivery entry knows
    messages = [otp("e1"), otp("e2", msisdn="13812340002", link="https://shop.example.cn/a")]
    r = api.as_key().post("/api/v1/send/batch", json={"messages": messages})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["fields"][0]["field"] == "body.messages.1.link"
    assert outbox(api) == []


def test_oversized_batch_is_413_and_malformed_json_400(api):
    client = api.as_key()
    r = client.post("/api/v1/send/batch", json={"messages": [{}] * 1001})
    assert r.status_code == 413 and "1000" in r.json()["error"]["message"]
    r = client.post("/api/v1/send", content=b'{"msisdn": ', headers={
        "Content-Type": "application/json"})  # fmt: skip
    assert r.status_code == 400


def test_roles_without_send_are_403(api):
    assert api.as_key("analyst").post("/api/v1/send", json=otp()).status_code == 403
    assert api.as_key("marketer").post("/api/v1/send/batch",
                                       json={"messages": [otp()]}).status_code == 403
    assert api.as_user("admin", tenant="acme").post("/api/v1/send", json=otp()).status_code == 202


def test_over_the_keys_rate_is_429_with_retry_after(api):
    from fastapi.testclient import TestClient

    from jingxin.access.keys import create_key

    with api.store.transaction() as session:
        _, key = create_key(session, tenant_id="acme", name="slow", rate_per_second=0.5)
    client = TestClient(api.client.app, headers={"Authorization": f"Bearer {key}"})
    assert client.post("/api/v1/send", json=otp("r1")).status_code == 202
    r = client.post("/api/v1/send", json=otp("r2", msisdn="13812340002"))
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert len(outbox(api)) == 1


async def test_concurrent_sends_share_one_delivery_and_each_gets_its_own_answer(api,
                                                                               monkeypatch):
    from jingxin.api import send_queue as send

    # Given 20 sends at once, one a replay of another and one only the entry refuses
    sizes, real = [], send.deliver_many

    def counted(store, *, deliveries, context):
        sizes.append(len(deliveries))
        return real(store, deliveries=deliveries, context=context)

    monkeypatch.setattr(send, "deliver_many", counted)
    transport = httpx.ASGITransport(app=api.client.app)
    headers = {"Authorization": f"Bearer {api.keys[('acme', 'api-client')]}"}
    bodies = [otp(f"c{i}", msisdn=f"138123400{i:02d}") for i in range(18)]
    bodies += [otp("c0", msisdn="13812340000"),
               otp("c99", msisdn="13812349999", link="https://shop.example.cn/x")]  # fmt: skip
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=headers) as c:
        answers = await asyncio.gather(*(c.post("/api/v1/send", json=b) for b in bodies))
    # Then each is answered on its own, and the outbox holds the 18 new messages
    statuses = [a.status_code for a in answers]
    assert statuses[1:18] == [202] * 17 and statuses[19] == 422
    assert sorted([statuses[0], statuses[18]]) == [200, 202]  # whichever came second replays
    assert answers[18].json()["message_id"] == answers[0].json()["message_id"]
    assert answers[19].json()["error"]["fields"][0]["field"] == "body.link"
    assert len(outbox(api)) == 18
    assert max(sizes) > 1  # merged into one call of the delivery entry


def test_send_at_later_is_kept(api):
    later = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    r = api.as_key().post("/api/v1/send", json=otp(send_at=later.isoformat()))
    assert r.status_code == 202, r.text
    assert datetime.fromisoformat(r.json()["send_at"]) >= later
    (m,) = outbox(api)
    assert m.scheduled_at >= later


def test_message_status_is_the_tenants_own_and_numbers_are_masked(api):
    from jingxin.data.store.models import Receipt
    from jingxin.data.store.models.dispatch import MessagePart

    sent = api.as_key().post("/api/v1/send", json=otp()).json()["message_id"]
    with api.store.transaction() as session:  # as the worker and a receipt would leave it
        m = session.get(Message, sent)
        m.state, m.submitted_at, m.finished_at = "delivered", m.created_at, m.created_at
        session.add(MessagePart(message_id=sent, part_no=1, channel="sim", smsc_id="s-1",
                                state="delivered", receipt_at=m.created_at))  # fmt: skip
        session.add(Receipt(message_id=sent, smsc_message_id="s-1", status="delivered"))
    r = api.as_key().get(f"/api/v1/messages/{sent}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["status"], body["msisdn"], body["idempotency_key"]) == \
        ("delivered", "+8613812345678", "k1")  # fmt: skip
    assert body["delivered_at"] and body["text"] is None  # an OTP's code is not shown again
    assert [p["state"] for p in body["part_states"]] == ["delivered"]
    assert [x["smsc_message_id"] for x in body["receipts"]] == ["s-1"]
    masked = api.as_key("analyst").get(f"/api/v1/messages/{sent}").json()
    assert masked["msisdn"] == "+861381234****"
    # another tenant: as if it did not exist
    assert api.as_key("admin", tenant="operator").get(f"/api/v1/messages/{sent}").status_code == 404
    assert api.as_key("admin", tenant="operator").get("/api/v1/messages").json()["total"] == 0
    listed = api.as_key().get("/api/v1/messages", params={"msisdn": "13812345678",
                                                          "status": "delivered"}).json()  # fmt: skip
    assert (listed["total"], listed["items"][0]["id"]) == (1, sent)
    assert api.as_key().get("/api/v1/messages", params={"status": "lost"}).status_code == 422


def test_the_store_away_is_503(api, monkeypatch):
    from jingxin.api import send_queue as send
    from jingxin.errors import StoreError

    def away(*_args, **_kwargs):
        raise StoreError("delivering 1 messages failed: connection refused")

    monkeypatch.setattr(send, "deliver_many", away)
    r = api.as_key().post("/api/v1/send", json=otp())
    assert r.status_code == 503 and "refused" not in r.text


def test_a_send_at_years_ahead_is_refused_naming_the_field(api):
    r = api.as_key().post("/api/v1/send", json=otp(send_at="2126-01-01T09:00:00+08:00"))
    assert r.status_code == 422
    assert r.json()["error"]["fields"][0]["field"] == "body.send_at"
    assert "90 days ahead" in r.json()["error"]["message"]
    assert outbox(api) == []
