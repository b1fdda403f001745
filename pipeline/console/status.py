"""What the stream and models page shows: worker metrics, dead letters, model versions, updates.

Each reader works without the others: a worker that does not answer, a dead-letter
topic that is empty or a model store with no versions gives an empty section with
the reason, never a failed page.
"""
from __future__ import annotations

import json
import logging
import time
import urllib.request
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from ..config import Config
from ..dead_letter import DeadLetter, read_dead_letters

log = logging.getLogger(__name__)


@dataclass
class WorkerSample:
    url: str
    error: str | None = None
    records: float | None = None  # records the worker polled (posts and dead letters)
    posts_written: float | None = None
    posts_per_s: float | None = None  # records/s since the previous sample the console took of this worker
    dead_letters: dict[str, float] = field(default_factory=dict)  # by stage
    lag: float | None = None  # sum over partitions
    ready: bool | None = None
    taken_at: float = 0.0


# metric families read from a worker's /metrics (pipeline.metrics)
_RECORDS, _POSTS, _DEAD, _LAG, _READY = ("mkg_records_received", "mkg_posts_written", "mkg_dead_letters",
                                         "mkg_consumer_lag", "mkg_ready")


class MetricsReader:
    """Scrapes worker /metrics endpoints; posts/s is the change of the record counter between two
    scrapes, so it needs the page to be opened twice (the first visit shows the totals)."""

    def __init__(self, urls: list[str], timeout_s: float = 2.0) -> None:
        self.urls, self.timeout_s = list(urls), timeout_s
        self._last: dict[str, WorkerSample] = {}

    def sample(self) -> list[WorkerSample]:
        return [self._sample(url) for url in self.urls]

    def _sample(self, url: str) -> WorkerSample:
        from prometheus_client.parser import text_string_to_metric_families

        out = WorkerSample(url, taken_at=time.monotonic())
        try:
            with urllib.request.urlopen(url, timeout=self.timeout_s) as resp:  # noqa: S310 (configured URLs only)
                text = resp.read(4 * 1024 * 1024).decode("utf-8", "replace")
        except (OSError, ValueError) as exc:
            out.error = f"{type(exc).__name__}: {exc}"
            return out
        lag = 0.0
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name in (_RECORDS, f"{_RECORDS}_total"):
                    out.records = (out.records or 0.0) + s.value
                elif s.name in (_POSTS, f"{_POSTS}_total"):
                    out.posts_written = (out.posts_written or 0.0) + s.value
                elif s.name in (_DEAD, f"{_DEAD}_total"):
                    stage = s.labels.get("stage", "?")
                    out.dead_letters[stage] = out.dead_letters.get(stage, 0.0) + s.value
                elif s.name == _LAG:
                    lag += s.value
                    out.lag = lag
                elif s.name == _READY:
                    out.ready = s.value >= 1
        prev = self._last.get(url)
        if prev and prev.records is not None and out.records is not None and out.taken_at > prev.taken_at:
            out.posts_per_s = max(0.0, out.records - prev.records) / (out.taken_at - prev.taken_at)
        self._last[url] = out
        return out


@dataclass
class DeadLetterSummary:
    source: str  # where they were read from
    error: str | None
    by_stage: dict[str, int]
    newest: list[DeadLetter]  # newest first


def dead_letters(cfg: Config, limit: int) -> DeadLetterSummary:
    """The newest ``limit`` dead letters: the file sink of an embedded source, the dead-letter topic
    of a Kafka one (read from its start by a consumer that joins no group and commits nothing)."""
    if cfg.source.kind == "kafka":
        where = f"kafka topic {cfg.kafka.dead_letter_topic}"
        try:
            letters = _from_topic(cfg, limit)
        except Exception as exc:  # the page shows why, the console keeps serving
            return DeadLetterSummary(where, f"{type(exc).__name__}: {exc}", {}, [])
    else:
        where = str(cfg.worker.dead_letter_path)
        try:
            letters = read_dead_letters(cfg.worker.dead_letter_path)[-limit:]
        except (OSError, ValueError, TypeError) as exc:
            return DeadLetterSummary(where, f"{type(exc).__name__}: {exc}", {}, [])
    counts = Counter(d.stage for d in letters)
    return DeadLetterSummary(where, None, dict(counts.most_common()), list(reversed(letters)))


def _from_topic(cfg: Config, limit: int) -> list[DeadLetter]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(**cfg.kafka.client_options(), enable_auto_commit=False, group_id=None,
                             consumer_timeout_ms=1500)
    try:
        parts = [TopicPartition(cfg.kafka.dead_letter_topic, p)
                 for p in consumer.partitions_for_topic(cfg.kafka.dead_letter_topic) or ()]
        if not parts:
            return []
        consumer.assign(parts)
        ends = consumer.end_offsets(parts)
        for tp in parts:
            consumer.seek(tp, max(0, ends[tp] - limit))
        out = []
        for msg in consumer:
            out.append(DeadLetter(**json.loads(msg.value)))
            if all(consumer.position(tp) >= ends[tp] for tp in parts):
                break
        return sorted(out, key=lambda d: d.failed_at)[-limit:]
    finally:
        consumer.close()


def update_history(cfg: Config) -> list[dict]:
    """Continual updates, newest first: the task, its classes, the gate's decision and why."""
    from continual.task_queue import TaskQueue

    rows = []
    for task in TaskQueue(cfg.continual.tasks_dir).all():
        res = task.result or {}
        gate = res.get("gate") or {}
        rows.append({"id": task.id, "kind": task.kind, "classes": task.new_classes, "status": task.status,
                     "created_at": task.created_at, "version": res.get("version"),
                     "passed": gate.get("passed"), "reasons": gate.get("reasons") or [],
                     "a_f1": _f1(res.get("A")), "new_f1": _f1(res.get("new_after")),
                     "old_f1_after": _f1(res.get("old_after")), "old_f1_before": _f1(res.get("old_before")),
                     "error": res.get("error")})
    return sorted(rows, key=lambda r: r["created_at"], reverse=True)


def _f1(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None


def completion_runs(cfg: Config) -> list[dict]:
    """Completion model versions, newest first, with their held-out metrics."""
    from extractors.store import ModelStore
    from graph_store.completion.versions import KIND

    store = ModelStore(cfg.completion.models_dir, kinds=(KIND,))
    current = store.current_version(KIND)
    rows = []
    for version in store.versions(KIND):
        try:
            conf, metrics = store.config(KIND, version), store.metrics(KIND, version)
        except (OSError, ValueError):
            continue
        valid = (metrics.get("valid") or {})
        rows.append({"version": version, "current": version == current, "parent": conf.get("parent"),
                     "warm_start": (conf.get("train_config") or {}).get("warm_start"),
                     "mrr": valid.get("mrr"), "hits_at_10": valid.get("hits_at_10")})
    return list(reversed(rows))


def model_versions(cfg: Config) -> list[dict]:
    from extractors.store import version_rows

    from ..jobs.novelty import model_store_of

    return version_rows(model_store_of(cfg))


def accuracy_series(history: list[dict]) -> dict[str, list[tuple[str, float]]]:
    """A_k (F1 on every class seen so far), F1 on the new classes and on the old ones after each
    decided update, oldest first (the A_k plot)."""
    series: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for row in reversed(history):
        for key in ("a_f1", "new_f1", "old_f1_after"):
            if row[key] is not None:
                series[key].append((row["id"], row[key]))
    return dict(series)
