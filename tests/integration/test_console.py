"""The web console over a real graph (embedded and Neo4j), through Flask's test client: every page
escapes hostile post text and names, writes need a CSRF token and go through the review code with
who and when recorded, names are validated, a login guards a console bound beyond loopback."""
from __future__ import annotations

import re
from urllib.parse import urlencode

import pytest
from console_world import HOSTILE_NAME, RLO, SCRIPT, ZWSP, build_config, populate

from continual.candidates.graph import find_candidate
from pipeline.console import ConsoleError, check_binding, create_app
from pipeline.dead_letter import DeadLetter, FileDeadLetterSink

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def console(graph_store, tmp_path):
    cfg = build_config(tmp_path)
    ids = populate(graph_store, cfg)
    sink = FileDeadLetterSink(cfg.worker.dead_letter_path)
    sink.send(DeadLetter("parse", f"not JSON: {SCRIPT}", "test:0", f"{{{SCRIPT}", "utf-8", "2026-11-30T10:05:00Z",
                         key="test:0"))
    sink.close()
    app = create_app(cfg, graph_store)
    app.config["TESTING"] = True
    return app, cfg, ids


def _pages(ids) -> list[str]:
    key = ids["hostile_key"]
    return ["/review", f"/review/{ids['candidate']}", "/entities?q=evil", "/entities?" + urlencode({"q": SCRIPT}),
            "/entity?" + urlencode({"key": key}), "/entity?" + urlencode({"key": "PER:grace hopper"}),
            "/entity/cypher?" + urlencode({"key": key}),
            "/edge?" + urlencode({"head": "PER:grace hopper", "rel": "MEMBER_OF", "tail": key}),
            "/post?id=p-hopper", "/stream", "/models"]


def test_every_page_escapes_hostile_text_and_runs_no_script(console):
    app, _, ids = console
    client = app.test_client()
    for page in _pages(ids):
        resp = client.get(page)
        assert resp.status_code == 200, page
        body = resp.get_data(as_text=True)
        assert "<script" not in body.lower(), page  # escaped everywhere, and no page ships a script of its own
        assert "script-src 'none'" in resp.headers["Content-Security-Policy"]
        assert resp.headers["X-Frame-Options"] == "DENY"
    entity = client.get("/entity?" + urlencode({"key": ids["hostile_key"]})).get_data(as_text=True)
    assert "&lt;/script&gt;" in entity and "Evil" in entity
    post = client.get("/post?id=p-hopper").get_data(as_text=True)
    assert RLO in post and ZWSP in post and 'dir="auto"' in post  # kept as text, isolated by dir=auto
    stream = client.get("/stream").get_data(as_text=True)
    assert "not JSON: &lt;script&gt;" in stream and "parse: 1" in stream


def test_entity_page_draws_edges_by_kind_and_links_their_evidence(console):
    app, _, ids = console
    body = app.test_client().get("/entity?key=PER%3Agrace+hopper").get_data(as_text=True)
    assert body.count('class="edge extracted"') == 2 and body.count('class="edge zero-shot"') == 1
    assert body.count('class="edge inferred"') == 1 and "ALUMI" in body
    assert 'id="zero-shot-type"' not in body
    from graph_store.records import EntityRow, GraphBatch, Provenance

    graph = app.extensions["mkg_reader"].graph
    graph.write(GraphBatch(entities=[EntityRow("MISC:cobol", "MISC", "COBOL", Provenance("p-x", "2026-11-30T10:09:00Z",
                                                                                        "zero-shot@test", 0.4),
                                               zero_shot=True)]))
    assert 'id="zero-shot-type"' in app.test_client().get("/entity?key=MISC%3Acobol").get_data(as_text=True)
    edge = app.test_client().get("/edge?" + urlencode({"head": "PER:grace hopper", "rel": "MEMBER_OF",
                                                       "tail": "ORG:united states navy"})).get_data(as_text=True)
    assert "served in the United States Navy" in edge and "post p-navy" in edge and "extracted" in edge
    inferred = app.test_client().get("/edge?" + urlencode({"head": "PER:grace hopper", "rel": "ALUMI",
                                                           "tail": "ORG:yale"})).get_data(as_text=True)
    assert "completion@test" in inferred and "0.730" in inferred and "has no post" in inferred
    # a relation type is data, never Cypher: anything but an identifier is refused before a query runs
    bad = app.test_client().get("/edge?" + urlencode({"head": "x", "rel": "MEMBER_OF]->() DETACH DELETE (", "tail": "y"}))
    assert bad.status_code == 400


def test_thumbnails_come_from_the_image_roots_only(console):
    app, _, _ = console
    resp = app.test_client().get("/post/image?id=p-hopper")
    assert resp.status_code == 200 and resp.mimetype == "image/jpeg" and resp.data[:2] == b"\xff\xd8"
    assert app.test_client().get("/post/image?id=p-navy").status_code == 404  # no image


def test_writes_need_a_csrf_token_and_record_who_decided(console, graph_store):
    app, _, ids = console
    cid = ids["candidate"]
    client = app.test_client()
    assert client.post(f"/review/{cid}/confirm", data={"name": "/per/org/founded_by"}).status_code == 400
    assert find_candidate(graph_store, cid).status == "pending"

    token = TOKEN.search(client.get(f"/review/{cid}").get_data(as_text=True)).group(1)
    refused = client.post(f"/review/{cid}/confirm", data={"csrf_token": token, "name": f"{SCRIPT}"},
                          follow_redirects=True)
    assert "does not map to an identifier" in refused.get_data(as_text=True)
    assert "<script" not in refused.get_data(as_text=True).lower()
    assert find_candidate(graph_store, cid).status == "pending"

    done = client.post(f"/review/{cid}/confirm", data={"csrf_token": token, "name": "/per/org/founded_by",
                                                       "description": "the person who founded the organization"},
                       follow_redirects=True)
    assert done.status_code == 200 and "confirmed as /per/org/founded_by" in done.get_data(as_text=True)
    row = graph_store.query("MATCH (c:CandidateRelation {id: $id}) RETURN c.status, c.name, c.decision, "
                            "c.decided_by, c.decided_at, c.description", {"id": cid}).rows[0]
    assert row[:3] == ["confirmed", "/per/org/founded_by", "confirmed"]
    assert row[3].startswith("local:") and row[4] and row[5].startswith("the person")


def test_every_write_refuses_a_request_without_a_valid_csrf_token(console, graph_store):
    """Bug once let through: CSRF switched off on the reject form, while only the confirm form was
    tried without a token. Every POST route the app has, found from its URL map (so a new form is
    covered too), refuses a missing and a forged token, and the candidate stays pending."""
    app, _, ids = console
    cid = ids["candidate"]
    client = app.test_client()
    forms = {"name": "/per/org/founded_by", "into": "/per/org/member_of", "head": "PER:grace hopper",
             "rel": "MEMBER_OF", "tail": ids["hostile_key"], "action": "reject", "reason": "a test",
             "user": "admin", "password": "s3cret-test"}
    routes = [r for r in app.url_map.iter_rules() if "POST" in r.methods and r.endpoint != "static"]
    assert {"/review/<cid>/reject", "/review/<cid>/confirm", "/review/<cid>/merge", "/edge/correct"} <= \
        {r.rule for r in routes}
    for rule in routes:
        url = rule.rule.replace("<cid>", cid)
        for token in (None, "forged-token"):
            data = forms if token is None else {**forms, "csrf_token": token}
            resp = client.post(url, data=data)
            assert resp.status_code == 400, (rule.rule, token)
    assert find_candidate(graph_store, cid).status == "pending"
    assert graph_store.query("MATCH (c:Correction) RETURN count(c)").rows == [[0]]


def test_merge_only_into_a_known_class(console, graph_store):
    app, _, ids = console
    cid = ids["candidate"]
    client = app.test_client()
    token = TOKEN.search(client.get(f"/review/{cid}").get_data(as_text=True)).group(1)
    page = client.get(f"/review/{cid}").get_data(as_text=True)
    assert '<option value="/per/org/member_of">' in page  # the class with labelled examples
    unknown = client.post(f"/review/{cid}/merge", data={"csrf_token": token, "into": "/per/per/peer"},
                          follow_redirects=True)
    assert "not a known class" in unknown.get_data(as_text=True) and find_candidate(graph_store, cid).status == "pending"
    client.post(f"/review/{cid}/merge", data={"csrf_token": token, "into": "/per/org/member_of"})
    row = graph_store.query("MATCH (c:CandidateRelation {id: $id}) RETURN c.status, c.name, c.decision, c.merged_into",
                            {"id": cid}).rows[0]
    assert row == ["confirmed", "/per/org/member_of", "merged", "/per/org/member_of"]


def test_reject_is_recorded(console, graph_store):
    app, _, ids = console
    cid = ids["candidate"]
    client = app.test_client()
    token = TOKEN.search(client.get(f"/review/{cid}").get_data(as_text=True)).group(1)
    client.post(f"/review/{cid}/reject", data={"csrf_token": token})
    row = graph_store.query("MATCH (c:CandidateRelation {id: $id}) RETURN c.status, c.decision, c.decided_by",
                            {"id": cid}).rows[0]
    assert row[:2] == ["rejected", "rejected"] and row[2].startswith("local:")
    listed = f'class="candidate-link">{cid}</a>'
    assert listed not in client.get("/review").get_data(as_text=True)  # the queue shows pending ones
    assert listed in client.get("/review?status=rejected").get_data(as_text=True)


def test_a_console_beyond_loopback_needs_a_password_and_a_login(graph_store, tmp_path):
    cfg = build_config(tmp_path)
    cfg.ui.host = "0.0.0.0"
    with pytest.raises(ConsoleError, match="MKG_UI_PASSWORD"):
        check_binding(cfg)
    cfg.ui.password = "s3cret-test"
    check_binding(cfg)
    app = create_app(cfg, graph_store)
    client = app.test_client()
    assert client.get("/review").status_code == 302 and "/login" in client.get("/review").headers["Location"]
    token = TOKEN.search(client.get("/login").get_data(as_text=True)).group(1)
    wrong = client.post("/login", data={"csrf_token": token, "user": "admin", "password": "nope"})
    assert wrong.status_code == 401 and client.get("/entities").status_code == 302
    ok = client.post("/login?next=/entities", data={"csrf_token": token, "user": "admin", "password": "s3cret-test"})
    assert ok.status_code == 302 and ok.headers["Location"].endswith("/entities")
    assert client.get("/entities").status_code == 200
    # an open redirect through ?next= is refused (browsers read both as another host)
    for elsewhere in ("//evil.example/", "/%5Cevil.example/"):
        client.post("/logout", data={"csrf_token": TOKEN.search(client.get("/entities").get_data(as_text=True)).group(1)})
        token = TOKEN.search(client.get("/login").get_data(as_text=True)).group(1)
        away = client.post(f"/login?next={elsewhere}", data={"csrf_token": token, "user": "admin",
                                                              "password": "s3cret-test"})
        assert away.headers["Location"] == "/", elsewhere


def test_hostile_name_round_trips_unchanged_through_search(console):
    app, _, _ = console
    body = app.test_client().get("/entities?q=evil").get_data(as_text=True)
    assert "Evil" in body and "&lt;script&gt;" in body and HOSTILE_NAME not in body


def test_stream_page_reads_worker_metrics_from_the_workers_own_endpoint(graph_store, tmp_path):
    """The worker's real /metrics server (pipeline.health): records/s between two visits, lag, dead letters."""
    from collections import Counter

    from pipeline.health import HealthServer
    from pipeline.metrics import WorkerMetrics

    m = WorkerMetrics(records_received=100, posts_written=97, dead_letters=Counter({"parse": 2, "image": 1}),
                      lag={("posts", 0): 40, ("posts", 1): 2}, source_ok=True)
    with HealthServer(m, port=0) as health:
        cfg = build_config(tmp_path)
        cfg.ui.metrics_urls = [f"http://127.0.0.1:{health.port}/metrics", "http://127.0.0.1:9/metrics"]
        client = create_app(cfg, graph_store).test_client()
        first = client.get("/stream").get_data(as_text=True)
        assert "(next visit)" in first and "<td>100</td>" in first and "<td>42</td>" in first  # lag summed
        assert "image: 1 parse: 2" in first
        assert "ConnectionRefusedError" in first or "URLError" in first  # a dead worker is a row, not a failed page
        m.records_received += 50
        second = client.get("/stream").get_data(as_text=True)
        rate = float(re.search(r"<td>([0-9.]+)</td><td>150</td>", second).group(1))
        assert rate > 0


def test_models_page_shows_each_update_with_the_gates_reasons_and_plots_them(graph_store, tmp_path):
    from continual.gate import GatePolicy, decide
    from continual.task_queue import TaskQueue

    cfg = build_config(tmp_path)
    queue = TaskQueue(cfg.continual.tasks_dir)
    passed = decide(GatePolicy(5.0, 30.0), 60.0, 58.0, 45.0)
    refused = decide(GatePolicy(5.0, 30.0), 58.0, 40.0, 12.0)
    for classes, gate, status, a in ((["/per/org/founded_by"], passed, "promoted", 55.2),
                                     ([f"/per/loc/{SCRIPT}"], refused, "refused", 31.0)):
        task = queue.create("mre", classes, {c: 30 for c in classes}, None)
        queue.set_status(task, status, note="; ".join(gate.reasons), version=f"mre-{status}", A=a,
                         new_after=gate.new_after, old_before=58.0,
                         old_after=40.0 if status == "refused" else 58.0, gate=gate.as_dict())
    client = create_app(cfg, graph_store).test_client()
    body = client.get("/models").get_data(as_text=True)
    assert "promoted" in body and "refused" in body and "55.20" in body
    for reason in refused.reasons:  # why the gate said no, word for word (escaped)
        assert reason.replace("<", "&lt;").replace(">", "&gt;") in body
    assert refused.reasons and "<script" not in body.lower()
    assert 'src="/models/accuracy.png"' in body
    png = client.get("/models/accuracy.png")
    assert png.status_code == 200 and png.data[:8] == b"\x89PNG\r\n\x1a\n"


def test_stream_page_reads_the_dead_letter_topic_of_a_kafka_source(services, topic, tmp_path):
    """With a Kafka source the letters live on the dead-letter topic: read from its end, newest first."""
    from pipeline.console.status import dead_letters
    from pipeline.dead_letter import KafkaDeadLetterSink

    cfg = build_config(tmp_path)
    cfg.source.kind = "kafka"
    cfg.kafka.bootstrap_servers = services.services["kafka"].address
    cfg.kafka.topic, cfg.kafka.dead_letter_topic = topic, topic + ".dead"
    assert dead_letters(cfg, 10).newest == []  # an empty topic is an empty section, not an error
    sink = KafkaDeadLetterSink(cfg.kafka)
    for i, stage in enumerate(["parse", "image", "parse"]):
        sink.send(DeadLetter(stage, f"reason {i} {SCRIPT}", f"{topic}:0:{i}", "{", "utf-8",
                             f"2026-11-30T10:0{i}:00Z", key=f"{topic}:0:{i}"))
    sink.close()
    got = dead_letters(cfg, 2)
    assert got.error is None and got.source == f"kafka topic {topic}.dead"
    assert [d.reason for d in got.newest] == [f"reason 2 {SCRIPT}", f"reason 1 {SCRIPT}"]  # the newest two
    assert dead_letters(cfg, 10).by_stage == {"parse": 2, "image": 1}


def test_a_reviewer_rejects_a_fact_on_its_edge_page_and_the_graph_records_who(console, graph_store):
    app, _, ids = console
    client = app.test_client()
    edge = "/edge?" + urlencode({"head": "PER:grace hopper", "rel": "MEMBER_OF", "tail": ids["hostile_key"]})
    page = client.get(edge).get_data(as_text=True)
    assert 'id="correct-form"' in page and "belief" in page
    form = {"head": "PER:grace hopper", "rel": "MEMBER_OF", "tail": ids["hostile_key"], "action": "reject",
            "reason": "a test"}
    assert client.post("/edge/correct", data=form).status_code == 400  # no CSRF token
    token = TOKEN.search(page).group(1)
    done = client.post("/edge/correct", data={**form, "csrf_token": token}, follow_redirects=True)
    assert done.status_code == 200 and "rejected" in done.get_data(as_text=True)
    row = graph_store.query("MATCH (c:Correction) RETURN c.decision, c.decided_by, c.decided_at, c.reason").rows
    assert len(row) == 1 and row[0][0] == "rejected" and row[0][1].startswith("local:") and row[0][2]
    assert client.get(edge).status_code == 404  # the fact is gone
    bad = client.post("/edge/correct", data={**form, "csrf_token": token, "rel": "X]->() DELETE (n"})
    assert bad.status_code == 400


def test_relation_types_in_urls_follow_the_graph_schemas_identifier_rule(console):
    """One rule for a name spliced into Cypher (graph_store.schema.IDENTIFIER: at most 63 characters),
    the console's included: 64 characters are refused before any query, 63 are a valid name."""
    app, _, _ = console
    client = app.test_client()
    edge = "/edge?" + urlencode({"head": "PER:grace hopper", "tail": "ORG:navy", "rel": "A" * 64})
    assert client.get(edge).status_code == 400
    assert client.get(edge.replace("A" * 64, "A" * 63)).status_code == 404  # valid, and no such edge
