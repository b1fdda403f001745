"""The schema of graph_store.schema, as the real backends see it (embedded FalkorDB and Neo4j)."""
from graph_store import cypher
from graph_store.records import GraphBatch, PostRow
from graph_store.schema import CANDIDATE_TYPE, NODES, POST


def test_every_declared_key_is_unique_or_indexed(graph_store):
    neo4j = type(graph_store).__name__ == "Neo4jGraphStore"
    if neo4j:  # the test server keeps its constraints between runs: make them again from the schema
        for node in NODES:
            graph_store.query(f"DROP CONSTRAINT {node.constraint} IF EXISTS")
        graph_store.ensure_schema()
    graph_store.ensure_schema()  # again: idempotent
    if neo4j:
        rows = graph_store.query("SHOW CONSTRAINTS YIELD labelsOrTypes, properties, type "
                                 "RETURN labelsOrTypes, properties, type").rows
        for node in NODES:
            assert [[node.label], list(node.key), "UNIQUENESS"] in rows, node.label
    else:
        rows = graph_store.query("CALL db.indexes() YIELD label, properties RETURN label, properties").rows
        indexed = {label: set(props) for label, props in rows}
        for node in NODES:
            assert set(node.key) <= indexed.get(node.label, set()), node.label


def test_an_index_from_an_older_schema_does_not_stop_start_up(embedded_store):
    """Graphs created before the schema module indexed SchemaClass.name only."""
    embedded_store.query("DROP INDEX ON :SchemaClass(kind)")
    embedded_store.ensure_schema()
    rows = embedded_store.query("CALL db.indexes() YIELD label, properties RETURN label, properties").rows
    assert {"kind", "name"} <= {label: set(props) for label, props in rows}["SchemaClass"]


def test_candidate_statements_run_on_both_backends(graph_store):
    label = CANDIDATE_TYPE.label
    graph_store.write(GraphBatch(posts=[PostRow("p1", "2024-01-01T00:00:00Z", "Acme Phone 3 is out")]))
    row = {"id": "cand-type-1", "kind": "type", "now": "2024-01-02T00:00:00Z", "size": 6, "density": 0.8,
           "known_similarity": 0.3, "nearest_known": "MISC", "window_start": "2024-01-01T00:00:00Z",
           "window_end": "2024-01-02T00:00:00Z", "example_post_ids": ["p1", "missing"], "example_texts": ["t"],
           "head_types": [], "tail_types": [], "model_versions": ["m@1"], "members": ["{}"], "member_count": 1,
           "centroid": [1.0, 0.0]}
    for _ in range(2):  # re-running changes nothing
        graph_store.execute([(cypher.candidate_upsert_statement(label), {"rows": [row]}),
                             (cypher.candidate_unlink_statement(label), {"rows": [row]}),
                             (cypher.candidate_link_statement(label), {"rows": [row]})])
    graph_store.execute([(cypher.candidate_set_statement(label), {"id": "cand-type-1",
                                                                  "values": {"status": "confirmed", "name": "PRODUCT"}})])
    (got,) = graph_store.query(cypher.candidate_query(label, ("id", "status", "name", "size"), "id"),
                               {"id": "cand-type-1"}).rows
    assert got == ["cand-type-1", "confirmed", "PRODUCT", 6]
    assert graph_store.query(cypher.candidate_query(label, ("id",), "status"), {"status": "pending"}).rows == []
    links = graph_store.query(f"MATCH (c:{label})-[x]->(p:{POST.label}) RETURN type(x), p.id").rows
    assert links == [["EXAMPLE", "p1"]]
