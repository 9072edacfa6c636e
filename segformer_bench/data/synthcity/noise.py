"""Value noise: seeded lattices interpolated at the pixel centres (the renderer's textures, one per entry of
NOISE_CELLS) or at scattered points (the sky's clouds); a function of scene position, the same at every size."""

from __future__ import annotations

import math

import numpy as np

from .constants import ASPECT


def _lattice(seed: int, octave: int, cell: float, extent: tuple[float, float] = (1.0, ASPECT)) -> np.ndarray:
    """Uniform values in [-1, 1) on a grid `cell` image heights apart that covers `extent` (height, width)."""
    rng = np.random.default_rng([seed, octave])
    shape = (math.ceil(extent[0] / cell) + 2, math.ceil(extent[1] / cell) + 2)
    return rng.random(shape, dtype=np.float32) * 2 - 1


def _smooth_index(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    i = np.floor(p)
    t = p - i
    return i.astype(np.intp), (t * t * (3 - 2 * t)).astype(np.float32)


def noise_field(seed: int, octave: int, cell: float, H: int, W: int) -> np.ndarray:
    """(H, W) value noise sampled at the pixel centres: the same function of scene position at every size.

    Separable interpolation (rows, then columns) costs a few passes over the image. Where the lattice is finer
    than a pixel, the amplitude shrinks as a pixel averaging over it would.
    """
    grid = _lattice(seed, octave, cell)
    iy, ty = _smooth_index((np.arange(H) + 0.5) / H / cell)
    ix, tx = _smooth_index((np.arange(W) + 0.5) / W * ASPECT / cell)
    rows = grid[iy] * (1 - ty)[:, None] + grid[iy + 1] * ty[:, None]  # H, gx
    field = np.take(rows, ix, axis=1) * (1 - tx) + np.take(rows, ix + 1, axis=1) * tx  # H, W
    return field * np.float32(min(1.0, cell * H))


def noise_at(seed: int, octave: int, cell: float, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Value noise at scattered points (x, y in image heights, within the lattice)."""
    grid = _lattice(seed, 100 + octave, cell, (3.0, ASPECT))
    gy, gx = grid.shape
    ix, tx = _smooth_index(np.clip(x / cell, 0, gx - 1.001))
    iy, ty = _smooth_index(np.clip(y / cell, 0, gy - 1.001))
    top = grid[iy, ix] * (1 - tx) + grid[iy, ix + 1] * tx
    bottom = grid[iy + 1, ix] * (1 - tx) + grid[iy + 1, ix + 1] * tx
    return top * (1 - ty) + bottom * ty
