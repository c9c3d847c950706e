"""Callbacks against a real HTTP server on 127.0.0.1: collect (idempotent, per tenant,
attributed MO only), push (signed, delivered once, retried on 5xx and timeouts, dead after
the last attempt, re-queued), two pumps at once, a crash between POST and commit, and the
``jingxin callbacks`` commands. The queue tests run on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
import json
import shutil
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from jingxin.callbacks import Pump, collect, requeue, set_endpoint, verify
from jingxin.callbacks.queue import claim
from jingxin.cli.callbacks import callbacks_app
from jingxin.config import ApiSettings
from jingxin.data.store import Store, open_store
from jingxin.data.store.models import (
    LANES,
    CallbackDelivery,
    EventMark,
    Message,
    MessagePart,
    MoMessage,
    MoOutcome,
    Receipt,
    utc_now,
)
from jingxin.data.store.tenants import create_tenant, ensure_default_tenant
from jingxin.dispatch.receipts import apply_receipts
from jingxin.domain.sms import DeliveryReceipt, ReceiptStatus
from jingxin.errors import InputError

NUMBER = "+8613912345678"
_keys = itertools.count(1)
FAST = ApiSettings(callback_timeout_seconds=0.25, callback_backoff_seconds=0.01,
                   callback_backoff_max_seconds=0.02, callback_max_attempts=3)  # fmt: skip


# ----------------------------------------------------------------------------- a receiver


class Receiver:
    """An HTTP server in a thread that records every POST and answers from a plan:
    ``(status, seconds to wait first)`` per request, then ``default``."""

    def __init__(self, default: int = 200) -> None:
        self.default = default
        self.plan: deque[tuple[int, float]] = deque()
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.requests.append((dict(self.headers), body))
                    status, wait = receiver.plan.popleft() if receiver.plan else (receiver.default, 0.0)
                time.sleep(wait)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the client gave up waiting

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)  # fmt: skip

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def ids(self) -> Counter[str]:
        with self.lock:
            return Counter(headers["X-Jingxin-Delivery"] for headers, _ in self.requests)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    made.thread.start()
    yield made
    made.server.shutdown()
    made.server.server_close()


# ----------------------------------------------------------------------------- a store


def _tenants(store: Store) -> None:
    with store.transaction() as session:
        ensure_default_tenant(session)
        for tenant in ("acme", "other", "quiet"):
            create_tenant(session, tenant_id=tenant, name=tenant, signature=f"【{tenant}】")


@pytest.fixture
def store(tmp_path, migrated_templates) -> Iterator[Store]:
    path = tmp_path / "jingxin.db"
    shutil.copyfile(migrated_templates["sqlite"], path)
    opened = open_store(f"sqlite:///{path}")
    _tenants(opened)
    yield opened
    opened.dispose()


@pytest.fixture
def any_store(store_url) -> Iterator[Store]:
    """The same test on SQLite and PostgreSQL."""
    opened = open_store(store_url)
    _tenants(opened)
    yield opened
    opened.dispose()


def add_message(store: Store, tenant: str, *, key: str | None = None, parts: int = 1,
                msisdn: str = NUMBER, sender: str = "10690001") -> int:  # fmt: skip
    now = utc_now()
    with store.transaction() as session:
        message = Message(tenant_id=tenant, msisdn=msisdn, category="notification",
                          lane=LANES["notification"], text="hello", parts=parts,
                          idempotency_key=key or f"test:{next(_keys)}", state="submitted",
                          submitted_at=now - timedelta(minutes=5), sender=sender,
                          source="api")  # fmt: skip
        session.add(message)
        session.flush()
        for part in range(1, parts + 1):
            session.add(MessagePart(message_id=message.id, part_no=part, channel="sim",
                                    smsc_id=f"s{message.id}-{part}",
                                    submitted_at=now - timedelta(minutes=5)))  # fmt: skip
        return message.id


def add_receipt(store: Store, message_id: int, part: int = 1, status: str = "DELIVRD",
                error_code: str | None = None) -> int:  # fmt: skip
    with store.transaction() as session:
        receipt = Receipt(message_id=message_id, smsc_message_id=f"s{message_id}-{part}",
                          status=status, error_code=error_code, received_at=utc_now())  # fmt: skip
        session.add(receipt)
        session.flush()
        return receipt.id


def add_mo(store: Store, *, message_id: int | None, tenant: str = "operator",
           text: str = "好的") -> int:  # fmt: skip
    with store.transaction() as session:
        mo = MoMessage(channel="sim", msisdn=NUMBER, service_number="106900011", text=text,
                       coding=8, parts=1, parts_expected=1, complete=True, undecodable=False,
                       received_at=utc_now(), dedup_key=f"mo:{next(_keys)}")  # fmt: skip
        session.add(mo)
        session.flush()
        session.add(MoOutcome(mo_id=mo.id, outcome="no_handler", tenant_id=tenant,
                              message_id=message_id))  # fmt: skip
        return mo.id


def endpoint(store: Store, tenant: str, url: str, kinds=("receipt", "mo")) -> str:
    with store.transaction() as session:
        made = set_endpoint(session, tenant_id=tenant, url=url, kinds=kinds)
    assert made.secret is not None
    return made.secret


def deliveries(store: Store) -> list[CallbackDelivery]:
    with store.transaction() as session:
        return list(session.scalars(select(CallbackDelivery).order_by(CallbackDelivery.id)))


def one_delivery(store: Store, receiver: Receiver, tenant: str = "acme") -> tuple[str, int]:
    secret = endpoint(store, tenant, receiver.url)
    add_receipt(store, add_message(store, tenant, key=f"api:{tenant}:order-1"))
    assert collect(store) == {"receipt": 1}
    return secret, deliveries(store)[0].id


# ----------------------------------------------------------------------------- collect


def test_collect_enqueues_each_event_once_for_the_tenants_that_want_it(any_store):
    store = any_store
    # Given: acme takes receipts and MO, other only MO, quiet has no endpoint
    endpoint(store, "acme", "https://acme.example/hook")
    endpoint(store, "other", "https://other.example/hook", kinds=("mo",))
    acme = add_message(store, "acme", key="api:acme:order-1", parts=2)
    other = add_message(store, "other", key="campaign:9:x")
    quiet = add_message(store, "quiet")
    first = add_receipt(store, acme, part=2, status="UNDELIV", error_code="013")
    add_receipt(store, other)
    add_receipt(store, quiet)
    answered = add_mo(store, message_id=acme, tenant="acme")
    add_mo(store, message_id=None)  # unattributed: nobody's callback
    add_mo(store, message_id=other, tenant="other")
    # When collected twice (a crash and a rerun, or two collectors)
    counts = collect(store)
    again = collect(store)
    # Then each wanted event is queued once, with its payload
    assert counts == {"receipt": 1, "mo": 2} and not again
    rows = {row.event_key: row for row in deliveries(store)}
    assert sorted(rows) == sorted([f"receipt:{first}", f"mo:{answered}", f"mo:{answered + 2}"])
    receipt = rows[f"receipt:{first}"]
    assert receipt.tenant_id == "acme" and receipt.state == "pending"
    assert receipt.payload | {"submitted_at": None, "done_at": None} == {
        "receipt_id": first, "message_id": acme, "idempotency_key": "order-1",
        "msisdn": NUMBER, "status": "undeliverable", "smsc_status": "UNDELIV",
        "error_code": "013", "part": 2, "parts": 2, "submitted_at": None, "done_at": None}
    mo = rows[f"mo:{answered}"].payload
    assert mo["in_reply_to"] == acme and mo["in_reply_to_idempotency_key"] == "order-1"
    assert mo["text"] == "好的" and mo["service_number"] == "106900011"
    assert rows[f"mo:{answered + 2}"].tenant_id == "other"
    # And once the rows are settled the mark moves past them
    collect(store, now=utc_now() + timedelta(hours=1))
    with store.transaction() as session:
        marks = dict(session.execute(select(EventMark.name, EventMark.last_id)).all())
    assert marks["callbacks:receipts"] >= first and marks["callbacks:mo"] >= 3


def test_a_receipt_the_dispatcher_applied_is_queued_for_its_part(store):
    endpoint(store, "acme", "https://acme.example/hook", kinds=("receipt",))
    message = add_message(store, "acme", key="api:acme:otp-7", parts=2)
    with store.transaction() as session:
        apply_receipts(session.connection(), now=utc_now(), receipts=[
            ("sim", DeliveryReceipt(f"s{message}-1", ReceiptStatus.DELIVERED)),
            ("sim", DeliveryReceipt(f"s{message}-2", ReceiptStatus.ENROUTE)),
            ("sim", DeliveryReceipt(f"s{message}-1", ReceiptStatus.DELIVERED)),  # repeated
        ])  # fmt: skip
    assert collect(store) == {"receipt": 2}
    sent = sorted((row.payload["part"], row.payload["status"], row.payload["idempotency_key"])
                  for row in deliveries(store))  # fmt: skip
    assert sent == [(1, "delivered", "otp-7"), (2, "enroute", "otp-7")]


# ----------------------------------------------------------------------------- push


def test_a_200_delivers_once_signed_and_never_again(store, receiver):
    secret, delivery = one_delivery(store, receiver)
    with Pump(store=store, api=FAST) as pump:
        first = pump.push()
        second = pump.push()
    assert first.states == {"delivered": 1} and second.claimed == 0
    assert receiver.ids() == {str(delivery): 1}
    headers, body = receiver.requests[0]
    assert headers["X-Jingxin-Event"] == "receipt"
    assert verify(secret, headers["X-Jingxin-Signature"], body)
    assert not verify(secret, headers["X-Jingxin-Signature"], body + b" ")
    assert not verify("whsec_wrong", headers["X-Jingxin-Signature"], body)
    sent = json.loads(body)
    assert sent["id"] == delivery and sent["event"] == "receipt"
    assert sent["data"]["idempotency_key"] == "order-1"
    row = deliveries(store)[0]
    assert (row.state, row.attempts, row.last_status) == ("delivered", 1, 200)
    assert row.delivered_at is not None


def test_a_500_is_retried_after_the_backoff_and_delivered_once(store, receiver):
    _, delivery = one_delivery(store, receiver)
    receiver.plan.append((500, 0.0))
    with Pump(store=store, api=FAST) as pump:
        assert pump.push().states == {"pending": 1}
        row = deliveries(store)[0]
        assert (row.attempts, row.last_status, row.last_error) == (1, 500, "HTTP 500")
        time.sleep(0.03)  # past the back-off (at most 0.02 s here)
        assert pump.push().states == {"delivered": 1}
        assert pump.push().claimed == 0
    assert receiver.ids() == {str(delivery): 2}  # two POSTs, acknowledged once
    assert deliveries(store)[0].state == "delivered"


def test_an_endpoint_slower_than_the_timeout_is_retried(store, receiver):
    _, delivery = one_delivery(store, receiver)
    receiver.plan.append((200, 0.6))  # answers after the 0.25 s timeout
    with Pump(store=store, api=FAST) as pump:
        assert pump.push().states == {"pending": 1}
        row = deliveries(store)[0]
        assert row.attempts == 1 and row.last_status is None
        assert "no answer within 0.25 s" in row.last_error
        time.sleep(0.03)
        assert pump.push().states == {"delivered": 1}
    assert receiver.ids() == {str(delivery): 2}


def test_dead_after_the_last_attempt_then_requeued(store, receiver):
    _, delivery = one_delivery(store, receiver)
    receiver.default = 503
    with Pump(store=store, api=FAST) as pump:
        for _ in range(FAST.callback_max_attempts):
            pump.push()
            time.sleep(0.03)
        row = deliveries(store)[0]
        assert (row.state, row.attempts, row.last_status) == ("dead", 3, 503)
        assert pump.push().claimed == 0  # dead rows are not sent
        receiver.default = 200
        with store.transaction() as session:
            assert requeue(session, tenant_id="other", dead=True) == 0  # not its row
            assert requeue(session, tenant_id="acme", dead=True) == 1
        assert pump.push().states == {"delivered": 1}
    assert receiver.ids() == {str(delivery): 4}


def test_an_unreachable_endpoint_holds_its_own_lane_only(store, receiver):
    # Given acme's URL refuses connections and other's answers
    endpoint(store, "acme", "http://127.0.0.1:9/nothing-listens-here")
    endpoint(store, "other", receiver.url)
    for tenant in ("acme", "acme", "other"):
        add_receipt(store, add_message(store, tenant))
    collect(store)
    # When one pass runs
    with Pump(store=store, api=FAST) as pump:
        report = pump.push()
    # Then other's is delivered; acme's first failed and its second waits, uncounted
    assert report.states == {"delivered": 1, "pending": 1} and report.deferred == 1
    rows = {(row.tenant_id, row.attempts, row.state) for row in deliveries(store)}
    assert rows == {("other", 1, "delivered"), ("acme", 1, "pending"), ("acme", 0, "pending")}
    failed = next(row for row in deliveries(store) if row.attempts == 1 and row.tenant_id == "acme")
    assert "ConnectError" in failed.last_error


def test_two_pumps_at_once_post_each_delivery_exactly_once(any_store, receiver):
    store = any_store
    endpoint(store, "acme", receiver.url)
    endpoint(store, "other", receiver.url)
    for index in range(30):
        add_receipt(store, add_message(store, "acme" if index % 3 else "other"))
    assert collect(store) == {"receipt": 30}
    api = FAST.model_copy(update={"callback_batch": 4})
    pumps = [Pump(store=store, api=api, workers=2) for _ in range(2)]

    def drain(pump: Pump) -> None:
        while pump.push().claimed:
            pass

    threads = [threading.Thread(target=drain, args=(pump,)) for pump in pumps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    for pump in pumps:
        pump.close()
    ids = receiver.ids()
    assert len(ids) == 30 and set(ids.values()) == {1}
    assert {row.state for row in deliveries(store)} == {"delivered"}


def test_a_crash_after_the_claim_sends_again_once_the_lease_ends(store, receiver):
    # Given a pump that claimed a delivery and died before recording anything
    _, delivery = one_delivery(store, receiver)
    now = utc_now()
    with Pump(store=store, api=FAST) as probe:
        lease = probe.lease
    assert [due.id for due in claim(store, now=now, limit=10, lease=lease)] == [delivery]
    # When another pump runs within the lease, and after it
    within = Pump(store=store, api=FAST, clock=lambda: now + lease - timedelta(seconds=1))
    after = Pump(store=store, api=FAST, clock=lambda: now + lease + timedelta(seconds=1))
    with within, after:
        assert within.push().claimed == 0
        assert after.push().states == {"delivered": 1}
    # Then it is sent (at least once), with its delivery id for the receiver to dedupe
    assert receiver.ids() == {str(delivery): 1}


# ----------------------------------------------------------------------------- CLI


def test_the_commands_set_list_run_and_retry(tmp_path, monkeypatch, migrated_templates, receiver):
    path = tmp_path / "jingxin.db"
    shutil.copyfile(migrated_templates["sqlite"], path)
    monkeypatch.setenv("JINGXIN_STORE__URL", f"sqlite:///{path}")
    monkeypatch.setenv("JINGXIN_API__CALLBACK_BACKOFF_SECONDS", "0.01")
    monkeypatch.setenv("JINGXIN_API__CALLBACK_BACKOFF_MAX_SECONDS", "0.02")
    monkeypatch.setenv("JINGXIN_API__CALLBACK_MAX_ATTEMPTS", "1")
    monkeypatch.chdir(tmp_path)
    store = open_store(f"sqlite:///{path}")
    _tenants(store)
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(callbacks_app, list(args), catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result.output

    try:
        made = run("set", "acme", receiver.url, "--kinds", "receipt")
        assert "secret (shown once): whsec_" in made
        assert "keeps its secret" in run("set", "acme", receiver.url, "--kinds", "receipt,mo")
        listed = run("list")
        assert "acme" in listed and receiver.url in listed and "whsec_" not in listed
        add_receipt(store, add_message(store, "acme"))
        receiver.default = 500
        assert "1 collected; 1 dead" in run("run", "--once")
        assert "dead" in run("deliveries", "--tenant", "acme", "--state", "dead")
        receiver.default = 200
        assert "1 re-queued" in run("retry", "--dead")
        assert "0 collected; 1 delivered" in run("run", "--once")
        assert receiver.ids() == {str(deliveries(store)[0].id): 2}
        with pytest.raises(InputError, match="url: use an http"):
            run("set", "acme", "ftp://acme.example/")
    finally:
        store.dispose()
