"""Counters a worker keeps, logged per batch and printed at the end."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class WorkerMetrics:
    records_received: int = 0
    posts_written: int = 0
    entities_written: int = 0
    facts_written: int = 0
    batches_committed: int = 0
    skipped: int = 0  # valid posts a filter left out (e.g. outside a backfill's date range)
    graph_retries: int = 0
    observations_recorded: int = 0  # uncertain pairs/spans sent to the observation sink
    dead_letters: Counter = field(default_factory=Counter)  # by stage

    @property
    def dead_lettered(self) -> int:
        return sum(self.dead_letters.values())

    def as_dict(self) -> dict:
        return {
            "records_received": self.records_received,
            "posts_written": self.posts_written,
            "entities_written": self.entities_written,
            "facts_written": self.facts_written,
            "batches_committed": self.batches_committed,
            "skipped": self.skipped,
            "graph_retries": self.graph_retries,
            "observations_recorded": self.observations_recorded,
            "dead_lettered": self.dead_lettered,
            "dead_letters_by_stage": dict(self.dead_letters),
        }
