"""What every source of posts provides: poll a batch, commit it, close.

Positions are opaque to the worker; it hands back exactly the records it
finished, and the source commits them. Nothing is committed that the worker
has not written to the graph (or to the dead letters).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Sequence


@dataclass(frozen=True)
class SourceRecord:
    payload: bytes
    position: Any  # source-specific: (partition, offset), (path, line), ...
    origin: str  # human-readable, e.g. "posts[2]@1041" or "archive.jsonl.gz:17"
    produced_at: float | None = None  # when the producer sent it (epoch seconds), where the source knows

    @property
    def key(self) -> str:
        """The position as a string, unique within the source: what makes a
        record's dead letter idempotent across re-deliveries."""
        return "|".join(str(p) for p in self.position) if isinstance(self.position, tuple) else str(self.position)


class Source(ABC):
    @abstractmethod
    def poll(self, max_records: int) -> list[SourceRecord]:
        """Up to ``max_records`` new records; may wait up to the configured poll timeout."""

    @abstractmethod
    def commit(self, records: Sequence[SourceRecord]) -> None:
        """Mark ``records`` (and everything before them) as done."""

    def lag(self) -> dict[tuple[str, int], int]:
        """Records waiting behind the committed position, per (topic, partition); {} where unknown."""
        return {}

    @property
    def exhausted(self) -> bool:
        """True for a finite source that has nothing more to give."""
        return False

    def close(self) -> None:
        pass
