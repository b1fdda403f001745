"""The worker on embedded defaults (local log + embedded graph), no servers needed."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from helpers import (CRASH_AFTER_WRITE, REPO, assert_each_post_once, expected_facts, graph_facts,
                     malformed_payloads, mnre_posts, worker_config, write_jsonl)

from extractors.base import Extractor, RelationMention
from pipeline.dead_letter import FileDeadLetterSink, read_dead_letters
from pipeline.sources.files import FileSource
from pipeline.worker import Worker

MKG = [sys.executable, "-m", "pipeline.cli"]


def test_demo_runs_end_to_end(short_tmp):
    # run from an empty folder: no model store there, so the demo uses the models shipped in the package
    from extractors.schema import MNRE_RELATIONS, relation_type_of

    out = subprocess.run(MKG + ["demo", "--workdir", str(short_tmp)], capture_output=True, text=True, timeout=300,
                         cwd=short_tmp, env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert out.returncode == 0, out.stderr
    assert "posts in graph: 47 (7 with a photo)" in out.stdout
    assert "dead letters: 2" in out.stdout
    assert "with mkg-multimodal@mner-" in out.stdout and "rows)" in out.stdout
    assert "mner: mner-" in out.stdout and "(shipped)" in out.stdout  # which versions ran, and from where
    assert "zero-shot: zs-mnre-" in out.stdout and "labelling no class yet" in out.stdout
    photo_facts = out.stdout.split("Facts from posts with a photo:")[1]
    assert "sample-04" in photo_facts  # typed facts extracted from posts that carry a photo
    typed = {relation_type_of(r) for r in MNRE_RELATIONS}
    assert "CO_MENTIONED" not in out.stdout and any(f" {t} " in out.stdout for t in typed)
    # the demo scores its own graph against the sample's hand-labelled gold (pipeline/data/sample_gold.jsonl)
    assert "Measured against the hand-labelled sample (sample_gold.jsonl): precision" in out.stdout


def test_malformed_posts_go_to_dead_letters_and_the_rest_is_written(short_tmp, embedded_store, spacy_extractor):
    good = mnre_posts(100)
    bad = malformed_payloads()
    stream = []
    for i, post in enumerate(good):
        stream.append(post)
        if i % 2 == 0:
            stream.append(bad[i // 2])
    log = write_jsonl(short_tmp / "stream.jsonl", stream)
    dead = FileDeadLetterSink(short_tmp / "dead.jsonl")
    worker = Worker(FileSource([log]), spacy_extractor, embedded_store, dead, batch_size=16)
    metrics = worker.run()
    dead.close()

    letters = read_dead_letters(short_tmp / "dead.jsonl")
    # the empty record is a blank line in a JSONL file, which the file source skips
    non_blank = [b for b in bad if b]
    assert len(letters) == len(non_blank) == metrics.dead_lettered
    assert sorted(l.original_payload() for l in letters) == sorted(non_blank)
    assert all(l.reason and l.stage in {"parse", "image"} for l in letters)
    assert embedded_store.query("MATCH (p:Post) RETURN count(p)").rows == [[100]]
    facts, rows = graph_facts(embedded_store)
    assert facts == expected_facts(spacy_extractor, good) and rows == len(facts)


class InjectingExtractor(Extractor):
    """A deliberately broken model: for some posts it emits Cypher as a relation type."""

    name, version = "broken", "0"

    def __init__(self, inner, evil: str):
        self.inner, self.evil = inner, evil

    def extract(self, batch):
        out = self.inner.extract(batch)
        for item, ext in zip(batch, out):
            if item.post_id.endswith("7") and len(ext.entities) >= 2:
                ext.relations.append(RelationMention(ext.entities[0], ext.entities[1], self.evil, 1.0))
        return out


def test_cypher_from_a_broken_extractor_is_rejected(short_tmp, graph_store, spacy_extractor):
    posts = mnre_posts(60)
    evil = "CO_MENTIONED]->() WITH 1 AS x MATCH (n) DETACH DELETE n //"
    extractor = InjectingExtractor(spacy_extractor, evil)
    dead = FileDeadLetterSink(short_tmp / "dead.jsonl")
    worker = Worker(FileSource([write_jsonl(short_tmp / "s.jsonl", posts)]), extractor, graph_store, dead)
    worker.run()
    dead.close()
    letters = read_dead_letters(short_tmp / "dead.jsonl")
    assert letters, "the broken extractor should have produced at least one rejected post"
    assert all(l.stage == "schema" and "not an identifier" in l.reason for l in letters)
    rejected = {json.loads(l.payload)["id"] for l in letters}
    written = {r[0] for r in graph_store.query("MATCH (p:Post) RETURN p.id").rows}
    assert written.isdisjoint(rejected) and len(written) + len(rejected) == len(posts)  # nothing deleted
    assert graph_store.query("MATCH ()-[r]->() WHERE type(r) CONTAINS 'DELETE' RETURN count(r)").rows == [[0]]


def test_sigkill_mid_batch_then_restart_loses_and_duplicates_nothing(short_tmp, spacy_extractor):
    from graph_store.embedded import EmbeddedGraphStore

    posts = mnre_posts(400)
    log = write_jsonl(short_tmp / "stream.jsonl", posts)
    cfg = worker_config(short_tmp, posts_file=log, batch_size=20)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(MKG + ["worker", "--config", str(cfg)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = None
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            time.sleep(0.2)
            if (short_tmp / "graph" / "falkordb.pid").exists():
                store = store or EmbeddedGraphStore(short_tmp / "graph")
                if store.query("MATCH (p:Post) RETURN count(p)").rows[0][0] >= 100:
                    break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        partial = store.query("MATCH (p:Post) RETURN count(p)").rows[0][0]
        assert 100 <= partial < len(posts), "kill should land mid-stream"
        done = subprocess.run(MKG + ["worker", "--config", str(cfg)], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        metrics = json.loads(done.stdout.strip().splitlines()[-1])
        assert metrics["records_received"] < len(posts)  # resumed, not restarted from zero
        facts, rows = graph_facts(store)
        assert facts == expected_facts(spacy_extractor, posts)
        assert rows == len(facts)
        assert store.query("MATCH (p:Post) RETURN count(p)").rows == [[len(posts)]]
    finally:
        if proc.poll() is None:
            proc.kill()
        if store is not None:
            store.close()


def test_kill_between_graph_write_and_commit_rewrites_that_batch_once(short_tmp, spacy_extractor):
    """SIGKILL lands exactly after batch 3's graph write and before its commit (tests/crash_after_write.py):
    batch 3 is in the graph but not committed, so the restart reads it again and rewrites it
    idempotently; nothing is lost, nothing doubled."""
    from graph_store.embedded import EmbeddedGraphStore

    posts = mnre_posts(200)
    cfg = worker_config(short_tmp, posts_file=write_jsonl(short_tmp / "stream.jsonl", posts), batch_size=20)
    marker = short_tmp / "crashed.json"
    run_env = {**os.environ, "PYTHONPATH": str(REPO)}
    crashed = subprocess.run(CRASH_AFTER_WRITE + ["3", str(marker), "worker", "--config", str(cfg)], env=run_env,
                             capture_output=True, text=True, timeout=300)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-3000:]
    landed = json.loads(marker.read_text())
    assert landed == {"ids": sorted(p["id"] for p in posts[40:60]), "posts_before": 40}
    with EmbeddedGraphStore(short_tmp / "graph") as store:  # the write of batch 3 reached the graph
        assert {r[0] for r in store.query("MATCH (p:Post) RETURN p.id").rows} == {p["id"] for p in posts[:60]}

    done = subprocess.run(MKG + ["worker", "--config", str(cfg)], env=run_env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads(done.stdout.strip().splitlines()[-1])
    # batches 1-2 were committed, batch 3 was not: the restart starts at post 41
    assert metrics["records_received"] == metrics["posts_written"] == len(posts) - 40
    with EmbeddedGraphStore(short_tmp / "graph") as store:
        assert_each_post_once(store, posts, spacy_extractor)


def test_embedded_graph_outage_stalls_commits_then_completes(short_tmp, spacy_extractor):
    import threading

    from graph_store.embedded import EmbeddedGraphStore

    posts = mnre_posts(200)
    log = write_jsonl(short_tmp / "stream.jsonl", posts)
    owner = EmbeddedGraphStore(short_tmp / "graph")  # starts the server
    attached = EmbeddedGraphStore(short_tmp / "graph")  # the worker's client, like a second process
    ckpt = short_tmp / "ckpt.json"
    dead = FileDeadLetterSink(short_tmp / "dead.jsonl")
    worker = Worker(FileSource([log], checkpoint=ckpt), spacy_extractor, attached, dead, 10, 0.2, 2.0)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while worker.metrics.batches_committed < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        owner.close()  # server down
        time.sleep(0.5)
        during_start = ckpt.read_text()
        time.sleep(10)
        assert ckpt.read_text() == during_start, "nothing may be committed while the graph is down"
        owner = EmbeddedGraphStore(short_tmp / "graph")  # back, from its append-only file
        thread.join(timeout=120)
    finally:
        worker.stop()
        thread.join(timeout=30)
        dead.close()
    assert worker.metrics.graph_retries > 0
    assert json.loads(ckpt.read_text()) == {str(log.resolve()): len(posts)}
    facts, rows = graph_facts(owner)
    assert facts == expected_facts(spacy_extractor, posts) and rows == len(facts)
    attached.close()
    owner.close()


def test_sigterm_finishes_the_batch_commits_and_exits(short_tmp, spacy_extractor):
    """A worker tailing a live log stops cleanly on SIGTERM; a restart picks up the rest."""
    import yaml

    from graph_store.embedded import EmbeddedGraphStore

    posts = mnre_posts(300)
    log = write_jsonl(short_tmp / "live.jsonl", posts[:200])
    cfg = worker_config(short_tmp, posts_file=log, batch_size=20)
    data = yaml.safe_load(cfg.read_text())
    data["source"]["follow"] = True
    cfg.write_text(yaml.safe_dump(data))
    proc = subprocess.Popen(MKG + ["worker", "--config", str(cfg)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    state = short_tmp / "state"
    deadline = time.monotonic() + 120
    while not list(state.glob("*.json")) and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    metrics = json.loads(out.strip().splitlines()[-1])
    (ckpt,) = state.glob("*.json")
    committed = json.loads(ckpt.read_text())[str(log.resolve())]
    assert committed == metrics["records_received"] > 0  # the batch in hand was finished and committed

    with open(log, "ab") as fh:  # the stream goes on while the worker is down
        for post in posts[200:]:
            fh.write(json.dumps(post).encode() + b"\n")
    done = subprocess.run(MKG + ["worker", "--config", str(cfg), "--idle-timeout", "3"], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["records_received"] == len(posts) - committed
    store = EmbeddedGraphStore(short_tmp / "graph")
    facts, rows = graph_facts(store)
    assert facts == expected_facts(spacy_extractor, posts) and rows == len(facts)
    store.close()


def test_a_failing_model_reload_keeps_the_stream_going(short_tmp, embedded_store, spacy_extractor):
    class BadReload(Extractor):
        name, version = "spacy-bad-reload", "1"

        def extract(self, batch):
            return spacy_extractor.extract(batch)

        def refresh(self):
            raise OSError("weights.safetensors is truncated")

    posts = mnre_posts(30)
    dead = FileDeadLetterSink(short_tmp / "dead.jsonl")
    worker = Worker(FileSource([write_jsonl(short_tmp / "s.jsonl", posts)]), BadReload(), embedded_store, dead, 10)
    metrics = worker.run()
    dead.close()
    assert metrics.batches_committed == 3 and metrics.dead_lettered == 0
    assert embedded_store.query("MATCH (p:Post) RETURN count(p)").rows == [[30]]


class _Counting:
    """A source that records each poll's size and the commits it gets, around a real file source."""

    def __init__(self, inner, delay_s: float = 0.0) -> None:
        self.inner, self.delay_s = inner, delay_s
        self.polls: list[int] = []
        self.commits: list[int] = []

    def poll(self, n):
        time.sleep(self.delay_s)
        got = self.inner.poll(n)
        self.polls.append(len(got))
        return got

    def commit(self, records):
        self.commits.append(len(records))
        self.inner.commit(records)

    def lag(self):
        return {}

    @property
    def exhausted(self):
        return self.inner.exhausted

    def close(self):
        self.inner.close()


def test_a_graph_batch_gathers_polls_up_to_write_batch_and_commits_after_its_write(short_tmp, embedded_store,
                                                                                   spacy_extractor):
    posts = mnre_posts(250)
    source = _Counting(FileSource([write_jsonl(short_tmp / "s.jsonl", posts)]))
    writes = []
    write = embedded_store.write
    embedded_store.write = lambda batch: (writes.append(len(batch.posts)), write(batch))[1]
    dead = FileDeadLetterSink(short_tmp / "dead.jsonl")
    worker = Worker(source, spacy_extractor, embedded_store, dead, batch_size=10, write_batch=100, linger_s=60)
    metrics = worker.run()
    dead.close()
    assert set(source.polls[:-1]) == {10}  # polls stay small...
    assert writes == [100, 100, 50] and source.commits == [100, 100, 50]  # ...graph writes and commits are big
    assert metrics.batches_committed == 3
    assert embedded_store.query("MATCH (p:Post) RETURN count(p)").rows == [[250]]


def test_linger_bounds_how_long_a_batch_gathers(short_tmp, embedded_store, spacy_extractor):
    posts = mnre_posts(40)
    source = _Counting(FileSource([write_jsonl(short_tmp / "s.jsonl", posts)]), delay_s=0.05)
    dead = FileDeadLetterSink(short_tmp / "dead.jsonl")
    worker = Worker(source, spacy_extractor, embedded_store, dead, batch_size=2, write_batch=1000, linger_s=0.2)
    worker.run()
    dead.close()
    # a poll every 0.05 s, 2 records each: a batch closes once 0.2 s passed since its first record
    assert len(source.commits) >= 3 and max(source.commits) <= 12, source.commits
    assert sum(source.commits) == 40
