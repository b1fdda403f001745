"""GraphStore contract, run against the embedded backend and real Neo4j."""
import pytest

from graph_store.schema import SchemaViolation
from graph_store.records import EntityRow, FactRow, GraphBatch, PostRow, Provenance

P1 = Provenance("p1", "2024-01-01T00:00:00.000000Z", "m@1", 0.6)
P2 = Provenance("p2", "2024-03-01T00:00:00.000000Z", "m@2", 0.8)


def batch(prov: Provenance, relation: str = "MEMBER_OF") -> GraphBatch:
    return GraphBatch(
        posts=[PostRow(prov.post_id, prov.seen_at, "Ann joined Acme", mentions=("PER:ann", "ORG:acme"),
                       model_version=prov.model_version)],
        entities=[EntityRow("PER:ann", "PER", "Ann", prov), EntityRow("ORG:acme", "ORG", "Acme", prov)],
        facts=[FactRow("PER:ann", "PER", relation, "ORG:acme", "ORG", prov)],
    )


def counts(store):
    return store.query("MATCH (n) WITH count(n) AS nodes OPTIONAL MATCH ()-[r]->() RETURN nodes, count(r)").rows[0]


def test_writes_are_idempotent_and_carry_provenance(graph_store):
    graph_store.write(batch(P1))
    graph_store.write(batch(P1))
    graph_store.write(batch(P2))
    graph_store.write(batch(P1))
    assert counts(graph_store) == [4, 5]  # Ann, Acme, 2 posts; 1 fact + 4 mentions
    (row,) = graph_store.query(
        "MATCH (h:Entity:PER)-[r:MEMBER_OF]->(t:Entity:ORG) RETURN r.post_ids, r.first_seen, r.last_seen, "
        "r.model_version, r.model_versions, r.confidence, r.inferred, h.name, t.name").rows
    post_ids, first, last, mv, mvs, conf, inferred, h, t = row
    assert sorted(post_ids) == ["p1", "p2"]
    assert (first, last) == (P1.seen_at, P2.seen_at)
    assert mv == "m@2" and sorted(mvs) == ["m@1", "m@2"] and conf == 0.8
    assert inferred is False and (h, t) == ("Ann", "Acme")
    mentions = graph_store.query("MATCH (p:Post)-[:MENTIONS]->(e:Entity) RETURN p.id, e.key ORDER BY p.id, e.key").rows
    assert mentions == [["p1", "ORG:acme"], ["p1", "PER:ann"], ["p2", "ORG:acme"], ["p2", "PER:ann"]]


def test_exact_counts(graph_store):
    graph_store.write(batch(P1))
    graph_store.write(batch(P1))
    nodes, rels = counts(graph_store)
    assert nodes == 3  # Ann, Acme, post p1
    assert rels == 3  # MEMBER_OF + 2 MENTIONS


@pytest.mark.parametrize("evil", ["MEMBER_OF]->(x) DETACH DELETE x WITH 1 AS y MATCH (a)-[r:X", "KNOWS` {x:1}]->() //"])
def test_cypher_in_relation_type_is_rejected_not_executed(graph_store, evil):
    graph_store.write(batch(P1))
    before = counts(graph_store)
    with pytest.raises(SchemaViolation):
        graph_store.write(batch(P2, relation=evil))
    assert counts(graph_store) == before


def test_uniqueness_is_enforced_at_startup(graph_store):
    graph_store.ensure_schema()  # twice is fine
    if type(graph_store).__name__ == "Neo4jGraphStore":
        rows = graph_store.query("SHOW CONSTRAINTS YIELD labelsOrTypes, properties, type RETURN labelsOrTypes, properties, type").rows
        assert [["Entity"], ["key"], "UNIQUENESS"] in rows
        assert [["Post"], ["id"], "UNIQUENESS"] in rows
    else:
        rows = graph_store.query("CALL db.indexes() YIELD label, properties RETURN label, properties").rows
        assert ["Entity", ["key"]] in rows and ["Post", ["id"]] in rows


@pytest.mark.integration
def test_a_batch_over_neo4js_transaction_memory_is_rejected_so_the_worker_splits_it(services):
    """Retrying cannot shrink a batch: over db.memory.transaction.max (128 MiB on the test server)
    it is GraphRejected, which makes the worker split it, not wait on it forever; its halves fit."""
    import random
    import string

    from conftest import neo4j_password

    from graph_store.base import GraphRejected
    from graph_store.neo4j_backend import Neo4jGraphStore
    from graph_store.records import PostRow

    rng = random.Random(7)
    words = ["".join(rng.choices(string.ascii_lowercase, k=9)) for _ in range(4000)]
    posts = [PostRow(id=f"big-{i}", created_at="2026-01-01T00:00:00Z", content_hash=f"h{i}",
                     text=" ".join(rng.choices(words, k=1999))[:20_000]) for i in range(3200)]  # 1,600 fit
    store = Neo4jGraphStore(services.services["neo4j"].address, "neo4j", neo4j_password(), max_retry_time=0.0)

    def remove_big_posts():  # a few hundred per transaction: deleting them all at once is over the limit too
        while store.query("MATCH (p:Post) WHERE p.id STARTS WITH 'big-' WITH p LIMIT 300 "
                          "DETACH DELETE p RETURN count(*)").rows[0][0]:
            pass

    try:
        remove_big_posts()
        with pytest.raises(GraphRejected, match="per-transaction memory"):
            store.write(GraphBatch(posts=posts))
        assert store.query("MATCH (p:Post) WHERE p.id STARTS WITH 'big-' RETURN count(p)").rows == [[0]]
        for i in range(0, len(posts), 800):
            store.write(GraphBatch(posts=posts[i:i + 800]))
        assert store.query("MATCH (p:Post) WHERE p.id STARTS WITH 'big-' RETURN count(p)").rows == [[len(posts)]]
        remove_big_posts()
    finally:
        store.close()


def _belief_batch(post_id: str, text: str, confidence: float) -> GraphBatch:
    from graph_store.records import evidence_key

    prov = Provenance(post_id, "2024-01-01T00:00:00.000000Z", "m@1", confidence)
    return GraphBatch(
        posts=[PostRow(post_id, prov.seen_at, text, mentions=("PER:ann", "ORG:acme"))],
        entities=[EntityRow("PER:ann", "PER", "Ann", prov), EntityRow("ORG:acme", "ORG", "Acme", prov)],
        facts=[FactRow("PER:ann", "PER", "MEMBER_OF", "ORG:acme", "ORG", prov, evidence=evidence_key(text))])


def _belief(store) -> float:
    return store.query("MATCH (:Entity)-[r:MEMBER_OF]->(:Entity) RETURN r.belief").rows[0][0]


def test_belief_is_the_noisy_or_of_independent_posts_and_a_copy_counts_once(graph_store):
    graph_store.write(_belief_batch("p1", "Ann joined Acme today", 0.6))
    assert _belief(graph_store) == pytest.approx(0.6)
    graph_store.write(_belief_batch("p1", "Ann joined Acme today", 0.6))  # a re-delivery
    graph_store.write(_belief_batch("p2", "RT @fan: Ann joined Acme today", 0.7))  # a retweet: the same evidence
    graph_store.write(_belief_batch("p3", "ann  joined ACME today", 0.6))  # an exact copy but for case and spaces
    assert _belief(graph_store) == pytest.approx(0.6)
    graph_store.write(_belief_batch("p4", "Acme signs Ann for two years", 0.5))  # independent: 1 - 0.4 * 0.5
    assert _belief(graph_store) == pytest.approx(0.8)
    # two independent posts in one batch count as two
    both = _belief_batch("p5", "Ann is Acme's new striker", 0.5)
    other = _belief_batch("p6", "Welcome to Acme, Ann!", 0.5)
    both.posts += other.posts
    both.entities += other.entities
    both.facts += other.facts
    graph_store.write(both)
    assert _belief(graph_store) == pytest.approx(1 - 0.4 * 0.5 * 0.5 * 0.5)
