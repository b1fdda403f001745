"""Shared test data: real MNRE posts from ../shared/data, malformed payloads."""
from __future__ import annotations

import ast
import base64
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import NoReturn

import pytest

from benchmarks.common import expected_facts  # noqa: F401  (the tests' expected triples; one home)

REPO = Path(__file__).resolve().parents[1]
# In CI (``CI=true``, which .ci/run sets) a missing tool or data folder fails the run: a suite that
# skipped the Kafka, Neo4j, browser or real-data tests would otherwise stay green while testing little.
IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def unavailable(reason: str) -> NoReturn:
    """A test cannot run here because a tool or data folder is missing: skip it and say why, or, in
    CI, fail loudly."""
    if IN_CI:
        pytest.fail(f"{reason} [CI=true: a missing tool or data folder fails the run instead of skipping]",
                    pytrace=False)
    pytest.skip(reason)

SHARED_DATA = REPO.parent / "shared" / "data"
# `mkg worker` killed right after its k-th graph write, before the commit (see the script)
CRASH_AFTER_WRITE = [sys.executable, str(REPO / "tests" / "crash_after_write.py")]

# The suite's own servers (tests/conftest.py `services`): own ports and an own
# run directory, so `make test` never touches a developer's Kafka on :9092 or
# Neo4j on :7687 (the fixtures delete everything in the graph they are given).
TEST_KAFKA_PORT = int(os.environ.get("MKG_TEST_KAFKA_PORT", 29092))  # and +1 for its KRaft controller
TEST_BOLT_PORT = int(os.environ.get("MKG_TEST_NEO4J_BOLT_PORT", 27687))
TEST_SERVICES_DIR = Path(os.environ.get("MKG_TEST_SERVICES_DIR", Path(tempfile.gettempdir()) / "mkg-test-services"))


def mnre_posts(n: int, split: str = "train") -> list[dict]:
    """``n`` real MNRE tweets as wire posts (one per distinct text)."""
    path = SHARED_DATA / "mnre" / f"mnre_{split}.txt"
    if not path.exists():
        unavailable(f"real data missing: {path} (expected ../shared/data beside the checkout)")
    posts, seen = [], set()
    for i, line in enumerate(path.read_text().splitlines()):
        ex = ast.literal_eval(line)
        text = " ".join(ex["token"])
        if text in seen:
            continue
        seen.add(text)
        posts.append({"id": f"mnre-{split}-{i}", "text": text, "created_at": f"2026-01-01T00:{len(posts) // 60 % 60:02d}:{len(posts) % 60:02d}Z",
                      "author": "@mnre", "source": "mnre", "language": "en"})
        if len(posts) == n:
            return posts
    raise ValueError(f"only {len(posts)} distinct posts in {path}")


def malformed_payloads() -> list[bytes]:
    """50 broken records of varied kinds, each a distinct payload."""
    good = {"text": "Angela Merkel visited Paris", "created_at": "2026-01-01T00:00:00Z"}
    out: list[bytes] = []
    for i in range(50):
        kind = i % 10
        pid = f"bad-{i}"
        if kind == 0:
            out.append(f'{{"id": "{pid}", "text": "unterminated'.encode())
        elif kind == 1:
            out.append(json.dumps({"id": pid, "created_at": good["created_at"]}).encode())  # missing text
        elif kind == 2:
            out.append(json.dumps({"id": i, **good}).encode())  # wrong type
        elif kind == 3:
            out.append(json.dumps({"id": pid, "text": "x" * 5_000_000, "created_at": good["created_at"]}).encode())
        elif kind == 4:
            img = base64.b64encode(b"\x89PNG but not really" + bytes([i])).decode()
            out.append(json.dumps({"id": pid, **good, "image": {"base64": img}}).encode())
        elif kind == 5:
            out.append(b'{"id": "' + pid.encode() + b'", "text": "caf\xe9 \xff", "created_at": "2026-01-01T00:00:00Z"}')
        elif kind == 6:
            out.append(json.dumps({"id": pid, **good, "created_at": "not a date"}).encode())
        elif kind == 7:
            out.append(json.dumps([pid, good]).encode())
        elif kind == 8:
            out.append(json.dumps({"id": pid, **good, "text": 12345}).encode())
        else:
            out.append(b"")  # empty record
    return out


def graph_facts(store) -> tuple[dict[tuple[str, str, str], set[str]], int]:
    """Facts in the graph and the number of relationship rows (duplicates show as more rows)."""
    rows = store.query("MATCH (h:Entity)-[r]->(t:Entity) RETURN h.key, type(r), t.key, r.post_ids").rows
    facts: dict[tuple[str, str, str], set[str]] = {}
    for h, rel, t, post_ids in rows:
        assert len(post_ids) == len(set(post_ids)), f"duplicate provenance on {h}-{rel}-{t}: {post_ids}"
        facts[(h, rel, t)] = set(post_ids)
    return facts, len(rows)


def assert_each_post_once(store, posts: list[dict], extractor) -> None:
    """Every post stored once, every triple once (graph_facts also checks no post is counted twice
    in a triple's provenance), and exactly the triples ``extractor`` finds in ``posts``."""
    ids = [r[0] for r in store.query("MATCH (p:Post) RETURN p.id").rows]
    assert sorted(ids) == sorted(p["id"] for p in posts)
    facts, rows = graph_facts(store)
    assert facts == expected_facts(extractor, posts) and rows == len(facts) > 0


def write_jsonl(path: Path, records: list) -> Path:
    with open(path, "wb") as fh:
        for rec in records:
            fh.write((rec if isinstance(rec, bytes) else json.dumps(rec).encode()) + b"\n")
    return path


def worker_config(tmp: Path, *, source: str = "embedded", graph: str = "embedded", topic: str = "posts",
                  posts_file: Path | None = None, batch_size: int = 25, kafka: str = f"127.0.0.1:{TEST_KAFKA_PORT}",
                  neo4j: str = f"bolt://127.0.0.1:{TEST_BOLT_PORT}", write_batch: int | None = None,
                  extractor: str = "spacy") -> Path:
    """A YAML config for a worker subprocess (the password comes from the env).

    A graph batch is ``batch_size`` records (one poll) unless ``write_batch`` says otherwise: the
    crash tests count batches of that size."""
    import yaml

    cfg = {
        "source": {"kind": source, **({"path": str(posts_file)} if posts_file else {})},
        "kafka": {"bootstrap_servers": kafka, "topic": topic, "group_id": f"g-{topic}",
                  "dead_letter_topic": f"{topic}.dead", "poll_timeout_ms": 500,
                  "session_timeout_ms": 6000, "heartbeat_interval_ms": 1000, "max_poll_interval_ms": 10000},
        "graph": {"backend": graph, "embedded_dir": str(tmp / "graph"), "neo4j_uri": neo4j},
        "extractor": {"kind": extractor},  # spacy by default: the expected triples are computed with it
        "worker": {"batch_size": batch_size, "write_batch": write_batch or batch_size,
                   "dead_letter_path": str(tmp / "dead.jsonl"),
                   "state_dir": str(tmp / "state"), "retry_initial_s": 0.2, "retry_max_s": 2.0},
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def imre_posts(task: int, n: int, *, split: str = "train", labelled: bool = True, prefix: str = "",
               day: int = 1, relations: set[str] | None = None) -> list[dict]:
    """``n`` real IMRE sep10 examples of ``task`` as posts (relations taking turns), with entity spans.

    ``labelled`` posts carry the gold relation (a labelling tool's output);
    otherwise only the entity spans (an upstream tagger's), for the stream.
    """
    from continual.labelled import post_from_re_example
    from continual.streams import balanced_sample
    from extractors.datasets import read_re

    path = SHARED_DATA / "imre" / "sep10" / f"ours_{split}_{task}.txt"
    if not path.exists():
        unavailable(f"real data missing: {path}")
    examples = [ex for ex in read_re(path) if relations is None or ex.relation in relations]
    chosen = balanced_sample(examples, n, lambda ex: ex.relation, seed=task)
    return [post_from_re_example(ex, f"{prefix}imre{task}-{split}-{i}",
                                 f"2026-02-{day:02d}T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z", labelled)
            for i, ex in enumerate(chosen)]


def dag_config(tmp: Path, **sections) -> Path:
    """A YAML config for the DAGs and `mkg continual`: embedded graph, IMRE-sized continual settings."""
    import yaml

    cfg = {
        "source": {"kind": "embedded", "path": str(tmp / "stream.jsonl"), "follow": True},
        "graph": {"backend": "embedded", "embedded_dir": str(tmp / "graph")},
        "extractor": {"kind": "multimodal", "models_dir": str(tmp / "models"), "relation_threshold": 0.5},
        "worker": {"batch_size": 8, "dead_letter_path": str(tmp / "dead.jsonl"), "state_dir": str(tmp / "state")},
        "continual": {"kinds": ["mre"], "labelled_path": str(tmp / "labelled.jsonl"),
                      "labelled_dir": str(tmp / "labelled"), "tasks_dir": str(tmp / "tasks"),
                      "work_dir": str(tmp / "work"), "min_examples": 10, "epochs": 2, "lr": 1e-4,
                      "per_class": 80, "batch_size": 16, "device": "cpu", "gate_max_old_drop": 10.0,
                      "gate_min_new_f1": 30.0},
        "novelty": {"observations_dir": str(tmp / "observations")},
        "logging": {"level": "WARNING", "format": "text"},
    }
    for section, values in sections.items():
        cfg.setdefault(section, {}).update(values)
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def append_jsonl(path: Path, records: list[dict]) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec) + "\n")
