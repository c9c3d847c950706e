"""Real jingxin processes for crash runs: the SMSC simulator and workers, started with the
environment a run gives them, killed with -9, waited on, and their JSON logs read back.

The crash benchmarks (:mod:`jingxin.bench.crash`) and the crash tests use it::

    with Fleet(workdir) as fleet:
        smsc = fleet.smsc(latency=0.01)                        # `jingxin smsc`, recorded
        env = worker_env(store_url=url, channels=[sim_channel(smsc.port)])
        worker = fleet.worker(env, "worker-1")                 # log: workdir/worker-1.log
        wait_until("a third sent", lambda: ..., timeout=60, processes=[worker])
        kill_9(worker)
        ...
        smsc.submits()                                         # submit_sm per number, every run

Leaving the ``with`` block stops whatever is still running (the SMSC with Ctrl-C, so its
record is closed; workers with SIGKILL), so a failed run leaves no process behind. Nothing
here touches the store: what to check is the caller's business.
"""

from __future__ import annotations

import collections
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from jingxin.errors import JingxinError, StoreError
from jingxin.smsc.spawn import free_port, wait_listening

# A whole mainland mobile number, with or without +86: what masked logs must never contain.
FULL_NUMBER = re.compile(r"(?<!\d)(?:\+?86)?1[3-9]\d{9}(?!\d)")
LOG_KEYS = frozenset({"ts", "level", "logger", "msg"})


class RunFailed(JingxinError):
    """A crash run could not go on: a process died, or a wait timed out. Says which."""


def jingxin_command() -> list[str]:
    """The ``jingxin`` console script beside this interpreter (or the CLI through it)."""
    script = Path(sys.executable).with_name("jingxin")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from jingxin.cli import main; main()"]


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child ``jingxin``: no settings file, JSON logs, plus ``extra``."""
    return {
        **os.environ,
        "JINGXIN_CONFIG": os.devnull,  # read no settings file
        "JINGXIN_LOG__FORMAT": "json",
        **extra,
    }


def sim_channel(port: int, *, window: int = 50, name: str = "sim") -> dict[str, Any]:
    """One SMPP channel towards the simulator on ``port``, as ``JINGXIN_CHANNELS`` lists it."""
    return {"name": name, "port": port, "window": window}


def worker_env(*, store_url: str, channels: Sequence[Mapping[str, Any]],
               worker_name: str = "crash-worker", max_in_flight: int = 200,
               receipt_grace: float = 0.0, extra: Mapping[str, str] | None = None,
               ) -> dict[str, str]:  # fmt: skip
    """A worker's environment. The same ``worker_name`` on a restart lets the new worker
    resolve the rows the dead one left in 'submitting'; ``receipt_grace`` 0 expires a
    message whose receipt died with a process as soon as its validity ends."""
    return child_env(
        JINGXIN_STORE__URL=store_url,
        JINGXIN_CHANNELS=json.dumps(list(map(dict, channels))),
        JINGXIN_DISPATCH__WORKER_NAME=worker_name,
        JINGXIN_DISPATCH__MAX_IN_FLIGHT=str(max_in_flight),
        JINGXIN_DISPATCH__RECEIPT_GRACE=str(receipt_grace),
        **(extra or {}),
    )


class SmscProcess:
    """``jingxin smsc`` in its own process on a fixed SMPP port, so that it can be killed
    and started again where the worker expects it. Every start gets its own JSONL record
    (line-buffered: a kill -9 loses no PDU received before it) and its own log."""

    def __init__(self, workdir: Path, *, latency: float = 0.001, receipt_delay: float = 0.01,
                 flags: Sequence[str] = ()) -> None:  # fmt: skip
        self.workdir = workdir
        self.port = free_port()
        self.http_port = free_port()  # fixed too: MO can be injected across restarts
        self.flags = ["--latency", str(latency), "--receipt-delay", str(receipt_delay), *flags]
        self.process: subprocess.Popen | None = None
        self.records: list[Path] = []
        self.logs: list[Path] = []

    @property
    def mo_url(self) -> str:
        """The MO endpoint (``jingxin.smsc.mo.post_mo(smsc.mo_url, ...)``)."""
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, *, timeout: float = 30.0) -> Self:
        n = len(self.records)
        self.records.append(self.workdir / f"smsc-{n}.jsonl")
        self.logs.append(self.workdir / f"smsc-{n}.log")
        command = [*jingxin_command(), "smsc", "--no-cmpp",
                   "--http-port", str(self.http_port), "--smpp-port", str(self.port),
                   "--record", str(self.records[-1]), *self.flags]  # fmt: skip
        with open(self.logs[-1], "w", encoding="utf-8") as log:
            self.process = subprocess.Popen(command, env=child_env(),
                                            stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        try:
            wait_listening(self.port, self.process, timeout=timeout)
        except RuntimeError as exc:
            raise RunFailed(f"{exc}\n{tail(self.logs[-1])}") from None
        return self

    def kill(self) -> None:
        """kill -9: no unbind, no goodbye, receipts not yet sent are lost."""
        if self.process is not None:
            kill_9(self.process)

    def stop(self) -> None:
        """Ctrl-C: the simulator closes its record."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                kill_9(self.process)

    def received(self, command: str) -> Iterator[dict[str, Any]]:
        """The fields of every ``command`` PDU received, over every run of the simulator."""
        marker = f'"{command}"'
        for path in self.records:
            with open(path, encoding="utf-8") as lines:
                for line in lines:
                    if marker in line and line.endswith("\n"):  # a kill may cut the last
                        entry = json.loads(line)
                        if entry["command"] == command:
                            yield entry["fields"]

    def submits(self) -> collections.Counter[str]:
        """Messages submitted per destination, over every run of the simulator: a long
        message's parts count once (its first part; a resent message counts again)."""
        return collections.Counter(f["destination_addr"] for f in self.received("submit_sm")
                                   if _first_part(f))  # fmt: skip

    def discard_records(self) -> None:
        """Delete the JSONL records (~50 MB per 100,000 submits) once counted."""
        for path in self.records:
            path.unlink(missing_ok=True)


def _first_part(fields: dict[str, Any]) -> bool:
    """Whether a recorded submit_sm is a message's first (or only) part: its UDH (esm_class
    0x40) has no concatenation element, or one with sequence number 1."""
    if not int(fields.get("esm_class") or 0) & 0x40:
        return True
    try:
        udh = bytes.fromhex(fields.get("short_message") or "")
    except ValueError:
        return True
    at, end = 1, 1 + (udh[0] if udh else 0)
    while at + 1 < min(end, len(udh)):
        tag, size = udh[at], udh[at + 1]
        if tag == 0x00 and size == 3 and at + 4 < len(udh):
            return udh[at + 4] == 1
        if tag == 0x08 and size == 4 and at + 5 < len(udh):
            return udh[at + 5] == 1
        at += 2 + size
    return True


class Fleet:
    """The processes of one run, their logs in ``workdir``; stops them all on exit."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.smscs: list[SmscProcess] = []
        self.workers: list[subprocess.Popen] = []

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        for process in self.workers:
            if process.poll() is None:
                kill_9(process)
        for smsc in self.smscs:
            smsc.stop()

    def smsc(self, **options: Any) -> SmscProcess:
        """A started :class:`SmscProcess` (``options`` as its constructor takes them)."""
        smsc = SmscProcess(self.workdir, **options)
        self.smscs.append(smsc)
        return smsc.start()

    def worker(self, env: Mapping[str, str], name: str, *args: str) -> subprocess.Popen:
        """``jingxin worker *args`` with ``env``; its logs (stderr) go to ``<name>.log``."""
        return self.process(env, name, "worker", *args)

    def process(self, env: Mapping[str, str], name: str, *argv: str) -> subprocess.Popen:
        """``jingxin *argv`` with ``env`` (e.g. ``fence run --redis``), its logs (stderr) in
        ``<name>.log``; killed with the fleet."""
        with open(self.log(name), "w", encoding="utf-8") as log:
            process = subprocess.Popen([*jingxin_command(), *argv], env=dict(env),
                                       stdout=subprocess.DEVNULL, stderr=log)  # fmt: skip
        self.workers.append(process)
        return process

    def log(self, name: str) -> Path:
        return self.workdir / f"{name}.log"


def kill_9(process: subprocess.Popen, *, timeout: float = 10.0) -> None:
    """SIGKILL ``process`` and reap it."""
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    process.wait(timeout)


def terminate(process: subprocess.Popen, *, timeout: float = 30.0) -> int:
    """SIGTERM (a worker finishes what it holds and exits); its exit code. Killed with -9
    and :class:`RunFailed` if it has not ended within ``timeout``."""
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        kill_9(process)
        raise RunFailed(f"{process.args} did not stop within {timeout:.0f} s of SIGTERM") from None


def wait_until(what: str, done: Callable[[], bool], *, timeout: float,
               processes: Iterable[subprocess.Popen] = (), every: float = 0.05,
               ) -> None:  # fmt: skip
    """Poll ``done()`` every ``every`` seconds; :class:`RunFailed` naming ``what`` on a
    time-out or when one of ``processes`` has exited."""
    processes = list(processes)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for process in processes:
            if process.poll() is not None:
                raise RunFailed(f"{what}: {process.args} exited with {process.returncode}")
        if done():
            return
        time.sleep(every)
    raise RunFailed(f"{what}: not within {timeout:.0f} s")


def tail(path: Path, chars: int = 2000) -> str:
    """The end of a log, for a failure message."""
    try:
        return path.read_text(encoding="utf-8", errors="replace")[-chars:]
    except OSError:
        return f"({path} unreadable)"


@dataclass
class LogScan:
    """What one JSON log holds: its records, lines that are not a log record, and how
    many full numbers it leaks (counted, never quoted: the report must not leak them)."""

    path: Path
    records: list[dict[str, Any]] = field(default_factory=list)
    bad_lines: int = 0
    leaks: int = 0


def scan_log(path: Path) -> LogScan:
    """Read a JSON log line by line; a last line cut short by a kill -9 is not counted."""
    text = path.read_text(encoding="utf-8", errors="replace")
    scan = LogScan(path, leaks=len(FULL_NUMBER.findall(text)))
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if i == len(lines) - 1 and not text.endswith("\n"):
            continue
        try:
            record = json.loads(line)
        except ValueError:
            scan.bad_lines += 1
            continue
        if isinstance(record, dict) and LOG_KEYS <= set(record):
            scan.records.append(record)
        else:
            scan.bad_lines += 1
    return scan


# --------------------------------------------------------------------------- databases and runs

PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"


def libpq_url(url: str) -> str:
    """A store URL (``postgresql+psycopg://...``) as psycopg itself takes it."""
    return url.replace("postgresql+psycopg://", "postgresql://")


@contextmanager
def throwaway_database(*, prefix: str, server: str | None = None) -> Iterator[str]:
    """A fresh database ``<prefix>_<pid>`` on ``server`` (default ``JINGXIN_BENCH_PG``, else
    the local server), dropped afterwards; an unreachable server is one StoreError."""
    import psycopg

    server = server or os.environ.get("JINGXIN_BENCH_PG", PG_SERVER)
    name = f"{prefix}_{os.getpid()}"
    plain = libpq_url(server)
    try:
        admin = psycopg.connect(f"{plain}/postgres", autocommit=True)
    except psycopg.Error as exc:
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise StoreError(f"this benchmark needs PostgreSQL at {plain} "
                         f"(JINGXIN_BENCH_PG, or --store-url): {why}") from exc  # fmt: skip
    with admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"{server}/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_scenario(name: str, scenario: Callable[..., dict[str, Any]], *, plan: Any,
                 store_url: str | None, workdir: Path | None) -> None:  # fmt: skip
    """Run a process scenario (in ``workdir`` or a temporary one, on ``store_url`` or a
    throwaway database), print its report as one JSON line, and exit 1 when it failed."""
    import tempfile

    import typer

    from jingxin.bench import emit

    try:
        with tempfile.TemporaryDirectory(prefix=f"jingxin-{name}-") as tmp:
            where = workdir or Path(tmp)
            where.mkdir(parents=True, exist_ok=True)
            if store_url:
                report = scenario(store_url=store_url, workdir=where, plan=plan)
            else:
                with throwaway_database(prefix=f"bench_{name.replace('-', '_')}") as url:
                    report = scenario(store_url=url, workdir=where, plan=plan)
    except RunFailed as exc:
        typer.echo(f"{name}: {exc}", err=True)
        raise typer.Exit(1) from None
    for failure in report["failures"]:
        typer.echo(f"{name}: FAILED: {failure}", err=True)
    print(emit({"benchmark": name, **report}), flush=True)
    if report["failures"]:
        raise typer.Exit(1)
