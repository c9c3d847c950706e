"""/api/v1/callbacks: the endpoint set, shown and removed (secret answered once), URLs
checked, a signed test POST to a real server on 127.0.0.1, the deliveries list and its
re-queue - each tenant seeing only its own, each role only what it may."""

from __future__ import annotations

import json
import threading
import warnings
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from jingxin.api import create_app
from jingxin.callbacks import verify
from jingxin.config import AnalyticsSettings, ServeSettings
from jingxin.data.store.models import AuditEntry, CallbackDelivery

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient

NUMBER = "+8613912345678"


class Receiver:
    """Answers every POST with ``status`` and keeps (headers, body)."""

    def __init__(self) -> None:
        self.status = 200
        self.requests: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append((dict(self.headers), body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    thread = threading.Thread(target=made.server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield made
    made.server.shutdown()
    made.server.server_close()


def add_delivery(api, tenant: str, key: str, *, state: str = "pending") -> int:
    with api.store.transaction() as session:
        row = CallbackDelivery(tenant_id=tenant, kind="mo", event_key=key, state=state,
                               attempts=3 if state == "dead" else 0,
                               payload={"mo_id": 1, "msisdn": NUMBER, "text": f"call {NUMBER}"})
        session.add(row)
        session.flush()
        return row.id


def test_the_secret_is_answered_once_and_kept_until_rotated(api):
    client = api.as_key("api-client")
    # Given no endpoint yet
    assert client.get("/api/v1/callbacks").status_code == 404
    # When one is set: 201 with the secret
    made = client.put("/api/v1/callbacks", json={"url": "https://acme.example/hook"})
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["created"] and body["secret"].startswith("whsec_")
    assert body["kinds"] == ["receipt", "mo"] and body["enabled"]
    # Then reading it never shows the secret
    shown = client.get("/api/v1/callbacks").json()
    assert "secret" not in shown and shown["url"] == "https://acme.example/hook"
    assert shown["deliveries"] == {"pending": 0, "delivered": 0, "dead": 0}
    # An update keeps the secret and says so; rotate makes a new one
    changed = client.put("/api/v1/callbacks", json={"url": "https://acme.example/v2",
                                                    "kinds": ["mo"], "enabled": False})
    assert changed.status_code == 200 and changed.json()["secret"] is None
    assert changed.json()["kinds"] == ["mo"] and not changed.json()["enabled"]
    rotated = client.put("/api/v1/callbacks?rotate=true", json={"url": "https://acme.example/v2"})
    assert rotated.json()["secret"] not in (None, body["secret"])
    # Removed: 204, then 404
    assert client.delete("/api/v1/callbacks").status_code == 204
    assert client.get("/api/v1/callbacks").status_code == 404
    assert client.delete("/api/v1/callbacks").status_code == 404
    with api.store.transaction() as session:
        actions = [(a.action, a.tenant_id) for a in session.scalars(
            select(AuditEntry).where(AuditEntry.object_type == "callback_endpoint")
            .order_by(AuditEntry.id))]  # fmt: skip
        details = " ".join(json.dumps(a.detail) for a in session.scalars(select(AuditEntry)))
    assert actions == [("callbacks.set", "acme")] * 3 + [("callbacks.delete", "acme")]
    assert "whsec_" not in details


@pytest.mark.parametrize(("body", "field", "words"), [
    ({"url": "ftp://acme.example/"}, "url", "http:// or https://"),
    ({"url": "https://"}, "url", "no host"),
    ({"url": "https://user:pw@acme.example/"}, "url", "no user or password"),
    ({"url": "https://acme.example/", "kinds": []}, "body.kinds", "at least 1"),
    ({"url": "https://acme.example/", "kinds": ["sms"]}, "body.kinds.0", "'receipt' or 'mo'"),
    ({"url": "https://acme.example/", "secret": "mine"}, "body.secret", "Extra inputs"),
    ({"kinds": ["mo"]}, "body.url", "Field required"),
])  # fmt: skip
def test_bad_endpoints_are_refused_naming_the_field(api, body, field, words):
    answer = api.as_key("api-client").put("/api/v1/callbacks", json=body)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert field in error["message"] or field in json.dumps(error.get("fields", []))
    assert words in error["message"]
    assert api.as_key("api-client").get("/api/v1/callbacks").status_code == 404


def test_production_takes_only_public_https_urls(api):
    settings = api.settings.model_copy(update={
        "serve": ServeSettings(environment="production"),
        "analytics": AnalyticsSettings(link_secret="a-production-secret")})  # fmt: skip
    key = TestClient(create_app(settings, store=api.store))
    key.headers["Authorization"] = f"Bearer {api.keys[('acme', 'api-client')]}"
    for url, words in [("http://acme.example/", "must use https"),
                       ("https://127.0.0.1/", "local or private"),
                       ("https://10.1.2.3:8443/", "local or private"),
                       ("https://localhost/", "local or private")]:  # fmt: skip
        answer = key.put("/api/v1/callbacks", json={"url": url})
        assert answer.status_code == 422 and words in answer.json()["error"]["message"]
    assert key.put("/api/v1/callbacks", json={"url": "https://acme.example/"}).status_code == 201


def test_roles_read_with_messages_read_and_change_with_callbacks_manage(api):
    assert api.as_key("api-client").put("/api/v1/callbacks", json={
        "url": "https://acme.example/hook"}).status_code == 201
    analyst = api.as_key("analyst")  # messages.read, not callbacks.manage
    assert analyst.get("/api/v1/callbacks").status_code == 200
    assert analyst.get("/api/v1/callbacks/deliveries").status_code == 200
    for method, path in [("put", "/api/v1/callbacks"), ("delete", "/api/v1/callbacks"),
                         ("post", "/api/v1/callbacks/test"), ("post", "/api/v1/callbacks/retry")]:
        kwargs = {"json": {"url": "https://evil.example/"} if method == "put" else {}}
        if method == "delete":
            kwargs = {}
        answer = getattr(analyst, method)(path, **kwargs)
        assert answer.status_code == 403, (method, path, answer.text)
        assert "callbacks.manage" in answer.json()["error"]["message"]
    # A console admin may (CSRF header set by as_user)
    assert api.as_user("admin", tenant="acme").put("/api/v1/callbacks", json={
        "url": "https://acme.example/v2"}).status_code == 200
    assert api.client.get("/api/v1/callbacks").status_code == 401


def test_each_tenant_sees_only_its_own_endpoint_and_deliveries(api):
    acme, operator = api.as_key("api-client"), api.as_key("api-client", tenant="operator")
    acme.put("/api/v1/callbacks", json={"url": "https://acme.example/hook"})
    mine = add_delivery(api, "acme", "mo:1")
    add_delivery(api, "operator", "mo:2")
    dead = add_delivery(api, "acme", "mo:3", state="dead")
    # The operator has no endpoint of its own, whatever acme set
    assert operator.get("/api/v1/callbacks").status_code == 404
    assert operator.post("/api/v1/callbacks/test").status_code == 404
    assert operator.delete("/api/v1/callbacks").status_code == 404
    listed = acme.get("/api/v1/callbacks/deliveries").json()
    assert listed["total"] == 2 and {d["id"] for d in listed["items"]} == {mine, dead}
    assert [d["event_key"] for d in operator.get("/api/v1/callbacks/deliveries").json()["items"]] == ["mo:2"]
    assert acme.get("/api/v1/callbacks").json()["deliveries"] == {
        "pending": 1, "delivered": 0, "dead": 1}
    # Filtered by state; a state that does not exist is a 422
    only = acme.get("/api/v1/callbacks/deliveries?state=dead").json()
    assert [d["id"] for d in only["items"]] == [dead] and only["items"][0]["next_attempt_at"] is None
    assert acme.get("/api/v1/callbacks/deliveries?state=lost").status_code == 422
    # Re-queue touches the caller's dead rows only
    assert operator.post("/api/v1/callbacks/retry", json={"dead": True}).json() == {"requeued": 0}
    assert acme.post("/api/v1/callbacks/retry", json={"dead": True}).json() == {"requeued": 1}
    assert acme.get("/api/v1/callbacks/deliveries?state=dead").json()["total"] == 0


def test_numbers_in_deliveries_are_masked_without_numbers_view(api):
    add_delivery(api, "acme", "mo:1")
    whole = api.as_key("api-client").get("/api/v1/callbacks/deliveries").json()["items"][0]
    masked = api.as_key("analyst").get("/api/v1/callbacks/deliveries").json()["items"][0]
    assert whole["payload"]["msisdn"] == NUMBER and NUMBER in whole["payload"]["text"]
    assert masked["payload"]["msisdn"] == "+861391234****"
    assert NUMBER not in masked["payload"]["text"]


def test_the_test_post_is_signed_and_reports_what_the_endpoint_said(api, receiver):
    client = api.as_key("api-client")
    secret = client.put("/api/v1/callbacks", json={"url": receiver.url}).json()["secret"]
    answer = client.post("/api/v1/callbacks/test")
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["ok"] and result["status"] == 200 and result["error"] is None
    headers, body = receiver.requests[-1]
    assert headers["X-Jingxin-Event"] == "test"
    assert headers["X-Jingxin-Delivery"] == result["delivery_id"]
    assert verify(secret, headers["X-Jingxin-Signature"], body)
    assert json.loads(body)["data"]["tenant_id"] == "acme"
    receiver.status = 500
    failed = client.post("/api/v1/callbacks/test").json()
    assert not failed["ok"] and failed["status"] == 500 and failed["error"] == "HTTP 500"
    # Nothing of it is queued
    assert client.get("/api/v1/callbacks/deliveries").json()["total"] == 0
