"""Post-hoc logit adjustment: undo the classifier's bias toward the newest classes.

After task k the classifier was trained on task k's data plus a few rehearsal
exemplars per old class (6 against hundreds per new class), so it learned a
label prior in which old classes are rare, and at test time it calls old
relations new ones or ``None``. Logit adjustment (Menon et al., "Long-tail
learning via logit adjustment", ICLR 2021) subtracts ``tau * log prior(y)``
from the logits at inference, where the prior is the label distribution of
the training run that just ended; with ``tau = 1`` this is the Bayes-optimal
correction for a balanced test distribution, so there is nothing to tune and
nothing to train. Training itself is unchanged: the offsets live in the
classifier's ``adjustment`` buffer (:class:`extractors.models.SplitLinear`),
which is used in eval mode only and saved with the model version.

Relation extraction only: an MNER tagger decides per word through a CRF, and
there the imbalance that matters (old types tagged ``O`` in new sentences) is
one of labels, which teacher relabelling (:mod:`continual.relabel`) repairs.
"""
from __future__ import annotations

from collections import Counter
from typing import Sequence

import torch


def label_prior(labels: Sequence[str], examples: Sequence, smoothing: float = 1.0) -> torch.Tensor:
    """P(y) over ``labels`` in the relation examples one training run saw (add-``smoothing`` counts)."""
    counts = Counter(ex.relation for ex in examples)
    unknown = set(counts) - set(labels)
    if unknown:
        raise ValueError(f"examples carry labels the model does not have: {sorted(unknown)}")
    c = torch.tensor([counts.get(l, 0) + smoothing for l in labels], dtype=torch.float64)
    return (c / c.sum()).float()


def logit_adjustment(labels: Sequence[str], examples: Sequence, tau: float = 1.0) -> torch.Tensor:
    """The inference-time offsets ``-tau * log P(y)``, one per label."""
    return -tau * label_prior(labels, examples).log()


def balance_classifier(model, examples: Sequence, tau: float = 1.0) -> torch.Tensor:
    """Set the MRE classifier's offsets from the data it was just trained on; returns them."""
    offsets = logit_adjustment(model.labels, examples, tau)
    model.classifier.set_adjustment(offsets)
    return offsets
