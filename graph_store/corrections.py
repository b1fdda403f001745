"""People correct the graph: reject one extracted fact, or fix its relation.

A correction is a ``(:Correction {id: "head|TYPE|tail"})`` node that records
the decision, who made it and when, and the evidence the fact had (its posts,
confidence, belief, model versions); the edge itself is removed (a fix writes
the corrected edge in its place, with the same posts and the person as its
source). Every later write of that fact, from the post that produced it or any
other, checks for the node first (:data:`graph_store.cypher._NOT_CORRECTED`),
so a re-extraction or a backfill never writes it back.

Corrections are labelled data too: :func:`corrections_as_labels` turns each
one into its posts labelled in the guideline's format (docs/LABELLING.md) -- a
rejected fact is a pair with no relation, a fixed one the pair with its right
relation -- for the next training of the fact head or a continual update.
"""
from __future__ import annotations

from dataclasses import dataclass

from .base import GraphStore
from .records import correction_id
from .schema import CORRECTION, ENTITY, INFERRED, POST

REJECTED, FIXED = "rejected", "fixed"
_E, _C = ENTITY.label, CORRECTION.label


class CorrectionError(ValueError):
    """The fact to correct does not exist, or the correction itself is not valid."""


@dataclass(frozen=True)
class Correction:
    id: str
    head: str
    relation: str
    tail: str
    decision: str
    fixed_to: str | None
    decided_by: str
    decided_at: str
    reason: str
    post_ids: tuple[str, ...]


def _edge_query(rel_type: str) -> str:
    return (f"MATCH (h:{_E} {{key: $head}})-[e:{rel_type}]->(t:{_E} {{key: $tail}}) WHERE e.{INFERRED} = false "
            "RETURN e.post_ids, e.confidence, e.belief, e.model_versions")


def correct_fact(graph: GraphStore, head: str, rel_type: str, tail: str, *, by: str, at: str,
                 reason: str = "", fixed_to: str | None = None) -> Correction:
    """Reject the extracted fact ``head -[rel_type]-> tail`` (or, with ``fixed_to``, replace its relation);
    returns the recorded correction. Raises :class:`CorrectionError` when there is no such fact."""
    graph.schema.check_relation_type(rel_type)  # a name spliced into Cypher must be a known, safe type
    if fixed_to is not None:
        graph.schema.check_relation_type(fixed_to)
        if fixed_to == rel_type:
            raise CorrectionError(f"the fact already is {rel_type}")
    if not by.strip():
        raise CorrectionError("a correction needs the name of who made it")
    rows = graph.query(_edge_query(rel_type), {"head": head, "tail": tail}).rows
    if not rows:
        raise CorrectionError(f"no extracted fact {head} -[{rel_type}]-> {tail}")
    post_ids, confidence, belief, versions = rows[0]
    cid = correction_id(head, rel_type, tail)
    record = {"id": cid, "head": head, "relation": rel_type, "tail": tail,
              "decision": FIXED if fixed_to else REJECTED, "fixed_to": fixed_to, "decided_by": by,
              "decided_at": at, "reason": reason, "post_ids": list(post_ids or []), "confidence": confidence,
              "belief": belief, "model_versions": list(versions or [])}
    statements = [
        (f"MERGE (c:{_C} {{id: $r.id}}) SET c += $r", {"r": record}),
        (f"MATCH (h:{_E} {{key: $head}})-[e:{rel_type}]->(t:{_E} {{key: $tail}}) WHERE e.{INFERRED} = false "
         "DELETE e", {"head": head, "tail": tail}),
    ]
    if fixed_to:
        statements.append((
            f"MATCH (h:{_E} {{key: $head}}) MATCH (t:{_E} {{key: $tail}}) "
            f"MERGE (h)-[e:{fixed_to} {{{INFERRED}: false}}]->(t) "
            "SET e.post_ids = $posts, e.confidence = 1.0, e.belief = 1.0, e.belief_miss = 0.0, "
            "e.model_version = $source, e.model_versions = [$source], e.first_seen = $at, e.last_seen = $at, "
            "e.evidence = []",
            {"head": head, "tail": tail, "posts": record["post_ids"], "source": f"person:{by}", "at": at}))
    graph.execute(statements)
    return _correction(record)


def _correction(d: dict) -> Correction:
    return Correction(d["id"], d["head"], d["relation"], d["tail"], d["decision"], d.get("fixed_to"),
                      d["decided_by"], d["decided_at"], d.get("reason") or "", tuple(d.get("post_ids") or ()))


_FIELDS = ("id", "head", "relation", "tail", "decision", "fixed_to", "decided_by", "decided_at", "reason", "post_ids")
LIST_CORRECTIONS = (f"MATCH (c:{_C}) RETURN " + ", ".join(f"c.{f}" for f in _FIELDS)
                    + " ORDER BY c.decided_at DESC, c.id")


def list_corrections(graph: GraphStore) -> list[Correction]:
    return [_correction(dict(zip(_FIELDS, row))) for row in graph.query(LIST_CORRECTIONS).rows]


_POSTS = f"MATCH (p:{POST.label}) WHERE p.id IN $ids RETURN p.id, p.text"
_NAMES = f"MATCH (e:{_E}) WHERE e.key IN $keys RETURN e.key, e.name"


def corrections_as_labels(graph: GraphStore, mnre_label) -> list[tuple[dict, dict]]:
    """(post, label) per post behind each correction, in the guideline's format: the two entities, and
    the fixed fact (``mnre_label(graph type, head type, tail type)`` names it) or none for a rejection."""
    corrections = list_corrections(graph)
    ids = sorted({p for c in corrections for p in c.post_ids})
    texts = dict(graph.query(_POSTS, {"ids": ids}).rows) if ids else {}
    keys = sorted({k for c in corrections for k in (c.head, c.tail)})
    names = dict(graph.query(_NAMES, {"keys": keys}).rows) if keys else {}
    out = []
    for c in corrections:
        head_type, tail_type = c.head.split(":", 1)[0], c.tail.split(":", 1)[0]
        head_name, tail_name = names.get(c.head, c.head.split(":", 1)[1]), names.get(c.tail, c.tail.split(":", 1)[1])
        for pid in c.post_ids:
            text = texts.get(pid)
            if text is None or head_name not in text or tail_name not in text:
                continue  # the post is gone, or the names are not its spans: nothing to label from it
            facts = ([{"head": head_name, "relation": mnre_label(c.fixed_to, head_type, tail_type), "tail": tail_name}]
                     if c.fixed_to else [])
            out.append(({"id": pid, "text": text},
                        {"id": pid, "entities": [{"text": head_name, "type": head_type},
                                                 {"text": tail_name, "type": tail_type}],
                         "facts": facts, "correction": c.id, "decided_by": c.decided_by}))
    return out
