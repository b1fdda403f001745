"""Triples as integer arrays, their vocabularies, and the filter index.

Both directions of a triple are training and test queries: ``(h, r, ?)`` and
``(t, r⁻¹, ?)`` with ``r⁻¹ = r + n_relations``, so one tail-scoring operator
also answers head queries. The :class:`FilterIndex` says which answers of a
query are already known true; the filtered protocol skips them when ranking
and negative sampling never draws them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch


@dataclass
class TripleSplit:
    """Entity / relation names and ``[n, 3]`` int64 (head, relation, tail) arrays."""

    entities: list[str]
    relations: list[str]
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray

    @property
    def n_entities(self) -> int:
        return len(self.entities)

    @property
    def n_relations(self) -> int:
        return len(self.relations)

    def all_triples(self) -> np.ndarray:
        return np.concatenate([self.train, self.valid, self.test])


def read_dict(path: Path) -> list[str]:
    """``entities.dict`` / ``relations.dict``: ``id<TAB>name`` lines -> names by id."""
    rows = [line.split("\t") for line in path.read_text().splitlines() if line.strip()]
    names = [name for _, name in sorted(((int(i), n) for i, n in rows))]
    return names


def read_triples(path: Path, entity_ids: dict[str, int], relation_ids: dict[str, int]) -> np.ndarray:
    rows = [line.split("\t") for line in path.read_text().splitlines() if line.strip()]
    return np.array([[entity_ids[h], relation_ids[r], entity_ids[t]] for h, r, t in rows], dtype=np.int64).reshape(-1, 3)


def load_split(folder: str | Path) -> TripleSplit:
    """A KGE benchmark folder (WN18RR layout: dicts plus train/valid/test.txt)."""
    folder = Path(folder)
    entities = read_dict(folder / "entities.dict")
    relations = read_dict(folder / "relations.dict")
    eids = {e: i for i, e in enumerate(entities)}
    rids = {r: i for i, r in enumerate(relations)}
    return TripleSplit(entities, relations, *(read_triples(folder / f"{s}.txt", eids, rids)
                                              for s in ("train", "valid", "test")))


def with_inverses(triples: np.ndarray, n_relations: int) -> np.ndarray:
    """Queries for both directions: (h, r, t) and (t, r + n_relations, h)."""
    inv = triples[:, [2, 1, 0]].copy()
    inv[:, 1] += n_relations
    return np.concatenate([triples, inv])


class FilterIndex:
    """Known answers of every (entity, relation-or-inverse) query."""

    def __init__(self, triples: np.ndarray, n_entities: int, n_relations: int) -> None:
        self.n_entities = n_entities
        self.n_relations = n_relations
        q = with_inverses(np.asarray(triples, dtype=np.int64).reshape(-1, 3), n_relations)
        keys = np.unique(self._key(q[:, 0], q[:, 1], q[:, 2]))
        self._keys = torch.from_numpy(keys)
        self._answers: dict[tuple[int, int], np.ndarray] = {}
        order = np.lexsort((q[:, 2], q[:, 1], q[:, 0]))
        q = q[order]
        if len(q):
            bounds = np.flatnonzero(np.any(np.diff(q[:, :2], axis=0) != 0, axis=1)) + 1
            for chunk in np.split(q, bounds):
                self._answers[(int(chunk[0, 0]), int(chunk[0, 1]))] = np.unique(chunk[:, 2])

    def _key(self, h, r, t):
        return (h * (2 * self.n_relations) + r) * self.n_entities + t

    def answers(self, entity: int, relation: int) -> np.ndarray:
        return self._answers.get((entity, relation), np.zeros(0, dtype=np.int64))

    def contains(self, heads: torch.Tensor, rels: torch.Tensor, cands: torch.Tensor) -> torch.Tensor:
        """``[B, C]`` bool: is ``(heads[b], rels[b], cands[b, c])`` known true."""
        keys = self._key(heads[:, None], rels[:, None], cands)
        if len(self._keys) == 0:
            return torch.zeros_like(keys, dtype=torch.bool)
        pos = torch.searchsorted(self._keys, keys).clamp(max=len(self._keys) - 1)
        return self._keys[pos] == keys

    def mask(self, heads: np.ndarray, rels: np.ndarray) -> torch.Tensor:
        """``[B, n_entities]`` bool of known answers (for filtered ranking)."""
        out = torch.zeros(len(heads), self.n_entities, dtype=torch.bool)
        for i, (h, r) in enumerate(zip(heads.tolist(), rels.tolist())):
            ans = self._answers.get((h, r))
            if ans is not None:
                out[i, torch.from_numpy(ans)] = True
        return out
