"""Completion model parts on hand-made inputs: ranking, filter index, WordNet
ids, inductive scoring, warm start, threshold / top-k."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from extractors.store import ModelStore
from graph_store.completion.calibrate import HeldOutCurve, held_out_curve
from graph_store.completion.data import FilterIndex, with_inverses
from graph_store.completion.evaluate import filtered_ranks, random_expected_mrr, ranking_metrics
from graph_store.completion.model import CompletionModel, EntityFeatures, ModelConfig
from graph_store.completion.predict import predict
from graph_store.completion.snapshot import EntityInfo, GraphSnapshot
from graph_store.completion.text import TextEmbedder
from graph_store.completion.versions import KIND, CompletionStore, state_equal, warm_start
from graph_store.completion.wordnet import Synset, parse_data_line, resolve


def test_filtered_rank_ignores_other_known_answers_and_counts_ties_half():
    scores = torch.tensor([[0.9, 0.5, 0.7, 0.1, 0.7],
                           [0.2, 0.2, 0.2, 0.2, 0.2]])
    targets = torch.tensor([2, 0])
    known = torch.tensor([[True, False, True, False, False],  # entity 0 is another true answer
                          [False] * 5])
    ranks = filtered_ranks(scores, targets, known)
    # row 0: 0.9 is filtered, 0.7 (entity 4) ties with the target -> 1 + 0 + 0.5
    # row 1: all tied with 4 others -> 1 + 4 / 2, the random expectation
    assert ranks.tolist() == [1.5, 3.0]
    unfiltered = filtered_ranks(scores, targets, torch.zeros_like(known))
    assert unfiltered.tolist() == [2.5, 3.0]


def test_ranking_metrics_from_ranks():
    m = ranking_metrics(torch.tensor([1.0, 2.0, 4.0, 20.0]))
    assert m.mrr == pytest.approx((1 + 1 / 2 + 1 / 4 + 1 / 20) / 4)
    assert (m.hits_at_1, m.hits_at_3, m.hits_at_10) == (0.25, 0.5, 0.75)
    assert m.mr == pytest.approx(27 / 4) and m.queries == 4
    assert random_expected_mrr(4) == pytest.approx((1 + 1 / 2 + 1 / 3 + 1 / 4) / 4)


def test_filter_index_knows_both_directions():
    triples = np.array([[0, 0, 1], [0, 0, 2], [3, 1, 0]])
    filt = FilterIndex(triples, n_entities=4, n_relations=2)
    assert sorted(filt.answers(0, 0).tolist()) == [1, 2]
    assert filt.answers(1, 0 + 2).tolist() == [0]  # inverse of (0, r0, 1)
    assert filt.answers(0, 1 + 2).tolist() == [3]
    got = filt.contains(torch.tensor([0, 1]), torch.tensor([0, 2]), torch.tensor([[1, 2, 3], [0, 1, 2]]))
    assert got.tolist() == [[True, True, False], [True, False, False]]
    assert filt.mask(np.array([0]), np.array([0])).tolist() == [[False, True, True, False]]
    q = with_inverses(triples, 2)
    assert q.shape == (6, 3) and q[3].tolist() == [1, 2, 0]


def test_wordnet_lines_and_colliding_offsets():
    line = ("00001740 29 v 04 breathe 0 take_a_breath 0 respire 0 suspire 3 002 * 00005041 v 0000 "
            "+ 03110322 a 0301 01 + 02 00 | draw air into, and expel out of, the lungs; \"I can breathe\"  ")
    syn = parse_data_line(line)
    assert syn.lemmas == ("breathe", "take_a_breath", "respire", "suspire")
    assert syn.pointers == {"00005041", "03110322"} and syn.definition == "draw air into, and expel out of, the lungs"
    assert syn.text().startswith("breathe, take a breath") and parse_data_line("  1 license text") is None
    noun = Synset("00001740", "n", ("entity",), "that which is perceived", frozenset({"00001930"}))
    verb = Synset("00001740", "v", ("breathe",), "draw air", frozenset({"00005041"}))
    wordnet = {"00001740": [noun, verb], "00005041": [Synset("00005041", "v", ("x",), "", frozenset())]}
    by_evidence = resolve(["00001740", "00005041"], [("00001740", "_hypernym", "00005041")], wordnet)
    assert by_evidence.synsets["00001740"].pos == "v"
    no_evidence = resolve(["00001740", "99999999"], [], wordnet)
    assert no_evidence.synsets["00001740"].pos == "n"  # fixed order: noun first
    assert no_evidence.stats() == {"resolved": 1, "ambiguous": 1, "by_evidence": 0, "by_order": 1, "missing": 1}
    assert by_evidence.stats()["by_evidence"] == 1


def _feats(n: int, dim: int = 8, seed: int = 0) -> EntityFeatures:
    return EntityFeatures(torch.randn(n, dim, generator=torch.Generator().manual_seed(seed)))


def test_unseen_entity_is_scored_from_its_text_alone():
    model = CompletionModel(ModelConfig(text_dim=8, rank=4, hidden=16), n_entities=3, n_relations=2)
    with torch.no_grad():
        model.residual.weight.normal_()
    feats = _feats(4)  # entity 3 was never trained: no residual row
    ids = torch.arange(4)
    vec = model.entities(feats, ids)
    # batched vs single-row matmuls take different BLAS paths: compare with tolerances
    # that hold on any of them (the residual row of entity 0 moves it by O(1), far outside)
    assert torch.allclose(vec[3], model.project(feats.text[3]), rtol=1e-4, atol=1e-5)
    assert not torch.allclose(vec[0], model.project(feats.text[0]), rtol=1e-4, atol=1e-5)
    score = model.scorer(feats)
    before = score(torch.tensor([0]), torch.tensor([1]))[0, 3]
    feats.text[3] = torch.randn(8)
    after = model.scorer(feats)(torch.tensor([0]), torch.tensor([1]))[0, 3]
    assert before != after  # its text is what places it


def test_image_term_is_zero_without_images():
    cfg = ModelConfig(text_dim=8, rank=4, hidden=16, image_dim=5)
    model = CompletionModel(cfg, n_entities=2, n_relations=1)
    feats = _feats(2)
    feats.image, feats.has_image = torch.randn(2, 5), torch.tensor([True, False])
    vec = model.entities(feats, torch.arange(2))
    base = model.project(feats.text)
    assert torch.allclose(vec[1], base[1], rtol=1e-4, atol=1e-5)
    assert not torch.allclose(vec[0], base[0], rtol=1e-4, atol=1e-5)


def test_warm_start_loads_previous_version_and_maps_by_key(tmp_path):
    store = CompletionStore(ModelStore(tmp_path, kinds=(KIND,)))
    old = CompletionModel(ModelConfig(text_dim=8, rank=4, hidden=16), n_entities=2, n_relations=2)
    with torch.no_grad():
        old.residual.weight.normal_()
        old.relation.normal_()
    v1 = store.save_model(old, entities=["PER:a", "ORG:b"], relations=["MEMBER_OF", "PEER"], metrics={},
                          train_config={}, fingerprint="f" * 64, parent=None)
    assert store.current_version() == v1
    loaded, cfg, vocab = store.load_model()
    assert state_equal(loaded, old) and vocab["entities"] == ["PER:a", "ORG:b"]
    # the graph grew: a new entity first, a new relation
    new = warm_start(loaded, vocab, ["LOC:c", "ORG:b", "PER:a"], ["PEER", "CONTAIN", "MEMBER_OF"])
    assert torch.equal(new.residual.weight[0], torch.zeros(8))
    assert torch.equal(new.residual.weight[1], old.residual.weight[1])
    assert torch.equal(new.residual.weight[2], old.residual.weight[0])
    assert torch.equal(new.relation[0], old.relation[1]) and torch.equal(new.relation[2], old.relation[0])
    assert torch.equal(new.relation[3 + 2], old.relation[2 + 0])  # inverse operators follow too
    assert torch.equal(new.project[0].weight, old.project[0].weight)
    v2 = store.save_model(new, entities=["LOC:c", "ORG:b", "PER:a"], relations=["PEER", "CONTAIN", "MEMBER_OF"],
                          metrics={}, train_config={}, fingerprint="e" * 64, parent=v1)
    assert store.current_version() == v2 and store.config(v2)["parent"] == v1
    assert store.folders.versions(KIND) == sorted([v1, v2])


def _hand_model(vectors: list[list[float]]) -> tuple[CompletionModel, EntityFeatures]:
    """Scores are plain dot products of the given entity vectors (rank 1, identity relation)."""
    model = CompletionModel(ModelConfig(text_dim=2, rank=1, hidden=2), n_entities=len(vectors), n_relations=1)
    with torch.no_grad():
        for p in model.project.parameters():
            p.zero_()
        model.residual.weight.copy_(torch.tensor(vectors))
        model.relation.copy_(torch.tensor([[1.0, 0.0], [1.0, 0.0]]))
    return model, EntityFeatures(torch.zeros(len(vectors), 2))


def test_threshold_and_top_k():
    # head PER:a = (1, 0): ORG candidates b, c, d score 3, 2, 0; head PER:e = (0, 1): d scores 4, b and c 0
    model, feats = _hand_model([[1, 0], [3, 0], [2, 0], [0, 4], [0, 1]])
    ents = [EntityInfo("PER:a", "a", "PER"), EntityInfo("ORG:b", "b", "ORG"), EntityInfo("ORG:c", "c", "ORG"),
            EntityInfo("ORG:d", "d", "ORG"), EntityInfo("PER:e", "e", "PER")]
    # known: e -MEMBER_OF-> d; this makes MEMBER_OF a PER -> ORG relation
    snap = GraphSnapshot(ents, ["MEMBER_OF"], np.array([[4, 0, 3]]), "now")
    z = math.exp(3) + math.exp(2) + math.exp(0)
    p_b, p_c = math.exp(3) / z, math.exp(2) / z

    res = predict(model, feats, snap, top_k=2, threshold=0.0)
    got = {(p.head, p.tail): p.score for p in res.predictions}
    assert got[("PER:a", "ORG:b")] == pytest.approx(p_b) and got[("PER:a", "ORG:c")] == pytest.approx(p_c)
    assert res.queries == 2  # heads a and e: only PER heads, only ORG tails
    assert ("PER:e", "ORG:d") not in got and res.existing_in_top_k == 1  # e's best answer is already extracted
    assert all(p.tail.startswith("ORG:") for p in res.predictions)

    strict = predict(model, feats, snap, top_k=2, threshold=(p_b + p_c) / 2)
    assert {(p.head, p.tail) for p in strict.predictions if p.head == "PER:a"} == {("PER:a", "ORG:b")}
    assert strict.below_threshold >= 1
    one = predict(model, feats, snap, top_k=1, threshold=0.0)
    assert len([p for p in one.predictions if p.head == "PER:a"]) == 1
    with pytest.raises(ValueError):
        predict(model, feats, snap, top_k=0)


def test_inferred_writes_validate_relation_types_and_keep_extracted_edges_apart():
    from graph_store.schema import LabelSchema, SchemaViolation
    from graph_store.cypher import fact_statement, inferred_statements
    from graph_store.records import InferredFact

    ok = InferredFact("PER:a", "MEMBER_OF", "ORG:b", 0.9, "completion@v", "t")
    stmts = inferred_statements([ok] * 3, "run-1", LabelSchema(), batch_rows=2)
    assert [len(p.get("rows", [])) for _, p in stmts] == [2, 1, 0]  # UNWIND batches, then the stale removal
    assert "MERGE (h)-[e:MEMBER_OF {inferred: true}]->(t)" in stmts[0][0]
    assert stmts[-1][1] == {"run_id": "run-1"}
    assert "{inferred: false}" in fact_statement("MEMBER_OF")
    for evil in ("MEMBER_OF]->(x) DETACH DELETE x //", "UNKNOWN_RELATION"):
        with pytest.raises(SchemaViolation):
            inferred_statements([ok, InferredFact("PER:a", evil, "ORG:b", 0.9, "v", "t")], "r", LabelSchema())


def test_complete_command_help_explains_itself(capsys):
    from pipeline.cli import build_parser

    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["complete", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for option in ("--threshold", "--top-k", "--remove-inferred", "--full-retrain", "--config", "inferred: true"):
        assert option in out


class _CountingEncoder:
    """A stand-in sentence encoder of width 5 that records what it was asked to encode."""

    name, max_length, dim = "fake", 64, 5

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, texts, progress=False):
        self.calls.append(list(texts))
        return np.stack([np.full(self.dim, float(len(t)), dtype=np.float32) for t in texts])


def test_text_embedder_takes_its_width_from_the_encoder_and_encodes_each_text_once(tmp_path):
    enc = _CountingEncoder()
    assert TextEmbedder(enc, tmp_path).embed([]).shape == (0, 5)
    first = TextEmbedder(enc, tmp_path).embed(["ab", "abcd", "ab"])
    torch.testing.assert_close(first[:, 0], torch.tensor([2.0, 4.0, 2.0]), rtol=1e-4, atol=1e-5)
    again = TextEmbedder(enc, tmp_path).embed(["abcd", "xyz"])  # a new embedder reads the disk cache
    torch.testing.assert_close(again[:, 0], torch.tensor([4.0, 3.0]), rtol=1e-4, atol=1e-5)
    assert [sorted(c) for c in enc.calls] == [["ab", "abcd"], ["xyz"]]  # cached texts are not encoded again


def test_a_shortlist_from_the_index_gives_the_answers_of_scoring_every_candidate():
    """Past ann_min_candidates the tails come from the approximate index: the same best answers as scoring
    every candidate, each with a probability among the shortlist, so never below the one among all."""
    rng = np.random.default_rng(0)
    n = 400
    model, feats = _hand_model(rng.normal(size=(n, 2)).tolist())
    ents = [EntityInfo(f"PER:p{i}", f"p{i}", "PER") for i in range(n)]
    snap = GraphSnapshot(ents, ["MEMBER_OF"], np.array([[0, 0, 1]]), "now")
    exact = predict(model, feats, snap, top_k=3, threshold=0.0)
    full = predict(model, feats, snap, top_k=3, threshold=0.0, ann_min_candidates=0, shortlist=n)
    assert [(p.head, p.tail) for p in full.predictions] == [(p.head, p.tail) for p in exact.predictions]
    assert all(f.score >= e.score * (1 - 1e-5) for f, e in zip(full.predictions, exact.predictions))
    short = predict(model, feats, snap, top_k=1, threshold=0.0, ann_min_candidates=0, shortlist=20)
    best = {p.head: p.tail for p in predict(model, feats, snap, top_k=1, threshold=0.0).predictions}
    agree = np.mean([best[p.head] == p.tail for p in short.predictions])
    assert len(short.predictions) == len(best) and agree > 0.95, agree


def test_held_out_curve_reads_precision_and_recall_at_a_threshold():
    curve = HeldOutCurve(np.array([0.9, 0.8, 0.8, 0.6, 0.3]), np.array([True, True, False, True, False]), held_out=5)
    point = curve.at(0.8)  # written: the three scores >= 0.8
    assert (point.written, point.correct) == (3, 2)
    assert point.precision == pytest.approx(2 / 3) and point.recall == pytest.approx(2 / 5)
    assert curve.at(0.95).precision is None and curve.at(0.95).written == 0
    assert curve.lowest_threshold_for(0.75) == 0.6  # 3 of 4 right at 0.6; 3 of 5 at 0.3 is too few
    assert curve.lowest_threshold_for(1.0) == 0.9
    assert curve.lowest_threshold_for(0.75, min_written=5) is None


def test_a_threshold_cannot_split_tied_scores():
    # 1 of 1 right at the first 0.8 is not a cut: a threshold of 0.8 writes both 0.8s (1 of 2 right at 0.8)
    curve = HeldOutCurve(np.array([0.9, 0.8, 0.8]), np.array([True, True, False]), held_out=2)
    assert curve.lowest_threshold_for(0.9) == 0.9
    assert curve.at(curve.lowest_threshold_for(0.9)).precision >= 0.9


def test_held_out_curve_asks_only_the_held_out_queries_with_only_the_known_facts():
    model, feats = _hand_model([[1, 0], [3, 0], [2, 0], [0, 4], [0, 1]])
    ents = [EntityInfo("PER:a", "a", "PER"), EntityInfo("ORG:b", "b", "ORG"), EntityInfo("ORG:c", "c", "ORG"),
            EntityInfo("ORG:d", "d", "ORG"), EntityInfo("PER:e", "e", "PER")]
    known, held = np.array([[4, 0, 3]]), np.array([[0, 0, 1]])  # e -> d is known; a -> b is held out
    snap = GraphSnapshot(ents, ["MEMBER_OF"], np.concatenate([known, held]), "now")
    z = math.exp(3) + math.exp(2) + math.exp(0)
    curve = held_out_curve(model, feats, snap, known, held, top_k=2)
    # only a's query is asked (e has no held-out fact); b is a's held-out answer, c is wrong
    assert curve.scores.tolist() == pytest.approx([math.exp(3) / z, math.exp(2) / z])
    assert curve.correct.tolist() == [True, False] and curve.held_out == 1
    assert curve.at(0.5).precision == 1.0 and curve.at(0.0).precision == 0.5
