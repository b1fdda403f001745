"""From a post's entity pairs to the facts written: candidates, their features, the decision.

Every ordered pair of a post's entities is a :class:`PairCandidate`: the
relation the MRE model ranks highest **among those MNER's types allow**
(a ``/per/org/...`` label is never offered for two places), its probability,
the ``None`` probability, and the features the fact calibration reads
(:mod:`extractors.fact_calibration`). :class:`FactDecider` turns a post's
candidates into facts and the pairs it left out (the novelty signal):

- calibrated: a fact's ``confidence`` is P(right), and it is written when that
  reaches its relation's threshold for the target precision;
- uncalibrated: the raw softmax against ``relation_threshold`` (the behaviour
  before calibration existed, and what a version with no calibration gets);
- schema rules: a symmetric relation is written once per pair (its two
  directions are one fact), and ``CONTAIN`` between places the gazetteer knows
  is vetoed where it is impossible, or turned round where only the other
  direction holds.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

from .base import EntityMention, RelationMention, UncertainPair
from .datasets import NO_RELATION
from .fact_calibration import FactCalibrator, logit
from .schema import SYMMETRIC_RELATIONS, implied_types, relation_type_of

CONTAIN = "/loc/loc/contain"


@dataclass
class PairCandidate:
    head: EntityMention
    tail: EntityMention
    label: str  # the best type-consistent relation label; NO_RELATION when the types allow none
    probability: float  # the MRE softmax of ``label``
    none_probability: float
    top_label: str  # the MRE's own argmax over every label (what the uncalibrated path writes)
    top_probability: float
    features: dict[str, float] = field(default_factory=dict)
    representation: object = None  # the MRE's pair vector, kept only when fitting the fact head


def pair_candidate(text: str, head: tuple, tail: tuple, labels: Sequence[str], probs: Sequence[float],
                   reverse: Sequence[float] | None, n_entities: int,
                   raw: tuple[Sequence[str], Sequence[float]] | None = None) -> PairCandidate:
    """The candidate for ``head`` -> ``tail`` ((first word, end word, mention) each) from the label
    probabilities ``probs`` (the fact head's, or the MRE's when there is none; and those of the reverse
    pair, when there is one). ``raw``: the MRE's own labels and probabilities beside the fact head's."""
    hs, he, hm = head
    ts, te, tm = tail
    allowed = [i for i, lab in enumerate(labels) if lab != NO_RELATION and implied_types(lab) in
               (None, (hm.type, tm.type))]
    none_i = list(labels).index(NO_RELATION) if NO_RELATION in labels else None
    top = max(range(len(labels)), key=lambda i: probs[i])
    best = max(allowed, key=lambda i: probs[i]) if allowed else None
    label = labels[best] if best is not None else NO_RELATION
    p = probs[best] if best is not None else 0.0
    p_none = probs[none_i] if none_i is not None else 0.0
    feats = {
        "logit_p": logit(p), "logit_none": logit(p_none), "is_top": float(best == top),
        "span_min": min(hm.confidence, tm.confidence), "span_max": max(hm.confidence, tm.confidence),
        "handle_head": float(hm.text.startswith("@")), "handle_tail": float(tm.text.startswith("@")),
        "hashtag_head": float(text[max(hm.start - 1, 0):hm.start] == "#"),
        "hashtag_tail": float(text[max(tm.start - 1, 0):tm.start] == "#"),
        "caps_pair": float(hm.text.isupper() and tm.text.isupper()),
        "distance": math.log1p(abs(ts - hs)), "entities": math.log(max(n_entities, 1)),
        "head_first": float(hs < ts),
    }
    if reverse is not None and best is not None:
        feats["reverse_p"] = reverse[best]
    if raw is not None and label in raw[0]:
        feats["logit_mre"] = logit(raw[1][list(raw[0]).index(label)])
    if label != NO_RELATION:
        feats[f"rel={label}"] = 1.0
        feats.update(place_features(label, hm, tm))
    return PairCandidate(hm, tm, label, p, p_none, labels[top], probs[top], feats)


def place_features(label: str, head: EntityMention, tail: EntityMention) -> dict[str, float]:
    """What the gazetteer says: for CONTAIN, +1 possible / -1 impossible / 0 unknown; for any
    relation, whether a PER or ORG end is a known place name (a likely type error)."""
    from .gazetteer import gazetteer

    g = gazetteer()
    out = {}
    if label == CONTAIN:
        verdict = g.contains(head.text, tail.text)
        out["gaz_contain"] = 0.0 if verdict is None else (1.0 if verdict else -1.0)
    for end, mention in (("head", head), ("tail", tail)):
        if mention.type in ("PER", "ORG") and g.knows(mention.text):
            out[f"gaz_place_as_{mention.type.lower()}"] = 1.0
        if mention.type == "LOC":
            out[f"gaz_known_{end}"] = float(g.knows(mention.text))
    return out


class FactDecider:
    """A post's candidates -> (facts, pairs left out)."""

    def __init__(self, calibrator: FactCalibrator | None, target_precision: float, raw_threshold: float,
                 schema_rules: bool = True) -> None:
        self.calibrator = calibrator
        self.raw_threshold = raw_threshold
        self.schema_rules = schema_rules
        self.thresholds = calibrator.thresholds(target_precision) if calibrator is not None else {}

    def confidence(self, cand: PairCandidate) -> tuple[str, float]:
        """The label the decision is about and its confidence (calibrated when a calibrator is set)."""
        if self.calibrator is None:
            return cand.top_label, cand.top_probability
        if cand.label == NO_RELATION:
            return NO_RELATION, cand.none_probability
        return cand.label, self.calibrator.probability(cand.features)

    def threshold(self, label: str) -> float:
        if self.calibrator is None:
            return self.raw_threshold
        return self.thresholds.get(label, self.thresholds.get("*", 1.01))

    def __call__(self, candidates: Sequence[PairCandidate]) -> tuple[list[RelationMention], list[UncertainPair]]:
        kept: list[RelationMention] = []
        unsure: list[UncertainPair] = []
        for cand in candidates:
            label, conf = self.confidence(cand)
            head, tail = cand.head, cand.tail
            if label == NO_RELATION or conf < self.threshold(label):
                unsure.append(UncertainPair(head, tail, label, conf))
                continue
            if implied_types(label) not in (None, (head.type, tail.type)):
                continue  # the relation's implied types contradict MNER's types
            if self.schema_rules and label == CONTAIN:
                from .gazetteer import gazetteer

                if gazetteer().contains(head.text, tail.text) is False:
                    if not gazetteer().contains(tail.text, head.text):
                        continue  # impossible either way: two cities, two countries, one place twice
                    head, tail = tail, head
            kept.append(RelationMention(head, tail, relation_type_of(label), conf, label))
        return (self._once(kept) if self.schema_rules else kept), unsure

    @staticmethod
    def _once(facts: list[RelationMention]) -> list[RelationMention]:
        """One fact per pair and relation: a symmetric relation's two directions, or a CONTAIN turned
        round onto another, keep the more confident."""
        best: dict[tuple, RelationMention] = {}
        for f in facts:
            ends = (f.head.start, f.head.end, f.tail.start, f.tail.end)
            if f.label in SYMMETRIC_RELATIONS:
                ends = min(ends, (f.tail.start, f.tail.end, f.head.start, f.head.end))
            key = (f.label, ends)
            if key not in best or f.confidence > best[key].confidence:
                best[key] = f
        return list(best.values())
