"""Several worker processes in one consumer group on one Neo4j (real Kafka, real Neo4j).

The extractor is the gold annotations of real MNRE posts, so what is checked
is the write path: every triple exactly once with its posts (in Cypher),
however the partitions are spread, retried or taken over.
"""
from __future__ import annotations

import json
import time

import pytest
from helpers import SHARED_DATA, unavailable, assert_each_post_once, worker_config
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from benchmarks.worker_group import WorkerGroup, http_get
from conftest import neo4j_password
from extractors.gold import GoldExtractor
from pipeline.gold import mnre_annotated_posts

pytestmark = pytest.mark.integration
PARTITIONS = 4


@pytest.fixture
def topic4(services, topic):
    """A topic with four partitions (the ``topic`` fixture's has three)."""
    name = f"{topic}-p4"
    admin = KafkaAdminClient(bootstrap_servers=services.services["kafka"].address)
    admin.create_topics([NewTopic(name, PARTITIONS, 1), NewTopic(name + ".dead", 1, 1)])
    admin.close()
    return name


def _posts(n: int) -> list[dict]:
    path = SHARED_DATA / "mnre" / "mnre_train.txt"
    if not path.exists():
        unavailable(f"real data missing: {path}")
    return mnre_annotated_posts(path, limit=n)


def _produce(services, topic: str, posts: list[dict]) -> None:
    producer = KafkaProducer(bootstrap_servers=services.services["kafka"].address, acks="all")
    for p in posts:  # keyed by id: the posts spread over the partitions
        producer.send(topic, key=p["id"].encode(), value=json.dumps(p).encode())
    producer.flush()
    producer.close()


def _group(services, short_tmp, topic: str, n: int) -> WorkerGroup:
    cfg = worker_config(short_tmp, source="kafka", graph="neo4j", topic=topic, extractor="gold",
                        kafka=services.services["kafka"].address, neo4j=services.services["neo4j"].address,
                        batch_size=20, write_batch=40)
    return WorkerGroup(cfg, n, {"MKG_NEO4J_PASSWORD": neo4j_password(), "MKG__NOVELTY__ENABLED": "false"})


def _wait_for_posts(store, n: int, group: WorkerGroup, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if store.query("MATCH (p:Post) RETURN count(p)").rows[0][0] >= n:
            return
        time.sleep(0.5)
    raise AssertionError(f"the group did not write {n} posts in {timeout} s: "
                         + "\n".join(log.read_text()[-1500:] for log in group.logs))


@pytest.mark.parametrize("n", [1, 2, 4])
def test_n_workers_in_one_group_write_every_triple_exactly_once(services, neo4j_store, topic4, short_tmp, n):
    posts = _posts(300)
    group = _group(services, short_tmp, topic4, n).start()
    try:
        group.wait_ready()
        _produce(services, topic4, posts)
        _wait_for_posts(neo4j_store, len(posts), group)
        time.sleep(1.0)  # the last batches' commits follow their graph writes
        scraped = [group.scrape(i) for i in range(n)]
        assert all(http_get(group.url(i, "/livez"))[0] == 200 for i in range(n))
    finally:
        codes = group.stop()
    assert codes == [0] * n, [log.read_text()[-2000:] for log in group.logs]
    # the partitions were shared: with n <= 4 every member owned one and wrote posts from it
    written = [m["mkg_posts_written_total"] for m in scraped]
    assert all(w > 0 for w in written) and sum(written) >= len(posts), written
    assert sum(m.get(f"mkg_dead_letters_total{{stage={s}}}", 0) for m in scraped for s in ("graph", "parse")) == 0
    # lag is reported for every partition this group consumed, and it is drained
    lag = {k: v for m in scraped for k, v in m.items() if k.startswith("mkg_consumer_lag{")}
    assert set(lag.values()) == {0.0} and len(lag) <= PARTITIONS, lag
    assert all(any(k.startswith("mkg_consumer_lag{") for k in m) for m in scraped)  # every member owns some
    assert {m["mkg_model_info{version=gold@annotations}"] for m in scraped} == {1.0}
    assert_each_post_once(neo4j_store, posts, GoldExtractor())


def test_killing_one_of_three_workers_hands_its_partitions_to_the_others(services, neo4j_store, topic4, short_tmp):
    posts = _posts(600)
    group = _group(services, short_tmp, topic4, 3).start()
    try:
        group.wait_ready()
        _produce(services, topic4, posts[:300])
        deadline = time.monotonic() + 120
        while group.scrape(0)["mkg_posts_written_total"] == 0:  # the victim owns partitions and is writing
            assert time.monotonic() < deadline, "worker 0 never wrote"
            time.sleep(0.2)
        group.kill(0)  # SIGKILL: no commit of its current batch, no leaving the group
        _produce(services, topic4, posts[300:])
        _wait_for_posts(neo4j_store, len(posts), group)
        time.sleep(1.0)
        survivors = [group.scrape(i) for i in (1, 2)]
    finally:
        codes = group.stop()
    assert codes[1:] == [0, 0], [log.read_text()[-2000:] for log in group.logs]
    # the second half was produced after the kill, keyed over all four partitions: the graph can only
    # hold every post if the survivors took over the partitions of the dead member
    assert_each_post_once(neo4j_store, posts, GoldExtractor())
    for m in survivors:  # each survivor reports the lag of what it owns, drained
        lag = {k: v for k, v in m.items() if k.startswith("mkg_consumer_lag{")}
        assert lag and set(lag.values()) == {0.0}, lag
