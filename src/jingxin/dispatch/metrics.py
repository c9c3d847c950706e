"""Prometheus metrics of dispatch, in a registry of their own (tests make as many as they like).

Queue depth and age per lane, submits / receipts / errors per channel and status, receipt
latency, channel bind state, unresolved submits; the way back's MO parts stored and taken
for redeliveries, whole MO (incomplete, undecodable) and handler runs that failed.
:meth:`DispatchMetrics.serve` exposes them over HTTP for Prometheus to scrape;
:func:`read_channels` reads the channels' part back from a running worker (the API's
dashboard).
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
        # The way back. A PDU that repeats one stored within [inbox] duplicate_window_seconds
        # (no SMSC id: the same sender, receiver and text) is counted, not stored: an SMSC
        # delivering again after a lost acknowledgement - or, over SMPP, a subscriber who
        # sent the same text twice, answered once (docs/twoway.md, Limits).
        self.mo_parts = Counter("jingxin_mo_parts", "MO PDUs stored", registry=r)
        self.mo_redelivered = Counter(
            "jingxin_mo_redelivered", "MO PDUs taken for a redelivery and not stored again",
            registry=r,
        )  # fmt: skip
        self.mo_messages = Counter(
            "jingxin_mo_messages", "MO written, complete or not (parts expired)", ["state"],
            registry=r,
        )  # fmt: skip
        self.mo_undecodable = Counter(
            "jingxin_mo_undecodable", "MO kept as hex: their payload did not decode", registry=r
        )
        self.mo_handler_errors = Counter(
            "jingxin_mo_handler_errors", "MO handler runs that raised (run again later)",
            registry=r,
        )  # fmt: skip

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


@dataclass(frozen=True, slots=True)
class ChannelState:
    """What a running worker's metrics say of one channel since the worker started."""

    bound: bool
    submits: dict[str, float] = field(default_factory=dict)  # status -> count
    errors: float = 0.0


def read_channels(url: str, *, timeout: float = 0.5) -> dict[str, ChannelState]:
    """The channels as the worker whose metrics are at ``url`` sees them (by name). A
    worker that does not answer is :class:`~jingxin.errors.ChannelError` saying why."""
    import urllib.error
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    from jingxin.errors import ChannelError

    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            text = answer.read().decode("utf-8", "replace")
    except (OSError, urllib.error.URLError, ValueError) as exc:
        raise ChannelError(f"the worker's metrics at {url} did not answer ({exc})") from exc
    bound: dict[str, bool] = {}
    submits: dict[str, dict[str, float]] = {}
    errors: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            channel = sample.labels.get("channel")
            if channel is None:
                continue
            if sample.name == "jingxin_channel_bound":
                bound[channel] = sample.value >= 1
            elif sample.name == "jingxin_submits_total":
                status = sample.labels.get("status", "")
                submits.setdefault(channel, {})[status] = sample.value
            elif sample.name == "jingxin_errors_total":
                errors[channel] = errors.get(channel, 0.0) + sample.value
    return {name: ChannelState(bound[name], submits.get(name, {}), errors.get(name, 0.0))
            for name in bound}  # fmt: skip
