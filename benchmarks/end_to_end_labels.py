"""The end-to-end benchmark's labelled posts (docs/LABELLING.md): where they are, and a checker.

Reading, checking and scoring live in :mod:`pipeline.labelled_facts` (``mkg demo``
scores its own graph with them too); this module knows the benchmark's files.

    python -m benchmarks.end_to_end_labels check FILE [--posts POSTS]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.labelled_facts import GoldPost, check, read_jsonl
from pipeline.labelled_facts import load_gold as _load_gold

HERE = Path(__file__).resolve().parent / "data" / "end_to_end"
POSTS = HERE / "posts.jsonl"


def load_gold(labels_path: Path, posts_path: Path = POSTS) -> list[GoldPost]:
    """Gold posts of ``labels_path`` (checked; raises ValueError naming every problem)."""
    return _load_gold(labels_path, posts_path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check", help="check a labels file against the posts and the guideline's format")
    c.add_argument("file", type=Path)
    c.add_argument("--posts", type=Path, default=POSTS)
    args = ap.parse_args(argv)
    posts = {p["id"]: p for p in read_jsonl(args.posts)}
    labels = read_jsonl(args.file)
    bad = check(labels, posts)
    for line in bad:
        print(line)
    print(f"{len(labels)} posts, {sum(len(x.get('facts', [])) for x in labels)} facts, {len(bad)} problems")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
