"""The worker against real Kafka and real Neo4j (started by `mkg services`)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from conftest import neo4j_password
from helpers import (CRASH_AFTER_WRITE, REPO, assert_each_post_once, expected_facts, graph_facts,
                     malformed_payloads, mnre_posts, worker_config, write_jsonl)
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient

from pipeline.config import load_config
from pipeline.dead_letter import DeadLetter, KafkaDeadLetterSink
from pipeline.sources.kafka import KafkaSource
from pipeline.worker import Worker

pytestmark = pytest.mark.integration
MKG = [sys.executable, "-m", "pipeline.cli"]


def env() -> dict:
    return {**os.environ, "MKG_NEO4J_PASSWORD": neo4j_password(), "PYTHONUNBUFFERED": "1"}


def kafka_cfg(services, short_tmp, topic, **kw):
    return worker_config(short_tmp, source="kafka", graph="neo4j", topic=topic,
                         kafka=services.services["kafka"].address, neo4j=services.services["neo4j"].address, **kw)


def produce(services, topic, payloads) -> None:
    producer = KafkaProducer(bootstrap_servers=services.services["kafka"].address, acks="all",
                             max_request_size=16 * 1024 * 1024)
    for p in payloads:
        producer.send(topic, value=p if isinstance(p, bytes) else json.dumps(p).encode())
    producer.flush()
    producer.close()


def consume_all(services, topic, expected: int, timeout_s: float = 30) -> list[bytes]:
    consumer = KafkaConsumer(topic, bootstrap_servers=services.services["kafka"].address,
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             max_partition_fetch_bytes=32 * 1024 * 1024, fetch_max_bytes=64 * 1024 * 1024)
    out, deadline = [], time.monotonic() + timeout_s
    while len(out) < expected and time.monotonic() < deadline:
        for msgs in consumer.poll(timeout_ms=500).values():
            out += [m.value for m in msgs]
    consumer.close()
    return out


def run_worker(cfg, *extra, timeout=600) -> dict:
    done = subprocess.run(MKG + ["worker", "--config", str(cfg), "--idle-timeout", "8", *extra],
                          env=env(), capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_thousand_posts_each_triple_exactly_once_with_provenance(services, topic, neo4j_store, short_tmp, spacy_extractor):
    posts = mnre_posts(1000)
    cfg = kafka_cfg(services, short_tmp, topic, batch_size=64)
    sent = subprocess.run(MKG + ["produce", str(write_jsonl(short_tmp / "p.jsonl", posts)), "--topic", topic,
                                 "--config", str(cfg), "--no-progress"], env=env(), capture_output=True, text=True)
    assert sent.returncode == 0, sent.stderr
    assert json.loads(sent.stdout)["sent"] == 1000
    metrics = run_worker(cfg)
    assert metrics["records_received"] == 1000 and metrics["dead_lettered"] == 0

    expected = expected_facts(spacy_extractor, posts)
    facts, rows = graph_facts(neo4j_store)
    assert facts == expected and rows == len(expected)
    missing_prov = neo4j_store.query(
        "MATCH (:Entity)-[r]->(:Entity) WHERE r.first_seen IS NULL OR r.last_seen IS NULL OR r.model_version IS NULL "
        "OR r.confidence IS NULL OR size(r.post_ids) = 0 RETURN count(r)").rows
    assert missing_prov == [[0]]
    (version,) = {r[0] for r in neo4j_store.query("MATCH (:Entity)-[r]->(:Entity) RETURN DISTINCT r.model_version").rows}
    assert version == spacy_extractor.model_version
    assert neo4j_store.query("MATCH (p:Post) RETURN count(p)").rows == [[1000]]


def test_sigkill_mid_batch_then_restart(services, topic, neo4j_store, short_tmp, spacy_extractor):
    posts = mnre_posts(600)
    produce(services, topic, posts)
    cfg = kafka_cfg(services, short_tmp, topic, batch_size=20)
    proc = subprocess.Popen(MKG + ["worker", "--config", str(cfg)], env=env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while neo4j_store.query("MATCH (p:Post) RETURN count(p)").rows[0][0] < 150 and time.monotonic() < deadline:
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    partial = neo4j_store.query("MATCH (p:Post) RETURN count(p)").rows[0][0]
    assert 150 <= partial < len(posts)
    run_worker(cfg)
    facts, rows = graph_facts(neo4j_store)
    assert facts == expected_facts(spacy_extractor, posts)
    assert rows == len(facts)  # no duplicated relationship
    assert neo4j_store.query("MATCH (p:Post) RETURN count(p)").rows == [[len(posts)]]


def test_kill_between_graph_write_and_commit_rewrites_that_batch_once(services, topic, neo4j_store, short_tmp,
                                                                      spacy_extractor):
    """SIGKILL lands exactly after batch 3's Neo4j write and before its Kafka commit
    (tests/crash_after_write.py): the restart reads batch 3 again, rewrites it idempotently,
    and nothing is lost or doubled."""
    posts = mnre_posts(300)
    produce(services, topic, posts)
    cfg = kafka_cfg(services, short_tmp, topic, batch_size=20)
    marker = short_tmp / "crashed.json"
    crashed = subprocess.run(CRASH_AFTER_WRITE + ["3", str(marker), "worker", "--config", str(cfg)],
                             env={**env(), "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=300)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-3000:]
    landed = json.loads(marker.read_text())
    stored = {r[0] for r in neo4j_store.query("MATCH (p:Post) RETURN p.id").rows}
    assert set(landed["ids"]) <= stored and len(stored) == landed["posts_before"] + len(landed["ids"])
    assert landed["posts_before"] > 0 and landed["ids"]
    metrics = run_worker(cfg)
    # the earlier batches were committed, batch 3 was not: exactly it and the rest are read again
    assert metrics["records_received"] == metrics["posts_written"] == len(posts) - landed["posts_before"]
    assert_each_post_once(neo4j_store, posts, spacy_extractor)


def test_malformed_posts_reach_the_dead_letter_topic(services, topic, neo4j_store, short_tmp, spacy_extractor):
    good, bad = mnre_posts(200), malformed_payloads()
    stream = []
    for i, post in enumerate(good):
        stream.append(post)
        if i % 4 == 0:
            stream.append(bad[i // 4])
    produce(services, topic, stream)
    metrics = run_worker(kafka_cfg(services, short_tmp, topic, batch_size=32))
    assert metrics["records_received"] == 250 and metrics["dead_lettered"] == 50

    letters = [DeadLetter(**json.loads(v)) for v in consume_all(services, f"{topic}.dead", 50)]
    assert len(letters) == 50
    assert sorted(l.original_payload() for l in letters) == sorted(bad)
    assert all(l.reason and l.origin.startswith(topic) for l in letters)
    reasons = " | ".join(l.reason for l in letters)
    for fragment in ("invalid JSON", "text: Field required", "id: Input should be a valid string",
                     "at most 20000 characters", "not a decodable image", "not UTF-8", "created_at"):
        assert fragment in reasons
    facts, rows = graph_facts(neo4j_store)
    assert facts == expected_facts(spacy_extractor, good) and rows == len(facts)


def test_neo4j_outage_stalls_commits_then_completes(services, topic, neo4j_store, short_tmp, spacy_extractor):
    posts = mnre_posts(300)
    produce(services, topic, posts)
    cfg = load_config(kafka_cfg(services, short_tmp, topic, batch_size=10), environ=env())
    cfg.kafka.max_poll_interval_ms = 120_000
    from graph_store.neo4j_backend import Neo4jGraphStore

    store = Neo4jGraphStore(cfg.graph.neo4j_uri, "neo4j", neo4j_password(), max_retry_time=2.0)
    dead = KafkaDeadLetterSink(cfg.kafka)
    source = KafkaSource(cfg.kafka, cfg.worker.batch_size)
    worker = Worker(source, spacy_extractor, store, dead, cfg.worker.batch_size, 0.2, 2.0)
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("m", worker.run(idle_timeout_s=10)))
    admin = KafkaAdminClient(bootstrap_servers=cfg.kafka.bootstrap_servers)

    def committed() -> int:
        return sum(o.offset for o in admin.list_group_offsets(cfg.kafka.group_id)[cfg.kafka.group_id].values())

    thread.start()
    try:
        deadline = time.monotonic() + 120
        while worker.metrics.batches_committed < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        services.down(["neo4j"])
        time.sleep(1.0)  # let an in-flight commit land
        during_start = committed()
        time.sleep(10)
        during_end = committed()
        services.up(["neo4j"])
        thread.join(timeout=300)
        final = committed()
    finally:
        worker.stop()
        thread.join(timeout=60)
        source.close()
        dead.close()
        store.close()
        admin.close()
    assert during_start == during_end < len(posts), "nothing may be committed while Neo4j is down"
    assert worker.metrics.graph_retries > 0
    assert final == len(posts)
    facts, rows = graph_facts(neo4j_store)
    assert facts == expected_facts(spacy_extractor, posts) and rows == len(facts)
