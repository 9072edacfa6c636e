"""The ``torch`` backend of the blur corruptions: glass, motion, defocus, Gaussian and zoom blur, batched.

Each function takes a (B, 3, H, W) uint8 tensor on any device and one seed per image, and returns (B, 3, H, W)
uint8 on the same device; image b depends only on its own pixels and ``seeds[b]``. The random draws (glass blur's
offsets, motion blur's angle) are made on the host by ``np.random.RandomState(seed)`` exactly as in the ``fast``
backend, whose helpers define them; the arithmetic runs on the device.

Precision: these corruptions end with ``np.uint8`` truncation of filtered values, and in flat regions the
reference's float64 result sits within 1e-13 of an integer (x / 255 · Σw · 255 with Σw = 1 ± a few ulp; the defocus
kernels of severities 1–3 sum to 1 − 4e-9, so the reference darkens flat regions by one level). A float32 filter
lands on either side of that integer at random: on flat images it disagrees with the reference for 13–46 % of the
grey levels (measured for every Gaussian sigma used), i.e. whole regions off by one. So the filters run in float64,
and where the reference's operations are elementwise they are repeated operation by operation, in its order and
dtype, which makes the results bit-identical to the reference: the separable Gaussian (SciPy's summation order),
motion blur's tap sum, zoom blur's linear interpolation (float64 terms stored as float32) and glass blur's pixel
copies (an exact gather). Defocus blur sums the kernel's taps in float64 in an order that is not OpenCV's (its
filter2D differs from any plain tap sum by ~1e-15): it can differ by one where the reference lies within ~1e-12 of
an integer (no such pixel in the tests). The tests check these
claims against the reference on the CPU; CUDA's float64 add and multiply are IEEE-exact too, and PyTorch does not
fuse separate eager operations, so the same results are expected there.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from . import blocks
from . import fast_blur as fb
from .kernels import motion_taps
from .torch_ops import check_batch, gaussian_filter, to_uint8


def _div255(x: torch.Tensor) -> torch.Tensor:
    """``x / 255.`` in float64, as the reference computes it (a 256-entry lookup of NumPy's own quotients)."""
    table = torch.from_numpy(blocks.DIV255).to(x.device)
    return table[x.long()]


def _gaussian(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """skimage.filters.gaussian(x, sigma, channel_axis=-1) of float64 (B, C, H, W): SciPy's filter, bit for bit."""
    return gaussian_filter(x, sigma, mode="nearest", summation="scipy")


def gaussian_blur(x: torch.Tensor, severity: int, seeds: Sequence[int]) -> torch.Tensor:
    """imagecorruptions' gaussian_blur (deterministic: `seeds` only fix the batch size)."""
    check_batch(x, seeds)
    return to_uint8(_gaussian(_div255(x), fb.GAUSSIAN_SIGMA[severity - 1]))


# /////////////// glass blur ///////////////


def _glass_index(offsets: torch.Tensor, H: int, W: int, delta: int) -> torch.Tensor:
    """One pass of glass blur's copies for a batch: (B, H·W) source pixel of every pixel.

    `offsets` is (B, n, 2) int (dx, dy) in the reference's visiting order. The copy chains of
    :func:`fast_blur.glass_shuffle_index` are followed by pointer doubling: ``jump[p]`` is s(p) where p's step is
    forward and p itself otherwise, and ``jump = jump[jump]`` until no chain has a forward step left.
    """
    B = offsets.shape[0]
    Hi, Wi = H - 2 * delta, W - 2 * delta
    device = offsets.device
    dx = offsets[..., 0].long().view(B, Hi, Wi).flip(1, 2)  # visiting order runs backwards along both axes
    dy = offsets[..., 1].long().view(B, Hi, Wi).flip(1, 2)
    rows = torch.arange(delta + 1, H - delta + 1, device=device).view(1, Hi, 1)
    cols = torch.arange(delta + 1, W - delta + 1, device=device).view(1, 1, Wi)
    src_r, src_c = rows + dy, cols + dx
    base = torch.arange(B, device=device).view(B, 1, 1) * (H * W)  # flat indices over the whole batch
    source = torch.arange(H * W, device=device).view(1, H, W).expand(B, H, W) + base
    source = source.contiguous()
    source[:, delta + 1 : H - delta + 1, delta + 1 : W - delta + 1] = src_r * W + src_c + base
    forward = torch.zeros(B, H, W, dtype=torch.bool, device=device)
    forward[:, delta + 1 : H - delta + 1, delta + 1 : W - delta + 1] = (
        ((dy > 0) | ((dy == 0) & (dx > 0))) & (src_r <= H - delta) & (src_c > delta) & (src_c <= W - delta)
    )
    source, forward = source.view(-1), forward.view(-1)
    jump = torch.where(forward, source, torch.arange(B * H * W, device=device))
    while bool(forward[jump].any()):
        jump = jump[jump]
    index = source[jump]  # the source of the chain's last pixel
    return index.view(B, H * W) - base.view(B, 1)


def glass_blur(x: torch.Tensor, severity: int, seeds: Sequence[int]) -> torch.Tensor:
    """imagecorruptions' glass_blur: Gaussian, uint8 truncation, 1–3 passes of local pixel copies, Gaussian."""
    check_batch(x, seeds)
    sigma, delta, iterations = fb.GLASS[severity - 1]
    B, C, H, W = x.shape
    y = _gaussian(_div255(x), sigma).mul_(255).to(torch.uint8).view(B, C, H * W)  # np.uint8(gaussian(...) * 255)
    states = [np.random.RandomState(seed) for seed in seeds]
    index = None
    for _ in range(iterations):
        # int8 (the draws lie in [-delta, delta - 1]) makes the host-to-device copy a quarter of int32
        draws = np.stack([fb.glass_offsets(rs, (H, W), delta).astype(np.int8) for rs in states])
        step = _glass_index(torch.from_numpy(draws).to(x.device), H, W, delta)
        index = step if index is None else index.gather(1, step)
    y = y.gather(2, index.view(B, 1, H * W).expand(B, C, H * W)).view(B, C, H, W)
    return to_uint8(_gaussian(_div255(y), sigma))


# /////////////// defocus blur ///////////////


def defocus_blur(x: torch.Tensor, severity: int, seeds: Sequence[int]) -> torch.Tensor:
    """imagecorruptions' defocus_blur: the disk kernel with reflect-101 borders (cv2.filter2D), in float64.

    The correlation is a sum of shifted copies of the padded image, one per non-zero kernel weight (61 to 429;
    adding 0 · x changes nothing), in row-major kernel order. Unlike ``conv2d`` this needs no im2col buffer on the
    CPU, and its summation order does not depend on the batch, so image b depends on its own pixels only, bit for
    bit.
    """
    check_batch(x, seeds)
    radius, alias_blur = fb.DEFOCUS[severity - 1]
    kernel = fb.defocus_kernel(radius, alias_blur).astype(np.float64)
    H, W = x.shape[-2:]
    r = kernel.shape[0] // 2
    padded = F.pad(_div255(x), (r, r, r, r), mode="reflect")  # torch's reflect is OpenCV's reflect-101
    out = torch.zeros_like(padded[:, :, :H, :W])
    term = torch.empty_like(out)
    for i, j in zip(*np.nonzero(kernel), strict=True):
        torch.mul(padded[:, :, i : i + H, j : j + W], float(kernel[i, j]), out=term)
        out.add_(term)
    return to_uint8(out)


# /////////////// motion blur ///////////////


def motion_blur(x: torch.Tensor, severity: int, seeds: Sequence[int]) -> torch.Tensor:
    """imagecorruptions' motion_blur: a one-sided Gaussian along a random direction in [−45°, 45°].

    The angle of image b comes from ``RandomState(seeds[b])``; tap i of every image is gathered at once with
    edge-replicated indices ``clip(h − dy), clip(w − dx)`` and added in float64 in the reference's tap order.
    Images whose motion stops early (at the image border, like the reference) get zero weights past their last
    tap, and adding 0.0 changes nothing.
    """
    check_batch(x, seeds)
    radius, sigma = fb.MOTION[severity - 1]
    B, C, H, W = x.shape
    width = 2 * radius + 1
    weight = np.zeros((B, width))
    shift = np.zeros((B, width, 2), dtype=np.int64)
    for b, seed in enumerate(seeds):
        taps = motion_taps((H, W), radius, sigma, fb.motion_angle(np.random.RandomState(seed)))
        for i, (k, dy, dx) in enumerate(taps):
            weight[b, i] = k
            shift[b, i] = dy, dx
    device = x.device
    weight = torch.from_numpy(weight).to(device)
    shift = torch.from_numpy(shift).to(device)
    h = torch.arange(H, device=device)
    w = torch.arange(W, device=device)
    out = None
    for i in range(width):
        rows = (h.view(1, H) - shift[:, i, 0:1]).clamp_(0, H - 1)  # (B, H)
        cols = (w.view(1, W) - shift[:, i, 1:2]).clamp_(0, W - 1)  # (B, W)
        shifted = x.gather(2, rows.view(B, 1, H, 1).expand(B, C, H, W))
        shifted = shifted.gather(3, cols.view(B, 1, 1, W).expand(B, C, H, W))
        term = shifted.to(torch.float64).mul_(weight[:, i].view(B, 1, 1, 1))
        out = term if out is None else out.add_(term)
    return out.clamp_(0, 255).to(torch.uint8)


# /////////////// zoom blur ///////////////


def _clipped_zoom(x: torch.Tensor, zoom: float) -> torch.Tensor:
    """:func:`fast_blur.clipped_zoom` of float32 (B, C, H, W) on the device: SciPy's four float64 terms, as float32."""
    B, C, H, W = x.shape
    ch0, ch1 = int(np.ceil(H / float(zoom))), int(np.ceil(W / float(zoom)))
    top0, top1 = (H - ch0) // 2, (W - ch1) // 2
    out_h, out_w = int(round(ch0 * zoom)), int(round(ch1 * zoom))
    keep_h, keep_w = min(out_h, H), min(out_w, W)
    crop = x[:, :, top0 : top0 + ch0, top1 : top1 + ch1]
    if (out_h, out_w) == (ch0, ch1):  # zoom 1: scipy returns the input unchanged
        return crop[:, :, :keep_h, :keep_w]
    device = x.device
    y0, y1, wy0, wy1, y_out = (torch.from_numpy(np.asarray(a)).to(device) for a in fb._zoom_axis(ch0, out_h, keep_h))
    x0, x1, wx0, wx1, x_out = (torch.from_numpy(np.asarray(a)).to(device) for a in fb._zoom_axis(ch1, out_w, keep_w))
    wy0, wy1 = wy0.view(1, 1, -1, 1), wy1.view(1, 1, -1, 1)
    r0 = crop.index_select(2, y0).to(torch.float64).mul_(wy0)  # v · w_y
    r1 = crop.index_select(2, y1).to(torch.float64).mul_(wy1)
    t = r0.index_select(3, x0).mul_(wx0)  # 0.0 + v · w_y · w_x, then three more terms in SciPy's order
    t.add_(r0.index_select(3, x1).mul_(wx1))
    t.add_(r1.index_select(3, x0).mul_(wx0))
    t.add_(r1.index_select(3, x1).mul_(wx1))
    t = t.to(torch.float32)
    t[:, :, y_out] = 0  # past the last input row or column: cval
    t[:, :, :, x_out] = 0
    return t


def zoom_blur(x: torch.Tensor, severity: int, seeds: Sequence[int]) -> torch.Tensor:
    """imagecorruptions' zoom_blur: the float32 mean of the image and its centre zooms (deterministic)."""
    check_batch(x, seeds)
    factors = fb.zoom_factors(severity)
    H, W = x.shape[-2:]
    xf = _div255(x).to(torch.float32)
    out = torch.zeros_like(xf)
    for zoom in factors:
        layer = _clipped_zoom(xf, float(zoom))
        out[:, :, : layer.shape[2], : layer.shape[3]] += layer
    return to_uint8((xf + out) / (len(factors) + 1))


TORCH = {
    "glass_blur": glass_blur,
    "motion_blur": motion_blur,
    "defocus_blur": defocus_blur,
    "gaussian_blur": gaussian_blur,
    "zoom_blur": zoom_blur,
}
