"""The graph's schema, in one place: what the graph holds and which names may enter it.

Everything else that talks to the graph derives from this module: the Cypher
of :mod:`graph_store.cypher` and :mod:`graph_store.schema_registry` takes its
labels, relationship types and key properties from the constants here, and
both backends render their uniqueness guarantees from :data:`NODES` (Neo4j:
uniqueness constraints, FalkorDB: indexes, see :func:`neo4j_constraints` and
:func:`falkordb_indexes`), so a key added here reaches both.

Two kinds of names reach query text:

* fixed ones, declared below (``Entity``, ``Post``, ``MENTIONS``, ...);
* names that come from models: entity types become a second label on
  ``Entity`` nodes (``:Entity:PER``) and relation types become relationship
  types between entities (``-[:MEMBER_OF]->``). Labels and relationship
  types cannot be Cypher parameters, so every such name is checked by a
  :class:`LabelSchema` first, against both a strict identifier pattern and the
  set of accepted names; anything else raises :class:`SchemaViolation` before
  any Cypher is built.

How model label names map to graph names (``/per/org/member_of`` ->
``MEMBER_OF``) is the models' business and lives in :mod:`extractors.schema`;
this module only knows graph names.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

# A label or relationship type that may be spliced into Cypher: upper case,
# no quoting, no punctuation, at most 63 characters.
IDENTIFIER = re.compile(r"^[A-Z][A-Z0-9_]{0,62}$")


def is_identifier(name: object) -> bool:
    """Whether ``name`` may be spliced into Cypher as a label or relationship type."""
    return isinstance(name, str) and IDENTIFIER.match(name) is not None


class SchemaViolation(ValueError):
    """A label or relation type that must not reach the graph."""


# --- nodes and relationships --------------------------------------------------------------------

@dataclass(frozen=True)
class NodeKind:
    """A node label, its identity (``key``: unique together) and the properties it carries.

    ``constraint`` names the Neo4j uniqueness constraint; it is part of the
    on-disk format (an existing database has it under this name), so it is
    declared rather than generated.
    """

    label: str
    key: tuple[str, ...]
    properties: tuple[str, ...]
    constraint: str
    doc: str = ""

    @property
    def all_properties(self) -> frozenset[str]:
        return frozenset(self.key) | frozenset(self.properties)


@dataclass(frozen=True)
class RelKind:
    """A relationship from nodes of the ``starts`` labels to nodes of the ``ends`` labels;
    ``type`` is None where the type comes from the :class:`LabelSchema` (facts between entities)."""

    type: str | None
    starts: tuple[str, ...]
    ends: tuple[str, ...]
    properties: tuple[str, ...]
    doc: str = ""


# Provenance every entity node and extracted fact carries; written by the
# merges in graph_store.cypher from the rows of graph_store.records. The posts
# behind a fact are listed on its edge (``post_ids``); the posts behind an
# entity are its MENTIONS edges, not a list on the node: a hub entity mentioned
# by a million posts would otherwise rewrite a million-element list on every
# batch, and every worker would queue on that node's lock to do it.
ENTITY_PROVENANCE: tuple[str, ...] = ("first_seen", "last_seen", "confidence", "model_version", "model_versions")
FACT_PROVENANCE: tuple[str, ...] = ("post_ids", *ENTITY_PROVENANCE)
# Belief across posts (graph_store.cypher.fact_statement): ``evidence`` lists the independence keys of
# the posts behind an extracted fact (a retweet or an exact copy shares its original's key), and
# ``belief = 1 - belief_miss`` is the noisy-or of their calibrated confidences, one per key.
FACT_BELIEF: tuple[str, ...] = ("belief", "belief_miss", "evidence")

# The flag that keeps extracted facts (false) and the completion model's
# predictions (true) apart: it is part of the MERGE pattern of both.
INFERRED = "inferred"
INFERRED_PROPERTIES: tuple[str, ...] = (INFERRED, "score", "model_version", "inferred_at", "run_id")

# An extracted fact labelled by the zero-shot scorer (a class confirmed but not yet learnt by a
# supervised model) carries ``zero_shot: true``; its confidence is the scorer's score and its
# model_version the scorer's. A supervised write of the same triple takes the edge over and
# removes the flag, so one triple is never two extracted edges (graph_store.cypher).
ZERO_SHOT = "zero_shot"

ENTITY = NodeKind(
    "Entity", ("key",), ("name", "type", *ENTITY_PROVENANCE, "canonical", "resolved_at", ZERO_SHOT), "entity_key",
    "A named entity; ``key`` is ``TYPE:normalised name`` (graph_store.records.canonical_key). "
    "``zero_shot: true`` while only the zero-shot scorer has typed it (a type no model has learnt yet). "
    "It also carries its entity type as a second label (``:Entity:PER``), from the LabelSchema. "
    "``canonical`` is the key that names its cluster of SAME_AS nodes (absent: never merged), "
    "``resolved_at`` when entity resolution last compared it (graph_store.resolution).")
POST = NodeKind(
    "Post", ("id",), ("created_at", "text", "author", "source", "content_hash", "image"), "post_id",
    "A post of the stream: the provenance of entities and facts.")
SCHEMA_CLASS = NodeKind(
    "SchemaClass", ("kind", "name"),
    ("emerged_at", "created_at", "status", "updated_at", "graph_type", "task_id", "examples", "model_version",
     "learned_at"),
    "schema_class",
    "An entity type or relation the models know or are learning, and since when (graph_store.schema_registry).")
_CANDIDATE_PROPERTIES = (
    "kind", "status", "name", "created_at", "updated_at", "first_window_start", "window_start", "window_end",
    "size", "density", "known_similarity", "nearest_known", "example_post_ids", "example_texts", "head_types",
    "tail_types", "model_versions", "members", "member_count", "centroid", "confirmed_at", "examples",
    "rejected_at", "description", "decision", "decided_by", "decided_at", "merged_into",
)
CANDIDATE_RELATION = NodeKind(
    "CandidateRelation", ("id",), _CANDIDATE_PROPERTIES, "candidate_relation",
    "A recurring pattern among uncertain entity pairs: a relation the schema may lack (continual.candidates).")
CANDIDATE_TYPE = NodeKind(
    "CandidateType", ("id",), _CANDIDATE_PROPERTIES, "candidate_type",
    "A recurring pattern among untyped spans: an entity type the schema may lack (continual.candidates).")

CORRECTION = NodeKind(
    "Correction", ("id",),
    ("head", "relation", "tail", "decision", "fixed_to", "decided_by", "decided_at", "reason", "post_ids",
     "confidence", "belief", "model_versions"),
    "correction",
    "A person's decision on one extracted fact (graph_store.corrections): ``rejected`` or ``fixed`` "
    "(to ``fixed_to``), by whom and when, with the evidence the removed edge had. ``id`` is "
    "``head|TYPE|tail``; no later extraction writes that fact again.")

NODES: tuple[NodeKind, ...] = (ENTITY, POST, SCHEMA_CLASS, CANDIDATE_RELATION, CANDIDATE_TYPE, CORRECTION)

MENTIONS = RelKind("MENTIONS", (POST.label,), (ENTITY.label,), ("model_version",),
                   "The post mentions the entity; the model version that saw it. An entity's provenance.")
EXAMPLE = RelKind("EXAMPLE", (CANDIDATE_RELATION.label, CANDIDATE_TYPE.label), (POST.label,), (),
                  "An example post of a candidate.")
FACT = RelKind(None, (ENTITY.label,), (ENTITY.label,),
               tuple(dict.fromkeys((*FACT_PROVENANCE, *FACT_BELIEF, *INFERRED_PROPERTIES, ZERO_SHOT))),
               "A fact between entities; its type is a relation type of the LabelSchema. Extracted facts have "
               "inferred = false, provenance and a belief (the noisy-or of their independent posts' "
               "confidences), the completion's predictions inferred = true and a score; "
               "an extracted fact labelled by the zero-shot scorer also has zero_shot = true.")

SAME_AS = RelKind("SAME_AS", (ENTITY.label,), (ENTITY.label,), ("confidence", "evidence", "decided_at", "run_id"),
                  "Entity resolution's merge: both nodes name one real-world entity (from the smaller key to the "
                  "larger; graph_store.resolution.links). No inferred flag: never a fact.")
NOT_SAME_AS = RelKind("NOT_SAME_AS", (ENTITY.label,), (ENTITY.label,), ("reason", "cut_at", "was"),
                      "A merge someone undid (``mkg unmerge``): resolution never links the pair again.")

RELATIONSHIPS: tuple[RelKind, ...] = (MENTIONS, EXAMPLE, FACT, SAME_AS, NOT_SAME_AS)


# --- uniqueness, rendered per backend -------------------------------------------------------------

def neo4j_constraints(nodes: tuple[NodeKind, ...] | None = None) -> list[str]:
    """Neo4j uniqueness constraints on every node kind's key (idempotent statements)."""
    out = []
    for node in NODES if nodes is None else nodes:
        props = ", ".join(f"n.{p}" for p in node.key)
        target = props if len(node.key) == 1 else f"({props})"
        out.append(f"CREATE CONSTRAINT {node.constraint} IF NOT EXISTS FOR (n:{node.label}) "
                   f"REQUIRE {target} IS UNIQUE")
    return out


def falkordb_indexes(nodes: tuple[NodeKind, ...] | None = None) -> list[str]:
    """FalkorDB range indexes on every key property (one statement each).

    FalkorDB has no uniqueness constraints that MERGE relies on; an index per
    key property makes the MERGE lookups fast, and uniqueness follows from
    every write being a MERGE on the key. An index that exists already is
    refused with "already indexed", which the backend ignores.
    """
    return [f"CREATE INDEX FOR (n:{node.label}) ON (n.{prop})"
            for node in (NODES if nodes is None else nodes) for prop in node.key]


# --- names from models ------------------------------------------------------------------------------

# The vocabulary the graph accepts from the start, in graph names: the entity
# types and relations of the Twitter-2017 / MNRE data the shipped models were
# trained on, and CO_MENTIONED of the spaCy baseline. Classes learned later
# are added at run time with LabelSchema.extended (the worker asks its
# extractor which names it can emit). tests/unit/test_graph_schema.py checks
# that the models' catalogue (extractors.schema) maps onto exactly this.
BASE_ENTITY_TYPES: frozenset[str] = frozenset({"PER", "ORG", "LOC", "MISC"})
CO_MENTIONED = "CO_MENTIONED"
BASE_RELATION_TYPES: frozenset[str] = frozenset({
    "PARENT", "SIBLINGS", "COUPLE", "NEIGHBOR", "PEER", "CHARGES", "ALUMI", "ALTERNATE_NAMES", "MEMBER_OF",
    "PLACE_OF_RESIDENCE", "PLACE_OF_BIRTH", "SUBSIDIARY", "LOCATE_AT", "CONTAIN", "PRESENT_IN", "AWARDED",
    "RACE", "RELIGION", "NATIONALITY", "PART_OF", "HELD_ON", CO_MENTIONED,
})


@dataclass(frozen=True)
class LabelSchema:
    """The entity types and relationship types the graph accepts from models."""

    entity_types: frozenset[str] = BASE_ENTITY_TYPES
    relation_types: frozenset[str] = BASE_RELATION_TYPES

    def __post_init__(self) -> None:
        for name in self.entity_types | self.relation_types:
            if not is_identifier(name):
                raise SchemaViolation(f"schema name {name!r} is not a safe identifier")

    def check_entity_type(self, name: str) -> str:
        if not is_identifier(name):
            raise SchemaViolation(f"entity type {name!r} is not an identifier [A-Z][A-Z0-9_]*")
        if name not in self.entity_types:
            raise SchemaViolation(f"entity type {name!r} is not in the schema")
        return name

    def check_relation_type(self, name: str) -> str:
        if not is_identifier(name):
            raise SchemaViolation(f"relation type {name!r} is not an identifier [A-Z][A-Z0-9_]*")
        if name not in self.relation_types:
            raise SchemaViolation(f"relation type {name!r} is not in the schema")
        return name

    def extended(self, entity_types: set[str] = frozenset(), relation_types: set[str] = frozenset()) -> "LabelSchema":
        """A new schema with more classes (continual learning grows it)."""
        return LabelSchema(self.entity_types | frozenset(entity_types), self.relation_types | frozenset(relation_types))
