"""The models' label catalogue: MNRE relation names and how they read as graph names.

This is the model side of the schema: the relation labels the MRE model is
trained on (``/per/org/member_of``), the "no relation" label, and the two
readings of a label the rest of the system needs (its graph relationship
type, the entity types it implies). Which names the graph accepts, and the
checks that keep unsafe names out of Cypher, are the graph's business:
:mod:`graph_store.schema` (``LabelSchema``, ``SchemaViolation``, ``IDENTIFIER``).
"""
from __future__ import annotations

from .datasets import NO_RELATION  # noqa: F401  (re-exported: the "no relation" label lives beside the readers)


# MNRE relation names (see ../shared/data/README.md) -> graph relationship type.
MNRE_RELATIONS: tuple[str, ...] = (
    "/per/per/parent", "/per/per/siblings", "/per/per/couple", "/per/per/neighbor",
    "/per/per/peer", "/per/per/charges", "/per/per/alumi", "/per/per/alternate_names",
    "/per/org/member_of", "/per/loc/place_of_residence", "/per/loc/place_of_birth",
    "/org/org/alternate_names", "/org/org/subsidiary", "/org/loc/locate_at",
    "/loc/loc/contain", "/per/misc/present_in", "/per/misc/awarded", "/per/misc/race",
    "/per/misc/religion", "/per/misc/nationality", "/misc/misc/part_of", "/misc/loc/held_on",
)

# relations whose two directions are one fact (``A PEER B`` is ``B PEER A``): extracted, stored and
# scored once per pair
SYMMETRIC_RELATIONS: frozenset[str] = frozenset({
    "/per/per/siblings", "/per/per/couple", "/per/per/neighbor", "/per/per/peer", "/per/per/alumi",
    "/per/per/alternate_names", "/org/org/alternate_names"})
SYMMETRIC_TYPES: frozenset[str] = frozenset(name.rsplit("/", 1)[-1].upper() for name in SYMMETRIC_RELATIONS)


def one_way(head: str, relation: str, tail: str) -> bool:
    """Whether ``head -[relation]-> tail`` is written the other way round: a symmetric relation
    (graph type or label) has its smaller end as head, so both directions are one fact."""
    symmetric = relation in SYMMETRIC_RELATIONS or relation in SYMMETRIC_TYPES
    return symmetric and tail < head


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


def label_for(graph_type: str, head_type: str, tail_type: str) -> str:
    """The model label a graph relationship type between two entity types stands for
    (``MEMBER_OF``, PER, ORG -> ``/per/org/member_of``); the type itself when no label fits."""
    name = f"/{head_type.lower()}/{tail_type.lower()}/{graph_type.lower()}"
    return name if name in MNRE_RELATIONS else graph_type
