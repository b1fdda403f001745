"""Dual-stream multimodal encoder with a shared key bank (MSPT, Eq. 10-11).

Text (a BERT-architecture model) and vision (a timm ViT) run in parallel. Their
lower layers are the pretrained layers, unchanged. In the top ``n_interact``
layers of each stream the two modalities attend "hand in hand" through one
learnable key bank K^s per interaction layer, shared by both modalities, plus
a learned position bias per modality (Eq. 10-11).

Why a *bank* of keys: in the authors' reference code the shared key has shape
[1, heads, head_dim, 1], so Q·K^s is one number per query, constant along the
softmax axis, and cancels in the softmax: the attention then depends only on
the bias. Here K^s is a bank of ``n_keys`` keys (one per sequence position,
``[n_keys, dim]`` viewed as ``[heads, n_keys, head_dim]`` by each modality), so
the scores Q·K^s really depend on the query (Eq. 10-11 as written).

Both streams read the *same* parameters. Our two encoders have different head
layouts (MiniLM: 12 heads x 32, DINOv2-S: 6 heads x 64), so the bank is kept in
the model dimension and each modality views it with its own head split.

``shared_key_mode``:
- ``"add"`` (default): scores = Q·K_own + Q·K^s + B. The pretrained content
  keys stay, so a small encoder (6 text layers, 3 of which interact) keeps what
  it learned in pre-training, and K^s (initialised small) adds the shared term.
- ``"replace"``: scores = Q·K^s + B, as in the reference code, with the bank.

A post without an image is normal: the vision stream then starts from a learned
"no image" token sequence (CLS + a few tokens) instead of patch embeddings of a
blank picture, so its attention is not poisoned by zeros.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

NO_IMAGE_TOKENS = 4


@dataclass
class StreamOutput:
    text: torch.Tensor  # [B, T, D_t] last text hidden states
    vision: torch.Tensor  # [B, V, D_v] last vision hidden states (after the final norm)
    text_attn: list[torch.Tensor]  # per interaction layer: [B, H_t, T, T_keys] attention probabilities
    vision_attn: list[torch.Tensor]  # per interaction layer: [B, H_v, V, V_keys]

    @property
    def text_cls(self) -> torch.Tensor:
        return self.text[:, 0]

    @property
    def vision_cls(self) -> torch.Tensor:
        return self.vision[:, 0]


class SharedKeyBank(nn.Module):
    """K^s and the per-modality position biases of the interaction layers."""

    def __init__(self, n_layers: int, n_keys: int, dim: int, text_heads: int, vision_heads: int,
                 max_text: int, max_vision: int) -> None:
        super().__init__()
        self.keys = nn.Parameter(torch.randn(n_layers, n_keys, dim) * 0.02)
        self.text_bias = nn.Parameter(torch.zeros(n_layers, text_heads, max_text, max_text))
        self.vision_bias = nn.Parameter(torch.zeros(n_layers, vision_heads, max_vision, max_vision))

    def keys_for(self, layer: int, n_heads: int, length: int) -> torch.Tensor:
        """The bank's first ``length`` keys in this modality's head layout: [H, L, d]."""
        k = self.keys[layer, :length]
        return k.view(length, n_heads, -1).transpose(0, 1)


def _attend(q: torch.Tensor, k: torch.Tensor | None, v: torch.Tensor, mask_add: torch.Tensor,
            shared: torch.Tensor | None, bias: torch.Tensor | None, dropout: float, training: bool):
    """Scaled dot-product attention, optionally over the shared key bank.

    q, k, v: [B, H, L, d]; shared: [H, L, d]; bias: [H, L, L]; mask_add: [B, 1, 1, L].
    """
    scale = 1.0 / math.sqrt(q.shape[-1])
    scores = None
    if k is not None:
        scores = torch.matmul(q, k.transpose(-1, -2)) * scale
    if shared is not None:
        shared_scores = torch.matmul(q, shared.transpose(-1, -2).unsqueeze(0)) * scale + bias.unsqueeze(0)
        scores = shared_scores if scores is None else scores + shared_scores
    probs = F.softmax(scores + mask_add, dim=-1)
    ctx = torch.matmul(F.dropout(probs, dropout, training), v)
    return ctx, probs


def _split(x: torch.Tensor, heads: int) -> torch.Tensor:
    b, n, d = x.shape
    return x.view(b, n, heads, d // heads).transpose(1, 2)


def _merge(x: torch.Tensor) -> torch.Tensor:
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)


class DualStreamEncoder(nn.Module):
    def __init__(self, text_model: nn.Module, vision_model: nn.Module, n_interact: int = 3,
                 max_text_len: int = 128, max_vision_len: int = 257, shared_key_mode: str = "add") -> None:
        super().__init__()
        if shared_key_mode not in {"add", "replace"}:
            raise ValueError(f"shared_key_mode must be 'add' or 'replace', not {shared_key_mode!r}")
        self.text = text_model
        self.vision = vision_model
        self.n_interact = n_interact
        self.shared_key_mode = shared_key_mode
        self.text_heads = text_model.config.num_attention_heads
        self.vision_heads = vision_model.blocks[0].attn.num_heads
        self.text_dim = text_model.config.hidden_size
        self.vision_dim = vision_model.embed_dim
        if self.text_dim != self.vision_dim:
            raise ValueError("the shared key bank needs equal text and vision widths")
        self.max_text_len = max_text_len
        self.max_vision_len = max(max_vision_len, 1 + NO_IMAGE_TOKENS)
        self.keys = SharedKeyBank(n_interact, max(max_text_len, self.max_vision_len), self.text_dim,
                                  self.text_heads, self.vision_heads, max_text_len, self.max_vision_len)
        self.no_image = nn.Parameter(torch.randn(1 + NO_IMAGE_TOKENS, self.vision_dim) * 0.02)
        self.interaction_enabled = True  # ablation switch (continual learning, Table 3)

    def _shared_keys(self, layer: int | None, n_heads: int, n: int, biases: torch.Tensor, k: torch.Tensor):
        """(K^s, bias, own keys) for one layer: K^s only in interaction layers, and
        the layer's own keys dropped in "replace" mode."""
        if layer is None or not self.interaction_enabled:
            return None, None, k
        own = None if self.shared_key_mode == "replace" else k
        return self.keys.keys_for(layer, n_heads, n), biases[layer, :, :n, :n], own

    # -- vision stream ------------------------------------------------------
    def _vision_input(self, pixels: torch.Tensor | None, has_image: torch.Tensor, batch: int):
        """Patch tokens for posts with an image, the learned no-image tokens otherwise."""
        device = self.no_image.device
        if pixels is None or not bool(has_image.any()):
            x = self.no_image.unsqueeze(0).expand(batch, -1, -1)
            return x, torch.zeros(batch, 1, 1, x.shape[1], device=device)
        v = self.vision
        img = v._pos_embed(v.patch_embed(pixels))
        img = v.norm_pre(v.patch_drop(img))
        n = img.shape[1]
        pad = torch.zeros(batch, n, self.vision_dim, device=device, dtype=img.dtype)
        pad[:, : self.no_image.shape[0]] = self.no_image
        x = torch.where(has_image.view(-1, 1, 1), img, pad)
        mask = torch.zeros(batch, 1, 1, n, device=device)
        mask[~has_image, :, :, self.no_image.shape[0]:] = torch.finfo(mask.dtype).min
        return x, mask

    def _vit_block(self, block, x, mask_add, layer: int | None):
        attn = block.attn
        h = block.norm1(x)
        b, n, c = h.shape
        qkv = attn.qkv(h).reshape(b, n, 3, attn.num_heads, c // attn.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q, k = attn.q_norm(q), attn.k_norm(k)
        shared, bias, k = self._shared_keys(layer, attn.num_heads, n, self.keys.vision_bias, k)
        ctx, probs = _attend(q, k, v, mask_add, shared, bias, attn.attn_drop.p, self.training)
        merged = _merge(ctx)
        if hasattr(attn, "norm"):  # timm's optional scale-norm (Identity for DINOv2)
            merged = attn.norm(merged)
        out = attn.proj_drop(attn.proj(merged))
        x = x + block.drop_path1(block.ls1(out))
        x = x + block.drop_path2(block.ls2(block.mlp(block.norm2(x))))
        return x, probs

    # -- text stream ------------------------------------------------------------
    def _bert_layer(self, layer_mod, x, mask_add, layer: int | None):
        sa = layer_mod.attention.self
        q, v = _split(sa.query(x), self.text_heads), _split(sa.value(x), self.text_heads)
        k = _split(sa.key(x), self.text_heads)
        shared, bias, k = self._shared_keys(layer, self.text_heads, x.shape[1], self.keys.text_bias, k)
        ctx, probs = _attend(q, k, v, mask_add, shared, bias, sa.dropout.p, self.training)
        so = layer_mod.attention.output
        h = so.LayerNorm(so.dropout(so.dense(_merge(ctx))) + x)
        out = layer_mod.output
        x = out.LayerNorm(out.dropout(out.dense(layer_mod.intermediate(h))) + h)
        return x, probs

    def no_image_state(self) -> torch.Tensor:
        """[1, D]: the vision stream's final CLS state for a post without a picture.

        The vision stream reads no text, so this is the same for every such post
        (it depends on the weights only): what a model trained on text-only data
        has always seen in place of a picture. :class:`extractors.models.ImageGate`
        mixes a picture's state with it.
        """
        v, v_mask = self._vision_input(None, torch.zeros(1, dtype=torch.bool, device=self.no_image.device), 1)
        blocks = list(self.vision.blocks)
        first = len(blocks) - self.n_interact
        for i, block in enumerate(blocks):
            v, _ = self._vit_block(block, v, v_mask, i - first if i >= first else None)
        return self.vision.norm(v)[:, 0]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                pixels: torch.Tensor | None = None, has_image: torch.Tensor | None = None,
                image_index: torch.Tensor | None = None) -> StreamOutput:
        """``image_index`` maps each text row to a row of ``pixels``/``has_image``:
        the vision stream reads no text, so several rows sharing one image (the
        entity pairs of one post) run it once."""
        if input_ids.shape[1] > self.max_text_len:
            raise ValueError(f"text of {input_ids.shape[1]} tokens exceeds max_text_len={self.max_text_len}")
        batch = input_ids.shape[0]
        n_images = batch if image_index is None else (len(has_image) if has_image is not None else 1)
        if has_image is None:
            has_image = torch.zeros(n_images, dtype=torch.bool, device=input_ids.device)
        t = self.text.embeddings(input_ids=input_ids, token_type_ids=torch.zeros_like(input_ids))
        t_mask = (1.0 - attention_mask[:, None, None, :].to(t.dtype)) * torch.finfo(t.dtype).min
        v, v_mask = self._vision_input(pixels, has_image, n_images)

        text_layers = list(self.text.encoder.layer)
        vision_blocks = list(self.vision.blocks)
        t_first = len(text_layers) - self.n_interact
        v_first = len(vision_blocks) - self.n_interact
        for layer_mod in text_layers[:t_first]:
            t, _ = self._bert_layer(layer_mod, t, t_mask, None)
        for block in vision_blocks[:v_first]:
            v, _ = self._vit_block(block, v, v_mask, None)
        text_attn, vision_attn = [], []
        for i in range(self.n_interact):  # the top layers, hand in hand through K^s
            t, ta = self._bert_layer(text_layers[t_first + i], t, t_mask, i)
            v, va = self._vit_block(vision_blocks[v_first + i], v, v_mask, i)
            text_attn.append(ta)
            vision_attn.append(va)
        v = self.vision.norm(v)
        if image_index is not None:
            v, vision_attn = v[image_index], [a[image_index] for a in vision_attn]
        return StreamOutput(t, v, text_attn, vision_attn)
