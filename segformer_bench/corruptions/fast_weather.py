"""The ``fast`` CPU backend of the weather corruptions: snow, frost, fog, spatter.

Each function is bit-identical to imagecorruptions 1.1.2 (the ``reference`` backend) for every severity, seed and
image shape: ``np.random.RandomState(seed)`` yields the stream that the package's legacy global ``np.random.*`` calls
yield after ``np.random.seed(seed)``, so the same draws in the same order with the same calls reproduce its
randomness, and every floating-point step is the reference's own operation in the reference's dtype and order.
What changes is how much work those steps do:

- Per-pixel arithmetic runs row block by row block (about 32 k pixels each) and channel plane by channel plane
  (split and merged with OpenCV), so temporaries stay in cache and no operation broadcasts a per-pixel value
  across the three interleaved channels, which NumPy does slowly; frost's whole blend, a function of two uint8
  values, is a 256 × 256 lookup table computed with the reference's float64 expression.
- Fog's diamond-square keeps each level's four interleaved point sets as contiguous arrays (the reference works
  through strided views and ``np.roll`` copies) and assembles only the part of the finest level that is kept.
- The motion blur of the snow layer reads edge-replicated shifts as slices of one padded array instead of
  ``np.roll`` copies, and accumulates the taps row block by row block, in the reference's tap order and float64.
- Frost's decoded and rescaled textures are cached per (texture, image size) for the life of the process.

What stays is what the reference's output depends on bit for bit: the legacy normal draws (about 35 ms per
1024 × 2048 field), ``scipy.ndimage.zoom`` and SciPy's Gaussian filter, which is why snow and spatter gain
least. Every step the reference runs through OpenCV, SciPy or scikit-image (``cv2.cvtColor``, Canny, the distance
transform, the zoom, the Gaussian filter behind ``skimage.filters.gaussian``) calls the same routine here.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import cv2
import numpy as np
from scipy import ndimage

from .blocks import row_blocks, to_uint8
from .kernels import motion_taps

# /////////////// motion blur (the reference's `_motion_blur`, used by snow) ///////////////


def motion_blur_2d(
    layer: np.ndarray, radius: int, sigma: float, angle: float, out_shape: tuple[int, int]
) -> np.ndarray:
    """The reference's `_motion_blur` of a 2-D float64 layer, evaluated on its top-left `out_shape` corner only.

    Tap i adds ``kernel[i] * shift(layer, dx_i, dy_i)``, where the shift is edge-replicated:
    ``shifted[r, c] = layer[clip(r - dy, 0, H - 1), clip(c - dx, 0, W - 1)]``. The sum runs in tap order in
    float64 (the reference's float32 zeros become float64 with the first float64 term), and stops at the first tap
    whose shift reaches the layer's size, like the reference (:func:`~.kernels.motion_taps`, shared with motion
    blur).
    """
    taps = motion_taps(layer.shape, radius, sigma, angle)
    out_h, out_w = out_shape
    pad = max([0] + [max(abs(dy), abs(dx)) for _, dy, dx in taps])
    padded = np.pad(layer, pad, mode="edge") if pad else layer
    out = np.zeros(out_shape, dtype=np.float64)
    term = np.empty(out_shape, dtype=np.float64)
    for rows in row_blocks(out_h, out_w):
        acc, tmp = out[rows], term[rows]
        for weight, dy, dx in taps:
            top, left = rows.start + pad - dy, pad - dx
            np.multiply(weight, padded[top : top + acc.shape[0], left : left + out_w], out=tmp)
            np.add(acc, tmp, out=acc)
    return out


# /////////////// snow ///////////////

# (normal loc, normal scale, zoom, threshold, blur radius, blur sigma, image weight)
_SNOW = [
    (0.1, 0.3, 3, 0.5, 10, 4, 0.8),
    (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
    (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
    (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
    (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55),
]


def clipped_zoom_2d(layer: np.ndarray, zoom: float) -> np.ndarray:
    """The reference's `clipped_zoom` of a 2-D layer: centre crop of ceil(size / zoom), linear zoom by `zoom`.

    The reference zooms an H×W×1 array by (zoom, zoom, 1); zooming the H×W array by (zoom, zoom) computes the
    same values (the tests check this against the reference).
    """
    h, w = layer.shape
    ch0, ch1 = int(np.ceil(h / float(zoom))), int(np.ceil(w / float(zoom)))
    top0, top1 = (h - ch0) // 2, (w - ch1) // 2
    return ndimage.zoom(layer[top0 : top0 + ch0, top1 : top1 + ch1], (zoom, zoom), order=1)


def snow_layer(shape: tuple[int, int], severity: int, noise: np.ndarray, angle: float) -> np.ndarray:
    """The quantised snow layer (uint8, k means k / 255) from its normal field and motion angle."""
    c = _SNOW[severity - 1]
    layer = clipped_zoom_2d(noise, c[2])
    np.copyto(layer, 0, where=layer < c[3])
    np.clip(layer, 0, 1, out=layer)
    blurred = motion_blur_2d(layer, c[4], c[5], angle, shape)
    return np.round(blurred * 255).astype(np.uint8)


def snow_draws(rs: np.random.RandomState, shape: tuple[int, int], severity: int) -> tuple[np.ndarray, float]:
    """The reference's two draws, in its order: the normal field, then the motion angle."""
    c = _SNOW[severity - 1]
    noise = rs.normal(size=shape, loc=c[0], scale=c[1])
    return noise, rs.uniform(-135, -45)


def snow(x: np.ndarray, severity: int, seed: int) -> np.ndarray:
    """imagecorruptions' snow: a zoomed, thresholded, motion-blurred normal field brightens a greyed image."""
    c = _SNOW[severity - 1]
    h, w = x.shape[:2]
    noise, angle = snow_draws(np.random.RandomState(seed), (h, w), severity)
    flakes = snow_layer((h, w), severity, noise, angle)
    flakes_rot = flakes[::-1, ::-1]  # np.rot90(snow_layer, k=2)
    out = np.empty(x.shape, dtype=np.uint8)
    for rows in row_blocks(h, w):
        x32 = np.divide(x[rows], 255.0, dtype=np.float32)  # np.array(x, dtype=np.float32) / 255.
        bright = cv2.cvtColor(x32, cv2.COLOR_RGB2GRAY)
        bright *= 1.5
        bright += 0.5
        flake, flake_rot = flakes[rows] / 255.0, flakes_rot[rows] / 255.0
        planes = []
        for plane in cv2.split(x32):
            lifted = np.maximum(plane, bright)
            lifted *= 1 - c[6]
            plane *= c[6]
            plane += lifted  # c6 * x + (1 - c6) * max(x, 1.5 grey + 0.5), float32 as in the reference
            total = plane + flake  # float64 from here on
            total += flake_rot
            planes.append(to_uint8(total))
        out[rows] = cv2.merge(planes)
    return out


# /////////////// frost ///////////////

# (image weight, frost weight)
_FROST = [(1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)]
# The package lists six textures but draws randint(5): the sixth is never used.
_FROST_FILES = ["frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg"]


def frost_texture_dir() -> Path:
    """The frost textures shipped inside the installed imagecorruptions package."""
    spec = importlib.util.find_spec("imagecorruptions")
    if spec is None or spec.origin is None:
        from ..errors import UserError

        raise UserError("frost needs the textures of the imagecorruptions package: pip install imagecorruptions")
    return Path(spec.origin).parent / "frost"


@functools.lru_cache(maxsize=16)
def frost_texture(index: int, height: int, width: int) -> np.ndarray:
    """Texture `index` rescaled as the reference does for an image of height × width, in RGB order (read-only).

    The reference reads the texture with cv2.imread (BGR), scales it by the factor that makes it cover the image
    (1 when it already does, else the larger of the two ratios) times 1.1 with INTER_CUBIC, crops, and reverses
    the channels to RGB; the crop commutes with the channel reversal, so the cached texture is already RGB.
    """
    path = frost_texture_dir() / _FROST_FILES[index]
    texture = cv2.imread(str(path))
    if texture is None:
        raise FileNotFoundError(f"cannot read the frost texture {path}")
    tex_h, tex_w = texture.shape[:2]
    scaling_factor = 1
    if tex_h >= height and tex_w >= width:
        scaling_factor = 1
    elif tex_h < height and tex_w >= width:
        scaling_factor = height / tex_h
    elif tex_h >= height and tex_w < width:
        scaling_factor = width / tex_w
    else:
        scaling_factor = np.maximum(height / tex_h, width / tex_w)
    scaling_factor *= 1.1
    new_size = (int(np.ceil(tex_w * scaling_factor)), int(np.ceil(tex_h * scaling_factor)))
    rescaled = cv2.resize(texture, dsize=new_size, interpolation=cv2.INTER_CUBIC)
    rgb = np.ascontiguousarray(rescaled[..., ::-1])
    rgb.flags.writeable = False
    return rgb


def frost_draws(rs: np.random.RandomState, height: int, width: int) -> tuple[int, int, int]:
    """The reference's draws in its order: the texture index, then the crop's top row and left column."""
    index = rs.randint(5)
    texture = frost_texture(index, height, width)
    top = rs.randint(0, texture.shape[0] - height)
    left = rs.randint(0, texture.shape[1] - width)
    return index, top, left


@functools.lru_cache(maxsize=5)
def frost_table(severity: int) -> np.ndarray:
    """np.uint8(np.clip(c0 * x + c1 * frost, 0, 255)) for every pair of uint8 values, flattened as x·256 + frost."""
    c = _FROST[severity - 1]
    values = np.arange(256, dtype=np.uint8)
    table = np.clip(c[0] * values[:, None] + c[1] * values[None, :], 0, 255)  # float64, as in the reference
    table = np.uint8(table).ravel()
    table.flags.writeable = False
    return table


def frost(x: np.ndarray, severity: int, seed: int) -> np.ndarray:
    """imagecorruptions' frost: a randomly cropped ice texture blended over the image."""
    h, w = x.shape[:2]
    index, top, left = frost_draws(np.random.RandomState(seed), h, w)
    crop = frost_texture(index, h, w)[top : top + h, left : left + w]
    pair = x.astype(np.uint16) << 8
    pair |= crop
    return frost_table(severity)[pair]


# /////////////// fog ///////////////

# (fractal weight, wibble decay)
_FOG = [(1.5, 2), (2.0, 2), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4)]


def plasma_fractal(rs: np.random.RandomState, mapsize: int, wibbledecay: float, height: int, width: int) -> np.ndarray:
    """The reference's diamond-square height map (mapsize × mapsize, normalised to [0, 1]), its top-left
    height × width corner only (float64).

    The reference fills one mapsize × mapsize array through strided views; here each level keeps its four
    interleaved point sets (corners, centres, and the diamonds on the corner rows and on the corner columns) as
    separate contiguous arrays and interleaves them into the next level's corners, with the same additions in the
    same order (``np.roll`` sums become sums of slices). Each level draws three blocks of uniforms, in the
    reference's order: centres, row diamonds, column diamonds. The minimum and maximum are those of the whole map,
    but only the requested corner of the finest level is assembled and normalised.
    """
    assert mapsize & (mapsize - 1) == 0, "mapsize must be a power of two"
    corners = np.zeros((1, 1), dtype=np.float64)  # maparray[0, 0] = 0
    stepsize = mapsize
    wibble = 100
    while True:
        squares = _plus_rolled(_plus_rolled(corners, -1, axis=0), -1, axis=1)
        squares /= 4
        squares += wibble * rs.uniform(-wibble, wibble, squares.shape)
        centres = squares
        row_diamonds = _plus_rolled(centres, 1, axis=0)
        row_diamonds += _plus_rolled(corners, -1, axis=1)
        row_diamonds /= 4
        row_diamonds += wibble * rs.uniform(-wibble, wibble, row_diamonds.shape)
        col_diamonds = _plus_rolled(centres, 1, axis=1)
        col_diamonds += _plus_rolled(corners, -1, axis=0)
        col_diamonds /= 4
        col_diamonds += wibble * rs.uniform(-wibble, wibble, col_diamonds.shape)
        stepsize //= 2
        wibble /= wibbledecay
        parts = (corners, row_diamonds, col_diamonds, centres)
        if stepsize < 2:
            break
        corners = _interleave(parts, corners.shape[0], corners.shape[1])
    low = min(part.min() for part in parts)
    high = max(part.max() for part in parts) - low  # max(map - low): subtracting a constant keeps the order
    fractal = _interleave(parts, (height + 1) // 2, (width + 1) // 2)[:height, :width]
    fractal -= low
    fractal /= high
    return fractal


def _interleave(parts: tuple[np.ndarray, ...], rows: int, cols: int) -> np.ndarray:
    """The next level's grid from (corners, row diamonds, column diamonds, centres), its first 2·rows × 2·cols."""
    corners, row_diamonds, col_diamonds, centres = (part[:rows, :cols] for part in parts)
    grid = np.empty((2 * rows, 2 * cols), dtype=np.float64)
    grid[0::2, 0::2] = corners
    grid[0::2, 1::2] = row_diamonds
    grid[1::2, 0::2] = col_diamonds
    grid[1::2, 1::2] = centres
    return grid


def _plus_rolled(a: np.ndarray, shift: int, axis: int) -> np.ndarray:
    """``a + np.roll(a, shift, axis)`` for shift ±1, as a new array, without materialising the roll."""
    if a.shape[axis] == 1:
        return a + a
    out = np.empty_like(a)
    a = np.moveaxis(a, axis, 0)
    o = np.moveaxis(out, axis, 0)
    if shift == -1:  # roll(a, -1)[i] = a[i + 1]
        np.add(a[:-1], a[1:], out=o[:-1])
        np.add(a[-1], a[0], out=o[-1])
    else:  # roll(a, 1)[i] = a[i - 1]
        np.add(a[1:], a[:-1], out=o[1:])
        np.add(a[0], a[-1], out=o[0])
    return out


def fog_map(rs: np.random.RandomState, height: int, width: int, severity: int) -> np.ndarray:
    """The fractal of the reference's size (next power of two ≥ the longest side), cropped to height × width."""
    mapsize = 1 << (max(height, width, 3) - 1).bit_length()
    return plasma_fractal(rs, mapsize, _FOG[severity - 1][1], height, width)


def fog(x: np.ndarray, severity: int, seed: int) -> np.ndarray:
    """imagecorruptions' fog: a plasma fractal added to the image, rescaled by the image's maximum."""
    c = _FOG[severity - 1]
    h, w = x.shape[:2]
    fractal = fog_map(np.random.RandomState(seed), h, w, severity)
    max_val = x.max() / 255.0
    out = np.empty(x.shape, dtype=np.uint8)
    for rows in row_blocks(h, w):
        weighted = c[0] * fractal[rows]
        planes = []
        for plane in cv2.split(x[rows]):
            total = plane / 255.0
            total += weighted
            total *= max_val  # x * max_val / (max_val + c[0]), evaluated left to right
            total /= max_val + c[0]
            planes.append(to_uint8(total))
        out[rows] = cv2.merge(planes)
    return out


# /////////////// spatter ///////////////

# (normal loc, normal scale, gaussian sigma, threshold, mask gain or mud sigma, mode: 0 liquid, 1 mud)
_SPATTER = [
    (0.65, 0.3, 4, 0.69, 0.6, 0),
    (0.65, 0.3, 3, 0.68, 0.6, 0),
    (0.65, 0.3, 2, 0.68, 0.5, 0),
    (0.65, 0.3, 1, 0.65, 1.5, 1),
    (0.67, 0.4, 1, 0.65, 1.5, 1),
]
# Colours as the reference builds them: liquid (pale turquoise) in float32, mud (brown) in float64, RGB order.
_WATER = np.array([175 / 255.0, 238 / 255.0, 238 / 255.0], dtype=np.float32)
_MUD = np.array([63 / 255.0, 42 / 255.0, 20 / 255.0], dtype=np.float64)
_EMBOSS = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]])


def spatter_liquid(noise: np.ndarray, severity: int) -> np.ndarray:
    """The smoothed, thresholded normal field (float64): skimage's gaussian is scipy's with mode 'nearest'."""
    c = _SPATTER[severity - 1]
    liquid = ndimage.gaussian_filter(noise, sigma=c[2], mode="nearest", truncate=4.0)
    np.copyto(liquid, 0, where=liquid < c[3])
    return liquid


def spatter_edge_distance(liquid8: np.ndarray) -> np.ndarray:
    """Liquid mode's OpenCV chain on the uint8 liquid layer: the embossed distance-to-edge map (float32).

    Canny edges, distance transform truncated at 20, blurred, equalised, embossed and blurred again; OpenCV has
    no vectorised batch form, so the torch backend runs this per image on the host too.
    """
    dist = 255 - cv2.Canny(liquid8, 50, 150)
    dist = cv2.distanceTransform(dist, cv2.DIST_L2, 5)
    _, dist = cv2.threshold(dist, 20, 20, cv2.THRESH_TRUNC)
    dist = cv2.blur(dist, (3, 3)).astype(np.uint8)
    dist = cv2.equalizeHist(dist)
    dist = cv2.filter2D(dist, cv2.CV_8U, _EMBOSS)
    return cv2.blur(dist, (3, 3)).astype(np.float32)


def spatter_liquid_mask(liquid: np.ndarray) -> np.ndarray:
    """Liquid mode's mask before normalisation: the uint8 liquid layer times its distance map (float32)."""
    liquid8 = (liquid * 255).astype(np.uint8)
    return liquid8 * spatter_edge_distance(liquid8)


def spatter_mud_mask(liquid: np.ndarray, severity: int) -> np.ndarray:
    """Mud mode's mask (float32): the blurred indicator of the liquid layer, cut below 0.8."""
    c = _SPATTER[severity - 1]
    m = np.where(liquid > c[3], 1, 0).astype(np.float32)
    m = ndimage.gaussian_filter(m, sigma=c[4], mode="nearest", truncate=4.0)
    np.copyto(m, 0, where=m < 0.8)
    return m


def spatter(x: np.ndarray, severity: int, seed: int) -> np.ndarray:
    """imagecorruptions' spatter: water drops (severities 1–3) or mud (4–5) from a smoothed normal field."""
    c = _SPATTER[severity - 1]
    h, w = x.shape[:2]
    noise = np.random.RandomState(seed).normal(size=(h, w), loc=c[0], scale=c[1])
    liquid = spatter_liquid(noise, severity)
    out = np.empty(x.shape, dtype=np.uint8)
    if c[5] == 0:
        m = spatter_liquid_mask(liquid)
        # An all-zero mask makes the reference divide 0 by 0; its NaNs reach the uint8 cast, and so they do here
        # (NumPy casts them to 0 on x86-64).
        with np.errstate(invalid="ignore", divide="ignore"):
            m /= m.max()
            m *= c[4]
            for rows in row_blocks(h, w):
                planes = []
                for channel, plane in enumerate(cv2.split(x[rows])):
                    total = np.divide(plane, 255.0, dtype=np.float32)  # float32 throughout, as in the reference
                    total += m[rows] * _WATER[channel]
                    planes.append(to_uint8(total))
                out[rows] = cv2.merge(planes)
        return out
    m = spatter_mud_mask(liquid, severity)
    for rows in row_blocks(h, w):
        keep = 1 - m[rows]  # float32
        planes = []
        for channel, plane in enumerate(cv2.split(x[rows])):
            x32 = np.divide(plane, 255.0, dtype=np.float32)
            x32 *= keep
            planes.append(to_uint8(x32 + _MUD[channel] * m[rows]))  # float64, as in the reference
        out[rows] = cv2.merge(planes)
    return out


FAST = {"snow": snow, "frost": frost, "fog": fog, "spatter": spatter}
