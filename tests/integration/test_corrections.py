"""People correct the graph (#31): a rejected or fixed fact is recorded with who and when, no later
extraction writes it back (the same post re-delivered, or another post), and the corrections export
as labelled posts. Run on the embedded backend and real Neo4j."""
from __future__ import annotations

import pytest

from extractors.schema import label_for
from graph_store.corrections import CorrectionError, correct_fact, corrections_as_labels, list_corrections
from graph_store.records import EntityRow, FactRow, GraphBatch, PostRow, Provenance, evidence_key

TEXT = "Jason Pierre-Paul talks to ESPN about his hand"


def _post(pid: str, text: str = TEXT, relation: str = "MEMBER_OF") -> GraphBatch:
    prov = Provenance(pid, "2026-01-01T00:00:00.000000Z", "m@1", 0.97)
    return GraphBatch(
        posts=[PostRow(pid, prov.seen_at, text, mentions=("PER:jason pierre-paul", "ORG:espn"))],
        entities=[EntityRow("PER:jason pierre-paul", "PER", "Jason Pierre-Paul", prov),
                  EntityRow("ORG:espn", "ORG", "ESPN", prov)],
        facts=[FactRow("PER:jason pierre-paul", "PER", relation, "ORG:espn", "ORG", prov, evidence=evidence_key(text))])


def _facts(store) -> list[list]:
    return store.query("MATCH (h:Entity)-[r]->(t:Entity) RETURN h.key, type(r), t.key, r.model_version "
                       "ORDER BY type(r)").rows


def test_a_rejected_fact_is_recorded_and_never_written_back(graph_store):
    graph_store.write(_post("p1"))
    done = correct_fact(graph_store, "PER:jason pierre-paul", "MEMBER_OF", "ORG:espn", by="ana", at="2026-02-01T00:00:00Z",
                        reason="ESPN reports on him")
    assert (done.decision, done.decided_by, done.decided_at, done.post_ids) == ("rejected", "ana",
                                                                                "2026-02-01T00:00:00Z", ("p1",))
    assert _facts(graph_store) == []
    graph_store.write(_post("p1"))  # the same post extracted again (a re-delivery, a backfill)
    graph_store.write(_post("p2", "ESPN: Jason Pierre-Paul is back at practice"))  # another post
    assert _facts(graph_store) == []
    assert [c.id for c in list_corrections(graph_store)] == ["PER:jason pierre-paul|MEMBER_OF|ORG:espn"]
    # another relation between the same two is not the rejected fact
    graph_store.write(_post("p3", relation="CHARGES"))
    assert [row[1] for row in _facts(graph_store)] == ["CHARGES"]
    with pytest.raises(CorrectionError):
        correct_fact(graph_store, "PER:jason pierre-paul", "MEMBER_OF", "ORG:espn", by="ana", at="2026-02-02T00:00:00Z")


def test_a_fixed_fact_keeps_its_posts_and_names_who_fixed_it(graph_store):
    graph_store.write(_post("p1", "Jason Pierre-Paul sues ESPN over a photo", relation="MEMBER_OF"))
    correct_fact(graph_store, "PER:jason pierre-paul", "MEMBER_OF", "ORG:espn", by="ana", at="2026-02-01T00:00:00Z",
                 fixed_to="CHARGES")
    assert _facts(graph_store) == [["PER:jason pierre-paul", "CHARGES", "ORG:espn", "person:ana"]]
    graph_store.write(_post("p1", "Jason Pierre-Paul sues ESPN over a photo", relation="MEMBER_OF"))
    assert [row[1] for row in _facts(graph_store)] == ["CHARGES"]
    (post, label), = corrections_as_labels(graph_store, label_for)
    assert post == {"id": "p1", "text": "Jason Pierre-Paul sues ESPN over a photo"}
    assert label["facts"] == [{"head": "Jason Pierre-Paul", "relation": "CHARGES", "tail": "ESPN"}]  # no MNRE label
    assert label["entities"] == [{"text": "Jason Pierre-Paul", "type": "PER"}, {"text": "ESPN", "type": "ORG"}]


def test_a_rejection_exports_as_a_pair_without_a_relation(graph_store):
    graph_store.write(_post("p1"))
    correct_fact(graph_store, "PER:jason pierre-paul", "MEMBER_OF", "ORG:espn", by="ana", at="2026-02-01T00:00:00Z")
    (post, label), = corrections_as_labels(graph_store, label_for)
    assert post["text"] == TEXT and label["facts"] == [] and label["decided_by"] == "ana"


def test_a_correction_needs_a_safe_relation_and_a_person(graph_store):
    graph_store.write(_post("p1"))
    from graph_store.schema import SchemaViolation

    with pytest.raises(SchemaViolation):
        correct_fact(graph_store, "PER:jason pierre-paul", "MEMBER_OF]->() DETACH DELETE (x", "ORG:espn", by="a",
                     at="2026-02-01T00:00:00Z")
    with pytest.raises(CorrectionError):
        correct_fact(graph_store, "PER:jason pierre-paul", "MEMBER_OF", "ORG:espn", by=" ", at="2026-02-01T00:00:00Z")
    assert len(_facts(graph_store)) == 1


def test_corrections_become_training_pairs_for_the_fact_head(embedded_store, tmp_path):
    """The loop closes: corrections made in the graph, exported as `mkg facts export` writes them, are
    the rows `python -m benchmarks.end_to_end --fit --corrections POSTS LABELS` trains the fact head on,
    read by the shipped extractor: a rejected fact is its pair with no relation, both ways; a fixed one
    is its right relation one way and no relation the other. Nothing else of the post is labelled."""
    import json

    from benchmarks.end_to_end import correction_rows
    from pipeline.config import Config
    from pipeline.runtime import make_extractor

    embedded_store.write(_post("p1"))
    born = "Ann Lee was born in Paris in 1990 , Barack Obama told CNN"  # two more names: not labelled
    prov = Provenance("p2", "2026-01-01T00:00:00.000000Z", "m@1", 0.9)
    embedded_store.write(GraphBatch(
        posts=[PostRow("p2", prov.seen_at, born, mentions=("PER:ann lee", "LOC:paris"))],
        entities=[EntityRow("PER:ann lee", "PER", "Ann Lee", prov), EntityRow("LOC:paris", "LOC", "Paris", prov)],
        facts=[FactRow("PER:ann lee", "PER", "PLACE_OF_RESIDENCE", "LOC:paris", "LOC", prov,
                       evidence=evidence_key(born))]))
    correct_fact(embedded_store, "PER:jason pierre-paul", "MEMBER_OF", "ORG:espn", by="ana", at="2026-02-01T00:00:00Z")
    correct_fact(embedded_store, "PER:ann lee", "PLACE_OF_RESIDENCE", "LOC:paris", by="ana", at="2026-02-01T00:00:00Z",
                 fixed_to="PLACE_OF_BIRTH")
    posts, labels = tmp_path / "posts.jsonl", tmp_path / "labels.jsonl"
    rows = corrections_as_labels(embedded_store, label_for)
    posts.write_text("".join(json.dumps(p) + "\n" for p, _ in rows))
    labels.write_text("".join(json.dumps(lab) + "\n" for _, lab in rows))

    got = {(pid, c.head.text, c.tail.text): label
           for pid, c, label in correction_rows(make_extractor(Config()), posts, labels, progress=False)}
    assert got == {("p1", "Jason Pierre-Paul", "ESPN"): "None", ("p1", "ESPN", "Jason Pierre-Paul"): "None",
                   ("p2", "Ann Lee", "Paris"): "/per/loc/place_of_birth", ("p2", "Paris", "Ann Lee"): "None"}
