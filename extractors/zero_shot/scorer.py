"""The trainable zero-shot scorer: samples and classes in one space, scored by dot product.

A sample's tokens (sentence, head, tail; plus the image's CLS when the post
has one) pass through a token-wise block and are concatenated into the
sample representation; a class phrase's vector is projected into the same
space. Both are L2-normalised, so the dot product is a cosine and one margin
means the same thing for every class, seen or not. Training is the margin
ranking loss of MG-VMoE over the seen classes: the gold class must score
``margin`` above every other seen class.

Two switchable additions from the paper (each has an ablation row in
``benchmarks/zero_shot``):

``vmoe``: the token-wise block is a variational mixture of experts. Each of K
experts is an information bottleneck (a Gaussian posterior over a small code,
sampled in training, its mean at inference); a per-token softmax router mixes
the experts. Why: a bottleneck keeps what predicts the class and drops
surface detail of the seen classes, which is what transfers to unseen ones;
text and image tokens go through the same experts (one backbone for both
modalities), so the router, not a separate fusion layer, decides how each
token is read. Regularisers: the KL of each expert's posterior to N(0, I),
weighted by its router share; the router's per-token entropy (pushed down:
each token commits to few experts) and the entropy of its batch-average
share (pushed up: no expert is left unused).

``contrastive``: a supervised contrastive loss over the batch's sample
representations (samples of one class pull together, others push apart),
plus, for posts with an image, an InfoNCE term that aligns a post's text
and image tokens. The research data has no images, so in the benchmark only
the first term acts; the second is exercised by the unit tests.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .features import N_TEXT_TOKENS, SampleFeatures


@dataclass
class ScorerConfig:
    text_dim: int = 384
    vision_dim: int = 384
    token_dim: int = 256  # width of a processed token
    vmoe: bool = True
    experts: int = 4
    kl_weight: float = 1e-3
    entropy_weight: float = 1e-2
    contrastive: bool = True
    contrastive_weight: float = 0.1
    temperature: float = 0.1
    margin: float = 0.2
    dropout: float = 0.1

    def to_dict(self) -> dict:
        return asdict(self)


class VariationalMoE(nn.Module):
    """K information-bottleneck experts mixed per token by a softmax router."""

    def __init__(self, in_dim: int, out_dim: int, experts: int) -> None:
        super().__init__()
        self.router = nn.Linear(in_dim, experts)
        self.mu = nn.Linear(in_dim, experts * out_dim)
        self.logvar = nn.Linear(in_dim, experts * out_dim)
        self.experts, self.out_dim = experts, out_dim

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """x: [..., in_dim] -> ([..., out_dim], regulariser terms)."""
        gates = self.router(x).softmax(-1)  # [..., K]
        mu = self.mu(x).unflatten(-1, (self.experts, self.out_dim))
        logvar = self.logvar(x).unflatten(-1, (self.experts, self.out_dim)).clamp(-8.0, 8.0)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if self.training else mu
        out = (gates.unsqueeze(-1) * z).sum(-2)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1)  # [..., K]
        flat = gates.reshape(-1, self.experts)
        mean_share = flat.mean(0)
        terms = {
            "kl": (gates * kl).sum(-1).mean(),
            "token_entropy": -(flat * flat.clamp_min(1e-9).log()).sum(-1).mean(),
            "balance_entropy": -(mean_share * mean_share.clamp_min(1e-9).log()).sum(),
        }
        return out, terms


class ZeroShotScorer(nn.Module):
    def __init__(self, config: ScorerConfig) -> None:
        super().__init__()
        c = self.config = config
        self.vision_in = nn.Linear(c.vision_dim, c.text_dim)  # image CLS -> a token in the text width
        if c.vmoe:
            self.tokens = VariationalMoE(c.text_dim, c.token_dim, c.experts)
        else:
            self.tokens = nn.Sequential(nn.Linear(c.text_dim, c.token_dim), nn.GELU())
        self.sample_out = nn.Linear((N_TEXT_TOKENS + 1) * c.token_dim, c.text_dim)
        self.class_out = nn.Sequential(nn.Linear(c.text_dim, c.text_dim), nn.GELU(), nn.Linear(c.text_dim, c.text_dim))
        # Both sides start as the identity on the frozen encoder's space (the residual branches' last
        # layers are zero): an untrained scorer is the Proto baseline, and training moves away from it
        # only as far as the seen classes pay for. With 8 seen classes, a projection learnt from scratch
        # fits those 8 points and scatters every other class phrase.
        nn.init.zeros_(self.sample_out.weight)
        nn.init.zeros_(self.sample_out.bias)
        nn.init.zeros_(self.class_out[-1].weight)
        nn.init.zeros_(self.class_out[-1].bias)
        self.dropout = nn.Dropout(c.dropout)

    def _token_block(self, x: torch.Tensor) -> tuple[torch.Tensor, dict]:
        if self.config.vmoe:
            return self.tokens(x)
        return self.tokens(x), {}

    def encode_samples(self, feats: SampleFeatures) -> tuple[torch.Tensor, dict]:
        """[N, d_text] unit vectors, and the regulariser terms (empty without vmoe)."""
        vision = self.vision_in(feats.vision).unsqueeze(1)  # [N, 1, d_text]
        tokens, terms = self._token_block(self.dropout(torch.cat([feats.text, vision], 1)))
        tokens = tokens * torch.cat([torch.ones_like(feats.has_image[:, None], dtype=tokens.dtype).expand(-1, N_TEXT_TOKENS),
                                     feats.has_image[:, None].to(tokens.dtype)], 1).unsqueeze(-1)
        terms["text_token"], terms["vision_token"] = tokens[:, 1:N_TEXT_TOKENS].mean(1), tokens[:, N_TEXT_TOKENS]
        base = F.normalize(feats.text.mean(1), dim=-1)
        return F.normalize(base + self.sample_out(tokens.flatten(1)), dim=-1), terms

    def encode_classes(self, class_vectors: torch.Tensor) -> torch.Tensor:
        """[C, d_text] unit vectors from [C, d_text] phrase vectors."""
        base = F.normalize(class_vectors, dim=-1)
        return F.normalize(base + self.class_out(base), dim=-1)

    def scores(self, feats: SampleFeatures, class_vectors: torch.Tensor) -> torch.Tensor:
        """[N, C] dot products (cosines, in [-1, 1])."""
        samples, _ = self.encode_samples(feats)
        return samples @ self.encode_classes(class_vectors).T

    def loss(self, feats: SampleFeatures, labels: torch.Tensor, class_vectors: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """Margin ranking over the given (seen) classes, plus the switched-on regularisers."""
        c = self.config
        samples, terms = self.encode_samples(feats)
        scores = samples @ self.encode_classes(class_vectors).T
        parts = {"ranking": margin_ranking(scores, labels, c.margin)}
        if c.vmoe:
            parts["kl"] = c.kl_weight * terms["kl"]
            parts["entropy"] = c.entropy_weight * (terms["token_entropy"] - terms["balance_entropy"])
        if c.contrastive:
            parts["contrastive"] = c.contrastive_weight * (
                supervised_contrastive(samples, labels, c.temperature)
                + image_text_alignment(terms["text_token"], terms["vision_token"], feats.has_image, c.temperature))
        return sum(parts.values()), {k: float(v.detach()) for k, v in parts.items()}


def margin_ranking(scores: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    """Mean over samples and wrong classes of ``max(0, margin - s(gold) + s(wrong))``."""
    gold = scores.gather(1, labels[:, None])
    wrong = torch.ones_like(scores, dtype=torch.bool).scatter_(1, labels[:, None], False)
    return F.relu(margin - gold + scores)[wrong].view(len(labels), -1).mean()


def supervised_contrastive(x: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    """SupCon over unit vectors ``x``: each sample's same-class batch mates are its positives."""
    n = x.shape[0]
    self_mask = torch.eye(n, dtype=torch.bool, device=x.device)
    positives = (labels[:, None] == labels[None, :]) & ~self_mask
    has_pos = positives.any(1)
    if not has_pos.any():
        return x.new_zeros(())
    logits = (x @ x.T / temperature).masked_fill(self_mask, float("-inf"))
    log_prob = logits - logits.logsumexp(1, keepdim=True)
    per_row = -(log_prob.masked_fill(~positives, 0.0).sum(1) / positives.sum(1).clamp(min=1))
    return per_row[has_pos].mean()


def image_text_alignment(text: torch.Tensor, vision: torch.Tensor, has_image: torch.Tensor,
                         temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE between the text and image tokens of the batch's posts that have an image."""
    if int(has_image.sum()) < 2:
        return text.new_zeros(())
    t, v = F.normalize(text[has_image], dim=-1), F.normalize(vision[has_image], dim=-1)
    logits = t @ v.T / temperature
    target = torch.arange(t.shape[0], device=t.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
