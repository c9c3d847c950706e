"""The MO inbox over the API: the search of `jingxin inbox list`, one MO in full, whose MO
an enterprise sees (attributed to its messages, or answered by its hall), masked numbers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from jingxin.data.store.models import (
    HallInteraction,
    Message,
    MoMessage,
    MoOutcome,
    MoPartRow,
)

A = "+8613800000001"
B = "+8613800000002"


@dataclass(frozen=True)
class Seeded:
    """Ids of what :func:`seed` wrote."""

    campaign_message: int  # acme's campaign message to A
    acme_mo: int  # A's answer to it (attributed to acme), two parts
    acme_reply: int  # acme's auto-reply to that answer
    otp: int  # acme's one-time code to A
    hall_mo: int  # A's "YE" to the operator's hall 10086
    hall_reply: int  # the hall's answer (operator)
    pending_mo: int  # B's "TD" to 10086, not handled yet
    acme_hall_mo: int  # B's "0" to acme's own hall 1069009, not attributed


def today_base(zone: str = "Asia/Shanghai") -> datetime:
    """A minute ago, or the start of today in ``zone`` when that was yesterday there."""
    now = datetime.now(UTC)
    start = now.astimezone(ZoneInfo(zone)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(now - timedelta(seconds=60), start.astimezone(UTC))


def seed(store) -> Seeded:
    base = today_base()

    def at(seconds: int) -> datetime:
        return base + timedelta(seconds=seconds)

    def message(n: int, *, tenant: str, text: str, state: str, category: str = "notification",
                source: str = "api", sender: str | None = None, seconds: int = 0) -> Message:
        return Message(tenant_id=tenant, msisdn=A, category=category, lane=1, text=text,
                       idempotency_key=f"seed-{n}", state=state, source=source, sender=sender,
                       created_at=at(seconds), scheduled_at=at(seconds),
                       submitted_at=at(seconds) if state != "queued" else None,
                       finished_at=at(seconds + 1) if state in ("delivered", "failed") else None)

    def mo(n: int, *, msisdn: str, to: str, text: str, seconds: int, parts: int = 1) -> MoMessage:
        return MoMessage(channel="sim-smpp", msisdn=msisdn, service_number=to, text=text,
                         coding=8, parts=parts, parts_expected=parts, complete=True,
                         undecodable=False, received_at=at(seconds), dedup_key=f"seed-mo-{n}")

    with store.transaction() as session:
        campaign = message(1, tenant="acme", text="【爱客美】新品上市，回复1了解", state="delivered",
                           category="marketing", source="campaign", sender="1069001", seconds=1)
        otp = message(2, tenant="acme", text="【爱客美】验证码 654321", state="delivered",
                      category="otp", seconds=2)
        queued = message(3, tenant="acme", text="【爱客美】稍后发送", state="queued", seconds=3)
        failed = message(4, tenant="operator", text="【中国移动】提醒", state="failed", seconds=3)
        session.add_all([campaign, otp, queued, failed])
        session.flush()
        acme_mo = mo(1, msisdn=A, to="1069001", text="1 请联系13912345678", seconds=10, parts=2)
        hall_mo = mo(2, msisdn=A, to="10086", text="YE", seconds=20)
        pending = mo(3, msisdn=B, to="10086", text="TD", seconds=30)
        acme_hall = mo(4, msisdn=B, to="1069009", text="0", seconds=40)
        session.add_all([acme_mo, hall_mo, pending, acme_hall])
        session.flush()
        session.add_all([MoPartRow(channel="sim-smpp", protocol="smpp", source=A,
                                   destination="1069001", ref=7, total=2, seq=seq, coding=8,
                                   payload=b"\x00" * 10 * seq, fingerprint=f"f{seq}",
                                   dedup_key=f"seed-part-{seq}", mo_id=acme_mo.id,
                                   received_at=at(10)) for seq in (1, 2)])
        acme_reply = message(5, tenant="acme", text="【爱客美】已收到", state="submitted",
                             source="inbox", sender="1069001", seconds=11)
        hall_reply = message(6, tenant="operator", text="您的余额12元。", state="submitted",
                             source="hall", sender="10086", seconds=21)
        session.add_all([acme_reply, hall_reply])
        session.flush()
        session.add_all([
            MoOutcome(mo_id=acme_mo.id, handler="auto-reply", outcome="handled",
                      detail="replied", tenant_id="acme", message_id=campaign.id,
                      source="campaign", source_id="3", arm="B",
                      reply_message_id=acme_reply.id, handled_at=at(11)),
            MoOutcome(mo_id=hall_mo.id, handler="hall", outcome="handled",
                      detail="hall balance: answered", tenant_id="operator",
                      reply_message_id=hall_reply.id, handled_at=at(21)),
            MoOutcome(mo_id=acme_hall.id, handler="hall", outcome="handled",
                      detail="hall menu: answered", tenant_id="operator", handled_at=at(41)),
            HallInteraction(mo_id=hall_mo.id, msisdn=A, service_number="10086",
                            tenant_id="operator", command="balance", kind="query",
                            outcome="answered", reply="您的余额12元。", at=at(20)),
            HallInteraction(mo_id=acme_hall.id, msisdn=B, service_number="1069009",
                            tenant_id="acme", command="menu", kind="other",
                            outcome="answered", reply="菜单", at=at(40)),
        ])  # fmt: skip
        return Seeded(campaign.id, acme_mo.id, acme_reply.id, otp.id, hall_mo.id,
                      hall_reply.id, pending.id, acme_hall.id)


def ids(answer) -> list[int]:
    return [item["id"] for item in answer.json()["items"]]


def test_the_operator_sees_every_mo_and_an_enterprise_only_its_own(api):
    s = seed(api.store)
    # Given MO attributed to acme, to the operator's hall, pending, and to acme's own hall
    # When the operator lists the inbox, Then every MO is there, newest first
    r = api.as_user("analyst").get("/api/v1/inbox")
    assert r.status_code == 200, r.text
    assert ids(r) == [s.acme_hall_mo, s.pending_mo, s.hall_mo, s.acme_mo]
    assert r.json()["total"] == 4
    # When acme lists it, Then only the MO attributed to its message and the one its hall answered
    r = api.as_key("api-client").get("/api/v1/inbox")
    assert ids(r) == [s.acme_hall_mo, s.acme_mo] and r.json()["total"] == 2
    # And the operator's MO, and a pending one, are 404 for acme as a missing id is
    for mo_id in (s.hall_mo, s.pending_mo, 999_999):
        r = api.as_key("analyst").get(f"/api/v1/inbox/{mo_id}")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert api.as_key("api-client").get(f"/api/v1/inbox/{s.acme_mo}").status_code == 200


def test_one_mo_in_full_with_parts_attribution_and_outcome(api):
    s = seed(api.store)
    r = api.as_key("api-client").get(f"/api/v1/inbox/{s.acme_mo}")
    assert r.status_code == 200, r.text
    mo = r.json()
    assert (mo["msisdn"], mo["service_number"], mo["outcome"], mo["handler"]) == (
        A, "1069001", "handled", "auto-reply")
    assert mo["attribution"] == {"message_id": s.campaign_message, "tenant_id": "acme",
                                 "campaign_id": None, "source": "campaign", "source_id": "3",
                                 "arm": "B", "text": f"campaign 3 (message {s.campaign_message}, arm B)"}
    assert mo["reply_message_id"] == s.acme_reply and mo["detail"] == "replied"
    assert [(p["seq"], p["total"], p["ref"], p["octets"]) for p in mo["parts_received"]] == [
        (1, 2, 7, 10), (2, 2, 7, 20)]
    # A pending MO (operator's view) says so
    r = api.as_user("admin").get(f"/api/v1/inbox/{s.pending_mo}")
    assert (r.json()["outcome"], r.json()["attribution"], r.json()["tenant_id"]) == (
        "pending", None, None)


def test_the_search_filters_as_jingxin_inbox_list(api):
    s = seed(api.store)
    client = api.as_user("admin")

    def found(**params) -> list[int]:
        r = client.get("/api/v1/inbox", params=params)
        assert r.status_code == 200, r.text
        return ids(r)

    assert found(q="ye") == [s.hall_mo]  # text, case-insensitively
    assert found(msisdn="13800000002") == [s.acme_hall_mo, s.pending_mo]  # national form too
    assert found(service_number="1008") == [s.pending_mo, s.hall_mo]  # and its extensions
    assert found(status="pending") == [s.pending_mo]
    assert found(limit=1, offset=1) == [s.pending_mo]
    assert found(since=(datetime.now(UTC) + timedelta(hours=1)).isoformat()) == []
    # a bare since is read in the tenant's zone (Asia/Shanghai): an hour ahead of now there
    ahead = (datetime.now(ZoneInfo("Asia/Shanghai")) + timedelta(hours=1)).replace(tzinfo=None)
    assert found(since=ahead.isoformat(timespec="seconds")) == []


def test_bad_parameters_are_422_naming_them(api):
    client = api.as_user("admin")
    for params, field in [({"status": "lost"}, "query.status"), ({"limit": 0}, "query.limit"),
                          ({"limit": 501}, "query.limit"), ({"service_number": "10x"},
                          "query.service_number")]:  # fmt: skip
        r = client.get("/api/v1/inbox", params=params)
        assert r.status_code == 422, params
        assert r.json()["error"]["fields"][0]["field"] == field
    r = client.get("/api/v1/inbox", params={"since": "yesterday"})
    assert r.status_code == 422 and "since" in r.json()["error"]["message"]
    assert client.get("/api/v1/inbox/abc").status_code == 422


def test_numbers_are_masked_for_a_role_without_numbers_view(api):
    s = seed(api.store)
    # Given an analyst (no numbers.view) and an admin of the operator
    masked = api.as_user("analyst").get(f"/api/v1/inbox/{s.acme_mo}").json()
    whole = api.as_user("admin").get(f"/api/v1/inbox/{s.acme_mo}").json()
    # Then the analyst sees the sender and the number inside the text masked, the admin not
    assert masked["msisdn"] == "+861380000****" and whole["msisdn"] == A
    assert "13912345678" not in masked["text"] and "1391234****" in masked["text"]
    assert "13912345678" in whole["text"]
    assert A not in api.as_user("analyst").get("/api/v1/inbox").text


def test_credentials_are_needed(api):
    # Every role holds inbox.read (the api-client too: its own replies), so: no credentials
    assert api.client.get("/api/v1/inbox").status_code == 401
    assert api.client.get("/api/v1/inbox/1").status_code == 401
