"""Teach the shipped tagger the spans real posts need, from posts labelled by docs/LABELLING.md.

The shipped MNER learned Twitter-2017's conventions from one tweet set: it
leaves @handles and most works and events (``MISC``) untagged and cuts long
names, and every fact downstream starts from its spans. This continues the
shipped version's training (its LoRA adapters, CRF and heads; the pretrained
encoders stay frozen) on Twitter-2017 train together with real posts labelled
by the guideline, which the production path reads exactly as a worker does
(normalised text, the worker's word split), and selects the epoch on labelled
posts the models never trained on (the ``val`` pool), never on test.

    python -m extractors.realposts --labels benchmarks/data/end_to_end/train_gold.jsonl \
        --posts benchmarks/data/end_to_end/train_posts.jsonl \
        --val-labels benchmarks/data/end_to_end/val_gold.jsonl --val-posts benchmarks/data/end_to_end/val_posts.jsonl
"""
from __future__ import annotations

import argparse
import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

from .datasets import OUTSIDE, NERExample
from .normalise import normalise_text
from .spans import find_name, words_with_offsets

log = logging.getLogger(__name__)


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def tagged_words(text: str, entities: Sequence[tuple[str, str]]) -> NERExample:
    """The post as the worker splits it, each occurrence of each labelled name tagged BIO; a leading
    ``#`` stays ``O`` (Twitter-2017's convention; the graph key drops it anyway). Longer names win."""
    norm = normalise_text(text)
    words = words_with_offsets(norm) or [(norm[:1], 0, 1)]
    tags = [OUTSIDE] * len(words)
    for name, etype in sorted(entities, key=lambda e: -len(e[0])):
        start = find_name(norm, name)
        while start >= 0:
            end = start + len(name)
            idx = [i for i, (w, c0, c1) in enumerate(words) if c0 < end and c1 > start and w != "#"]
            if idx and all(tags[i] == OUTSIDE for i in idx):
                tags[idx[0]] = f"B-{etype}"
                for i in idx[1:]:
                    tags[i] = f"I-{etype}"
            start = find_name(norm, name, end)
    return NERExample(tuple(w for w, _, _ in words), tuple(tags))


def labelled_sentences(labels: Path, posts: Path) -> list[NERExample]:
    text = {p["id"]: p["text"] for p in _jsonl(posts)}
    return [tagged_words(text[lab["id"]], [(e["text"], e["type"]) for e in lab["entities"]])
            for lab in _jsonl(labels)]


def adapt_tagger(data: Path, labels: Path, posts: Path, val_labels: Path, val_posts: Path, work: str,
                 epochs: int = 3, repeat: int = 2, seed: int = 42) -> tuple[str, dict]:
    """A new MNER version: the shipped one trained on Twitter-2017 train plus the labelled posts
    (``repeat`` times each), the best epoch on the labelled val posts; saved in ``work``."""
    from .kinds import MNER
    from .run import read_examples, split_file

    train_path = split_file(data / MNER.dataset, "train")
    train = read_examples(MNER.name, train_path) + labelled_sentences(labels, posts) * repeat
    return adapt(MNER.name, train, labelled_sentences(val_labels, val_posts), [train_path, labels], work,
                 {"repeat": repeat, "labels": str(labels), "val": str(val_labels)}, epochs=epochs, seed=seed)


def adapt(kind: str, train: Sequence, val: Sequence, sources: Sequence[Path], work: str, stage: dict,
          epochs: int = 3, seed: int = 42, lr: float = 5e-4) -> tuple[str, dict]:
    """A new version of the shipped ``kind``: its adapters and heads trained further on ``train``, the best
    epoch on ``val`` (labelled real posts, never test); saved in ``work`` with the shipped one as parent."""
    import time

    from .encoders import EncoderSpec
    from .store import SHIPPED_DIR, ModelStore, data_fingerprint
    from .training import TrainConfig, fit

    shipped = ModelStore(SHIPPED_DIR)
    base = shipped.current_version(kind)
    model, task, base_cfg = shipped.load(kind, base)
    for name, p in model.named_parameters():  # adapters and heads train; pretrained weights stay
        p.requires_grad = "lora_" in name or not name.startswith("encoder.")
    cfg = TrainConfig(epochs=epochs, lr=lr, head_lr=lr, seed=seed, peft="lora", image_gate=True, image_augment=0.0)
    started = time.perf_counter()
    result = fit(task, model, list(train), list(val), cfg)
    metrics = {"val": result.best_val, "best_epoch": result.best_epoch, "history": result.history,
               "train_examples": len(train), "val_examples": len(val),
               "train_seconds": round(time.perf_counter() - started, 1), "base_train": shipped.metrics(kind, base)}
    spec = EncoderSpec(**base_cfg["encoder"])
    train_config = {**base_cfg["train_config"], "realposts_stage": {**asdict(cfg), **stage}}
    version = ModelStore(work).save(kind, model, spec, metrics=metrics, fingerprint=data_fingerprint(list(sources)),
                                    train_config=train_config, parent=base, save_dtype="float16")
    return version, metrics


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    here = Path("benchmarks/data/end_to_end")
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    ap.add_argument("--labels", type=Path, default=here / "train_gold.jsonl")
    ap.add_argument("--posts", type=Path, default=here / "train_posts.jsonl")
    ap.add_argument("--val-labels", type=Path, default=here / "val_gold.jsonl")
    ap.add_argument("--val-posts", type=Path, default=here / "val_posts.jsonl")
    ap.add_argument("--work", default="var/realposts-work", help="model store the new version is saved in")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--install", action="store_true", help="ship the new version (extractors/shipped/mner)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    version, metrics = adapt_tagger(args.data, args.labels, args.posts, args.val_labels, args.val_posts, args.work,
                                    args.epochs)
    print(json.dumps({"version": version, "val": metrics["val"], "best_epoch": metrics["best_epoch"],
                      "train_seconds": metrics["train_seconds"]}))
    if args.install:
        from .kinds import MNER
        from .ship import install
        from .store import ModelStore

        print(install(MNER.name, ModelStore(args.work), version))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
