"""Elastic weight consolidation (Kirkpatrick et al., 2017), the regularisation baseline.

After each task the diagonal empirical Fisher information of the trainable
parameters is estimated on that task's training data, and later tasks pay
``lambda/2 * sum F (theta - theta*)^2`` for moving them. Fishers accumulate
over tasks (online EWC without decay) with the latest weights as the anchor.

The classifier and the CRF grow between tasks, so a stored Fisher can be
smaller than the parameter it protects; it then covers the leading slice
(the old classes' rows/columns) and new rows are free.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


def _leading(t: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    return t[tuple(slice(0, s) for s in shape)]


class EWC:
    def __init__(self, lam: float = 1000.0, max_batches: int | None = 32) -> None:
        self.lam = lam
        self.max_batches = max_batches
        self.fisher: dict[str, torch.Tensor] = {}
        self.anchor: dict[str, torch.Tensor] = {}

    def consolidate(self, task, model: nn.Module, examples: Sequence, batch_size: int = 16,
                    device: str = "cpu") -> None:
        """Estimate the Fisher on ``examples`` and add it to the stored one."""
        params = {n: p for n, p in model.named_parameters() if p.requires_grad}
        fisher = {n: torch.zeros_like(p) for n, p in params.items()}
        was_training = model.training
        model.eval()  # no dropout: the Fisher of the deterministic model
        n_batches = 0
        for batch in task.batches(model, examples, batch_size):
            if self.max_batches is not None and n_batches >= self.max_batches:
                break
            model.zero_grad(set_to_none=True)
            model.loss(batch.to(device)).backward()
            for n, p in params.items():
                if p.grad is not None:
                    fisher[n] += p.grad.detach() ** 2
            n_batches += 1
        model.zero_grad(set_to_none=True)
        model.train(was_training)
        for n in fisher:
            fisher[n] /= max(n_batches, 1)
            if n in self.fisher:
                _leading(fisher[n], self.fisher[n].shape).add_(self.fisher[n].to(fisher[n].device))
        self.fisher = fisher
        self.anchor = {n: p.detach().clone() for n, p in params.items()}

    def penalty(self, model: nn.Module) -> torch.Tensor:
        params = dict(model.named_parameters())
        total = next(model.parameters()).new_zeros(())
        for n, f in self.fisher.items():
            p = params.get(n)
            if p is None or not p.requires_grad:
                continue
            total = total + (f * (_leading(p, f.shape) - self.anchor[n]) ** 2).sum()
        return 0.5 * self.lam * total

    @property
    def active(self) -> bool:
        return bool(self.fisher)
