"""Candidate nodes in the graph: ``:CandidateRelation`` and ``:CandidateType``.

Only parameterised Cypher with fixed labels is run here (``GraphStore.execute``);
the labels never come from model output.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from graph_store.base import GraphStore
from graph_store.cypher import (candidate_link_statement, candidate_query, candidate_set_statement,
                                candidate_unlink_statement, candidate_upsert_statement)
from graph_store.schema import CANDIDATE_RELATION, CANDIDATE_TYPE

RELATION, TYPE = "relation", "type"
LABEL = {RELATION: CANDIDATE_RELATION.label, TYPE: CANDIDATE_TYPE.label}  # fixed node labels, never model output
PENDING, CONFIRMED, REJECTED = "pending", "confirmed", "rejected"


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


_FIELDS = ("id", "status", "centroid", "members", "name", "created_at", "first_window_start")


def _stored(kind: str, row: list) -> StoredCandidate:
    d = dict(zip(_FIELDS, row))
    return StoredCandidate(d["id"], kind, d["status"], np.asarray(d["centroid"] or [], dtype=np.float64),
                           tuple(json.loads(m) for m in d["members"] or []), d["name"], d["created_at"],
                           d["first_window_start"])


def stored_candidates(graph: GraphStore, kind: str, candidate_id: str | None = None) -> list[StoredCandidate]:
    """Stored candidates of one kind (all, or the one with ``candidate_id``)."""
    res = graph.query(candidate_query(LABEL[kind], _FIELDS, "" if candidate_id is None else "id"),
                      {"id": candidate_id})
    return [_stored(kind, row) for row in res.rows]


def confirmed_names(graph: GraphStore, kind: str) -> list[tuple[str, str]]:
    """(name, description) of the confirmed candidates of one kind, by name; a light read (no members)."""
    res = graph.query(candidate_query(LABEL[kind], ("name", "description"), "status"), {"status": CONFIRMED})
    return sorted({(name, description or "") for name, description in res.rows if name})


def write_candidates(graph: GraphStore, kind: str, rows: list[dict]) -> None:
    """Create or update candidate nodes (one row each) and point them at their example posts, in one transaction."""
    label = LABEL[kind]
    graph.execute([(candidate_upsert_statement(label), {"rows": rows}),
                   (candidate_unlink_statement(label), {"rows": rows}),
                   (candidate_link_statement(label), {"rows": rows})])


def set_status(graph: GraphStore, cand: StoredCandidate, values: dict) -> None:
    graph.execute([(candidate_set_statement(LABEL[cand.kind]), {"id": cand.id, "values": values})])


def find_candidate(graph: GraphStore, candidate_id: str) -> StoredCandidate | None:
    """The stored candidate of either kind with ``candidate_id``, or None."""
    for kind in (RELATION, TYPE):
        for cand in stored_candidates(graph, kind, candidate_id):
            return cand
    return None


_LIST_FIELDS = ("id", "kind", "status", "name", "size", "density", "known_similarity", "nearest_known",
                "member_count", "head_types", "tail_types", "window_start", "window_end", "updated_at",
                "example_post_ids", "example_texts")


def list_candidates(graph: GraphStore, status: str | None = None) -> list[dict]:
    """Candidates of both kinds (largest first), without members and centroids."""
    out = []
    for kind in (RELATION, TYPE):
        res = graph.query(candidate_query(LABEL[kind], _LIST_FIELDS, "status"), {"status": status})
        out += [dict(zip(_LIST_FIELDS, row)) for row in res.rows]
    return sorted(out, key=lambda d: (d["status"] != PENDING, -(d["size"] or 0), d["id"]))
