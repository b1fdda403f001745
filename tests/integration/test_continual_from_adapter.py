"""A continual update on a fresh install starts from the shipped LoRA version and saves an adapter version.

A tiny stand-in for the shipped MRE version (real MiniLM with adapters, the seeded
random ViT, task-0 relations of IMRE sep10) replaces ``extractors/shipped`` so the
update is quick; the code path is the one a fresh install with ``extractor.kind:
auto`` takes.
"""
from __future__ import annotations

import pytest
import torch
from helpers import append_jsonl, dag_config, imre_posts

from extractors.adapters import LoraSpec, add_lora, has_lora
from extractors.encoders import RANDOM_VISION, EncoderSpec, build_encoder
from extractors.store import ModelStore
from extractors.kinds import get_kind

TASK0 = ["None", "/per/per/peer", "/per/misc/religion"]
TASK1 = {"/per/org/member_of", "/per/per/charges"}


@pytest.fixture
def fake_shipped(tmp_path, monkeypatch):
    from extractors import store as store_module

    torch.manual_seed(0)
    spec = EncoderSpec(vision=RANDOM_VISION)
    encoder, tokenizer = build_encoder(spec)
    model = get_kind("mre").task(tokenizer).build(encoder, TASK0)
    add_lora(model.encoder, LoraSpec(r=8))
    shipped = ModelStore(tmp_path / "shipped")
    version = shipped.save("mre", model, spec, metrics={"val": {"f1": 40.0}}, fingerprint="a" * 64,
                           save_dtype="float16")
    shipped.promote("mre", version)
    monkeypatch.setattr(store_module, "SHIPPED_DIR", tmp_path / "shipped")
    return version


def test_a_continual_update_from_the_shipped_adapter_version_saves_an_adapter_version(short_tmp, fake_shipped):
    from continual.update import run_update
    from pipeline.config import load_config
    from pipeline.jobs.novelty import detect_novelty

    append_jsonl(short_tmp / "labelled.jsonl", imre_posts(1, 60, relations=TASK1 | {"None"}))
    cfg = load_config(dag_config(short_tmp, extractor={"kind": "auto"}, source={"follow": False},
                                 continual={"epochs": 1, "lr": 5e-4, "min_examples": 5, "gate_min_new_f1": 0.0,
                                            "gate_max_old_drop": 100.0}))
    (task,) = detect_novelty(cfg).as_dict()["tasks"]
    assert set(task["classes"]) == TASK1
    report = run_update(cfg, task["id"])
    assert report["status"] == "promoted", report
    assert report["base_version"] == fake_shipped  # started from the shipped version, not from scratch
    models = ModelStore(short_tmp / "models", shipped=True)
    version = report["version"]
    assert models.current_version("mre") == version and models.origin("mre", version) == "continual"
    cfg_v = models.config("mre", version)
    assert cfg_v["format"] == "adapter" and cfg_v["parent"] == fake_shipped and cfg_v["peft"]["r"] == 8
    model, _, _ = models.load("mre", version)
    assert has_lora(model) and set(model.labels) == set(TASK0) | TASK1
    assert (short_tmp / "models" / "mre" / "versions" / version / "weights.safetensors").stat().st_size < 15e6
    # published with what the next update resumes from, and scored per relation as `mkg evaluate` does
    folder = models.version_dir("mre", version)
    assert (folder / "memory.json").exists() and (folder / "continual.json").exists()
    per_class = report["per_relation"]
    assert per_class == models.metrics("mre", version)["per_relation"] and set(per_class) <= set(TASK0[1:]) | TASK1
    assert isinstance(report["per_relation_before"], dict)  # the shipped version, scored on the same examples
    correct = sum(s["recall"] * s["support"] / 100 for s in per_class.values())
    predicted = sum(s["predicted"] for s in per_class.values())
    actual = sum(s["support"] for s in per_class.values())
    p, r = 100 * correct / max(predicted, 1), 100 * correct / max(actual, 1)
    micro_f1 = 2 * p * r / (p + r) if p + r else 0.0
    torch.testing.assert_close(micro_f1, report["A"], rtol=1e-4, atol=1e-4)  # the classes add up to the headline
