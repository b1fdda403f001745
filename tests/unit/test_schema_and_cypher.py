import pytest

from extractors.schema import implied_types, relation_type_of
from graph_store.cypher import batch_statements
from graph_store.records import EntityRow, FactRow, GraphBatch, Provenance, aggregate_facts, canonical_key
from graph_store.schema import LabelSchema, SchemaViolation

PROV = Provenance("p1", "2024-01-01T00:00:00.000000Z", "m@1", 0.5)


def test_relation_names_map_to_types():
    assert relation_type_of("/per/org/member_of") == "MEMBER_OF"
    assert implied_types("/per/org/member_of") == ("PER", "ORG")
    assert relation_type_of("CO_MENTIONED") == "CO_MENTIONED"
    assert "MEMBER_OF" in LabelSchema().relation_types


@pytest.mark.parametrize("bad", [
    "KNOWS]->(x) DETACH DELETE x //",
    "MEMBER_OF`",
    "member_of",
    "A B",
    "",
    "UNKNOWN_RELATION",
])
def test_injection_and_unknown_relation_types_are_rejected(bad):
    batch = GraphBatch(entities=[EntityRow("PER:a", "PER", "a", PROV), EntityRow("ORG:b", "ORG", "b", PROV)],
                       facts=[FactRow("PER:a", "PER", bad, "ORG:b", "ORG", PROV)])
    with pytest.raises(SchemaViolation):
        batch_statements(batch, LabelSchema())


@pytest.mark.parametrize("bad", ["PER:Entity) DETACH DELETE (n", "per", "ALIEN"])
def test_bad_labels_are_rejected(bad):
    with pytest.raises(SchemaViolation):
        batch_statements(GraphBatch(entities=[EntityRow("x", bad, "x", PROV)]), LabelSchema())


def test_schema_itself_must_be_safe():
    with pytest.raises(SchemaViolation):
        LabelSchema().extended(relation_types={"X`] DELETE"})


def test_canonical_key_normalises_surface_forms():
    assert canonical_key("PER", "  Barack   OBAMA ") == canonical_key("PER", "barack obama") == "PER:barack obama"
    assert canonical_key("ORG", "#Apple!") == "ORG:apple"
    assert canonical_key("ORG", "Apple") != canonical_key("MISC", "Apple")


def test_facts_are_aggregated_per_edge():
    later = Provenance("p2", "2024-02-01T00:00:00.000000Z", "m@2", 0.9)
    rows = aggregate_facts([FactRow("PER:a", "PER", "MEMBER_OF", "ORG:b", "ORG", PROV),
                            FactRow("PER:a", "PER", "MEMBER_OF", "ORG:b", "ORG", later)])
    (row,) = rows["MEMBER_OF"]
    assert row["post_ids"] == ["p1", "p2"]
    assert (row["first_seen"], row["last_seen"]) == (PROV.seen_at, later.seen_at)
    assert row["model_version"] == "m@2" and row["confidence"] == 0.9
    assert row["model_versions"] == ["m@1", "m@2"]
