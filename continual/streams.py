"""Task streams of the class-incremental benchmarks (IMRE, IMNER).

A stream is a sequence of tasks. Task k brings its own training and
validation data and the *new* classes it introduces; its test set is
cumulative (every class seen up to k). The label space therefore grows from
task to task, while the "nothing" label (``None`` for relations, ``O`` for
tags) is shared by all tasks and exists from the start.

Why the new classes are read from the full training file even when examples
are limited: a small CI run must still grow the classifier exactly as the
full benchmark does, so ``limit`` never changes the label space.
"""
from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Hashable, Sequence, TypeVar

from extractors.datasets import NO_RELATION, NERExample, REExample, bio_labels, read_conll, read_re, tag_types
from extractors.kinds import MNER, MRE, get_kind

T = TypeVar("T")

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
IMRE_SPLITS = ("sep10", "sep5")
IMNER_ORDERS = {"PLOM": "sep-PLOM", "POLM": "sep-POLM-NEW"}


@dataclass(frozen=True)
class Task:
    """One step of a stream: its data and the classes it adds."""

    index: int
    train: list
    val: list
    test: list  # cumulative: all classes seen up to this task
    new_classes: list[str]  # relations (MRE) or entity types (MNER)
    new_labels: list[str]  # what the model's output layer gains: relations, or B-/I- tags


@dataclass(frozen=True)
class TaskStream:
    kind: str  # a name in extractors.kinds
    name: str  # e.g. "imre-sep10", "imner-PLOM"
    base_labels: list[str]  # shared from the start: ["None"] or ["O"]
    tasks: list[Task]

    def labels_upto(self, k: int) -> list[str]:
        """The model's label list after task ``k`` (in growth order)."""
        return [*self.base_labels, *[l for t in self.tasks[: k + 1] for l in t.new_labels]]

    def classes_upto(self, k: int) -> list[str]:
        return [c for t in self.tasks[: k + 1] for c in t.new_classes]


def balanced_sample(examples: Sequence[T], limit: int | None, key: Callable[[T], Hashable] | None = None,
                    seed: int = 0) -> list[T]:
    """At most ``limit`` examples, classes taking turns (seeded).

    The IMRE files are sorted by relation and a task's rare relation can have
    six examples beside nine hundred of the frequent one, so a plain prefix
    would miss whole classes. Round-robin over classes keeps every class in a
    small run. Without ``key`` it is a seeded random sample. The original
    file order is kept among the chosen examples.
    """
    if limit is None or limit >= len(examples):
        return list(examples)
    rng = random.Random(seed)
    if key is None:
        chosen = sorted(rng.sample(range(len(examples)), limit))
        return [examples[i] for i in chosen]
    groups: dict[Hashable, list[int]] = defaultdict(list)
    for i, ex in enumerate(examples):
        groups[key(ex)].append(i)
    queues = []
    for k in sorted(groups, key=str):
        idx = groups[k][:]
        rng.shuffle(idx)
        queues.append(idx)
    chosen: list[int] = []
    while len(chosen) < limit:
        for q in queues:
            if q and len(chosen) < limit:
                chosen.append(q.pop())
    return [examples[i] for i in sorted(chosen)]


def stratified_sample(examples: Sequence[T], limit: int | None, key: Callable[[T], Hashable],
                      seed: int = 0) -> list[T]:
    """At most ``limit`` examples that keep each class's share of ``examples`` (seeded).

    For evaluation subsets: a score on a sliced test set must estimate the score
    on the full one, so the classes keep their natural proportions (``None``,
    most of the IMRE test pairs, keeps its share; :func:`balanced_sample` would
    cut it to one class's turn). Quotas are proportional, rounded by largest
    remainder; every class keeps at least one example when ``limit`` allows, so
    a rare class is not silently absent from a small run. The original file
    order is kept among the chosen examples.
    """
    if limit is None or limit >= len(examples):
        return list(examples)
    rng = random.Random(seed)
    groups: dict[Hashable, list[int]] = defaultdict(list)
    for i, ex in enumerate(examples):
        groups[key(ex)].append(i)
    classes = sorted(groups, key=str)
    exact = {c: limit * len(groups[c]) / len(examples) for c in classes}
    quota = {c: int(exact[c]) for c in classes}
    for c in sorted(classes, key=lambda c: exact[c] - quota[c], reverse=True)[: limit - sum(quota.values())]:
        quota[c] += 1
    if limit >= len(classes):
        for c in classes:
            if quota[c] == 0:  # one example of a rare class, taken from the largest quota
                quota[max(classes, key=lambda d: quota[d])] -= 1
                quota[c] = 1
    chosen = [i for c in classes for i in rng.sample(groups[c], quota[c])]
    return [examples[i] for i in sorted(chosen)]


def _relation(ex: REExample) -> str:
    return ex.relation


def imre_stream(split: str = "sep10", data: str | Path = DEFAULT_DATA, n_tasks: int | None = None,
                limit: int | None = None, val_limit: int | None = None, test_limit: int | None = None,
                seed: int = 0) -> TaskStream:
    """IMRE: ``imre/<split>/ours_{train,val,test}_{k}.txt``; new relations of task k = its
    training relations minus ``None`` (disjoint across tasks)."""
    if split not in IMRE_SPLITS:
        raise ValueError(f"IMRE split must be one of {IMRE_SPLITS}, not {split!r}")
    folder = Path(data) / "imre" / split
    count = _count_tasks(folder, "ours_train_{}.txt")
    tasks: list[Task] = []
    seen: set[str] = set()
    for k in range(min(count, n_tasks or count)):
        train = read_re(folder / f"ours_train_{k}.txt")
        new = sorted({ex.relation for ex in train} - {NO_RELATION} - seen)
        seen |= set(new)
        # training data: classes take turns; evaluation data (val, test): the natural class shares
        tasks.append(Task(k, balanced_sample(train, limit, _relation, seed + k),
                          stratified_sample(read_re(folder / f"ours_val_{k}.txt"), val_limit, _relation, seed + k),
                          stratified_sample(read_re(folder / f"ours_test_{k}.txt"), test_limit, _relation, seed + k),
                          new, list(new)))
    return TaskStream(MRE.name, f"{MRE.benchmark}-{split}", [MRE.no_label], tasks)


def _types(ex: NERExample) -> frozenset[str]:
    return frozenset(tag_types(ex.tags))


def imner_stream(order: str = "PLOM", data: str | Path = DEFAULT_DATA, n_tasks: int | None = None,
                 limit: int | None = None, val_limit: int | None = None, test_limit: int | None = None,
                 seed: int = 0) -> TaskStream:
    """IMNER (Twitter-2017): ``imner/twitter2017/sep-<order>/{train,valid,test}_{k}.txt``.

    In task k only the type of task k is tagged, so its new class is the one
    entity type in ``train_k``; the model gains ``B-<type>`` and ``I-<type>``.
    """
    if order not in IMNER_ORDERS:
        raise ValueError(f"IMNER order must be one of {sorted(IMNER_ORDERS)}, not {order!r}")
    folder = Path(data) / "imner" / "twitter2017" / IMNER_ORDERS[order]
    count = _count_tasks(folder, "train_{}.txt")
    tasks: list[Task] = []
    seen: set[str] = set()
    for k in range(min(count, n_tasks or count)):
        train = read_conll(folder / f"train_{k}.txt")
        new = sorted({t for ex in train for t in _types(ex)} - seen)
        seen |= set(new)
        tasks.append(Task(k, balanced_sample(train, limit, _types, seed + k),
                          stratified_sample(read_conll(folder / f"valid_{k}.txt"), val_limit, _types, seed + k),
                          stratified_sample(read_conll(folder / f"test_{k}.txt"), test_limit, _types, seed + k),
                          new, bio_labels(new)))
    return TaskStream(MNER.name, f"{MNER.benchmark}-{order}", [MNER.no_label], tasks)


def _count_tasks(folder: Path, pattern: str) -> int:
    if not folder.is_dir():
        raise FileNotFoundError(f"benchmark data not found: {folder} (expected ../shared/data beside the checkout, "
                                f"or pass --data)")
    k = 0
    while (folder / pattern.format(k)).exists():
        k += 1
    if k == 0:
        raise FileNotFoundError(f"no {pattern.format(0)} in {folder}")
    return k


STREAMS = {MRE.name: imre_stream, MNER.name: imner_stream}  # kind -> its benchmark's reader


def load_stream(kind: str, variant: str, **kwargs) -> TaskStream:
    """``("mre", "sep10")`` or ``("mner", "PLOM")``; kwargs as for the readers."""
    return STREAMS[get_kind(kind).name](variant, **kwargs)
