"""Teacher relabelling for class-incremental MNER.

In an incremental NER stream a task's sentences are tagged for that task's
types only: a person in a task-2 (ORG) sentence is ``O``. Training on such
data teaches the model that old types are ``O`` -- forgetting caused by the
labels, not by the weights, which neither attention distillation nor a few
rehearsal exemplars can undo. Before task k trains, the model as task k-1 left
it (the teacher) tags the task's sentences, and its spans of *old* types
fill tokens that the task left ``O``. Gold tags always win: a span is taken
only where every token of it is ``O`` in the task data, and spans of types
the task teaches are never taken from the teacher.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Sequence

from extractors.datasets import OUTSIDE
from extractors.spans import bio_spans


def relabel_with_teacher(adapter, model, examples: Sequence, old_types: Sequence[str],
                         device: str = "cpu") -> tuple[list, int]:
    """(examples with the teacher's old-type spans filled in, number of spans added)."""
    if not examples or not old_types:
        return list(examples), 0
    old = set(old_types)
    predicted = adapter.predict(model, [ex.tokens for ex in examples], device=device)
    out, added = [], 0
    for ex, tags in zip(examples, predicted):
        new = list(ex.tags)
        for start, end, etype in bio_spans(tags):
            if etype in old and all(t == OUTSIDE for t in ex.tags[start:end]):
                new[start:end] = [f"B-{etype}"] + [f"I-{etype}"] * (end - start - 1)
                added += 1
        out.append(replace(ex, tags=tuple(new)))
    return out, added
