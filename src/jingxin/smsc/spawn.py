"""Running the simulator (or a worker) as a process of its own: a free loopback port,
waiting until it listens, stopping it. The demo, the benchmarks and the crash tests all
use these."""

from __future__ import annotations

import socket
import subprocess
import time


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_listening(port: int, process: subprocess.Popen, *, timeout: float = 20.0,
                   what: str = "the SMSC simulator") -> None:  # fmt: skip
    """Return once ``port`` accepts connections; :class:`RuntimeError` (saying why) if
    ``process`` exits first or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited early with {process.returncode}")
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout:.0f} s")


def stop(process: subprocess.Popen, *, timeout: float = 5.0) -> None:
    """Ask ``process`` to end (SIGTERM), and kill it if it has not within ``timeout``."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
