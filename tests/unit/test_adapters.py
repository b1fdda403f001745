"""LoRA adapter versions: what they hold, how they load, the shipped fallback, `mkg models`.

Real MiniLM (from its PyPI package) with the seeded random ViT, tiny label sets: no training.
"""
from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors import safe_open

from extractors import adapters
from extractors.adapters import BaseEncoderMismatch, LoraSpec, add_lora, crop_zeros, has_lora, pad_to
from extractors.datasets import REExample
from extractors.encoders import RANDOM_VISION, EncoderSpec, build_encoder
from extractors.store import ModelStore
from extractors.kinds import get_kind
from extractors.training import TrainConfig, apply_freeze, make_optimizer

SPEC = EncoderSpec(vision=RANDOM_VISION)
RELATIONS = ["None", "/per/per/peer", "/per/org/member_of"]
TAGS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG"]
SENTENCES = [("Barack", "Obama", "met", "Angela", "Merkel", "in", "Berlin"),
             ("RT", "@nasa", ":", "Elon", "Musk", "joins", "SpaceX", "board")]
PAIRS = [REExample(SENTENCES[0], (0, 2), (3, 5), "None"), REExample(SENTENCES[1], (3, 5), (6, 7), "None")]


def lora_model(kind: str, seed: int = 0):
    torch.manual_seed(seed)
    encoder, tokenizer = build_encoder(SPEC)
    task = get_kind(kind).task(tokenizer)
    model = task.build(encoder, RELATIONS if kind == "mre" else TAGS)
    add_lora(model.encoder, LoraSpec(r=4))
    with torch.no_grad():  # as after training: adapters (B starts at zero), heads and the key bank moved
        for name, p in model.named_parameters():
            if p.requires_grad and "crf" not in name:
                p.add_(torch.randn_like(p) * 0.02)
    return model.eval(), task


def outputs(kind: str, model, task):
    from extractors.features import encode_ner, encode_re

    with torch.no_grad():
        if kind == "mre":
            return model(encode_re(task.tokenizer, PAIRS, None, task.max_len))
        return model(encode_ner(task.tokenizer, SENTENCES, None, None, task.max_len))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A store with one adapter version of each kind (float32), and the in-memory models."""
    root = tmp_path_factory.mktemp("models")
    store = ModelStore(root)
    out = {}
    for kind in ("mre", "mner"):
        model, task = lora_model(kind)
        version = store.save(kind, model, SPEC, metrics={"val": {"f1": 50.0}}, fingerprint=f"{kind}fp" + "0" * 58)
        store.promote(kind, version)
        out[kind] = (model, task, version)
    return root, out


def test_lora_trains_the_adapters_and_every_non_encoder_part_only():
    model, _ = lora_model("mner")
    apply_freeze(model, TrainConfig(freeze_vision="no"), any_image=True)  # LoRA keeps DINOv2 frozen anyway
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable if n.startswith("encoder.text."))
    assert not any(n.startswith("encoder.vision.") for n in trainable)
    assert {"encoder.keys.keys", "encoder.keys.text_bias", "encoder.no_image", "crf.transitions",
            "emissions.text.weight"} <= trainable
    lora = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)
    assert lora == 6 * 4 * (4 * (384 + 384) + 2 * (384 + 1536))  # r=4 on q, k, v, attention-out and both FFN layers
    opt = make_optimizer(model, TrainConfig(lr=1e-3, head_lr=2e-3))
    assert sum(p.numel() for g in opt.param_groups for p in g["params"]) == sum(
        p.numel() for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("kind", ["mre", "mner"])
def test_an_adapter_version_holds_only_what_training_changed_and_reloads_exactly(saved, kind):
    root, models = saved
    model, task, version = models[kind]
    store = ModelStore(root)
    folder = store.version_dir(kind, version)
    with safe_open(str(folder / "weights.safetensors"), "pt") as fh:
        keys = set(fh.keys())
    assert keys and not any(adapters.is_base_key(k) for k in keys)
    assert any("lora_A" in k for k in keys) and "encoder.keys.keys" in keys
    assert set(adapters.trained_state(model)) == keys
    cfg = store.config(kind, version)
    assert cfg["format"] == "adapter" and cfg["peft"]["r"] == 4
    assert cfg["base_encoders"]["text"]["name"] == "minilm" and len(cfg["base_encoders"]["text"]["sha256"]) == 64
    assert (folder / "weights.safetensors").stat().st_size < 15e6  # a full version is > 170 MB
    loaded, _, _ = store.load(kind, version)
    assert has_lora(loaded)
    assert torch.allclose(outputs(kind, model, task), outputs(kind, loaded, task), atol=1e-5)


def test_a_float16_version_is_half_the_size_and_scores_the_same(saved, tmp_path):
    root, models = saved
    model, task, version = models["mre"]
    store = ModelStore(tmp_path)
    half = store.save("mre", model, SPEC, metrics={}, fingerprint="1" * 64, save_dtype="float16")
    full = ModelStore(root).version_dir("mre", version) / "weights.safetensors"
    assert (store.version_dir("mre", half) / "weights.safetensors").stat().st_size < 0.6 * full.stat().st_size
    loaded, _, _ = store.load("mre", half)
    a, b = outputs("mre", model, task), outputs("mre", loaded, task)
    assert torch.allclose(a, b, atol=2e-2) and (a.argmax(-1) == b.argmax(-1)).all()


def test_merged_adapters_give_the_same_outputs(saved):
    root, models = saved
    model, task, version = models["mner"]
    loaded, _, _ = ModelStore(root).load("mner", version)
    query = loaded.encoder.text.encoder.layer[0].attention.self.query
    before = query.base_layer.weight.detach().clone()
    assert adapters.merge_lora(loaded) == 6 * 6 and query.merged
    assert not torch.allclose(query.base_layer.weight, before)  # the adapter's delta is in the base weight now
    assert torch.allclose(outputs("mner", model, task), outputs("mner", loaded, task), atol=1e-4)
    assert adapters.merge_lora(loaded) == 0  # merging twice would add the delta twice


def test_a_different_base_encoder_is_refused_with_a_clear_error(saved, monkeypatch):
    root, models = saved
    from extractors import encoders

    real = encoders.load_vision

    def other_vision(name):
        vit = real(name)
        with torch.no_grad():
            vit.blocks[0].attn.qkv.weight[0, 0] += 1e-3  # one weight differs: not the base it was trained on
        return vit

    monkeypatch.setattr(encoders, "load_vision", other_vision)
    with pytest.raises(BaseEncoderMismatch, match=r"trained on the vision encoder 'random-vit-small' with sha256"):
        ModelStore(root).load("mre", models["mre"][2])


def test_zero_borders_are_cropped_and_restored():
    t = torch.zeros(3, 6, 257, 257)
    t[:, :, :5, :4] = torch.randn(3, 6, 5, 4)
    c = crop_zeros(t)
    assert c.shape == (3, 6, 5, 4) and torch.equal(pad_to(c, list(t.shape)), t)
    dense = torch.randn(64, 128)
    assert crop_zeros(dense).shape == dense.shape


def _shipped(tmp_path, saved):
    """A shipped folder holding the saved versions, and an empty local store."""
    root, models = saved
    shipped = tmp_path / "shipped"
    shutil.copytree(root, shipped)
    return shipped, {k: v[2] for k, v in models.items()}


def test_an_empty_store_falls_back_to_the_shipped_versions_until_one_is_promoted(saved, tmp_path):
    shipped, versions = _shipped(tmp_path, saved)
    local = ModelStore(tmp_path / "local", shipped=shipped)
    assert ModelStore(tmp_path / "local").current_version("mre") is None  # no fallback unless asked
    assert local.current_version("mre") == versions["mre"] and local.own_current_version("mre") is None
    assert local.origin("mre", versions["mre"]) == "shipped"
    model, task, _ = local.load("mre")
    mine = local.save("mre", model, SPEC, metrics={}, fingerprint="2" * 64, parent=versions["mre"])
    assert local.current_version("mre") == versions["mre"]  # saved, not promoted: the shipped one stays
    local.promote("mre", mine)
    assert local.current_version("mre") == mine and local.origin("mre", mine) == "trained"
    assert local.current_version("mner") == versions["mner"]  # per kind
    assert local.config("mre", mine)["format"] == "adapter"
    assert (tmp_path / "local" / "mre" / "versions" / mine).exists()
    assert not (shipped / "mre" / "versions" / mine).exists()  # the package is never written


def test_auto_extractor_uses_the_shipped_versions_and_hot_reloads_a_promoted_one(saved, tmp_path, monkeypatch):
    from extractors import store as store_module
    from extractors.base import ExtractionInput
    from extractors.multimodal import MultimodalExtractor
    from pipeline.config import Config
    from pipeline.runtime import make_extractor

    shipped, versions = _shipped(tmp_path, saved)
    monkeypatch.setattr(store_module, "SHIPPED_DIR", shipped)
    cfg = Config.model_validate({"extractor": {"kind": "auto", "models_dir": str(tmp_path / "var-models")}})
    extractor = make_extractor(cfg)
    assert isinstance(extractor, MultimodalExtractor)
    assert extractor.version == f"{versions['mner']}+{versions['mre']}"
    assert extractor.extract([ExtractionInput("p1", "Barack Obama met Angela Merkel in Berlin", None)])
    local = ModelStore(tmp_path / "var-models", shipped=True)
    model, _, _ = local.load("mner")
    promoted = local.save("mner", model, SPEC, metrics={}, fingerprint="3" * 64)
    local.promote("mner", promoted)
    assert extractor.refresh() and extractor.version == f"{promoted}+{versions['mre']}"
    spacy_cfg = Config.model_validate({"extractor": {"kind": "multimodal", "models_dir": str(tmp_path / "none")}})
    with pytest.raises(FileNotFoundError):  # multimodal: this store only, no shipped fallback
        make_extractor(spacy_cfg)


def test_continual_update_starts_from_the_shipped_adapter_version(saved, tmp_path, monkeypatch):
    from continual.labelled import LabelledStore
    from continual.update import _start
    from extractors import store as store_module
    from pipeline.config import Config

    shipped, versions = _shipped(tmp_path, saved)
    monkeypatch.setattr(store_module, "SHIPPED_DIR", shipped)
    cfg = Config.model_validate({"extractor": {"kind": "auto", "models_dir": str(tmp_path / "m")}})
    models = ModelStore(tmp_path / "m", shipped=True)
    start = _start("mre", models, LabelledStore(tmp_path / "labelled"), cfg, "cpu")
    assert start.version == versions["mre"] and has_lora(start.model)
    assert start.old_classes == sorted(RELATIONS[1:])
    start.model.add_labels(["/per/per/couple"])
    new = models.save("mre", start.model, start.spec, metrics={}, fingerprint="4" * 64, parent=start.version)
    assert models.config("mre", new)["format"] == "adapter" and models.config("mre", new)["parent"] == versions["mre"]
    assert models.load("mre", new)[0].labels[-1] == "/per/per/couple"


def test_models_list_shows_origin_fingerprint_and_scores(saved, tmp_path, monkeypatch, capsys):
    from extractors import store as store_module
    from pipeline.cli import main

    shipped, versions = _shipped(tmp_path, saved)
    monkeypatch.setattr(store_module, "SHIPPED_DIR", shipped)
    local = ModelStore(tmp_path / "m", shipped=True)
    model, _, _ = local.load("mre")
    trained = local.save("mre", model, SPEC, metrics={"val": {"f1": 61.5}}, fingerprint="5" * 64)
    cont = local.save("mre", model, SPEC, metrics={}, fingerprint="6" * 64, parent=trained)
    (local.version_dir("mre", cont) / "continual.json").write_text("{}")
    local.promote("mre", cont)
    local.record_metrics("mre", trained, "test", {"f1": 60.25})
    assert main(["models", "list", "--models", str(tmp_path / "m"), "--json"]) == 0
    rows = {r["version"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows[versions["mre"]]["origin"] == "shipped" and not rows[versions["mre"]]["current"]
    assert rows[versions["mner"]]["origin"] == "shipped" and rows[versions["mner"]]["current"]
    assert rows[trained]["origin"] == "trained" and rows[trained]["val_f1"] == 61.5 and rows[trained]["test_f1"] == 60.25
    assert rows[cont]["origin"] == "continual" and rows[cont]["current"]
    assert rows[trained]["data_fingerprint"] == "5" * 64 and rows[trained]["format"] == "adapter"
    assert main(["models", "list", "--models", str(tmp_path / "m")]) == 0
    table = capsys.readouterr().out
    assert "shipped" in table and "continual" in table and "60.25" in table


def test_evaluate_reports_per_relation_scores_with_support_and_records_them(saved, tmp_path, capsys):
    from pipeline.cli import main

    root, models = saved
    store = tmp_path / "m"
    shutil.copytree(root, store)
    lines = [{"token": list(SENTENCES[0]), "h": {"name": "Barack Obama", "pos": [0, 2]},
              "t": {"name": "Angela Merkel", "pos": [3, 5]}, "img_id": "a.jpg", "relation": "/per/per/peer"},
             {"token": list(SENTENCES[1]), "h": {"name": "Elon Musk", "pos": [3, 5]},
              "t": {"name": "SpaceX", "pos": [6, 7]}, "img_id": "b.jpg", "relation": "None"}]
    data = tmp_path / "mnre_test.txt"
    data.write_text("\n".join(map(repr, lines)) + "\n")
    assert main(["evaluate", "mre", "--data", str(data), "--models", str(store), "--record"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["examples"] == 2 and result["per_relation"]["/per/per/peer"]["support"] == 1
    assert all({"precision", "recall", "f1", "support"} <= set(v) for v in result["per_relation"].values())
    assert ModelStore(store).metrics("mre", models["mre"][2])["test"]["f1"] == result["f1"]
