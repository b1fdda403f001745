"""Turn one post's extraction into graph rows, validating every name first.

Validation happens per post so one post with a bad label (from a broken or
malicious model) goes to the dead letters while the rest of the batch is
written; the graph store validates again before building Cypher.
"""
from __future__ import annotations

from extractors.base import Extraction
from extractors.schema import LabelSchema
from graph_store.records import EntityRow, FactRow, GraphBatch, PostRow, Provenance, canonical_key

from .post import Post


def add_post(batch: GraphBatch, post: Post, extraction: Extraction, model_version: str, schema: LabelSchema) -> None:
    """Append the post's rows to ``batch``; raises SchemaViolation and appends nothing."""
    seen = post.created_at_iso
    entities: list[EntityRow] = []
    keys = {}
    for ent in extraction.entities:
        schema.check_entity_type(ent.type)
        key = canonical_key(ent.type, ent.text)
        keys[(ent.type, ent.start, ent.end)] = key
        entities.append(EntityRow(key, ent.type, ent.text.strip(), Provenance(post.id, seen, model_version, ent.confidence)))
    facts: list[FactRow] = []
    for rel in extraction.relations:
        schema.check_relation_type(rel.type)
        head = keys.get((rel.head.type, rel.head.start, rel.head.end)) or canonical_key(rel.head.type, rel.head.text)
        tail = keys.get((rel.tail.type, rel.tail.start, rel.tail.end)) or canonical_key(rel.tail.type, rel.tail.text)
        for ent in (rel.head, rel.tail):
            schema.check_entity_type(ent.type)
            if (ent.type, ent.start, ent.end) not in keys:
                entities.append(EntityRow(canonical_key(ent.type, ent.text), ent.type, ent.text.strip(),
                                          Provenance(post.id, seen, model_version, ent.confidence)))
        if head == tail:
            continue
        facts.append(FactRow(head, rel.head.type, rel.type, tail, rel.tail.type,
                             Provenance(post.id, seen, model_version, rel.confidence)))
    batch.entities.extend(entities)
    batch.facts.extend(facts)
    batch.posts.append(PostRow(post.id, seen, post.text, post.author, post.source,
                               tuple(sorted({e.key for e in entities})), model_version))
