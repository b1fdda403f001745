"""The multimodal extractor behind the pipeline's :class:`Extractor` interface.

Posts -> normalised text (``extractors.normalise``) -> words -> MNER spans (typed
entities) -> ordered entity pairs -> MRE -> candidates (``extractors.facts``: the
best relation the pair's MNER types allow) -> the facts whose calibrated
confidence reaches their relation's threshold (``extractors.fact_calibration``;
the raw softmax against ``relation_threshold`` for versions no calibration was
fitted for). Models come from the model store's ``current`` pointers
and are swapped between batches when a new version is promoted (hot reload),
so no post is dropped or processed twice.

What the models were unsure about is kept on each extraction (``uncertain``):
pairs predicted ``None`` or below their threshold, and tagged spans
below the span threshold, capped per post. They are never facts; they feed
the unsupervised novelty signal (``continual.candidates``).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from itertools import permutations
from pathlib import Path
from typing import Sequence

import torch

from .adapters import merge_lora
from .base import EntityMention, Extraction, ExtractionInput, Extractor, UncertainSpan
from .datasets import REExample
from .facts import FactDecider, PairCandidate, pair_candidate
from .normalise import normalise_text
from .device import autocast, default_batch, resolve_device
from .fact_calibration import FactModel
from .features import encode_re
from .datasets import NO_RELATION, OUTSIDE
from .kinds import MNER, MRE
from .schema import implied_types, relation_type_of
from .spans import bio_spans, word_span, words_with_offsets  # noqa: F401  (bio_spans, words_with_offsets: re-exported)
from .store import ModelStore

log = logging.getLogger(__name__)

MAX_ENTITIES_PER_POST = 8  # ordered pairs grow quadratically


@dataclass
class _Models:
    mner: object | None  # None: relate given entities only (no tagger promoted yet)
    mner_task: object | None
    mre: object
    mre_task: object
    version: str


def given_spans(words: Sequence[tuple[str, int, int]], entities) -> list[tuple[int, int, EntityMention]]:
    """Word spans of given character-span entities (words overlapping the span)."""
    return [(*span, ent) for ent in entities if (span := word_span(words, ent.start, ent.end)) is not None]


def tagged_spans(text: str, words, tags, confs) -> list[tuple[int, int, EntityMention]]:
    """Word spans and mentions from the tagger's BIO tags (confidence: the weakest word)."""
    out = []
    for start, end, etype in bio_spans(tags):
        c0, c1 = words[start][1], words[end - 1][2]
        out.append((start, end, EntityMention(text[c0:c1], etype, c0, c1, float(min(confs[start:end])))))
    return out


class MultimodalExtractor(Extractor):
    name = "mkg-multimodal"
    uses_images = True

    def __init__(self, models_dir: str | Path, relation_threshold: float = 0.5, device: str = "auto",
                 batch_size: int | None = None, span_threshold: float = 0.5, max_uncertain_per_post: int = 8,
                 shipped: bool = False, precision: str = "auto", normalise: bool = True,
                 calibration: str | Path | None = None, target_precision: float = 0.9,
                 schema_rules: bool = True) -> None:
        # device auto: CUDA when a GPU is visible; there, bf16 autocast (precision auto/bf16) and
        # bigger batches (extractors.device); batch_size None: the device's default
        # shipped: a kind with no promoted version in models_dir uses the version shipped in the package
        self.store = ModelStore(models_dir, shipped=shipped)
        self.threshold = relation_threshold  # uncalibrated: the raw softmax a fact needs
        self.normalise = normalise  # HTML entities, URLs, retweet markers (extractors.normalise)
        self.target_precision = target_precision  # calibrated: per-relation thresholds reaching it on dev
        self.schema_rules = schema_rules  # symmetric relations once, the gazetteer's veto on CONTAIN
        facts = FactModel.load(calibration) if calibration else None  # fact head + calibration, or none
        self._fact_head = facts.head if facts is not None else None
        self._calibrator = facts.calibrator if facts is not None else None
        self.keep_representations = False  # candidates() for fitting the fact head keeps the pair vectors
        self._decider_for: tuple[str, FactDecider] | None = None
        self.span_threshold = span_threshold  # tagged spans below it are recorded as uncertain
        self.max_uncertain = max_uncertain_per_post  # per post and kind (pairs, spans); 0: record none
        self.device = resolve_device(device)
        self.precision = precision
        self.batch_size = batch_size or default_batch(self.device)
        self._models = self._load()

    @property
    def version(self) -> str:
        return self._models.version

    def _pointers(self) -> tuple[str | None, str | None]:
        return self.store.current_version(MNER.name), self.store.current_version(MRE.name)

    def _load(self) -> _Models:
        mner_v, mre_v = self._pointers()
        if mre_v is None:
            raise FileNotFoundError(f"no current mre model in {self.store.root} (train with `mkg train`)")
        mner = mner_task = None
        if mner_v is not None:
            mner, mner_task, _ = self.store.load(MNER.name, mner_v, self.device)
            merge_lora(mner)
        else:
            log.warning("no current mner model: only posts that carry entity annotations get entities",
                        extra={"models_dir": str(self.store.root)})
        mre, mre_task, _ = self.store.load(MRE.name, mre_v, self.device)
        merge_lora(mre)  # inference only: adapter versions run as fast as full ones
        return _Models(mner, mner_task, mre, mre_task, f"{mner_v}+{mre_v}")

    def known_types(self) -> tuple[set[str], set[str]]:
        m = self._models
        rels = {relation_type_of(label) for label in m.mre.labels if label != NO_RELATION}
        ents = {t for label in m.mre.labels for t in (implied_types(label) or ())}
        if m.mner is not None:
            ents |= MNER.classes_of(m.mner.tags)
        return ents, rels

    def refresh(self) -> bool:
        """Swap in newly promoted models; called by the worker between batches."""
        mner_v, mre_v = self._pointers()
        if f"{mner_v}+{mre_v}" == self._models.version:
            return False
        models = self._load()  # load fully before swapping: a failed load keeps the old models
        old, self._models = self._models.version, models
        log.info("extractor models reloaded", extra={"old": old, "new": models.version})
        return True

    def _pixels(self, batch: Sequence[ExtractionInput]):
        has = torch.tensor([item.image is not None for item in batch], dtype=torch.bool)
        if not bool(has.any()):
            return None, has
        from .vision import preprocess

        blank = next(item.image for item in batch if item.image is not None)
        pixels = preprocess([item.image if item.image is not None else blank for item in batch])
        return pixels, has

    @torch.no_grad()
    def extract(self, batch: Sequence[ExtractionInput]) -> list[Extraction]:
        m = self._models
        out: list[Extraction] = []
        with autocast(self.device, self.precision):
            for i in range(0, len(batch), self.batch_size):
                out += self._extract_chunk(m, batch[i:i + self.batch_size])
        return out

    def _extract_chunk(self, m: _Models, chunk: Sequence[ExtractionInput]) -> list[Extraction]:
        results, candidates = self._candidates(m, chunk)
        decide = self._decider(m)
        for ext, cands in zip(results, candidates):
            kept, unsure = decide(cands)
            ext.relations += kept
            ext.uncertain += self._cap(unsure)
        return results

    def candidates(self, batch: Sequence[ExtractionInput]) -> list[list[PairCandidate]]:
        """Every entity pair of each post with its best type-consistent relation and the features the
        fact calibration reads (what ``extract`` decides on; the calibration is fitted on these)."""
        out: list[list[PairCandidate]] = []
        with torch.no_grad(), autocast(self.device, self.precision):
            for i in range(0, len(batch), self.batch_size):
                out += self._candidates(self._models, batch[i:i + self.batch_size])[1]
        return out

    def _candidates(self, m: _Models, chunk: Sequence[ExtractionInput]):
        texts = [normalise_text(item.text) if self.normalise else item.text for item in chunk]
        words = [words_with_offsets(text) or [(text[:1], 0, 1)] for text in texts]
        pixels, has_image = self._pixels(chunk)
        sentences = [[w for w, _, _ in ws] for ws in words]
        to_tag = [b for b, item in enumerate(chunk) if item.entities is None and m.mner is not None]
        tagged = dict(zip(to_tag, zip(*self._tag(m, [sentences[b] for b in to_tag], pixels, has_image, to_tag))))
        results: list[Extraction] = []
        pair_examples: list[REExample] = []
        pair_refs: list[tuple[int, tuple, tuple]] = []
        for b, item in enumerate(chunk):
            ext = Extraction(item.post_id)
            mentions = []
            if item.entities is not None:
                spans = given_spans(words[b], item.entities)
            elif b in tagged:
                spans = tagged_spans(texts[b], words[b], *tagged[b])
            else:
                spans = []
            for start, end, mention in spans[:MAX_ENTITIES_PER_POST]:
                ext.entities.append(mention)
                mentions.append((start, end, mention))
            if item.entities is None:  # given spans are gold: certain by definition
                ext.uncertain += self._cap([UncertainSpan(mm, mm.confidence) for _, _, mm in mentions
                                            if mm.confidence < self.span_threshold])
            for head, tail in permutations(mentions, 2):
                pair_examples.append(REExample(tuple(sentences[b]), head[:2], tail[:2], NO_RELATION))
                pair_refs.append((b, head, tail))
            results.append(ext)
        probs, reps = self._relate(m, pair_examples, pair_refs, pixels, has_image)
        head = self._fact_head if self._fact_head is not None and self._fact_head.models == m.version else None
        verdicts = head.probabilities(reps) if head is not None and len(reps) else None
        labels = head.labels if head is not None else m.mre.labels
        scores = verdicts.tolist() if verdicts is not None else probs
        candidates: list[list[PairCandidate]] = [[] for _ in chunk]
        by_pair = {(b, h[2], t[2]): p for (b, h, t), p in zip(pair_refs, scores)}
        for n, (b, hd, tl) in enumerate(pair_refs):
            reverse = by_pair.get((b, tl[2], hd[2]))
            cand = pair_candidate(texts[b], hd, tl, labels, scores[n], reverse, len(results[b].entities),
                                  raw=(m.mre.labels, probs[n]) if verdicts is not None else None)
            cand.representation = reps[n] if self.keep_representations else None
            candidates[b].append(cand)
        return results, candidates

    def _decider(self, m: _Models):
        """What turns a post's candidates into facts: the calibration fitted for these model versions,
        or (none fitted, or ``calibration="off"``) the raw softmax against ``relation_threshold``."""
        if self._decider_for is None or self._decider_for[0] != m.version:  # thresholds once per version
            calibrator = self._calibrator if self._calibrator and self._calibrator.models == m.version else None
            self._decider_for = (m.version, FactDecider(calibrator, self.target_precision, self.threshold,
                                                        self.schema_rules))
        return self._decider_for[1]

    def _cap(self, observations: list) -> list:
        """The least confident first, at most ``max_uncertain`` (pairs grow quadratically)."""
        return sorted(observations, key=lambda o: o.confidence)[:max(self.max_uncertain, 0)]

    def _tag(self, m: _Models, sentences, pixels, has_image, rows: list[int]):
        """BIO tags and per-word confidences for the posts at ``rows`` of the chunk."""
        from .features import encode_ner

        if not rows:
            return [], []
        batch = encode_ner(m.mner_task.tokenizer, sentences, None, None, m.mner_task.max_len)
        if pixels is not None:
            index = torch.tensor(rows)
            batch.pixels, batch.has_image = pixels[index], has_image[index]
        else:
            batch.pixels, batch.has_image = None, has_image[torch.tensor(rows, dtype=torch.long)]
        batch = batch.to(self.device)
        emissions = m.mner(batch)
        paths = m.mner.crf.decode(emissions.float(), mask=batch.word_mask)
        conf = m.mner.marginal_confidence(emissions.float()).cpu().tolist()
        tags = [[m.mner.tags[i] for i in p] + [OUTSIDE] * (len(s) - len(p)) for p, s in zip(paths, sentences)]
        return tags, [c + [1.0] * (len(s) - len(c)) for c, s in zip(conf, sentences)]

    def _relate(self, m: _Models, examples: list[REExample], refs, pixels, has_image):
        if not examples:
            return [], []
        batch = encode_re(m.mre_task.tokenizer, examples, None, m.mre_task.max_len)
        if pixels is not None:  # one vision pass per post, shared by its pairs
            batch.pixels, batch.has_image = pixels, has_image
            batch.image_index = torch.tensor([b for b, _, _ in refs])
        h_text, h_vision, _ = m.mre.representations(batch.to(self.device))
        probs = m.mre.classifier(h_text, h_vision).float().softmax(-1).cpu().tolist()
        return probs, h_text.float().cpu().numpy()
