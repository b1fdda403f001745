"""Turn examples into model inputs: wordpieces, entity markers, first-sub-token maps."""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Sequence

import torch

from .datasets import NERExample, REExample

# Entity markers are unused BERT vocabulary entries, registered as special
# tokens so the tokenizer never splits them (no embedding resize needed).
HEAD_START, HEAD_END, TAIL_START, TAIL_END = "[unused0]", "[unused1]", "[unused2]", "[unused3]"
MARKERS = [HEAD_START, HEAD_END, TAIL_START, TAIL_END]


def register_markers(tokenizer) -> None:
    missing = [m for m in MARKERS if m not in tokenizer.get_vocab()]
    if missing:
        raise ValueError(f"tokenizer has no unused vocabulary entries for markers {missing}")
    tokenizer.add_special_tokens({"additional_special_tokens": MARKERS})


class _OnDevice:
    def to(self, device):
        """The same batch with every tensor moved to ``device``."""
        return replace(self, **{f.name: getattr(self, f.name).to(device) for f in fields(self)
                                if isinstance(getattr(self, f.name), torch.Tensor)})


@dataclass
class REBatch(_OnDevice):
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    head_pos: torch.Tensor  # index of the head-start marker
    tail_pos: torch.Tensor
    labels: torch.Tensor | None = None
    pixels: torch.Tensor | None = None
    has_image: torch.Tensor | None = None
    image_index: torch.Tensor | None = None  # row -> image (pairs of one post share it)


def mark_entities(tokens: Sequence[str], head: tuple[int, int], tail: tuple[int, int]) -> list[str]:
    """Insert markers around the head and tail token spans."""
    inserts = {head[0]: [HEAD_START], tail[0]: [TAIL_START]}
    closes = {head[1]: [HEAD_END], tail[1]: [TAIL_END]}
    out: list[str] = []
    for i in range(len(tokens) + 1):
        out += closes.get(i, [])
        if i < len(tokens):
            out += inserts.get(i, [])
            out.append(tokens[i])
    return out


def encode_re(tokenizer, examples: Sequence[REExample], label_ids: dict[str, int] | None,
              max_len: int = 128) -> REBatch:
    texts = [mark_entities(ex.tokens, ex.head, ex.tail) for ex in examples]
    enc = tokenizer(texts, is_split_into_words=True, truncation=True, max_length=max_len, padding=True,
                    return_tensors="pt")
    ids = enc["input_ids"]
    hs, ts = tokenizer.convert_tokens_to_ids(HEAD_START), tokenizer.convert_tokens_to_ids(TAIL_START)
    head_pos = _first_index(ids, hs)
    tail_pos = _first_index(ids, ts)
    labels = None
    if label_ids is not None:
        labels = torch.tensor([label_ids[ex.relation] for ex in examples])
    return REBatch(ids, enc["attention_mask"], head_pos, tail_pos, labels)


def _first_index(ids: torch.Tensor, token_id: int) -> torch.Tensor:
    """Position of ``token_id`` per row; 0 (CLS) where truncation removed it."""
    hit = ids == token_id
    return torch.where(hit.any(1), hit.float().argmax(1), torch.zeros(ids.shape[0], dtype=torch.long))


@dataclass
class NERBatch(_OnDevice):
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    word_index: torch.Tensor  # [B, W]: wordpiece index of each word's first sub-token
    word_mask: torch.Tensor  # [B, W] bool: real (and not truncated) words
    tags: torch.Tensor | None = None
    pixels: torch.Tensor | None = None
    has_image: torch.Tensor | None = None
    image_index: torch.Tensor | None = None  # row -> image (rows sharing a picture run it once)


def encode_ner(tokenizer, sentences: Sequence[Sequence[str]], tag_ids: dict[str, int] | None,
               tags: Sequence[Sequence[str]] | None = None, max_len: int = 128) -> NERBatch:
    """Wordpieces plus, per word, the index of its first sub-token (first-sub-token alignment)."""
    enc = tokenizer([list(s) for s in sentences], is_split_into_words=True, truncation=True, max_length=max_len,
                    padding=True, return_tensors="pt")
    n_words = max(len(s) for s in sentences)
    word_index = torch.zeros(len(sentences), n_words, dtype=torch.long)
    word_mask = torch.zeros(len(sentences), n_words, dtype=torch.bool)
    for b in range(len(sentences)):
        seen = set()
        for pos, w in enumerate(enc.word_ids(b)):
            if w is not None and w not in seen:
                seen.add(w)
                word_index[b, w] = pos
                word_mask[b, w] = True
    # A word the tokenizer maps to no piece (e.g. a zero-width joiner) borrows
    # the previous word's piece (CLS for the first), so every word up to the
    # truncation point is in the CRF sequence, which must be contiguous.
    for b in range(len(sentences)):
        covered = _covered(word_mask[b], len(sentences[b]))
        prev = 0
        for w in range(covered):
            if word_mask[b, w]:
                prev = int(word_index[b, w])
            else:
                word_index[b, w], word_mask[b, w] = prev, True
    tag_tensor = None
    if tag_ids is not None and tags is not None:
        tag_tensor = torch.zeros(len(sentences), n_words, dtype=torch.long)
        for b, ts in enumerate(tags):
            tag_tensor[b, : len(ts)] = torch.tensor([tag_ids.get(t, tag_ids["O"]) for t in ts])
    return NERBatch(enc["input_ids"], enc["attention_mask"], word_index, word_mask, tag_tensor)


def _covered(mask_row: torch.Tensor, n: int) -> int:
    """One past the last word that has a sub-token (words after it were truncated)."""
    idx = torch.nonzero(mask_row[:n]).flatten()
    return int(idx[-1]) + 1 if len(idx) else 0


def attach_images(batch: REBatch | NERBatch, images: Sequence[object | None]) -> REBatch | NERBatch:
    """Give each row of ``batch`` its picture (``None``: no image), one vision pass per distinct picture.

    Pictures are told apart by identity, so rows that carry the same image
    object (the entity pairs of one post, or a benchmark attaching one photo to
    many posts) share a row of ``pixels`` through ``image_index``. A batch
    without any picture is left as it is: the encoder's learned no-image tokens.
    """
    if len(images) != batch.input_ids.shape[0]:
        raise ValueError(f"{len(images)} images for {batch.input_ids.shape[0]} rows")
    distinct: dict[int, int] = {}
    pictures: list[object] = []
    index = []
    for image in images:
        if image is None:
            index.append(-1)
            continue
        if id(image) not in distinct:
            distinct[id(image)] = len(pictures)
            pictures.append(image)
        index.append(distinct[id(image)])
    if not pictures:
        return batch
    from .vision import preprocess

    no_image = len(pictures)  # one extra row stands for "no image" (masked out by has_image)
    batch.pixels = preprocess(pictures + pictures[:1])
    batch.has_image = torch.tensor([True] * len(pictures) + [False])
    batch.image_index = torch.tensor([no_image if i < 0 else i for i in index])
    return batch
