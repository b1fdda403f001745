"""The gold-annotation path: posts whose ``annotations`` are the extraction.

Labelled data (MNRE) becomes wire posts with gold entities and relations,
and a post's annotations become an :class:`extractors.base.Extraction`, which
then flows through :func:`pipeline.to_graph.add_post` exactly like a model's
output. Used to build graphs whose facts are known to be right (completion
benchmarks and tests), independent of extractor quality.
"""
from __future__ import annotations

import ast
from pathlib import Path

from extractors.base import Extraction
from extractors.gold import GoldExtractor
from extractors.schema import NO_RELATION, implied_types
from extractors.spans import joined_tokens

from .post import Post
from .worker import extraction_input

GOLD_VERSION = GoldExtractor().model_version


def mnre_annotated_posts(path: str | Path, limit: int | None = None) -> list[dict]:
    """MNRE lines -> wire posts, one per distinct text, with every non-``None``
    pair of that text as gold entities (types implied by the label) and relations."""
    by_text: dict[str, dict] = {}
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines()):
        if not line.strip():
            continue
        ex = ast.literal_eval(line)
        label = ex["relation"]
        text = " ".join(ex["token"])
        if text not in by_text:
            if limit is not None and len(by_text) == limit:
                continue
            minute = len(by_text)
            by_text[text] = {"id": f"mnre-{Path(path).stem}-{n}", "text": text,
                             "created_at": f"2026-01-{1 + minute // 1440 % 28:02d}T{minute // 60 % 24:02d}:{minute % 60:02d}:00Z",
                             "source": "mnre", "annotations": {"entities": [], "relations": []}}
        types = implied_types(label) if label != NO_RELATION else None
        if types is None:
            continue
        ann = by_text[text]["annotations"]
        spans = joined_tokens(ex["token"])[1]
        ids = []
        for side, etype in zip(("h", "t"), types):
            start_tok, end_tok = ex[side]["pos"]
            start, end = spans[start_tok][0], spans[end_tok - 1][1]
            eid = f"e{start}-{end}-{etype}"
            if all(e["id"] != eid for e in ann["entities"]):
                ann["entities"].append({"id": eid, "start": start, "end": end, "type": etype})
            ids.append(eid)
        rel = {"head": ids[0], "tail": ids[1], "type": label}
        if rel not in ann["relations"]:
            ann["relations"].append(rel)
    return [p for p in by_text.values() if p["annotations"]["relations"]]


def gold_extraction(post: Post) -> Extraction:
    """The post's annotations as an extraction (confidence 1); relation labels
    are mapped to graph types (``/per/org/member_of`` -> ``MEMBER_OF``)."""
    return GoldExtractor().extract([extraction_input(post)])[0]
