"""The extractor interface every model implements (spaCy now, MNER/MRE later).

Inputs and outputs are plain records so extractors know nothing about Kafka,
posts on the wire or the graph; the pipeline maps between them.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Sequence


@dataclass(frozen=True)
class ExtractionInput:
    """What a model sees of a post: its text and, if any, its decoded image."""

    post_id: str
    text: str
    image: Any | None = None  # a PIL.Image in RGB, or None when the post has none


@dataclass(frozen=True)
class EntityMention:
    """A typed span of the text; ``start``/``end`` are character offsets."""

    text: str
    type: str
    start: int
    end: int
    confidence: float


@dataclass(frozen=True)
class RelationMention:
    """A directed relation between two mentions; ``type`` is the graph type."""

    head: EntityMention
    tail: EntityMention
    type: str
    confidence: float
    label: str = ""  # the model's own label, e.g. "/per/org/member_of"


@dataclass
class Extraction:
    post_id: str
    entities: list[EntityMention] = field(default_factory=list)
    relations: list[RelationMention] = field(default_factory=list)


class Extractor(ABC):
    """Turns a batch of posts into typed entities and relations."""

    name: str
    version: str

    @abstractmethod
    def extract(self, batch: Sequence[ExtractionInput]) -> list[Extraction]:
        """One :class:`Extraction` per input, in order. May raise for a bad input."""

    def refresh(self) -> bool:
        """Pick up a newly promoted model, if the extractor has any; True if it changed.

        The worker calls this between batches, so a swap never splits a batch.
        """
        return False

    @property
    def model_version(self) -> str:
        """Recorded on every node and edge this extractor writes."""
        return f"{self.name}@{self.version}"
