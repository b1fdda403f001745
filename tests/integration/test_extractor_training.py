"""Tiny but real training runs (real MiniLM, real DINOv2, real data, one epoch).

They check that the models learn (beat a majority-class baseline on held-out
data), that saved versions load back to the same predictions, and that the
pipeline's multimodal extractor hot-reloads a promoted version between batches.
"""
from __future__ import annotations

import pytest
from helpers import SHARED_DATA, unavailable, mnre_posts, write_jsonl

from extractors.datasets import read_conll, read_re
from extractors.metrics import majority_baseline_re, ner_entity_prf
from extractors.run import evaluate, train
from extractors.store import ModelStore
from extractors.training import TrainConfig

# Text-only rows: these runs check that the extractors learn; training with unrelated pictures
# (image_augment) and the gate it trains have their own tests (test_image_gate, test_training_resumes...).
TINY = TrainConfig(epochs=1, batch_size=16, image_augment=0.0, progress=False)
# MNRE is 63% "None": one epoch of a few hundred examples needs a class-balanced
# slice, small batches and a higher learning rate to leave the all-None solution.
TINY_MRE = TrainConfig(epochs=1, batch_size=8, lr=1e-4, head_lr=3e-3, image_augment=0.0, progress=False)


TINY_RELATIONS = ("None", "/per/per/peer", "/per/org/member_of", "/loc/loc/contain", "/per/misc/present_in")


def tiny_mnre(folder, per_class: int):
    """Real MNRE lines of the four most frequent relations plus `None`, balanced
    (``per_class`` each for train, a quarter of that for val; test keeps every
    held-out line of these labels): a few hundred examples that one epoch can learn."""
    folder.mkdir()
    for split, n in (("train", per_class), ("val", per_class // 4), ("test", None)):
        lines = (SHARED_DATA / "mnre" / f"mnre_{split}.txt").read_text().splitlines()
        keep = []
        for label in TINY_RELATIONS:
            mine = [l for l in lines if l.rstrip().endswith(f"'relation': '{label}'}}")]
            keep += mine[:n] if n else mine
        (folder / f"mnre_{split}.txt").write_text("\n".join(keep) + "\n")
    return folder


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory):
    if not (SHARED_DATA / "mnre").exists():
        unavailable(f"real data missing: {SHARED_DATA}")
    root = tmp_path_factory.mktemp("models")
    data = tiny_mnre(tmp_path_factory.mktemp("data") / "mnre", 80)
    mre_version, _ = train("mre", data, root, TINY_MRE, promote=True)
    mner_version, _ = train("mner", SHARED_DATA / "twitter2017", root, TINY, limit=400, promote=True)
    return root, mre_version, mner_version, data


def test_tiny_mre_beats_the_majority_baseline(tiny_store):
    root, version, _, data = tiny_store
    held_out = read_re(data / "mnre_test.txt")
    result = evaluate("mre", data / "mnre_test.txt", root)
    baseline = majority_baseline_re([e.relation for e in read_re(data / "mnre_train.txt")],
                                    [e.relation for e in held_out])
    assert result["version"] == version and result["examples"] == len(held_out) > 200
    assert result["f1"] > baseline["f1"] + 10, (result, baseline)


def test_tiny_mner_beats_the_majority_baseline(tiny_store):
    root, _, _, _ = tiny_store
    held_out = read_conll(SHARED_DATA / "twitter2017" / "test.txt")[:300]
    result = evaluate("mner", SHARED_DATA / "twitter2017" / "test.txt", root, limit=300)
    majority = ner_entity_prf([e.tags for e in held_out], [["O"] * len(e.tokens) for e in held_out])
    assert majority["f1"] == 0.0
    assert result["f1"] > 20, result


def test_saved_versions_reload_to_the_same_predictions(tiny_store):
    root, version, _, data = tiny_store
    store = ModelStore(root)
    examples = read_re(SHARED_DATA / "mnre" / "mnre_val.txt")[:50]
    a, task, _ = store.load("mre", version)
    b, _, cfg = store.load("mre")
    assert cfg["version"] == version and cfg["encoder"]["text"] == "minilm"
    assert task.predict(a, examples) == task.predict(b, examples)
    assert (root / "mre" / "versions" / version / "weights.safetensors").exists()
    assert store.metrics("mre", version)["train_examples"] == 400 and cfg["labels"][0] == "None"
    assert sorted(cfg["labels"]) == sorted(TINY_RELATIONS)


def test_worker_hot_reloads_a_promoted_model(tiny_store, short_tmp, embedded_store):
    """Promote a new version while a worker runs: later batches use it, no post is lost or repeated."""
    from extractors.multimodal import MultimodalExtractor
    from pipeline.dead_letter import FileDeadLetterSink
    from pipeline.sources.files import FileSource
    from pipeline.worker import Worker

    root, mre_version, mner_version, _ = tiny_store
    store = ModelStore(root)
    posts = mnre_posts(60)
    source = FileSource([write_jsonl(short_tmp / "p.jsonl", posts)], checkpoint=short_tmp / "ckpt.json")
    extractor = MultimodalExtractor(root)
    worker = Worker(source, extractor, embedded_store, FileDeadLetterSink(short_tmp / "dead.jsonl"), batch_size=20)
    worker.run(max_records=20)
    first = extractor.model_version
    model, _, _ = store.load("mner", mner_version)
    new_version = store.save("mner", model, extractor_spec(store, mner_version), metrics={"note": "re-promoted"},
                             fingerprint="f" * 64)
    store.promote("mner", new_version)
    worker.run()
    assert extractor.model_version != first and new_version in extractor.model_version
    rows = embedded_store.query("MATCH (p:Post)-[m:MENTIONS]->() RETURN p.id, m.model_version").rows
    versions = {pid: mv for pid, mv in rows}
    early = {p["id"] for p in posts[:20]}
    assert all(first == mv for pid, mv in versions.items() if pid in early)
    assert all(new_version in mv for pid, mv in versions.items() if pid not in early)
    assert embedded_store.query("MATCH (p:Post) RETURN count(p)").rows == [[60]]
    assert worker.metrics.records_received == 60 and worker.metrics.dead_lettered == 0


def extractor_spec(store, version):
    from extractors.encoders import EncoderSpec

    return EncoderSpec(**store.config("mner", version)["encoder"])


def test_posts_with_and_without_images_are_both_extracted(tiny_store):
    from PIL import Image, ImageDraw

    from extractors.base import ExtractionInput
    from extractors.multimodal import MultimodalExtractor

    root, _, _, _ = tiny_store
    img = Image.new("RGB", (300, 200), (20, 90, 160))
    ImageDraw.Draw(img).rectangle((50, 50, 150, 150), fill=(250, 250, 0))
    text = "Barack Obama and Michelle Obama visited the White House in Washington"
    extractor = MultimodalExtractor(root)
    with_image, without = extractor.extract([ExtractionInput("a", text, img), ExtractionInput("b", text, None)])
    alone = extractor.extract([ExtractionInput("b", text, None)])[0]
    assert with_image.post_id == "a" and without.post_id == "b"
    # the post without an image is unaffected by its batch-mate's image
    assert [(e.text, e.type) for e in without.entities] == [(e.text, e.type) for e in alone.entities]
    for ext in (with_image, without):
        for e in ext.entities:
            assert text[e.start:e.end] == e.text and 0.0 <= e.confidence <= 1.0


def test_training_resumes_from_its_checkpoint(tmp_path):
    """Two epochs in one go == one epoch, stop, resume for the second."""
    import torch

    from extractors.encoders import EncoderSpec, RANDOM_VISION, build_encoder
    from extractors.kinds import get_kind
    from extractors.training import fit

    data = read_conll(SHARED_DATA / "twitter2017" / "train.txt")[:48]
    val = read_conll(SHARED_DATA / "twitter2017" / "valid.txt")[:16]

    def fresh():
        torch.manual_seed(0)
        encoder, tok = build_encoder(EncoderSpec(vision=RANDOM_VISION))
        task = get_kind("mner").task(tok)
        return task, task.build(encoder, task.labels_from(data))

    cfg = TrainConfig(epochs=2, batch_size=16, progress=False)
    task, straight = fresh()
    fit(task, straight, data, val, cfg)
    task, first = fresh()
    fit(task, first, data, val, TrainConfig(**{**cfg.__dict__, "epochs": 2}), checkpoint_dir=tmp_path,
        stop_after_epoch=1)
    task, resumed = fresh()
    result = fit(task, resumed, data, val, cfg, checkpoint_dir=tmp_path, resume=True)
    assert [h["epoch"] for h in result.history] == [1, 2]
    for (name, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items()):
        assert torch.allclose(a, b, atol=1e-5), name
