"""Graph write throughput: batched UNWIND vs one transaction per triple.

Same data for every variant: the facts spaCy extracts from real MNRE posts.
Run: python -m benchmarks.graph_write [--posts 2000] [--batch-posts 64]
Starts local Kafka/Neo4j with `mkg services` if they are not running.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from extractors.base import ExtractionInput
from graph_store.schema import LabelSchema
from extractors.spacy_ner import SpacyExtractor
from graph_store.records import GraphBatch
from pipeline.post import parse_post
from pipeline.services.manager import ServiceManager
from pipeline.to_graph import add_post

from .common import mnre_posts, write_result


def build_batches(n_posts: int, batch_posts: int) -> list[GraphBatch]:
    posts = [parse_post(json.dumps(p)) for p in mnre_posts(n_posts)]
    extractor = SpacyExtractor()
    extractions = extractor.extract([ExtractionInput(p.id, p.text) for p in posts])
    batches = []
    for i in range(0, len(posts), batch_posts):
        batch = GraphBatch()
        for post, ext in zip(posts[i:i + batch_posts], extractions[i:i + batch_posts]):
            add_post(batch, post, ext, extractor.model_version, LabelSchema())
        batches.append(batch)
    return batches


def per_triple(batches: list[GraphBatch]) -> list[GraphBatch]:
    """The same rows, one fact (with its two entities) per write."""
    entities = {e.key: e for b in batches for e in b.entities}
    return [GraphBatch(entities=[entities[f.head_key], entities[f.tail_key]], facts=[f])
            for b in batches for f in b.facts]


def timed_write(store, batches: list[GraphBatch]) -> float:
    start = time.perf_counter()
    for batch in batches:
        store.write(batch)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--posts", type=int, default=2000)
    parser.add_argument("--batch-posts", type=int, default=64)
    args = parser.parse_args()

    from graph_store.embedded import EmbeddedGraphStore
    from graph_store.neo4j_backend import Neo4jGraphStore

    manager = ServiceManager()
    started = not manager.status(["neo4j"])[0].healthy
    manager.up(["neo4j"])
    batches = build_batches(args.posts, args.batch_posts)
    singles = per_triple(batches)
    n_facts = sum(len(b.facts) for b in batches)  # triple observations (one per post that states it)
    n_edges = len({(f.head_key, f.relation, f.tail_key) for b in batches for f in b.facts})
    metrics: dict = {"posts": args.posts, "triples": n_facts, "distinct_relationships": n_edges,
                     "batch_posts": args.batch_posts}
    try:
        neo = Neo4jGraphStore(manager.services["neo4j"].address, "neo4j",
                              os.environ.get("MKG_NEO4J_PASSWORD", "mkg-test-password"))
        for name, data in (("neo4j_unwind_batched", batches), ("neo4j_one_tx_per_triple", singles)):
            neo.query("MATCH (n) DETACH DELETE n")
            neo.ensure_schema()
            timed_write(neo, data[: max(1, len(data) // 10)])  # warm up JIT and query plans
            neo.query("MATCH (n) DETACH DELETE n")
            seconds = timed_write(neo, data)
            count = neo.query("MATCH (:Entity)-[r]->(:Entity) RETURN count(r)").rows[0][0]
            assert count == n_edges, (name, count, n_edges)
            metrics[f"{name}_rels_per_s"] = round(n_facts / seconds, 1)
            metrics[f"{name}_seconds"] = round(seconds, 2)
        neo.close()
        with tempfile.TemporaryDirectory(prefix="mkg-b-") as tmp:
            emb = EmbeddedGraphStore(Path(tmp) / "g")
            emb.ensure_schema()
            seconds = timed_write(emb, batches)
            metrics["embedded_unwind_batched_rels_per_s"] = round(n_facts / seconds, 1)
            metrics["embedded_unwind_batched_seconds"] = round(seconds, 2)
            emb.close()
    finally:
        if started:
            manager.down(["neo4j"])
    metrics["speedup_batched_vs_per_triple"] = round(
        metrics["neo4j_unwind_batched_rels_per_s"] / metrics["neo4j_one_tx_per_triple_rels_per_s"], 1)
    write_result("graph_write", metrics, notes="rels_per_s = extracted triples written per second, incl. entity MERGEs and provenance updates; "
                                                "Neo4j 5.26 community from `mkg services` on the same machine")


if __name__ == "__main__":
    main()
