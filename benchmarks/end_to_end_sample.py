"""Draw the real-post labelling set for ``benchmarks.end_to_end`` (run once; its output is committed).

Posts come from the *test* splits' text only (MNRE test, Twitter-2017 test); a
text that also occurs in any train or validation split of either set is left
out, so no extractor has trained on a post it is judged on. Tokens are joined
back into a post the way a user would send it: single spaces, with ``@ name``
and ``# tag`` glued, and HTML entities put back together (``& amp ;`` -> ``&amp;``):
the research sets split them; real API payloads carry them whole.

Each post is assigned to the ``dev`` half (anything may be chosen on it) or the
``test`` half (reported once) by a seeded draw, and ``double`` marks the posts
a second labeller labels independently for the agreement figure.

    python -m benchmarks.end_to_end_sample --data ../shared/data --out benchmarks/data/end_to_end/posts.jsonl
    python -m benchmarks.end_to_end_sample --pool train --per-source 600 --out benchmarks/data/end_to_end/train_posts.jsonl
    python -m benchmarks.end_to_end_sample --pool val --per-source 400 --out benchmarks/data/end_to_end/val_posts.jsonl
"""
from __future__ import annotations

import argparse
import ast
import json
import random
import re
from pathlib import Path

_GLUE = re.compile(r"(?<![^\s])([@#]) (?=\w)")
_ENTITY = re.compile(r"& ?(amp|gt|lt|quot) ;")


def post_text(tokens: list[str]) -> str:
    """Tokens as a post: single spaces, ``@``/``#`` glued to the word after them."""
    return _ENTITY.sub(r"&\1;", _GLUE.sub(r"\1", " ".join(tokens)))


def _mnre(path: Path) -> list[str]:
    seen, out = set(), []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            text = post_text(ast.literal_eval(line)["token"])
            if text not in seen:
                seen.add(text)
                out.append(text)
    return out


def _conll(path: Path) -> list[str]:
    out, tokens = [], []
    for line in path.read_text(encoding="utf-8").splitlines() + [""]:
        line = line.rstrip("\r")
        if line.startswith("IMGID:"):
            tokens = []
        elif not line.strip():
            if tokens:
                out.append(post_text(tokens))
            tokens = []
        else:
            tokens.append(line.split("\t")[0])
    return out


def _key(text: str) -> str:
    return re.sub(r"\W+", "", text.casefold())


def draw(data: Path, per_source: int, double: int, seed: int) -> list[dict]:
    trained = {_key(t) for t in _mnre(data / "mnre/mnre_train.txt") + _mnre(data / "mnre/mnre_val.txt")
               + _conll(data / "twitter2017/train.txt") + _conll(data / "twitter2017/valid.txt")}
    rng = random.Random(seed)
    posts = []
    for source, texts in (("mnre_test", _mnre(data / "mnre/mnre_test.txt")),
                          ("twitter2017_test", _conll(data / "twitter2017/test.txt"))):
        fresh = sorted({_key(t): t for t in texts if _key(t) not in trained and len(t.split()) >= 4}.values())
        for i, text in enumerate(rng.sample(fresh, per_source)):
            posts.append({"id": f"{source}-{i:03d}", "source": source, "text": text})
    rng.shuffle(posts)
    for i, post in enumerate(posts):
        post["split"] = "dev" if i % 2 == 0 else "test"
        post["double"] = i < double
    return posts


def draw_pool(data: Path, pool: str, per_source: int, seed: int, exclude: set[str]) -> list[dict]:
    """Posts from the ``train`` splits' text (what the fact head learns from) or the ``val`` splits'
    (never trained on: with the dev half, what the fact calibration is fitted on); never a text of
    the test pool or of another split."""
    rng = random.Random(seed)
    files = {"train": ("mnre/mnre_train.txt", "twitter2017/train.txt"),
             "val": ("mnre/mnre_val.txt", "twitter2017/valid.txt")}[pool]
    posts = []
    for source, texts in ((f"mnre_{pool}", _mnre(data / files[0])), (f"twitter2017_{pool}", _conll(data / files[1]))):
        fresh = sorted({_key(t): t for t in texts if _key(t) not in exclude and len(t.split()) >= 4}.values())
        for i, text in enumerate(rng.sample(fresh, per_source)):
            posts.append({"id": f"{source}-{i:04d}", "source": source, "text": text, "split": pool})
    rng.shuffle(posts)
    return posts


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/data/end_to_end/posts.jsonl"))
    ap.add_argument("--per-source", type=int, default=220)
    ap.add_argument("--double", type=int, default=100, help="posts labelled twice, independently")
    ap.add_argument("--seed", type=int, default=31)
    ap.add_argument("--pool", choices=["test", "train", "val"], default="test",
                    help="test: the benchmark's labelled set; train / val: the fact head's and the calibration's")
    args = ap.parse_args(argv)
    if args.pool != "test":
        test = {_key(t) for t in _mnre(args.data / "mnre/mnre_test.txt") + _conll(args.data / "twitter2017/test.txt")}
        if args.pool == "val":  # a text also in a train split was trained on
            test |= {_key(t) for t in _mnre(args.data / "mnre/mnre_train.txt") + _conll(args.data / "twitter2017/train.txt")}
        posts = draw_pool(args.data, args.pool, args.per_source, args.seed, test)
    else:
        posts = draw(args.data, args.per_source, args.double, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in posts), encoding="utf-8")
    print(f"{len(posts)} posts -> {args.out}")


if __name__ == "__main__":
    main()
