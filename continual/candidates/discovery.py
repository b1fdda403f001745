"""One discovery run: a window of observations -> clusters -> candidate nodes, with the run's counts."""
from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from extractors.encoders import SentenceEmbedder
from graph_store.base import GraphStore
from graph_store.cypher import COUNT_ZERO_SHOT, COUNT_ZERO_SHOT_ENTITIES
from mkg_common.clock import utc_iso
from pipeline.observations import PAIR, SPAN, Observation, read_observations

from ..labelled import LabelledStore
from .clusters import Decision, decide, find_clusters
from .graph import PENDING, RELATION, TYPE, stored_candidates, write_candidates
from .params import DiscoveryParams
from .prototypes import known_prototypes
from .texts import EmbedFn, normalise, observation_text

log = logging.getLogger(__name__)

KIND_OF_OBSERVATION = {PAIR: RELATION, SPAN: TYPE}


@dataclass
class Candidate:
    """A candidate written (created or updated) by one :func:`discover` run."""

    id: str
    kind: str  # "relation" | "type"
    status: str
    created: bool  # False: an existing candidate was updated
    size: int  # observations in this window
    density: float
    known_similarity: float
    nearest_known: str | None
    window_start: str
    window_end: str
    example_post_ids: list[str] = field(default_factory=list)
    example_texts: list[str] = field(default_factory=list)
    head_types: list[str] = field(default_factory=list)
    tail_types: list[str] = field(default_factory=list)


@dataclass
class DiscoveryReport:
    """Counts of one run (JSON-serialisable via :meth:`as_dict`) and the candidates it wrote."""

    window_start: str
    window_end: str
    observations: dict[str, int] = field(default_factory=dict)  # per candidate kind
    clusters: dict[str, int] = field(default_factory=dict)
    decisions: dict[str, dict[str, int]] = field(default_factory=dict)  # kind -> action -> clusters
    candidates: list[Candidate] = field(default_factory=list)
    # relationship type -> edges the zero-shot scorer wrote for it (confirmed classes not yet learnt)
    zero_shot_edges: dict[str, int] = field(default_factory=dict)
    zero_shot_entities: dict[str, int] = field(default_factory=dict)  # entity type -> nodes it typed

    def as_dict(self) -> dict:
        return {
            "window_start": self.window_start, "window_end": self.window_end,
            "observations": sum(self.observations.values()), "observations_by_kind": self.observations,
            "clusters": sum(self.clusters.values()), "clusters_by_kind": self.clusters, "decisions": self.decisions,
            "candidates_new": sum(c.created for c in self.candidates),
            "candidates_updated": sum(not c.created for c in self.candidates),
            "candidates": [{"id": c.id, "kind": c.kind, "status": c.status, "created": c.created, "size": c.size,
                            "density": round(c.density, 4)} for c in self.candidates],
            "zero_shot_edges": self.zero_shot_edges, "zero_shot_entities": self.zero_shot_entities,
        }


def _member(obs: Observation) -> dict:
    return {"key": obs.key, "post_id": obs.post_id, "post_time": obs.post_time, "tokens": list(obs.tokens),
            "head": list(obs.head), "tail": list(obs.tail) if obs.tail else None, "head_type": obs.head_type,
            "tail_type": obs.tail_type, "entities": [list(e) for e in obs.entities]}


def _top(values) -> list[str]:
    return [v for v, _ in Counter(v for v in values if v).most_common(3)]


def _candidate_row(kind: str, d: Decision, obs: list[Observation], vectors: np.ndarray, params: DiscoveryParams,
                   window: tuple[str, str], now: str) -> tuple[dict, Candidate]:
    c = d.cluster
    members = [obs[i] for i in c.members]
    typical = sorted(c.members, key=lambda i: -float(vectors[i] @ c.centroid))
    examples, seen = [], set()
    for i in typical:
        if obs[i].post_id not in seen:
            seen.add(obs[i].post_id)
            examples.append(obs[i])
        if len(examples) == params.examples:
            break
    stored = list(d.match.members) if d.match else []
    keys = {m["key"] for m in stored}
    merged = stored + [_member(o) for o in members if o.key not in keys]
    merged = merged[:params.max_members]
    if d.match:
        cid = d.match.id
    else:
        digest = hashlib.sha256("\n".join(sorted(o.key for o in members)).encode()).hexdigest()[:12]
        cid = f"cand-{'rel' if kind == RELATION else 'type'}-{digest}"
    heads, tails = _top(o.head_type for o in members), _top(o.tail_type for o in members)
    row = {"id": cid, "kind": kind, "now": now, "size": c.size, "density": c.density,
           "known_similarity": d.known_similarity, "nearest_known": d.nearest_known,
           "window_start": window[0], "window_end": window[1],
           "example_post_ids": [o.post_id for o in examples], "example_texts": [o.text[:500] for o in examples],
           "head_types": heads, "tail_types": tails, "model_versions": sorted({o.model_version for o in members}),
           "members": [json.dumps(m, ensure_ascii=False) for m in merged], "member_count": len(merged),
           "centroid": [float(v) for v in c.centroid]}
    cand = Candidate(cid, kind, d.match.status if d.match else PENDING, d.match is None, c.size, c.density,
                     d.known_similarity, d.nearest_known, window[0], window[1], row["example_post_ids"],
                     row["example_texts"], heads, tails)
    return row, cand


def _subsample(obs: list[Observation], n: int) -> list[Observation]:
    """A deterministic, unbiased subset when a window holds more than clustering can take."""
    if len(obs) <= n:
        return obs
    return sorted(obs, key=lambda o: hashlib.sha256(o.key.encode()).hexdigest())[:n]


def run_discovery(observations_dir, window_start: datetime, window_end: datetime, graph: GraphStore,
                  labelled: LabelledStore | None = None, params: DiscoveryParams = DiscoveryParams(),
                  embed: EmbedFn | None = None, now: datetime | None = None) -> DiscoveryReport:
    """:func:`discover` with the run's counts (what the DAG reports)."""
    embed = embed or SentenceEmbedder()
    now_s = utc_iso(now)
    window = (utc_iso(window_start), utc_iso(window_end))
    report = DiscoveryReport(*window)
    all_obs = read_observations(observations_dir, window_start, window_end)
    for obs_kind, kind in KIND_OF_OBSERVATION.items():
        obs = _subsample([o for o in all_obs if o.kind == obs_kind], params.max_observations)
        report.observations[kind] = len(obs)
        if len(obs) < params.min_size:
            report.clusters[kind] = 0
            continue
        vectors = normalise(embed([observation_text(o) for o in obs]))
        clusters = find_clusters(vectors, params.link_similarity)
        known = known_prototypes(labelled, kind, embed, params.prototype_examples)
        decisions = decide(clusters, known, stored_candidates(graph, kind), params)
        report.clusters[kind] = len(clusters)
        report.decisions[kind] = dict(Counter(d.action for d in decisions))
        rows = []
        for d in decisions:
            if d.action not in ("new", "update"):
                if d.cluster.size >= params.min_size:  # the interesting refusals; small ones are the bulk
                    log.info("cluster not a candidate", extra={"kind": kind, "reason": d.action, "size": d.cluster.size,
                                                              "density": round(d.cluster.density, 3),
                                                              "known_similarity": round(d.known_similarity, 3),
                                                              "nearest_known": d.nearest_known})
                continue
            row, cand = _candidate_row(kind, d, obs, vectors, params, window, now_s)
            rows.append(row)
            report.candidates.append(cand)
            log.info("candidate " + ("created" if cand.created else "updated"),
                     extra={"kind": kind, "candidate": cand.id, "size": cand.size, "density": round(cand.density, 3),
                            "known_similarity": round(cand.known_similarity, 3), "nearest_known": cand.nearest_known})
        if rows:
            write_candidates(graph, kind, rows)
    report.zero_shot_edges = {rel: int(n) for rel, n in graph.query(COUNT_ZERO_SHOT).rows}
    report.zero_shot_entities = {etype: int(n) for etype, n in graph.query(COUNT_ZERO_SHOT_ENTITIES).rows}
    log.info("novelty discovery finished", extra=report.as_dict() | {"candidates": len(report.candidates)})
    return report


def discover(observations_dir, window_start: datetime, window_end: datetime, graph: GraphStore,
             labelled: LabelledStore | None = None, params: DiscoveryParams = DiscoveryParams(),
             embed: EmbedFn | None = None, now: datetime | None = None) -> list[Candidate]:
    """Cluster the window's observations and write large, dense, new clusters as candidates.

    ``labelled``: the store whose classes count as known; ``embed``: texts ->
    vectors (default: :class:`~extractors.encoders.SentenceEmbedder`, MiniLM),
    injectable so decisions can be tested on hand-made vectors.
    """
    return run_discovery(observations_dir, window_start, window_end, graph, labelled, params, embed, now).candidates
