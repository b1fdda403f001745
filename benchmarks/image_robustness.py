"""Does a picture hurt an extractor that was trained without pictures?

    python -m benchmarks.image_robustness [--models extractors/shipped] [--limit N]

The research sets (MNRE, Twitter-2017) ship no images, so the extractors learn
from text alone; production posts carry photos. Test F1 of the current MNER
(Twitter-2017 test) and MRE (MNRE test) versions under three conditions:

- ``no_image``: text only, as in training;
- ``unrelated_photo``: a real photograph unrelated to the post attached to
  every post (FocalMRE's Align-Noise at 100%): the six photos of the sample
  stream (``pipeline/data/sample_images``, credits there), assigned in turn;
- ``noise``: a picture of uniform random pixels (a pool of six, seeded).

``metrics.<task>.<condition>.f1`` is what BENCHMARKS.md reports; where the
model has an image gate (``extractors.models.ImageGate``) the mean gate value
``lambda`` per condition is recorded too. ``--models`` with ``--name`` measures
another store (e.g. the versions before the gate stage).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from extractors.kinds import KINDS, get_kind

from .common import SHARED_DATA, write_result
CONDITIONS = ("no_image", "unrelated_photo", "noise")
SAMPLE_IMAGES = Path(__file__).resolve().parents[1] / "pipeline" / "data" / "sample_images"


def photos() -> list:
    from PIL import Image

    return [Image.open(p).convert("RGB") for p in sorted(SAMPLE_IMAGES.glob("*.jpg"))]


def noise_images(n: int = 6, seed: int = 0, size: int = 256) -> list:
    from PIL import Image

    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(n)]


def pictures(condition: str, n: int) -> list | None:
    """One picture per example (the same objects reused, so each runs the vision stream once per batch)."""
    if condition == "no_image":
        return None
    pool = photos() if condition == "unrelated_photo" else noise_images()
    return [pool[i % len(pool)] for i in range(n)]


def measure(kind: str, models: Path, limit: int | None) -> dict:
    import torch

    from extractors.adapters import merge_lora
    from extractors.run import read_examples, split_file
    from extractors.store import ModelStore

    store = ModelStore(models)
    version = store.current_version(kind)
    model, task, _ = store.load(kind, version)
    merge_lora(model)
    examples = read_examples(kind, split_file(SHARED_DATA / get_kind(kind).dataset, "test"))[:limit]
    out: dict = {"version": version, "examples": len(examples)}
    gate = model.image_gate
    out["image_gate"] = gate is not None
    for condition in CONDITIONS:
        lambdas: list[torch.Tensor] = []
        hook = gate.register_forward_hook(lambda _m, _i, lam: lambdas.append(lam.flatten())) if gate else None
        start = time.perf_counter()
        with torch.inference_mode():
            result = task.evaluate(model, examples, images=pictures(condition, len(examples)))
        out[condition] = {k: result[k] for k in ("precision", "recall", "f1")}
        out[condition]["seconds"] = round(time.perf_counter() - start, 1)
        if hook is not None:
            hook.remove()
            # one lambda per row (entity pair) for MRE, per post for MNER
            # None without pictures: the gate then has nothing to weigh (every row is the no-image state)
            out[condition]["mean_lambda"] = round(float(torch.cat(lambdas).mean()), 4) if lambdas else None
        print(kind, condition, out[condition], flush=True)
    for condition in CONDITIONS[1:]:
        out[condition]["f1_change"] = round(out[condition]["f1"] - out["no_image"]["f1"], 2)
    return out


def main() -> None:
    import torch

    from extractors.store import SHIPPED_DIR

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=str(SHIPPED_DIR), help="model store to read the current versions from")
    parser.add_argument("--limit", type=int, default=None, help="first N test examples only (quick check)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--name", default="image_robustness", help="result file name in benchmarks/results/")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    metrics = {kind: measure(kind, Path(args.models), args.limit) for kind in KINDS}
    write_result(args.name, metrics, module="benchmarks.image_robustness",
                 notes="test splits (Twitter-2017 test for mner, MNRE test for mre); the research sets have no "
                       "images, so 'no_image' is how the models were trained; unrelated photos: "
                       "pipeline/data/sample_images (6 real photographs, credits in CREDITS.md)")


if __name__ == "__main__":
    main()
