"""``/metrics``: the service's transfers in Prometheus' text format, via prometheus-client.

Why a collector read at scrape time rather than counters updated as transfers run: the
numbers already live in the transfer store (progress reported by the workers, persisted in
SQLite), so a scrape reports exactly what ``GET /transfers/{id}`` reports, and totals survive
a server restart instead of starting again at zero.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from lclstream.server.store import TransferStore

__all__ = ["CONTENT_TYPE", "TransferMetrics", "registry_for", "render"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: progress field -> (metric name suffix, help text)
_PER_TRANSFER = {
    "events_read": ("events_read", "Events the transfer's source has read."),
    "events_sent": ("events_sent", "Events the transfer has sent."),
    "events_dropped": ("events_dropped", "Events the transfer has dropped (counted, with reason)."),
    "bytes_sent": ("bytes_sent", "Bytes the transfer has sent."),
    "rate": ("rate_events_per_second", "The transfer's events sent per second so far."),
}

#: totals over every transfer the store holds (finished ones included)
_TOTALS = {
    "events_read": "Events read, over every transfer this server's records hold.",
    "events_sent": "Events sent, over every transfer this server's records hold.",
    "events_dropped": "Events dropped, over every transfer this server's records hold.",
    "bytes_sent": "Bytes sent, over every transfer this server's records hold.",
}


class TransferMetrics(Collector):
    """Transfers by state, the running workers, totals over every transfer the store holds,
    and each active transfer's progress (labelled by id, experiment and run)."""

    def __init__(self, store: TransferStore, running: Callable[[], int]) -> None:
        self.store = store
        self.running = running

    def collect(self) -> Iterator[Any]:
        by_state = GaugeMetricFamily(
            "lclstream_transfers", "Transfers known to this server, by state.", labels=["state"]
        )
        for state, n in sorted(self.store.count_by_state().items()):
            by_state.add_metric([state], n)
        yield by_state
        yield GaugeMetricFamily(
            "lclstream_transfers_running",
            "Transfer worker processes alive now.",
            value=self.running(),
        )
        totals = self.store.progress_totals()
        for field, text in _TOTALS.items():
            yield CounterMetricFamily(f"lclstream_{field}", text, value=totals.get(field, 0))
        per = {
            field: GaugeMetricFamily(
                f"lclstream_transfer_{name}", text, labels=["id", "experiment", "run"]
            )
            for field, (name, text) in _PER_TRANSFER.items()
        }
        for rec in self.store.active():
            labels = [rec.id, rec.experiment or "", str(rec.run)]
            for field, family in per.items():
                family.add_metric(labels, float(rec.progress.get(field, 0) or 0))
        yield from per.values()


def registry_for(store: TransferStore, running: Callable[[], int]) -> CollectorRegistry:
    """A registry of its own (not the process-wide default): two apps in one process, as in
    the tests, never report each other's transfers."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TransferMetrics(store, running))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
