"""``jingxin bench clicks``: the short-link redirect under load, end to end over loopback.

A scratch store (SQLite in a temporary folder, or ``--url`` an empty PostgreSQL database)
gets N messages carrying link tokens. ``jingxin serve`` runs in a subprocess on a free
loopback port (one uvicorn process, as in production); the load comes from another process
(``python -m jingxin.bench.clicks load ...``): an asyncio HTTP/1.1 client on keep-alive
connections, each sending its next request when the answer to the last one arrived, for a
fixed time. The mix: 90 % GETs of known tokens by a browser, 5 % GETs of unknown tokens,
5 % bots on known tokens (half HEAD, half a link-preview agent). Tokens are drawn uniformly
from all N, so with N above the requests sent most clicks are first clicks - cache misses,
as a campaign's clicks are.

Reported: requests/s, p50/p99 latency (client side, send to last byte), the answers by
status and kind, and - after the server was stopped with SIGINT, which writes the clicks
still pending - whether ``link_clicks`` holds exactly one row per request answered 302
(people and bots apart). Goal: >= 2,000 req/s with p99 <= 20 ms.

The JSON line is appended to ``benchmarks/results/clicks.jsonl`` (``--no-record``: don't).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import typer

GOAL = ">= 2,000 req/s, p99 <= 20 ms"
BROWSER = "Mozilla/5.0 (Linux; Android 14; V2309A) AppleWebKit/537.36 Chrome/124.0 Mobile"
PREVIEW = "TelegramBot (like TwitterBot)"
SEED_CHUNK = 5_000
START_TIMEOUT_S = 60.0


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def random_token(rng: random.Random) -> str:
    """A token of the shape analytics.links writes (its alphabet, its length)."""
    from jingxin.analytics.links import ALPHABET, TOKEN_LENGTH

    return "".join(rng.choices(ALPHABET, k=TOKEN_LENGTH))


# -- the run ------------------------------------------------------------------------------


def run_clicks(*, messages: int, seconds: float, connections: int, url: str | None,
               seed: int = 7) -> dict[str, Any]:  # fmt: skip
    """Seed, serve, load, stop, count (module docstring); the figures."""
    with tempfile.TemporaryDirectory(prefix="jx-clicks-") as tmp:
        folder = Path(tmp)
        store_url = url or f"sqlite:///{folder / 'clicks.db'}"
        started = time.perf_counter()
        tokens, first_click_id = seed_store(store_url, messages=messages, seed=seed)
        seed_s = time.perf_counter() - started
        (folder / "tokens.txt").write_text("\n".join(tokens), encoding="utf-8")
        server, port = start_server(store_url, folder)
        try:
            cpu_before = cpu_seconds(server.pid)
            load = run_load(port, folder / "tokens.txt", seconds=seconds,
                            connections=connections, seed=seed)  # fmt: skip
            cpu_after = cpu_seconds(server.pid)
        finally:
            stop_server(server, folder)
        stored = count_clicks(store_url, after_id=first_click_id)
    statuses = load["statuses"]
    expected = {"clicks": load["by_kind"].get("get:302", 0),
                "bots": load["by_kind"].get("head:302", 0)
                + load["by_kind"].get("preview:302", 0)}  # fmt: skip
    return {
        "dialect": store_url.split(":", 1)[0].split("+", 1)[0], "messages": messages,
        "seed_s": round(seed_s, 2), "connections": connections, "seconds": load["seconds"],
        "requests": load["requests"], "req_per_s": load["req_per_s"],
        "p50_ms": load["p50_ms"], "p99_ms": load["p99_ms"], "max_ms": load["max_ms"],
        "server_cpu_us_per_request": (
            round((cpu_after - cpu_before) / load["requests"] * 1e6)
            if cpu_before is not None and cpu_after is not None and load["requests"] else None),
        "client_cpu_us_per_request": load["client_cpu_us_per_request"],
        "statuses": statuses, "by_kind": load["by_kind"],
        "distinct_tokens_clicked": load["distinct_tokens"],
        "clicks_stored": stored["clicks"], "bots_stored": stored["bots"],
        "clicks_expected": expected["clicks"], "bots_expected": expected["bots"],
        "clicks_match": stored == expected,
        "goal": GOAL,
        "goal_met": load["req_per_s"] >= 2000 and load["p99_ms"] <= 20,
    }  # fmt: skip


def seed_store(url: str, *, messages: int, seed: int) -> tuple[list[str], int]:
    """N delivered messages with distinct tokens (a run prefix keeps a reused PostgreSQL
    database's keys apart); the tokens, and the last link_clicks id before the run."""
    from datetime import UTC, datetime

    from sqlalchemy import func, insert, select

    from jingxin.data.store import open_store
    from jingxin.data.store.models import LANES, LinkClick, Message

    rng = random.Random(seed)
    run = f"{time.time_ns():x}"
    tokens = list(dict.fromkeys(random_token(rng) for _ in range(messages)))
    now = datetime.now(UTC)
    store = open_store(url, upgrade=True)
    try:
        with store.transaction() as session:
            for i in range(0, len(tokens), SEED_CHUNK):
                session.execute(insert(Message), [
                    {"tenant_id": "bench", "msisdn": f"+86139{n:08d}", "category": "marketing",
                     "lane": LANES["marketing"], "text": f"【精信】流量包五折 https://jx.cn/{t}",
                     "idempotency_key": f"bench-clicks:{run}:{n}", "state": "delivered",
                     "created_at": now, "source": "campaign", "link_token": t,
                     "link_url": f"https://shop.example.cn/offer/{n}?utm_source=sms"}
                    for n, t in enumerate(tokens[i:i + SEED_CHUNK], start=i)])  # fmt: skip
            last = session.execute(select(func.max(LinkClick.id))).scalar() or 0
    finally:
        store.dispose()
    return tokens, last


def start_server(url: str, folder: Path) -> tuple[subprocess.Popen, int]:
    """``jingxin serve --port 0`` in a subprocess (settings from the environment only);
    waits for the address it prints."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JINGXIN_")}
    env["JINGXIN_STORE__URL"] = url
    command = [sys.executable, "-m", "jingxin.cli", "serve", "--host", "127.0.0.1",
               "--port", "0"]  # fmt: skip
    with open(folder / "serve.err", "wb") as errors:
        server = subprocess.Popen(command, cwd=folder, env=env, stdout=subprocess.PIPE,
                                  stderr=errors, text=True)  # fmt: skip
    deadline = time.monotonic() + START_TIMEOUT_S
    assert server.stdout is not None
    line = ""
    while time.monotonic() < deadline:
        line = server.stdout.readline()
        if not line:  # it exited
            break
        if "listening on http://" in line:
            port = int(line.split("listening on http://", 1)[1].split()[0].rsplit(":", 1)[1])
            return server, port
    server.kill()
    server.wait()
    raise RuntimeError(f"jingxin serve did not start: {line.strip()}\n"
                       + (folder / "serve.err").read_text(errors="replace")[-2000:])  # fmt: skip


def stop_server(server: subprocess.Popen, folder: Path) -> None:
    """SIGINT (a graceful stop: pending clicks are written), then wait for it."""
    server.send_signal(signal.SIGINT)
    try:
        code = server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
        raise RuntimeError("jingxin serve did not stop within 30 s of SIGINT") from None
    if code not in (0, 130, -signal.SIGINT):  # uvicorn re-raises the SIGINT once stopped
        raise RuntimeError(f"jingxin serve exited {code}:\n"
                           + (folder / "serve.err").read_text(errors="replace")[-2000:])


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) of a process so far (Linux; None elsewhere): what a
    request costs the server, whatever else runs on the machine."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def run_load(port: int, tokens: Path, *, seconds: float, connections: int,
             seed: int) -> dict[str, Any]:  # fmt: skip
    """The load client in its own process; its JSON figures."""
    command = [sys.executable, "-m", "jingxin.bench.clicks", "load", str(port), str(tokens),
               str(seconds), str(connections), str(seed)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False,
                          timeout=seconds + 60)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"the load client failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def count_clicks(url: str, *, after_id: int) -> dict[str, int]:
    """Rows written by this run: people's clicks and bots' requests."""
    from sqlalchemy import func, select

    from jingxin.data.store import open_store
    from jingxin.data.store.models import LinkClick

    store = open_store(url)
    try:
        with store.sessions() as session:
            rows = session.execute(select(LinkClick.bot, func.count()).where(
                LinkClick.id > after_id).group_by(LinkClick.bot)).all()  # fmt: skip
    finally:
        store.dispose()
    counts = {bool(bot): n for bot, n in rows}
    return {"clicks": counts.get(False, 0), "bots": counts.get(True, 0)}


# -- the load client (its own process) -----------------------------------------------------


def _request(kind: str, token: str) -> bytes:
    method, agent = {"get": ("GET", BROWSER), "unknown": ("GET", BROWSER),
                     "head": ("HEAD", BROWSER), "preview": ("GET", PREVIEW)}[kind]  # fmt: skip
    return (f"{method} /{token} HTTP/1.1\r\nHost: jx.cn\r\nUser-Agent: {agent}\r\n"
            "Accept: */*\r\n\r\n").encode()  # fmt: skip


def _pick(rng: random.Random, tokens: list[str]) -> tuple[str, str]:
    roll = rng.random()
    if roll < 0.90:
        return "get", rng.choice(tokens)
    if roll < 0.95:
        return "unknown", random_token(rng)  # 62**10 tokens: a collision is not a worry
    return ("head" if roll < 0.975 else "preview"), rng.choice(tokens)


async def _connection(port: int, tokens: list[str], rng: random.Random, until: float,
                      latencies: list[float], kinds: Counter, clicked: set[str]) -> None:  # fmt: skip
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < until:
            kind, token = _pick(rng, tokens)
            begun = time.perf_counter()
            writer.write(_request(kind, token))
            head = await reader.readuntil(b"\r\n\r\n")
            status = head[9:12].decode()
            lower = head.lower()
            at = lower.find(b"content-length:")
            length = int(lower[at + 15:lower.index(b"\r\n", at)]) if at >= 0 else 0
            if length and kind != "head":
                await reader.readexactly(length)
            latencies.append(time.perf_counter() - begun)
            kinds[f"{kind}:{status}"] += 1
            if kind == "get":
                clicked.add(token)
    finally:
        writer.close()


async def _load(port: int, tokens: list[str], seconds: float, connections: int,
                seed: int) -> dict[str, Any]:  # fmt: skip
    latencies: list[float] = []
    kinds: Counter = Counter()
    clicked: set[str] = set()
    started, cpu = time.perf_counter(), time.process_time()
    until = started + seconds
    await asyncio.gather(*(
        _connection(port, tokens, random.Random(seed * 1000 + i), until, latencies, kinds,
                    clicked) for i in range(connections)))  # fmt: skip
    elapsed = time.perf_counter() - started
    latencies.sort()
    n = len(latencies)
    statuses: Counter = Counter()
    for key, count in kinds.items():
        statuses[key.split(":")[1]] += count
    return {
        "seconds": round(elapsed, 2), "requests": n, "req_per_s": round(n / elapsed),
        "p50_ms": round(latencies[n // 2] * 1000, 2) if n else None,
        "p99_ms": round(latencies[min(n - 1, int(n * 0.99))] * 1000, 2) if n else None,
        "max_ms": round(latencies[-1] * 1000, 2) if n else None,
        "statuses": dict(sorted(statuses.items())), "by_kind": dict(sorted(kinds.items())),
        "distinct_tokens": len(clicked),
        "client_cpu_us_per_request": round((time.process_time() - cpu) / max(n, 1) * 1e6),
    }  # fmt: skip


def load_main(args: list[str]) -> None:
    """``python -m jingxin.bench.clicks load PORT TOKENS_FILE SECONDS CONNECTIONS SEED``."""
    port, path, seconds, connections, seed = args
    tokens = Path(path).read_text(encoding="utf-8").split()
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    figures = runner(_load(int(port), tokens, float(seconds), int(connections), int(seed)))
    print(json.dumps(figures), flush=True)


# -- the command --------------------------------------------------------------------------


def register_commands(bench_app: typer.Typer) -> None:
    @bench_app.command("clicks")
    def clicks_command(
        messages: int = typer.Option(50_000, "--messages", min=1,
                                     help="Messages with a short link in the store."),
        seconds: float = typer.Option(10.0, "--seconds", min=0.5, help="Length of the load."),
        connections: int = typer.Option(16, "--connections", min=1,
                                        help="Keep-alive connections of the client."),
        url: str | None = typer.Option(None, "--url", help="An empty PostgreSQL database "
                                       "(default: SQLite in a temporary folder)."),
        no_record: bool = typer.Option(False, "--no-record",
                                       help="Do not append to benchmarks/results."),
    ) -> None:
        """The short-link redirect (jingxin serve) under load from another process.

        Figures: req/s, p50/p99, and whether the clicks stored equal the requests answered
        302 (goal >= 2,000 req/s, p99 <= 20 ms)."""
        from jingxin.bench import emit
        from jingxin.bench.geofence import record

        figures = run_clicks(messages=messages, seconds=seconds, connections=connections,
                             url=url)  # fmt: skip
        line = emit({"benchmark": "clicks", **figures})
        path = None if no_record else record("clicks", line, None)
        if path is not None:
            _say(f"recorded in {path}")
        print(line, flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] != ["load"]:
        raise SystemExit(f"usage: python -m jingxin.bench.clicks load PORT TOKENS SECONDS "
                         f"CONNECTIONS SEED (got {sys.argv[1:]})")
    load_main(sys.argv[2:])
