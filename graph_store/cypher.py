"""The Cypher both backends run (same text for Neo4j and FalkorDB).

Every label, relationship type and key property comes from
:mod:`graph_store.schema`; names that come from models (entity types,
relation types) are spliced into the text only after a
:class:`graph_store.schema.LabelSchema` accepted them, and values always
travel as parameters. Re-running a write with the same rows changes nothing,
which is what makes at-least-once delivery exact in the graph.
"""
from __future__ import annotations

from .records import GraphBatch, InferredFact, aggregate_entities, aggregate_facts
from .schema import (
    CANDIDATE_RELATION, CANDIDATE_TYPE, CORRECTION, ENTITY, ENTITY_PROVENANCE, EXAMPLE, FACT_PROVENANCE, INFERRED, MENTIONS,
    POST, ZERO_SHOT, LabelSchema, NodeKind, SchemaViolation,
)

_E, _P = ENTITY.label, POST.label
(_EKEY,), (_PID,) = ENTITY.key, POST.key

# Provenance merge shared by nodes and edges: the time window widens, the
# model version follows the newest evidence, the confidence is the highest
# seen. Edges also union their post ids (entities have MENTIONS instead).
def _prov_on_create(props: tuple[str, ...], v: str) -> str:
    return "ON CREATE SET " + ", ".join(f"{v}.{p} = r.{p}" for p in props) + " "


_PROV_ON_MATCH = (
    "ON MATCH SET "
    "{v}.first_seen = CASE WHEN r.first_seen < {v}.first_seen THEN r.first_seen ELSE {v}.first_seen END, "
    "{v}.model_version = CASE WHEN r.last_seen >= {v}.last_seen THEN r.model_version ELSE {v}.model_version END, "
    "{v}.last_seen = CASE WHEN r.last_seen > {v}.last_seen THEN r.last_seen ELSE {v}.last_seen END, "
    "{v}.confidence = CASE WHEN r.confidence > {v}.confidence THEN r.confidence ELSE {v}.confidence END, "
    "{v}.model_versions = {v}.model_versions + [m IN r.model_versions WHERE NOT m IN {v}.model_versions] "
)
_POSTS_ON_MATCH = ", {v}.post_ids = {v}.post_ids + [p IN r.post_ids WHERE NOT p IN {v}.post_ids] "
_ENDS = f"UNWIND $rows AS r MATCH (h:{_E} {{{_EKEY}: r.head}}) MATCH (t:{_E} {{{_EKEY}: r.tail}}) "
# a fact a person rejected or fixed (graph_store.corrections) is never written again, by any post
_NOT_CORRECTED = (f"OPTIONAL MATCH (c:{CORRECTION.label} {{{CORRECTION.key[0]}: r.correction}}) "
                  "WITH h, t, r, c WHERE c IS NULL ")


def entity_statement(label: str) -> str:
    # An entity a zero-shot scorer typed carries ``zero_shot: true`` until a supervised model writes
    # the same key (same type and name): that write clears the flag, a zero-shot one never sets it back.
    return (
        f"UNWIND $rows AS r MERGE (e:{_E}:{label} {{{_EKEY}: r.key}}) "
        + _prov_on_create(ENTITY_PROVENANCE, "e") + ", e.name = r.name, e.type = '" + label + "', "
        + f"e.{ZERO_SHOT} = r.{ZERO_SHOT} "
        + _PROV_ON_MATCH.format(v="e")
        + f", e.{ZERO_SHOT} = CASE WHEN r.{ZERO_SHOT} IS NULL THEN null ELSE e.{ZERO_SHOT} END"
    )


# Belief across posts: each independence key not yet on the edge multiplies in (1 - its confidence);
# computed from the edge as it was before this write, then stored (the same for a new edge: no evidence).
_BELIEF = (
    "WITH e, r, reduce(m = coalesce(e.belief_miss, 1.0), i IN range(0, size(r.evidence) - 1) | "
    "CASE WHEN r.evidence[i] IN coalesce(e.evidence, []) THEN m ELSE m * (1.0 - r.evidence_conf[i]) END) AS miss, "
    "[k IN r.evidence WHERE NOT k IN coalesce(e.evidence, [])] AS fresh "
    "SET e.belief_miss = miss, e.belief = 1.0 - miss, e.evidence = coalesce(e.evidence, []) + fresh"
)


def fact_statement(rel_type: str) -> str:
    # ``inferred: false`` is part of the pattern, so an extracted fact and a
    # completion's guess for the same (head, type, tail) are two distinct
    # edges and neither write ever overwrites the other. A zero-shot edge of
    # the triple is taken over: it becomes the supervised fact (the flag goes,
    # its posts and the scorer's version stay in the provenance).
    return (
        _ENDS + _NOT_CORRECTED + f"MERGE (h)-[e:{rel_type} {{{INFERRED}: false}}]->(t) "
        + _prov_on_create(FACT_PROVENANCE, "e")
        + _PROV_ON_MATCH.format(v="e") + _POSTS_ON_MATCH.format(v="e") + f", e.{ZERO_SHOT} = null "
        + _BELIEF
    )


def zero_shot_fact_statement(rel_type: str) -> str:
    """Upsert facts the zero-shot scorer labelled; a triple a supervised model already wrote is left alone."""
    return (
        _ENDS + _NOT_CORRECTED
        + f"OPTIONAL MATCH (h)-[x:{rel_type}]->(t) WHERE x.{INFERRED} = false AND x.{ZERO_SHOT} IS NULL "
        "WITH h, t, r, count(x) AS supervised WHERE supervised = 0 "
        f"MERGE (h)-[e:{rel_type} {{{INFERRED}: false, {ZERO_SHOT}: true}}]->(t) "
        + _prov_on_create(FACT_PROVENANCE, "e")
        + _PROV_ON_MATCH.format(v="e") + _POSTS_ON_MATCH.format(v="e") + " "
        + _BELIEF
    )


# Zero-shot edges per relationship type and zero-shot entities per type (the novelty report counts them
# per new class).
COUNT_ZERO_SHOT = f"MATCH (:{_E})-[e]->(:{_E}) WHERE e.{ZERO_SHOT} = true RETURN type(e), count(e) ORDER BY type(e)"
COUNT_ZERO_SHOT_ENTITIES = f"MATCH (e:{_E}) WHERE e.{ZERO_SHOT} = true RETURN e.type, count(e) ORDER BY e.type"


def inferred_fact_statement(rel_type: str) -> str:
    """Upsert completion predictions (``inferred: true``); a prediction that is
    already an extracted fact is skipped, a repeated one is refreshed in place."""
    return (
        _ENDS + f"OPTIONAL MATCH (h)-[x:{rel_type}]->(t) WHERE x.{INFERRED} = false "
        "WITH h, t, r, count(x) AS extracted WHERE extracted = 0 "
        f"MERGE (h)-[e:{rel_type} {{{INFERRED}: true}}]->(t) "
        "SET e.score = r.score, e.model_version = r.model_version, e.inferred_at = r.inferred_at, e.run_id = r.run_id"
    )


# Inferred edges of earlier runs that this run did not predict again (or that
# have since been extracted) are stale; run after this run's upserts.
_INFERRED_EDGES = f"MATCH (:{_E})-[e]->(:{_E}) WHERE e.{INFERRED} = true "
REMOVE_STALE_INFERRED = _INFERRED_EDGES + "AND e.run_id <> $run_id DELETE e"
COUNT_INFERRED = _INFERRED_EDGES + "RETURN count(e)"
REMOVE_INFERRED = _INFERRED_EDGES + "DELETE e"


# A post is written once: a re-delivery (same content hash) only re-merges its
# MENTIONS; another post under a used id never replaces the stored one (the
# worker dead-letters it as a conflict before it gets here; this guard holds
# when two workers race). A node from before content hashes adopts the hash
# when its text matches.
POST_STATEMENT = (
    f"UNWIND $rows AS r MERGE (p:{_P} {{{_PID}: r.id}}) "
    "ON CREATE SET p.created_at = r.created_at, p.text = r.text, p.author = r.author, p.source = r.source, "
    "p.content_hash = r.content_hash, p.image = r.image "
    "ON MATCH SET p.content_hash = CASE WHEN p.content_hash IS NULL AND p.text = r.text "
    "THEN r.content_hash ELSE p.content_hash END "
    "WITH p, r WHERE p.content_hash = r.content_hash "
    f"UNWIND r.mentions AS k MATCH (e:{_E} {{{_EKEY}: k}}) "
    f"MERGE (p)-[m:{MENTIONS.type}]->(e) SET m.model_version = r.model_version"
)
# Stored content hashes of posts by id (null for a node from before hashes: its text decides).
POST_HASHES = f"MATCH (p:{_P}) WHERE p.{_PID} IN $ids RETURN p.{_PID}, p.content_hash, p.text"


# --- reads of the completion snapshot (graph_store.completion.snapshot) ---------------------------

# Every entity (linked or not) with the opening texts of the first posts mentioning it.
SNAPSHOT_ENTITIES = (
    f"MATCH (e:{_E}) OPTIONAL MATCH (p:{_P})-[:{MENTIONS.type}]->(e) "
    f"WITH e, p ORDER BY p.created_at, p.{_PID} "
    f"RETURN e.{_EKEY}, e.name, e.type, collect(p.text)[0..$posts] ORDER BY e.{_EKEY}"
)
# Extracted facts only: the completion model never learns from its own guesses, nor from the
# zero-shot scorer's (a supervised model has not confirmed them yet).
SNAPSHOT_FACTS = (
    f"MATCH (h:{_E})-[r]->(t:{_E}) WHERE r.{INFERRED} = false AND r.{ZERO_SHOT} IS NULL "
    f"RETURN h.{_EKEY}, type(r), t.{_EKEY} ORDER BY h.{_EKEY}, type(r), t.{_EKEY}"
)


# --- candidate nodes (continual.candidates) ----------------------------------------------------------

CANDIDATE_KINDS: tuple[NodeKind, ...] = (CANDIDATE_RELATION, CANDIDATE_TYPE)


def _candidate(label: str) -> NodeKind:
    """The candidate node kind of ``label``: only the two fixed labels reach query text."""
    for kind in CANDIDATE_KINDS:
        if kind.label == label:
            return kind
    raise SchemaViolation(f"{label!r} is not a candidate node label")


def candidate_upsert_statement(label: str) -> str:
    """Create or refresh candidates (rows: id, kind, now, window, cluster statistics, members...)."""
    (key,) = _candidate(label).key
    return (
        f"UNWIND $rows AS r MERGE (c:{label} {{{key}: r.id}}) "
        "ON CREATE SET c.created_at = r.now, c.status = 'pending', c.kind = r.kind, "
        "c.first_window_start = r.window_start "
        "SET c.updated_at = r.now, c.size = r.size, c.density = r.density, c.known_similarity = r.known_similarity, "
        "c.nearest_known = r.nearest_known, c.window_start = r.window_start, c.window_end = r.window_end, "
        "c.example_post_ids = r.example_post_ids, c.example_texts = r.example_texts, c.head_types = r.head_types, "
        "c.tail_types = r.tail_types, c.model_versions = r.model_versions, c.members = r.members, "
        "c.member_count = r.member_count, c.centroid = r.centroid"
    )


def candidate_unlink_statement(label: str) -> str:
    """Drop the candidates' example links (before linking this run's examples)."""
    (key,) = _candidate(label).key
    return f"UNWIND $rows AS r MATCH (c:{label} {{{key}: r.id}})-[x:{EXAMPLE.type}]->(:{_P}) DELETE x"


def candidate_link_statement(label: str) -> str:
    """Link each candidate to its example posts (rows: id, example_post_ids)."""
    (key,) = _candidate(label).key
    return (f"UNWIND $rows AS r MATCH (c:{label} {{{key}: r.id}}) UNWIND r.example_post_ids AS pid "
            f"MATCH (p:{_P} {{{_PID}: pid}}) MERGE (c)-[:{EXAMPLE.type}]->(p)")


def candidate_set_statement(label: str) -> str:
    """Set properties of one candidate (parameters: id, values)."""
    (key,) = _candidate(label).key
    return f"MATCH (c:{label} {{{key}: $id}}) SET c += $values"


def candidate_query(label: str, fields: tuple[str, ...], where: str = "") -> str:
    """``fields`` of the candidates of ``label``, ordered by id.

    ``where``: ``"id"`` (parameter ``$id``), ``"status"`` (parameter
    ``$status``, null for all) or ``""`` (all). Fields must be declared
    properties of the candidate node.
    """
    node = _candidate(label)
    unknown = [f for f in fields if f not in node.all_properties]
    if unknown:
        raise SchemaViolation(f"{unknown} are not properties of {label}")
    (key,) = node.key
    cond = {"": "", "id": f" WHERE c.{key} = $id", "status": " WHERE $status IS NULL OR c.status = $status"}[where]
    return f"MATCH (c:{label}){cond} RETURN " + ", ".join(f"c.{f}" for f in fields) + f" ORDER BY c.{key}"


# --- validated batches ---------------------------------------------------------------------------------

def batch_statements(batch: GraphBatch, schema: LabelSchema) -> list[tuple[str, dict]]:
    """Validated (statement, parameters) pairs for one batch, in write order.

    Raises :class:`graph_store.schema.SchemaViolation` before anything is built
    if any label or relationship type is not in the schema.
    """
    entities = aggregate_entities(batch.entities)
    facts = aggregate_facts([f for f in batch.facts if not f.zero_shot])
    zero_shot = aggregate_facts([f for f in batch.facts if f.zero_shot])
    for label in entities:
        schema.check_entity_type(label)
    for rel in (*facts, *zero_shot):
        schema.check_relation_type(rel)
    out: list[tuple[str, dict]] = []
    for label, rows in entities.items():  # sorted by type, rows by key (graph_store.records)
        out.append((entity_statement(label), {"rows": rows}))
    for rel, rows in facts.items():
        out.append((fact_statement(rel), {"rows": rows}))
    for rel, rows in zero_shot.items():  # after the supervised facts: a triple both wrote stays supervised
        out.append((zero_shot_fact_statement(rel), {"rows": rows}))
    if batch.posts:
        rows = [
            {"id": p.id, "created_at": p.created_at, "text": p.text, "author": p.author,
             "source": p.source, "mentions": sorted(set(p.mentions)), "model_version": p.model_version,
             "content_hash": p.content_hash, "image": p.image}
            for p in sorted(batch.posts, key=lambda p: p.id)
        ]
        out.append((POST_STATEMENT, {"rows": rows}))
    return out


def inferred_statements(facts: list[InferredFact], run_id: str, schema: LabelSchema,
                        batch_rows: int = 1000) -> list[tuple[str, dict]]:
    """Validated upserts of ``facts`` (UNWIND batches per type), then the
    removal of stale inferred edges; raises SchemaViolation before building any."""
    by_type: dict[str, list[dict]] = {}
    for f in facts:
        by_type.setdefault(f.relation, []).append(
            {"head": f.head_key, "tail": f.tail_key, "score": f.score, "model_version": f.model_version,
             "inferred_at": f.inferred_at, "run_id": run_id})
    for rel in by_type:
        schema.check_relation_type(rel)
    out: list[tuple[str, dict]] = []
    for rel, rows in sorted(by_type.items()):
        for i in range(0, len(rows), batch_rows):
            out.append((inferred_fact_statement(rel), {"rows": rows[i:i + batch_rows]}))
    out.append((REMOVE_STALE_INFERRED, {"run_id": run_id}))
    return out
