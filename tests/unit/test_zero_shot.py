"""Zero-shot scorer parts on hand-made features: class phrases, the identity start, the variational
mixture of experts, the losses, calibrated stacking and the saved artifact."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from extractors.base import Extraction, ExtractionInput, Extractor
from extractors.zero_shot.baselines import proto_scores
from extractors.zero_shot.classes import class_phrase
from extractors.zero_shot.features import SampleFeatures
from extractors.zero_shot.labeller import ZeroShotExtractor
from extractors.zero_shot.model import ZeroShotClass, ZeroShotModel
from extractors.zero_shot.scorer import (ScorerConfig, VariationalMoE, ZeroShotScorer, image_text_alignment,
                                         margin_ranking, supervised_contrastive)
from extractors.zero_shot.training import choose_gamma, generalised_scores, macro_prf

D = 16


def feats(n: int, images: int = 0, seed: int = 0) -> SampleFeatures:
    g = torch.Generator().manual_seed(seed)
    has = torch.zeros(n, dtype=torch.bool)
    has[:images] = True
    return SampleFeatures(torch.randn(n, 3, D, generator=g), torch.randn(n, D, generator=g) * has[:, None], has)


def small(**kw) -> ScorerConfig:
    return ScorerConfig(text_dim=D, vision_dim=D, token_dim=8, **kw)


def test_class_phrase_reads_argument_types_and_appends_a_description():
    assert class_phrase("/per/org/member_of") == "person member of organization"
    assert class_phrase("/misc/loc/held_on", "where an event is held") == "thing held on location: where an event is held"
    assert class_phrase("BAND_MEMBER") == "band member"
    assert class_phrase("founded-by", "  ") == "founded by"


def test_an_untrained_scorer_ranks_exactly_as_proto():
    # the residual branches start at zero, so training starts from the frozen encoder's own similarity
    x, classes = feats(12), torch.randn(5, D)
    for switches in ({"vmoe": True, "contrastive": True}, {"vmoe": False, "contrastive": False}):
        scorer = ZeroShotScorer(small(**switches)).eval()
        assert torch.allclose(scorer.scores(x, classes), proto_scores(x, classes, "all"), atol=1e-5)


def test_vmoe_routes_each_token_and_samples_only_in_training():
    torch.manual_seed(0)
    moe = VariationalMoE(D, 8, experts=3)
    x = torch.randn(4, 5, D)
    moe.eval()
    a, terms = moe(x)
    b, _ = moe(x)
    assert a.shape == (4, 5, 8) and torch.equal(a, b)  # the posterior mean at inference
    assert terms["kl"] > 0 and 0 < terms["token_entropy"] <= torch.log(torch.tensor(3.0)) + 1e-6
    moe.train()
    c, _ = moe(x)
    assert not torch.allclose(a, c)  # a sample from each expert's posterior in training


def test_margin_ranking_is_zero_only_when_gold_leads_by_the_margin():
    labels = torch.tensor([0, 1])
    clear = torch.tensor([[0.9, 0.1, 0.2], [0.0, 0.8, 0.5]])
    assert margin_ranking(clear, labels, 0.2) == 0
    close = torch.tensor([[0.3, 0.2, 0.2], [0.0, 0.8, 0.5]])
    assert torch.isclose(margin_ranking(close, labels, 0.2), torch.tensor((0.1 + 0.1) / 4))


def test_supervised_contrastive_prefers_class_clusters():
    labels = torch.tensor([0, 0, 1, 1])
    clustered = F.normalize(torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]]), dim=-1)
    mixed = clustered[[0, 2, 1, 3]]
    assert supervised_contrastive(clustered, labels, 0.1) < supervised_contrastive(mixed, labels, 0.1)
    assert supervised_contrastive(clustered, torch.tensor([0, 1, 2, 3]), 0.1) == 0  # no positives


def test_image_text_alignment_acts_only_on_posts_with_images_and_trains_the_vision_input():
    x = feats(6)
    scorer = ZeroShotScorer(small(contrastive=True, vmoe=False))
    _, terms = scorer.encode_samples(x)
    assert image_text_alignment(terms["text_token"], terms["vision_token"], x.has_image, 0.1) == 0
    x = feats(6, images=4)
    _, terms = scorer.encode_samples(x)
    loss = image_text_alignment(terms["text_token"], terms["vision_token"], x.has_image, 0.1)
    loss.backward()
    assert loss > 0 and scorer.vision_in.weight.grad.abs().sum() > 0


def test_a_scorer_learns_seen_classes_and_its_loss_has_the_switched_parts():
    torch.manual_seed(0)
    centers = torch.randn(3, D)
    labels = torch.arange(3).repeat(20)
    x = SampleFeatures(centers[labels, None, :].repeat(1, 3, 1) + 0.3 * torch.randn(60, 3, D),
                       torch.zeros(60, D), torch.zeros(60, dtype=torch.bool))
    class_vectors = torch.randn(3, D)  # unrelated to the centres: only training can link them
    scorer = ZeroShotScorer(small(vmoe=True, contrastive=True, dropout=0.0))
    opt = torch.optim.Adam(scorer.parameters(), lr=1e-2)
    _, parts = scorer.loss(x, labels, class_vectors)
    assert set(parts) == {"ranking", "kl", "entropy", "contrastive"}
    before = macro_prf(labels.tolist(), scorer.eval().scores(x, class_vectors).argmax(1).tolist(), range(3))["f1"]
    scorer.train()
    for _ in range(150):
        loss, _ = scorer.loss(x, labels, class_vectors)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = macro_prf(labels.tolist(), scorer.eval().scores(x, class_vectors).argmax(1).tolist(), range(3))["f1"]
    assert after > 95 and after > before


def test_macro_prf_averages_over_the_given_classes():
    m = macro_prf([0, 0, 1, 1], [0, 1, 1, 1], classes=[0, 1])
    # class 0: p 1, r .5, f 2/3; class 1: p 2/3, r 1, f .8
    assert abs(m["f1"] - 100 * (2 / 3 + 0.8) / 2) < 1e-9 and m["accuracy"] == 75.0


def test_calibrated_stacking_lets_unseen_classes_be_predicted():
    # seen classes 0, 1 score a constant 0.3 above what they should: unseen 2, 3 are never predicted
    labels = [0, 1, 2, 3]
    scores = torch.tensor([[0.9, 0.3, 0.1, 0.1], [0.3, 0.9, 0.1, 0.1], [0.7, 0.3, 0.6, 0.1], [0.3, 0.7, 0.1, 0.6]])
    raw = generalised_scores(scores, labels, [0, 1], [2, 3], 0.0)
    assert raw["unseen_f1"] == 0 and raw["hmean"] == 0
    gamma = choose_gamma(scores, labels, [0, 1], [2, 3])
    fixed = generalised_scores(scores, labels, [0, 1], [2, 3], gamma)
    assert 0.05 < gamma < 0.6 and fixed["hmean"] == 100.0


def test_a_saved_scorer_loads_with_the_same_scores(tmp_path):
    torch.manual_seed(0)
    scorer = ZeroShotScorer(small())
    for p in scorer.parameters():  # away from the identity start, so the weights matter
        p.data.add_(0.05 * torch.randn_like(p))
    model = ZeroShotModel(scorer, "zs-test", threshold=0.4, trained_on=["/per/per/peer"])
    model.save(tmp_path / "zs")
    loaded = ZeroShotModel.load(tmp_path / "zs")
    x, classes = feats(7, images=2), torch.randn(4, D)
    # float16 on disk: equal to half precision
    assert torch.allclose(loaded.scorer.scores(x, classes), scorer.eval().scores(x, classes), atol=5e-3)
    assert (loaded.version, loaded.threshold, loaded.trained_on) == ("zs-test", 0.4, ["/per/per/peer"])
    assert ZeroShotClass("/per/org/founded_by", "who founded it").phrase == "person founded by organization: who founded it"


class _Inner(Extractor):
    name, version = "inner", "1"

    def __init__(self) -> None:
        self.rels = {"MEMBER_OF"}

    def extract(self, batch):
        return [Extraction(item.post_id) for item in batch]

    def known_types(self):
        return {"PER"}, set(self.rels)


def test_the_labeller_rereads_confirmed_classes_on_its_schedule_and_drops_learnt_ones():
    now = [0.0]
    listed = [[ZeroShotClass("/per/org/founded_by")]]
    calls = []

    def classes():
        calls.append(now[0])
        if isinstance(listed[0], Exception):
            raise listed[0]
        return listed[0]

    model = ZeroShotModel(ZeroShotScorer(small()), "zs-test", threshold=0.3)
    inner = _Inner()
    zs = ZeroShotExtractor(inner, model, classes, refresh_s=30, clock=lambda: now[0])
    assert [c.name for c in zs.active_classes()] == ["/per/org/founded_by"] and zs.threshold == 0.3
    assert zs.known_types() == ({"PER"}, {"MEMBER_OF", "FOUNDED_BY"}) and zs.model_version == "inner@1"
    now[0] = 10.0
    assert zs.refresh() is False and calls == [0.0]  # not due yet
    listed[0] = [ZeroShotClass("/per/org/founded_by"), ZeroShotClass("/per/loc/visited")]
    now[0] = 31.0
    assert zs.refresh() is True and len(zs.active_classes()) == 2  # a newly confirmed class
    listed[0] = RuntimeError("graph down")
    now[0] = 62.0
    assert zs.refresh() is False and len(zs.active_classes()) == 2  # a failed read keeps the last list
    inner.rels.add("FOUNDED_BY")  # an update that knows it was promoted
    assert [c.name for c in zs.active_classes()] == ["/per/loc/visited"]
    out = zs.extract([ExtractionInput("p1", "Ann founded Acme")])  # no uncertain pairs: nothing to label
    assert out[0].relations == []


class _WordEncoder:
    """Stands in for the frozen encoder: a span reads as e0 when it names a widget, else e1; a class
    phrase as e0 when it is about products. Sentence tokens are zero, so scores are the span's."""

    def samples(self, examples, images=None):
        text = torch.zeros(len(examples), 3, D)
        for i, ex in enumerate(examples):
            span = " ".join(ex.tokens[ex.head[0]:ex.head[1]]).lower()
            text[i, 1:, 0 if "widget" in span else 1] = 1.0
            text[i, 1:, 3] = 0.5  # a widget span scores 1 / sqrt(1.25) = 0.89 against "product"
        return SampleFeatures(text, torch.zeros(len(examples), D), torch.zeros(len(examples), dtype=torch.bool))

    def classes(self, phrases):
        out = torch.zeros(len(phrases), D)
        for i, p in enumerate(phrases):
            out[i, 0 if "product" in p else 2] = 1.0
        return out


class _Tagger(Extractor):
    """One post: Ann (sure, PER) and Widget (unsure, tagged ORG), related MEMBER_OF."""

    name, version = "tagger", "1"

    def extract(self, batch):
        from extractors.base import EntityMention, RelationMention, UncertainPair, UncertainSpan

        out = []
        for item in batch:
            ann = EntityMention("Ann", "PER", 0, 3, 0.95)
            widget = EntityMention("Widget", "ORG", item.text.index("Widget"), item.text.index("Widget") + 6, 0.2)
            out.append(Extraction(item.post_id, [ann, widget],
                                  [RelationMention(ann, widget, "MEMBER_OF", 0.8, "/per/org/member_of")],
                                  [UncertainSpan(widget, 0.2), UncertainPair(widget, ann, "None", 0.4)]))
        return out

    def known_types(self):
        return {"PER", "ORG"}, {"MEMBER_OF"}


def test_a_confirmed_type_retypes_unsure_spans_and_their_relations_follow():
    model = ZeroShotModel(ZeroShotScorer(small()), "zs-test", threshold=0.3, encoder=_WordEncoder())
    types = [ZeroShotClass("PRODUCT", "a commercial product")]
    zs = ZeroShotExtractor(_Tagger(), model, lambda: [], types=lambda: types, type_threshold=0.5)
    assert [c.name for c in zs.active_types()] == ["PRODUCT"] and "PRODUCT" in zs.known_types()[0]
    (ext,) = zs.extract([ExtractionInput("p1", "Ann loves her new Widget")])
    by_text = {e.text: e for e in ext.entities}
    assert by_text["Ann"].type == "PER" and not by_text["Ann"].zero_shot  # sure spans are never rescored
    widget = by_text["Widget"]
    assert widget.type == "PRODUCT" and widget.zero_shot and widget.source_version == "zero-shot@zs-test"
    assert abs(widget.confidence - 1 / 1.25 ** 0.5) < 1e-4
    assert ext.relations == []  # MEMBER_OF implies PER -> ORG, which no longer holds
    pair = next(u for u in ext.uncertain if hasattr(u, "head"))
    assert pair.head == widget  # the pairs follow the span (the relation labeller sees the new type)
    # below the type threshold nothing changes
    strict = ZeroShotExtractor(_Tagger(), model, lambda: [], types=lambda: types, type_threshold=0.99)
    (ext,) = strict.extract([ExtractionInput("p1", "Ann loves her new Widget")])
    assert {e.type for e in ext.entities} == {"PER", "ORG"} and len(ext.relations) == 1


def test_a_zero_shot_label_is_a_suggestion_unless_the_scorer_is_precise_enough():
    from extractors.base import UncertainPair
    from pipeline.runtime import writes_zero_shot_facts

    model = ZeroShotModel(ZeroShotScorer(small()), "zs-test", threshold=0.3, encoder=_WordEncoder())
    classes = [ZeroShotClass("/org/per/made_by", "a product made by a person")]

    def label(write_facts):
        zs = ZeroShotExtractor(_Tagger(), model, lambda: classes, threshold=0.5, write_facts=write_facts)
        (ext,) = zs.extract([ExtractionInput("p1", "Ann loves her new Widget")])
        return ext

    # the unsure (Widget, Ann) pair scores 0.89 against the product class: above 0.5
    written = label(True)
    assert [r.type for r in written.relations if r.zero_shot] == ["MADE_BY"]
    suggested = label(False)
    assert not any(r.zero_shot for r in suggested.relations)  # no fact in the graph
    (pair,) = [u for u in suggested.uncertain if isinstance(u, UncertainPair)]
    assert pair.label == "/org/per/made_by" and abs(pair.confidence - 1 / 1.25 ** 0.5) < 1e-4  # a suggestion
    # auto: write only where the held-out precision at the scorer's own threshold reaches the target
    model.held_out_precision = 0.11
    assert writes_zero_shot_facts("auto", model, None, 0.9) is False
    model.held_out_precision = 0.93
    assert writes_zero_shot_facts("auto", model, None, 0.9) is True
    assert writes_zero_shot_facts("auto", model, 0.1, 0.9) is False  # another threshold: unmeasured
    assert writes_zero_shot_facts("never", model, None, 0.9) is False
    model.held_out_precision = None
    assert writes_zero_shot_facts("always", model, None, 0.9) is True
    assert writes_zero_shot_facts("auto", model, None, 0.9) is False


def test_the_relation_threshold_decides_which_unsure_pairs_are_labelled():
    """Bug once let through: the labeller ignored its threshold (the other tests label above it only, or
    at -1). The unsure (Widget, Ann) pair scores 1 / sqrt(1.25) = 0.894 against the product class,
    computed by hand from the stand-in encoder, so a threshold on either side of it decides."""
    from extractors.base import UncertainPair

    model = ZeroShotModel(ZeroShotScorer(small()), "zs-test", threshold=0.3, encoder=_WordEncoder())
    classes = [ZeroShotClass("/org/per/made_by", "a product made by a person")]

    def label(threshold, write_facts=True):
        zs = ZeroShotExtractor(_Tagger(), model, lambda: classes, threshold=threshold, write_facts=write_facts)
        (ext,) = zs.extract([ExtractionInput("p1", "Ann loves her new Widget")])
        return ext

    assert [r.type for r in label(0.89).relations if r.zero_shot] == ["MADE_BY"]
    above = label(0.90)
    assert not any(r.zero_shot for r in above.relations)
    (pair,) = [u for u in above.uncertain if isinstance(u, UncertainPair)]
    assert pair.label == "None"  # not even suggested: the pair stays as the tagger left it
    (pair,) = [u for u in label(0.90, write_facts=False).uncertain if isinstance(u, UncertainPair)]
    assert pair.label == "None"
    # None: the scorer's own threshold (0.3 here)
    assert [r.type for r in label(None).relations if r.zero_shot] == ["MADE_BY"]
