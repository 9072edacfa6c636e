"""The ``fast`` backend for the noise, digital and elastic corruptions: exact, vectorised CPU ports.

Each function returns, for every image, severity and seed, the very bytes of ``reference_corrupt(x, name, severity,
seed)`` (imagecorruptions 1.1.2 after ``np.random.seed(seed)``; impulse noise with scikit-image's generator seeded by
``rng=seed``). Exactness comes from doing the reference's float arithmetic in the same order and precision, so the
final truncation ``np.uint8(...)`` sees the same floats. What is faster:

- Noise: the reference's random draws are kept (same generator, same calls, same order), but drawn and processed in
  blocks of rows that stay in cache, with lookup tables for ``x / 255.`` instead of float64 image copies. Drawing in
  blocks yields the same stream as one full-size draw (the legacy generator caches its spare Gaussian in its state).
  The draws are the floor of the cost: Poisson sampling alone is ~0.5 s for a 1024×2048 image.
- brightness, saturate: scikit-image's ``rgb2hsv``/``hsv2rgb`` (boolean fancy indexing, ``np.choose`` over 18
  stacked planes) re-done with the same formulas and tie-breaking on blocks of pixels; the max/min and the channel
  selection work on the uint8 values, which ``x / 255.`` maps monotonically. (Checked once against the reference
  on all 2^24 colours at every severity; the tests use greys, primaries, ties and random colours.)
- contrast: the per-channel mean is computed exactly as the reference does; the rest is a per-channel lookup table.
- elastic_transform: the displacement fields are drawn and Gaussian-filtered exactly as in the reference (SciPy);
  ``map_coordinates(order=1, mode='reflect')`` is re-done as a vectorised bilinear gather with SciPy 1.17's own
  coordinate reflection, spline weights and summation order (in float64, cast to float32 like SciPy's output).
- jpeg_compression, pixelate: the reference's Pillow calls on the array's ``Image.fromarray`` (already fast).

Signature of every function: ``(x, severity, seed) -> uint8 H×W×3`` with x uint8 H×W×3, H, W ≥ 32, severity 1–5.
"""

from __future__ import annotations

from io import BytesIO

import cv2
import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from . import blocks
from .blocks import DIV255, row_blocks, to_uint8

# elastic_transform's np.array(image, dtype=np.float32) / 255. (float32 division), widened as SciPy reads it
_UNIT32_AS64 = (np.arange(256, dtype=np.float32) / np.float32(255.0)).astype(np.float64)





# /////////////// noise ///////////////


def gaussian_noise(x: np.ndarray, severity: int, seed: int) -> np.ndarray:
    """x/255 + N(0, c²) per value, clipped; c = .08 … .38."""
    x = np.ascontiguousarray(x)
    c = (0.08, 0.12, 0.18, 0.26, 0.38)[severity - 1]
    rs = np.random.RandomState(seed)
    out = np.empty_like(x)
    for rows in row_blocks(*x.shape[:2]):
        field = rs.normal(size=x[rows].shape, scale=c)
        field += cv2.LUT(x[rows], DIV255)
        out[rows] = to_uint8(field)
    return out


def shot_noise(x: np.ndarray, severity: int, seed: int) -> np.ndarray:
    """Poisson(x/255 · c) / c per value, clipped; c = 60 … 3 photons."""
    x = np.ascontiguousarray(x)
    c = (60, 25, 12, 5, 3)[severity - 1]
    rs = np.random.RandomState(seed)
    rate = DIV255 * c
    # counts k ≥ c all clip to 255; below, np.uint8(np.clip(k / float(c), 0, 1) * 255) as in the reference
    levels = to_uint8(np.arange(c + 1) / float(c))
    out = np.empty_like(x)
    for rows in row_blocks(*x.shape[:2]):
        counts = rs.poisson(cv2.LUT(x[rows], rate))
        out[rows] = levels[np.minimum(counts, c)]
    return out


def impulse_noise(x: np.ndarray, severity: int, seed: int) -> np.ndarray:
    """Salt and pepper: scikit-image 0.26's ``random_noise(x / 255., mode='s&p', amount=c, rng=seed)``.

    scikit-image draws ``rng.random(shape) <= amount`` (which values flip) for the whole image, then
    ``rng.random(shape) <= 0.5`` (salt rather than pepper), both float64 from ``np.random.default_rng(seed)``;
    flipped values become 1 (salt) or 0 (pepper), the rest stay x / 255., which maps back to x exactly.
    """
    x = np.ascontiguousarray(x)
    amount = (0.03, 0.06, 0.09, 0.17, 0.27)[severity - 1]
    rng = np.random.default_rng(seed)
    height, width = x.shape[:2]
    flipped = np.empty(x.shape, dtype=bool)
    salted = np.empty(x.shape, dtype=bool)
    scratch = np.empty(min(height, max(1, blocks.BLOCK_ELEMENTS // width)) * width * 3)
    for mask, p in ((flipped, amount), (salted, 0.5)):  # all of the first draw comes before the second
        for rows in row_blocks(height, width):
            draw = scratch[: mask[rows].size].reshape(mask[rows].shape)
            rng.random(out=draw)
            np.less_equal(draw, p, out=mask[rows])
    out = x.copy()
    np.copyto(out, salted.view(np.uint8) * np.uint8(255), where=flipped)
    return out


def speckle_noise(x: np.ndarray, severity: int, seed: int) -> np.ndarray:
    """x/255 · (1 + N(0, c²)) per value, clipped; c = .15 … .6."""
    x = np.ascontiguousarray(x)
    c = (0.15, 0.2, 0.35, 0.45, 0.6)[severity - 1]
    rs = np.random.RandomState(seed)
    out = np.empty_like(x)
    for rows in row_blocks(*x.shape[:2]):
        field = rs.normal(size=x[rows].shape, scale=c)
        unit = cv2.LUT(x[rows], DIV255)
        field *= unit  # the reference's x + x * noise, in its order
        field += unit
        out[rows] = to_uint8(field)
    return out


# /////////////// HSV (scikit-image 0.26's rgb2hsv / hsv2rgb, float64) ///////////////
#
# Vectorised on blocks of pixels with the reference's float64 formulas, in its order. NumPy's remainder and
# np.choose dominate a literal port, so: the case analysis runs on uint8 codes, channel selection shifts bytes out
# of packed 32-bit words, and x / 255. comes from cv2.LUT.

_TINY = 1e-300  # a denominator for the grey pixels, whose numerator is 0: gives 0, as rgb2hsv's masking does
# rgb2hsv's hue case per code = is_blue_max | is_green_max << 1 | is_grey << 2 (ties go to blue, then green):
# hue = (minuend - subtrahend) / delta + offset with (g - b) + 0 for red, (b - r) + 2 green, (r - g) + 4 blue;
# grey pixels get hue 0. A table entry is the byte shift of the channel in an r | g << 8 | b << 16 word.
_CASES = [2 if code & 5 else 1 if code & 2 else 0 for code in range(256)]  # 0 red, 1 green, 2 blue (or grey)
_HUE_OFFSET = np.array([(0.0, 2.0, 4.0)[case] if code & 4 == 0 else 0.0 for code, case in enumerate(_CASES)])
_MINUEND_SHIFT = np.array([(8, 16, 0)[case] for case in _CASES], dtype=np.uint8)
_SUBTRAHEND_SHIFT = np.array([(16, 0, 8)[case] for case in _CASES], dtype=np.uint8)
# hsv2rgb takes each output channel from (v, t, p, q) by the sector floor(6h) mod 6:
# sector 0: (v, t, p), 1: (q, v, p), 2: (p, v, t), 3: (p, q, v), 4: (t, p, v), 5: (v, p, q);
# here as byte shifts into a v | t << 8 | p << 16 | q << 24 word, sector 6 (6h rounded up to 6.0) being 0
_SECTOR_PICK = np.array([[0, 3, 2, 2, 1, 0], [1, 0, 0, 3, 2, 2], [2, 2, 1, 0, 0, 3]], dtype=np.uint8)
_SECTOR_SHIFT = [np.resize(8 * _SECTOR_PICK[c], 256).astype(np.uint8) for c in range(3)]


def _rgb_to_hsv(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """h, s, v (float64) and max(r, g, b) (uint8) of uint8 pixels (rows×W×3), as ``rgb2hsv(x / 255.)`` has them."""
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    top = np.maximum(np.maximum(r, g), b)
    bottom = np.minimum(np.minimum(r, g), b)
    v = cv2.LUT(top, DIV255)
    delta = v - cv2.LUT(bottom, DIV255)
    s = delta / np.maximum(v, _TINY)  # delta / v, and 0 for black
    code = (b == top).view(np.uint8) | ((g == top).view(np.uint8) << 1) | ((top == bottom).view(np.uint8) << 2)
    word = cv2.cvtColor(x, cv2.COLOR_RGB2RGBA).view(np.uint32)[..., 0]
    minuend = (word >> cv2.LUT(code, _MINUEND_SHIFT)).astype(np.uint8)
    subtrahend = (word >> cv2.LUT(code, _SUBTRAHEND_SHIFT)).astype(np.uint8)
    h = cv2.LUT(minuend, DIV255) - cv2.LUT(subtrahend, DIV255)
    h /= np.maximum(delta, _TINY)
    h += cv2.LUT(code, _HUE_OFFSET)  # + 0.0 for red only turns -0.0 into 0.0, as `% 1.0` below does anyway
    h /= 6.0
    h += (h < 0).view(np.uint8)  # `% 1.0` for h in [-1/6, 1): h + 1 below 0 (then rounded), h itself above
    return h, s, v, top


def _hsv_to_uint8_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray, v8: np.ndarray) -> np.ndarray:
    """``np.uint8(np.clip(hsv2rgb(hsv), 0, 1) * 255)`` for float64 h, s, v in [0, 1]; v8 = that of v alone."""
    h6 = h * 6
    sector = np.floor(h6)
    f = h6 - sector
    p = v * (1 - s)
    q = v * (1 - f * s)
    t = v * (1 - (1 - f) * s)
    # p, q, t lie in [0, v] ⊂ [0, 1] (s, f in [0, 1]), so the clip is the identity for them
    candidates = [v8] + [(a * 255).astype(np.uint8) for a in (t, p, q)]
    word = cv2.merge(candidates).view(np.uint32)[..., 0]
    sector = sector.astype(np.uint8)
    return cv2.merge([(word >> cv2.LUT(sector, shift)).astype(np.uint8) for shift in _SECTOR_SHIFT])


def brightness(x: np.ndarray, severity: int, seed: int) -> np.ndarray:
    """HSV value + c, clipped; c = .1 … .5. Deterministic (`seed` unused)."""
    x = np.ascontiguousarray(x)
    c = (0.1, 0.2, 0.3, 0.4, 0.5)[severity - 1]
    value = np.clip(DIV255 + c, 0, 1)  # the new value per old value (the max channel)
    value8 = to_uint8(value.copy())
    out = np.empty_like(x)
    for rows in row_blocks(*x.shape[:2]):
        h, s, _, top = _rgb_to_hsv(x[rows])
        out[rows] = _hsv_to_uint8_rgb(h, s, cv2.LUT(top, value), cv2.LUT(top, value8))
    return out


def saturate(x: np.ndarray, severity: int, seed: int) -> np.ndarray:
    """HSV saturation · a + b, clipped; (a, b) = (.3, 0) … (20, .2). Deterministic (`seed` unused)."""
    x = np.ascontiguousarray(x)
    scale, offset = ((0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2))[severity - 1]
    out = np.empty_like(x)
    for rows in row_blocks(*x.shape[:2]):
        h, s, v, top = _rgb_to_hsv(x[rows])
        s *= scale
        s += offset
        np.clip(s, 0, 1, out=s)
        out[rows] = _hsv_to_uint8_rgb(h, s, v, top)  # np.uint8((top / 255.) * 255) == top
    return out


# /////////////// digital ///////////////


def contrast(x: np.ndarray, severity: int, seed: int) -> np.ndarray:
    """(x - mean) · c + mean per channel, clipped; c = .4 … .05. Deterministic (`seed` unused)."""
    x = np.ascontiguousarray(x)
    c = (0.4, 0.3, 0.2, 0.1, 0.05)[severity - 1]
    # the mean's rounding depends on NumPy's reduction order, so reduce the very array the reference reduces
    means = np.mean(cv2.LUT(x, DIV255), axis=(0, 1))
    tables = to_uint8((DIV255[:, None] - means) * c + means)  # 256×3: every value of every channel
    return cv2.LUT(x, tables[None])


def jpeg_compression(x: np.ndarray, severity: int, seed: int) -> np.ndarray:
    """Pillow JPEG at quality 25 … 7, decoded again. Deterministic (`seed` unused)."""
    x = np.ascontiguousarray(x)
    quality = (25, 18, 15, 10, 7)[severity - 1]
    buffer = BytesIO()
    Image.fromarray(x).save(buffer, "JPEG", quality=quality)
    return np.array(Image.open(buffer))


def pixelate(x: np.ndarray, severity: int, seed: int) -> np.ndarray:
    """Pillow BOX downscale by .6 … .25, NEAREST upscale back. Deterministic (`seed` unused)."""
    x = np.ascontiguousarray(x)
    c = (0.6, 0.5, 0.4, 0.3, 0.25)[severity - 1]
    height, width = x.shape[:2]
    small = Image.fromarray(x).resize((int(width * c), int(height * c)), Image.BOX)
    return np.array(small.resize((width, height), Image.NEAREST))


# /////////////// elastic ///////////////


def reflect_linear(coords: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Taps and weights of SciPy 1.17's order-1 ``map_coordinates`` with mode 'reflect' along one axis.

    Returns (i0, i1, w0, w1): value = v[i0] · w0 + v[i1] · w1. SciPy first folds a coordinate outside [0, n-1]
    back (half-sample symmetric, with a 1e-15 guard just below 0), takes start = floor(c), w0 = 1 - (c - start),
    w1 = 1 - w0, and reflects the taps start and start + 1 that fall outside the image (-1 → 0, n → n-1).
    """
    period = 2 * n
    c = coords
    if c.min() < 0 or c.max() > n - 1:
        c = c.copy()
        low = c < 0
        if low.any():
            a = c[low]
            a = np.where(a < -period, period * np.trunc(-a / period) + a, a)
            c[low] = np.where(a < -n, a + period, np.where(a > -1e-15, 1e-15, -a) - 1)
        high = c > n - 1
        if high.any():
            a = c[high]
            a = a - period * np.trunc(a / period)
            c[high] = np.where(a >= n, period - a - 1, a)
    floor = np.floor(c)
    w0 = c - floor
    np.subtract(1.0, w0, out=w0)
    w1 = 1.0 - w0
    i0 = floor.astype(np.intp)  # in [-1, n-1] after the folding above
    i1 = i0 + 1  # in [0, n]
    np.maximum(i0, 0, out=i0)
    np.minimum(i1, n - 1, out=i1)
    return i0, i1, w0, w1


def _tap_values(words: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Values of the pixels at flat `index` (rows×W) as float64 channel planes (3, rows, W), as SciPy reads them."""
    pixels = words[index].view(np.uint8).reshape(*index.shape, 4)
    planes = np.stack(cv2.split(pixels)[:3]).reshape(3 * index.shape[0], index.shape[1])
    return cv2.LUT(planes, _UNIT32_AS64).reshape(3, *index.shape)


def elastic_transform(x: np.ndarray, severity: int, seed: int) -> np.ndarray:
    """Smooth random displacement (Gaussian-filtered uniform fields, σ = 1 % of the size), bilinear resampling."""
    x = np.ascontiguousarray(x)
    alpha = (250 * 0.05, 250 * 0.065, 250 * 0.085, 250 * 0.1, 250 * 0.12)[severity - 1]
    height, width = x.shape[:2]
    sigma = np.array((height, width)) * 0.01
    max_d = height * 0.005  # the reference uses the height for both directions
    rs = np.random.RandomState(seed)

    def displacement() -> np.ndarray:
        # skimage.filters.gaussian(field, sigma, mode='reflect', truncate=3) is exactly this SciPy call
        smooth = gaussian_filter(rs.uniform(-max_d, max_d, size=(height, width)), sigma, mode="reflect", truncate=3)
        return (smooth * alpha).astype(np.float32)

    dx = displacement()  # drawn first
    dy = displacement()

    # pixels packed as 32-bit words (r, g, b, pad), so that each tap is one 4-byte gather
    words = cv2.cvtColor(x, cv2.COLOR_RGB2RGBA).view(np.uint32).reshape(-1)
    out = np.empty_like(x)
    for rows in row_blocks(height, width):
        # sample positions as the reference forms them: integer grid (int64) + float32 shift -> float64
        y0, y1, wy0, wy1 = reflect_linear(np.arange(rows.start, rows.stop)[:, None] + dy[rows], height)
        x0, x1, wx0, wx1 = reflect_linear(np.arange(width) + dx[rows], width)
        y0 *= width
        y1 *= width
        # SciPy's sum over the 2×2×2 footprint (channel axis last, its second tap weighted 0.0, adding nothing),
        # each term ((value · w_row) · w_col), accumulated in this order from 0.0
        t = _tap_values(words, y0 + x0)
        t *= wy0
        t *= wx0
        for iy, ix, wy, wx in ((y0, x1, wy0, wx1), (y1, x0, wy1, wx0), (y1, x1, wy1, wx1)):
            term = _tap_values(words, iy + ix)
            term *= wy
            term *= wx
            t += term
        res = t.astype(np.float32)  # SciPy's output has the input's dtype
        out[rows] = cv2.merge(list(to_uint8(res)))
    return out


FAST = {
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
