"""Candidate queries ``(head, relation, ?)`` -> the best new tails.

Candidates respect the types each relation was observed with (a relation
seen only PER -> ORG is not asked of a LOC head, nor answered with a PER),
which keeps predictions plausible and the work small. A prediction's score
is the softmax probability of that tail among all candidate tails of the
query, so ``threshold`` reads as "at least this likely among the candidates".
The ``top_k`` best answers of each query are taken; those already in the
graph as extracted facts are counted and skipped.

Past ``ann_min_candidates`` candidate tails, scoring each query against all
of them is the run's whole cost; an approximate inner-product index
(:mod:`.candidates`) then gives each query a shortlist of ``shortlist``
tails, which the model scores exactly, and the probability is taken among
that shortlist (the tails left out hold little of the mass when they are
left out for scoring low).

With a ``rerank`` (:mod:`.rerank`: fitted weights and the graph's
neighbourhood), each candidate's score also counts its shortest distance to
the head in the known facts, and the softmax is over those re-ranked logits.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import torch

from .candidates import CandidateIndex, IndexSettings
from .model import CompletionModel, EntityFeatures
from .rerank import Neighbourhood, Reranker
from .snapshot import GraphSnapshot


@dataclass(frozen=True)
class Prediction:
    head: str
    relation: str
    tail: str
    score: float


@dataclass
class PredictionResult:
    predictions: list[Prediction]
    queries: int  # (head, relation) pairs scored
    existing_in_top_k: int  # top-k answers that were already extracted facts
    below_threshold: int  # top-k answers dropped by the threshold


def relation_types(snapshot: GraphSnapshot) -> dict[int, tuple[set[str], set[str]]]:
    """relation id -> (head types, tail types) seen in the extracted facts."""
    out: dict[int, tuple[set[str], set[str]]] = defaultdict(lambda: (set(), set()))
    for h, r, t in snapshot.triples.tolist():
        out[r][0].add(snapshot.entities[h].type)
        out[r][1].add(snapshot.entities[t].type)
    return dict(out)


@torch.no_grad()
def predict(model: CompletionModel, feats: EntityFeatures, snapshot: GraphSnapshot, top_k: int = 3,
            threshold: float = 0.5, batch_size: int = 512, progress: bool = False,
            ann_min_candidates: int | None = None, shortlist: int = 256,
            heads_by_relation: dict[int, set[int]] | None = None,
            rerank: tuple[Reranker, Neighbourhood] | None = None) -> PredictionResult:
    """The ``top_k`` best new tails of every ``(head, relation)`` query the types allow.

    ``heads_by_relation`` (relation id -> head ids) asks only those queries, still within the types: the
    threshold calibration (:mod:`.calibrate`) asks the held-out facts' queries alone.
    ``rerank``: re-rank every candidate by its distance to the head in the neighbourhood's facts.
    """
    from tqdm import tqdm

    if top_k < 1:
        raise ValueError("top_k must be at least 1")
    table = model.all_entities(feats)
    types = np.array([e.type for e in snapshot.entities])
    existing: dict[tuple[int, int], set[int]] = defaultdict(set)
    for h, r, t in snapshot.triples.tolist():
        existing[(h, r)].add(t)
    result = PredictionResult([], 0, 0, 0)
    for rel, (head_types, tail_types) in sorted(relation_types(snapshot).items()):
        heads = np.flatnonzero(np.isin(types, sorted(head_types)))
        if heads_by_relation is not None:
            heads = np.intersect1d(heads, np.fromiter(heads_by_relation.get(rel, ()), dtype=np.int64))
        cands = np.flatnonzero(np.isin(types, sorted(tail_types)))
        if len(heads) == 0 or len(cands) < 2:
            continue
        cand_t = torch.from_numpy(cands)
        cand_vec = table[cand_t]
        k = min(top_k, len(cands) - 1)
        index = None
        if ann_min_candidates is not None and len(cands) >= ann_min_candidates:
            index = CandidateIndex(cand_vec.numpy(), IndexSettings())
        for s in tqdm(range(0, len(heads), batch_size), desc=f"predict {snapshot.relations[rel]}", unit="batch",
                      disable=not progress, leave=False):
            hb = torch.from_numpy(heads[s:s + batch_size])
            queries = model.query(table[hb], torch.full((len(hb),), rel))
            if index is None:
                scores = model.score(queries, cand_vec)
                if rerank is not None:
                    reranker, around = rerank
                    scores = reranker.combine(scores, torch.full((len(hb),), rel), around.features(hb.numpy(), cands))
                scores = scores.masked_fill(hb[:, None] == cand_t[None, :], float("-inf"))  # no self loops
                top_p, top_i = scores.softmax(dim=1).topk(k, dim=1)
            else:  # the shortlist's tails, scored exactly; -1 pads a short list
                positions = torch.from_numpy(index.search(queries.numpy(), shortlist)[1]).long()
                scores = (queries.unsqueeze(1) * cand_vec[positions.clamp(min=0)]).sum(-1)
                if rerank is not None:
                    reranker, around = rerank
                    ids = np.where(positions.numpy() >= 0, cands[positions.clamp(min=0).numpy()], -1)
                    scores = reranker.combine(scores, torch.full((len(hb),), rel), around.pair_features(hb.numpy(), ids))
                scores = scores.masked_fill((positions < 0) | (hb[:, None] == cand_t[positions.clamp(min=0)]),
                                            float("-inf"))
                top_p, top_i = scores.softmax(dim=1).topk(min(k, scores.shape[1]), dim=1)
                top_i = positions.gather(1, top_i)
            result.queries += len(hb)
            for h, ps, idx in zip(hb.tolist(), top_p.tolist(), top_i.tolist()):
                for p, i in zip(ps, idx):
                    t = int(cands[i])
                    if t in existing.get((h, rel), ()):
                        result.existing_in_top_k += 1
                    elif p < threshold:
                        result.below_threshold += 1
                    else:
                        result.predictions.append(Prediction(snapshot.entities[h].key, snapshot.relations[rel],
                                                             snapshot.entities[t].key, float(p)))
    return result
