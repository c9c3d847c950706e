"""Templates over the API: the catalogue of the caller's tenant, the review workflow
(submit, approve, reject, withdraw, edit as a new version), the live preview, roles,
tenant isolation and bad input."""

from __future__ import annotations

import time

from jingxin.data.store.audit import list_actions
from tests.e2e.api.conftest import ENTERPRISE_SIGNATURE

BILL = {"code": "bill.due", "category": "notification",
        "body": "{{ name }}，您本月账单{{ amount }}元，请于月底前缴纳。",
        "variables": {"name": "str", "amount": "float"}}  # fmt: skip


def created(client, **changes) -> dict:
    r = client.post("/api/v1/templates", json={**BILL, **changes})
    assert r.status_code == 201, r.text
    return r.json()


def test_a_marketer_adds_lists_and_reads_templates_of_their_tenant_only(api) -> None:
    # Given a template of the operator and one of acme
    marketer = api.as_user("marketer")
    mine = created(marketer)
    theirs = created(api.as_key("api-client", tenant="acme"), code="acme.notice")
    assert (mine["status"], mine["version"], mine["variables"]) == ("draft", 1, BILL["variables"])
    # When each lists its templates, Then each sees its own only
    listed = marketer.get("/api/v1/templates").json()
    assert [t["code"] for t in listed["items"]] == ["bill.due"] and listed["total"] == 1
    acme = api.as_user("analyst", tenant="acme")
    assert [t["code"] for t in acme.get("/api/v1/templates").json()["items"]] == ["acme.notice"]
    # And another tenant's id is 404, like a missing one
    assert marketer.get(f"/api/v1/templates/{mine['id']}").json()["body"] == BILL["body"]
    for client, other in ((acme, mine["id"]), (marketer, theirs["id"]), (marketer, 999)):
        r = client.get(f"/api/v1/templates/{other}")
        assert r.status_code == 404 and r.json()["error"]["message"] == f"no template {other}"
    # And the status filter works, an unknown status is 422
    assert marketer.get("/api/v1/templates?status=approved").json()["total"] == 0
    assert marketer.get("/api/v1/templates?status=bogus").status_code == 422


def test_roles_without_templates_write_may_not_add(api) -> None:
    for role in ("analyst", "reviewer", "auditor"):
        r = api.as_user(role).post("/api/v1/templates", json=BILL)
        assert r.status_code == 403 and "templates.write" in r.json()["error"]["message"]
    assert api.client.get("/api/v1/templates").status_code == 401


def test_the_review_workflow(api) -> None:
    marketer, reviewer = api.as_user("marketer"), api.as_user("reviewer")
    template = created(marketer)
    url = f"/api/v1/templates/{template['id']}"
    # Approving a draft is a conflict with the lifecycle's reason
    r = reviewer.post(f"{url}/approve")
    assert r.status_code == 409
    assert "is draft: cannot approve; from draft you may: archive, submit" in r.json()[
        "error"]["message"]
    # When the marketer submits, the automatic review's verdict comes back
    r = marketer.post(f"{url}/submit")
    assert r.status_code == 200, r.text
    assert r.json()["template"]["status"] == "submitted"
    assert r.json()["review"]["verdict"] == "pass"
    # A submitted version is not edited: withdraw it first
    r = marketer.put(url, json={"body": "改了"})
    assert r.status_code == 409 and "withdraw it first" in r.json()["error"]["message"]
    # The marketer may not approve; the reviewer may
    r = marketer.post(f"{url}/approve")
    assert r.status_code == 403 and "templates.review" in r.json()["error"]["message"]
    r = reviewer.post(f"{url}/approve", json={"reason": "ok"})
    assert r.status_code == 200, r.text
    approved = r.json()
    assert (approved["status"], approved["reviewer"], approved["review_reason"]) == (
        "approved", f"user:{api.username('reviewer')}", "ok")
    # When an approved template is edited, Then the edit is a new draft version
    r = marketer.put(url, json={"body": "{{ name }}，您本月账单{{ amount }}元。"})
    assert r.status_code == 200, r.text
    edited = r.json()
    assert (edited["edited_in_place"], edited["version"], edited["status"]) == (False, 2, "draft")
    assert edited["id"] != template["id"]
    assert marketer.get(url).json()["status"] == "approved"  # the reviewed one is unchanged
    # And a draft is edited in place
    r = marketer.put(f"/api/v1/templates/{edited['id']}", json={"variables": {
        "name": "str", "amount": "int"}})  # fmt: skip
    assert r.json()["edited_in_place"] is True and r.json()["variables"]["amount"] == "int"
    # And a rejection needs a reason; with one, it is kept for the author
    marketer.post(f"/api/v1/templates/{edited['id']}/submit")
    r = reviewer.post(f"/api/v1/templates/{edited['id']}/reject", json={})
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "body.reason"
    r = reviewer.post(f"/api/v1/templates/{edited['id']}/reject", json={"reason": "金额写错"})
    assert (r.json()["status"], r.json()["review_reason"]) == ("rejected", "金额写错")
    # And every step is in the audit log, with the actor and the tenant
    with api.store.transaction() as session:
        done = [(a.action, a.actor, a.tenant_id) for a in reversed(list_actions(
            session, object_type="template"))]  # fmt: skip
    marketer_name, reviewer_name = api.username("marketer"), api.username("reviewer")
    assert ("template.add", f"user:{marketer_name}", "operator") in done
    assert ("template.approve", f"user:{reviewer_name}", "operator") in done
    assert ("template.reject", f"user:{reviewer_name}", "operator") in done
    assert ("template.edit", f"user:{marketer_name}", "operator") in done


def test_withdraw_and_archive(api) -> None:
    marketer = api.as_user("marketer")
    template = created(marketer)
    url = f"/api/v1/templates/{template['id']}"
    marketer.post(f"{url}/submit")
    assert marketer.post(f"{url}/withdraw").json()["status"] == "draft"
    assert marketer.post(f"{url}/archive").json()["status"] == "archived"
    r = marketer.post(f"{url}/submit")
    assert r.status_code == 409 and "is archived: cannot submit" in r.json()["error"]["message"]


def test_a_second_open_version_is_a_conflict(api) -> None:
    marketer = api.as_user("marketer")
    created(marketer)
    r = marketer.post("/api/v1/templates", json=BILL)
    assert r.status_code == 409 and "is still draft" in r.json()["error"]["message"]


def test_content_review_blocks_a_submission(api) -> None:
    marketer = api.as_user("marketer")
    template = created(marketer, code="bad.link", body="点击 http://1.2.3.4/x 领取", variables={})
    r = marketer.post(f"/api/v1/templates/{template['id']}/submit")
    assert r.status_code == 422
    assert "blocked by content review: link_blocked" in r.json()["error"]["message"]
    assert marketer.get(f"/api/v1/templates/{template['id']}").json()["status"] == "draft"


def test_tenants_cannot_act_on_each_others_templates(api) -> None:
    # Given an operator template, submitted
    template = created(api.as_user("marketer"))
    api.as_user("marketer").post(f"/api/v1/templates/{template['id']}/submit")
    url = f"/api/v1/templates/{template['id']}"
    # When acme's people act on it, Then it does not exist for them, and nothing changes
    acme_reviewer = api.as_user("reviewer", tenant="acme")
    acme_client = api.as_key("api-client", tenant="acme")
    for r in (acme_reviewer.post(f"{url}/approve"),
              acme_reviewer.post(f"{url}/reject", json={"reason": "x"}),
              acme_client.put(url, json={"body": "x"}), acme_client.post(f"{url}/withdraw"),
              acme_client.post(f"{url}/archive")):  # fmt: skip
        assert r.status_code == 404, r.text
    assert api.as_user("marketer").get(url).json()["status"] == "submitted"
    # And acme's own reviewer approves acme's templates, sent under acme's signature
    mine = created(acme_client, code="acme.bill")
    acme_client.post(f"/api/v1/templates/{mine['id']}/submit")
    r = acme_reviewer.post(f"/api/v1/templates/{mine['id']}/approve")
    assert r.status_code == 200 and r.json()["status"] == "approved"


def test_bad_input_names_the_field(api) -> None:
    marketer = api.as_user("marketer")
    cases = [({**BILL, "code": "has space"}, "body.code"),
             ({**BILL, "category": "spam"}, "body.category"),
             ({**BILL, "body": "   "}, "body.body"),
             ({**BILL, "colour": "red"}, "body.colour")]  # fmt: skip
    for body, field in cases:
        r = marketer.post("/api/v1/templates", json=body)
        assert r.status_code == 422, body
        assert r.json()["error"]["fields"][0]["field"] == field
    # A body that does not compile is 422 with the line and the name
    r = marketer.post("/api/v1/templates", json={**BILL, "variables": {"name": "str"}})
    assert r.status_code == 422 and "undeclared variable 'amount'" in r.json()["error"]["message"]
    r = marketer.post("/api/v1/templates", json={**BILL, "body": "{{ name "})
    assert r.status_code == 422 and "line 1" in r.json()["error"]["message"]
    assert marketer.get("/api/v1/templates").json()["total"] == 0


def test_preview_shows_the_text_as_sent_with_parts_and_review(api) -> None:
    acme = api.as_key("api-client", tenant="acme")
    # When acme previews a marketing body with a phone number
    r = acme.post("/api/v1/templates/preview", json={
        "body": "{{ name }}，五一流量包限时优惠，详询13812345678", "variables": {"name": "str"},
        "category": "marketing"})  # fmt: skip
    assert r.status_code == 200, r.text
    shown = r.json()
    # Then the text carries acme's own signature and the unsubscribe route, 〇 for the name
    assert shown["text"] == f"{ENTERPRISE_SIGNATURE}〇，五一流量包限时优惠，详询13812345678 回T退订"
    assert (shown["parts"], shown["encoding"], shown["chars"]) == (1, "ucs2", len(shown["text"]))
    assert shown["units"] + shown["remaining"] == 70 and shown["sample"] is False
    # And the review names the hit with its span in that text
    assert shown["review"]["verdict"] == "needs-review"
    (hit,) = shown["review"]["hits"]
    assert (hit["code"], hit["excerpt"]) == ("phone_number", "13812345678")
    assert shown["text"][hit["span"][0]:hit["span"][1]] == "13812345678"
    # With values it renders them; a long text counts its parts
    r = acme.post("/api/v1/templates/preview", json={
        "body": "{{ name }}" + "，您好" * 60, "variables": {"name": "str"},
        "values": {"name": "李女士"}})  # fmt: skip
    assert r.json()["text"].startswith(f"{ENTERPRISE_SIGNATURE}李女士，您好")
    assert r.json()["parts"] == 3 and r.json()["sample"] is True
    # And a bad body or value is 422 naming it
    r = acme.post("/api/v1/templates/preview", json={"body": "{{ nam }}"})
    assert r.status_code == 422 and "undeclared variable 'nam'" in r.json()["error"]["message"]
    r = acme.post("/api/v1/templates/preview", json={
        "body": "{{ n }}", "variables": {"n": "int"}, "values": {"n": "many"}})  # fmt: skip
    assert r.status_code == 422 and "values" in r.json()["error"]["message"]


def test_preview_is_fast_enough_for_every_keystroke(api) -> None:
    client = api.as_key("api-client", tenant="acme")
    body = "{{ name }}，您本月账单{{ amount }}元，请于月底前缴纳。"
    client.post("/api/v1/templates/preview", json={"body": body})  # builds the reviewer
    started = time.perf_counter()
    for i in range(50):
        r = client.post("/api/v1/templates/preview", json={
            "body": body[: 10 + i % 20] + "x", "variables": {"name": "str", "amount": "float"}})
        assert r.status_code in (200, 422)
    assert (time.perf_counter() - started) / 50 < 0.05  # well under a keystroke's 50 ms


def test_the_operators_reviewer_reviews_an_enterprises_template(api):
    # Given acme's system files a template and submits it
    acme = api.as_key("api-client", tenant="acme")
    made = acme.post("/api/v1/templates", json={
        "code": "otp.shop", "category": "otp", "body": "您的验证码是{{ code }}，5分钟内有效。",
        "variables": {"code": "code"}})  # fmt: skip
    assert made.status_code == 201, made.text
    template_id = made.json()["id"]
    assert acme.post(f"/api/v1/templates/{template_id}/submit").status_code == 200
    # When the operator's reviewer looks for acme's submitted templates and approves it
    reviewer = api.as_user("reviewer")
    waiting = reviewer.get("/api/v1/templates", params={"tenant": "acme", "status": "submitted"})
    assert [t["id"] for t in waiting.json()["items"]] == [template_id]
    assert waiting.json()["items"][0]["tenant_id"] == "acme"
    approved = reviewer.post(f"/api/v1/templates/{template_id}/approve")
    # Then it is approved for acme, and acme can send with it
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    sent = acme.post("/api/v1/send", json={"msisdn": "13812345678", "category": "otp",
                                          "template": "otp.shop", "variables": {"code": "4321"},
                                          "idempotency_key": "first"})  # fmt: skip
    assert sent.status_code == 202 and sent.json()["decision"] == "send"
    # But an enterprise's reviewer sees no other tenant's templates, and the operator's
    # marketer (no review right) none of acme's
    assert api.as_user("reviewer", tenant="acme").get(
        "/api/v1/templates", params={"tenant": "operator"}).status_code == 404
    assert api.as_user("marketer").get(f"/api/v1/templates/{template_id}").status_code == 404
