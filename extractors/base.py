"""The extractor interface every model implements (spaCy now, MNER/MRE later).

Inputs and outputs are plain records so extractors know nothing about Kafka,
posts on the wire or the graph; the pipeline maps between them.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Sequence


@dataclass(frozen=True)
class EntityMention:
    """A typed span of the text; ``start``/``end`` are character offsets."""

    text: str
    type: str
    start: int
    end: int
    confidence: float
    # typed by the zero-shot scorer (a type no supervised model knows yet): ``confidence`` is its
    # score, ``source_version`` the scorer's version
    zero_shot: bool = False
    source_version: str = ""


@dataclass(frozen=True)
class ExtractionInput:
    """What a model sees of a post: its text, its decoded image, and given entities.

    ``entities`` are spans the post already carries (a labelling tool or an
    upstream tagger); an extractor that can use them relates these instead of
    tagging its own, which is how relation-only models run in production.
    ``relations`` are given the same way; only the gold extractor writes them.
    """

    post_id: str
    text: str
    image: Any | None = None  # a PIL.Image in RGB, or None when the post has none
    entities: tuple[EntityMention, ...] | None = None
    # relations the post carries between ``entities``: (head index, tail index, label)
    relations: tuple[tuple[int, int, str], ...] | None = None


@dataclass(frozen=True)
class RelationMention:
    """A directed relation between two mentions; ``type`` is the graph type."""

    head: EntityMention
    tail: EntityMention
    type: str
    confidence: float
    label: str = ""  # the model's own label, e.g. "/per/org/member_of"
    # labelled by the zero-shot scorer (a class no supervised model knows yet): ``confidence`` is
    # its score, ``source_version`` the scorer's version (the graph records it as the provenance)
    zero_shot: bool = False
    source_version: str = ""


@dataclass(frozen=True)
class UncertainPair:
    """An entity pair the relation model left unrelated or was unsure about.

    Not written to the graph; recorded so that recurring patterns among such
    pairs can surface as candidate new relations (``continual.candidates``).
    ``label``/``confidence``: the model's best label (possibly ``None``) and its probability.
    """

    head: EntityMention
    tail: EntityMention
    label: str
    confidence: float


@dataclass(frozen=True)
class UncertainSpan:
    """An entity span the tagger could not type confidently (candidate new types)."""

    mention: EntityMention
    confidence: float


Uncertain = UncertainPair | UncertainSpan


@dataclass
class Extraction:
    post_id: str
    entities: list[EntityMention] = field(default_factory=list)
    relations: list[RelationMention] = field(default_factory=list)
    # What the model was unsure about (never written as facts): the novelty signal.
    uncertain: list[Uncertain] = field(default_factory=list)


class Extractor(ABC):
    """Turns a batch of posts into typed entities and relations."""

    name: str
    version: str
    # Whether ``extract`` looks at ``ExtractionInput.image``. The pipeline only
    # decodes images for extractors that do: decoding is the costly,
    # memory-hungry and attack-prone part of a post.
    uses_images: bool = False

    @abstractmethod
    def extract(self, batch: Sequence[ExtractionInput]) -> list[Extraction]:
        """One :class:`Extraction` per input, in order. May raise for a bad input."""

    def refresh(self) -> bool:
        """Pick up a newly promoted model, if the extractor has any; True if it changed.

        The worker calls this between batches, so a swap never splits a batch.
        """
        return False

    def known_types(self) -> tuple[set[str], set[str]]:
        """Graph entity types and relationship types this extractor can emit.

        The graph schema is extended with them, so classes learned after
        start-up (continual updates) reach the graph; names are still checked
        against the identifier pattern before any Cypher is built.
        """
        return set(), set()

    @property
    def model_version(self) -> str:
        """Recorded on every node and edge this extractor writes."""
        return f"{self.name}@{self.version}"
