"""Kafka -> graph throughput of one worker with the spaCy extractor.

Produces real MNRE posts to a fresh topic, then times one worker (Kafka
source, spaCy, Neo4j) from its first poll to its last commit.
Run: python -m benchmarks.kafka_worker [--posts 3000] [--batch-size 64]
"""
from __future__ import annotations

import argparse
import json
import os
import time
import uuid

from kafka import KafkaProducer

from extractors.base import ExtractionInput
from extractors.spacy_ner import SpacyExtractor
from graph_store.neo4j_backend import Neo4jGraphStore
from pipeline.config import load_config
from pipeline.dead_letter import KafkaDeadLetterSink
from pipeline.services.manager import ServiceManager
from pipeline.sources.kafka import KafkaSource
from pipeline.worker import Worker

from .common import mnre_posts, write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--posts", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    manager = ServiceManager()
    names = ["kafka", "neo4j"]
    started = [s.name for s in manager.status(names) if not s.healthy]
    manager.up(names)
    topic = f"bench-{uuid.uuid4().hex[:8]}"
    posts = mnre_posts(args.posts)
    try:
        cfg = load_config(None, environ={
            "MKG__KAFKA__BOOTSTRAP_SERVERS": manager.services["kafka"].address, "MKG__KAFKA__TOPIC": topic,
            "MKG__KAFKA__GROUP_ID": topic, "MKG__KAFKA__DEAD_LETTER_TOPIC": f"{topic}.dead",
            "MKG__KAFKA__POLL_TIMEOUT_MS": "500"})
        producer = KafkaProducer(bootstrap_servers=cfg.kafka.bootstrap_servers, acks="all", linger_ms=5)
        for p in posts:
            producer.send(topic, json.dumps(p).encode())
        producer.flush()
        producer.close()

        extractor = SpacyExtractor()
        t0 = time.perf_counter()
        extractor.extract([ExtractionInput(p["id"], p["text"]) for p in posts])
        spacy_only = len(posts) / (time.perf_counter() - t0)

        store = Neo4jGraphStore(manager.services["neo4j"].address, "neo4j",
                                os.environ.get("MKG_NEO4J_PASSWORD", "mkg-test-password"))
        store.query("MATCH (n) DETACH DELETE n")
        store.ensure_schema()
        source = KafkaSource(cfg.kafka, args.batch_size)
        dead = KafkaDeadLetterSink(cfg.kafka)
        worker = Worker(source, extractor, store, dead, args.batch_size)
        first = None
        while first is None:  # wait for the group join and the first records
            records = source.poll(args.batch_size)
            if records:
                first = time.perf_counter()
                worker.process(records)
        # max_records counts every record this worker received, the first batch included
        worker.run(max_records=len(posts))
        seconds = time.perf_counter() - first
        processed = worker.metrics.records_received
        if processed != len(posts):
            raise RuntimeError(f"the worker processed {processed} of {len(posts)} posts")
        source.close()
        dead.close()
        store.close()
    finally:
        manager.down(started)
    write_result("kafka_worker", {
        "posts": processed, "batch_size": args.batch_size,
        "posts_per_s": round(processed / seconds, 1), "seconds": round(seconds, 2),
        "facts_written": worker.metrics.facts_written,
        "spacy_extraction_only_posts_per_s": round(spacy_only, 1),
    }, notes="one worker process, Kafka 4.4 and Neo4j 5.26 from `mkg services` on the same 2-core machine; "
             "time from the first polled record to the last commit (group join excluded)")


if __name__ == "__main__":
    main()
