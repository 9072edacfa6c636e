"""The ``torch`` backend for the noise, digital and elastic corruptions: batched, on the images' device.

Every function takes x (B, 3, H, W) uint8 on any device, a severity 1–5 and one seed per image, and returns
(B, 3, H, W) uint8 on the same device; image b depends only on its own pixels and ``seeds[b]``.

How each relates to the reference (imagecorruptions 1.1.2 after ``np.random.seed(seed)``):

- gaussian, shot, speckle and impulse noise draw their per-pixel fields on the device from a
  ``torch.Generator`` seeded with the image's seed: same distributions and the same arithmetic as the reference,
  but not the same numbers (drawing the reference's NumPy stream on the host would be the bottleneck on a GPU).
  The tests compare output statistics with the reference's; the deterministic parts are exact (impulse noise's
  untouched pixels, shot noise's count-to-value table).
- Arithmetic is float32 except where float32 visibly changes results. Many results of brightness, saturate,
  contrast and elastic are integers in exact arithmetic (the max channel, flat regions, lattice means), and
  truncation then depends on the last bit: in float32, up to 16 % of brightness/saturate values, 40 % of a
  synthetic image's contrast values and all of a flat region's elastic values came out 1 lower. These run in
  float64 with the reference's operations in its order:
  brightness and saturate are then exact; contrast is exact except, by 1, where the exact result is an integer
  and the channel mean's last bit decides (NumPy sums sequentially, torch pairwise), which needs a mean on a
  lattice: synthetic images can have one, natural ones practically never do.
- pixelate: Pillow's BOX reduction (its fixed-point coefficients and int32 accumulation) and NEAREST
  enlargement, ported as gathers: exact.
- jpeg_compression: Pillow on the host, one image at a time (there is no bit-exact JPEG codec on the device):
  exact, and the one host round trip of this backend.
- elastic_transform: the uniform displacement fields are drawn on the host from ``np.random.RandomState(seed)``
  exactly as the reference draws them; their Gaussian filtering (convolution with SciPy's kernel and 'reflect'
  border), the sample positions (SciPy's reflection and spline weights) and the bilinear resampling run on the
  device in float64. Only the filter's summation order differs from SciPy's, so a displacement rarely differs in
  its last float32 bit: equal to the reference up to ±1 on very few values.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from . import blocks, fast_digital
from .torch_ops import gaussian_filter, to_uint8


def _generator(seed: int, device: torch.device) -> torch.Generator:
    generator = torch.Generator(device=device)
    generator.manual_seed(int(seed))
    return generator


def _divide(a: torch.Tensor, divisor: float) -> torch.Tensor:
    """a / divisor, correctly rounded like NumPy's on every device.

    On CUDA, ``tensor / python_number`` is computed as ``tensor * (1 / number)``, which differs in the last bit
    (for 24 of the 256 values v / 255 in float64, 126 in float32); a divisor on the tensor's device is divided by.
    """
    return a / torch.full((), divisor, dtype=a.dtype, device=a.device)


def _unit(x: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """x / 255 in `dtype`, as NumPy computes it."""
    return _divide(x.to(dtype), 255)


def _normal_field(x: torch.Tensor, std: float, seeds: Sequence[int]) -> torch.Tensor:
    """N(0, std²) per value, float32, each image's field from its own generator."""
    field = torch.empty(x.shape, dtype=torch.float32, device=x.device)
    for b, seed in enumerate(seeds):
        field[b].normal_(0.0, std, generator=_generator(seed, x.device))
    return field


# /////////////// noise ///////////////


def gaussian_noise(x: torch.Tensor, severity: int, seeds: Sequence[int]) -> torch.Tensor:
    """x/255 + N(0, c²) per value, clipped; c = .08 … .38 (device-drawn noise)."""
    c = (0.08, 0.12, 0.18, 0.26, 0.38)[severity - 1]
    return to_uint8(_unit(x) + _normal_field(x, c, seeds))


def shot_noise(x: torch.Tensor, severity: int, seeds: Sequence[int]) -> torch.Tensor:
    """Poisson(x/255 · c) / c per value, clipped; c = 60 … 3 photons (device-drawn counts)."""
    c = (60, 25, 12, 5, 3)[severity - 1]
    rate = _unit(x) * c
    counts = torch.empty_like(rate)
    for b, seed in enumerate(seeds):
        counts[b] = torch.poisson(rate[b], generator=_generator(seed, x.device))
    # count k -> np.uint8(np.clip(k / float(c), 0, 1) * 255) exactly as the reference maps it
    levels = torch.from_numpy(blocks.to_uint8(np.arange(c + 1) / float(c))).to(x.device)
    return levels[counts.clamp_(max=c).to(torch.int64)]


def impulse_noise(x: torch.Tensor, severity: int, seeds: Sequence[int]) -> torch.Tensor:
    """Salt and pepper on a fraction c = .03 … .27 of the values, half each (device-drawn)."""
    amount = (0.03, 0.06, 0.09, 0.17, 0.27)[severity - 1]
    flipped = torch.empty(x.shape, dtype=torch.bool, device=x.device)
    salted = torch.empty_like(flipped)
    for b, seed in enumerate(seeds):
        generator = _generator(seed, x.device)
        flipped[b] = torch.rand(x.shape[1:], generator=generator, device=x.device) <= amount
        salted[b] = torch.rand(x.shape[1:], generator=generator, device=x.device) <= 0.5
    return torch.where(flipped, salted.to(torch.uint8) * 255, x)


def speckle_noise(x: torch.Tensor, severity: int, seeds: Sequence[int]) -> torch.Tensor:
    """x/255 · (1 + N(0, c²)) per value, clipped; c = .15 … .6 (device-drawn noise)."""
    c = (0.15, 0.2, 0.35, 0.45, 0.6)[severity - 1]
    unit = _unit(x)
    return to_uint8(unit + unit * _normal_field(x, c, seeds))


# /////////////// HSV (scikit-image 0.26's formulas, float64) ///////////////

# hsv2rgb picks each output channel from (v, t, p, q) by the sector floor(6h) mod 6 (see fast_digital)
_SECTOR_PICK = fast_digital._SECTOR_PICK.tolist()


def _rgb_to_hsv(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """h, s, v (B, H, W) of uint8 (B, 3, H, W), with ``skimage.color.rgb2hsv``'s formulas and tie-breaking."""
    r, g, b = x.unbind(1)
    top = torch.maximum(torch.maximum(r, g), b)
    v = _unit(top, torch.float64)
    delta = v - _unit(torch.minimum(torch.minimum(r, g), b), torch.float64)
    grey = delta == 0
    safe_delta = torch.where(grey, 1.0, delta)
    s = torch.where(grey, 0.0, delta / torch.where(grey, 1.0, v))
    blue = b == top  # ties go to blue, then green, then red
    green = (g == top) & ~blue
    minuend = torch.where(blue, r, torch.where(green, b, g))
    subtrahend = torch.where(blue, g, torch.where(green, r, b))
    h = (_unit(minuend, torch.float64) - _unit(subtrahend, torch.float64)) / safe_delta
    h = _divide(h + torch.where(blue, 4.0, torch.where(green, 2.0, 0.0)), 6.0)
    h = h + (h < 0)  # `% 1.0` for h in [-1/6, 1), as NumPy computes it (h + 1 below 0, and -0.0 -> 0.0)
    return torch.where(grey, 0.0, h), s, v


def _hsv_to_uint8_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, H, W) of ``np.uint8(np.clip(skimage.color.hsv2rgb(hsv), 0, 1) * 255)``."""
    sector = torch.floor(h * 6)
    f = h * 6 - sector
    p = v * (1 - s)
    q = v * (1 - f * s)
    t = v * (1 - (1 - f) * s)
    sector = sector.to(torch.uint8) % 6
    candidates = [to_uint8(a) for a in (v.clone(), t, p, q)]  # v is the caller's: converted on a copy
    channels = []
    for pick in _SECTOR_PICK:
        channel = candidates[pick[0]]
        for k in range(1, 6):
            channel = torch.where(sector == k, candidates[pick[k]], channel)
        channels.append(channel)
    return torch.stack(channels, dim=1)


def brightness(x: torch.Tensor, severity: int, seeds: Sequence[int]) -> torch.Tensor:
    """HSV value + c, clipped; c = .1 … .5. Deterministic (`seeds` unused)."""
    c = (0.1, 0.2, 0.3, 0.4, 0.5)[severity - 1]
    h, s, v = _rgb_to_hsv(x)
    return _hsv_to_uint8_rgb(h, s, (v + c).clamp(0, 1))


def saturate(x: torch.Tensor, severity: int, seeds: Sequence[int]) -> torch.Tensor:
    """HSV saturation · a + b, clipped; (a, b) = (.3, 0) … (20, .2). Deterministic (`seeds` unused)."""
    scale, offset = ((0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2))[severity - 1]
    h, s, v = _rgb_to_hsv(x)
    return _hsv_to_uint8_rgb(h, (s * scale + offset).clamp(0, 1), v)


# /////////////// digital ///////////////


def contrast(x: torch.Tensor, severity: int, seeds: Sequence[int]) -> torch.Tensor:
    """(x - mean) · c + mean per image and channel, clipped; c = .4 … .05. Deterministic (`seeds` unused)."""
    c = (0.4, 0.3, 0.2, 0.1, 0.05)[severity - 1]
    unit = _unit(x, torch.float64)
    means = unit.mean(dim=(2, 3), keepdim=True)
    return to_uint8((unit - means) * c + means)


def jpeg_compression(x: torch.Tensor, severity: int, seeds: Sequence[int]) -> torch.Tensor:
    """Pillow JPEG at quality 25 … 7, on the host one image at a time (exact). Deterministic."""
    host = x.permute(0, 2, 3, 1).cpu().numpy()
    out = np.stack([fast_digital.jpeg_compression(image, severity, 0) for image in host])
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous().to(x.device)


def _box_taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pillow's BOX resampling taps along one axis: (out_size, ksize) source indices and int32 weights.

    Mirrors ``precompute_coeffs`` and ``normalize_coeffs_8bpc`` of Pillow's Resample.c for box (0, in_size):
    output pixel xx covers [xx · scale, (xx + 1) · scale) of the input, each input pixel weighted 1 if its centre
    lies in (-support, support] around the output centre, normalised, then scaled to 22-bit fixed point.
    Unused taps get weight 0 (and a valid index).
    """
    scale = float(np.float32(in_size)) / out_size  # (double)(in1 - in0) / outSize with float box edges
    filterscale = max(scale, 1.0)
    support = 0.5 * filterscale
    ksize = int(np.ceil(support)) * 2 + 1
    center = (np.arange(out_size) + 0.5) * scale
    xmin = np.maximum((center - support + 0.5).astype(np.int64), 0)  # C (int) casts truncate (all ≥ 0 here)
    xmax = np.minimum((center + support + 0.5).astype(np.int64), in_size) - xmin
    taps = np.arange(ksize)
    u = ((taps + xmin[:, None]) - center[:, None] + 0.5) * (1.0 / filterscale)
    weights = np.where((u > -0.5) & (u <= 0.5) & (taps < xmax[:, None]), 1.0, 0.0)
    total = weights.sum(axis=1, keepdims=True)  # counts of ones: exact in any order
    weights = weights / np.where(total == 0, 1.0, total)
    fixed = (0.5 + weights * (1 << 22)).astype(np.int32)
    index = np.minimum(xmin[:, None] + taps, in_size - 1)
    return index, fixed


def _box_reduce(a: torch.Tensor, dim: int, out_size: int) -> torch.Tensor:
    """Pillow's 8-bit BOX pass along `dim`: 2^21 + Σ value · weight (int32), >> 22, clipped to 0..255."""
    index, weights = _box_taps(a.shape[dim], out_size)
    index = torch.from_numpy(index).to(a.device)
    weights = torch.from_numpy(weights).to(a.device)
    shape = [1] * a.dim()
    shape[dim] = out_size
    acc = torch.full((), 1 << 21, dtype=torch.int32, device=a.device)
    for k in range(index.shape[1]):
        tap = a.index_select(dim, index[:, k]).to(torch.int32)
        acc = acc + tap * weights[:, k].reshape(shape)
    return (acc >> 22).clamp_(0, 255).to(torch.uint8)


def _nearest_index(in_size: int, out_size: int) -> np.ndarray:
    """Pillow's NEAREST source index per output pixel (ImagingScaleAffine: a running float64 sum, truncated)."""
    step = float(np.float32(in_size)) / out_size
    positions = np.cumsum(np.concatenate(([0.0 + step * 0.5], np.full(out_size - 1, step))))  # sequential sums
    index = positions.astype(np.int64)
    if index.min() < 0 or index.max() >= in_size:  # cannot happen for an enlargement; fail loudly if it does
        raise AssertionError("NEAREST index out of range")
    return index


def pixelate(x: torch.Tensor, severity: int, seeds: Sequence[int]) -> torch.Tensor:
    """Pillow BOX downscale by .6 … .25, NEAREST upscale back (exact port). Deterministic (`seeds` unused)."""
    c = (0.6, 0.5, 0.4, 0.3, 0.25)[severity - 1]
    height, width = x.shape[2:]
    small_h, small_w = int(height * c), int(width * c)
    small = _box_reduce(_box_reduce(x, 3, small_w), 2, small_h)  # Pillow: horizontal pass, then vertical
    rows = torch.from_numpy(_nearest_index(small_h, height)).to(x.device)
    cols = torch.from_numpy(_nearest_index(small_w, width)).to(x.device)
    return small.index_select(2, rows).index_select(3, cols)


# /////////////// elastic ///////////////


def reflect_linear(coords: torch.Tensor, n: int) -> tuple[torch.Tensor, ...]:
    """Taps and weights of SciPy 1.17's order-1 'reflect' interpolation along one axis (see fast_digital)."""
    period = 2 * n
    a = torch.where(coords < -period, period * torch.trunc(_divide(-coords, period)) + coords, coords)
    low = torch.where(a < -n, a + period, torch.where(a > -1e-15, 1e-15, -a) - 1)
    b = coords - period * torch.trunc(_divide(coords, period))
    high = torch.where(b >= n, period - b - 1, b)
    c = torch.where(coords < 0, low, torch.where(coords > n - 1, high, coords))
    floor = torch.floor(c)
    w0 = 1.0 - (c - floor)
    w1 = 1.0 - w0
    i0 = floor.to(torch.int64).clamp_(min=0)
    i1 = (floor.to(torch.int64) + 1).clamp_(max=n - 1)
    return i0, i1, w0, w1


def elastic_transform(x: torch.Tensor, severity: int, seeds: Sequence[int]) -> torch.Tensor:
    """Smooth random displacement (host-drawn fields, device filtering and bilinear resampling)."""
    alpha = (250 * 0.05, 250 * 0.065, 250 * 0.085, 250 * 0.1, 250 * 0.12)[severity - 1]
    batch, _, height, width = x.shape
    max_d = height * 0.005
    draws = []
    for seed in seeds:  # dx's field, then dy's, from the legacy stream, as the reference draws them
        rs = np.random.RandomState(seed)
        draws.append(rs.uniform(-max_d, max_d, size=(2, height, width)))
    fields = torch.from_numpy(np.stack(draws)).to(x.device).view(-1, height, width)
    sigma = (height * 0.01, width * 0.01)
    # skimage's gaussian(field, sigma, mode='reflect', truncate=3), the filter summed by conv1d (see gaussian_filter)
    smooth = gaussian_filter(fields, sigma, mode="reflect", summation="conv1d", truncate=3)
    shifts = (smooth * alpha).to(torch.float32).view(batch, 2, height, width)
    rows = torch.arange(height, device=x.device, dtype=torch.float64).view(1, height, 1)
    cols = torch.arange(width, device=x.device, dtype=torch.float64).view(1, 1, width)
    y0, y1, wy0, wy1 = reflect_linear(rows + shifts[:, 1].to(torch.float64), height)  # (B, H, W) each
    x0, x1, wx0, wx1 = reflect_linear(cols + shifts[:, 0].to(torch.float64), width)

    values = _unit(x).to(torch.float64).reshape(batch, 3, height * width)  # float32 x / 255, as SciPy reads it

    def corner(iy: torch.Tensor, ix: torch.Tensor) -> torch.Tensor:
        flat = (iy * width + ix).view(batch, 1, -1).expand(-1, 3, -1)
        return values.gather(2, flat).view(batch, 3, height, width)

    # SciPy's sum: ((value · w_row) · w_col) per tap, in this order (see fast_digital), cast to float32 at the end
    wy0, wy1, wx0, wx1 = (w.unsqueeze(1) for w in (wy0, wy1, wx0, wx1))
    t = corner(y0, x0) * wy0 * wx0
    t = t + corner(y0, x1) * wy0 * wx1
    t = t + corner(y1, x0) * wy1 * wx0
    t = t + corner(y1, x1) * wy1 * wx1
    return to_uint8(t.to(torch.float32))


TORCH = {
    "gaussian_noise": gaussian_noise,
    "shot_noise": shot_noise,
    "impulse_noise": impulse_noise,
    "speckle_noise": speckle_noise,
    "brightness": brightness,
    "contrast": contrast,
    "saturate": saturate,
    "jpeg_compression": jpeg_compression,
    "pixelate": pixelate,
    "elastic_transform": elastic_transform,
}
