import pytest

from extractors.datasets import read_conll, read_re, relation_labels
from extractors.features import HEAD_END, HEAD_START, TAIL_END, TAIL_START, encode_ner, mark_entities
from extractors.metrics import majority_baseline_re, ner_entity_prf, re_micro_prf
from extractors.multimodal import bio_spans, words_with_offsets


def test_markers_wrap_head_and_tail():
    tokens = ["Obama", "visited", "New", "York"]
    assert mark_entities(tokens, (0, 1), (2, 4)) == [HEAD_START, "Obama", HEAD_END, "visited", TAIL_START, "New",
                                                      "York", TAIL_END]
    assert mark_entities(tokens, (2, 4), (0, 1))[0] == TAIL_START


def test_re_micro_f1_excludes_none():
    gold = ["None", "a", "b", "a"]
    pred = ["a", "a", "None", "a"]
    m = re_micro_prf(gold, pred)
    assert m["precision"] == pytest.approx(200 / 3) and m["recall"] == pytest.approx(200 / 3)
    assert re_micro_prf(["None"], ["None"])["f1"] == 0.0
    assert majority_baseline_re(["a", "a", "b", "None", "None", "None"], ["a", "b"])["precision"] == 50.0


def test_ner_entity_level():
    gold = [["B-PER", "I-PER", "O", "B-LOC"]]
    assert ner_entity_prf(gold, gold)["f1"] == 100.0
    half = ner_entity_prf(gold, [["B-PER", "O", "O", "B-LOC"]])  # partial span is wrong
    assert round(half["f1"], 2) == 50.0


def test_bio_spans_and_words():
    assert bio_spans(["B-PER", "I-PER", "O", "I-LOC", "B-ORG", "B-ORG"]) == [
        (0, 2, "PER"), (3, 4, "LOC"), (4, 5, "ORG"), (5, 6, "ORG")]
    words = words_with_offsets("RT @bob: Obama's visit to N.Y. #news https://t.co/x")
    assert [w for w, _, _ in words][:5] == ["RT", "@bob", ":", "Obama's", "visit"]
    assert all("RT @bob: Obama's visit to N.Y. #news https://t.co/x"[s:e] == w for w, s, e in words)


def test_first_subtoken_alignment():
    from extractors.encoders import load_text

    _, tok = load_text()
    sent = ["Obamacare", "\u200d", "rocks"]  # the joiner has no word piece
    b = encode_ner(tok, [sent], {"O": 0, "B-MISC": 1}, [["B-MISC", "O", "O"]])
    pieces = tok.convert_ids_to_tokens(b.input_ids[0])
    assert pieces[int(b.word_index[0, 0])] == tok.tokenize("Obamacare")[0]
    assert pieces[int(b.word_index[0, 2])] == "rocks"
    assert b.word_mask[0].tolist() == [True, True, True]  # contiguous for the CRF
    assert b.tags[0].tolist() == [1, 0, 0]


def test_readers_on_the_real_files():
    from helpers import SHARED_DATA

    re_ex = read_re(SHARED_DATA / "mnre" / "mnre_val.txt")
    assert len(re_ex) == 1624 and relation_labels(re_ex)[0] == "None"
    ner = read_conll(SHARED_DATA / "twitter2017" / "valid.txt")
    assert len(ner) == 723 and all(len(e.tokens) == len(e.tags) for e in ner)
    crlf = read_conll(SHARED_DATA / "imner" / "twitter2017" / "sep-PLOM" / "train_0.txt")
    assert crlf and not any(t.endswith("\r") for e in crlf for t in e.tags)
