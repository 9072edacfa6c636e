"""The ``fast`` CPU backend of the blur corruptions: glass, motion, defocus, Gaussian and zoom blur.

Each function is bit-identical to imagecorruptions 1.1.2 (the ``reference`` backend) for every severity, seed and
image shape. ``np.random.RandomState(seed)`` yields the stream that the package's legacy global ``np.random.*`` calls
yield after ``np.random.seed(seed)``, so the same draws in the same order reproduce its randomness, and every
floating-point step is either the routine the reference calls (``scipy.ndimage.gaussian_filter``, the filter behind
``skimage.filters.gaussian``; ``cv2.filter2D``) or the reference's own arithmetic, operation by operation in its
dtype and order. What changes is how much work is done:

- glass blur: the reference visits ~2 million pixels per pass in a Python loop (30–95 s per 1024×2048 image). The
  loop's "swap" is really a copy, so a pass is a gather whose copy chains are resolved in a few vectorised steps
  (:func:`glass_shuffle_index`), and the passes compose into one gather of the pixels.
- motion blur: edge-replicated shifts are slices of one padded image instead of ``np.roll`` copies, and the taps are
  accumulated row block by row block (in the reference's tap order, in float64) so that each block stays in cache.
- zoom blur: the linear zoom of each centre crop (``scipy.ndimage.zoom(order=1)`` in the reference) is evaluated
  in NumPy on the rows and columns that survive the final crop, with SciPy's weights and summation order, only on
  the output's own channel (SciPy also sums the neighbouring channel with weight 0), row block by row block.
- Gaussian filters: the two 1-D passes of ``scipy.ndimage.gaussian_filter`` (mode 'nearest') in NumPy with SciPy's
  kernel and summation order, row block by row block, ending in the uint8 truncation while the block is in cache.

The two NumPy re-implementations of SciPy routines run only after a one-time check has confirmed that they match
SciPy bit for bit on this machine (a SciPy compiled with fused multiply-adds, as on some ARM builds, would not);
otherwise SciPy itself runs.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np
from scipy import ndimage

from .blocks import BLOCK_ELEMENTS, DIV255, row_blocks, to_uint8
from .kernels import gaussian_kernel, motion_taps

# /////////////// constants (imagecorruptions 1.1.2) ///////////////

# (sigma, max_delta, iterations) per severity
GLASS = ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2))
# (radius, alias_blur) of the defocus disk
DEFOCUS = ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5))
# (radius, sigma) of the one-sided motion kernel
MOTION = ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15))
GAUSSIAN_SIGMA = (1, 2, 3, 4, 6)


def zoom_factors(severity: int) -> np.ndarray:
    """The zoom factors averaged by zoom blur, built with the reference's own np.arange calls."""
    return [
        np.arange(1, 1.11, 0.01),
        np.arange(1, 1.16, 0.01),
        np.arange(1, 1.21, 0.02),
        np.arange(1, 1.26, 0.02),
        np.arange(1, 1.31, 0.03),
    ][severity - 1]


# /////////////// Gaussian filter (skimage.filters.gaussian(x, sigma, channel_axis=-1)) ///////////////


def gaussian_scipy(x: np.ndarray, sigma: float) -> np.ndarray:
    # what skimage.filters.gaussian(x, sigma, channel_axis=-1) runs for a float64 image: sigma 0 on the channels
    return ndimage.gaussian_filter(x, (sigma, sigma, 0), mode="nearest", truncate=4.0)


def gaussian_numpy(x: np.ndarray, sigma: float, to_uint8: bool = False) -> np.ndarray:
    """``scipy.ndimage.gaussian_filter(x, (sigma, sigma, 0), mode='nearest')`` of an H×W×C image, bit for bit.

    SciPy filters axis 0, stores the float64 result, then filters axis 1. For a symmetric kernel w of radius r its
    1-D correlation is ``out = x[i] * w[r]`` followed by ``out += (x[i - j] + x[i + j]) * w[r - j]`` for
    j = r, r - 1, …, 1, with the line extended by its edge values ('nearest'). The same expressions evaluated on
    whole rows give the same doubles; both passes run per row block, the second on the first's block.

    A uint8 `x` stands for the float64 image x / 255. With `to_uint8` each block is finished while in cache as
    ``np.uint8(np.clip(y, 0, 1) * 255)``.
    """
    w = gaussian_kernel(sigma)
    r = len(w) // 2
    H, W, C = x.shape
    WC = W * C
    padded = np.pad(x, ((r, r), (0, 0), (0, 0)), mode="edge").reshape(H + 2 * r, WC)
    if padded.dtype == np.uint8:
        padded = DIV255[padded]
    out = np.empty((H, WC), dtype=np.uint8 if to_uint8 else np.float64)
    step = max(1, BLOCK_ELEMENTS // WC)
    first = np.empty((step, (W + 2 * r) * C))  # axis-0 result of a block, with r edge columns on each side
    second = np.empty((step, WC))
    term = np.empty((step, WC))
    for rows in row_blocks(H, WC):
        n = rows.stop - rows.start
        a = rows.start + r  # the block's first row in `padded`
        ext, tmp = first[:n], term[:n]
        mid = ext[:, r * C : r * C + WC]
        np.multiply(padded[a : a + n], w[r], out=mid)
        for j in range(r, 0, -1):
            np.add(padded[a - j : a - j + n], padded[a + j : a + j + n], out=tmp)
            tmp *= w[r - j]
            mid += tmp
        ext[:, : r * C] = np.tile(mid[:, :C], r)  # 'nearest' along axis 1
        ext[:, r * C + WC :] = np.tile(mid[:, WC - C :], r)
        o = second[:n] if to_uint8 else out[rows]
        np.multiply(mid, w[r], out=o)
        for j in range(r, 0, -1):
            np.add(ext[:, (r - j) * C : (r - j) * C + WC], ext[:, (r + j) * C : (r + j) * C + WC], out=tmp)
            tmp *= w[r - j]
            o += tmp
        if to_uint8:
            np.clip(o, 0, 1, out=o)
            o *= 255
            out[rows] = o  # the float-to-uint8 cast truncates, as np.uint8 does
    return out.reshape(H, W, C)


@functools.cache
def numpy_gaussian_matches_scipy() -> bool:
    """Whether :func:`gaussian_numpy` reproduces SciPy bit for bit here (checked once, on random images)."""
    rng = np.random.default_rng(0)
    for shape, sigma in (((37, 29, 3), 0.7), ((23, 41, 3), 1.5), ((61, 35, 3), 6)):
        x = rng.random(shape)
        if not np.array_equal(gaussian_numpy(x, sigma), gaussian_scipy(x, sigma)):
            return False
    return True


def gaussian_uint8(x: np.ndarray, sigma: float) -> np.ndarray:
    """``np.uint8(np.clip(skimage.filters.gaussian(x / 255., sigma, channel_axis=-1), 0, 1) * 255)`` of uint8 `x`.

    Glass blur's first filter has no clip in the reference; it changes nothing there: the filtered values of
    x / 255 lie in [0, 1 + a few ulp], and 255 · (1 + a few ulp) truncates to 255 either way.
    """
    if numpy_gaussian_matches_scipy():
        return gaussian_numpy(x, sigma, to_uint8=True)
    return to_uint8(gaussian_scipy(DIV255[x], sigma))


def gaussian_blur(x: np.ndarray, severity: int, seed: int) -> np.ndarray:
    """imagecorruptions' gaussian_blur: a Gaussian of sigma 1, 2, 3, 4, 6 per channel (deterministic; seed unused)."""
    return gaussian_uint8(x, GAUSSIAN_SIGMA[severity - 1])


# /////////////// glass blur ///////////////


def glass_offsets(rs: np.random.RandomState, shape: tuple[int, int], delta: int) -> np.ndarray:
    """One pass's (dx, dy) draws, (n, 2) in visiting order, as the reference draws them.

    The reference calls ``np.random.randint(-delta, delta, size=(2,))`` once per visited pixel; one call of size
    (n, 2) continues the same stream. int32 output draws the same numbers as the default int64 (NumPy draws any
    range below 2**32 from the same masked 32-bit generator) and halves the memory.
    """
    H, W = shape
    return rs.randint(-delta, delta, size=((H - 2 * delta) * (W - 2 * delta), 2), dtype=np.int32)


def glass_shuffle_index(shape: tuple[int, int], delta: int, offsets: np.ndarray) -> np.ndarray:
    """One pass of the reference's pixel "swaps" as a gather: ``new.flat[p] = old.flat[index[p]]`` (int32, H·W).

    The reference visits h = H−δ, …, δ+1 (descending) and, within a row, w = W−δ, …, δ+1, and runs
    ``x[h, w], x[h', w'] = x[h', w'], x[h, w]`` with (h', w') = (h + dy, w + dx). For an H×W×3 array the
    right-hand side holds two *views*: x[h, w] receives the value of x[h', w'], and x[h', w'] then receives the
    updated x[h, w], i.e. itself. So each visit is the copy ``x[p] = x[s(p)]`` with s(p) = p + (dy, dx), reading the
    array as the pass has left it so far. s(p) was already overwritten in this pass exactly when it is itself a
    visited pixel visited before p: dy > 0, or dy = 0 and dx > 0, with s(p) inside the visited rectangle (call
    this "forward"). Then it holds what it copied, recursively, so p ends with the pass's input at the end of the
    chain p → s(p) → s(s(p)) … taken while the step is forward. Every forward step moves strictly back in visiting
    order, so chains end; with dy ∈ [−δ, δ−1] they are short (at most ~20 on a 1024×2048 image), and they are
    followed for all pixels at once, keeping only the unfinished ones.
    """
    H, W = shape
    Hi, Wi = H - 2 * delta, W - 2 * delta
    # the draws are in visiting order (both axes descending): reverse both to lay them on the image
    dx = offsets[:, 0].reshape(Hi, Wi)[::-1, ::-1]
    dy = offsets[:, 1].reshape(Hi, Wi)[::-1, ::-1]
    # int32 throughout (H·W < 2**31): half the memory traffic of intp
    rows = np.arange(delta + 1, H - delta + 1, dtype=np.int32)[:, None]
    cols = np.arange(delta + 1, W - delta + 1, dtype=np.int32)[None, :]
    src_r, src_c = rows + dy, cols + dx
    inner = (slice(delta + 1, H - delta + 1), slice(delta + 1, W - delta + 1))
    source = np.arange(H * W, dtype=np.int32).reshape(H, W)  # s(p); pixels never visited keep their value
    source[inner] = src_r * np.int32(W) + src_c
    forward = np.zeros((H, W), dtype=bool)
    step_forward = dy > 0
    step_forward |= (dy == 0) & (dx > 0)
    step_forward &= src_r <= H - delta  # the source is itself visited: inside the visited rectangle
    step_forward &= src_c > delta
    step_forward &= src_c <= W - delta
    forward[inner] = step_forward
    source, forward = source.ravel(), forward.ravel()
    index = source.copy()
    pixels = np.flatnonzero(forward)  # pixels whose source was overwritten before they were visited
    at = source[pixels]  # the chain's current pixel, whose own copy is followed while it is forward
    while pixels.size:
        more = forward[at]
        done = ~more
        index[pixels[done]] = source[at[done]]
        pixels, at = pixels[more], source[at[more]]
    return index


def glass_blur(x: np.ndarray, severity: int, seed: int) -> np.ndarray:
    """imagecorruptions' glass_blur: Gaussian, uint8 truncation, 1–3 passes of local pixel copies, Gaussian."""
    sigma, delta, iterations = GLASS[severity - 1]
    rs = np.random.RandomState(seed)
    H, W = x.shape[:2]
    pixels = gaussian_uint8(x, sigma).reshape(H * W, 3)  # np.uint8(gaussian(x / 255., sigma) * 255)
    index = None
    for _ in range(iterations):
        step = glass_shuffle_index((H, W), delta, glass_offsets(rs, (H, W), delta))
        index = step if index is None else index[step]  # new[p] = mid[step[p]] = old[index[step[p]]]
    pixels = np.take(pixels, index, axis=0).reshape(H, W, 3)
    return gaussian_uint8(pixels, sigma)


# /////////////// defocus blur ///////////////


@functools.cache
def defocus_kernel(radius: int, alias_blur: float) -> np.ndarray:
    """The reference's `disk`: a normalised aliased disk (float32) smoothed by cv2.GaussianBlur.

    The grid is 17×17 for radius ≤ 8 (so radius 8 is clipped) and the Gaussian is applied after normalising, so
    the radius-8 and radius-10 kernels sum to 1.013 and 1.011: the published behaviour, kept.
    """
    if radius <= 8:
        L = np.arange(-8, 8 + 1)
        ksize = (3, 3)
    else:
        L = np.arange(-radius, radius + 1)
        ksize = (5, 5)
    X, Y = np.meshgrid(L, L)
    disk = np.array((X**2 + Y**2) <= radius**2, dtype=np.float32)
    disk /= np.sum(disk)
    kernel = cv2.GaussianBlur(disk, ksize=ksize, sigmaX=alias_blur)
    kernel.flags.writeable = False
    return kernel


def defocus_blur(x: np.ndarray, severity: int, seed: int) -> np.ndarray:
    """imagecorruptions' defocus_blur: cv2.filter2D with the disk kernel (reflect-101), deterministic.

    The reference filters the three float64 channels one by one; cv2.filter2D of the H×W×3 image gives the same
    doubles (tested) in one call.
    """
    radius, alias_blur = DEFOCUS[severity - 1]
    return to_uint8(cv2.filter2D(DIV255[x], -1, defocus_kernel(radius, alias_blur)))


# /////////////// motion blur ///////////////


def motion_angle(rs: np.random.RandomState) -> float:
    """The reference's only draw: the blur direction in degrees."""
    return rs.uniform(-45, 45)


def motion_blur(x: np.ndarray, severity: int, seed: int) -> np.ndarray:
    """imagecorruptions' motion_blur: a one-sided Gaussian along a random direction in [−45°, 45°].

    Tap i adds ``kernel[i] * shift(x, dx_i, dy_i)`` with the edge-replicated shift
    ``shifted[h, w] = x[clip(h − dy), clip(w − dx)]``, summed in tap order in float64 (the reference's float32
    zeros become float64 at the first float64 term). Here a shift is a slice of one edge-padded float64 copy of
    the image, and the sum runs per row block, ending in the uint8 truncation while the block is in cache.
    """
    radius, sigma = MOTION[severity - 1]
    H, W = x.shape[:2]
    taps = motion_taps((H, W), radius, sigma, motion_angle(np.random.RandomState(seed)))
    pad = max(max(abs(dy), abs(dx)) for _, dy, dx in taps)
    padded = np.pad(x, ((pad, pad), (pad, pad), (0, 0)), mode="edge").reshape(H + 2 * pad, (W + 2 * pad) * 3)
    padded = padded.astype(np.float64)  # exact; a float64 product is twice as fast as one that casts uint8
    WC = W * 3
    out = np.empty((H, WC), dtype=np.uint8)
    step = max(1, BLOCK_ELEMENTS // WC)
    accumulator, term = np.empty((step, WC)), np.empty((step, WC))
    for rows in row_blocks(H, WC):
        n = rows.stop - rows.start
        acc, tmp = accumulator[:n], term[:n]
        for i, (weight, dy, dx) in enumerate(taps):
            top, left = rows.start + pad - dy, (pad - dx) * 3
            shifted = padded[top : top + n, left : left + WC]
            if i == 0:
                np.multiply(shifted, weight, out=acc)  # 0.0 + k0 * x0 == k0 * x0
            else:
                np.multiply(shifted, weight, out=tmp)
                acc += tmp
        # np.uint8(np.clip(x, 0, 255)): the cast truncates
        np.clip(acc, 0, 255, out=acc)
        out[rows] = acc
    return out.reshape(H, W, 3)


# /////////////// zoom blur ///////////////


def _zoom_axis(n_in: int, n_out: int, n_keep: int):
    """Sample positions and weights of ``scipy.ndimage.zoom(order=1)`` along one axis, for outputs 0..n_keep−1.

    SciPy (mode 'constant', grid_mode False) maps output k to c = k · ((n_in − 1) / (n_out − 1)) and, for
    c ≤ n_in − 1, interpolates between floor(c) and floor(c) + 1 with w0 = 1 − (c − floor(c)), w1 = 1 − w0; a
    position past the last input gives cval = 0. At c = n_in − 1 exactly w1 = 0 (the neighbour, mirrored back
    inside, contributes nothing).
    """
    scale = np.divide(n_in - 1, n_out - 1) if n_out > 1 else 1.0
    c = np.arange(n_keep, dtype=np.float64) * scale
    outside = c > n_in - 1
    i0 = np.floor(c)
    w0 = 1.0 - (c - i0)
    w1 = 1.0 - w0
    i0 = np.where(outside, 0, i0).astype(np.intp)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, w0, w1, outside


def _clipped_zoom_scipy(x: np.ndarray, zoom: float, shape: tuple[int, int]) -> np.ndarray:
    # the reference's clipped_zoom, then its crop
    H, W = x.shape[:2]
    ch0, ch1 = int(np.ceil(H / float(zoom))), int(np.ceil(W / float(zoom)))
    top0, top1 = (H - ch0) // 2, (W - ch1) // 2
    layer = ndimage.zoom(x[top0 : top0 + ch0, top1 : top1 + ch1], (zoom, zoom, 1), order=1)
    return layer[: shape[0], : shape[1]]


def _clipped_zoom_numpy(x: np.ndarray, zoom: float, shape: tuple[int, int]) -> np.ndarray:
    """The reference's ``clipped_zoom(x, zoom)[:shape[0], :shape[1]]`` of a float32 H×W×C image.

    The reference zooms a centre crop of ceil(size / zoom) by (zoom, zoom, 1) with ``scipy.ndimage.zoom(order=1)``.
    SciPy computes each output as t = 0, then t += v · w_y · w_x · w_c over the 2×2×2 neighbours (last axis
    fastest) in float64, and stores float32. Along the channels zoom is the identity, w_c ∈ {1, 0}, so the sum is
    the four terms ((v · w_y) · w_x) of the output's own channel in (y0 x0, y0 x1, y1 x0, y1 x1) order, which is
    evaluated here on the rows and columns that the crop keeps.
    """
    H, W, C = x.shape
    ch0, ch1 = int(np.ceil(H / float(zoom))), int(np.ceil(W / float(zoom)))
    top0, top1 = (H - ch0) // 2, (W - ch1) // 2
    out_h, out_w = int(round(ch0 * zoom)), int(round(ch1 * zoom))  # scipy's output shape
    keep_h, keep_w = min(out_h, shape[0]), min(out_w, shape[1])
    crop = x[top0 : top0 + ch0, top1 : top1 + ch1].reshape(ch0, ch1 * C)
    if (out_h, out_w) == (ch0, ch1):  # zoom 1: scipy returns the input unchanged
        return crop.reshape(ch0, ch1, C)[:keep_h, :keep_w].copy()
    y0, y1, wy0, wy1, y_out = _zoom_axis(ch0, out_h, keep_h)
    x0, x1, wx0, wx1, x_out = _zoom_axis(ch1, out_w, keep_w)
    channel = np.arange(C)
    c0, c1 = (x0[:, None] * C + channel).ravel(), (x1[:, None] * C + channel).ravel()
    wx0, wx1 = np.repeat(wx0, C), np.repeat(wx1, C)
    out = np.empty((keep_h, keep_w * C), dtype=np.float32)
    for rows in row_blocks(keep_h, keep_w * C):
        r0 = crop[y0[rows]] * wy0[rows, None]  # float32 * float64: float64, as SciPy's double arithmetic
        r1 = crop[y1[rows]] * wy1[rows, None]
        t = np.take(r0, c0, axis=1)
        t *= wx0
        for r, cols, wx in ((r0, c1, wx1), (r1, c0, wx0), (r1, c1, wx1)):
            u = np.take(r, cols, axis=1)
            u *= wx
            t += u
        out[rows] = t
    out = out.reshape(keep_h, keep_w, C)
    out[y_out] = 0  # past the last input row or column: cval
    out[:, x_out] = 0
    return out


@functools.cache
def numpy_zoom_matches_scipy() -> bool:
    """Whether :func:`_clipped_zoom_numpy` reproduces SciPy bit for bit here (checked once, on random images)."""
    rng = np.random.default_rng(0)
    for shape in ((37, 53, 3), (64, 33, 3)):
        x = rng.random(shape, dtype=np.float32)
        for zoom in np.concatenate([zoom_factors(2), zoom_factors(5)]):
            if not np.array_equal(_clipped_zoom_numpy(x, zoom, shape[:2]), _clipped_zoom_scipy(x, zoom, shape[:2])):
                return False
    return True


def clipped_zoom(x: np.ndarray, zoom: float, shape: tuple[int, int]) -> np.ndarray:
    """The reference's ``clipped_zoom(x, zoom)[:shape[0], :shape[1]]`` of a float32 H×W×C image, bit for bit."""
    if numpy_zoom_matches_scipy():
        return _clipped_zoom_numpy(x, zoom, shape)
    return _clipped_zoom_scipy(x, zoom, shape)


def zoom_blur(x: np.ndarray, severity: int, seed: int) -> np.ndarray:
    """imagecorruptions' zoom_blur: the mean of the image and its centre zooms, in float32 (deterministic)."""
    factors = zoom_factors(severity)
    H, W = x.shape[:2]
    xf = (DIV255[x]).astype(np.float32)  # (np.array(x) / 255.).astype(np.float32)
    out = np.zeros_like(xf)
    for zoom in factors:
        layer = clipped_zoom(xf, zoom, (H, W))
        out[: layer.shape[0], : layer.shape[1]] += layer
    return to_uint8((xf + out) / (len(factors) + 1))  # float32 throughout, as in the reference


FAST = {
    "glass_blur": glass_blur,
    "motion_blur": motion_blur,
    "defocus_blur": defocus_blur,
    "gaussian_blur": gaussian_blur,
    "zoom_blur": zoom_blur,
}
