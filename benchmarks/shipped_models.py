"""What the extractor versions shipped in the package score, and what they cost.

    python -m benchmarks.shipped_models [--shipped extractors/shipped] [--speed]

For each shipped version (``extractors/shipped/<kind>/current``): test-split
P/R/F1 (Twitter-2017 test for MNER, MNRE test for MRE; text only, these sets
ship no images) overall and per entity type / relation with support counts,
val F1 of the same files, size on disk, load time. ``metrics.<kind>.test_f1``
and ``metrics.total_mb`` are what ``tests/integration/test_shipped_models.py``
checks the shipped files against. ``--speed`` adds posts/s of the extractor
running on the shipped versions (batch 32, text only).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from extractors.kinds import KINDS, get_kind

from .common import SHARED_DATA, write_result


def folder_mb(path: Path) -> float:
    return round(sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) / 1e6, 3)


def measure(kind: str, shipped: Path) -> dict:
    import torch

    from extractors.run import read_examples, split_file
    from extractors.store import ModelStore

    store = ModelStore(shipped)
    version = store.current_version(kind)
    start = time.perf_counter()
    model, task, cfg = store.load(kind, version)
    load_s = time.perf_counter() - start
    out = {"version": version, "load_s": round(load_s, 2), "size_mb": folder_mb(store.version_dir(kind, version)),
           "format": cfg["format"], "peft": cfg.get("peft"), "save_dtype": cfg.get("save_dtype"),
           "data_fingerprint": cfg["data_fingerprint"], "train_config": cfg["train_config"],
           "trainable_params": store.metrics(kind, version).get("trainable_params"),
           "train_seconds": store.metrics(kind, version).get("train_seconds"),
           "best_epoch": store.metrics(kind, version).get("best_epoch")}
    with torch.inference_mode():
        for split in ("val", "test"):
            path = split_file(SHARED_DATA / get_kind(kind).dataset, split)
            examples = read_examples(kind, path)
            t0 = time.perf_counter()
            result = get_kind(kind).evaluate(task, model, examples, per_class=split == "test")
            out[f"{split}_seconds"] = round(time.perf_counter() - t0, 1)
            out[f"{split}_examples"] = len(examples)
            for k in ("precision", "recall", "f1"):
                out[f"{split}_{k}"] = result[k]
            if split == "test":
                key = get_kind(kind).per_class_key  # per relation (MRE) / entity type (MNER)
                out[key] = result[key]
    return out


def speed(n_posts: int = 256, batch: int = 32) -> dict:
    import tempfile

    from extractors.base import ExtractionInput
    from extractors.multimodal import MultimodalExtractor

    from .common import mnre_posts

    with tempfile.TemporaryDirectory() as empty:
        start = time.perf_counter()
        extractor = MultimodalExtractor(empty, shipped=True, batch_size=batch)
        load_s = time.perf_counter() - start
        inputs = [ExtractionInput(p["id"], p["text"], None) for p in mnre_posts(n_posts, "test")]
        extractor.extract(inputs[:batch])  # warm-up
        start = time.perf_counter()
        for i in range(0, len(inputs), batch):
            extractor.extract(inputs[i:i + batch])
        return {"posts_per_s": round(len(inputs) / (time.perf_counter() - start), 1),
                "extractor_load_s": round(load_s, 2), "batch": batch, "posts": n_posts}


def main() -> None:
    import torch

    from extractors.store import SHIPPED_DIR

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shipped", default=str(SHIPPED_DIR))
    parser.add_argument("--speed", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    metrics: dict = {kind: measure(kind, Path(args.shipped)) for kind in KINDS}
    metrics["total_mb"] = round(sum(folder_mb(Path(args.shipped) / kind) for kind in KINDS), 3)  # the zero-shot scorer apart
    if args.speed:
        metrics["speed_batch32_text"] = speed()
    write_result("shipped_models", metrics,
                 notes="the versions shipped in extractors/shipped/ (LoRA adapters + non-encoder weights, float16); "
                       "model selection on val during training, test evaluated once per version; text only")


if __name__ == "__main__":
    main()
