"""Turn one post's extraction into graph rows, validating every name first.

Validation happens per post so one post with a bad label (from a broken or
malicious model) goes to the dead letters while the rest of the batch is
written; the graph store validates again before building Cypher.
"""
from __future__ import annotations

from extractors.base import EntityMention, Extraction
from extractors.schema import one_way
from graph_store.records import (EntityRow, FactRow, GraphBatch, PostRow, Provenance, canonical_key, clean_name,
                                 evidence_key)
from graph_store.schema import LabelSchema

from .post import Post


def _key(ent: EntityMention) -> str | None:
    """The entity's node key, or None when nothing is left of its name once
    invisible characters and edge punctuation are removed (not an entity)."""
    key = canonical_key(ent.type, ent.text)
    return None if key.endswith(":") else key


def add_post(batch: GraphBatch, post: Post, extraction: Extraction, model_version: str, schema: LabelSchema) -> None:
    """Append the post's rows to ``batch``; raises SchemaViolation and appends nothing."""
    seen = post.created_at_iso
    entities: list[EntityRow] = []
    keys: dict[tuple[str, int, int], str | None] = {}

    def entity(ent: EntityMention) -> str | None:
        span = (ent.type, ent.start, ent.end)
        if span not in keys:
            schema.check_entity_type(ent.type)
            keys[span] = key = _key(ent)
            if key is not None:
                entities.append(EntityRow(key, ent.type, clean_name(ent.text),
                                          Provenance(post.id, seen, ent.source_version or model_version,
                                                     ent.confidence), zero_shot=ent.zero_shot))
        return keys[span]

    for ent in extraction.entities:
        entity(ent)
    facts: list[FactRow] = []
    evidence = evidence_key(post.text)
    for rel in extraction.relations:
        schema.check_relation_type(rel.type)
        head, tail = entity(rel.head), entity(rel.tail)
        if head is None or tail is None or head == tail:
            continue
        head_type, tail_type = rel.head.type, rel.tail.type
        if one_way(head, rel.type, tail):  # one edge per pair: the smaller key is the head
            head, tail, head_type, tail_type = tail, head, tail_type, head_type
        facts.append(FactRow(head, head_type, rel.type, tail, tail_type,
                             Provenance(post.id, seen, rel.source_version or model_version, rel.confidence),
                             zero_shot=rel.zero_shot, evidence=evidence))
    batch.entities.extend(entities)
    batch.facts.extend(facts)
    batch.posts.append(PostRow(post.id, seen, post.text, post.author, post.source,
                               tuple(sorted({e.key for e in entities})), model_version, post.content_hash,
                               post.image.reference if post.image is not None else None))
