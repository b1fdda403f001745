"""MRE and MNER as trainable tasks: labels, batching, prediction, evaluation.

The training loop (:mod:`extractors.training`) and continual learning only
talk to this interface, so both tasks share one loop (as PyKEEN separates
model, training loop and evaluator).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch

from .datasets import OUTSIDE, NERExample, REExample, bio_labels, entity_types, relation_labels
from .features import attach_images, encode_ner, encode_re, register_markers
from .metrics import ner_entity_prf, re_micro_prf
from .models import MNERModel, MREModel


def chunks(examples: Sequence, batch_size: int, shuffle: bool, rng: random.Random | None) -> Iterator[list]:
    """Examples in batches, in a (seeded) random order when training."""
    order = list(range(len(examples)))
    if shuffle:
        (rng or random).shuffle(order)
    for i in range(0, len(order), batch_size):
        yield [examples[j] for j in order[i:i + batch_size]]


@dataclass
class RETask:
    """Built by its kind (``get_kind("mre").task(tokenizer)``), which passes its registry name."""

    tokenizer: object
    kind: str
    max_len: int = 128

    def __post_init__(self) -> None:
        register_markers(self.tokenizer)

    def labels_from(self, examples: Sequence[REExample]) -> list[str]:
        return relation_labels(list(examples))

    def build(self, encoder, labels: list[str], image_gate: bool = False) -> MREModel:
        return MREModel(encoder, labels, image_gate=image_gate)

    def batches(self, model: MREModel, examples: Sequence[REExample], batch_size: int,
                shuffle: bool = False, rng: random.Random | None = None) -> Iterator:
        ids = {l: i for i, l in enumerate(model.labels)}
        for chunk in chunks(examples, batch_size, shuffle, rng):
            yield encode_re(self.tokenizer, chunk, ids, self.max_len)

    @torch.inference_mode()
    def predict(self, model: MREModel, examples: Sequence[REExample], batch_size: int = 64,
                device: str = "cpu", images: Sequence | None = None) -> tuple[list[str], list[float]]:
        """Labels and confidences; ``images``: one picture (or ``None``) per example, else text only."""
        model.eval()
        labels, confs = [], []
        for i in range(0, len(examples), batch_size):
            batch = encode_re(self.tokenizer, examples[i:i + batch_size], None, self.max_len)
            if images is not None:
                batch = attach_images(batch, images[i:i + batch_size])
            batch = batch.to(device)
            probs = model(batch).float().softmax(-1)
            conf, idx = probs.max(-1)
            labels += [model.labels[j] for j in idx.tolist()]
            confs += conf.tolist()
        return labels, confs

    def gold(self, examples: Sequence[REExample]) -> list[str]:
        return [ex.relation for ex in examples]

    def predict_examples(self, model: MREModel, examples: Sequence[REExample], device: str = "cpu") -> list[str]:
        """Predicted labels of ``examples`` (what :meth:`gold` gives for the truth)."""
        return self.predict(model, examples, device=device)[0]

    @torch.no_grad()
    def pooled_features(self, model: MREModel, examples: Sequence[REExample], device: str = "cpu") -> torch.Tensor:
        """One vector per example: the classifier's text input ``[h_CLS ; h_head ; h_tail]``."""
        batch = encode_re(self.tokenizer, examples, None, self.max_len).to(device)
        return model.representations(batch)[0].float().cpu()

    def evaluate(self, model: MREModel, examples: Sequence[REExample], device: str = "cpu",
                 images: Sequence | None = None) -> dict:
        """Micro P/R/F1 excluding ``None`` (per relation: ``TaskKind.evaluate``)."""
        return self.scores(model, examples, device, images)[0]

    def scores(self, model: MREModel, examples: Sequence[REExample], device: str = "cpu",
               images: Sequence | None = None) -> tuple[dict, list[str], list[str]]:
        """(micro P/R/F1 excluding ``None``, gold labels, predicted labels)."""
        pred, _ = self.predict(model, examples, device=device, images=images)
        gold = self.gold(examples)
        return re_micro_prf(gold, pred), gold, pred


@dataclass
class NERTask:
    """Built by its kind (``get_kind("mner").task(tokenizer)``), which passes its registry name."""

    tokenizer: object
    kind: str
    max_len: int = 128

    def labels_from(self, examples: Sequence[NERExample]) -> list[str]:
        return [OUTSIDE, *bio_labels(entity_types(list(examples)))]

    def build(self, encoder, labels: list[str], image_gate: bool = False) -> MNERModel:
        return MNERModel(encoder, labels, image_gate=image_gate)

    def batches(self, model: MNERModel, examples: Sequence[NERExample], batch_size: int,
                shuffle: bool = False, rng: random.Random | None = None) -> Iterator:
        ids = {t: i for i, t in enumerate(model.tags)}
        for chunk in chunks(examples, batch_size, shuffle, rng):
            yield encode_ner(self.tokenizer, [e.tokens for e in chunk], ids, [e.tags for e in chunk], self.max_len)

    @torch.inference_mode()
    def predict(self, model: MNERModel, sentences: Sequence[Sequence[str]], batch_size: int = 64,
                device: str = "cpu", images: Sequence | None = None) -> list[list[str]]:
        """BIO tags per word; ``images``: one picture (or ``None``) per sentence, else text only."""
        model.eval()
        out: list[list[str]] = []
        for i in range(0, len(sentences), batch_size):
            chunk = sentences[i:i + batch_size]
            batch = encode_ner(self.tokenizer, chunk, None, None, self.max_len)
            if images is not None:
                batch = attach_images(batch, images[i:i + batch_size])
            batch = batch.to(device)
            for sent, path in zip(chunk, model.decode(batch)):
                out.append(path + [OUTSIDE] * (len(sent) - len(path)))  # truncated words: O
        return out

    def gold(self, examples: Sequence[NERExample]) -> list[list[str]]:
        return [list(e.tags) for e in examples]

    def predict_examples(self, model: MNERModel, examples: Sequence[NERExample], device: str = "cpu") -> list[list[str]]:
        """Predicted tags of ``examples`` (what :meth:`gold` gives for the truth)."""
        return self.predict(model, [e.tokens for e in examples], device=device)

    @torch.no_grad()
    def pooled_features(self, model: MNERModel, examples: Sequence[NERExample], device: str = "cpu") -> torch.Tensor:
        """One vector per sentence: the mean of its word features."""
        batch = encode_ner(self.tokenizer, [e.tokens for e in examples], None, None, self.max_len).to(device)
        h_words = model.word_features(batch)[0].float()
        m = batch.word_mask.unsqueeze(-1).float()
        return ((h_words * m).sum(1) / m.sum(1).clamp(min=1)).cpu()

    def evaluate(self, model: MNERModel, examples: Sequence[NERExample], device: str = "cpu",
                 images: Sequence | None = None) -> dict:
        """Entity-level P/R/F1 (per type: ``TaskKind.evaluate``)."""
        return self.scores(model, examples, device, images)[0]

    def scores(self, model: MNERModel, examples: Sequence[NERExample], device: str = "cpu",
               images: Sequence | None = None) -> tuple[dict, list, list]:
        """(entity-level P/R/F1, gold tag sequences, predicted tag sequences)."""
        pred = self.predict(model, [e.tokens for e in examples], device=device, images=images)
        gold = self.gold(examples)
        return ner_entity_prf(gold, pred), gold, pred
