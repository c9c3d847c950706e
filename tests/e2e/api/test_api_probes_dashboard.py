"""Dial tests over the API (the operator's only: configured probes with their last result,
history, a run through a simulator - or 503 when none answers) and the dashboard (a
tenant's day, the channels' health from the worker's metrics, its queue)."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from test_api_inbox import seed, today_base

from jingxin.config import ProbeSettings, ProbingSettings
from jingxin.data.store.models import LinkClick, ProbeRun
from jingxin.dispatch.metrics import DispatchMetrics

PROBES = [ProbeSettings(name="balance", msisdn="+8613900000001", text="YE", expect=r"余额\d+元"),
          ProbeSettings(name="usage", msisdn="+8613900000002", text="LL", expect="流量")]


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[int]:
    """``handler`` on a loopback port in a thread; yields the port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


class BalanceOnlySimulator(BaseHTTPRequestHandler):
    """The simulator's MO/MT endpoint with a hall that answers YE with a balance and
    nothing else (so the usage probe gets no reply)."""

    sent: ClassVar[list[dict]] = []

    def _json(self, answer: dict) -> None:
        body = json.dumps(answer, ensure_ascii=False).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/status":
            return self._json({"ok": True})
        to = urllib.parse.parse_qs(url.query)["to"][0]
        replies = [{"seq": n + 1, "from": "10086", "text": "您的余额12元。"}
                   for n, mo in enumerate(self.sent) if mo["from"] == to and mo["text"] == "YE"]
        return self._json({"messages": replies})

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        self.sent.append(json.loads(self.rfile.read(length)))
        self._json({"cursor": len(self.sent) - 1})

    def log_message(self, *args: object) -> None:
        pass


def configure(api, **update) -> None:
    settings = api.settings.model_copy(update=update)
    api.client.app.state.settings = api.settings = settings


def add_run(api, probe: str, *, ok: bool, minutes_ago: int, reason: str | None = None) -> None:
    with api.store.transaction() as session:
        session.add(ProbeRun(run_id=f"probe-{probe}-{minutes_ago}", probe=probe,
                             msisdn="+8613900000001", service_number="10086", sent_text="YE",
                             expect="余额", max_latency_ms=5000, ok=ok, reason=reason,
                             reply_text="您的余额12元。" if ok else None,
                             latency_ms=120.0 if ok else None,
                             started_at=today_base() - timedelta(minutes=minutes_ago)))


# ----------------------------------------------------------------------------- probes


def test_probes_are_listed_with_their_last_result_and_history(api):
    configure(api, probes=PROBES)
    add_run(api, "balance", ok=False, minutes_ago=10, reason="no reply within 10 s")
    add_run(api, "balance", ok=True, minutes_ago=5)
    r = api.as_user("analyst").get("/api/v1/probes")
    assert r.status_code == 200, r.text
    balance, usage = r.json()["items"]
    assert (balance["name"], balance["msisdn"], balance["expect"]) == (
        "balance", "+861390000****", r"余额\d+元")
    assert balance["last"]["ok"] is True and balance["last"]["latency_ms"] == 120.0
    assert usage["last"] is None
    r = api.as_user("analyst").get("/api/v1/probes/history", params={"since": "1d"})
    assert r.status_code == 200, r.text
    (stats,) = r.json()["probes"]
    assert (stats["runs"], stats["passed"], stats["last_ok"]) == (2, 1, True)
    assert stats["last_failure_reason"] == "no reply within 10 s"
    assert [run["ok"] for run in r.json()["recent"]] == [True, False]
    r = api.as_user("analyst").get("/api/v1/probes/history",
                                   params={"name": "usage", "limit": 1})
    assert r.json()["probes"] == [] and r.json()["recent"] == []
    assert api.as_user("analyst").get("/api/v1/probes/history",
                                      params={"since": "last week"}).status_code == 422


def test_probes_are_the_operators_only_and_need_their_permissions(api):
    configure(api, probes=PROBES)
    for path in ("/api/v1/probes", "/api/v1/probes/history"):
        assert api.as_key("admin").get(path).status_code == 404  # an enterprise
        assert api.as_key("api-client", tenant="operator").get(path).status_code == 403
    assert api.as_key("admin").post("/api/v1/probes/run").status_code == 404
    assert api.as_user("analyst").post("/api/v1/probes/run").status_code == 403


def test_a_run_without_a_simulator_is_503_and_records_nothing(api):
    with serving(BalanceOnlySimulator) as port:
        pass  # a port that was just closed: nothing answers there
    configure(api, probes=PROBES, probing=ProbingSettings(smsc_url=f"http://127.0.0.1:{port}"))
    r = api.as_user("marketer").post("/api/v1/probes/run")
    assert r.status_code == 503, r.text
    assert "not reachable" in r.json()["error"]["message"]
    assert "jingxin smsc" in r.json()["error"]["message"]
    with api.store.transaction() as session:
        assert session.query(ProbeRun).count() == 0


def test_a_run_sends_each_probe_judges_the_reply_and_records_it(api):
    BalanceOnlySimulator.sent = []
    with serving(BalanceOnlySimulator) as port:
        configure(api, probes=PROBES, probing=ProbingSettings(
            smsc_url=f"http://127.0.0.1:{port}", timeout_seconds=0.3))
        r = api.as_user("marketer").post("/api/v1/probes/run")
        assert r.status_code == 200, r.text
        # an unknown probe name is 422, naming it
        bad = api.as_user("marketer").post("/api/v1/probes/run", json={"probes": ["nope"]})
        assert bad.status_code == 422 and "nope" in bad.json()["error"]["message"]
    report = r.json()
    assert report["ok"] is False
    balance, usage = report["results"]
    assert (balance["probe"], balance["ok"], balance["reply"]) == ("balance", True, "您的余额12元。")
    assert (usage["ok"], usage["reason"]) == (False, "no reply within 0.3 s")
    assert sorted(mo["text"] for mo in BalanceOnlySimulator.sent) == ["LL", "YE"]  # in parallel
    listed = api.as_user("analyst").get("/api/v1/probes").json()["items"]
    assert [p["last"]["run_id"] for p in listed] == [report["run_id"]] * 2


# ----------------------------------------------------------------------------- dashboard


def test_the_dashboard_shows_the_callers_tenant_only(api):
    s = seed(api.store)
    with api.store.transaction() as session:
        session.add_all([LinkClick(token="t1", message_id=s.campaign_message, at=today_base()),
                         LinkClick(token="t1", message_id=s.campaign_message, at=today_base(),
                                   bot=True)])  # fmt: skip
    r = api.as_key("analyst").get("/api/v1/dashboard")
    assert r.status_code == 200, r.text
    acme = r.json()
    assert acme["today"]["timezone"] == "Asia/Shanghai"
    assert {k: acme["today"][k] for k in ("sent", "delivered", "failed", "clicks", "replies")} == {
        "sent": 3, "delivered": 2, "failed": 0, "clicks": 1, "replies": 1}
    assert acme["queues"] == [{"lane": "otp", "depth": 0}, {"lane": "reply", "depth": 0},
                              {"lane": "notification", "depth": 1},
                              {"lane": "marketing", "depth": 0}]  # fmt: skip
    operator = api.as_user("analyst").get("/api/v1/dashboard").json()
    assert {k: operator["today"][k] for k in ("sent", "delivered", "failed", "clicks",
                                              "replies")} == {
        "sent": 2, "delivered": 0, "failed": 1, "clicks": 0, "replies": 2}  # fmt: skip
    assert all(q["depth"] == 0 for q in operator["queues"])
    assert api.as_key("api-client").get("/api/v1/dashboard").status_code == 403


class WorkerMetrics(BaseHTTPRequestHandler):
    """A worker's Prometheus endpoint: sim-smpp bound (3 submits), sim-cmpp not."""

    def do_GET(self) -> None:
        metrics = DispatchMetrics()
        metrics.bound.labels("sim-smpp").set(1)
        metrics.bound.labels("sim-cmpp").set(0)
        metrics.submits.labels("sim-smpp", "ok").inc(3)
        body = metrics.render()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("worker", [True, False])
def test_channels_health_comes_from_the_workers_metrics(api, worker):
    with serving(WorkerMetrics) as port:
        configure(api, dispatch=api.settings.dispatch.model_copy(update={"metrics_port": port}))
        if worker:
            channels = api.as_user("analyst").get("/api/v1/dashboard").json()["channels"]
            assert [(c["name"], c["healthy"], c["health"]) for c in channels] == [
                ("sim-smpp", True, "bound"), ("sim-cmpp", False, "not bound")]
            assert (channels[0]["host"], channels[0]["port"]) == ("127.0.0.1", 2775)
            assert channels[0]["submits"] == {"ok": 3.0}
            # an enterprise sees the health, not where the SMSC is
            acme = api.as_key("analyst").get("/api/v1/dashboard").json()["channels"]
            assert (acme[0]["healthy"], acme[0]["host"], acme[0]["port"]) == (True, None, None)
    if not worker:  # the port is closed now: nothing answers there
        channels = api.as_user("analyst").get("/api/v1/dashboard").json()["channels"]
        assert channels[0]["healthy"] is None and "did not answer" in channels[0]["health"]
        configure(api, dispatch=api.settings.dispatch.model_copy(update={"metrics_port": None}))
        channels = api.as_key("analyst").get("/api/v1/dashboard").json()["channels"]
        assert (channels[0]["healthy"], channels[0]["health"]) == (None, "unknown")
