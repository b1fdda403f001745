"""Zero-shot labelling in the stream: an extractor that adds the scorer's facts to another's.

It wraps the worker's extractor. Every pair the supervised model left
unrelated (``Extraction.uncertain``) is scored against the active zero-shot
classes: the confirmed classes (``mkg candidates confirm``) that the
supervised model does not know yet. The best class at or above the
threshold becomes a fact marked ``zero_shot`` with the score as its
confidence and the scorer's version as its provenance. Once a continual
update that knows the class is promoted (the wrapped extractor hot-reloads
it), the class is no longer active: the supervised model labels it from
then on, and its writes take over the zero-shot edges of the same triples
(:func:`graph_store.cypher.fact_statement`).

Facts are written only where the scorer is precise enough (``write_facts``: by
default, where its measured precision on held-out relations reaches the
extractor's target precision); otherwise a label stays a suggestion: the pair's
observation carries the suggested class, for review, never a fact.

New entity types work the same way on spans the tagger typed with low
confidence (``UncertainSpan``): the best active type at or above
``type_threshold`` retypes the span, as an entity marked ``zero_shot``, and the
relations and pairs of that span follow it. A span is scored as a sample whose
head and tail are both the span (:mod:`.types`).

Which classes are confirmed is the graph's business; this module receives
callables that list them (``pipeline.runtime`` reads them from the graph),
and asks them again at most every ``refresh_s`` seconds.

The shipped scorer was trained on text only (the research data has no
images), so images are not passed to it: its image token has never carried
a gradient and would add nothing.
"""
from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Callable, Sequence

from ..base import (EntityMention, Extraction, ExtractionInput, Extractor, RelationMention, UncertainPair,
                    UncertainSpan)
from ..datasets import NO_RELATION, REExample
from ..schema import implied_types, relation_type_of
from ..spans import word_span, words_with_offsets
from .model import ZeroShotClass, ZeroShotModel
from .types import DEFAULT_TYPE_THRESHOLD

log = logging.getLogger(__name__)
SOURCE_PREFIX = "zero-shot@"


class ZeroShotExtractor(Extractor):
    def __init__(self, inner: Extractor, model: ZeroShotModel, classes: Callable[[], Sequence[ZeroShotClass]],
                 threshold: float | None = None, refresh_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic,
                 types: Callable[[], Sequence[ZeroShotClass]] | None = None,
                 type_threshold: float | None = None, write_facts: bool = True) -> None:
        self.inner, self.model = inner, model
        # False: a zero-shot label is a suggestion (the pair is kept as an observation labelled with the
        # class, for review and the next update), never a fact in the graph
        self.write_facts = write_facts
        self.threshold = model.threshold if threshold is None else threshold
        self.type_threshold = DEFAULT_TYPE_THRESHOLD if type_threshold is None else type_threshold
        self._list_classes, self.refresh_s, self._clock = classes, refresh_s, clock
        self._list_types = types or (lambda: ())
        self._confirmed: tuple[ZeroShotClass, ...] = ()
        self._confirmed_types: tuple[ZeroShotClass, ...] = ()
        self._read_at: float | None = None
        self._reload_classes()

    # -- delegated: the wrapped extractor is the one the worker knows ----------------------------------
    @property
    def name(self) -> str:  # type: ignore[override]
        return self.inner.name

    @property
    def version(self) -> str:  # type: ignore[override]
        return self.inner.version

    @property
    def uses_images(self) -> bool:  # type: ignore[override]
        return self.inner.uses_images

    @property
    def model_version(self) -> str:
        return self.inner.model_version

    @property
    def source_version(self) -> str:
        return SOURCE_PREFIX + self.model.version

    def active_classes(self) -> list[ZeroShotClass]:
        """Confirmed classes whose graph type the wrapped extractor cannot emit yet."""
        _, known = self.inner.known_types()
        return [c for c in self._confirmed if relation_type_of(c.name) not in known]

    def active_types(self) -> list[ZeroShotClass]:
        """Confirmed entity types the wrapped extractor cannot emit yet."""
        known, _ = self.inner.known_types()
        return [c for c in self._confirmed_types if c.name not in known]

    def known_types(self) -> tuple[set[str], set[str]]:
        ents, rels = self.inner.known_types()
        return (ents | {c.name for c in self.active_types()},
                rels | {relation_type_of(c.name) for c in self.active_classes()})

    def refresh(self) -> bool:
        changed = self.inner.refresh()
        if self._read_at is None or self._clock() - self._read_at >= self.refresh_s:
            changed = self._reload_classes() or changed
        return changed

    def _reload_classes(self) -> bool:
        try:
            confirmed, types = tuple(self._list_classes()), tuple(self._list_types())
        except Exception:  # the class list is a side channel: keep the last one, try again later
            log.exception("zero-shot classes could not be read; keeping the last list")
            return False
        finally:
            self._read_at = self._clock()
        if (confirmed, types) == (self._confirmed, self._confirmed_types):
            return False
        log.info("zero-shot classes", extra={"classes": [c.name for c in confirmed], "types": [c.name for c in types]})
        self._confirmed, self._confirmed_types = confirmed, types
        return True

    def extract(self, batch: Sequence[ExtractionInput]) -> list[Extraction]:
        out = self.inner.extract(batch)
        types = self.active_types()
        if types:
            self._retype_spans(batch, out, types)
        active = self.active_classes()
        if not active:
            return out
        examples, targets = _uncertain_examples(batch, out, UncertainPair, lambda p: (p.head, p.tail))
        for (ext, pair), hit in zip(targets, self.model.label(examples, active, threshold=self.threshold)):
            if hit is None:
                continue
            cls, score = hit
            if implied_types(cls.name) not in (None, (pair.head.type, pair.tail.type)):
                continue  # the class's argument types contradict the tagger's
            if not self.write_facts:
                ext.uncertain = [UncertainPair(pair.head, pair.tail, cls.name, score) if u is pair else u
                                 for u in ext.uncertain]
                continue
            ext.relations.append(RelationMention(pair.head, pair.tail, relation_type_of(cls.name), score, cls.name,
                                                 zero_shot=True, source_version=self.source_version))
        return out

    def _retype_spans(self, batch: Sequence[ExtractionInput], out: list[Extraction],
                      types: list[ZeroShotClass]) -> None:
        """Low-confidence spans whose best new type clears the type threshold become that type."""
        examples, targets = _uncertain_examples(batch, out, UncertainSpan, lambda s: (s.mention, s.mention))
        retyped: dict[int, dict[EntityMention, EntityMention]] = {}
        for (ext, obs), hit in zip(targets, self.model.label(examples, types, threshold=self.type_threshold)):
            mention = obs.mention
            if hit is not None:
                cls, score = hit
                retyped.setdefault(id(ext), {})[mention] = replace(
                    mention, type=cls.name, confidence=score, zero_shot=True, source_version=self.source_version)
        for ext in out:
            new = retyped.get(id(ext))
            if not new:
                continue
            ext.entities = [new.get(m, m) for m in ext.entities]
            moved = [replace(r, head=new.get(r.head, r.head), tail=new.get(r.tail, r.tail)) for r in ext.relations]
            # a relation whose label implies the span's old type no longer holds for the new one
            ext.relations = [r for r in moved if implied_types(r.label) in (None, (r.head.type, r.tail.type))]
            ext.uncertain = [replace(u, head=new.get(u.head, u.head), tail=new.get(u.tail, u.tail))
                             if isinstance(u, UncertainPair) else u for u in ext.uncertain]


def _uncertain_examples(batch: Sequence[ExtractionInput], out: list[Extraction], kind: type,
                        spans: Callable) -> tuple[list[REExample], list[tuple[Extraction, object]]]:
    """Scorer samples for the ``kind`` observations the inner extractor was unsure of, with their
    (extraction, observation). ``spans(obs)`` is its (head, tail) mentions (a span is both); one whose
    characters do not fall on word boundaries is skipped: the scorer reads words."""
    examples, targets = [], []
    for item, ext in zip(batch, out):
        words = words_with_offsets(item.text)
        tokens = tuple(w for w, _, _ in words)
        for obs in ext.uncertain:
            if not isinstance(obs, kind):
                continue
            head_mention, tail_mention = spans(obs)
            head = word_span(words, head_mention.start, head_mention.end)
            tail = word_span(words, tail_mention.start, tail_mention.end)
            if head is None or tail is None:
                continue
            examples.append(REExample(tokens, head, tail, NO_RELATION))
            targets.append((ext, obs))
    return examples, targets
