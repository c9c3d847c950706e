"""SMPP load and the ``smpp-loopback`` benchmark.

``jingxin bench smpp --host H --port P ...`` drives any SMPP server with our client and
reports submits/s, receipts/s, errors by command_status, latency percentiles and CPU
time per message. ``jingxin bench smpp-loopback`` starts the simulator in another
process and measures our client against python-smpplib's plain send loop in the same
run (and against the npm smpp peer when it is installed).
"""

from __future__ import annotations

import collections
import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

from jingxin.bench import benchmark, emit
from jingxin.smsc.spawn import free_port

Figures = dict[str, Any]


def _percentiles(samples: list[float]) -> Figures:
    if not samples:
        return {"p50_ms": None, "p90_ms": None, "p99_ms": None}
    ordered = sorted(samples)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)

    return {"p50_ms": at(0.50), "p90_ms": at(0.90), "p99_ms": at(0.99)}


async def run_load(
    *, host: str, port: int, system_id: str = "bench", password: str = "", messages: int = 10_000,
    window: int = 10, tps: float = 0.0, receipts: bool = False, receipt_wait: float = 30.0,
    layer: str = "channel",
) -> Figures:  # fmt: skip
    """Submit ``messages`` single-part messages with ``window`` in flight; measure.

    ``layer="channel"`` goes through SmppChannel (OutboundSms → parts → submit_sm; receipts
    parsed into DeliveryReceipt), the path dispatch uses; ``"session"`` calls
    SmppSession.submit_sm with ready-made fields (the protocol cost alone).
    """
    import asyncio

    from jingxin.channels.smpp.channel import SmppChannel
    from jingxin.channels.smpp.session import SessionConfig, SmppSession
    from jingxin.channels.smpp.status import describe
    from jingxin.domain.sms import OutboundSms
    from jingxin.errors import ChannelError

    got_receipts = 0
    all_receipts = asyncio.Event()

    def count_receipt(_: Any) -> int:
        nonlocal got_receipts
        got_receipts += 1
        if got_receipts >= messages:
            all_receipts.set()
        return 0

    config = SessionConfig(host=host, port=port, system_id=system_id, password=password,
                           window=window, tps=tps)  # fmt: skip
    if layer == "channel":
        channel = SmppChannel(name="bench", config=config, source_addr="10690000", on_receipt=count_receipt)
        await channel.start()
        message = OutboundSms(destination="8613800138000", text="jingxin bench message", registered_delivery=receipts)

        async def submit_one() -> object:
            return await channel.submit(message)

        close = channel.close
    else:
        session = await SmppSession.open(config, on_deliver=count_receipt)
        fields = {"source_addr": "10690000", "destination_addr": "8613800138000",
                  "short_message": b"jingxin bench message", "registered_delivery": 1 if receipts else 0}  # fmt: skip

        async def submit_one() -> object:
            return await session.submit_sm(**fields)

        close = session.unbind
    errors: collections.Counter[str] = collections.Counter()
    latencies: list[float] = []
    remaining = iter(range(messages))
    clock = time.perf_counter

    async def worker() -> None:
        for _ in remaining:
            start = clock()
            try:
                await submit_one()
            except ChannelError as exc:
                status = getattr(exc, "status", None)
                errors[describe(status) if status is not None else type(exc).__name__] += 1
                continue
            latencies.append(clock() - start)

    cpu0, wall0 = time.process_time(), clock()
    await asyncio.gather(*(worker() for _ in range(window)))
    submit_seconds = clock() - wall0
    receipt_seconds = None
    if receipts:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_receipts.wait(), receipt_wait)
        receipt_seconds = clock() - wall0
    cpu = time.process_time() - cpu0
    await close()
    ok = len(latencies)
    return {
        "layer": layer, "messages": messages, "window": window, "ok": ok, "errors": dict(errors),
        "submits_per_s": round(ok / submit_seconds, 1) if submit_seconds else None,
        "receipts": got_receipts,
        "receipts_per_s": round(got_receipts / receipt_seconds, 1) if receipt_seconds else None,
        "cpu_us_per_message": round(cpu / max(messages, 1) * 1e6, 2),
        **_percentiles(latencies),
    }  # fmt: skip


async def round_trip(*, host: str, port: int, count: int = 200) -> Figures:
    """Median and p99 of one submit at a time (window 1)."""
    from jingxin.channels.smpp.session import SessionConfig, SmppSession

    session = await SmppSession.open(SessionConfig(host=host, port=port, system_id="rtt", window=1))
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        await session.submit_sm(source_addr="10690000", destination_addr="8613800138000", short_message=b"rtt")
        samples.append(time.perf_counter() - start)
    await session.unbind()
    figures = _percentiles(samples)
    return {"round_trip_p50_ms": figures["p50_ms"], "round_trip_p99_ms": figures["p99_ms"]}


def smpplib_loop(*, host: str, port: int, messages: int) -> Figures:
    """python-smpplib's plain loop: send_message, then read the response; no receipts."""
    import smpplib.client

    client = smpplib.client.Client(host, port, timeout=10, allow_unknown_opt_params=True)
    client.set_message_sent_handler(lambda pdu: None)  # the default one prints per message
    client.connect()
    client.bind_transmitter(system_id="smpplib", password="")
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(messages):
        client.send_message(source_addr="10690000", destination_addr="8613800138000",
                            short_message=b"jingxin bench message")  # fmt: skip
        client.read_once()
    seconds = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    client.unbind()
    client.disconnect()
    return {"submits_per_s": round(messages / seconds, 1),
            "cpu_us_per_message": round(cpu / messages * 1e6, 2)}  # fmt: skip


@contextlib.contextmanager
def _server(command: list[str], ready: str, timeout: float = 20.0) -> Iterator[subprocess.Popen]:
    """Start a server process and wait for its ``ready`` line on stdout."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        deadline = time.monotonic() + timeout
        assert process.stdout is not None
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                raise RuntimeError(f"{command[0]} exited before it was ready")
            if ready in line:
                break
        yield process
    finally:
        process.terminate()
        process.wait(10)


def simulator_process(port: int, *extra: str) -> contextlib.AbstractContextManager:
    command = [sys.executable, "-m", "jingxin.smsc", "--smpp-port", str(port), "--receipt-delay", "0", *extra]
    return _server(command, "smpp listening")


@benchmark("smpp-loopback", summary="SMPP client vs smpplib against the simulator in another process",
           default_scale=20_000)  # fmt: skip
def smpp_loopback(scale: int) -> Figures:
    import asyncio

    figures: Figures = {}
    port = free_port()
    with simulator_process(port):
        figures["ours"] = asyncio.run(run_load(host="127.0.0.1", port=port, messages=scale))
        figures["ours_receipts"] = asyncio.run(run_load(host="127.0.0.1", port=port, messages=scale, receipts=True))
        figures["ours_session"] = asyncio.run(run_load(host="127.0.0.1", port=port, messages=scale, layer="session"))
        figures.update(asyncio.run(round_trip(host="127.0.0.1", port=port)))
        figures["smpplib"] = smpplib_loop(host="127.0.0.1", port=port, messages=max(scale // 4, 100))
    ours, theirs = figures["ours"]["submits_per_s"], figures["smpplib"]["submits_per_s"]
    figures["ratio_vs_smpplib"] = round(ours / theirs, 2) if ours and theirs else None
    peer = Path(__file__).resolve().parents[3] / "tests" / "peers"
    node = shutil.which("node")
    if node and (peer / "node_modules" / "smpp").exists():
        npm_port = free_port()
        with _server([node, str(peer / "smpp_server.js"), str(npm_port)], "listening"):
            figures["ours_vs_npm_smpp"] = asyncio.run(run_load(host="127.0.0.1", port=npm_port, messages=scale))
    print(f"ours {ours}/s vs smpplib {theirs}/s: x{figures['ratio_vs_smpplib']}", file=sys.stderr, flush=True)
    return figures


def register_commands(bench_app: typer.Typer) -> None:
    @bench_app.command("smpp")
    def smpp(
        host: str = typer.Option("127.0.0.1", help="SMPP server host."),
        port: int = typer.Option(2775, help="SMPP server port."),
        system_id: str = typer.Option("bench", help="Bind system_id."),
        password: str = typer.Option("", help="Bind password."),
        messages: int = typer.Option(10_000, help="Messages to submit."),
        window: int = typer.Option(10, help="Outstanding submits."),
        tps: float = typer.Option(0.0, help="Client-side rate limit (0 = none)."),
        receipts: bool = typer.Option(False, help="Ask for and wait for delivery receipts."),
        layer: str = typer.Option("channel", help="channel (SmppChannel, the product path) or session."),
    ) -> None:
        """Drive an SMPP server: submits/s, receipts/s, errors, latency, CPU per message."""
        import asyncio

        figures = asyncio.run(run_load(host=host, port=port, system_id=system_id, password=password,
                                       messages=messages, window=window, tps=tps, receipts=receipts,
                                       layer=layer))  # fmt: skip
        print(emit({"benchmark": "smpp", "host": host, "port": port, "pid": os.getpid(), **figures}), flush=True)
