"""Candidate discovery decisions on hand-made vectors: large, dense and new, or why not."""
from __future__ import annotations

import numpy as np
import pytest

from continual.candidates.clusters import Cluster, decide, find_clusters
from continual.candidates.graph import RELATION, TYPE, StoredCandidate
from continual.candidates.params import DiscoveryParams
from continual.candidates.review import CandidateError, examples_of, validate_name
from continual.candidates.texts import pair_text, span_text

PARAMS = DiscoveryParams(min_size=5, min_density=0.8, max_known_similarity=0.85, link_similarity=0.6,
                         same_candidate_similarity=0.9)


def unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    return v / np.linalg.norm(v)


def around(axis: int, n: int, spread: float, dim: int = 8, seed: int = 0) -> np.ndarray:
    """``n`` unit vectors around basis vector ``axis``, ``spread`` off it in random directions."""
    rng = np.random.default_rng(seed)
    base = np.eye(dim)[axis]
    noise = rng.normal(size=(n, dim))
    noise -= np.outer(noise @ base, base)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    return np.stack([unit(base + spread * z) for z in noise])


def cluster_of(vectors: np.ndarray) -> Cluster:
    c = unit(vectors.mean(0))
    return Cluster(list(range(len(vectors))), c, float((vectors @ c).mean()))


def test_find_clusters_separates_groups_and_reports_density():
    a, b = around(0, 7, 0.3, seed=1), around(1, 6, 0.3, seed=2)
    lone = np.eye(8)[[4, 5, 6]]  # orthogonal singletons
    clusters = find_clusters(np.concatenate([a, b, lone]), link_similarity=0.6)
    assert [c.size for c in clusters] == [7, 6, 1, 1, 1]
    assert clusters[0].members == list(range(7)) and clusters[1].members == list(range(7, 13))
    assert clusters[0].density == pytest.approx(float((a @ unit(a.mean(0))).mean()))
    assert clusters[0].density > 0.9 and clusters[2].density == pytest.approx(1.0)


def test_a_large_dense_cluster_far_from_known_classes_is_new():
    [d] = decide([cluster_of(around(0, 6, 0.2))], {"/per/org/member_of": np.eye(8)[1]}, [], PARAMS)
    assert d.action == "new" and d.nearest_known == "/per/org/member_of" and d.known_similarity < 0.1


def test_a_cluster_below_min_size_is_small():
    [d] = decide([cluster_of(around(0, 4, 0.2))], {}, [], PARAMS)
    assert d.action == "small"


def test_a_loose_cluster_is_sparse():
    loose = cluster_of(around(0, 10, 1.2))  # about 40 degrees off the axis each
    assert loose.density < PARAMS.min_density
    [d] = decide([loose], {}, [], PARAMS)
    assert d.action == "sparse"


def test_a_cluster_near_a_known_class_prototype_is_known():
    protos = {"/per/org/member_of": unit([1, 0.2, 0, 0, 0, 0, 0, 0]), "/loc/loc/contain": np.eye(8)[3]}
    [d] = decide([cluster_of(around(0, 6, 0.2))], protos, [], PARAMS)
    assert d.action == "known" and d.nearest_known == "/per/org/member_of" and d.known_similarity > 0.9


def test_a_cluster_matching_a_stored_candidate_updates_it_whatever_its_status():
    stored = [StoredCandidate("c-far", RELATION, "pending", np.eye(8)[2]),
              StoredCandidate("c-near", RELATION, "rejected", unit([1, 0.1, 0, 0, 0, 0, 0, 0]))]
    [d] = decide([cluster_of(around(0, 6, 0.2))], {}, stored, PARAMS)
    assert d.action == "update" and d.match.id == "c-near"
    # still large and dense first: a small cluster near a candidate does not touch it
    [d] = decide([cluster_of(around(0, 3, 0.2))], {}, stored, PARAMS)
    assert d.action == "small" and d.match is None


def test_two_clusters_never_update_the_same_stored_candidate():
    stored = [StoredCandidate("c", RELATION, "pending", np.eye(8)[0])]
    big, other = cluster_of(around(0, 8, 0.2, seed=3)), cluster_of(around(0, 6, 0.2, seed=4))
    first, second = decide([big, other], {}, stored, PARAMS)
    assert (first.action, first.match.id) == ("update", "c")
    assert second.action == "new" and second.match is None


def test_pair_text_masks_names_and_keeps_context():
    tokens = "RT @x : Happy birthday to Bill Gates from all at Microsoft !".split()
    assert pair_text(tokens, (6, 8), (11, 12)) == "RT @x : Happy birthday to [head] from all at [tail] !"
    assert pair_text(tokens, (11, 12), (6, 8)) == "RT @x : Happy birthday to [tail] from all at [head] !"
    assert span_text(tokens, (11, 12)) == "Happy birthday to Bill Gates from all at [entity] Microsoft [/entity] !"  # 8 words back


@pytest.mark.parametrize("name", ["/per/org/founded_by", "founded_by", "/misc/misc/SEQUEL_OF"])
def test_relation_names_that_map_to_identifiers_are_accepted(name):
    assert validate_name(RELATION, name) == name


@pytest.mark.parametrize("name", ["None", "founded by", "/per/org/x`]->(n) DETACH DELETE n //", "/per/org/",
                                  "/a/b/9lives"])
def test_unsafe_relation_names_are_refused(name):
    with pytest.raises(CandidateError):
        validate_name(RELATION, name)


@pytest.mark.parametrize("name,ok", [("PRODUCT", True), ("SPORTS_TEAM", True), ("product", False),
                                     ("PER:X", False), ("", False)])
def test_entity_types_must_be_identifiers(name, ok):
    if ok:
        assert validate_name(TYPE, name) == name
    else:
        with pytest.raises(CandidateError):
            validate_name(TYPE, name)


MEMBER = {"key": "p1|pair|0-2|3-4", "post_id": "p1", "post_time": "2026-03-01T10:00:00.000000Z",
          "tokens": ["Bill", "Gates", "founded", "Microsoft", "in", "Seattle"], "head": [0, 2], "tail": [3, 4],
          "head_type": "PER", "tail_type": "MISC", "entities": [[0, 2, "PER"], [3, 4, "MISC"], [5, 6, "LOC"]]}


def test_confirmed_pairs_become_mre_examples_with_the_implied_types():
    [ex] = examples_of(StoredCandidate("cand-rel-1", RELATION, "pending", np.zeros(8), (MEMBER,)), "/org/per/founded_by", 0.2)
    assert ex.kind == "mre" and ex.post_id == "p1" and ex.seen_at == MEMBER["post_time"]
    assert ex.to_example().relation == "/org/per/founded_by" and ex.classes == {"/org/per/founded_by"}
    assert (ex.data["head"], ex.data["tail"]) == ([0, 2], [3, 4])
    assert (ex.data["head_type"], ex.data["tail_type"]) == ("ORG", "PER")  # from the name, not MNER's guess
    [ex] = examples_of(StoredCandidate("cand-rel-1", RELATION, "pending", np.zeros(8), (MEMBER,)), "founded", 0.2)
    assert (ex.data["head_type"], ex.data["tail_type"]) == ("PER", "MISC")  # no implied types: the observed ones


def test_confirmed_spans_become_mner_sentences_with_the_other_entities_kept():
    member = dict(MEMBER, tail=None, tail_type=None, head=[3, 4], head_type="MISC")
    [ex] = examples_of(StoredCandidate("cand-type-1", TYPE, "pending", np.zeros(8), (member,)), "COMPANY", 0.2)
    assert ex.kind == "mner"
    assert ex.data["tags"] == ["B-PER", "I-PER", "O", "B-COMPANY", "O", "B-LOC"]
    assert ex.classes == {"PER", "COMPANY", "LOC"}
