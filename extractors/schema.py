"""Label schema: which entity types and relation types may reach the graph.

Labels and relationship types cannot be Cypher parameters, so they end up in
query text. Everything a model emits is therefore checked here first, against
both a strict identifier pattern and the set of known names; anything else is
rejected with :class:`SchemaViolation` before any Cypher is built.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

IDENTIFIER = re.compile(r"^[A-Z][A-Z0-9_]{0,62}$")

# MNRE relation names (see ../shared/data/README.md) -> graph relationship type.
MNRE_RELATIONS: tuple[str, ...] = (
    "/per/per/parent", "/per/per/siblings", "/per/per/couple", "/per/per/neighbor",
    "/per/per/peer", "/per/per/charges", "/per/per/alumi", "/per/per/alternate_names",
    "/per/org/member_of", "/per/loc/place_of_residence", "/per/loc/place_of_birth",
    "/org/org/alternate_names", "/org/org/subsidiary", "/org/loc/locate_at",
    "/loc/loc/contain", "/per/misc/present_in", "/per/misc/awarded", "/per/misc/race",
    "/per/misc/religion", "/per/misc/nationality", "/misc/misc/part_of", "/misc/loc/held_on",
)
NO_RELATION = "None"


class SchemaViolation(ValueError):
    """A label or relation type that must not reach the graph."""


def relation_type_of(name: str) -> str:
    """Map a relation label to its graph relationship type.

    ``/per/org/member_of`` -> ``MEMBER_OF``; ``/per/per/alternate_names`` and
    ``/org/org/alternate_names`` both become ``ALTERNATE_NAMES`` (head/tail
    labels keep them apart in the graph).
    """
    if name.startswith("/"):
        name = name.rsplit("/", 1)[-1]
    return name.upper()


def implied_types(name: str) -> tuple[str, str] | None:
    """Head and tail entity types implied by an MNRE-style name, if any."""
    parts = name.strip("/").split("/")
    if len(parts) == 3:
        return parts[0].upper(), parts[1].upper()
    return None


@dataclass(frozen=True)
class LabelSchema:
    """The entity types and relationship types the graph accepts."""

    entity_types: frozenset[str] = frozenset({"PER", "ORG", "LOC", "MISC"})
    relation_types: frozenset[str] = field(
        default_factory=lambda: frozenset({relation_type_of(r) for r in MNRE_RELATIONS} | {"CO_MENTIONED"})
    )

    def __post_init__(self) -> None:
        for name in self.entity_types | self.relation_types:
            if not IDENTIFIER.match(name):
                raise SchemaViolation(f"schema name {name!r} is not a safe identifier")

    def check_entity_type(self, name: str) -> str:
        if not isinstance(name, str) or not IDENTIFIER.match(name):
            raise SchemaViolation(f"entity type {name!r} is not an identifier [A-Z][A-Z0-9_]*")
        if name not in self.entity_types:
            raise SchemaViolation(f"entity type {name!r} is not in the schema")
        return name

    def check_relation_type(self, name: str) -> str:
        if not isinstance(name, str) or not IDENTIFIER.match(name):
            raise SchemaViolation(f"relation type {name!r} is not an identifier [A-Z][A-Z0-9_]*")
        if name not in self.relation_types:
            raise SchemaViolation(f"relation type {name!r} is not in the schema")
        return name

    def extended(self, entity_types: set[str] = frozenset(), relation_types: set[str] = frozenset()) -> "LabelSchema":
        """A new schema with more classes (continual learning grows it)."""
        return LabelSchema(self.entity_types | frozenset(entity_types), self.relation_types | frozenset(relation_types))
