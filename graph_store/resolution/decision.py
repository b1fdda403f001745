"""Do two entity names denote one real-world entity? A decision with its evidence.

Names alone decide most pairs, and each kind of evidence has its own strength:
the same comparable form ("São Paulo" / "Sao Paulo", "@BarackObama" / "Barack
Obama"), an acronym of the other name ("USA" / "United States of America"), a
person's surname or given name alone ("Obama" / "Barack Obama"), a spelling
variant (edit similarity, long names only: "Niger" and "Nigeria" are two
countries), and, for names that share no letters ("Holland" / "Netherlands"),
the text encoder's similarity of the two names. A name that is the other plus
words that are not designators ("South Kolkata" / "Kolkata", "GST Council" /
"GST") names something narrower, not the same thing.

Names cannot tell homonyms apart ("Paris" in France and in Texas, "bank" the
river side and the lender): contexts can. When both names come with a context
(the posts that mention them, a gloss, the country of a place), contexts whose
embeddings disagree veto the merge, whatever the names say, and the same name
merges only with contexts that agree well (homonyms share their name and
nothing else) or a post that mentions both. A merge across
entity types (PER/ORG) is allowed only for the same name with agreeing contexts:
it is the tagger that disagreed, not the world.

The encoder is passed in (``embed``: texts -> unit vectors), as everywhere in
this layer; without one, only string evidence is used and contexts are ignored.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from rapidfuzz import fuzz

from .names import DESIGNATORS, comparable, initials, is_compound, is_subsequence, looks_like_acronym

Embed = Callable[[Sequence[str]], np.ndarray]


@dataclass(frozen=True)
class EntityName:
    """A name as the graph holds it: its entity type and, when known, a context text."""

    name: str
    type: str
    context: str = ""
    posts: frozenset[str] = frozenset()  # ids of the posts that mention it (a shared post is strong evidence)


@dataclass(frozen=True)
class MergeDecision:
    merge: bool
    confidence: float  # of "one entity", 0..1; merge = confidence >= the configured threshold
    evidence: str  # which rule decided, for the audit trail on the SAME_AS link
    context_similarity: float | None = None  # cosine of the two contexts, when both had one
    vetoed: bool = False  # contexts or types ruled the merge out, whatever the confidence
    partial: bool = False  # one name is a part of the other (a surname, an acronym): it may fit several


    def merges_at(self, threshold: float) -> bool:
        """Whether this pair merges at another threshold (calibration reads the curve)."""
        return not self.vetoed and self.confidence >= threshold


@dataclass(frozen=True)
class ResolverConfig:
    threshold: float = 0.9  # merge at or above this confidence
    spelling_min: float = 0.9  # edit similarity (rapidfuzz ratio / 100) of a spelling variant
    spelling_min_length: int = 6  # shorter names differ by design ("Niger" / "Nigeria", "Jon" / "Joan")
    embedding_min: float = 0.8  # name-embedding cosine below which names are not synonyms
    context_min: float = 0.3  # context cosine below which two contexts veto a merge
    # weak evidence (a name part, an acronym, a designator, the name embedding, another entity type) merges
    # only with contexts at least this alike or a post that mentions both; None: names alone suffice.
    # Calibrated on a hand-judged sample of MNRE merges (BENCHMARKS.md, entity resolution)
    weak_context_min: float | None = 0.6
    # the same name is all that homonyms ever share ("Springfield", "bank"), so where both sides bring a
    # context, the same name merges only with contexts at least this alike or a post that mentions both;
    # None: the same name suffices. Chosen on the calibration halves of the alias sets (BENCHMARKS.md)
    same_name_context_min: float | None = 0.7


# confidence of each kind of evidence when it holds (the embedding and spelling ones scale)
SAME_FORM, SAME_WORDS, ACRONYM, HANDLE, DESIGNATED, PERSON_PART, CODE = 0.97, 0.95, 0.93, 0.93, 0.93, 0.9, 0.9
# evidence where the shorter name is a part of the longer: "Trump" fits Donald and Ivanka, "UN" many
# organisations, so a short name that fits two unmerged long ones must link neither (graph_store.resolution.job)
PARTIAL_EVIDENCE = frozenset({"acronym", "code of", "given name or surname of"})
# evidence that names alone do not make strong on a social stream (measured: about 0.55 precision on MNRE
# without agreeing contexts), on top of the partial kinds
WEAK_EVIDENCE = PARTIAL_EVIDENCE | {"the same name with a designator", "name embedding"}


def evidence_kind(evidence: str) -> str:
    """The rule an evidence text names, without its figures and notes
    ("given name or surname of; mentioned in one post" -> "given name or surname of")."""
    return evidence.split(";")[0].split(" (")[0].strip()


class Resolver:
    def __init__(self, embed: Embed | None = None, config: ResolverConfig = ResolverConfig()) -> None:
        self.embed = embed
        self.config = config

    # -- name evidence, strongest first ------------------------------------------------------------
    def _name_evidence(self, a: EntityName, b: EntityName, name_cos: float | None) -> tuple[float, str]:
        ca, cb = comparable(a.name), comparable(b.name)
        if not ca or not cb:
            return 0.0, "empty name"
        if ca == cb:
            return SAME_FORM, "same comparable form"
        if is_compound(a.name) or is_compound(b.name):
            return 0.0, "a span of several names"  # "@ArianaGrande @Camila_Cabello" is neither of them
        wa, wb = ca.split(), cb.split()
        if sorted(wa) == sorted(wb):
            return SAME_WORDS, "same words"
        for short, full in ((a.name, b.name), (b.name, a.name)):
            if looks_like_acronym(short):
                code = short.replace(".", "").lower()
                if code == initials(full):
                    return ACRONYM, "acronym"
                if len(code) == 3 and full[:1].lower() == code[0] and code not in comparable(full).split() \
                        and is_subsequence(code, comparable(full).replace(" ", "")):
                    return CODE, "code of"  # "FRA" / "France"; not "GST" / "GST Council", named after it
        short, full = sorted((wa, wb), key=len)
        if (a.name[:1] in "@#" or b.name[:1] in "@#") and len(short) > 1 and " ".join(short) in " ".join(full):
            return HANDLE, "handle or hashtag of"  # "@realDonaldTrump" / "Donald Trump"
        if a.type == b.type and a.type != "PER" and set(short) < set(full) and set(full) - set(short) <= DESIGNATORS \
                and set(short) - DESIGNATORS:
            return DESIGNATED, "the same name with a designator"  # "Bolivia, Plurinational State of" / "Bolivia"
        if a.type == b.type != "PER" and set(short) < set(full):
            # "South Kolkata", "GST Council", "NL Player of the Week": the other name and more, a narrower thing
            return 0.0, "the other name with more words"
        if a.type == b.type == "PER":
            if len(short) == 1 and len(full) > 1 and short[0] in (full[0], full[-1]) and len(short[0]) > 2:
                return PERSON_PART, "given name or surname of"
        cfg = self.config
        # one-word person names that differ by a letter are other names ("Adrian" / "Adriane")
        spelling_ok = not (a.type == "PER" and len(short) == 1)
        if spelling_ok and min(len(ca), len(cb)) >= cfg.spelling_min_length:
            spelling = fuzz.ratio(ca, cb) / 100.0
            if spelling >= cfg.spelling_min:
                return spelling, f"spelling variant ({spelling:.2f})"
        if name_cos is not None and name_cos >= cfg.embedding_min:
            return float(name_cos), f"name embedding ({name_cos:.2f})"
        return 0.0, "names differ"

    def decide_many(self, pairs: Sequence[tuple[EntityName, EntityName]]) -> list[MergeDecision]:
        """Decisions for many pairs; names and contexts are embedded once, in two batches."""
        name_cos = context_cos = [None] * len(pairs)
        if self.embed is not None and pairs:
            name_cos = self._cosines([(comparable(a.name), comparable(b.name)) for a, b in pairs])
            context_cos = self._cosines([(a.context, b.context) for a, b in pairs])
        return [self._decide(a, b, n, c) for (a, b), n, c in zip(pairs, name_cos, context_cos)]

    def decide(self, a: EntityName, b: EntityName) -> MergeDecision:
        return self.decide_many([(a, b)])[0]

    def _decide(self, a: EntityName, b: EntityName, name_cos, context_cos) -> MergeDecision:
        confidence, evidence = self._name_evidence(a, b, name_cos)
        cfg = self.config
        if context_cos is not None and context_cos < cfg.context_min:
            return MergeDecision(False, min(confidence, context_cos), f"contexts disagree; {evidence}", context_cos,
                                 vetoed=True)
        if a.type != b.type:
            # another type is the tagger's mistake only when name and contexts agree outright
            if evidence != "same comparable form" or context_cos is None:
                return MergeDecision(False, 0.0, f"types differ ({a.type}/{b.type}); {evidence}", context_cos,
                                     vetoed=True)
        kind = evidence_kind(evidence)
        if (kind in WEAK_EVIDENCE or a.type != b.type) and cfg.weak_context_min is not None:
            if a.posts & b.posts:
                evidence = f"{evidence}; mentioned in one post"
            elif context_cos is None or context_cos < cfg.weak_context_min:
                return MergeDecision(False, confidence, f"{evidence}; weak without a shared post or contexts "
                                     f">= {cfg.weak_context_min}", context_cos, vetoed=True)
        # a handle or hashtag is an identifier someone chose for one account or topic: "@FoxNews" beside
        # "Fox News" is that name written as an identifier, not a homonym
        chosen_identifier = a.name.strip()[:1] in "@#" or b.name.strip()[:1] in "@#"
        if kind == "same comparable form" and cfg.same_name_context_min is not None and context_cos is not None \
                and context_cos < cfg.same_name_context_min and not a.posts & b.posts and not chosen_identifier:
            return MergeDecision(False, confidence, f"{evidence}; may be homonyms: contexts below "
                                 f"{cfg.same_name_context_min} and no shared post", context_cos, vetoed=True)
        return MergeDecision(confidence >= cfg.threshold, confidence, evidence, context_cos,
                             partial=kind in PARTIAL_EVIDENCE)

    def _cosines(self, pairs: list[tuple[str, str]]) -> list[float | None]:
        """Cosine of each pair's two texts (None where either is empty), each distinct text embedded once."""
        texts = sorted({t for pair in pairs for t in pair if t})
        if not texts:
            return [None] * len(pairs)
        vectors = self.embed(texts)
        index = {t: i for i, t in enumerate(texts)}
        return [float(vectors[index[x]] @ vectors[index[y]]) if x and y else None for x, y in pairs]
