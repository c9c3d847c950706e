"""``python -m jingxin.smsc``: run the simulator without the CLI (benchmarks spawn this).

Flags mirror ``jingxin smsc`` (which is the documented way to run it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys

from jingxin.errors import ChannelError
from jingxin.logs import configure_from_settings
from jingxin.smsc.behaviour import from_flags
from jingxin.smsc.record import Record
from jingxin.smsc.server import Simulator, serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m jingxin.smsc")
    parser.add_argument("--preset", default="happy")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--smpp-port", type=int, default=2775)
    parser.add_argument("--cmpp-port", type=int, default=None)
    parser.add_argument("--http-port", type=int, default=None)
    parser.add_argument("--tps", type=float)
    parser.add_argument("--latency", type=float)
    parser.add_argument("--receipt-delay", type=float)
    parser.add_argument("--status-mix")
    parser.add_argument("--lose-response", type=float)
    parser.add_argument("--disconnect", type=float)
    parser.add_argument("--credentials", action="append")
    parser.add_argument("--keep", type=int, default=10_000, help="record entries kept in memory")
    args = parser.parse_args(argv)
    # Log as `jingxin smsc` would ([log] settings, numbers masked): without the console
    # script nothing else sets it up.
    configure_from_settings()
    behaviour = from_flags(
        args.preset, tps=args.tps, latency=args.latency, receipt_delay=args.receipt_delay,
        status_mix=args.status_mix, lose_response=args.lose_response,
        disconnect=args.disconnect, credentials=args.credentials,
    )  # fmt: skip
    simulator = Simulator(
        behaviour=behaviour, host=args.host, smpp_port=args.smpp_port,
        cmpp_port=args.cmpp_port, http_port=args.http_port, record=Record(keep=args.keep),
    )  # fmt: skip
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(simulator, announce=lambda line: print(line, flush=True)))
    except ChannelError as exc:  # a port in use: one line, as `jingxin smsc` says it
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
