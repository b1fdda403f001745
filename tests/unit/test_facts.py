"""Facts a user can believe (#31): text normalisation, symmetric storage, the gazetteer's veto,
calibrated confidence at inference, and the per-relation thresholds.

Expected values come from the world (which city is in which country), from the
text itself, or from arithmetic done here by hand, never from the code under test.
"""
from __future__ import annotations

import math

import pytest

from extractors.base import EntityMention, Extraction, RelationMention
from extractors.fact_calibration import FactCalibrator, precision_threshold
from extractors.facts import FactDecider, PairCandidate
from extractors.normalise import normalise_text
from extractors.spans import words_with_offsets
from graph_store.records import GraphBatch
from graph_store.schema import LabelSchema
from pipeline.post import parse_post
from pipeline.to_graph import add_post


# -- normalisation ---------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, words", [
    ("Canada &amp; US team up", ["Canada", "&", "US", "team", "up"]),  # never an entity "amp"
    ("Tom &lt;3 Jerry", ["Tom", "<", "3", "Jerry"]),
    ("RT @CelebMix : Harry Styles sings", ["Harry", "Styles", "sings"]),  # who retweeted is not the post
    ("Watch https://t.co/AbC123 now", ["Watch", "now"]),
    ("great talk via @openculture", ["great", "talk", "@openculture"]),
    ("@HillaryClinton in #Iowa", ["@HillaryClinton", "in", "#", "Iowa"]),  # a handle stays one word
])
def test_normalised_text_reads_as_the_post_means(raw, words):
    assert [w for w, _, _ in words_with_offsets(normalise_text(raw))] == words


@pytest.mark.parametrize("raw", ["Canada &amp; US &#39;22 &quot;ok&quot;", "RT @x_y: go http://a.b/c?d=1 &gt;&gt;",
                                 "no change at all", "&notanentity; &amp"])
def test_normalisation_keeps_every_character_in_place(raw):
    out = normalise_text(raw)
    assert len(out) == len(raw)  # mention offsets still point into the stored post
    for word, start, end in words_with_offsets(out):
        if word.isalpha():
            assert raw[start:end] == word


# -- symmetric relations: one edge per pair ---------------------------------------------------------

def _post(pid: str, text: str):
    return parse_post(f'{{"id": "{pid}", "text": "{text}", "created_at": "2026-01-01T00:00:00Z"}}')


def _mention(text: str, etype: str, post_text: str) -> EntityMention:
    start = post_text.index(text)
    return EntityMention(text, etype, start, start + len(text), 0.9)


@pytest.mark.parametrize("relation, symmetric", [("PEER", True), ("COUPLE", True), ("MEMBER_OF", False)])
def test_a_symmetric_relation_is_stored_once_whichever_way_a_post_names_it(relation, symmetric):
    schema = LabelSchema()
    text = "Serena Williams and Venus Williams"
    serena, venus = _mention("Serena Williams", "PER", text), _mention("Venus Williams", "PER", text)
    rows = []
    for pid, (head, tail) in (("p1", (serena, venus)), ("p2", (venus, serena))):
        batch = GraphBatch()
        add_post(batch, _post(pid, text), Extraction(pid, [serena, venus], [RelationMention(head, tail, relation, 0.9)]),
                 "m@1", schema)
        rows.append((batch.facts[0].head_key, batch.facts[0].tail_key))
    if symmetric:
        assert rows[0] == rows[1] == ("PER:serena williams", "PER:venus williams")
    else:
        assert rows[0] != rows[1]  # a directed relation keeps the direction the post gave


def test_the_decider_writes_a_symmetric_pair_once():
    text = "Serena Williams and Venus Williams"
    a, b = _mention("Serena Williams", "PER", text), _mention("Venus Williams", "PER", text)
    cands = [PairCandidate(a, b, "/per/per/peer", 0.9, 0.05, "/per/per/peer", 0.9),
             PairCandidate(b, a, "/per/per/peer", 0.8, 0.1, "/per/per/peer", 0.8)]
    kept, _ = FactDecider(None, 0.9, 0.5)(cands)
    assert [(f.head.text, f.tail.text, f.confidence) for f in kept] == [("Serena Williams", "Venus Williams", 0.9)]
    kept, _ = FactDecider(None, 0.9, 0.5, schema_rules=False)(cands)
    assert len(kept) == 2


# -- the gazetteer's veto ---------------------------------------------------------------------------

def _contain(outer: str, inner: str) -> PairCandidate:
    text = f"{outer} {inner}"
    return PairCandidate(_mention(outer, "LOC", text), _mention(inner, "LOC", f"{outer} {inner}"), "/loc/loc/contain",
                         0.99, 0.0, "/loc/loc/contain", 0.99)


@pytest.mark.parametrize("outer, inner, written", [
    ("China", "Shanghai", ("China", "Shanghai")),  # right as extracted
    ("Paris", "London", None),  # two cities: nothing contains the other
    ("UK", "Germany", None),  # two countries of a list
    ("LA", "Los Angeles", None),  # one city under two names
    ("Nashua", "NH", ("NH", "Nashua")),  # the wrong way round: turned
    ("Europe", "France", ("Europe", "France")),
    ("Khanapur Rural", "Khanapur Temple", ("Khanapur Rural", "Khanapur Temple")),  # unknown: the model decides
])
def test_the_gazetteer_vetoes_or_turns_an_impossible_contain(outer, inner, written):
    kept, _ = FactDecider(None, 0.9, 0.5)([_contain(outer, inner)])
    assert [(f.head.text, f.tail.text) for f in kept] == ([written] if written else [])


def test_without_schema_rules_the_gazetteer_is_not_asked():
    kept, _ = FactDecider(None, 0.9, 0.5, schema_rules=False)([_contain("Paris", "London")])
    assert len(kept) == 1


# -- calibrated confidence at inference -------------------------------------------------------------

def test_calibration_turns_features_into_the_written_confidence():
    # z = -1 + 2 * 1.5 - 0.5 * 2 = 1 -> sigmoid(1) = 0.7311
    cal = FactCalibrator("mner-a+mre-b", ["logit_p", "span_min"], [2.0, -0.5], -1.0,
                         [("/per/org/member_of", 0.5, True)] * 10)  # every dev fact right: threshold 0.5
    text = "Bukayo Saka of Arsenal"
    cand = PairCandidate(_mention("Bukayo Saka", "PER", text), _mention("Arsenal", "ORG", text), "/per/org/member_of",
                         0.99, 0.0, "/per/org/member_of", 0.99, {"logit_p": 1.5, "span_min": 2.0})
    kept, unsure = FactDecider(cal, 0.9, 0.5)([cand])
    assert unsure == [] and len(kept) == 1
    assert kept[0].confidence == pytest.approx(1 / (1 + math.exp(-1)), abs=1e-6)
    assert kept[0].type == "MEMBER_OF" and kept[0].label == "/per/org/member_of"


def test_a_calibrated_fact_below_its_relation_threshold_is_not_written():
    rows = [("/per/org/member_of", 0.95, True)] * 10 + [("/per/org/member_of", 0.8, False)] * 10
    cal = FactCalibrator("v", ["logit_p"], [1.0], 0.0, rows)  # confidence = sigmoid(logit_p)
    text = "Bukayo Saka of Arsenal"
    cand = PairCandidate(_mention("Bukayo Saka", "PER", text), _mention("Arsenal", "ORG", text), "/per/org/member_of",
                         0.99, 0.0, "/per/org/member_of", 0.99, {"logit_p": math.log(0.85 / 0.15)})  # 0.85
    kept, unsure = FactDecider(cal, 0.9, 0.5)([cand])
    assert kept == [] and unsure[0].confidence == pytest.approx(0.85)  # the threshold for 0.9 is 0.95


def test_precision_threshold_is_the_lowest_reaching_the_target():
    # ranked: 0.9 R, 0.8 R, 0.7 W, 0.6 R, 0.5 R, 0.4 W, 0.3 W: precision at or above each:
    # 1, 1, 2/3, 3/4, 4/5, 4/6, 4/7 -> for 0.75 the lowest is 0.5 (0.8), for 0.9 it is 0.8
    rows = [(0.9, True), (0.8, True), (0.7, False), (0.6, True), (0.5, True), (0.4, False), (0.3, False)]
    assert precision_threshold(rows, 0.75, min_facts=1) == 0.5
    assert precision_threshold(rows, 0.9, min_facts=1) == 0.8
    assert precision_threshold(rows, 0.9, min_facts=3) == 1.01  # none: write nothing
    assert precision_threshold(rows, 0.5, min_facts=1) == 0.3


def test_per_relation_thresholds_fall_back_to_all_relations_with_few_facts():
    rows = ([("/per/per/peer", 0.9, True)] * 12 + [("/per/per/peer", 0.6, False)] * 8
            + [("/per/per/couple", 0.7, True)] * 3)
    th = FactCalibrator("v", [], [], 0.0, rows).thresholds(0.9)
    assert th["/per/per/peer"] == 0.9  # 20 rows: its own
    assert "/per/per/couple" not in th and th["*"] == 0.7  # 3 rows: all together (15/15 right at >= 0.7)
