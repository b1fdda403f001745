"""The annotations a post carries, as its extraction: the lightest extractor there is.

A labelling tool, an upstream system or a labelled archive may send posts
whose entities and relations are already known. ``extractor.kind: gold``
writes exactly those (confidence 1), which makes a graph whose facts are
known to be right: what the multi-worker tests and benchmarks need, so that
the graph write path is what they measure and check, not a model.
"""
from __future__ import annotations

from typing import Sequence

from .base import Extraction, ExtractionInput, Extractor, RelationMention
from .schema import relation_type_of


class GoldExtractor(Extractor):
    name, version = "gold", "annotations"

    def extract(self, batch: Sequence[ExtractionInput]) -> list[Extraction]:
        out = []
        for item in batch:
            entities = list(item.entities or ())
            relations = [RelationMention(entities[h], entities[t], relation_type_of(label), 1.0, label)
                         for h, t, label in item.relations or ()]
            out.append(Extraction(item.post_id, entities, relations))
        return out
