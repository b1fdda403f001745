"""MRE and MNER models on the dual-stream encoder.

Both classifiers are split into a text half and a vision half,
``logits = W_t h_text + W_v h_vision`` (the same as ``W [h_text ; h_vision]``),
so continual learning can read each modality's contribution (gradient
modulation, Eq. 4-9) and grow the label space by appending rows.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torchcrf import CRF

from .features import NERBatch, REBatch
from .fusion import DualStreamEncoder, StreamOutput


class ImageGate(nn.Module):
    """How much of the picture a post's vision state keeps (FocalMRE's gate).

    lambda = sigmoid(U h_text + V h_image + b) per post, and the vision state
    the classifier reads is ``lambda h_image + (1 - lambda) h_none``, where
    ``h_none`` is the state of a post without a picture
    (:meth:`extractors.fusion.DualStreamEncoder.no_image_state`). FocalMRE mixes
    text and image states of one width; here the two vision states are mixed,
    so a closed gate gives exactly what a model trained on text-only data (the
    research sets have no images) has always seen, and an open one lets the
    picture in.

    Starts closed (b = -4, lambda ~ 0.02, U = V = 0): a model ignores pictures
    until training shows that they help; unrelated-image augmentation
    (:mod:`extractors.augment`) is how training learns that they do not.
    """

    def __init__(self, text_dim: int, vision_dim: int) -> None:
        super().__init__()
        self.text = nn.Linear(text_dim, 1)
        self.vision = nn.Linear(vision_dim, 1, bias=False)
        with torch.no_grad():
            self.text.weight.zero_()
            self.vision.weight.zero_()
            self.text.bias.fill_(-4.0)

    def forward(self, h_text: torch.Tensor, h_vision: torch.Tensor) -> torch.Tensor:
        """lambda, one per row: [B, 1]."""
        return torch.sigmoid(self.text(h_text) + self.vision(h_vision))

    def mix(self, h_text: torch.Tensor, h_vision: torch.Tensor, h_none: torch.Tensor) -> torch.Tensor:
        lam = self(h_text, h_vision)
        return lam * h_vision + (1 - lam) * h_none


def gated_vision(gate: ImageGate | None, encoder: DualStreamEncoder, out: StreamOutput, h_text: torch.Tensor,
                 has_image: torch.Tensor | None) -> torch.Tensor:
    """The vision CLS state the classifier reads: the picture's, through the gate when there is one."""
    h_vision = out.vision_cls
    if gate is None or has_image is None or not bool(has_image.any()):
        return h_vision  # no picture in the batch: every row already is the no-image state
    return gate.mix(h_text, h_vision, encoder.no_image_state())


class SplitLinear(nn.Module):
    """W [h_t ; h_v] kept as two matrices; rows can be appended for new classes.

    ``adjustment`` is a per-class offset added to the logits at inference
    only (eval mode): post-hoc logit adjustment (:mod:`continual.balance`)
    corrects the bias toward the classes the last training run saw most,
    without changing what training optimises. It is zero unless set, is saved
    with the model and grows with it.
    """

    def __init__(self, text_dim: int, vision_dim: int, n_out: int) -> None:
        super().__init__()
        self.text = nn.Linear(text_dim, n_out)
        self.vision = nn.Linear(vision_dim, n_out, bias=False)
        self.register_buffer("adjustment", torch.zeros(n_out))

    def forward(self, h_text: torch.Tensor, h_vision: torch.Tensor) -> torch.Tensor:
        logits = self.raw(h_text, h_vision)
        return logits if self.training else logits + self.adjustment.to(logits.dtype)

    def raw(self, h_text: torch.Tensor, h_vision: torch.Tensor) -> torch.Tensor:
        """The logits without the adjustment: what every training loss (and the EWC Fisher) sees."""
        text, vision = self.halves(h_text, h_vision)
        return text + vision

    def halves(self, h_text: torch.Tensor, h_vision: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each modality's contribution to the logits."""
        return self.text(h_text), self.vision(h_vision)

    def set_adjustment(self, offsets: torch.Tensor | None) -> None:
        """Set (or with ``None`` clear) the inference-time logit offsets, one per class."""
        if offsets is not None and offsets.shape != self.adjustment.shape:
            raise ValueError(f"adjustment needs {tuple(self.adjustment.shape)} values, got {tuple(offsets.shape)}")
        with torch.no_grad():
            self.adjustment.copy_(offsets if offsets is not None else torch.zeros_like(self.adjustment))

    def grow(self, n_new: int) -> None:
        """Append ``n_new`` output rows, keeping the old ones (class-incremental)."""
        for name in ("text", "vision"):
            old: nn.Linear = getattr(self, name)
            new = nn.Linear(old.in_features, old.out_features + n_new, bias=old.bias is not None)
            new = new.to(old.weight.device, old.weight.dtype)
            with torch.no_grad():
                new.weight[: old.out_features] = old.weight
                if old.bias is not None:
                    new.bias[: old.out_features] = old.bias
            setattr(self, name, new)
        self.adjustment = torch.cat([self.adjustment, self.adjustment.new_zeros(n_new)])

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # model versions saved before the adjustment existed load with none
        state_dict.setdefault(prefix + "adjustment", torch.zeros(self.text.out_features))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class MREModel(nn.Module):
    """p(r | text, image, h, t) over a relation set that includes ``None``.

    The text representation is [h_CLS ; h_<head> ; h_<tail>]: the CLS state of
    the spec plus the states of the head- and tail-start markers, which carry
    the pair (entity-start pooling); the vision representation is its CLS.
    """

    def __init__(self, encoder: DualStreamEncoder, labels: list[str], dropout: float = 0.1,
                 image_gate: bool = False) -> None:
        super().__init__()
        if labels[0] != "None":
            raise ValueError("label 0 must be 'None'")
        self.encoder = encoder
        self.labels = list(labels)
        self.dropout = nn.Dropout(dropout)
        self.classifier = SplitLinear(3 * encoder.text_dim, encoder.vision_dim, len(labels))
        self.image_gate = ImageGate(3 * encoder.text_dim, encoder.vision_dim) if image_gate else None

    @property
    def head(self) -> SplitLinear:
        return self.classifier

    def representations(self, batch: REBatch) -> tuple[torch.Tensor, torch.Tensor, StreamOutput]:
        out = self.encoder(batch.input_ids, batch.attention_mask, batch.pixels, batch.has_image, batch.image_index)
        rows = torch.arange(batch.input_ids.shape[0], device=batch.input_ids.device)
        h_text = torch.cat([out.text_cls, out.text[rows, batch.head_pos], out.text[rows, batch.tail_pos]], -1)
        h_vision = gated_vision(self.image_gate, self.encoder, out, h_text, batch.has_image)
        return self.dropout(h_text), self.dropout(h_vision), out

    def forward(self, batch: REBatch) -> torch.Tensor:
        h_t, h_v, _ = self.representations(batch)
        return self.classifier(h_t, h_v)

    def loss(self, batch: REBatch) -> torch.Tensor:
        h_t, h_v, _ = self.representations(batch)
        return F.cross_entropy(self.classifier.raw(h_t, h_v), batch.labels)

    def decision_parts(self, batch: REBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                                                      StreamOutput]:
        """(task loss, text-half logits, vision-half logits, gold ids, encoder output), one row per
        example, from one forward pass: what continual learning's losses read (continual.objectives)."""
        h_t, h_v, out = self.representations(batch)
        lt, lv = self.classifier.halves(h_t, h_v)
        return F.cross_entropy(lt + lv, batch.labels), lt, lv, batch.labels, out

    def add_labels(self, new: list[str]) -> None:
        new = [l for l in new if l not in self.labels]
        self.classifier.grow(len(new))
        self.labels += new


class MNERModel(nn.Module):
    """BIO tagging with a CRF over [h_i_text ; h_CLS_vision] per word (Eq. 3)."""

    def __init__(self, encoder: DualStreamEncoder, tags: list[str], dropout: float = 0.1,
                 image_gate: bool = False) -> None:
        super().__init__()
        if tags[0] != "O":
            raise ValueError("tag 0 must be 'O'")
        self.encoder = encoder
        self.tags = list(tags)
        self.dropout = nn.Dropout(dropout)
        self.emissions = SplitLinear(encoder.text_dim, encoder.vision_dim, len(tags))
        self.image_gate = ImageGate(encoder.text_dim, encoder.vision_dim) if image_gate else None
        self.crf = CRF(len(tags), batch_first=True)
        self._forbid_invalid_transitions()

    @property
    def head(self) -> SplitLinear:
        return self.emissions

    def _forbid_invalid_transitions(self, only: set[int] | None = None) -> None:
        """I-X may only follow B-X or I-X: make other moves (and starting with I-X) very unlikely.

        ``only``: touch just the transitions into or out of these tag ids (the
        new ones after :meth:`add_tags`), so trained old values stay as they are.
        """
        with torch.no_grad():
            for j, tag in enumerate(self.tags):
                if not tag.startswith("I-"):
                    continue
                if only is None or j in only:
                    self.crf.start_transitions[j] = -1e4
                for i, prev in enumerate(self.tags):
                    if only is not None and i not in only and j not in only:
                        continue
                    if prev[2:] != tag[2:] or prev == "O":
                        self.crf.transitions[i, j] = -1e4

    def word_features(self, batch: NERBatch) -> tuple[torch.Tensor, torch.Tensor, StreamOutput]:
        out = self.encoder(batch.input_ids, batch.attention_mask, batch.pixels, batch.has_image, batch.image_index)
        h_words = torch.gather(out.text, 1, batch.word_index.unsqueeze(-1).expand(-1, -1, out.text.shape[-1]))
        h_post = gated_vision(self.image_gate, self.encoder, out, out.text_cls, batch.has_image)
        h_vis = h_post.unsqueeze(1).expand(-1, h_words.shape[1], -1)
        return self.dropout(h_words), self.dropout(h_vis), out

    def forward(self, batch: NERBatch) -> torch.Tensor:
        h_t, h_v, _ = self.word_features(batch)
        return self.emissions(h_t, h_v)

    def loss(self, batch: NERBatch) -> torch.Tensor:
        h_t, h_v, _ = self.word_features(batch)
        emissions = self.emissions.raw(h_t, h_v)
        return -self.crf(emissions.float(), batch.tags, mask=batch.word_mask, reduction="mean")

    def decision_parts(self, batch: NERBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                                                       StreamOutput]:
        """As :meth:`MREModel.decision_parts`, one row per (unpadded) word."""
        h_t, h_v, out = self.word_features(batch)
        et, ev = self.emissions.halves(h_t, h_v)
        loss = -self.crf((et + ev).float(), batch.tags, mask=batch.word_mask, reduction="mean")
        mask = batch.word_mask
        return loss, et[mask], ev[mask], batch.tags[mask], out

    def decode(self, batch: NERBatch) -> list[list[str]]:
        emissions = self(batch)
        paths = self.crf.decode(emissions.float(), mask=batch.word_mask)
        return [[self.tags[i] for i in path] for path in paths]

    def add_tags(self, new: list[str]) -> None:
        """Grow the tag set (class-incremental MNER), keeping everything learned.

        Emission rows are appended (:meth:`SplitLinear.grow`); the CRF is
        rebuilt one size larger with the old start/end/transition scores copied
        in, and the invalid-I constraint applied to the new rows and columns.
        """
        new = [t for t in new if t not in self.tags]
        if not new:
            return
        n_old = len(self.tags)
        self.emissions.grow(len(new))
        self.tags += new
        old = self.crf
        crf = CRF(len(self.tags), batch_first=True).to(old.transitions.device, old.transitions.dtype)
        with torch.no_grad():
            crf.start_transitions[:n_old] = old.start_transitions
            crf.end_transitions[:n_old] = old.end_transitions
            crf.transitions[:n_old, :n_old] = old.transitions
        self.crf = crf
        self._forbid_invalid_transitions(only=set(range(n_old, len(self.tags))))

    def marginal_confidence(self, emissions: torch.Tensor) -> torch.Tensor:
        """Per-word max softmax of the emissions: a cheap confidence for spans."""
        return emissions.softmax(-1).max(-1).values
