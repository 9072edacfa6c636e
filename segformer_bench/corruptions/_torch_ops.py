"""Helpers the torch corruption modules share (as ``_blocks.py`` serves the fast ones): the batch check and the
reference's uint8 ending.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def check_batch(x: torch.Tensor, seeds: Sequence[int]) -> None:
    """Raise ValueError unless `x` is a (B, 3, H, W) uint8 tensor and `seeds` has one seed per image.

    The torch backend's own contract, checked by its blur and weather functions (the public ``corrupt_batch``
    checks its input before it gets here, with a UserError).
    """
    if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"expected a (B, 3, H, W) uint8 tensor, got {tuple(x.shape)} {x.dtype}")
    if len(seeds) != x.shape[0]:
        raise ValueError(f"expected one seed per image: {x.shape[0]} images, {len(seeds)} seeds")


def to_uint8(a: torch.Tensor) -> torch.Tensor:
    """The reference's ending, ``np.uint8(np.clip(a, 0, 1) * 255)``, of a float tensor, using `a` as scratch.

    `a` is clamped and scaled in place (pass a copy if it is still needed); the float-to-uint8 conversion
    truncates, as NumPy's does. In place or not, clamp and the multiplication by 255 round the same way, so the
    result is that of the out-of-place expression in `a`'s dtype.
    """
    return a.clamp_(0, 1).mul_(255).to(torch.uint8)
