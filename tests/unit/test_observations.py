"""Uncertain observations: what the extractor records, how the sink partitions and reads them back."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from extractors.base import EntityMention, Extraction, ExtractionInput, UncertainPair, UncertainSpan
from extractors.multimodal import MultimodalExtractor, _Models
from pipeline.observations import PAIR, SPAN, ObservationSink, observations_of, read_observations

TEXT = "Bill Gates founded Microsoft in Seattle"
BILL = EntityMention("Bill Gates", "PER", 0, 10, 0.9)
MSFT = EntityMention("Microsoft", "ORG", 19, 28, 0.3)
SEA = EntityMention("Seattle", "LOC", 32, 39, 0.95)
T0 = datetime(2026, 3, 1, 22, 0, tzinfo=timezone.utc)


def extraction() -> Extraction:
    return Extraction("p1", [BILL, MSFT, SEA], [],
                      [UncertainPair(BILL, MSFT, "None", 0.7), UncertainSpan(MSFT, 0.3)])


def test_observations_carry_word_spans_labels_and_all_entities():
    obs = observations_of("p1", "2026-03-01T10:00:00.000000Z", TEXT, extraction(), "m@1", "2026-03-01T22:00:00.000000Z")
    pair, span = obs
    assert pair.kind == PAIR and span.kind == SPAN
    assert pair.tokens == ("Bill", "Gates", "founded", "Microsoft", "in", "Seattle")
    assert (pair.head, pair.tail) == ((0, 2), (3, 4))
    assert (pair.head_text, pair.tail_text, pair.label, pair.confidence) == ("Bill Gates", "Microsoft", "None", 0.7)
    assert span.head == (3, 4) and span.tail is None and span.label == "ORG" and span.confidence == 0.3
    assert pair.entities == ((0, 2, "PER"), (3, 4, "ORG"), (5, 6, "LOC"))
    assert pair.key != span.key


def _obs(post_id: str, observed: datetime):
    return observations_of(post_id, "2026-03-01T10:00:00.000000Z", TEXT, extraction(), "m@1",
                           observed.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))


def test_sink_partitions_by_day_and_reads_a_window_back(tmp_path):
    times = iter([T0, T0 + timedelta(hours=3)])  # 22:00 on March 1st, 01:00 on March 2nd
    sink = ObservationSink(tmp_path, clock=lambda: next(times))
    sink.send(_obs("p1", datetime.fromisoformat(sink.now_iso().replace("Z", "+00:00"))))
    sink.flush()
    sink.send(_obs("p2", datetime.fromisoformat(sink.now_iso().replace("Z", "+00:00"))))
    sink.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["2026-03-01.jsonl", "2026-03-02.jsonl"]
    assert sink.written == 4

    both = read_observations(tmp_path, T0 - timedelta(hours=1), T0 + timedelta(hours=4))
    assert [o.post_id for o in both] == ["p1", "p1", "p2", "p2"]
    # [start, end): the window ending at the second post's time excludes it
    first = read_observations(tmp_path, T0, T0 + timedelta(hours=3))
    assert {o.post_id for o in first} == {"p1"}
    second = read_observations(tmp_path, T0 + timedelta(hours=1), T0 + timedelta(days=2))
    assert {o.post_id for o in second} == {"p2"}


def test_redelivered_batches_and_torn_lines_are_read_once(tmp_path):
    sink = ObservationSink(tmp_path, clock=lambda: T0)
    for _ in range(2):  # a crash after the flush but before the commit re-processes the batch
        sink.send(_obs("p1", T0))
        sink.flush()
    with open(tmp_path / "2026-03-01.jsonl", "a") as fh:
        fh.write('{"kind": "pair", "post_id": "p9", "tok')  # a crash mid-write
    lines = (tmp_path / "2026-03-01.jsonl").read_text().splitlines()
    assert len(lines) == 5 and json.loads(lines[0])["post_id"] == "p1"
    got = read_observations(tmp_path, T0 - timedelta(hours=1), T0 + timedelta(hours=1))
    assert len(got) == 2 and {o.kind for o in got} == {PAIR, SPAN}


def _stub_extractor(relate, span_threshold=0.5, cap=8) -> MultimodalExtractor:
    """The real extraction logic with the two networks replaced by fixed outputs."""
    from types import SimpleNamespace

    import numpy as np

    ex = MultimodalExtractor.__new__(MultimodalExtractor)
    ex.threshold, ex.span_threshold, ex.max_uncertain, ex.batch_size = 0.5, span_threshold, cap, 32
    ex.device, ex.precision = "cpu", "auto"
    ex.normalise, ex.schema_rules, ex.target_precision, ex.keep_representations = True, True, 0.9, False
    ex._fact_head = ex._calibrator = ex._decider_for = None  # uncalibrated: the softmax against the threshold
    ex._models = _Models(object(), None, SimpleNamespace(labels=STUB_LABELS), None, "a+b")
    # words: Bill Gates founded Microsoft in Seattle -> PER, ORG (unsure), LOC
    ex._tag = lambda m, sentences, *a: ([["B-PER", "I-PER", "O", "B-ORG", "O", "B-LOC"]],
                                        [[0.9, 0.8, 1.0, 0.3, 1.0, 0.95]])
    ex._relate = lambda m, examples, refs, *a: (_softmax_rows(relate(refs)), np.zeros((len(refs), 3)))
    return ex


STUB_LABELS = ["None", "/per/org/member_of", "/per/loc/place_of_birth", "/org/loc/locate_at"]


def _softmax_rows(picked):
    """A probability row per (label, probability): the rest shared evenly by the other labels."""
    rows = []
    for label, p in picked:
        rest = (1 - p) / (len(STUB_LABELS) - 1)
        rows.append([p if lab == label else rest for lab in STUB_LABELS])
    return rows


def test_multimodal_extractor_keeps_none_and_low_confidence_pairs_and_unsure_spans():
    def relate(refs):  # ordered pairs: (PER,ORG) (PER,LOC) (ORG,PER) (ORG,LOC) (LOC,PER) (LOC,ORG)
        labels = [("/per/org/member_of", 0.9), ("/per/loc/place_of_birth", 0.4), ("None", 0.8),
                  ("/org/loc/locate_at", 0.7), ("None", 0.55), ("None", 0.99)]
        return labels[:len(refs)]

    [ext] = _stub_extractor(relate).extract([ExtractionInput("p1", TEXT)])
    assert [(r.head.text, r.label) for r in ext.relations] == [("Bill Gates", "/per/org/member_of"),
                                                                ("Microsoft", "/org/loc/locate_at")]
    pairs = [u for u in ext.uncertain if isinstance(u, UncertainPair)]
    spans = [u for u in ext.uncertain if isinstance(u, UncertainSpan)]
    assert [(p.head.text, p.tail.text, p.label, p.confidence) for p in pairs] == [
        ("Bill Gates", "Seattle", "/per/loc/place_of_birth", 0.4), ("Seattle", "Bill Gates", "None", 0.55),
        ("Microsoft", "Bill Gates", "None", 0.8), ("Seattle", "Microsoft", "None", 0.99)]
    assert [(s.mention.text, s.confidence) for s in spans] == [("Microsoft", 0.3)]
    assert len(ext.entities) == 3  # entities are produced as before


def test_the_per_post_cap_keeps_the_least_confident_and_zero_records_nothing():
    relate = lambda refs: [("None", 0.9 - 0.1 * i) for i in range(len(refs))]
    [ext] = _stub_extractor(relate, cap=2).extract([ExtractionInput("p1", TEXT)])
    assert [round(u.confidence, 2) for u in ext.uncertain if isinstance(u, UncertainPair)] == [0.4, 0.5]
    [ext] = _stub_extractor(relate, cap=0).extract([ExtractionInput("p1", TEXT)])
    assert ext.uncertain == [] and len(ext.entities) == 3


def test_given_entities_are_never_unsure_spans():
    ents = (EntityMention("Bill Gates", "PER", 0, 10, 0.1), EntityMention("Seattle", "LOC", 32, 39, 0.1))
    [ext] = _stub_extractor(lambda refs: [("None", 0.9)] * len(refs)).extract([ExtractionInput("p1", TEXT, None, ents)])
    assert not [u for u in ext.uncertain if isinstance(u, UncertainSpan)]
    assert len([u for u in ext.uncertain if isinstance(u, UncertainPair)]) == 2
