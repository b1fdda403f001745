"""The Airflow DAGs under a real Airflow (SQLite metadata DB), run with ``dag.test()``.

The continual-learning scenario uses the real IMRE sep10 files (small slices)
and real training of the MiniLM + DINOv2 extractor on the CPU. The config is
passed the Airflow way: the ``mkg_config`` Variable (``AIRFLOW_VAR_MKG_CONFIG``)
names the YAML file; the Neo4j/Kafka variants pass provider connections.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import append_jsonl, dag_config, graph_facts, imre_posts, mnre_posts, write_jsonl

pytestmark = pytest.mark.integration

TASK0 = {"/per/per/peer"}  # sep10 task 0 (its other relation, religion, has 6 training examples)
TASK1 = {"/per/org/member_of", "/per/per/charges"}
N_LABELLED = 200  # labelled posts per task (classes taking turns, None pairs included)


def air_env(config: Path) -> dict:
    return {"AIRFLOW_VAR_MKG_CONFIG": str(config)}


def test_every_dag_loads_without_import_errors(airflow):
    result = airflow.run()
    assert result["import_errors"] == {}
    assert set(result["dag_ids"]) == {"detect_novelty", "continual_update", "backfill", "link_prediction",
                                      "resolve_entities"}


def test_backfill_dag_chunks_date_range_and_resume(airflow, short_tmp):
    archive = short_tmp / "archive"
    archive.mkdir()
    posts = mnre_posts(30)
    for day in range(3):  # one file per day
        chunk = [{**p, "created_at": f"2026-01-0{day + 1}T12:00:{i:02d}Z"} for i, p in enumerate(posts[day * 10:(day + 1) * 10])]
        write_jsonl(archive / f"posts-2026-01-0{day + 1}.jsonl", chunk)
    config = dag_config(short_tmp, extractor={"kind": "spacy"}, source={"follow": False})
    conf = {"paths": [str(archive / "*.jsonl")], "start": "2026-01-02", "end": "2026-01-03", "files_per_chunk": 1}
    first = airflow.run("backfill", conf, air_env(config))
    assert first["state"] == "success", first["log"][-3000:]
    assert sorted(k for k in first["tasks"] if k.startswith("process")) == ["process[0]", "process[1]", "process[2]"]
    summary = dict(first["xcom"]["summarise"])
    facts_written = summary.pop("facts_written")
    assert summary == {"records_received": 30, "posts_written": 20, "skipped": 10, "dead_lettered": 0, "chunks": 3}
    again = airflow.run("backfill", conf, air_env(config))  # same run key: every file is checkpointed as done
    assert again["state"] == "success"
    assert again["xcom"]["summarise"]["records_received"] == 0

    from graph_store.embedded import EmbeddedGraphStore

    with EmbeddedGraphStore(short_tmp / "graph") as graph:
        ids = {row[0] for row in graph.query("MATCH (p:Post) RETURN p.id").rows}
        facts, _ = graph_facts(graph)
    assert ids == {p["id"] for p in posts[10:30]}
    # each post's facts were written once: the count the chunks reported is the graph's (fact, post) pairs
    assert facts_written == sum(len(post_ids) for post_ids in facts.values()) > 0


# --- continual learning through the DAGs ------------------------------------------------------------

@pytest.fixture(scope="module")
def task0_model(airflow, tmp_path_factory):
    """Labelled task-0 posts -> detect_novelty proposes -> continual_update trains and promotes v1."""
    tmp = Path(tmp_path_factory.mktemp("task0"))
    append_jsonl(tmp / "labelled.jsonl", imre_posts(0, N_LABELLED, relations=TASK0 | {"None"}))
    config = dag_config(tmp)
    detected = airflow.run("detect_novelty", {"unsupervised": False}, air_env(config))
    assert detected["state"] == "success", detected["log"][-3000:]
    proposal = detected["xcom"]["supervised"]
    assert [t["classes"] for t in proposal["tasks"]] == [sorted(TASK0)]
    assert detected["xcom"]["announce"][0]["classes"] == sorted(TASK0)
    updated = airflow.run("continual_update", {}, air_env(config))
    assert updated["state"] == "success", updated["log"][-3000:]
    report = updated["xcom"]["update"]
    assert report["status"] == "promoted", json.dumps(report.get("gate"))
    return tmp, report["version"]


def _copy_state(src: Path, dst: Path) -> Path:
    """A private copy of the task-0 state (models, labelled data, tasks), so tests stay independent."""
    for name in ("models", "labelled", "tasks", "labelled.jsonl", "state"):
        if (src / name).is_dir():
            shutil.copytree(src / name, dst / name)
        elif (src / name).exists():
            shutil.copy(src / name, dst / name)
    return dag_config(dst)


def _propose_task1(airflow, tmp: Path, config: Path) -> dict:
    append_jsonl(tmp / "labelled.jsonl", imre_posts(1, N_LABELLED, relations=TASK1 | {"None"}, day=2))
    detected = airflow.run("detect_novelty", {"unsupervised": False}, air_env(config))
    assert detected["state"] == "success", detected["log"][-3000:]
    tasks = detected["xcom"]["supervised"]["tasks"]
    assert [t["classes"] for t in tasks] == [sorted(TASK1)]
    return tasks[0]


def _current(tmp: Path) -> str:
    return (tmp / "models" / "mre" / "current").read_text().strip()


def _wait_for_posts(graph_dir: Path, ids: set[str], proc: subprocess.Popen, timeout: float = 600) -> None:
    from graph_store.embedded import EmbeddedGraphStore

    deadline = time.monotonic() + timeout
    with EmbeddedGraphStore(graph_dir) as graph:
        while time.monotonic() < deadline:
            assert proc.poll() is None, "the worker exited"
            found = {r[0] for r in graph.query("MATCH (p:Post) WHERE p.id IN $ids RETURN p.id", {"ids": sorted(ids)}).rows}
            if found == ids:
                return
            time.sleep(1)
    raise AssertionError(f"worker did not write {len(ids - found)} posts in {timeout}s")


def test_worker_learns_new_relations_without_restart(airflow, task0_model, short_tmp):
    """Task 0 model streams; task-1 labelled posts arrive; the DAGs learn them; the same worker
    process then writes task-1 relations while still extracting task-0 ones, and old archived
    posts are re-extracted with the new model."""
    tmp = short_tmp
    config = _copy_state(task0_model[0], tmp)
    v1 = task0_model[1]
    archive = tmp / "archive.jsonl"  # posts from before the new relations were known
    append_jsonl(archive, imre_posts(1, 30, split="test", labelled=False, prefix="old-", relations=TASK1))
    # this test is about promotion reaching a running worker; the gate's refusals have their own test,
    # so its thresholds here leave room for run-to-run variation of a 200-post update
    config = dag_config(tmp, continual={"reextract_paths": [str(archive)], "gate_max_old_drop": 30.0,
                                        "gate_min_new_f1": 15.0})
    part1 = imre_posts(0, 24, split="test", labelled=False, prefix="s1-", relations=TASK0)
    part2 = (imre_posts(1, 40, split="test", labelled=False, prefix="s2-", relations=TASK1)
             + imre_posts(0, 24, split="test", labelled=False, prefix="s2-", relations=TASK0, day=3))
    (tmp / "stream.jsonl").touch()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    worker = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "worker", "--config", str(config)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        append_jsonl(tmp / "stream.jsonl", part1)
        _wait_for_posts(tmp / "graph", {p["id"] for p in part1}, worker)

        _propose_task1(airflow, tmp, config)
        updated = airflow.run("continual_update", {}, air_env(config))
        assert updated["state"] == "success", updated["log"][-3000:]
        report = updated["xcom"]["update"]
        assert report["status"] == "promoted", json.dumps(report.get("gate"))
        v2 = report["version"]
        assert report["base_version"] == v1 and _current(tmp) == v2
        state = json.loads((tmp / "models" / "mre" / "versions" / v2 / "continual.json").read_text())
        assert TASK0 | TASK1 | {"None"} <= set(state["label_counts"])  # balance's target: every task so far
        assert updated["tasks"]["reextract"] == "success"

        append_jsonl(tmp / "stream.jsonl", part2)
        _wait_for_posts(tmp / "graph", {p["id"] for p in part2}, worker)
        assert worker.poll() is None  # the same process all along: no restart
    finally:
        worker.send_signal(signal.SIGTERM)
        out = worker.communicate(timeout=120)[0]
    assert worker.returncode == 0, out[-3000:]

    from graph_store.embedded import EmbeddedGraphStore

    with EmbeddedGraphStore(tmp / "graph") as graph:
        facts, rows = graph_facts(graph)
        edges = graph.query("MATCH (h:Entity)-[r]->(t:Entity) RETURN type(r), r.post_ids, r.model_versions").rows
        classes = {r[1]: r for r in graph.query(
            "MATCH (c:SchemaClass) RETURN c.kind, c.name, c.status, c.emerged_at, c.task_id").rows}
    assert rows == len(facts)  # one edge per (head, type, tail): nothing duplicated
    by_type: dict[str, list] = {}
    for rel, post_ids, versions in edges:
        by_type.setdefault(rel, []).append((set(post_ids), versions))
    s2 = {p["id"] for p in part2}
    new_types = {"MEMBER_OF", "CHARGES"}
    # task-1 relations are written by the promoted model for posts that arrived after the promotion
    assert any(ids & s2 and any(v2 in v for v in versions) for t in new_types for ids, versions in by_type.get(t, []))
    # task-0 relations are still extracted by the new model
    assert any(ids & s2 and any(v2 in v for v in versions) for ids, versions in by_type.get("PEER", []))
    # before the promotion nothing of task 1 existed; old archived posts gained them by re-extraction
    old = {p["id"] for p in json.loads("[" + ",".join(archive.read_text().splitlines()) + "]")}
    assert any(ids & old for t in new_types for ids, _ in by_type.get(t, []))
    assert not any(ids & {p["id"] for p in part1} for t in new_types for ids, versions in by_type.get(t, [])
                   if all(v1 in v and v2 not in v for v in versions))
    # the schema in the graph records the classes, when they emerged and which task learned them
    assert classes["/per/org/member_of"][2] == "learned" and classes["/per/org/member_of"][3].startswith("2026-02-02")
    assert classes["/per/per/peer"][2] == "learned"


# Fine-tuning with distillation and memory off, for many epochs, on the shifted task forgets task 0
BAD_UPDATE = {"method": "finetune", "epochs": 4, "lr": 3e-4}


def test_failed_update_changes_nothing_and_its_rerun_resumes_and_is_refused(airflow, task0_model, short_tmp):
    """One bad update, crashed after its first epoch: the crash leaves models, pointer and graph as they
    were; the rerun resumes from the checkpoint, finishes, and the gate refuses it (old classes
    forgotten), so the current model stays. A promoted rerun is the worker-learns test above."""
    config = _copy_state(task0_model[0], short_tmp)
    task = _propose_task1(airflow, short_tmp, config)
    from graph_store.embedded import EmbeddedGraphStore

    def graph_state():
        with EmbeddedGraphStore(short_tmp / "graph") as graph:
            return graph.query("MATCH (n) OPTIONAL MATCH (n)-[r]->() RETURN count(DISTINCT n), count(r)").rows[0], \
                graph.query("MATCH (c:SchemaClass) RETURN c.name, c.status ORDER BY c.name").rows

    before = graph_state()
    versions_before = sorted(os.listdir(short_tmp / "models" / "mre" / "versions"))
    crashed = airflow.run("continual_update", {**BAD_UPDATE, "fail_after_epoch": 1}, air_env(config))
    assert crashed["state"] == "failed"
    assert crashed["tasks"]["update"] == "failed"
    assert _current(short_tmp) == task0_model[1]
    assert sorted(os.listdir(short_tmp / "models" / "mre" / "versions")) == versions_before
    assert graph_state() == before
    record = json.loads((short_tmp / "tasks" / f"{task['id']}.json").read_text())
    assert record["status"] == "failed" and "injected failure" in record["result"]["error"]

    rerun = airflow.run("continual_update", BAD_UPDATE, air_env(config))
    assert rerun["state"] == "success", rerun["log"][-3000:]
    report = rerun["xcom"]["update"]
    assert report["task"] == task["id"] and report["resumed"] is True
    assert report["status"] == "refused", report
    assert any("old classes dropped" in r for r in report["gate"]["reasons"])
    assert report["old_after"] < report["old_before"]
    assert _current(short_tmp) == task0_model[1]  # the pointer did not move
    assert rerun["tasks"]["reextract"] == "skipped"
    record = json.loads((short_tmp / "tasks" / f"{task['id']}.json").read_text())
    assert [h["status"] for h in record["history"]] == ["proposed", "training", "failed", "training", "refused"]
    assert record["result"]["version"] != task0_model[1]  # saved for inspection, never promoted


def test_dags_use_provider_connections_to_real_kafka_and_neo4j(airflow, neo4j_store, services, topic, short_tmp):
    """Connections ``mkg_kafka`` and ``mkg_neo4j`` (official providers) point the DAGs at the real servers."""
    from kafka import KafkaProducer

    from conftest import neo4j_password

    kafka_addr = services.services["kafka"].address
    host, port = services.services["neo4j"].address.removeprefix("bolt://").split(":")
    labelled = imre_posts(0, 40, relations=TASK0 | {"None"}, prefix=f"{topic}-")
    producer = KafkaProducer(bootstrap_servers=kafka_addr, acks="all")
    for post in labelled:
        producer.send(f"{topic}.labeled", json.dumps(post).encode())
    producer.flush()
    producer.close()
    config = dag_config(short_tmp, continual={"labelled_path": None, "labelled_topic": f"{topic}.labeled",
                                              "labelled_group_id": f"g-{topic}-labelled"},
                        kafka={"topic": topic, "dead_letter_topic": f"{topic}.dead", "poll_timeout_ms": 500,
                               "session_timeout_ms": 6000, "heartbeat_interval_ms": 1000,
                               "max_poll_interval_ms": 10000},
                        extractor={"kind": "spacy"}, source={"follow": False})
    env = {**air_env(config),
           "AIRFLOW_CONN_MKG_NEO4J": json.dumps({"conn_type": "neo4j", "host": host, "port": int(port),
                                                 "login": "neo4j", "password": neo4j_password()}),
           "AIRFLOW_CONN_MKG_KAFKA": json.dumps({"conn_type": "kafka", "extra": {"bootstrap.servers": kafka_addr}})}
    detected = airflow.run("detect_novelty", {"unsupervised": False}, env)
    assert detected["state"] == "success", detected["log"][-3000:]
    decision = detected["xcom"]["supervised"]
    assert decision["ingested_posts"] == len(labelled)
    (task,) = decision["tasks"]
    rows = neo4j_store.query("MATCH (c:SchemaClass {kind: 'mre'}) WHERE c.task_id = $t RETURN c.name, c.status",
                             {"t": task["id"]}).rows
    assert rows == [["/per/per/peer", "proposed"]]
    again = airflow.run("detect_novelty", {"unsupervised": False}, env)  # offsets were committed
    assert again["xcom"]["supervised"]["ingested_posts"] == 0 and again["xcom"]["supervised"]["tasks"] == []
    assert again["tasks"]["announce"] == "skipped"
    updated = airflow.run("continual_update", {"epochs": 1, "gate_min_new_f1": 0.0}, env)
    assert updated["state"] == "success", updated["log"][-3000:]
    report = updated["xcom"]["update"]
    assert report["status"] == "promoted" and report["task"] == task["id"]
    rows = neo4j_store.query("MATCH (c:SchemaClass {kind: 'mre', name: '/per/per/peer'}) "
                             "RETURN c.status, c.model_version, c.learned_at IS NOT NULL").rows
    assert rows == [["learned", report["version"], True]]

    archive = write_jsonl(short_tmp / "archive.jsonl", mnre_posts(12))
    backfilled = airflow.run("backfill", {"paths": [str(archive)]}, env)
    assert backfilled["state"] == "success", backfilled["log"][-3000:]
    ids = {r[0] for r in neo4j_store.query("MATCH (p:Post) RETURN p.id").rows}
    assert {p["id"] for p in mnre_posts(12)} <= ids


# --- link-prediction completion -----------------------------------------------------------------------

def test_link_prediction_dag_writes_inferred_edges(airflow, short_tmp):
    """A graph built from real MNRE posts (gold annotations) gets inferred edges from the DAG;
    warm start and refresh on re-runs are covered by tests/integration/test_completion_job.py."""
    from graph_store.schema import LabelSchema
    from graph_store.embedded import EmbeddedGraphStore
    from graph_store.records import GraphBatch
    from helpers import SHARED_DATA
    from pipeline.gold import GOLD_VERSION, gold_extraction, mnre_annotated_posts
    from pipeline.post import parse_post
    from pipeline.to_graph import add_post

    batch = GraphBatch()
    for wire in mnre_annotated_posts(SHARED_DATA / "mnre" / "mnre_train.txt", limit=200):
        post = parse_post(json.dumps(wire))
        add_post(batch, post, gold_extraction(post), GOLD_VERSION, LabelSchema())
    with EmbeddedGraphStore(short_tmp / "graph") as graph:
        graph.ensure_schema()
        graph.write(batch)
    # resolution on names alone: 200 posts rarely share a post or a like context, and this test is about the
    # DAG reaching the job with the config's settings (the defaults' quality is BENCHMARKS.md's)
    config = dag_config(short_tmp, completion={
        "models_dir": str(short_tmp / "models"), "cache_dir": str(short_tmp / "cache"), "epochs": 4, "rank": 32,
        "batch_size": 128, "negatives": 256, "threshold": 0.2},
        resolution={"weak_context_min": None, "same_name_context_min": None})
    run = airflow.run("link_prediction", {"top_k": 1, "threshold": 0.0}, air_env(config))
    assert run["state"] == "success", run["log"][-3000:]
    report = run["xcom"]["complete"]
    assert report["status"] == "completed" and (report["top_k"], report["threshold"]) == (1, 0.0)
    # the run's params reached the job: threshold 0 and top-1 give one answer per query, new or already extracted
    assert report["written"] == report["queries"] - report["existing_in_top_k"] > 0
    with EmbeddedGraphStore(short_tmp / "graph") as graph:
        rows = graph.query("MATCH (h:Entity)-[r]->(t:Entity) WHERE r.inferred = true "
                           "RETURN h.key, type(r), t.key, r.model_version").rows
    assert len(rows) == report["written"] == len({tuple(r[:3]) for r in rows})
    assert {r[3] for r in rows} == {f"completion@{report['version']}"}

    # the same graph, resolved: SAME_AS links with their evidence; facts, inferred or not, stay as they were
    resolved = airflow.run("resolve_entities", {}, air_env(config))
    assert resolved["state"] == "success", resolved["log"][-3000:]
    summary = resolved["xcom"]["resolve"]
    assert summary["compared"] == summary["entities"] > 0 and summary["merges"] > 0
    with EmbeddedGraphStore(short_tmp / "graph") as graph:
        (links,) = graph.query("MATCH (:Entity)-[s:SAME_AS]->(:Entity) WHERE s.run_id = $run AND s.evidence <> '' "
                               "RETURN count(s)", {"run": summary["run_id"]}).rows[0]
        (inferred,) = graph.query("MATCH (:Entity)-[r]->(:Entity) WHERE r.inferred = true RETURN count(r)").rows[0]
    assert links == summary["merges"] and inferred == report["written"]
