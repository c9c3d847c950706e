"""Prometheus metrics of the dial tests, in a registry of their own (like dispatch's).

Per probe: ``jingxin_probe_runs_total`` and ``jingxin_probe_failures_total`` (counters),
``jingxin_probe_latency_ms`` (the last reply's latency; left as it was when no reply came,
so a graph does not drop to zero on an outage - ``last_ok`` says that), and
``jingxin_probe_last_ok`` (1 when the last run passed, else 0: the gauge to alert on).
``jingxin scheduler --metrics-port`` serves them; ``probe run --metrics-file`` writes them
for node_exporter's textfile collector.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest, write_to_textfile

from jingxin.errors import ConfigError

if TYPE_CHECKING:
    from jingxin.probes.runner import ProbeResult


class ProbeMetrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.runs = Counter("jingxin_probe_runs", "dial tests run", ["probe"], registry=r)
        self.failures = Counter("jingxin_probe_failures", "dial tests failed", ["probe"], registry=r)
        self.latency = Gauge("jingxin_probe_latency_ms", "MO sent to reply seen, last reply",
                             ["probe"], registry=r)  # fmt: skip
        self.last_ok = Gauge("jingxin_probe_last_ok", "1 when the last run passed", ["probe"],
                             registry=r)  # fmt: skip

    def observe(self, results: Iterable[ProbeResult]) -> None:
        for result in results:
            self.runs.labels(result.probe).inc()
            if not result.ok:
                self.failures.labels(result.probe).inc()
            if result.latency_ms is not None:
                self.latency.labels(result.probe).set(result.latency_ms)
            self.last_ok.labels(result.probe).set(1 if result.ok else 0)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)

    def write(self, path: str | Path) -> None:
        """Write the metrics to ``path`` atomically (node_exporter's textfile collector)."""
        try:
            write_to_textfile(str(path), self.registry)
        except OSError as exc:
            raise ConfigError(f"--metrics-file {path}: cannot write ({exc.strerror or exc})") from exc

    def serve(self, port: int, *, addr: str = "127.0.0.1") -> None:
        """Expose the metrics on ``addr:port``; a port that is taken is one ConfigError."""
        from prometheus_client import start_http_server

        try:
            start_http_server(port, addr=addr, registry=self.registry)
        except (OSError, OverflowError) as exc:
            in_use = isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE
            why = "the port is already in use" if in_use else (
                getattr(exc, "strerror", None) or str(exc))  # fmt: skip
            raise ConfigError(f"metrics server cannot listen on {addr}:{port}: {why}; "
                              "choose another with --metrics-port") from exc
