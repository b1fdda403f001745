"""A consistent picture of the graph to learn from: entities and extracted facts.

Only edges with ``inferred = false`` between entities are training evidence;
the completion model's own output (``inferred = true``) never is, or it would
learn from its guesses. Every entity is included, linked or not, so a new
entity mentioned in a single post can still receive predictions. An entity's
text is its name and type plus the opening of the first posts mentioning it.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from mkg_common.clock import utc_iso

import numpy as np

from ..base import GraphStore
from ..cypher import SNAPSHOT_ENTITIES, SNAPSHOT_FACTS
from ..schema import LabelSchema

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class EntityInfo:
    key: str
    name: str
    type: str
    context: tuple[str, ...] = ()

    def text(self, max_chars: int = 200) -> str:
        """What the text encoder reads for this entity."""
        base = f"{self.name} ({self.type})"
        ctx = " | ".join(c for c in self.context if c)
        return f"{base}: {ctx[:max_chars]}" if ctx else base


@dataclass
class GraphSnapshot:
    entities: list[EntityInfo]
    relations: list[str]
    triples: np.ndarray  # [n, 3] int64 (head, relation, tail) into entities / relations
    taken_at: str

    @property
    def entity_keys(self) -> list[str]:
        return [e.key for e in self.entities]

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        h.update("\n".join(self.entity_keys).encode())
        h.update("\n".join(self.relations).encode())
        h.update(np.ascontiguousarray(self.triples).tobytes())
        return h.hexdigest()


def take_snapshot(graph: GraphStore, schema: LabelSchema | None = None, context_posts: int = 2,
                  relations: set[str] | None = None) -> GraphSnapshot:
    """Entities and extracted (non-inferred) facts, via :meth:`GraphStore.query`.

    ``relations`` limits the facts to these types (default: all that pass the
    schema); a type outside the schema is skipped with a warning, since it
    could never be written back safely.
    """
    schema = schema or LabelSchema()
    taken_at = utc_iso(timespec="seconds")
    ents = [EntityInfo(k, n or k, t or "", tuple(c or ()))
            for k, n, t, c in graph.query(SNAPSHOT_ENTITIES, {"posts": context_posts}).rows]
    index = {e.key: i for i, e in enumerate(ents)}
    rel_names: dict[str, int] = {}
    rows = []
    skipped: set[str] = set()
    for h, rel, t in graph.query(SNAPSHOT_FACTS).rows:
        if rel not in schema.relation_types or (relations is not None and rel not in relations):
            skipped.add(rel)
            continue
        rows.append((index[h], rel_names.setdefault(rel, len(rel_names)), index[t]))
    if skipped - set(relations or ()):
        log.warning("relation types left out of the snapshot", extra={"types": sorted(skipped)})
    triples = np.array(sorted(set(rows)), dtype=np.int64).reshape(-1, 3)
    log.info("graph snapshot", extra={"entities": len(ents), "facts": len(triples), "relations": len(rel_names)})
    return GraphSnapshot(ents, list(rel_names), triples, taken_at)
