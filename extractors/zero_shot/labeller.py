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

Which classes are confirmed is the graph's business; this module receives a
callable that lists them (``pipeline.runtime`` reads them from the graph),
and asks it again at most every ``refresh_s`` seconds.

The shipped scorer was trained on text only (the research data has no
images), so images are not passed to it: its image token has never carried
a gradient and would add nothing.
"""
from __future__ import annotations

import logging
import time
from typing import Callable, Sequence

from ..base import Extraction, ExtractionInput, Extractor, RelationMention, UncertainPair
from ..datasets import NO_RELATION, REExample
from ..schema import implied_types, relation_type_of
from ..spans import word_span, words_with_offsets
from .model import ZeroShotClass, ZeroShotModel

log = logging.getLogger(__name__)
SOURCE_PREFIX = "zero-shot@"


class ZeroShotExtractor(Extractor):
    def __init__(self, inner: Extractor, model: ZeroShotModel, classes: Callable[[], Sequence[ZeroShotClass]],
                 threshold: float | None = None, refresh_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.inner, self.model = inner, model
        self.threshold = model.threshold if threshold is None else threshold
        self._list_classes, self.refresh_s, self._clock = classes, refresh_s, clock
        self._confirmed: tuple[ZeroShotClass, ...] = ()
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

    def known_types(self) -> tuple[set[str], set[str]]:
        ents, rels = self.inner.known_types()
        return ents, rels | {relation_type_of(c.name) for c in self.active_classes()}

    def refresh(self) -> bool:
        changed = self.inner.refresh()
        if self._read_at is None or self._clock() - self._read_at >= self.refresh_s:
            changed = self._reload_classes() or changed
        return changed

    def _reload_classes(self) -> bool:
        try:
            confirmed = tuple(self._list_classes())
        except Exception:  # the class list is a side channel: keep the last one, try again later
            log.exception("zero-shot classes could not be read; keeping the last list")
            return False
        finally:
            self._read_at = self._clock()
        if confirmed == self._confirmed:
            return False
        log.info("zero-shot classes", extra={"classes": [c.name for c in confirmed]})
        self._confirmed = confirmed
        return True

    def extract(self, batch: Sequence[ExtractionInput]) -> list[Extraction]:
        out = self.inner.extract(batch)
        active = self.active_classes()
        if not active:
            return out
        examples, targets = [], []
        for item, ext in zip(batch, out):
            words = words_with_offsets(item.text)
            tokens = tuple(w for w, _, _ in words)
            for pair in ext.uncertain:
                if not isinstance(pair, UncertainPair):
                    continue
                head = word_span(words, pair.head.start, pair.head.end)
                tail = word_span(words, pair.tail.start, pair.tail.end)
                if head is None or tail is None:
                    continue
                examples.append(REExample(tokens, head, tail, NO_RELATION))
                targets.append((ext, pair))
        for (ext, pair), hit in zip(targets, self.model.label(examples, active, threshold=self.threshold)):
            if hit is None:
                continue
            cls, score = hit
            if implied_types(cls.name) not in (None, (pair.head.type, pair.tail.type)):
                continue  # the class's argument types contradict the tagger's
            ext.relations.append(RelationMention(pair.head, pair.tail, relation_type_of(cls.name), score, cls.name,
                                                 zero_shot=True, source_version=self.source_version))
        return out
