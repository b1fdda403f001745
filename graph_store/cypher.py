"""The write statements both backends run (same Cypher for Neo4j and FalkorDB).

Labels and relationship types are spliced into the text only after
:class:`extractors.schema.LabelSchema` accepted them; values always travel as
parameters. Re-running a statement with the same rows changes nothing, which
is what makes at-least-once delivery exact in the graph.
"""
from __future__ import annotations

from extractors.schema import LabelSchema

from .records import GraphBatch, InferredFact, aggregate_entities, aggregate_facts

# Provenance merge shared by nodes and edges: union of post ids, widened time
# window; the model version and confidence follow the newest evidence.
_PROV_ON_CREATE = (
    "ON CREATE SET {v}.post_ids = r.post_ids, {v}.first_seen = r.first_seen, {v}.last_seen = r.last_seen, "
    "{v}.confidence = r.confidence, {v}.model_version = r.model_version, {v}.model_versions = r.model_versions "
)
_PROV_ON_MATCH = (
    "ON MATCH SET {v}.post_ids = {v}.post_ids + [p IN r.post_ids WHERE NOT p IN {v}.post_ids], "
    "{v}.first_seen = CASE WHEN r.first_seen < {v}.first_seen THEN r.first_seen ELSE {v}.first_seen END, "
    "{v}.model_version = CASE WHEN r.last_seen >= {v}.last_seen THEN r.model_version ELSE {v}.model_version END, "
    "{v}.last_seen = CASE WHEN r.last_seen > {v}.last_seen THEN r.last_seen ELSE {v}.last_seen END, "
    "{v}.confidence = CASE WHEN r.confidence > {v}.confidence THEN r.confidence ELSE {v}.confidence END, "
    "{v}.model_versions = {v}.model_versions + [m IN r.model_versions WHERE NOT m IN {v}.model_versions] "
)


def entity_statement(label: str) -> str:
    return (
        f"UNWIND $rows AS r MERGE (e:Entity:{label} {{key: r.key}}) "
        + _PROV_ON_CREATE.format(v="e") + ", e.name = r.name, e.type = '" + label + "' "
        + _PROV_ON_MATCH.format(v="e")
    )


def fact_statement(rel_type: str) -> str:
    # ``inferred: false`` is part of the pattern, so an extracted fact and a
    # completion's guess for the same (head, type, tail) are two distinct
    # edges and neither write ever overwrites the other.
    return (
        "UNWIND $rows AS r MATCH (h:Entity {key: r.head}) MATCH (t:Entity {key: r.tail}) "
        f"MERGE (h)-[e:{rel_type} {{inferred: false}}]->(t) "
        + _PROV_ON_CREATE.format(v="e") + " "
        + _PROV_ON_MATCH.format(v="e")
    )


def inferred_fact_statement(rel_type: str) -> str:
    """Upsert completion predictions (``inferred: true``); a prediction that is
    already an extracted fact is skipped, a repeated one is refreshed in place."""
    return (
        "UNWIND $rows AS r MATCH (h:Entity {key: r.head}) MATCH (t:Entity {key: r.tail}) "
        f"OPTIONAL MATCH (h)-[x:{rel_type}]->(t) WHERE x.inferred = false "
        "WITH h, t, r, count(x) AS extracted WHERE extracted = 0 "
        f"MERGE (h)-[e:{rel_type} {{inferred: true}}]->(t) "
        "SET e.score = r.score, e.model_version = r.model_version, e.inferred_at = r.inferred_at, e.run_id = r.run_id"
    )


# Inferred edges of earlier runs that this run did not predict again (or that
# have since been extracted) are stale; run after this run's upserts.
REMOVE_STALE_INFERRED = "MATCH (:Entity)-[e]->(:Entity) WHERE e.inferred = true AND e.run_id <> $run_id DELETE e"
COUNT_INFERRED = "MATCH (:Entity)-[e]->(:Entity) WHERE e.inferred = true RETURN count(e)"
REMOVE_INFERRED = "MATCH (:Entity)-[e]->(:Entity) WHERE e.inferred = true DELETE e"


# A post is written once: a re-delivery (same content hash) only re-merges its
# MENTIONS; another post under a used id never replaces the stored one (the
# worker dead-letters it as a conflict before it gets here; this guard holds
# when two workers race). A node from before content hashes adopts the hash
# when its text matches.
POST_STATEMENT = (
    "UNWIND $rows AS r MERGE (p:Post {id: r.id}) "
    "ON CREATE SET p.created_at = r.created_at, p.text = r.text, p.author = r.author, p.source = r.source, "
    "p.content_hash = r.content_hash, p.image = r.image "
    "ON MATCH SET p.content_hash = CASE WHEN p.content_hash IS NULL AND p.text = r.text "
    "THEN r.content_hash ELSE p.content_hash END "
    "WITH p, r WHERE p.content_hash = r.content_hash "
    "UNWIND r.mentions AS k MATCH (e:Entity {key: k}) "
    "MERGE (p)-[m:MENTIONS]->(e) SET m.model_version = r.model_version"
)
# Stored content hashes of posts by id (null for a node from before hashes: its text decides).
POST_HASHES = "MATCH (p:Post) WHERE p.id IN $ids RETURN p.id, p.content_hash, p.text"


def batch_statements(batch: GraphBatch, schema: LabelSchema) -> list[tuple[str, dict]]:
    """Validated (statement, parameters) pairs for one batch, in write order.

    Raises :class:`extractors.schema.SchemaViolation` before anything is built
    if any label or relationship type is not in the schema.
    """
    entities = aggregate_entities(batch.entities)
    facts = aggregate_facts(batch.facts)
    for label in entities:
        schema.check_entity_type(label)
    for rel in facts:
        schema.check_relation_type(rel)
    out: list[tuple[str, dict]] = []
    for label, rows in sorted(entities.items()):
        out.append((entity_statement(label), {"rows": rows}))
    for rel, rows in sorted(facts.items()):
        out.append((fact_statement(rel), {"rows": rows}))
    if batch.posts:
        rows = [
            {"id": p.id, "created_at": p.created_at, "text": p.text, "author": p.author,
             "source": p.source, "mentions": sorted(set(p.mentions)), "model_version": p.model_version,
             "content_hash": p.content_hash, "image": p.image}
            for p in batch.posts
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
