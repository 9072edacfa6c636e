"""Helpers the torch corruption modules share (as ``blocks.py`` serves the fast ones): the batch check, the
reference's uint8 ending and the separable Gaussian filter.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from .kernels import gaussian_kernel


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


# /////////////// Gaussian filter (scipy.ndimage.gaussian_filter) ///////////////

Summation = Literal["scipy", "outward", "conv1d"]


def _pad_index(n: int, radius: int, mode: str) -> np.ndarray:
    """Indices of 0 … n-1 extended by `radius` on both sides as SciPy extends a line for `mode`.

    'nearest' repeats the edge values (a a a | a b c d | d d d); 'reflect' mirrors about the edge, the edge value
    included (d c b a | a b c d | d c b a), periodically for radii beyond n.
    """
    index = np.arange(-radius, n + radius)
    if mode == "nearest":
        return np.clip(index, 0, n - 1)
    if mode == "reflect":
        period = 2 * n
        index = np.mod(index, period)
        return np.where(index >= n, period - 1 - index, index)
    raise ValueError(f"unknown padding mode {mode!r}")


def _correlate1d(t: torch.Tensor, w: np.ndarray, dim: int, mode: str, summation: Summation) -> torch.Tensor:
    """Correlation of `t` with the symmetric kernel `w` (radius r) along `dim` (-2 or -1), extended by `mode`."""
    r = len(w) // 2
    n = t.shape[dim]
    padded = t.index_select(dim, torch.from_numpy(_pad_index(n, r, mode)).to(t.device))  # exact copies
    if summation == "conv1d":
        lines = padded.movedim(dim, -1)  # (..., n + 2r)
        kernel = torch.from_numpy(w).to(t).view(1, 1, -1)
        filtered = F.conv1d(lines.reshape(-1, 1, lines.shape[-1]), kernel).reshape(lines.shape[:-1] + (-1,))
        return filtered.movedim(-1, dim)
    out = padded.narrow(dim, r, n) * float(w[r])
    if summation == "scipy":
        tmp = torch.empty_like(out)
        for j in range(r, 0, -1):
            torch.add(padded.narrow(dim, r - j, n), padded.narrow(dim, r + j, n), out=tmp)
            tmp.mul_(float(w[r - j]))
            out.add_(tmp)
    elif summation == "outward":
        for j in range(1, r + 1):
            pair = padded.narrow(dim, r + j, n) + padded.narrow(dim, r - j, n)
            out.add_(pair, alpha=float(w[r + j]))
    else:
        raise ValueError(f"unknown summation {summation!r}")
    return out


def gaussian_filter(
    t: torch.Tensor,
    sigma: float | tuple[float, float],
    *,
    mode: Literal["nearest", "reflect"],
    summation: Summation,
    truncate: float = 4.0,
) -> torch.Tensor:
    """``scipy.ndimage.gaussian_filter`` over the last two dims of a float tensor (…, H, W): rows, then columns.

    SciPy's kernel (:func:`~.kernels.gaussian_kernel`), its line extension `mode` and its axis order (axis 0
    first, its result stored in the tensor's dtype, then axis 1); `sigma` is one value or (rows, columns). The
    summation order decides the last bits of each sum, and each caller's results were established with its own,
    so it is chosen explicitly:

    * ``"scipy"``: SciPy's own order for a symmetric kernel of radius r: ``out = x[i] · w[r]``, then
      ``out += (x[i − j] + x[i + j]) · w[r − j]`` for j = r, r − 1, …, 1, every product rounded before it is
      added. In float64 these are SciPy's doubles bit for bit (modes 'nearest' and 'reflect' alike): torch_blur's
      Gaussian and glass blur need this to equal the reference.
    * ``"outward"``: j = 1, …, r, each pair added with ``out.add_(pair, alpha=w[r + j])``, which PyTorch's
      vectorised CPU kernel evaluates as a fused multiply-add (one rounding, not two). torch_weather's spatter
      (float32: its liquid layer and mud mask) is defined by this order; its outputs match the reference only up
      to float32 rounding anyway, but SciPy's order rounds differently and would change them.
    * ``"conv1d"``: one ``F.conv1d`` per pass over the image's lines, summed in the order of whatever convolution
      algorithm the backend runs. torch_digital's elastic transform (float64 fields, mode 'reflect',
      truncate 3) is defined by it: its sums differ from SciPy's in the last bit of most values, which after the
      cast of the displacements to float32 rarely shows. "scipy" would give SciPy's doubles here too, but it is
      a change of that corruption's numbers, not of how they are computed, so it is left to a change of its own.

    The loops run over taps of shifted slices rather than a convolution, so for "scipy" and "outward" every
    pixel's sum has a fixed order that cannot depend on the batch or on which algorithm a backend picks.
    """
    sigmas = sigma if isinstance(sigma, tuple) else (sigma, sigma)
    out = t
    for dim, sd in ((-2, sigmas[0]), (-1, sigmas[1])):
        out = _correlate1d(out, gaussian_kernel(sd, truncate), dim, mode, summation)
    return out
