"""A confirmed relation is labelled zero-shot at once, and the supervised model takes over when it is promoted.

The whole production path with real parts: the shipped MNER/MRE models tag and
relate real MNRE posts, a candidate relation found by discovery is confirmed
with ``continual.candidates.review.confirm``, the worker (through
``pipeline.runtime.with_zero_shot``) reads it from the graph and the shipped
zero-shot scorer labels the pairs the supervised model left unrelated; then
an MRE version that knows the relation is promoted and the same posts are
delivered again. On the embedded graph and on Neo4j.

The promoted version is the shipped MRE with the new label appended and an
inference-time offset that makes it win every pair (``SplitLinear``'s logit
adjustment): what is under test is the graph's takeover, not the model's
quality. The threshold is -1 so every scored pair is written: likewise.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import torch
from helpers import mnre_posts, write_jsonl

from continual.candidates.discovery import discover, run_discovery
from continual.candidates.review import confirm
from continual.labelled import LabelledStore
from extractors.encoders import EncoderSpec
from extractors.multimodal import MultimodalExtractor
from extractors.store import ModelStore
from extractors.zero_shot.labeller import SOURCE_PREFIX, ZeroShotExtractor
from pipeline.config import Config
from pipeline.dead_letter import FileDeadLetterSink
from pipeline.observations import PAIR, Observation, ObservationSink
from pipeline.runtime import with_zero_shot
from pipeline.sources.files import FileSource
from pipeline.worker import Worker

T0 = datetime(2026, 3, 1, 12, tzinfo=timezone.utc)
NAME, TYPE = "/per/per/greets", "GREETS"
POSTS = 40


def _one_cluster(texts):
    """Embeddings that form one tight cluster (the clustering is not under test here)."""
    v = np.zeros((len(texts), 8))
    v[:, 0] = 1.0
    v[np.arange(len(texts)), 1 + np.arange(len(texts)) % 7] = 0.05
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def one_candidate(graph, folder) -> str:
    """A pending CandidateRelation made by discovery from twelve observations of one pattern."""
    sink = ObservationSink(folder, clock=lambda: T0)
    for i in range(12):
        tokens = ("Ann", "says", "hello", "to", "Bob", str(i))
        sink.send([Observation(PAIR, f"obs-{i}", _iso(T0), _iso(T0), " ".join(tokens), tokens, (0, 1), "Ann", "PER",
                               (4, 5), "Bob", "PER", "None", 0.5, "m@1", ((0, 1, "PER"), (4, 5, "PER")))])
    sink.close()

    (cand,) = discover(folder, T0, T0 + timedelta(seconds=1), graph, None, embed=_one_cluster, now=T0)
    return cand.id


def run(worker_extractor, graph, path, short_tmp, name) -> None:
    dead = FileDeadLetterSink(short_tmp / f"{name}.dead.jsonl")
    Worker(FileSource([path]), worker_extractor, graph, dead, batch_size=20).run()
    dead.close()
    assert not (short_tmp / f"{name}.dead.jsonl").exists() or not (short_tmp / f"{name}.dead.jsonl").read_text()


def promote_a_model_that_knows(store: ModelStore, name: str) -> str:
    model, _, cfg = store.load("mre")
    model.add_labels([name])
    offsets = torch.zeros(len(model.labels))
    offsets[-1] = 100.0  # the new label wins every pair at inference
    model.classifier.set_adjustment(offsets)
    version = store.save("mre", model, EncoderSpec(**cfg["encoder"]), metrics={}, fingerprint="test",
                         parent=store.current_version("mre"))
    store.promote("mre", version)
    return version


def edges(graph) -> list[list]:
    return graph.query(f"MATCH (h:Entity)-[r:{TYPE}]->(t:Entity) RETURN h.key, t.key, r.zero_shot, r.model_version, "
                       "r.model_versions, r.confidence, size(r.post_ids) ORDER BY h.key, t.key").rows


def test_confirmed_relation_is_labelled_zero_shot_then_taken_over_by_the_promoted_model(graph_store, short_tmp,
                                                                                         tmp_path):
    # the write path and its takeover: zero-shot facts forced on (by default they are suggestions, as the
    # shipped scorer is far below the target precision: tests/unit/test_zero_shot.py)
    cfg = Config.model_validate({"zero_shot": {"threshold": -1.0, "refresh_s": 0, "write_facts": "always"}})
    posts = mnre_posts(POSTS)
    first, second = write_jsonl(short_tmp / "a.jsonl", posts[:20]), write_jsonl(short_tmp / "b.jsonl", posts[20:])
    store = ModelStore(tmp_path / "models", shipped=True)
    extractor = with_zero_shot(cfg, graph_store, MultimodalExtractor(tmp_path / "models", shipped=True))
    assert isinstance(extractor, ZeroShotExtractor) and extractor.active_classes() == []

    run(extractor, graph_store, first, short_tmp, "before")  # nothing confirmed yet: nothing zero-shot
    assert edges(graph_store) == []

    cand = one_candidate(graph_store, tmp_path / "obs")
    confirm(graph_store, LabelledStore(tmp_path / "labelled"), cand, NAME, now=T0,
            description="one person greets the other")
    run(extractor, graph_store, second, short_tmp, "confirmed")
    zero_shot = edges(graph_store)
    assert zero_shot, "no uncertain PER-PER pair in 20 posts was labelled"
    scorer = SOURCE_PREFIX + extractor.model.version
    for head, tail, flag, version, versions, score, n_posts in zero_shot:
        assert head.startswith("PER:") and tail.startswith("PER:")  # the name's argument types hold
        assert flag is True and version == scorer and versions == [scorer] and -1.0 <= score <= 1.0
    # the report counts them per class; the completion snapshot leaves them out
    from graph_store.cypher import COUNT_ZERO_SHOT, SNAPSHOT_FACTS
    assert graph_store.query(COUNT_ZERO_SHOT).rows == [[TYPE, len(zero_shot)]]
    later = T0 + timedelta(days=10)  # a window without observations: the report still counts them
    report = run_discovery(tmp_path / "obs", later, later + timedelta(hours=1), graph_store, None, now=later)
    assert report.as_dict()["zero_shot_edges"] == {TYPE: len(zero_shot)}
    assert not any(row[1] == TYPE for row in graph_store.query(SNAPSHOT_FACTS).rows)

    new = promote_a_model_that_knows(store, NAME)
    run(extractor, graph_store, second, short_tmp, "promoted")  # the same posts again (re-delivery)
    assert extractor.active_classes() == [] and TYPE in extractor.known_types()[1]
    after = {(h, t): row for h, t, *row in edges(graph_store)}
    assert len(after) == len(edges(graph_store))  # one edge per triple: never a zero-shot twin
    for head, tail, *_ in zero_shot:
        flag, version, versions, _, n_posts = after[(head, tail)]
        assert flag is None and new in version and scorer in versions  # taken over, provenance kept
    assert graph_store.query(COUNT_ZERO_SHOT).rows == []


def test_with_the_shipped_defaults_a_confirmed_relation_is_suggested_for_review_never_written(
        graph_store, short_tmp, tmp_path):
    """The shipped defaults (``Config()``): the scorer's own threshold, and ``write_facts: auto``, which
    makes zero-shot labels suggestions because the shipped scorer's held-out precision (0.11) is far
    below the target. A confirmed class ("teammate", which the shipped scorer finds among the unsure
    pairs of these 40 posts) reaches the observations the review queue and the next update read, at
    or above the threshold, and the graph gets no such edge."""
    from pipeline.observations import read_observations

    name, graph_type = "/per/per/teammate", "TEAMMATE"
    cand = one_candidate(graph_store, tmp_path / "obs")
    confirm(graph_store, LabelledStore(tmp_path / "labelled"), cand, name, now=T0,
            description="two athletes who play for the same team")
    extractor = with_zero_shot(Config(), graph_store, MultimodalExtractor(tmp_path / "models", shipped=True))
    assert [c.name for c in extractor.active_classes()] == [name]
    assert extractor.threshold == extractor.model.threshold and extractor.write_facts is False
    seen = ObservationSink(tmp_path / "seen", clock=lambda: T0)
    dead = FileDeadLetterSink(short_tmp / "defaults.dead.jsonl")
    Worker(FileSource([write_jsonl(short_tmp / "a.jsonl", mnre_posts(POSTS))]), extractor, graph_store, dead,
           batch_size=20, observations=seen).run()
    dead.close()
    suggested = [o for o in read_observations(tmp_path / "seen", T0 - timedelta(days=1), T0 + timedelta(days=1))
                 if o.label == name]
    assert suggested, "the shipped scorer suggested the class for none of the unsure pairs"
    assert all(o.confidence >= extractor.threshold and o.head_type == o.tail_type == "PER" for o in suggested)
    assert graph_store.query(f"MATCH ()-[r:{graph_type}]->() RETURN count(r)").rows == [[0]]
    assert graph_store.query("MATCH ()-[r]->() WHERE r.zero_shot RETURN count(r)").rows == [[0]]


def test_zero_shot_classes_are_confirmed_candidates_and_proposed_tasks_not_yet_learnt(graph_store, tmp_path):
    from graph_store.schema_registry import record_classes
    from pipeline.runtime import zero_shot_relations

    assert zero_shot_relations(graph_store) == []
    cand = one_candidate(graph_store, tmp_path / "obs")
    confirm(graph_store, LabelledStore(tmp_path / "labelled"), cand, NAME, now=T0, description="one greets the other")
    now = _iso(T0)
    rows = [{"kind": "mre", "name": n, "graph_type": n.rsplit("/", 1)[-1].upper(), "status": s, "emerged_at": now,
             "now": now} for n, s in (("/per/loc/visited", "proposed"), ("/per/org/founded_by", "refused"),
                                      ("/per/misc/hums", "emerging"), ("/per/per/peer", "learned"))]
    record_classes(graph_store, rows + [{"kind": "mner", "name": "PRODUCT", "graph_type": "PRODUCT",
                                         "status": "proposed", "emerged_at": now, "now": now}])
    got = [(c.name, c.description) for c in zero_shot_relations(graph_store)]
    assert got == [("/per/loc/visited", ""), ("/per/org/founded_by", ""), (NAME, "one greets the other")]
    record_classes(graph_store, [{**rows[0], "status": "learned"}])
    assert "/per/loc/visited" not in [c.name for c in zero_shot_relations(graph_store)]
    from pipeline.runtime import zero_shot_types

    assert [(c.name, c.description) for c in zero_shot_types(graph_store)] == [("PRODUCT", "")]


def one_type_candidate(graph, folder) -> str:
    """A pending CandidateType made by discovery from twelve unsure spans of one pattern."""
    from pipeline.observations import SPAN

    sink = ObservationSink(folder, clock=lambda: T0)
    for i in range(12):
        tokens = ("I", "bought", "a", "Widget", str(i))
        sink.send([Observation(SPAN, f"span-{i}", _iso(T0), _iso(T0), " ".join(tokens), tokens, (3, 4), "Widget",
                               "ORG", None, None, None, "ORG", 0.3, "m@1", ((3, 4, "ORG"),))])
    sink.close()

    (cand,) = discover(folder, T0, T0 + timedelta(seconds=1), graph, None, embed=_one_cluster, now=T0)
    return cand.id


def zero_shot_entities(graph) -> list[list]:
    return graph.query("MATCH (e:Entity:PRODUCT) RETURN e.key, e.zero_shot, e.model_version, e.confidence "
                       "ORDER BY e.key").rows


def test_confirmed_type_retypes_unsure_spans_zero_shot_until_a_supervised_write_takes_the_node_over(
        graph_store, short_tmp, tmp_path):
    from graph_store.records import EntityRow, GraphBatch, Provenance

    cfg = Config.model_validate({"zero_shot": {"type_threshold": -1.0, "refresh_s": 0}})
    posts = write_jsonl(short_tmp / "a.jsonl", mnre_posts(POSTS)[:20])
    extractor = with_zero_shot(cfg, graph_store, MultimodalExtractor(tmp_path / "models", shipped=True))
    cand = one_type_candidate(graph_store, tmp_path / "obs")
    confirm(graph_store, LabelledStore(tmp_path / "labelled"), cand, "PRODUCT", now=T0,
            description="a commercial product such as a phone, a car or a drink")
    run(extractor, graph_store, posts, short_tmp, "types")
    assert [c.name for c in extractor.active_types()] == ["PRODUCT"]
    retyped = zero_shot_entities(graph_store)
    assert retyped, "no span the shipped tagger was unsure of in 20 posts was retyped"
    scorer = SOURCE_PREFIX + extractor.model.version
    for key, flag, version, score in retyped:
        assert key.startswith("PRODUCT:") and flag is True and version == scorer and -1.0 <= score <= 1.0
    later = T0 + timedelta(days=10)  # the novelty report counts them per new type
    report = run_discovery(tmp_path / "obs", later, later + timedelta(hours=1), graph_store, None, now=later)
    assert report.as_dict()["zero_shot_entities"] == {"PRODUCT": len(retyped)}
    # every PRODUCT node came from an unsure span: a sure one is never rescored
    mentions = graph_store.query("MATCH (p:Post)-[:MENTIONS]->(e:Entity:PRODUCT) RETURN count(*)").rows[0][0]
    assert mentions >= len(retyped)

    key = retyped[0][0]
    supervised = EntityRow(key, "PRODUCT", key.split(":", 1)[1], Provenance("p-sup", "2026-03-02T00:00:00Z", "mner@2", 0.9))
    graph_store.write(GraphBatch(entities=[supervised]))
    flags = {k: flag for k, flag, *_ in zero_shot_entities(graph_store)}
    assert flags[key] is None  # a tagger that learnt PRODUCT wrote it: the node is its now
    run(extractor, graph_store, posts, short_tmp, "types-again")  # zero-shot re-delivery never flags it back
    assert {k: flag for k, flag, *_ in zero_shot_entities(graph_store)}[key] is None
    assert len(zero_shot_entities(graph_store)) == len(retyped)  # one node per key
