"""No poison pills (issue #15): the worker fed hostile and valid posts, property-based.

The generators live in ``tests/fuzz_posts.py`` (shared with ``benchmarks/fuzz.py``). The
properties, for every run over a generated stream:

* the worker never raises and consumes every record;
* every record is either in the graph (a ``Post`` node with its stripped id whose
  ``content_hash`` is that of ``parse_post(payload)``) or in the dead letters (keyed by its
  position), never both, never neither, and with the stage the generator expects;
* good posts are written exactly once (one node per id, re-deliveries included), a later
  post under a used id with other content is a ``conflict``, and the graph holds no post
  that no input carried; dead-letter keys are unique;
* a restart over uncommitted records (no checkpoint) writes no dead letter twice and
  leaves the graph as it was.

At least :data:`MIN_INPUTS` inputs go through the worker on the embedded graph in one run
(``MKG_FUZZ_INPUTS`` raises it); a handful of the key cases are repeated on Kafka + Neo4j.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import signal
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import pytest
from fuzz_posts import (MARKER, PARSE, FuzzInput, GivenEntitiesExtractor, ImageCheckingExtractor, check_outcome,
                        draw_draft, draw_stream, duplicated_entities, graph_posts, key_cases, make_env, write_stream)
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from pipeline.dead_letter import FileDeadLetterSink, read_dead_letters
from pipeline.post import MAX_CREATED_AT, MIN_CREATED_AT, InvalidPost, Post, parse_post
from pipeline.sources.files import FileSource
from pipeline.worker import Worker

MIN_INPUTS = int(os.environ.get("MKG_FUZZ_INPUTS", "10000"))
BATCH_SIZES = (16, 17, 32, 50, 64)
SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example,
           HealthCheck.filter_too_much]
# Each shrinking step re-runs the worker over a stream; a failure names the record, its payload
# and the stream already, so the worker properties only shrink when asked (MKG_FUZZ_SHRINK=1).
WORKER_PHASES = [Phase.explicit, Phase.generate] + ([Phase.shrink] if os.environ.get("MKG_FUZZ_SHRINK") == "1" else [])


@pytest.fixture(scope="module")
def fuzz_env(tmp_path_factory):
    return make_env(tmp_path_factory.mktemp("fuzz"))


@contextmanager
def time_limit(seconds: float, what: str):
    """Fail (instead of hanging) when the block runs longer than ``seconds``."""
    def expire(*_):
        raise TimeoutError(f"{what} took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# --- parse_post ----------------------------------------------------------------------

_FIELDS = ("id", "text", "created_at", "author", "source", "language", "image", "annotations")
_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
                     lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
                     max_leaves=10)
_ANY_CHARS = st.text(st.characters(codec=None, categories=None, exclude_categories=()), max_size=40)  # surrogates too


def _structured(draw) -> bytes | str:
    """A JSON object with post-like keys and values of any type (strings with surrogates included)."""
    obj = draw(st.dictionaries(st.sampled_from(_FIELDS + ("extra", "")), _JSON | _ANY_CHARS, max_size=9))
    if draw(st.booleans()):
        obj.update(id=draw(_ANY_CHARS), text=draw(_ANY_CHARS), created_at="2026-01-01T00:00:00Z")
    text = json.dumps(obj, ensure_ascii=draw(st.booleans()))
    return text if draw(st.booleans()) else text.encode("utf-8", "surrogatepass")


def payloads(env):
    drafts = st.composite(lambda draw: [i.payload for i in draw_draft(draw, env).build(str(draw(st.integers(0, 99))))])
    return st.one_of(drafts().flatmap(st.sampled_from), st.composite(_structured)(), st.binary(max_size=400),
                     _ANY_CHARS, st.text(max_size=200).map(str.encode))


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)


def test_parse_post_returns_a_post_or_raises_invalid_post(fuzz_env):
    @settings(max_examples=int(os.environ.get("MKG_FUZZ_PARSE_EXAMPLES", "4000")), deadline=None, database=None,
              suppress_health_check=SLOW_OK, print_blob=True)
    @given(payloads(fuzz_env))
    def check(payload):
        try:
            with time_limit(5, "parse_post"):
                post = parse_post(payload)
        except InvalidPost as exc:
            assert isinstance(exc.reason, str) and exc.reason.strip()
            json.dumps({"reason": exc.reason}, ensure_ascii=False).encode("utf-8")  # a dead letter can carry it
            return
        assert isinstance(post, Post)
        assert post.id == post.id.strip() and 1 <= len(post.id) <= 256
        assert MIN_CREATED_AT <= post.created_at < MAX_CREATED_AT and post.created_at.utcoffset().total_seconds() == 0
        for s in _strings(post.model_dump()):
            assert "\x00" not in s and not any("\ud800" <= ch <= "\udfff" for ch in s), repr(s)
        again = parse_post(post.to_json().encode("utf-8"))  # a re-serialised post is a re-delivery
        assert again == post and again.content_hash == post.content_hash

    check()


# --- the worker on the embedded graph ----------------------------------------------------

_RUNS = itertools.count()


def run_worker(store, env, workdir: Path, items: list[FuzzInput], *, uses_images: bool, batch_size: int,
               dead: Path | None = None, max_records: int | None = None, clear: bool = True,
               stream: Path | None = None):
    """One worker over ``items`` written as JSONL (to ``stream``, re-read as it is when it
    exists): ``(records, metrics, extractor, dead-letter path)``."""
    if clear:
        store.query("MATCH (n) DETACH DELETE n")
    n = next(_RUNS)
    stream = stream or workdir / f"stream-{n}.jsonl"
    before = stream.read_bytes() if stream.exists() else None
    records = write_stream(stream, items)
    assert before is None or stream.read_bytes() == before
    dead = dead or workdir / f"dead-{n}.jsonl"
    extractor = ImageCheckingExtractor(env.policy.max_side) if uses_images else GivenEntitiesExtractor()
    sink = FileDeadLetterSink(dead)
    source = FileSource([stream])
    worker = Worker(source, extractor, store, sink, batch_size=batch_size, retry_initial_s=0.05, retry_max_s=0.5,
                    retry_limit_s=20, images=env.policy)
    try:
        with time_limit(120, "a worker run"):
            metrics = worker.run(max_records=max_records)
    finally:
        sink.close()
        source.close()
    return records, metrics, extractor, dead


def outcome_of(store, records, metrics, extractor, dead: Path, uses_images: bool, same_run_letters: bool = True):
    return check_outcome(records, records_received=metrics.records_received, metrics_dead=metrics.dead_letters,
                         same_run_letters=same_run_letters,
                         letters=read_dead_letters(dead), posts=graph_posts(store), uses_images=uses_images,
                         seen_images=getattr(extractor, "seen_images", None),
                         entity_duplicates=duplicated_entities(store))


def _report(outcome, items) -> str:
    kinds = Counter(i.kind for i in items)
    return "\n".join(outcome.violations) + f"\n({len(items)} inputs: {dict(kinds)})"


def test_no_input_stops_the_worker_or_is_lost(short_tmp, embedded_store, fuzz_env):
    done = Counter()

    def streams_through_the_worker(examples: int):
        @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=SLOW_OK,
                  print_blob=True, phases=WORKER_PHASES)
        @given(st.data(), st.sampled_from(BATCH_SIZES), st.booleans())
        def one_stream(data, batch_size, uses_images):
            items = data.draw(st.composite(lambda draw: draw_stream(draw, fuzz_env, 50, 110))(), label="stream")
            records, metrics, extractor, dead = run_worker(embedded_store, fuzz_env, short_tmp, items,
                                                           uses_images=uses_images, batch_size=batch_size)
            outcome = outcome_of(embedded_store, records, metrics, extractor, dead, uses_images)
            assert not outcome.violations, _report(outcome, items)
            assert outcome.good_lost == 0 and outcome.good_duplicated == 0
            done["inputs"] += len(items)
            done["written"] += outcome.written
            done["examples"] += 1
            done.update({f"stage:{k}": v for k, v in outcome.dead_lettered_by_stage.items()})
            done[f"uses_images:{uses_images}"] += len(items)
        return one_stream

    started = time.monotonic()
    for _ in range(10):  # hypothesis stops at max_examples; go on until enough inputs went through
        if done["inputs"] >= MIN_INPUTS:
            break
        streams_through_the_worker(max(1, math.ceil((MIN_INPUTS - done["inputs"]) / 75)))()
    print(f"fuzz: {dict(done)} in {time.monotonic() - started:.0f} s")
    assert done["inputs"] >= MIN_INPUTS
    for stage in ("parse", "image", "conflict", "extract", "schema"):  # every stage a post can fail in was hit
        assert done[f"stage:{stage}"] > 0, (stage, dict(done))
    assert done["written"] > MIN_INPUTS // 4 and done["uses_images:True"] and done["uses_images:False"]


def _graph_state(store) -> dict:
    """Everything a re-run could change: posts, entities and facts with their provenance."""
    def rows(q):
        return sorted(json.dumps(r, sort_keys=True, default=str) for r in store.query(q).rows)

    return {"posts": rows("MATCH (p:Post) RETURN p.id, p.content_hash, p.text, p.created_at"),
            "entities": rows("MATCH (e:Entity) RETURN e.key, e.name, e.post_ids, e.first_seen, e.last_seen"),
            "facts": rows("MATCH (h)-[r]->(t) RETURN h.key, type(r), t.key, r.post_ids, r.first_seen, r.last_seen")}


def test_a_restart_over_uncommitted_records_changes_nothing(short_tmp, embedded_store, fuzz_env):
    """A worker crashes after ``crash_at`` records (nothing committed: no checkpoint), a second
    one reads the whole file again with the same dead-letter file, a third does it once more."""
    done = Counter()

    @settings(max_examples=int(os.environ.get("MKG_FUZZ_RESTART_EXAMPLES", "25")), deadline=None, database=None,
              suppress_health_check=SLOW_OK, print_blob=True, phases=WORKER_PHASES)
    @given(st.data(), st.sampled_from(BATCH_SIZES), st.booleans(), st.floats(0, 1))
    def restart(data, batch_size, uses_images, crash_at):
        items = data.draw(st.composite(lambda draw: draw_stream(draw, fuzz_env, 40, 90))(), label="stream")
        n_records = sum(1 for i in items if not i.blank)
        n = next(_RUNS)
        dead, stream = short_tmp / f"dead-restart-{n}.jsonl", short_tmp / f"stream-restart-{n}.jsonl"
        kw = dict(uses_images=uses_images, batch_size=batch_size, dead=dead, stream=stream)
        run_worker(embedded_store, fuzz_env, short_tmp, items, max_records=int(n_records * crash_at), **kw)
        records, metrics, extractor, _ = run_worker(embedded_store, fuzz_env, short_tmp, items, clear=False, **kw)
        outcome = outcome_of(embedded_store, records, metrics, extractor, dead, uses_images, same_run_letters=False)
        assert not outcome.violations, _report(outcome, items)
        letters, state = dead.read_bytes(), _graph_state(embedded_store)
        records, metrics, extractor, _ = run_worker(embedded_store, fuzz_env, short_tmp, items, clear=False, **kw)
        assert dead.read_bytes() == letters, "a restart wrote dead letters again"
        assert _graph_state(embedded_store) == state, "a restart changed the graph"
        assert metrics.records_received == n_records
        done["inputs"] += len(items)
        done["dead_letters"] += len(read_dead_letters(dead))

    restart()
    assert done["inputs"] > 500 and done["dead_letters"] > 0, dict(done)


# --- regressions and known bugs ------------------------------------------------------------------


def _two_records(tmp: Path, broken: dict, fixed: dict) -> Path:
    path = tmp / "retry.jsonl"
    path.write_bytes(json.dumps(broken).encode() + b"\n" + json.dumps(fixed).encode() + b"\n")
    return path


def test_a_fixed_resend_after_a_late_failure_is_written(short_tmp, embedded_store):
    """A broken post that fails after the conflict check (schema here) does not claim its id:
    the fixed re-send in the same batch is written, not refused as a conflict."""
    post = {"id": "p1", "text": "Obama in Paris", "created_at": "2026-01-01T00:00:00Z"}
    broken = {**post, "annotations": {"entities": [{"id": "a", "start": 0, "end": 5, "type": "FOO"}]}}  # schema
    stream = _two_records(short_tmp, broken, post)
    sink = FileDeadLetterSink(short_tmp / "dead.jsonl")
    Worker(FileSource([stream]), GivenEntitiesExtractor(), embedded_store, sink, batch_size=2).run()
    sink.close()
    stages = sorted(l.stage for l in read_dead_letters(short_tmp / "dead.jsonl"))
    assert stages == ["schema"] and embedded_store.query("MATCH (p:Post) RETURN p.id").rows == [["p1"]]


def test_a_restart_with_other_batch_boundaries_keeps_in_graph_xor_dead_lettered(short_tmp, embedded_store):
    """The case above across a restart whose polls are smaller (Kafka: any size): the fixed post
    must not end up both in the graph and dead-lettered."""
    post = {"id": "p1", "text": "Obama in Paris", "created_at": "2026-01-01T00:00:00Z"}
    broken = {**post, "text": "Obama in Paris " + MARKER}  # the model raises: extract stage
    stream = _two_records(short_tmp, broken, post)
    for batch_size in (2, 1):  # crash before the commit, restart with smaller polls (Kafka: any size)
        sink = FileDeadLetterSink(short_tmp / "dead.jsonl")
        Worker(FileSource([stream]), GivenEntitiesExtractor(), embedded_store, sink, batch_size=batch_size).run()
        sink.close()
    letters = {l.key.rsplit("|", 1)[1]: l.stage for l in read_dead_letters(short_tmp / "dead.jsonl")}
    in_graph = embedded_store.query("MATCH (p:Post) RETURN p.id").rows == [["p1"]]
    assert not (in_graph and "2" in letters), (in_graph, letters)


@pytest.mark.parametrize("case", ["redelivery_in_one_batch", "redelivery_in_the_next_batch", "conflict"])
def test_u0001_never_reaches_a_graph_key(short_tmp, embedded_store, case):
    """Found by this fuzz suite: FalkorDB's index cannot find a string holding U+0001 again. In
    one batch a re-delivery segfaulted FalkorDB in the Post MERGE on every retry (the worker
    stopped, and again after each restart); across batches every delivery added a Post node
    and other content under the id was written beside the first. Now an id with a control
    character is refused at parse, and control characters are removed from entity keys."""
    bad_id = {"id": "p\u0001", "text": "Angela Merkel visited Paris", "created_at": "2026-01-01T00:00:00Z"}
    post = {"id": "p1", "text": "Angela\u0001 Merkel visited Paris", "created_at": "2026-01-01T00:00:00Z",
            "annotations": {"entities": [{"id": "a", "start": 0, "end": 14, "type": "PER"}]}}
    later = post if case.startswith("redelivery") else {**post, "text": "Angela\u0001 Merkel visited Rome"}
    path = short_tmp / "u0001.jsonl"
    path.write_bytes(b"\n".join(json.dumps(r).encode() for r in (bad_id, post, later, bad_id)) + b"\n")
    sink = FileDeadLetterSink(short_tmp / "dead.jsonl")
    worker = Worker(FileSource([path]), GivenEntitiesExtractor(), embedded_store, sink,
                    batch_size=4 if case == "redelivery_in_one_batch" else 1, retry_initial_s=0.1, retry_limit_s=3)
    try:
        worker.run()
    finally:
        sink.close()
    stages = [(l.key.rsplit("|", 1)[1], l.stage) for l in read_dead_letters(short_tmp / "dead.jsonl")]
    assert sorted(stages) == [("1", "parse")] + ([] if case.startswith("redelivery") else [("3", "conflict")]) + [
        ("4", "parse")]
    assert embedded_store.query("MATCH (p:Post) RETURN p.id, p.text").rows == [["p1", post["text"]]]
    assert embedded_store.query("MATCH (e:Entity) RETURN e.key, e.name").rows == [["PER:angela merkel", "Angela Merkel"]]


# --- Kafka + Neo4j: the key cases on the real servers ------------------------------------------


def _produce(services, topic: str, payloads: list[bytes]) -> list[int]:
    """Send to partition 0 (one partition keeps "first version" well defined); the offsets."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=services.services["kafka"].address, acks="all",
                             max_request_size=16 * 1024 * 1024)
    futures = [producer.send(topic, value=p, partition=0) for p in payloads]
    producer.flush()
    offsets = [f.get(timeout=60).offset for f in futures]
    producer.close()
    return offsets


def _dead_letter_topic(services, topic: str):
    """Every dead letter on ``topic`` (read to its end)."""
    from kafka import KafkaConsumer, TopicPartition

    from pipeline.dead_letter import DeadLetter

    consumer = KafkaConsumer(bootstrap_servers=services.services["kafka"].address, enable_auto_commit=False,
                             max_partition_fetch_bytes=32 * 1024 * 1024, fetch_max_bytes=64 * 1024 * 1024)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end, out, deadline = consumer.end_offsets(tps), [], time.monotonic() + 60
        while any(consumer.position(tp) < end[tp] for tp in tps) and time.monotonic() < deadline:
            for messages in consumer.poll(timeout_ms=500).values():
                out += [DeadLetter(**json.loads(m.value)) for m in messages]
        return out
    finally:
        consumer.close()


def _kafka_worker(services, topic: str, group: str, store, extractor, env, n: int):
    from pipeline.config import KafkaConfig
    from pipeline.dead_letter import KafkaDeadLetterSink
    from pipeline.sources.kafka import KafkaSource

    cfg = KafkaConfig(bootstrap_servers=services.services["kafka"].address, topic=topic, group_id=group,
                      dead_letter_topic=f"{topic}.dead", poll_timeout_ms=300, session_timeout_ms=6000,
                      heartbeat_interval_ms=1000, max_poll_interval_ms=120_000)
    sink = KafkaDeadLetterSink(cfg)  # reads the keys already on the dead-letter topic
    source = KafkaSource(cfg, 16)
    worker = Worker(source, extractor, store, sink, batch_size=16, retry_initial_s=0.1, retry_max_s=1.0,
                    retry_limit_s=30, images=env.policy)
    try:
        with time_limit(120, "a Kafka worker run"):
            return worker.run(max_records=n, idle_timeout_s=60)
    finally:
        source.close()
        sink.close()


def _kafka_cases(env, prefix: str) -> list[FuzzInput]:
    cases = key_cases(env, prefix)
    # U+0001 in an id: refused at parse on every backend (FalkorDB's index loses such ids)
    soh = {"id": f"{prefix}-\x01soh", "text": "U+0001 in the id", "created_at": "2026-01-01T00:00:00Z"}
    cases.insert(7, FuzzInput(json.dumps(soh).encode(), "parse:soh_id", PARSE, PARSE))
    return cases


@pytest.mark.integration
def test_key_hostile_cases_on_kafka_and_neo4j(services, topic, neo4j_store, fuzz_env):
    cases = _kafka_cases(fuzz_env, topic)
    offsets = _produce(services, topic, [c.payload for c in cases])
    records = [(c, f"{topic}|0|{o}") for c, o in zip(cases, offsets)]
    extractor = ImageCheckingExtractor(fuzz_env.policy.max_side)
    metrics = _kafka_worker(services, topic, f"fuzz-{topic}", neo4j_store, extractor, fuzz_env, len(cases))
    letters = _dead_letter_topic(services, f"{topic}.dead")
    outcome = check_outcome(records, records_received=metrics.records_received, metrics_dead=metrics.dead_letters,
                            letters=letters, posts=graph_posts(neo4j_store), uses_images=True,
                            seen_images=extractor.seen_images, entity_duplicates=duplicated_entities(neo4j_store))
    assert not outcome.violations, _report(outcome, cases)
    assert outcome.good_lost == 0 and outcome.good_duplicated == 0
    assert set(outcome.dead_lettered_by_stage) == {"parse", "image", "conflict", "extract", "schema"}
    state = _graph_state(neo4j_store)

    # the same uncommitted records again (another group reads from the start): nothing twice
    again = _kafka_worker(services, topic, f"fuzz-again-{topic}", neo4j_store,
                          ImageCheckingExtractor(fuzz_env.policy.max_side), fuzz_env, len(cases))
    assert again.records_received == len(cases) and again.dead_letters == metrics.dead_letters
    assert sorted(l.key for l in _dead_letter_topic(services, f"{topic}.dead")) == sorted(l.key for l in letters)
    assert _graph_state(neo4j_store) == state


@pytest.mark.integration
def test_a_record_whose_dead_letter_outgrows_the_topic_limit_does_not_stop_the_worker(services, topic,
                                                                                      neo4j_store, fuzz_env):
    good = {"id": f"{topic}-ok", "text": "Angela Merkel visited Paris", "created_at": "2026-01-01T00:00:00Z"}
    # 3 MiB of U+0001: a valid 3 MiB record, not JSON; its dead letter escapes each byte as \u0001 (18 MiB)
    payloads = [json.dumps(good).encode(), b"\x01" * (3 * 1024 * 1024), json.dumps({**good, "id": f"{topic}-ok2"}).encode()]
    _produce(services, topic, payloads)
    metrics = _kafka_worker(services, topic, f"fuzz-{topic}", neo4j_store, GivenEntitiesExtractor(), fuzz_env, 3)
    assert metrics.records_received == 3 and metrics.dead_letters["parse"] == 1
    (letter,) = _dead_letter_topic(services, f"{topic}.dead")
    assert letter.payload_truncated and letter.stage == "parse"  # cut to fit, the hash names the whole
    assert letter.payload_sha256 == hashlib.sha256(payloads[1]).hexdigest()
    assert sorted(r[0] for r in neo4j_store.query("MATCH (p:Post) RETURN p.id").rows) == [f"{topic}-ok", f"{topic}-ok2"]
