"""``jingxin bench send-api``: ``POST /api/v1/send`` under load, end to end over loopback.

A scratch store (SQLite in a temporary folder, or ``--store-url`` an empty PostgreSQL
database) gets a tenant ``bench`` with its signature, an approved OTP template and an API
key (rate far above the load: the limiter is on the path but never says no). ``jingxin
serve`` runs in a subprocess on a free loopback port (one uvicorn process, as in
production; :func:`jingxin.bench.clicks.start_server`); the load comes from another
process (``python -m jingxin.bench.send_api load ...``): an asyncio HTTP/1.1 client on C
keep-alive connections, each sending its next request when the answer to the last one
arrived, until N requests were answered. Every request is a new message (its own key, its
own number), a verification code in the OTP lane.

Reported per run: requests/s, p50/p95/p99 latency (client side, send to last byte; a
warm-up of the first requests not counted), the answers by status, the decisions, server
CPU per request - and, after the server stopped, the messages of the run in the outbox,
which must equal the requests answered 202 with a ``send``/``defer`` decision. Baseline in
the same run: the same number of messages through ``deliver_one`` called directly, one
after another in one process (no HTTP, no batching). Goal: >= 1,000 req/s with
p99 <= 50 ms (issue #17).

The JSON line is appended to ``benchmarks/results/send-api.jsonl`` (``--no-record``: don't).
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import typer

Serve = Callable[[str, Path], AbstractContextManager[tuple[int, "int | None"]]]

GOAL = ">= 1,000 req/s, p99 <= 50 ms"
TENANT = "bench"
TEMPLATE = "bench.verify"
WARMUP_SHARE = 0.05  # the first requests of a run warm the caches: not timed


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def run_send_api(*, requests: int, concurrency: int, store_url: str | None, runs: int = 1,
                 baseline: bool = True, serve: Serve | None = None) -> dict[str, Any]:  # fmt: skip
    """``runs`` loads (each on a fresh server), the deliver_one baseline; the figures.
    ``serve(url, folder)`` runs the server around a load (default :func:`serve_process`)."""
    done = [one_run(requests=requests, concurrency=concurrency, store_url=store_url, run=r,
                    serve=serve or serve_process) for r in range(runs)]  # fmt: skip
    best = sorted(done, key=lambda f: f["req_per_s"])[len(done) // 2]  # the median run
    figures: dict[str, Any] = {
        "dialect": best["dialect"], "requests": requests, "concurrency": concurrency,
        "runs": runs, "req_per_s": best["req_per_s"], "p50_ms": best["p50_ms"],
        "p95_ms": best["p95_ms"], "p99_ms": best["p99_ms"], "max_ms": best["max_ms"],
        "req_per_s_runs": [f["req_per_s"] for f in done],
        "p99_ms_runs": [f["p99_ms"] for f in done],
        "statuses": best["statuses"], "decisions": best["decisions"],
        "server_cpu_us_per_request": best["server_cpu_us_per_request"],
        "client_cpu_us_per_request": best["client_cpu_us_per_request"],
        "accepted": best["accepted"], "in_outbox": best["in_outbox"],
        "outbox_matches": all(f["in_outbox"] == f["accepted"] for f in done),
        "errors": sum(f["errors"] for f in done),
        "goal": GOAL,
        "goal_met": best["req_per_s"] >= 1000 and (best["p99_ms"] or 1e9) <= 50,
    }  # fmt: skip
    if baseline:
        figures["baseline_deliver_one"] = deliver_one_baseline(requests, store_url=store_url)
        base = figures["baseline_deliver_one"]["msg_per_s"]
        figures["api_vs_deliver_one"] = round(best["req_per_s"] / base, 2) if base else None
    return figures


def one_run(*, requests: int, concurrency: int, store_url: str | None, run: int,
            serve: Serve) -> dict[str, Any]:  # fmt: skip
    """Seed, serve, load, stop, count."""
    from jingxin.bench.clicks import cpu_seconds

    with tempfile.TemporaryDirectory(prefix="jx-send-api-") as tmp:
        folder = Path(tmp)
        url = store_url or f"sqlite:///{folder / 'send.db'}"
        tag = f"{time.time_ns():x}-{run}"  # keys and numbers of this run
        seed_store(url, key_file=folder / "key.txt")
        with serve(url, folder) as (port, pid):
            before = cpu_seconds(pid) if pid else None
            load = run_load(port, folder / "key.txt", requests=requests,
                            concurrency=concurrency, tag=tag, run=run)  # fmt: skip
            after = cpu_seconds(pid) if pid else None
        in_outbox = count_outbox(url, tag=tag)
    accepted = load["decisions"].get("send", 0) + load["decisions"].get("defer", 0)
    cpu = (round((after - before) / requests * 1e6)
           if before is not None and after is not None else None)  # fmt: skip
    _say(f"run {run + 1}: {load['req_per_s']} req/s, p99 {load['p99_ms']} ms, "
         f"{accepted} accepted, {in_outbox} in the outbox")  # fmt: skip
    return {**load, "dialect": url.split(":", 1)[0].split("+", 1)[0], "accepted": accepted,
            "in_outbox": in_outbox, "server_cpu_us_per_request": cpu,
            "errors": sum(n for s, n in load["statuses"].items() if s != "202")}  # fmt: skip


@contextmanager
def serve_process(url: str, folder: Path) -> Iterator[tuple[int, int | None]]:
    """``jingxin serve`` in a subprocess (:func:`jingxin.bench.clicks.start_server`):
    (its port, its pid); stopped with SIGINT."""
    from jingxin.bench.clicks import start_server, stop_server

    server, port = start_server(url, folder)
    try:
        yield port, server.pid
    finally:
        stop_server(server, folder)


def seed_store(url: str, *, key_file: Path | None = None) -> str:
    """The tenant, its approved template and (written to ``key_file``) an API key."""
    from sqlalchemy import inspect

    from jingxin.access.keys import create_key
    from jingxin.content import catalog
    from jingxin.content.library import TemplateDocument
    from jingxin.data.store import open_store
    from jingxin.data.store.models import Tenant
    from jingxin.data.store.tenants import create_tenant, ensure_default_tenant

    store = open_store(url)
    if not inspect(store.engine).has_table("api_keys"):  # an empty store: migrate it
        store.dispose()
        store = open_store(url, upgrade=True)
    try:
        with store.transaction() as session:
            ensure_default_tenant(session)
            if session.get(Tenant, TENANT) is None:
                create_tenant(session, tenant_id=TENANT, name="压测企业", signature="【压测】")
            doc = TemplateDocument(code=TEMPLATE, category="otp",
                                   body="您的验证码是{{ code }}，5分钟内有效，请勿泄露。",
                                   variables={"code": "str"})  # fmt: skip
            catalog.seed_library(session, documents=[doc], tenant_id=TENANT, approve_as="bench")
            _, key = create_key(session, tenant_id=TENANT, name="send-api bench",
                                rate_per_second=1e9)  # fmt: skip
    finally:
        store.dispose()
    if key_file is not None:
        key_file.write_text(key, encoding="utf-8")
    return key


def count_outbox(url: str, *, tag: str) -> int:
    from sqlalchemy import func, select

    from jingxin.data.store import open_store
    from jingxin.data.store.models import Message

    store = open_store(url)
    try:
        with store.sessions() as session:
            return session.scalar(select(func.count()).select_from(Message).where(
                Message.idempotency_key.like(f"api:{TENANT}:{tag}:%"))) or 0  # fmt: skip
    finally:
        store.dispose()


def run_load(port: int, key_file: Path, *, requests: int, concurrency: int, tag: str,
             run: int) -> dict[str, Any]:  # fmt: skip
    """The load client in its own process; its JSON figures."""
    import subprocess

    command = [sys.executable, "-m", "jingxin.bench.send_api", "load", str(port), str(key_file),
               str(requests), str(concurrency), tag, str(run)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False,
                          timeout=max(120, requests / 50))  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"the load client failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def deliver_one_baseline(messages: int, *, store_url: str | None) -> dict[str, Any]:
    """The same messages through deliver_one, in process, one after another."""
    from jingxin.data.store import open_store
    from jingxin.dispatch.deliver import Delivery, DeliveryContext, deliver_one

    with tempfile.TemporaryDirectory(prefix="jx-send-base-") as tmp:
        url = store_url or f"sqlite:///{Path(tmp) / 'base.db'}"
        seed_store(url)
        store = open_store(url)
        tag = f"{time.time_ns():x}-base"
        context = DeliveryContext()
        latencies = []
        try:
            started = time.perf_counter()
            for i in range(messages):
                begun = time.perf_counter()
                deliver_one(store, context=context, delivery=Delivery(
                    msisdn=_number(i, 99), source="api", category="otp", tenant_id=TENANT,
                    idempotency_key=f"api:{TENANT}:{tag}:{i}", template=TEMPLATE,
                    variables={"code": f"{i % 1000000:06d}"}))  # fmt: skip
                latencies.append(time.perf_counter() - begun)
            seconds = time.perf_counter() - started
        finally:
            store.dispose()
    latencies.sort()
    return {"messages": messages, "msg_per_s": round(messages / seconds),
            **_quantiles(latencies)}  # fmt: skip


def _number(i: int, run: int) -> str:
    return f"+86139{run % 100:02d}{i % 1000000:06d}"


def _quantiles(latencies: list[float]) -> dict[str, float | None]:
    n = len(latencies)

    def at(q: float) -> float | None:
        return round(latencies[min(n - 1, int(n * q))] * 1000, 2) if n else None

    return {"p50_ms": at(0.5), "p95_ms": at(0.95), "p99_ms": at(0.99),
            "max_ms": round(latencies[-1] * 1000, 2) if n else None}  # fmt: skip


# -- the load client (its own process) -----------------------------------------------------


def _request(key: str, tag: str, run: int, i: int) -> bytes:
    body = json.dumps({"msisdn": _number(i, run), "category": "otp", "template": TEMPLATE,
                       "variables": {"code": f"{i % 1000000:06d}"},
                       "idempotency_key": f"{tag}:{i}"}).encode()  # fmt: skip
    return (f"POST /api/v1/send HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


async def _connection(port: int, key: str, tag: str, run: int, numbers: Any, warm: int,
                      latencies: list[float], statuses: Counter, decisions: Counter) -> None:  # fmt: skip
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for i in numbers:
            begun = time.perf_counter()
            writer.write(_request(key, tag, run, i))
            head = await reader.readuntil(b"\r\n\r\n")
            lower = head.lower()
            at = lower.find(b"content-length:")
            length = int(lower[at + 15:lower.index(b"\r\n", at)]) if at >= 0 else 0
            body = await reader.readexactly(length) if length else b""
            if i >= warm:
                latencies.append(time.perf_counter() - begun)
            statuses[head[9:12].decode()] += 1
            found = body.find(b'"decision":"')
            if found >= 0:
                decisions[body[found + 12:body.index(b'"', found + 12)].decode()] += 1
    finally:
        writer.close()


async def _load(port: int, key: str, requests: int, concurrency: int, tag: str,
                run: int) -> dict[str, Any]:  # fmt: skip
    latencies: list[float] = []
    statuses: Counter = Counter()
    decisions: Counter = Counter()
    warm = int(requests * WARMUP_SHARE)
    started, cpu = time.perf_counter(), time.process_time()

    async def phase(numbers: Any) -> None:  # each connection takes the next request
        await asyncio.gather(*(_connection(port, key, tag, run, numbers, warm, latencies,
                                           statuses, decisions) for _ in range(concurrency)))  # fmt: skip

    await phase(iter(range(warm)))
    timed_from = time.perf_counter()
    await phase(iter(range(warm, requests)))
    elapsed = time.perf_counter() - timed_from
    latencies.sort()
    n = len(latencies)
    return {"seconds": round(time.perf_counter() - started, 2), "timed": n,
            "req_per_s": round(n / elapsed) if elapsed else None, **_quantiles(latencies),
            "statuses": dict(sorted(statuses.items())), "decisions": dict(sorted(decisions.items())),
            "client_cpu_us_per_request": round((time.process_time() - cpu) / max(requests, 1) * 1e6)}  # fmt: skip


def load_main(args: list[str]) -> None:
    """``python -m jingxin.bench.send_api load PORT KEY_FILE REQUESTS CONCURRENCY TAG RUN``."""
    port, path, requests, concurrency, tag, run = args
    key = Path(path).read_text(encoding="utf-8").strip()
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    figures = runner(_load(int(port), key, int(requests), int(concurrency), tag, int(run)))
    print(json.dumps(figures), flush=True)


# -- the command --------------------------------------------------------------------------


def register_commands(bench_app: typer.Typer) -> None:
    @bench_app.command("send-api")
    def send_api_command(
        requests: int = typer.Option(20_000, "--requests", min=1, help="Requests per run."),
        concurrency: int = typer.Option(16, "--concurrency", min=1,
                                        help="Keep-alive connections of the client."),
        store_url: str | None = typer.Option(None, "--store-url", help="An empty PostgreSQL "
                                             "database (default: SQLite in a temporary folder)."),
        runs: int = typer.Option(1, "--runs", min=1, help="Loads, each on a fresh server."),
        no_baseline: bool = typer.Option(False, "--no-baseline",
                                         help="Skip the in-process deliver_one baseline."),
        no_record: bool = typer.Option(False, "--no-record",
                                       help="Do not append to benchmarks/results."),
    ) -> None:
        """POST /api/v1/send (jingxin serve) under load from another process.

        Figures: req/s, p50/p95/p99, errors by status, and whether the outbox holds one
        message per accepted request; baseline: deliver_one in process (goal >= 1,000
        req/s, p99 <= 50 ms)."""
        from jingxin.bench import emit
        from jingxin.bench.geofence import record

        figures = run_send_api(requests=requests, concurrency=concurrency, store_url=store_url,
                               runs=runs, baseline=not no_baseline)  # fmt: skip
        line = emit({"benchmark": "send-api", **figures})
        path = None if no_record else record("send-api", line, None)
        if path is not None:
            _say(f"recorded in {path}")
        print(line, flush=True)
        if not figures["outbox_matches"]:
            raise typer.Exit(1)


if __name__ == "__main__":
    if sys.argv[1:2] != ["load"]:
        raise SystemExit("usage: python -m jingxin.bench.send_api load PORT KEY_FILE REQUESTS "
                         f"CONCURRENCY TAG RUN (got {sys.argv[1:]})")
    load_main(sys.argv[2:])
