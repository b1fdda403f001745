"""Kafka -> graph throughput and latency of one worker with the spaCy extractor.

Throughput: produces real MNRE posts to a fresh topic, then times one worker
(Kafka source, spaCy, Neo4j) from its first poll to its last commit.

Latency: the worker then runs in a thread on a second topic while a producer
sends posts at fixed rates (fractions of the measured throughput, each for
``--seconds``); every committed record's latency is its commit time minus its
Kafka produce timestamp (the commit follows its graph write). A rate is
sustained when the backlog left when its producer stops is under two
seconds' worth of posts: lag that stays bounded.

Run: python -m benchmarks.kafka_worker [--posts 3000] [--batch-size 64] [--seconds 20]
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

from .common import clear_graph, mnre_posts, write_result


RATE_FRACTIONS = (0.25, 0.5, 0.75, 0.9, 1.0, 1.2)  # of the measured throughput


def latency_at_rates(cfg, store, extractor, posts: list[dict], throughput: float, seconds: float,
                     batch_size: int, write_batch: int) -> list[dict]:
    """p50/p99 produce-to-commit latency and end backlog per fixed input rate (one worker in a thread)."""
    import statistics
    import threading

    topic = f"{cfg.kafka.topic}-rates"
    kcfg = cfg.kafka.model_copy(update={"topic": topic, "group_id": topic})
    source = KafkaSource(kcfg, batch_size)
    samples: dict[int, list[float]] = {}
    committed = [0]
    inner_commit = source.commit

    def commit(records):
        inner_commit(records)
        now = time.time()
        for r in records:
            step = int(json.loads(r.payload)["id"].split("-", 1)[0][1:])
            samples.setdefault(step, []).append(now - r.produced_at)
        committed[0] += len(records)

    source.commit = commit
    dead = KafkaDeadLetterSink(kcfg)
    stop = threading.Event()
    worker = Worker(source, extractor, store, dead, batch_size, write_batch=write_batch, stop=stop)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    producer = KafkaProducer(bootstrap_servers=cfg.kafka.bootstrap_servers, acks="all", linger_ms=2)
    producer.send(topic, json.dumps({"id": "r9-warm", "text": "warm up", "created_at": "2026-01-01T00:00:00Z"}).encode())
    producer.flush()
    time.sleep(8)  # group join and the first batch
    out, sent = [], 1
    for step, fraction in enumerate(RATE_FRACTIONS):
        rate = max(1.0, throughput * fraction)
        n = int(rate * seconds)
        start = time.perf_counter()
        for i in range(n):
            post = posts[(sent + i) % len(posts)]
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            producer.send(topic, json.dumps({**post, "id": f"r{step}-{i}-{post['id']}"}).encode())
        producer.flush()
        sent += n
        backlog = sent - committed[0]  # produced but not yet committed when the producer stops
        drain_start = time.perf_counter()
        while committed[0] < sent and time.perf_counter() - drain_start < 300:
            time.sleep(0.1)
        lat = sorted(samples.get(step, []))
        point = {"rate_posts_per_s": round(rate, 1), "posts": n, "backlog_at_end": backlog,
                 "sustained": backlog < 2 * rate,
                 "latency_p50_s": round(statistics.median(lat), 3) if lat else None,
                 "latency_p99_s": round(lat[min(len(lat) - 1, int(0.99 * len(lat)))], 3) if lat else None}
        print(json.dumps(point), flush=True)
        out.append(point)
    stop.set()
    thread.join(60)
    producer.close()
    source.close()
    dead.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=64, help="records per poll")
    parser.add_argument("--write-batch", type=int, default=1000, help="records per graph write (worker.write_batch)")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long each fixed input rate runs")
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
        clear_graph(store)
        source = KafkaSource(cfg.kafka, args.batch_size)
        dead = KafkaDeadLetterSink(cfg.kafka)
        worker = Worker(source, extractor, store, dead, args.batch_size, write_batch=args.write_batch)
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
        rates = latency_at_rates(cfg, store, extractor, posts, processed / seconds, args.seconds, args.batch_size,
                                 args.write_batch)
        store.close()
    finally:
        manager.down(started)
    sustained = [r for r in rates if r["sustained"]]
    at = max(sustained, key=lambda r: r["rate_posts_per_s"]) if sustained else None
    write_result("kafka_worker", {
        "posts": processed, "batch_size": args.batch_size, "write_batch": args.write_batch,
        "posts_per_s": round(processed / seconds, 1), "seconds": round(seconds, 2),
        "facts_written": worker.metrics.facts_written,
        "spacy_extraction_only_posts_per_s": round(spacy_only, 1),
        "rates": rates,
        "max_sustained_posts_per_s": at["rate_posts_per_s"] if at else None,
        "latency_p50_s": at["latency_p50_s"] if at else None,
        "latency_p99_s": at["latency_p99_s"] if at else None,
    }, notes="one worker process, Kafka 4.4 and Neo4j 5.26 from `mkg services` on the same 2-core machine; "
             "posts_per_s: time from the first polled record to the last commit (group join excluded); "
             "latency_p50_s/p99_s: produce timestamp to commit, at max_sustained_posts_per_s "
             "(the highest fixed rate whose backlog stayed under 2 s of posts)")


if __name__ == "__main__":
    main()
