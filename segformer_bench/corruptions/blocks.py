"""Helpers the fast corruption modules share: row-blocked loops, the reference's x / 255. and its uint8 ending."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

# Values per block of the row-blocked loops: 32 k float64 values (256 KiB) keep a block's temporaries in L2.
BLOCK_ELEMENTS = 1 << 15


# x / 255. of every uint8 value, computed as the reference computes it (float64): a lookup (indexing, cv2.LUT)
# replaces the division. (v / 255.) * 255 == v for every v, so a pixel that the reference passes through its float
# arithmetic untouched comes back unchanged. The torch blur module copies it to the device for the same purpose.
DIV255 = np.arange(256) / 255.0


def row_blocks(height: int, row_elements: int) -> Iterator[slice]:
    """Consecutive row slices covering `height` rows, each about BLOCK_ELEMENTS values of `row_elements` per row."""
    step = max(1, BLOCK_ELEMENTS // max(1, row_elements))
    for top in range(0, height, step):
        yield slice(top, min(top + step, height))


def to_uint8(a: np.ndarray) -> np.ndarray:
    """The reference's ending, ``np.uint8(np.clip(a, 0, 1) * 255)`` (truncation), using float `a` as scratch."""
    np.clip(a, 0, 1, out=a)
    a *= 255
    return a.astype(np.uint8)
