"""Candidate nodes in the graph: ``:CandidateRelation`` and ``:CandidateType``.

Only parameterised Cypher with fixed labels is run here (``GraphStore.execute``);
the labels never come from model output.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from graph_store.base import GraphStore

RELATION, TYPE = "relation", "type"
LABEL = {RELATION: "CandidateRelation", TYPE: "CandidateType"}  # fixed node labels, never model output
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


def write_candidates(graph: GraphStore, kind: str, rows: list[dict]) -> None:
    """Create or update candidate nodes (one row each) and point them at their example posts, in one transaction."""
    label = LABEL[kind]
    graph.execute([(_upsert_statement(label), {"rows": rows}), (_unlink_statement(label), {"rows": rows}),
                   (_link_statement(label), {"rows": rows})])


def set_status(graph: GraphStore, cand: StoredCandidate, values: dict) -> None:
    graph.execute([(f"MATCH (c:{LABEL[cand.kind]} {{id: $id}}) SET c += $values", {"id": cand.id, "values": values})])


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
        res = graph.query(f"MATCH (c:{LABEL[kind]}) WHERE $status IS NULL OR c.status = $status RETURN "
                          + ", ".join(f"c.{f}" for f in _LIST_FIELDS), {"status": status})
        out += [dict(zip(_LIST_FIELDS, row)) for row in res.rows]
    return sorted(out, key=lambda d: (d["status"] != PENDING, -(d["size"] or 0), d["id"]))
