"""The `mkg` command on embedded defaults: help, backfill, query."""
from __future__ import annotations

import gzip
import json
import subprocess
import sys

import pytest
from helpers import expected_facts, mnre_posts, worker_config, write_jsonl

MKG = [sys.executable, "-m", "pipeline.cli"]


def mkg(*args, check=True, **kw):
    out = subprocess.run(MKG + list(args), capture_output=True, text=True, timeout=600, **kw)
    if check:
        assert out.returncode == 0, out.stderr[-3000:]
    return out


@pytest.mark.parametrize("command, words", [
    ([], ["demo", "worker", "backfill", "produce", "query", "services", "train", "evaluate", "MKG_NEO4J_PASSWORD"]),
    (["worker"], ["--config", "dead-letter", "SIGTERM", "--idle-timeout"]),
    (["backfill"], ["PATH", "gzip", "resumes", "idempotent", "--start", "--end", "--reextract", "--run-key"]),
    (["continual"], ["detect", "update", "tasks", "gate", "min_examples"]),
    (["produce"], ["FILE", "--topic"]),
    (["query"], ["cypher", "--params", "--format"]),
    (["services"], ["up", "down", "status", "Maven Central", "KRaft"]),
    (["demo"], ["sample", "--workdir"]),
    (["train"], ["mre", "mner", "--promote", "--resume", "bf16", "validation F1"]),
    (["evaluate"], ["excluding None", "seqeval", "--spacy", "--version"]),
    (["candidates"], ["list", "confirm", "merge", "reject", "discover", ":CandidateRelation", "labelled training examples"]),
    (["resolve"], ["SAME_AS", "canonical", "--full", "mkg unmerge", "coalesce(e.canonical, e.key)"]),
    (["unmerge"], ["NOT_SAME_AS", "--reason", "Idempotent"]),
    (["ui"], ["review queue", "evidence posts", "127.0.0.1", "MKG_UI_PASSWORD", "CSRF", "no JavaScript"]),
    (["complete"], ["held-out facts", "completion.target_precision", "inferred: true"]),
    (["facts"], ["reject", "fix", "no later extraction", "export", "labelled posts", "--reason"]),
])
def test_help_explains_each_command(command, words):
    text = " ".join(mkg(*command, "--help").stdout.split())
    for word in words:
        assert word in text


def test_bad_config_is_a_clear_error(short_tmp):
    cfg = short_tmp / "c.yaml"
    cfg.write_text("graph:\n  backend: mysql\n")
    out = mkg("query", "RETURN 1", "--config", str(cfg), check=False)
    assert out.returncode == 2
    assert "graph.backend" in out.stderr and "Traceback" not in out.stderr


def test_backfill_gzip_archives_idempotently_then_query(short_tmp, spacy_extractor):
    posts = mnre_posts(120)
    a = write_jsonl(short_tmp / "a.jsonl", posts[:70])
    b = short_tmp / "b.jsonl.gz"
    b.write_bytes(gzip.compress(b"".join(json.dumps(p).encode() + b"\n" for p in posts[70:])))
    cfg = worker_config(short_tmp)
    first = json.loads(mkg("backfill", str(a), str(b), "--config", str(cfg)).stdout.splitlines()[-1])
    assert first["records_received"] == 120
    again = json.loads(mkg("backfill", str(a), str(b), "--config", str(cfg)).stdout.splitlines()[-1])
    assert again["records_received"] == 0  # checkpoint: resumed past everything

    # a fresh checkpoint re-reads everything, and the graph still does not change
    (short_tmp / "state").rename(short_tmp / "state.old")
    mkg("backfill", str(a), str(b), "--config", str(cfg))
    rows = json.loads(mkg("query", "MATCH (h:Entity)-[r]->(t:Entity) RETURN h.key AS h, type(r) AS r, t.key AS t, "
                                   "r.post_ids AS post_ids", "--format", "json", "--config", str(cfg)).stdout)
    got = {(r["h"], r["r"], r["t"]): set(r["post_ids"]) for r in rows}
    assert got == expected_facts(spacy_extractor, posts) and len(rows) == len(got)
    table = mkg("query", "MATCH (p:Post) RETURN count(p) AS posts", "--config", str(cfg)).stdout
    assert "120" in table and "(1 rows)" in table


def test_resolve_then_unmerge_from_the_command_line(short_tmp):
    from graph_store.embedded import EmbeddedGraphStore
    from graph_store.records import EntityRow, GraphBatch, PostRow, Provenance

    cfg = worker_config(short_tmp)
    prov = Provenance("p1", "2026-03-01T00:00:00.000000Z", "test@1", 0.9)
    names = {"PER:barack obama": "Barack Obama", "PER:obama": "Obama", "PER:barackobama": "@BarackObama"}
    with EmbeddedGraphStore(short_tmp / "graph") as graph:
        graph.ensure_schema()
        graph.write(GraphBatch(  # the surname and the full name in one post: strong enough on a stream
            posts=[PostRow("p1", prov.seen_at, "Barack Obama spoke today; Obama said", mentions=("PER:barack obama", "PER:obama")),
                   PostRow("p2", prov.seen_at, "@BarackObama tweeted", mentions=("PER:barackobama",))],
            entities=[EntityRow(k, "PER", n, prov) for k, n in names.items()]))
    report = json.loads(mkg("resolve", "--config", str(cfg)).stdout.splitlines()[-1])
    # the handle is the full name; "Obama" shares a post with "Barack Obama" (not with the handle's post,
    # whose context is too unlike): two links, one cluster
    assert (report["entities"], report["merges"], report["nodes_after"]) == (3, 2, 1)
    cluster = "MATCH (e:Entity) RETURN e.key AS key, e.canonical AS canonical ORDER BY key"
    rows = json.loads(mkg("query", cluster, "--format", "json", "--config", str(cfg)).stdout)
    assert {r["canonical"] for r in rows} == {"PER:barack obama"}
    cut = json.loads(mkg("unmerge", "PER:obama", "--reason", "test", "--config", str(cfg)).stdout)
    assert cut["cut"] == ["PER:barack obama"]
    rows = json.loads(mkg("query", cluster, "--format", "json", "--config", str(cfg)).stdout)
    assert {r["key"]: r["canonical"] for r in rows} == {"PER:barack obama": "PER:barack obama",
                                                         "PER:barackobama": "PER:barack obama", "PER:obama": None}
    missing = mkg("unmerge", "PER:nobody", "--config", str(cfg), check=False)
    assert missing.returncode == 2 and "no entity with key 'PER:nobody'" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_ui_serves_on_loopback_and_refuses_other_addresses_without_a_password(short_tmp):
    import os
    import socket
    import time
    import urllib.request

    cfg = worker_config(short_tmp)
    refused = mkg("ui", "--config", str(cfg), "--host", "0.0.0.0", check=False,
                  env={k: v for k, v in os.environ.items() if k != "MKG_UI_PASSWORD"})
    assert refused.returncode == 2 and "MKG_UI_PASSWORD" in refused.stderr and "Traceback" not in refused.stderr
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(MKG + ["ui", "--config", str(cfg), "--port", str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline, body = time.monotonic() + 120, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/review", timeout=5) as resp:
                    body, headers = resp.read().decode(), resp.headers
                break
            except OSError:
                time.sleep(0.5)
        assert body is not None, proc.stderr.read() if proc.poll() is not None else "no answer in 120 s"
        assert "Candidate classes" in body and "script-src 'none'" in headers["Content-Security-Policy"]
        assert headers["Server"] == "mkg"  # waitress, not Flask's development server
    finally:
        proc.terminate()  # by the PID we started, never by name
        proc.wait(30)


def test_candidates_merge_from_the_command_line_only_into_a_known_class(short_tmp):
    import yaml
    from console_world import populate

    from graph_store.embedded import EmbeddedGraphStore
    from pipeline.config import load_config

    path = worker_config(short_tmp)
    raw = yaml.safe_load(path.read_text())
    raw["continual"] = {"labelled_dir": str(short_tmp / "labelled")}
    path.write_text(yaml.safe_dump(raw))
    with EmbeddedGraphStore(short_tmp / "graph") as graph:
        graph.ensure_schema()
        cid = populate(graph, load_config(path))["candidate"]
    bad = mkg("candidates", "merge", cid, "--into", "/per/per/peer", "--config", str(path), check=False)
    assert bad.returncode == 1 and "not a known class" in bad.stderr and "Traceback" not in bad.stderr
    done = json.loads(mkg("candidates", "merge", cid, "--into", "/per/org/member_of", "--config", str(path)).stdout)
    assert (done["status"], done["name"], done["merged_into"]) == ("confirmed", "/per/org/member_of", "/per/org/member_of")
    rows = json.loads(mkg("candidates", "list", "--format", "json", "--config", str(path)).stdout)
    assert [r["status"] for r in rows if r["id"] == cid] == ["confirmed"]


def test_a_fact_rejected_from_the_command_line_stays_out_and_exports_as_labelled(short_tmp):
    from graph_store.embedded import EmbeddedGraphStore
    from graph_store.records import EntityRow, FactRow, GraphBatch, PostRow, Provenance

    cfg = worker_config(short_tmp)
    prov = Provenance("p1", "2026-03-01T00:00:00.000000Z", "test@1", 0.99)
    text = "Jason Pierre-Paul talks to ESPN about his hand"
    batch = GraphBatch(posts=[PostRow("p1", prov.seen_at, text, mentions=("PER:jason pierre-paul", "ORG:espn"))],
                       entities=[EntityRow("PER:jason pierre-paul", "PER", "Jason Pierre-Paul", prov),
                                 EntityRow("ORG:espn", "ORG", "ESPN", prov)],
                       facts=[FactRow("PER:jason pierre-paul", "PER", "MEMBER_OF", "ORG:espn", "ORG", prov)])
    with EmbeddedGraphStore(short_tmp / "graph") as graph:
        graph.ensure_schema()
        graph.write(batch)
    done = json.loads(mkg("facts", "reject", "PER:jason pierre-paul", "MEMBER_OF", "ORG:espn", "--reason",
                          "ESPN reports on him", "--by", "ana", "--config", str(cfg)).stdout)
    assert (done["decision"], done["decided_by"], done["reason"]) == ("rejected", "ana", "ESPN reports on him")
    with EmbeddedGraphStore(short_tmp / "graph") as graph:
        graph.write(batch)  # the same post extracted again
    facts = mkg("query", "MATCH (:Entity)-[r:MEMBER_OF]->(:Entity) RETURN count(r) AS n", "--format", "json",
                "--config", str(cfg)).stdout
    assert json.loads(facts) == [{"n": 0}]
    listed = [json.loads(line) for line in mkg("facts", "list", "--config", str(cfg)).stdout.splitlines()]
    assert [c["id"] for c in listed] == ["PER:jason pierre-paul|MEMBER_OF|ORG:espn"]
    out = mkg("facts", "export", "--posts", str(short_tmp / "p.jsonl"), "--labels", str(short_tmp / "l.jsonl"),
              "--config", str(cfg))
    assert json.loads(out.stdout)["labelled_posts"] == 1
    label = json.loads((short_tmp / "l.jsonl").read_text())
    assert label["facts"] == [] and {e["text"] for e in label["entities"]} == {"Jason Pierre-Paul", "ESPN"}
    missing = mkg("facts", "reject", "PER:nobody", "MEMBER_OF", "ORG:espn", "--config", str(cfg), check=False)
    assert missing.returncode == 2 and "no extracted fact" in missing.stderr and "Traceback" not in missing.stderr
    assert mkg("facts", "fix", "PER:a", "PEER", "PER:b", "--config", str(cfg), check=False).returncode == 2  # no --to
