"""The completion job on a graph the pipeline built from real MNRE posts (gold
annotations through pipeline.to_graph), on the embedded backend and real Neo4j:
inferred edges are written and visible to Cypher, never trained on, refreshed
rather than duplicated on a re-run, and removed alone by one command."""
from __future__ import annotations

import json

import pytest
from helpers import SHARED_DATA, unavailable

from graph_store.schema import LabelSchema
from graph_store.completion.calibrate import MIN_WRITTEN
from graph_store.completion.snapshot import take_snapshot
from graph_store.records import EntityRow, FactRow, GraphBatch, InferredFact, PostRow, Provenance
from pipeline.config import load_config
from pipeline.gold import GOLD_VERSION, gold_extraction, mnre_annotated_posts
from pipeline.jobs.completion import completion_store, remove_inferred, run_completion
from pipeline.post import parse_post
from pipeline.to_graph import add_post

EXTRACTED = "MATCH (h:Entity)-[r]->(t:Entity) WHERE r.inferred = false RETURN h.key, type(r), t.key, r.post_ids"
INFERRED = ("MATCH (h:Entity)-[r]->(t:Entity) WHERE r.inferred = true "
            "RETURN h.key, type(r), t.key, r.score, r.model_version, r.inferred_at ORDER BY r.score DESC")


@pytest.fixture(scope="module")
def text_cache(tmp_path_factory):
    """Shared by both backends, so the second encodes nothing."""
    return tmp_path_factory.mktemp("completion-text-cache")


def build_gold_graph(store, n_posts: int) -> int:
    path = SHARED_DATA / "mnre" / "mnre_train.txt"
    if not path.exists():
        unavailable(f"real data missing: {path}")
    batch = GraphBatch()
    for wire in mnre_annotated_posts(path, limit=n_posts):
        post = parse_post(json.dumps(wire))
        add_post(batch, post, gold_extraction(post), GOLD_VERSION, LabelSchema())
    store.write(batch)
    return len(batch.posts)


def completion_config(tmp_path, cache):
    cfg = load_config(None, environ={})
    c = cfg.completion
    c.models_dir, c.cache_dir = tmp_path / "models", cache
    c.epochs, c.update_epochs, c.rank, c.batch_size, c.negatives = 8, 2, 32, 128, 256
    c.threshold, c.top_k = 0.2, 2
    return cfg


def test_snapshot_uses_only_extracted_edges(graph_store):
    prov = Provenance("p1", "2024-01-01T00:00:00.000000Z", "m@1", 0.9)
    graph_store.write(GraphBatch(
        posts=[PostRow("p1", prov.seen_at, "Ann of Acme met Bob", mentions=("PER:ann", "ORG:acme", "PER:bob"))],
        entities=[EntityRow("PER:ann", "PER", "Ann", prov), EntityRow("ORG:acme", "ORG", "Acme", prov),
                  EntityRow("PER:bob", "PER", "Bob", prov)],
        facts=[FactRow("PER:ann", "PER", "MEMBER_OF", "ORG:acme", "ORG", prov)]))
    graph_store.write_inferred([InferredFact("PER:bob", "MEMBER_OF", "ORG:acme", 0.9, "v", "now"),
                                InferredFact("PER:ann", "MEMBER_OF", "ORG:acme", 0.9, "v", "now")], run_id="r1")
    snap = take_snapshot(graph_store)
    facts = {(snap.entities[h].key, snap.relations[r], snap.entities[t].key) for h, r, t in snap.triples.tolist()}
    assert facts == {("PER:ann", "MEMBER_OF", "ORG:acme")}
    assert {e.key for e in snap.entities} == {"PER:ann", "ORG:acme", "PER:bob"}  # unlinked Bob is a candidate too
    assert snap.entities[[e.key for e in snap.entities].index("PER:bob")].context == ("Ann of Acme met Bob",)
    # the prediction that duplicates an extracted fact was skipped; the other one is there, once
    rows = graph_store.query("MATCH (h:Entity)-[r:MEMBER_OF]->(t:Entity) RETURN h.key, r.inferred ORDER BY h.key").rows
    assert rows == [["PER:ann", False], ["PER:bob", True]]
    # a later extraction of the inferred fact is a separate edge; the inferred one does not absorb it
    graph_store.write(GraphBatch(entities=[EntityRow("PER:bob", "PER", "Bob", prov)],
                                 facts=[FactRow("PER:bob", "PER", "MEMBER_OF", "ORG:acme", "ORG", prov)]))
    rows = graph_store.query("MATCH (h:Entity {key: 'PER:bob'})-[r:MEMBER_OF]->(t) RETURN r.inferred ORDER BY r.inferred").rows
    assert rows == [[False], [True]]


def test_completion_job_writes_refreshes_and_removes_inferred_edges(graph_store, tmp_path, text_cache):
    build_gold_graph(graph_store, 400)
    extracted_before = sorted(map(tuple, [r[:3] + [sorted(r[3])] for r in graph_store.query(EXTRACTED).rows]))
    cfg = completion_config(tmp_path, text_cache)
    cfg.completion.rerank = False

    first = run_completion(cfg, graph_store)
    assert first.rerank == {"status": "skipped: completion.rerank is off"}
    assert completion_store(cfg.completion.models_dir).load_reranker(first.version) is None
    assert first.status == "completed" and first.facts == len(extracted_before) and not first.warm_start
    # the completion section of the config is where the training settings come from
    saved = completion_store(cfg.completion.models_dir).config(first.version)
    assert first.epochs == cfg.completion.epochs and saved["model"]["rank"] == cfg.completion.rank
    assert (saved["train_config"]["batch_size"], saved["train_config"]["negatives"]) == (128, 256)
    assert first.written > 0 and first.valid_metrics["queries"] == 2 * first.valid_facts
    # every run reports what its threshold writes on the held-out facts
    assert first.threshold_source == "configured" and first.held_out_at_threshold["threshold"] == 0.2
    assert first.held_out_at_threshold["written"] >= first.held_out_at_threshold["correct"] > 0
    rows = graph_store.query(INFERRED).rows
    assert len(rows) == first.written == first.inferred_edges
    extracted_keys = {r[:3] for r in extracted_before}
    for head, rel, tail, score, version, at in rows:
        assert (head, rel, tail) not in extracted_keys and head != tail
        assert score >= cfg.completion.threshold and version == f"completion@{first.version}" and at
        assert rel in LabelSchema().relation_types

    # a target precision any threshold reaches: calibration picks the lowest score it saw on held-out facts
    # ... and answers re-ranked by graph distance, fitted on the held-out facts and saved with the version
    cfg.completion.target_precision = 1e-6
    cfg.completion.rerank, cfg.completion.rerank_min_facts = True, 1
    second = run_completion(cfg, graph_store)
    assert second.warm_start and second.parent == first.version and second.version != first.version
    assert second.rerank["status"] == "fitted" and second.rerank["valid_metrics"]["queries"] == 2 * second.valid_facts
    reranker = completion_store(cfg.completion.models_dir).load_reranker(second.version)
    assert reranker.weights.shape == (2 * second.relations, 5)
    held = second.held_out_at_threshold
    assert second.threshold_source == "calibrated" and second.threshold == held["threshold"] < 0.2
    assert held["written"] >= MIN_WRITTEN and held["precision"] >= 1e-6
    assert second.epochs == cfg.completion.update_epochs
    rows = graph_store.query(INFERRED).rows
    assert len(rows) == second.written == len({tuple(r[:3]) for r in rows})  # refreshed, not duplicated
    assert {r[4] for r in rows} == {f"completion@{second.version}"}
    # the embedded graph keeps 15 significant digits of a float: a score equal to the threshold may read 1e-17 below it
    assert min(r[3] for r in rows) >= second.threshold * (1 - 1e-12)
    after = sorted(map(tuple, [r[:3] + [sorted(r[3])] for r in graph_store.query(EXTRACTED).rows]))
    assert after == extracted_before  # extracted facts untouched

    assert remove_inferred(cfg, graph_store) == second.written
    assert graph_store.query(INFERRED).rows == []
    after = sorted(map(tuple, [r[:3] + [sorted(r[3])] for r in graph_store.query(EXTRACTED).rows]))
    assert after == extracted_before
