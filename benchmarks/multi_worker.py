"""Throughput of 1, 2 and 4 worker processes in one consumer group on one Neo4j.

Real MNRE posts with their gold annotations (``extractor.kind: gold``), so
the graph write path is what is measured, not a model. For each worker count:
a fresh 4-partition topic and an empty graph; the workers start and report
ready; every post is produced at once; the clock runs from the first produce
to the moment the graph holds every post. Afterwards the graph is checked in
Cypher (every triple exactly once, with exactly its posts), and each worker's
/metrics gives its transaction retries (deadlocks between workers the driver
re-ran) and dead letters.

Run: python -m benchmarks.multi_worker [--posts 4000] [--workers 1 2 4]
Starts local Kafka and Neo4j with `mkg services` if they are not running.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
import uuid
from pathlib import Path

import yaml

from extractors.gold import GoldExtractor
from graph_store.neo4j_backend import Neo4jGraphStore
from pipeline.gold import mnre_annotated_posts
from pipeline.services.manager import ServiceManager

from .common import SHARED_DATA, clear_graph, expected_facts, write_result
from .worker_group import WorkerGroup

log = logging.getLogger("benchmarks.multi_worker")
PARTITIONS = 4


def run_once(manager: ServiceManager, neo: Neo4jGraphStore, posts: list[dict], n: int, workdir: Path,
             password: str, write_batch: int) -> dict:
    from kafka import KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic

    kafka = manager.services["kafka"].address
    topic = f"bench-mw-{n}-{uuid.uuid4().hex[:6]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka)
    admin.create_topics([NewTopic(topic, PARTITIONS, 1), NewTopic(topic + ".dead", 1, 1)])
    admin.close()
    clear_graph(neo)
    folder = workdir / f"w{n}"
    folder.mkdir()
    cfg = {"source": {"kind": "kafka"},
           "kafka": {"bootstrap_servers": kafka, "topic": topic, "group_id": f"g-{topic}",
                     "dead_letter_topic": f"{topic}.dead", "poll_timeout_ms": 500, "session_timeout_ms": 6000,
                     "heartbeat_interval_ms": 1000},
           "graph": {"backend": "neo4j", "neo4j_uri": manager.services["neo4j"].address},
           "extractor": {"kind": "gold"}, "novelty": {"enabled": False},
           "worker": {"batch_size": 500, "write_batch": write_batch, "state_dir": str(folder / "state")},
           "logging": {"level": "WARNING"}}
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    group = WorkerGroup(config, n, {"MKG_NEO4J_PASSWORD": password}).start()
    try:
        group.wait_ready()
        producer = KafkaProducer(bootstrap_servers=kafka, acks="all", linger_ms=5)
        start = time.perf_counter()
        for p in posts:
            producer.send(topic, key=p["id"].encode(), value=json.dumps(p).encode())
        producer.flush()
        producer.close()
        while neo.query("MATCH (p:Post) RETURN count(p)").rows[0][0] < len(posts):
            time.sleep(0.05)
            if time.perf_counter() - start > 1800:
                raise TimeoutError(f"{n} workers did not finish in 30 minutes")
        seconds = time.perf_counter() - start
        time.sleep(1.5)  # the last commits follow their graph writes
        scraped = [group.scrape(i) for i in range(n)]
    finally:
        codes = group.stop()
    rows = neo.query("MATCH (h:Entity)-[r]->(t:Entity) RETURN h.key, type(r), t.key, r.post_ids").rows
    facts = {(h, rel, t): set(ids) for h, rel, t, ids in rows}
    exact = len(rows) == len(facts) and facts == expected_facts(GoldExtractor(), posts) \
        and all(len(ids) == len(set(ids)) for *_, ids in rows)
    return {"posts_per_s": round(len(posts) / seconds, 1), "seconds": round(seconds, 2),
            "triples_per_s": round(sum(len(v) for v in facts.values()) / seconds, 1),
            "transaction_retries": int(sum(m["mkg_transaction_retries_total"] for m in scraped)),
            "graph_retries": int(sum(m["mkg_graph_retries_total"] for m in scraped)),
            "dead_letters": int(sum(v for m in scraped for k, v in m.items() if k.startswith("mkg_dead_letters_total"))),
            "posts_written_per_worker": [int(m["mkg_posts_written_total"]) for m in scraped],
            # where the workers' time went: seconds summed over every batch of every worker, per stage
            "stage_seconds": {stage: round(sum(m.get(f"mkg_stage_seconds_sum{{stage={stage}}}", 0.0) for m in scraped), 2)
                              for stage in ("parse", "extract", "graph", "commit")},
            "exit_codes": codes, "graph_exact": exact}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=4000, help="MNRE posts with gold annotations (distinct texts)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--write-batch", type=int, default=1000, help="worker.write_batch of every worker")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    password = os.environ.get("MKG_NEO4J_PASSWORD", "mkg-test-password")
    posts = []  # every MNRE split's annotated posts, repeated under new ids until there are enough
    for split in ("train", "val", "test"):
        posts += mnre_annotated_posts(SHARED_DATA / "mnre" / f"mnre_{split}.txt")
    posts = [{**posts[i % len(posts)], "id": f"{posts[i % len(posts)]['id']}#{i // len(posts)}"}
             for i in range(args.posts)]
    manager = ServiceManager()
    started = [s.name for s in manager.status(["kafka", "neo4j"]) if not s.healthy]
    manager.up(["kafka", "neo4j"])
    neo = Neo4jGraphStore(manager.services["neo4j"].address, "neo4j", password)
    workers: dict[str, dict] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="mkg-mw-") as tmp:
            for n in args.workers:
                workers[str(n)] = run_once(manager, neo, posts, n, Path(tmp), password, args.write_batch)
                log.warning("%d workers: %s", n, workers[str(n)])
        clear_graph(neo)
    finally:
        neo.close()
        if started:
            manager.down(started)
    write_result("multi_worker", {"posts": len(posts), "partitions": PARTITIONS, "write_batch": args.write_batch,
                                  "workers": workers}, notes=(
        "gold-annotation extractor (the write path is measured); posts_per_s from the first produce to the last "
        "post in the graph; transaction_retries = write transactions the Neo4j driver re-ran (deadlocks); "
        "one 2-core machine runs Kafka, Neo4j and every worker, so more workers share the same two cores"))


if __name__ == "__main__":
    main()
