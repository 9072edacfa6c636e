"""The renderer: :func:`render` rasterises a :class:`~.materials.Scene` at any (H, W) by the painter's algorithm,
optionally under a :class:`~.weather.Weather`, and optionally with every pixel's depth."""

from __future__ import annotations

import math

import numpy as np

from ...errors import UserError
from .constants import MIN_SIDE, NOISE_CELLS
from .materials import Scene, Shade, Shape
from .noise import noise_field
from .weather import Pixels, Weather, apply


def _pixel_box(bounds, H: int, W: int) -> tuple[int, int, int, int] | None:
    """Rows r0:r1 and columns c0:c1 whose pixel centres lie within the scene-coordinate bounds."""
    x0, y0, x1, y1 = bounds
    c0, c1 = max(0, math.ceil(x0 * W - 0.5)), min(W, math.floor(x1 * W - 0.5) + 1)
    r0, r1 = max(0, math.ceil(y0 * H - 0.5)), min(H, math.floor(y1 * H - 0.5) + 1)
    return (r0, r1, c0, c1) if r0 < r1 and c0 < c1 else None


def check_size(size) -> tuple[int, int]:
    try:
        H, W = (int(s) for s in size)
        ok = (H, W) == tuple(size)
    except (TypeError, ValueError):
        ok = False
    if not ok or min(H, W) < MIN_SIDE:
        raise UserError(f"SynthCity size must be (height, width) in pixels, both at least {MIN_SIDE}; got {size!r}")
    return H, W


def render(scene: Scene, size: tuple[int, int], weather: Weather | None = None, depth: bool = False):
    """The (H, W, 3) uint8 RGB image and (H, W) uint8 trainId label of `scene` at `size` = (H, W); with `depth`,
    also the (H, W) float32 depth of each pixel centre in metres (inf for the sky and for shapes without one).

    Pixels no shape covers (none, for generated scenes) are black and labelled 255 (ignore). Under a `weather`
    other than clear, the clear image (exposed and clipped, before the sensor's noise) is what the weather
    changes (:mod:`.weather`); the label never changes.
    """
    H, W = check_size(size)
    if len(scene.shapes) >= np.iinfo(np.int16).max:
        raise ValueError(f"a scene of {len(scene.shapes)} shapes is more than the renderer's int16 shape index holds")
    xs, ys = (np.arange(W) + 0.5) / W, (np.arange(H) + 0.5) / H
    ids = np.full((H, W), -1, np.int16)  # index into `opaque`; -1 = nothing
    opaque: list[tuple[Shape, tuple[int, int, int, int]]] = []
    shades = []  # (shade, box, mask, number of opaque shapes painted before it)
    for shape in scene.shapes:
        box = _pixel_box(shape.geometry.bounds(), H, W)
        if box is None:
            continue
        r0, r1, c0, c1 = box
        inside = shape.geometry.mask(xs[c0:c1], ys[r0:r1])
        if isinstance(shape, Shade):
            shades.append((shape, box, inside, len(opaque)))
            continue
        ids[r0:r1, c0:c1][inside] = len(opaque)
        opaque.append((shape, box))
    label = np.take(np.array([shape.label for shape, _ in opaque] + [255], np.uint8), ids)
    shade = np.ones((H, W), np.float32) if shades else None
    for s, (r0, r1, c0, c1), inside, painted in shades:  # a shade darkens only what was painted before it
        shade[r0:r1, c0:c1][inside & (ids[r0:r1, c0:c1] < painted)] *= s.factor

    # Per-shape tables, one column per shape; the extra last column is what index -1 (nothing) reads.
    table = np.zeros((9, len(opaque) + 1), np.float32)  # r, g, b, grain × 3, light, fog, pattern flag
    for k, (shape, _) in enumerate(opaque):
        m = shape.material
        table[:, k] = (*m.color, *m.grain, m.light, m.fog, m.pattern is not None)
    image = np.take(table[:3], ids, axis=1)  # 3, H, W
    pixel = (1.0 / W, 1.0 / H)
    xs32, ys32 = xs.astype(np.float32), ys.astype(np.float32)  # patterns work in float32, for speed
    for k in np.flatnonzero(table[8]):
        shape, (r0, r1, c0, c1) = opaque[k]
        visible = ids[r0:r1, c0:c1] == k
        rows, cols = np.nonzero(visible)
        if rows.size:
            image[:, r0:r1, c0:c1][:, visible] = shape.material.pattern.colors(xs32[c0 + cols], ys32[r0 + rows],
                                                                               pixel, shape.material.color)

    texture = np.ones((H, W), np.float32)
    for octave, cell in enumerate(NOISE_CELLS):
        texture += np.take(table[3 + octave], ids) * noise_field(scene.noise_seed, octave, cell, H, W)
    texture *= np.take(table[6], ids)
    if shade is not None:
        texture *= shade
    image *= texture
    if table[7].any():
        image += np.take(table[7], ids) * (np.asarray(scene.haze, np.float32)[:, None, None] - image)
    image *= np.asarray(scene.gain, np.float32)[:, None, None]
    weathered = weather is not None and weather.condition != "clear"
    if weathered or depth:
        planes = np.zeros((4, len(opaque) + 1), np.float32)  # 1/Z = a·x + b·y + c, and up; 0 = infinitely far
        for k, (shape, _) in enumerate(opaque):
            if shape.depth is not None:
                planes[:, k] = (shape.depth.a, shape.depth.b, shape.depth.c, shape.depth.up)
        inverse = np.maximum(np.take(planes[0], ids) * xs32[None, :] + np.take(planes[1], ids) * ys32[:, None]
                             + np.take(planes[2], ids), np.float32(0))
    if weathered:
        pixels = Pixels(label, inverse, np.take(planes[3], ids), xs32, ys32)
        image = apply(weather, scene, np.clip(image, 0, 255), pixels)
    if scene.sensor_noise > 0:  # luminance noise, seeded by the scene and the size, so still deterministic
        rng = np.random.default_rng([scene.noise_seed, H, W])
        # triangular: the difference of two uniforms, scaled to unit variance; cheaper than a Gaussian
        noise = rng.random((H, W), dtype=np.float32) - rng.random((H, W), dtype=np.float32)
        image += noise * np.float32(scene.sensor_noise * math.sqrt(6))
    image = np.ascontiguousarray(np.clip(image, 0, 255).astype(np.uint8).transpose(1, 2, 0))
    if not depth:
        return image, label
    with np.errstate(divide="ignore"):
        return image, label, np.float32(1) / inverse
