"""What a worker counts and times, for its logs and for Prometheus.

The counters live in one dataclass the worker increments (tests and the
end-of-run summary read it directly); Prometheus reads the same fields at
scrape time through a collector, so nothing is counted twice. Latencies are
histograms: per stage of a batch (parse, extract, graph, commit) and end to
end (the record's produce time to the commit after its graph write).

Each worker has its own registry, not the process-global one, so several
workers in one process (tests, benchmarks) never share or clash.
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily

STAGES = ("parse", "extract", "graph", "commit")  # the parts of one batch that are timed
_STAGE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600)


@dataclass
class WorkerMetrics:
    records_received: int = 0
    posts_written: int = 0
    entities_written: int = 0
    facts_written: int = 0
    batches_committed: int = 0
    skipped: int = 0  # valid posts a filter left out (e.g. outside a backfill's date range)
    graph_retries: int = 0  # waits for an unavailable graph (outage, full disk)
    transaction_retries: int = 0  # write transactions the backend re-ran (deadlocks between workers)
    observations_recorded: int = 0  # uncertain pairs/spans sent to the observation sink
    dead_letters: Counter = field(default_factory=Counter)  # by stage
    lag: dict[tuple[str, int], int] = field(default_factory=dict)  # (topic, partition) -> records behind
    model_version: str = ""
    last_loop: float = field(default_factory=time.monotonic)  # liveness: the loop turned at this time
    source_ok: bool = False  # the source answered a poll
    graph_ok: bool = True  # the graph took the last call (opened with its schema before the worker starts)
    registry: CollectorRegistry = field(default_factory=CollectorRegistry, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.stage_seconds = Histogram("mkg_stage_seconds", "Seconds one batch spent in a stage", ["stage"],
                                       buckets=_STAGE_BUCKETS, registry=self.registry)
        self.end_to_end_seconds = Histogram(
            "mkg_end_to_end_seconds", "Seconds from a record's produce time to the commit after its graph write",
            buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.registry.register(_Export(self))

    @property
    def ready(self) -> bool:
        """Readiness: the source answered and the graph is not being waited for."""
        return self.source_ok and self.graph_ok

    @property
    def dead_lettered(self) -> int:
        return sum(self.dead_letters.values())

    def time_stage(self, stage: str):
        """A context (or decorator) that observes how long ``stage`` took in this batch."""
        return self.stage_seconds.labels(stage).time()

    def committed(self, produced_at: list[float | None], now: float | None = None) -> None:
        """Record end-to-end latencies of committed records (produce times, epoch seconds; None: unknown)."""
        now = time.time() if now is None else now
        for t in produced_at:
            if t is not None:
                self.end_to_end_seconds.observe(max(0.0, now - t))

    def as_dict(self) -> dict:
        return {
            "records_received": self.records_received,
            "posts_written": self.posts_written,
            "entities_written": self.entities_written,
            "facts_written": self.facts_written,
            "batches_committed": self.batches_committed,
            "skipped": self.skipped,
            "graph_retries": self.graph_retries,
            "transaction_retries": self.transaction_retries,
            "observations_recorded": self.observations_recorded,
            "dead_lettered": self.dead_lettered,
            "dead_letters_by_stage": dict(self.dead_letters),
        }


class _Export:
    """The dataclass's counters as Prometheus metric families, read at scrape time."""

    _COUNTERS: tuple[tuple[str, str], ...] = (
        ("records_received", "Records polled from the source"),
        ("posts_written", "Posts written to the graph"),
        ("entities_written", "Entity rows written to the graph"),
        ("facts_written", "Fact rows (triples with their post) written to the graph"),
        ("batches_committed", "Batches whose offsets were committed after their graph write"),
        ("skipped", "Valid posts a filter left out"),
        ("graph_retries", "Retries while the graph was unavailable"),
        ("transaction_retries", "Write transactions the graph backend ran again (deadlocks, lock timeouts)"),
        ("observations_recorded", "Uncertain pairs and spans recorded for novelty discovery"),
    )

    def __init__(self, metrics: WorkerMetrics, clock: Callable[[], float] = time.monotonic) -> None:
        self.m = metrics
        self.clock = clock

    def collect(self):
        for name, doc in self._COUNTERS:
            yield CounterMetricFamily(f"mkg_{name}", doc, value=getattr(self.m, name))
        dead = CounterMetricFamily("mkg_dead_letters", "Records sent to the dead letters, by stage", labels=["stage"])
        for stage, n in sorted(self.m.dead_letters.items()):
            dead.add_metric([stage], n)
        yield dead
        lag = GaugeMetricFamily("mkg_consumer_lag", "Records in a partition not yet consumed by this worker",
                                labels=["topic", "partition"])
        for (topic, partition), n in sorted(self.m.lag.items()):
            lag.add_metric([topic, str(partition)], n)
        yield lag
        yield InfoMetricFamily("mkg_model", "The extractor version writing now", value={"version": self.m.model_version})
        yield GaugeMetricFamily("mkg_seconds_since_loop", "Seconds since the worker loop last turned",
                                value=self.clock() - self.m.last_loop)
        yield GaugeMetricFamily("mkg_ready", "1 when the source answered and the graph took the last write",
                                value=float(self.m.ready))
