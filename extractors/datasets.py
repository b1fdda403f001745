"""Readers for the research data in ../shared/data (read-only; converted on load).

MNRE/IMRE lines are Python dict literals (``ast.literal_eval``); Twitter-2017
and IMNER are CoNLL with an ``IMGID:`` line per sentence (CRLF in IMNER).
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

# The "nothing" label of each format: an entity pair with no relation, a word outside every entity.
# Every task shares it from the start; :mod:`extractors.kinds` gives each kind its own.
NO_RELATION = "None"
OUTSIDE = "O"


@dataclass(frozen=True)
class REExample:
    """One MRE example: tokens, head/tail token spans [start, end), relation label."""

    tokens: tuple[str, ...]
    head: tuple[int, int]
    tail: tuple[int, int]
    relation: str
    image_id: str = ""


@dataclass(frozen=True)
class NERExample:
    """One MNER sentence: tokens and their BIO tags."""

    tokens: tuple[str, ...]
    tags: tuple[str, ...]
    image_id: str = ""


def read_re(path: str | Path) -> list[REExample]:
    out = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            ex = ast.literal_eval(line)
            out.append(REExample(tuple(ex["token"]), tuple(ex["h"]["pos"]), tuple(ex["t"]["pos"]),
                                 ex["relation"], ex.get("img_id", "")))
        except (ValueError, SyntaxError, KeyError) as exc:
            raise ValueError(f"{path}:{n}: not an MRE example: {exc}") from None
    return out


def read_conll(path: str | Path) -> list[NERExample]:
    out: list[NERExample] = []
    tokens: list[str] = []
    tags: list[str] = []
    image = ""

    def flush() -> None:
        nonlocal tokens, tags, image
        if tokens:
            out.append(NERExample(tuple(tokens), tuple(tags), image))
        tokens, tags, image = [], [], ""

    for n, raw in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        line = raw.rstrip("\r")
        if not line.strip():
            flush()
        elif line.startswith("IMGID:"):
            flush()
            image = line[len("IMGID:"):].strip()
        else:
            parts = line.split("\t") if "\t" in line else line.split()
            if len(parts) != 2:
                raise ValueError(f"{path}:{n}: expected 'token<TAB>tag', got {line!r}")
            tokens.append(parts[0])
            tags.append(parts[1])
    flush()
    return out


def tag_types(tags) -> set[str]:
    """The entity types a BIO tag sequence (or tag list) names: ``B-PER``/``I-PER`` -> ``PER``."""
    return {t[2:] for t in tags if t != OUTSIDE}


def bio_labels(types) -> list[str]:
    """The tags a model needs for ``types``: ``B-<type>``, ``I-<type>`` for each, in order."""
    return [f"{p}-{t}" for t in types for p in ("B", "I")]


def entity_types(examples: list[NERExample]) -> list[str]:
    """Sorted entity types present in BIO tags."""
    return sorted(tag_types(t for ex in examples for t in ex.tags))


def relation_labels(examples: list[REExample]) -> list[str]:
    """``None`` first, then the other labels sorted (stable ids across runs)."""
    labels = sorted({ex.relation for ex in examples} - {NO_RELATION})
    return [NO_RELATION, *labels]
