"""Prometheus metrics of dispatch, in a registry of their own (tests make as many as they like).

Queue depth and age per lane, submits / receipts / errors per channel and status, receipt
latency, channel bind state, unresolved submits. :meth:`DispatchMetrics.serve` exposes
them over HTTP for Prometheus to scrape.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)


class DispatchMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.queue_depth = Gauge(
            "jingxin_outbox_queued", "queued messages", ["lane"], registry=r
        )
        self.queue_age = Gauge(
            "jingxin_outbox_oldest_seconds", "age of the oldest due queued message", ["lane"],
            registry=r,
        )  # fmt: skip
        self.submits = Counter(
            "jingxin_submits", "submit outcomes", ["channel", "status"], registry=r
        )
        self.receipts = Counter(
            "jingxin_receipts", "receipts received", ["channel", "status"], registry=r
        )
        self.errors = Counter(
            "jingxin_errors", "submit errors", ["channel", "kind"], registry=r
        )
        self.unresolved = Counter(
            "jingxin_unresolved_submits",
            "submits with no response",
            ["channel"],
            registry=r,
        )
        self.unmatched = Counter(
            "jingxin_unmatched_receipts", "receipts kept aside (unknown id)", registry=r
        )
        self.latency = Histogram(
            "jingxin_receipt_latency_seconds", "submit response to receipt", ["channel"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600), registry=r,
        )  # fmt: skip
        self.bound = Gauge(
            "jingxin_channel_bound", "1 while bound", ["channel"], registry=r
        )

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)

    def serve(self, port: int, *, addr: str = "127.0.0.1") -> None:
        """Expose the metrics on ``addr:port``; a port that is taken is one ConfigError
        naming the setting (``dispatch.metrics_port``)."""
        import errno

        from prometheus_client import start_http_server

        from jingxin.errors import ConfigError

        try:
            start_http_server(port, addr=addr, registry=self.registry)
        except (OSError, OverflowError) as exc:
            in_use = isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE
            why = "the port is already in use" if in_use else (
                getattr(exc, "strerror", None) or str(exc))  # fmt: skip
            raise ConfigError(f"metrics server cannot listen on {addr}:{port}: {why}; "
                              "change dispatch.metrics_port") from exc
