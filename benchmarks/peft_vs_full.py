"""LoRA adapter versions next to full fine-tuning: size, load time, training step time, posts/s.

    python -m benchmarks.peft_vs_full [--shipped extractors/shipped] [--steps 12] [--threads 1]

Everything measured here is measured for both kinds of version in the same
process, one right after the other, so a shared machine's load hits both alike:

- size on disk: the shipped adapter version, and the same model exported as a
  full version (the adapters merged into MiniLM, every weight saved, as
  ``mkg train`` without ``--peft`` saves);
- load time: ``ModelStore.load`` of each (the adapter version builds the
  pretrained encoders, checks their sha256 and injects the adapters);
- that both give the same predictions on the first 200 test examples;
- training time per step (batch 16, real training examples): LoRA (adapters +
  non-encoder parts) vs full fine-tuning of the same model;
- posts/s of the whole extractor (MNER + MRE, batch 32, text only) on the
  shipped adapter versions (merged at load) and on the full exports.
Test F1 of the shipped versions: ``benchmarks.shipped_models``; of full
fine-tuning: ``benchmarks.extractor_quality`` (issue #3).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from extractors.kinds import KINDS, get_kind

from .common import SHARED_DATA, write_result
from .shipped_models import folder_mb


def export_full(store, kind: str, version: str, dest) -> str:
    """The adapter version as a full version: adapters merged into the base weights, every weight saved."""
    from extractors.adapters import merge_lora
    from extractors.encoders import EncoderSpec, build_encoder

    model, task, cfg = store.load(kind, version)
    merge_lora(model)
    spec = EncoderSpec(**cfg["encoder"])
    encoder, _ = build_encoder(spec, pretrained=False, n_interact=cfg["n_interact"], max_text_len=cfg["max_text_len"],
                               shared_key_mode=cfg["shared_key_mode"])
    full = task.build(encoder, cfg["labels"], image_gate=cfg.get("image_gate", False))
    state = {k.replace(".base_layer.", "."): v for k, v in model.state_dict().items() if "lora_" not in k}
    full.load_state_dict(state)
    return dest.save(kind, full, spec, metrics=store.metrics(kind, version), fingerprint=cfg["data_fingerprint"],
                     train_config={**cfg["train_config"], "exported_from": version})


def timed_load(store, kind, version, repeats: int = 2) -> tuple[float, object, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = store.load(kind, version)
        best = min(best, time.perf_counter() - start)
    return best, out[0], out[1]


def step_seconds(kind: str, peft: str, steps: int) -> float:
    """Median seconds per training step (forward, backward, AdamW) after two warm-up steps."""
    import statistics

    import torch

    from extractors.adapters import LoraSpec, add_lora
    from extractors.encoders import EncoderSpec, build_encoder
    from extractors.run import read_examples, split_file
    from extractors.training import TrainConfig, apply_freeze, make_optimizer

    examples = read_examples(kind, split_file(SHARED_DATA / get_kind(kind).dataset, "train"), 16 * (steps + 2))
    torch.manual_seed(0)
    encoder, tokenizer = build_encoder(EncoderSpec())
    task = get_kind(kind).task(tokenizer)
    model = task.build(encoder, task.labels_from(read_examples(kind, split_file(SHARED_DATA / get_kind(kind).dataset, "train"))))
    cfg = TrainConfig(peft=peft)
    if peft == "lora":
        add_lora(model.encoder, LoraSpec())
    apply_freeze(model, cfg, any_image=False)
    optimizer = make_optimizer(model, cfg)
    model.train()
    times = []
    for batch in task.batches(model, examples, 16):
        start = time.perf_counter()
        model.loss(batch).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times[2:])


def posts_per_s(store_dir: str, shipped, n_posts: int = 256, batch: int = 32) -> dict:
    from extractors.base import ExtractionInput
    from extractors.multimodal import MultimodalExtractor

    from .common import mnre_posts

    start = time.perf_counter()
    extractor = MultimodalExtractor(store_dir, shipped=shipped, batch_size=batch)
    load_s = time.perf_counter() - start
    inputs = [ExtractionInput(p["id"], p["text"], None) for p in mnre_posts(n_posts, "test")]
    extractor.extract(inputs[:batch])
    start = time.perf_counter()
    out = []
    for i in range(0, len(inputs), batch):
        out += extractor.extract(inputs[i:i + batch])
    return {"posts_per_s": round(len(inputs) / (time.perf_counter() - start), 1), "load_s": round(load_s, 2),
            "facts": sum(len(e.relations) for e in out), "entities": sum(len(e.entities) for e in out)}


def main() -> None:
    import torch

    from extractors.run import read_examples, split_file
    from extractors.store import SHIPPED_DIR, ModelStore

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shipped", default=str(SHIPPED_DIR))
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    shipped = ModelStore(args.shipped)
    metrics: dict = {"threads": args.threads}
    with tempfile.TemporaryDirectory() as tmp:
        full_store = ModelStore(tmp)
        for kind in KINDS:
            version = shipped.current_version(kind)
            full_version = export_full(shipped, kind, version, full_store)
            full_store.promote(kind, full_version)
            adapter_load, adapter_model, task = timed_load(shipped, kind, version)
            full_load, full_model, _ = timed_load(full_store, kind, full_version)
            examples = read_examples(kind, split_file(SHARED_DATA / get_kind(kind).dataset, "test"), 200)
            with torch.inference_mode():
                same = bool(task.evaluate(adapter_model, examples)["f1"] == task.evaluate(full_model, examples)["f1"])
            metrics[kind] = {
                "adapter_version": version, "adapter_mb": folder_mb(shipped.version_dir(kind, version)),
                "full_mb": folder_mb(full_store.version_dir(kind, full_version)),
                "adapter_load_s": round(adapter_load, 2), "full_load_s": round(full_load, 2),
                "same_f1_on_200_test_examples": same,
                "train_step_s_lora": round(step_seconds(kind, "lora", args.steps), 3),
                "train_step_s_full": round(step_seconds(kind, "none", args.steps), 3)}
        with tempfile.TemporaryDirectory() as empty:
            metrics["extractor_adapter"] = posts_per_s(empty, Path(args.shipped))
        metrics["extractor_full"] = posts_per_s(tmp, False)
    write_result("peft_vs_full", metrics,
                 notes="adapter = the shipped LoRA version; full = the same weights exported as a full version; "
                       "measured back to back in one process on a shared 2-core machine")


if __name__ == "__main__":
    main()
