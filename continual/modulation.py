"""Gradient modulation between the modalities (MSPT Eq. 4-9, after OGM-GE).

A multimodal model tends to lean on its dominant modality and under-train
the other; in continual learning that imbalance also shapes what is
forgotten. Per batch, each modality's contribution is the summed softmax
probability its half of the classifier gives the gold label:

    s^t = sum_i softmax(W_t h_t,i)[y_i],  s^v = sum_i softmax(W_v h_v,i)[y_i]
    gamma^t = s^t / s^v,                  gamma^v = s^v / s^t

(MRE: one decision per example; MNER: one per word.) The dominant modality
(gamma > 1) has its *encoder* gradients multiplied by

    g = 1 - tanh(alpha * gamma)   in (0, 1)

and the other keeps 1, so g is always in (0, 1].

Remark 1: in the first task g is applied step by step; in every later task
each modality's gradients are multiplied by G, the mean of that modality's
per-step coefficient over the previous task (g is still computed and logged
every step, and its mean becomes the next task's G). Replayed old classes and
brand-new ones make the per-step ratio noisy after task 1; the previous
task's average keeps the balance the model had reached.

The loss function computes the halves anyway, so it hands them to
:meth:`GradientModulator.observe`; :meth:`GradientModulator.on_step` is the
``on_step`` hook of :func:`extractors.training.fit` (after backward, before
clipping and the optimiser step). Every step is logged (``history``) for a
plot of gamma per step like the paper's Figure 4.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

MODALITIES = ("text", "vision")


@dataclass
class StepRecord:
    task: int
    step: int
    score_text: float
    score_vision: float
    gamma: float  # s^t / s^v (> 1: text dominates)
    coeff_text: float  # per-step coefficient g for text (1 when text does not dominate)
    coeff_vision: float
    applied_text: float  # what the gradients were actually multiplied by
    applied_vision: float


def contribution_scores(text_logits: torch.Tensor, vision_logits: torch.Tensor,
                        gold: torch.Tensor) -> tuple[float, float]:
    """(s^t, s^v): summed softmax probability of the gold label under each half."""
    with torch.no_grad():
        idx = gold.view(-1, 1)
        s_t = text_logits.float().softmax(-1).gather(1, idx).sum()
        s_v = vision_logits.float().softmax(-1).gather(1, idx).sum()
    return float(s_t), float(s_v)


def coefficient(gamma: float, alpha: float) -> float:
    """g = 1 - tanh(alpha * gamma) for the dominant modality (gamma > 1), else 1.

    Written as 2 / (1 + exp(2 alpha gamma)), the same value, which stays
    positive where ``1 - tanh`` rounds to 0: g never switches a modality off.
    """
    if gamma <= 1.0:
        return 1.0
    return 2.0 / (1.0 + math.exp(min(2.0 * alpha * gamma, 700.0)))


def modality_parameters(model: nn.Module) -> dict[str, list[nn.Parameter]]:
    """Each modality's encoder parameters: its backbone plus its own key-bank bias
    (and, for vision, the learned no-image tokens). The shared keys and the
    classifier belong to neither modality and are never scaled."""
    enc = model.encoder
    return {"text": [*enc.text.parameters(), enc.keys.text_bias],
            "vision": [*enc.vision.parameters(), enc.keys.vision_bias, enc.no_image]}


class GradientModulator:
    def __init__(self, alpha: float, apply: bool = True) -> None:
        """``apply=False`` only measures and logs (the "w/o modulation" ablation)."""
        if alpha <= 0:
            raise ValueError("alpha must be positive")
        self.alpha = alpha
        self.apply = apply
        self.task = 0
        self.step = 0
        self.history: list[StepRecord] = []
        self.averages: dict[int, dict[str, float]] = {}  # task -> G per modality
        self._pending: tuple[float, float] | None = None
        self._params: dict[str, list[nn.Parameter]] | None = None

    def begin_task(self, task_index: int, model: nn.Module) -> None:
        self.task = task_index
        self.step = 0
        self._params = modality_parameters(model)

    def observe(self, text_logits: torch.Tensor, vision_logits: torch.Tensor, gold: torch.Tensor) -> None:
        """Stash this batch's contribution scores (call from the loss function)."""
        self._pending = contribution_scores(text_logits, vision_logits, gold)

    def previous_average(self) -> dict[str, float] | None:
        """G of the task before the current one (None in the first task)."""
        return self.averages.get(self.task - 1) if self.task > 0 else None

    def on_step(self, model: nn.Module) -> StepRecord | None:
        """Scale the dominant modality's encoder gradients; log the step."""
        if self._pending is None:
            return None
        s_t, s_v = self._pending
        self._pending = None
        gamma = s_t / max(s_v, 1e-12)
        coeff = {"text": coefficient(gamma, self.alpha), "vision": coefficient(1.0 / max(gamma, 1e-12), self.alpha)}
        previous = self.previous_average()
        applied = dict(previous) if previous is not None else dict(coeff)
        if not self.apply:
            applied = {"text": 1.0, "vision": 1.0}
        params = self._params if self._params is not None else modality_parameters(model)
        for modality in MODALITIES:
            if applied[modality] != 1.0:
                for p in params[modality]:
                    if p.grad is not None:
                        p.grad.mul_(applied[modality])
        record = StepRecord(self.task, self.step, s_t, s_v, gamma, coeff["text"], coeff["vision"],
                            applied["text"], applied["vision"])
        self.history.append(record)
        self.step += 1
        return record

    def end_task(self) -> dict[str, float]:
        """G of the task that just ended: the mean per-step coefficient per modality."""
        steps = [r for r in self.history if r.task == self.task]
        avg = {"text": sum(r.coeff_text for r in steps) / len(steps) if steps else 1.0,
               "vision": sum(r.coeff_vision for r in steps) / len(steps) if steps else 1.0}
        self.averages[self.task] = avg
        return avg

    def records(self) -> list[dict]:
        return [asdict(r) for r in self.history]
