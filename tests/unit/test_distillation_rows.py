"""Attention distillation masks vision queries per row, also when rows share pictures."""
from __future__ import annotations

from types import SimpleNamespace

import torch

from continual.distillation import row_has_image, vision_query_mask
from extractors.fusion import NO_IMAGE_TOKENS


def test_rows_sharing_pictures_get_their_own_picture_flag():
    # pictures 0 and 1 are real, picture 2 stands for "no image" (extractors.features.attach_images)
    batch = SimpleNamespace(has_image=torch.tensor([True, True, False]), image_index=torch.tensor([0, 2, 1, 2]))
    rows = row_has_image(batch)
    assert rows.tolist() == [True, False, True, False]
    mask = vision_query_mask(rows, 4, 1 + NO_IMAGE_TOKENS + 3, "cpu")
    assert mask[:, : 1 + NO_IMAGE_TOKENS].all()  # every row keeps its CLS and no-image tokens
    assert mask[0].all() and mask[2].all() and not mask[1, 1 + NO_IMAGE_TOKENS:].any()
    plain = SimpleNamespace(has_image=torch.tensor([True, False]))  # one picture per row already
    assert row_has_image(plain).tolist() == [True, False]
    assert row_has_image(SimpleNamespace(has_image=None, image_index=None)) is None
