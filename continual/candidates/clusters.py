"""Average-linkage clusters of observation vectors, and which of them become candidates."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .graph import StoredCandidate
from .params import DiscoveryParams
from .texts import normalise


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

    x = normalise(vectors)
    if len(x) < 2:
        groups = [list(range(len(x)))] if len(x) else []
    else:
        labels = AgglomerativeClustering(n_clusters=None, metric="cosine", linkage="average",
                                         distance_threshold=1.0 - link_similarity).fit_predict(x)
        groups = [np.flatnonzero(labels == c).tolist() for c in np.unique(labels)]
    out = []
    for members in groups:
        centroid = normalise(x[members].mean(0))
        out.append(Cluster(members, centroid, float((x[members] @ centroid).mean())))
    return sorted(out, key=lambda c: (-c.size, c.members[0]))


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
    protos = normalise(np.stack([known[n] for n in names])) if names else None
    cents = normalise(np.stack([s.centroid for s in stored])) if stored else None
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
