"""Build the extractor versions shipped in the package (``make models``).

    python -m extractors.ship [--data ../shared/data] [--kinds mner,mre]
    python -m extractors.ship --from-store var/train-lora   # install versions trained already

Trains MNER on Twitter-2017 and MRE on MNRE with LoRA adapters (fixed seed,
model selection on the val split only), then trains the selected version's
image gate (and nothing else) for one pass over the first 3,000 training
examples with unrelated pictures attached to half of them
(:func:`extractors.run.train_image_gate`; the research data has no images,
production posts do), scores the result once on the test split, and installs
it as ``extractors/shipped/<kind>/versions/<version>/`` with ``current`` naming it (the previous shipped version of that
kind is removed). The research data comes from the public sources listed in
``../shared/data/README.md`` (Twitter-2017 from jefferyYu/UMT, MNRE from
thecharm/MNRE); it is for research evaluation only.
``python -m benchmarks.shipped_models`` then measures what was installed.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

from mkg_common.artifacts import publishing

from .kinds import KINDS, MNER, MRE
from .store import SHIPPED_DIR, ModelStore

# The recipes the shipped versions were trained with (BENCHMARKS.md, "Shipped extractors").
RECIPES = {
    MNER.name: {"data": MNER.dataset, "epochs": 6, "lr": 1e-3, "head_lr": 1e-3, "lora_r": 16},
    MRE.name: {"data": MRE.dataset, "epochs": 5, "lr": 1e-3, "head_lr": 1e-3, "lora_r": 16},
}
# the image-gate stage: only the gate trains (every other weight unchanged)
GATE_RECIPE = {"epochs": 1, "head_lr": 5e-3, "image_augment": 0.5}
GATE_EXAMPLES = 3000  # the first N training examples: the gate has a few hundred weights
SEED = 42
SAVE_DTYPE = "float16"


def install(kind: str, source: ModelStore, version: str, dest: Path = SHIPPED_DIR) -> Path:
    """Copy one version into the shipped folder and make it the shipped ``current`` of its kind; the
    versions it replaces are removed only once the pointer names the new one, so a crash at any step
    leaves a shipped folder whose ``current`` is complete (:mod:`mkg_common.artifacts`)."""
    target = ModelStore(dest)
    cfg = source.config(kind, version)
    if cfg.get("format") != "adapter":
        raise ValueError(f"{version} is a full version ({cfg.get('format', 'full')}); only adapter versions are shipped")
    versions = dest / kind / "versions"
    src = source.version_dir(kind, version)
    if version not in target.versions(kind):
        with publishing(versions, version) as tmp:
            for name in ("weights.safetensors", "config.json", "metrics.json"):
                shutil.copy2(src / name, tmp / name)
                os.chmod(tmp / name, 0o644)  # package data: readable by every user of an install
    target.promote(kind, version)
    for old in versions.iterdir():  # the replaced versions, and anything a crash left half-written
        if old.name != version:
            shutil.rmtree(old)
    return versions / version


def main(argv: list[str] | None = None) -> int:
    from .run import evaluate, train, train_image_gate
    from .training import TrainConfig

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--kinds", default="mner,mre")
    parser.add_argument("--work", default="var/ship-work", help="model store the versions are trained into")
    parser.add_argument("--from-store", help="install versions of this store instead of training (its current "
                                             "one of each kind, or the newest, or --version)")
    parser.add_argument("--version", action="append", default=[], metavar="KIND=VERSION",
                        help="with --from-store: the version to install for KIND")
    parser.add_argument("--no-image-gate", action="store_true",
                        help="install the trained (or --from-store) version without the image-gate stage")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest on a shared machine)")
    parser.add_argument("--dest", default=str(SHIPPED_DIR))
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    data = Path(args.data)
    for kind in args.kinds.split(","):
        if kind not in KINDS:
            raise SystemExit(f"unknown kind {kind!r}")
        recipe = RECIPES[kind]
        folder = data / recipe["data"]
        if args.from_store:
            store = ModelStore(args.from_store)
            chosen = dict(v.split("=", 1) for v in args.version)
            version = chosen.get(kind) or store.current_version(kind) or store.versions(kind)[-1]
        else:
            # text first (no gate, no pictures), as the versions measured in BENCHMARKS.md were trained
            cfg = TrainConfig(epochs=recipe["epochs"], lr=recipe["lr"], head_lr=recipe["head_lr"], seed=SEED,
                              peft="lora", lora_r=recipe["lora_r"], image_gate=False, image_augment=0.0)
            store = ModelStore(args.work)
            version, _ = train(kind, folder, args.work, cfg, save_dtype=SAVE_DTYPE)
        if not args.no_image_gate:
            gate_cfg = TrainConfig(seed=SEED, train_only="image_gate", **GATE_RECIPE)
            version, _ = train_image_gate(kind, folder, store, version, args.work, gate_cfg, save_dtype=SAVE_DTYPE,
                                          limit=GATE_EXAMPLES)
            store = ModelStore(args.work)
        test = evaluate(kind, folder, store.root, version)
        store.record_metrics(kind, version, "test", {k: v for k, v in test.items() if k != "version"})
        path = install(kind, store, version, Path(args.dest))
        print(json.dumps({"kind": kind, "version": version, "installed": str(path), "test_f1": test["f1"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
