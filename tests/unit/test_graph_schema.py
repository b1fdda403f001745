"""graph_store.schema is the one home of the graph's schema: everything else derives from it."""
import re
import pytest

from graph_store import cypher, schema, schema_registry
from graph_store.resolution import links
from graph_store.embedded import EmbeddedGraphStore
from graph_store.neo4j_backend import Neo4jGraphStore
from graph_store.records import EntityRow, FactRow, Provenance, aggregate_entities, aggregate_facts
from graph_store.schema import NODES, RELATIONSHIPS, LabelSchema, NodeKind

WIDGET = NodeKind("Widget", ("maker", "serial"), ("colour",), "widget_serial")


# --- one list of keys, rendered per backend ------------------------------------------------------

def test_a_key_added_to_the_schema_is_rendered_for_both_backends():
    nodes = (*NODES, WIDGET)
    neo = [s for s in schema.neo4j_constraints(nodes) if "Widget" in s]
    falkor = [s for s in schema.falkordb_indexes(nodes) if "Widget" in s]
    assert neo == ["CREATE CONSTRAINT widget_serial IF NOT EXISTS FOR (n:Widget) REQUIRE (n.maker, n.serial) IS UNIQUE"]
    assert falkor == ["CREATE INDEX FOR (n:Widget) ON (n.maker)", "CREATE INDEX FOR (n:Widget) ON (n.serial)"]


def test_every_declared_key_is_rendered_for_both_backends():
    neo, falkor = schema.neo4j_constraints(), schema.falkordb_indexes()
    assert len(neo) == len(NODES)
    for node in NODES:
        assert any(f"(n:{node.label})" in s and all(f"n.{k}" in s for k in node.key) for s in neo), node.label
        for key in node.key:
            assert f"CREATE INDEX FOR (n:{node.label}) ON (n.{key})" in falkor


class _Recorder:
    def __init__(self):
        self.statements = []

    def execute_query(self, stmt, *args, **kwargs):  # the Neo4j driver's call
        self.statements.append(stmt)

    def run(self, stmt, params=None):  # the embedded store's call
        self.statements.append(stmt)


@pytest.mark.parametrize("backend", ["neo4j", "embedded"])
def test_backends_take_their_constraints_from_the_schema(monkeypatch, backend):
    """ensure_schema reads graph_store.schema.NODES, not a list of its own."""
    monkeypatch.setattr(schema, "NODES", (*NODES, WIDGET))
    rec = _Recorder()
    if backend == "neo4j":
        store = Neo4jGraphStore.__new__(Neo4jGraphStore)
        store._driver, store._database = rec, None
    else:
        store = EmbeddedGraphStore.__new__(EmbeddedGraphStore)
        store._run = rec.run
    store.ensure_schema()
    expected = schema.neo4j_constraints() if backend == "neo4j" else schema.falkordb_indexes()
    assert rec.statements == expected
    assert any("Widget" in s for s in rec.statements)


# --- every name in the Cypher is declared ---------------------------------------------------------

NODE_PATTERN = re.compile(r"\((\w*)((?::\w+)+)\s*(?:\{([^}]*)\})?\)")
REL_PATTERN = re.compile(r"\[(\w*)(?::(\w+))?\s*(?:\{([^}]*)\})?\]")
PROPERTY = re.compile(r"\b([a-z]\w*)\.(\w+)\b")
MAP_KEY = re.compile(r"(\w+)\s*:")


def undeclared(statement: str, labels: LabelSchema) -> list[str]:
    """Labels, relationship types and properties of ``statement`` that the schema does not declare.

    Model names (``PER``, ``MEMBER_OF``) count as declared when ``labels`` accepts them.
    """
    nodes = {n.label: n for n in schema.NODES}
    rels = {r.type: r for r in RELATIONSHIPS if r.type}
    problems, props_of = [], {}
    for var, label_text, inline in NODE_PATTERN.findall(statement):
        names = label_text.strip(":").split(":")
        fixed = [n for n in names if n in nodes]
        problems += [f"label {n}" for n in names if n not in nodes and n not in labels.entity_types]
        if not fixed:
            problems.append(f"node ({var}:{label_text}) has no declared label")
            continue
        allowed = nodes[fixed[0]].all_properties
        problems += [f"{fixed[0]}.{k}" for k in MAP_KEY.findall(inline) if k not in allowed]
        if var:
            props_of[var] = (fixed[0], allowed)
    for var, rtype, inline in REL_PATTERN.findall(statement):
        if rtype and rtype not in rels and rtype not in labels.relation_types:
            problems.append(f"relationship type {rtype}")
        kind = rels.get(rtype, schema.FACT)
        allowed = frozenset(kind.properties)
        problems += [f"[{rtype}].{k}" for k in MAP_KEY.findall(inline) if k not in allowed]
        if var:
            props_of[var] = (rtype or "fact", allowed)
    for var, prop in PROPERTY.findall(statement):
        if var in props_of and prop not in props_of[var][1]:
            problems.append(f"{props_of[var][0]}.{prop}")
    return problems


def graph_statements() -> list[str]:
    """All Cypher of graph_store.cypher and the schema registry, with a model label and type filled in."""
    out = [cypher.entity_statement("PER"), cypher.fact_statement("MEMBER_OF"),
           cypher.inferred_fact_statement("MEMBER_OF"), schema_registry._UPSERT]
    out += [v for k, v in vars(cypher).items() if k.isupper() and isinstance(v, str) and "MATCH" in v]
    out += [v for k, v in vars(links).items() if k.isupper() and isinstance(v, str) and "MATCH" in v]
    for node in cypher.CANDIDATE_KINDS:
        out += [cypher.candidate_upsert_statement(node.label), cypher.candidate_unlink_statement(node.label),
                cypher.candidate_link_statement(node.label), cypher.candidate_set_statement(node.label),
                cypher.candidate_query(node.label, tuple(sorted(node.all_properties)), "status")]
    return out


def test_every_label_type_and_property_in_the_cypher_is_declared():
    statements = graph_statements()
    assert len(statements) >= 20  # the module constants were found
    for stmt in statements:
        assert undeclared(stmt, LabelSchema()) == [], stmt


@pytest.mark.parametrize("stmt, problem", [
    ("MATCH (w:Widget {id: $id}) RETURN w", "label Widget"),
    ("MATCH (p:Post)-[:LIKES]->(e:Entity) RETURN p", "relationship type LIKES"),
    ("MATCH (p:Post) RETURN p.likes", "Post.likes"),
    ("MERGE (e:Entity:PER {slug: r.key})", "Entity.slug"),
    ("MATCH (:Post)-[m:MENTIONS]->(:Entity) RETURN m.score", "MENTIONS.score"),
])
def test_the_declaration_check_finds_undeclared_names(stmt, problem):
    assert problem in undeclared(stmt, LabelSchema())


def test_candidate_queries_refuse_other_labels_and_unknown_fields():
    with pytest.raises(schema.SchemaViolation):
        cypher.candidate_upsert_statement("Entity) DETACH DELETE (x")
    with pytest.raises(schema.SchemaViolation):
        cypher.candidate_query("CandidateType", ("id", "password"))


def test_provenance_rows_carry_exactly_the_declared_provenance():
    prov = Provenance("p1", "t", "m@1", 0.5)
    (row,) = aggregate_entities([EntityRow("PER:a", "PER", "a", prov)])["PER"]
    # no post list on entity nodes; the zero-shot flag is null for a supervised row (it clears a zero-shot one)
    assert set(row) - {"key", "name", schema.ZERO_SHOT} == set(schema.ENTITY_PROVENANCE) and row[schema.ZERO_SHOT] is None
    zs = aggregate_entities([EntityRow("PER:a", "PER", "a", prov, zero_shot=True),
                             EntityRow("PER:b", "PER", "b", prov, zero_shot=True), EntityRow("PER:b", "PER", "b", prov)])
    assert [r[schema.ZERO_SHOT] for r in zs["PER"]] == [True, None]  # one supervised mention makes it supervised
    (fact,) = aggregate_facts([FactRow("PER:a", "PER", "PEER", "PER:b", "PER", prov)])["PEER"]
    # beside the provenance: the independent evidence behind it, and the id a correction of it would have
    assert set(fact) - {"head", "tail", "evidence", "evidence_conf", "correction"} == set(schema.FACT_PROVENANCE)
    assert (fact["evidence"], fact["evidence_conf"], fact["correction"]) == (["post:p1"], [0.5], "PER:a|PEER|PER:b")


def test_rows_are_sorted_by_key_so_writers_lock_in_one_order():
    prov = Provenance("p1", "t", "m@1", 0.5)
    keys = ["PER:c", "PER:a", "PER:b"]
    rows = aggregate_entities([EntityRow(k, "PER", k, prov) for k in keys])
    assert [r["key"] for r in rows["PER"]] == sorted(keys)
    facts = aggregate_facts([FactRow(h, "PER", "PEER", t, "PER", prov) for h, t in (("b", "a"), ("a", "c"), ("a", "b"))])
    assert [(r["head"], r["tail"]) for r in facts["PEER"]] == [("a", "b"), ("a", "c"), ("b", "a")]


# --- the models' catalogue and the graph's vocabulary ---------------------------------------------

def test_the_models_catalogue_maps_onto_the_graphs_base_vocabulary():
    from extractors.schema import MNRE_RELATIONS, implied_types, relation_type_of
    from extractors.spacy_ner import SPACY_TO_TYPE

    assert {relation_type_of(r) for r in MNRE_RELATIONS} | {schema.CO_MENTIONED} == schema.BASE_RELATION_TYPES
    assert {t for r in MNRE_RELATIONS for t in implied_types(r)} == schema.BASE_ENTITY_TYPES
    assert set(SPACY_TO_TYPE.values()) == schema.BASE_ENTITY_TYPES
    assert LabelSchema() == LabelSchema(schema.BASE_ENTITY_TYPES, schema.BASE_RELATION_TYPES)


def test_an_unsafe_name_cannot_enter_the_schema():
    with pytest.raises(schema.SchemaViolation):
        LabelSchema(entity_types=frozenset({"PER", "Post"}))
    assert not schema.is_identifier("MEMBER_OF]->() DELETE x //") and schema.is_identifier("MEMBER_OF")
