"""CMPP load: ``jingxin bench cmpp`` against any ISMG, and the ``cmpp-loopback`` benchmark.

``jingxin bench cmpp --host H --port P --system-id SP --password PW`` drives a
:class:`~jingxin.channels.cmpp.CmppChannel` as hard as the window allows (``--tps`` paces
it) and reports messages/s, submits/s (one CMPP_SUBMIT per part), receipts/s, errors by kind
(``result_N``, ``unresolved``, ``flow_control_exhausted``, ``receipt_timeout``), latency
percentiles of whole messages and the client's CPU time per message, ending with one
JSON line.

``jingxin bench cmpp-loopback --scale N`` starts the simulator (``jingxin smsc``) in a
child process — so the figures are the client's, not the server's — and runs the same
load against its CMPP port.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from typing import Any

import typer

from jingxin.bench import Figures, benchmark, emit
from jingxin.smsc.spawn import stop

_SP, _SECRET = "901234", "bench-secret"
_RESULT = re.compile(r"Result (\d+)")


def _error_kind(exc: BaseException) -> str:
    from jingxin.errors import Retry

    if isinstance(exc, Retry):
        return "flow_control_exhausted"
    match = _RESULT.search(str(exc))
    if match:
        return f"result_{match.group(1)}"
    return "unresolved" if "unresolved" in str(exc) else type(exc).__name__


def _percentiles(latencies: list[float]) -> dict[str, float | None]:
    if not latencies:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}
    ordered = sorted(latencies)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)

    return {"p50_ms": at(0.50), "p95_ms": at(0.95), "p99_ms": at(0.99), "max_ms": at(1.0)}


async def run_load(
    *,
    host: str,
    port: int,
    system_id: str,
    password: str,
    messages: int,
    window: int = 16,
    tps: float = 0.0,
    receipts: bool = False,
    text: str = "jingxin bench: your code is 123456",
    receipt_timeout: float = 30.0,
) -> Figures:
    """Submit ``messages`` messages; return the figures (see the module docstring)."""
    from jingxin.channels.cmpp import CmppChannel, CmppOptions, LinkOptions

    received: list[Any] = []
    all_in = asyncio.Event()

    def on_receipt(receipt: Any) -> None:
        received.append(receipt)
        if len(received) >= expected[0]:
            all_in.set()

    expected = [messages]
    channel = CmppChannel(
        name="bench-cmpp", host=host, port=port, sp_id=system_id, secret=password,
        source_addr="10690000", on_receipt=on_receipt,
        options=CmppOptions(link=LinkOptions(window=window), tps=tps),
    )  # fmt: skip
    await channel.start()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    latencies, errors, parts = await _submit_all(
        channel, messages=messages, text=text, receipts=receipts, workers=max(1, 2 * window)
    )
    submit_wall = time.perf_counter() - wall0
    expected[0] = parts  # long texts: one report per part
    if receipts and parts and len(received) < parts:
        all_in.clear()
        try:
            await asyncio.wait_for(all_in.wait(), receipt_timeout)
        except TimeoutError:
            errors["receipt_timeout"] = parts - len(received)
    total_wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    await channel.close()
    return {
        "messages": messages,
        "parts": parts,
        "window": window,
        "messages_per_s": round(len(latencies) / submit_wall, 1) if submit_wall else None,
        "submits_per_s": round(parts / submit_wall, 1) if submit_wall else None,  # CMPP_SUBMITs
        "receipts": len(received),
        "receipts_per_s": round(len(received) / total_wall, 1) if receipts and total_wall else None,
        "errors": errors,
        **_percentiles(latencies),
        "cpu_us_per_message": round(cpu / max(messages, 1) * 1e6, 1),
        "seconds": round(total_wall, 3),
    }


async def _submit_all(
    channel: Any, *, messages: int, text: str, receipts: bool, workers: int
) -> tuple[list[float], dict[str, int], int]:
    """Submit from ``workers`` coroutines (2 × window keeps the window full)."""
    from jingxin.domain.sms import OutboundSms

    latencies: list[float] = []
    errors: dict[str, int] = {}
    parts = 0
    queue = iter(range(messages))

    async def worker() -> None:
        nonlocal parts
        for i in queue:
            began = time.perf_counter()
            try:
                result = await channel.submit(
                    OutboundSms(f"1380000{i % 10000:04d}", text, registered_delivery=receipts)
                )
            except Exception as exc:  # every failure is counted, none stops the run
                kind = _error_kind(exc)
                errors[kind] = errors.get(kind, 0) + 1
                continue
            latencies.append(time.perf_counter() - began)
            parts += result.parts

    await asyncio.gather(*(worker() for _ in range(workers)))
    return latencies, errors, parts


def register_commands(bench_app: typer.Typer) -> None:
    @bench_app.command("cmpp")
    def cmpp(
        host: str = typer.Option("127.0.0.1", help="ISMG address."),
        port: int = typer.Option(7890, help="ISMG CMPP port (7890: long connection)."),
        system_id: str = typer.Option(..., help="SP_Id (CONNECT Source_Addr), 6 characters."),
        password: str = typer.Option(..., help="Shared secret."),
        messages: int = typer.Option(1000, min=1, help="Messages to submit."),
        window: int = typer.Option(16, min=1, help="Outstanding submits (CMPP recommends 16)."),
        tps: float = typer.Option(0.0, min=0, help="Pace submits to this rate (0 = no pacing)."),
        receipts: bool = typer.Option(False, help="Ask for status reports and wait for them."),
        text: str = typer.Option("jingxin bench: your code is 123456", help="Message text."),
    ) -> None:
        """Load an ISMG over CMPP 2.0: submits/s, receipts/s, errors, latency."""
        figures = asyncio.run(run_load(
            host=host, port=port, system_id=system_id, password=password, messages=messages,
            window=window, tps=tps, receipts=receipts, text=text,
        ))  # fmt: skip
        print(emit({"benchmark": "cmpp", "host": host, "port": port, **figures}), flush=True)


def _start_simulator() -> tuple[subprocess.Popen[str], int]:
    """``jingxin smsc`` in a child process on free ports; returns it and its CMPP port."""
    command = [
        sys.executable, "-c", "from jingxin.cli import main; main()", "smsc",
        "--smpp-port", "0", "--cmpp-port", "0", "--http-port", "0",
        "--credentials", f"{_SP}:{_SECRET}", "--receipt-delay", "0.01",
    ]  # fmt: skip
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 30
    assert child.stdout is not None
    while time.monotonic() < deadline:
        line = child.stdout.readline()
        if not line:
            break
        match = re.match(r"cmpp listening on [^:]+:(\d+)", line.strip())
        if match:
            return child, int(match.group(1))
    stop(child)
    raise RuntimeError("the simulator did not announce a CMPP port within 30 s")


@benchmark(
    "cmpp-loopback",
    summary="CmppChannel against the simulator in another process: submits/s, receipts/s",
    default_scale=20_000,
)
def cmpp_loopback(scale: int) -> Figures:
    child, port = _start_simulator()
    try:
        figures = asyncio.run(run_load(
            host="127.0.0.1", port=port, system_id=_SP, password=_SECRET, messages=scale,
            window=16, receipts=True,
        ))  # fmt: skip
    finally:
        stop(child)
    return figures
