"""SynthCity: procedural street scenes in Cityscapes' 19 classes, rendered on the fly at any resolution.

It is the package's embedded default dataset, so that training, evaluation, the corruption benchmark and the
resolution-shift experiment all run with nothing downloaded. It is not Cityscapes and numbers on it are not
Cityscapes numbers; it is a deterministic, resolution-independent stand-in with the same label space.

A scene is *vector* data (:class:`Scene`): a back-to-front list of polygons, ellipses and thick polylines in
normalised scene coordinates (x right, y down, both in [0, 1]; the scene is twice as wide as high), each with
a trainId and a :class:`Material`. :func:`render` rasterises it at any (H, W) by the painter's algorithm:

1. geometry: every shape's hard mask is evaluated at the pixel centres of its bounding box only, and paints a
   shape index and its trainId (labels are never blended, so the 1× label is the 2× label sampled at the
   same scene points, up to the boundary pixels);
2. appearance: each visible pixel takes its shape's colour, optionally a pattern (windows, bricks, paving,
   road markings, fence slats) evaluated in metres on the shape's plane and box-filtered over the pixel's
   footprint, so that fine patterns fade to their mean instead of aliasing; then value-noise textures defined
   in scene coordinates, the shape's lighting and haze, the scene's exposure and colour temperature, and a
   small seeded sensor noise.

The generator (:func:`generate_scene`) builds a street seen from a car: a pinhole camera 1.2–1.7 m above the
road, lanes with markings, kerbs and sidewalks, rows of buildings receding to a vanishing point, walls,
fences, hedges, grass, trees, street lamps, signs and traffic lights, parked and moving cars, trucks, buses,
trams, pedestrians and riders on bicycles and motorcycles; everything is projected with perspective, so far
objects are small. Colours of different classes overlap on purpose (grey cars on grey roads, green trucks by
trees, beige walls by beige facades): the task needs shape and context, not a colour lookup.

Every sample is determined by ``np.random.default_rng([seed, split_code, index])``; no global random state.
Rendering costs tens of milliseconds per small sample, which dominates short CPU runs that see each scene
many times (training epochs, every corruption cell); ``cache=True`` keeps each rendered sample as an .npz
under :func:`cache_dir`, keyed by a digest of this module's source, the split, seed, size and index, written
atomically (loader workers may render the same sample at once) and re-rendered if unreadable.
"""

from __future__ import annotations

import functools
import hashlib
import heapq
import math
import os
import zipfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Protocol

import numpy as np

from ..errors import UserError
from .base import DatasetInfo, SegmentationDataset, check_sample
from .labels import CITYSCAPES_CLASSES

# trainIds, in Cityscapes' order
(ROAD, SIDEWALK, BUILDING, WALL, FENCE, POLE, TRAFFIC_LIGHT, TRAFFIC_SIGN, VEGETATION, TERRAIN, SKY, PERSON, RIDER,
 CAR, TRUCK, BUS, TRAIN, MOTORCYCLE, BICYCLE) = range(19)
assert CITYSCAPES_CLASSES[BICYCLE] == "bicycle" and CITYSCAPES_CLASSES[TERRAIN] == "terrain"

ASPECT = 2.0  # scene width / height: Cityscapes' 1024×2048. Rendering at another aspect stretches the scene.
MIN_SIDE = 32
NOISE_CELLS = (1 / 512, 1 / 96, 1 / 20)  # value-noise lattice spacing in image heights: grain, mottle, patches

Color = tuple[float, float, float]  # RGB on the 0–255 scale, before lighting


# ---------------------------------------------------------------------------------------------------------------
# Vector geometry. Coordinates are scene coordinates: x in [0, 1] across, y in [0, 1] down. Lengths that must be
# the same across and along (line widths) are in image heights; one unit of x is ASPECT image heights.
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Polygon:
    """Closed rings of (x, y) vertices filled by the even-odd rule, so a ring inside another is a hole."""

    rings: tuple[np.ndarray, ...]  # each (N, 2)

    @cached_property
    def _edges(self) -> tuple[np.ndarray, ...]:
        """Non-horizontal edges as (y_low, y_high, x at y_low, dx/dy)."""
        a = self.rings[0] if len(self.rings) == 1 else np.concatenate(self.rings)
        b = np.concatenate([np.concatenate((r[1:], r[:1])) for r in self.rings])
        keep = a[:, 1] != b[:, 1]
        a, b = a[keep], b[keep]
        up = a[:, 1] < b[:, 1]
        low, high = np.where(up[:, None], a, b), np.where(up[:, None], b, a)
        return low[:, 1], high[:, 1], low[:, 0], (high[:, 0] - low[:, 0]) / (high[:, 1] - low[:, 1])

    def bounds(self) -> tuple[float, float, float, float]:
        points = self.rings[0] if len(self.rings) == 1 else np.concatenate(self.rings)
        (x0, y0), (x1, y1) = points.min(axis=0), points.max(axis=0)
        return x0, y0, x1, y1

    def mask(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Which of the pixel centres xs × ys (ascending) lie inside: a scanline fill.

        Every edge crosses the rows whose centre y lies in [y_low, y_high) (half-open, so a shared vertex counts
        once and each row is crossed an even number of times). Sorted along the row, crossings pair up into
        spans of inside pixel centres: those right of an odd crossing and not right of the next one.
        """
        y_low, y_high, x_low, slope = self._edges
        first = np.searchsorted(ys, y_low)
        counts = np.searchsorted(ys, y_high) - first
        edge = np.repeat(np.arange(len(counts)), counts)
        row = np.arange(edge.size) - np.repeat(np.cumsum(counts) - counts - first, counts)
        col = np.searchsorted(xs, x_low[edge] + (ys[row] - y_low[edge]) * slope[edge], side="right")
        h, w = len(ys), len(xs)
        if col.size == 0:
            return np.zeros((h, w), bool)
        order = np.lexsort((col, row))
        row, col = row[order], col[order]
        per_row = np.bincount(row, minlength=h)
        spans = np.full((h, per_row.max()), w, np.intp)  # rows with fewer crossings get empty spans (w, w)
        spans[row, np.arange(row.size) - np.repeat(np.cumsum(per_row) - per_row, per_row)] = col
        cols = np.arange(w)
        inside = (cols >= spans[:, :1]) & (cols < spans[:, 1:2])
        for j in range(2, spans.shape[1], 2):
            inside |= (cols >= spans[:, j:j + 1]) & (cols < spans[:, j + 1:j + 2])
        return inside


@dataclass(frozen=True, eq=False)
class Ellipse:
    """An axis-aligned ellipse; radii in scene units (rx across, ry down)."""

    center: tuple[float, float]
    radii: tuple[float, float]

    def bounds(self) -> tuple[float, float, float, float]:
        (x, y), (rx, ry) = self.center, self.radii
        return x - rx, y - ry, x + rx, y + ry

    def mask(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        (x, y), (rx, ry) = self.center, self.radii
        return ((ys - y) / ry)[:, None] ** 2 + ((xs - x) / rx)[None, :] ** 2 < 1.0


@dataclass(frozen=True, eq=False)
class Polyline:
    """A thick polyline with round caps: every pixel centre closer than width / 2 to a segment."""

    points: np.ndarray  # (N, 2)
    width: float  # image heights

    def bounds(self) -> tuple[float, float, float, float]:
        r = self.width / 2
        return (self.points[:, 0].min() - r / ASPECT, self.points[:, 1].min() - r,
                self.points[:, 0].max() + r / ASPECT, self.points[:, 1].max() + r)

    def mask(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        X, Y = xs[None, :] * ASPECT, ys[:, None]  # isotropic: distances in image heights
        inside = np.zeros((len(ys), len(xs)), bool)
        p = self.points * (ASPECT, 1.0)
        for (ax, ay), (bx, by) in zip(p[:-1], p[1:], strict=True):
            dx, dy = bx - ax, by - ay
            t = np.clip(((X - ax) * dx + (Y - ay) * dy) / max(dx * dx + dy * dy, 1e-12), 0.0, 1.0)
            inside |= (X - ax - t * dx) ** 2 + (Y - ay - t * dy) ** 2 < (self.width / 2) ** 2
        return inside


Geometry = Polygon | Ellipse | Polyline


# ---------------------------------------------------------------------------------------------------------------
# Materials: a base colour, noise textures, and optionally a pattern in the metres of the plane a shape lies on.
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Surface:
    """The plane a shape lies on: a homography from scene coordinates to metres (u, v) on that plane."""

    to_plane: np.ndarray  # 3×3, (x, y, 1) -> (u, v, 1) homogeneous

    def coords(self, x: np.ndarray, y: np.ndarray, pixel: tuple[float, float]):
        """(u, v) at scene points, and the size (du, dv) of one pixel's footprint there, in metres.

        Computed in the precision of x and y (float32 in the renderer); near a ground plane's horizon, where
        that loses digits, the footprint is many metres and every pattern has faded to its mean anyway.
        """
        m = self.to_plane.tolist()
        qu, qv, qw = (m[i][0] * x + m[i][1] * y + m[i][2] for i in range(3))
        u, v, aw = qu / qw, qv / qw, np.abs(qw)
        px, py = pixel
        du = (np.abs(m[0][0] - u * m[2][0]) * px + np.abs(m[0][1] - u * m[2][1]) * py) / aw
        dv = (np.abs(m[1][0] - v * m[2][0]) * px + np.abs(m[1][1] - v * m[2][1]) * py) / aw
        return u, v, du, dv


def _pulses(t: np.ndarray, period: float, duty: float, footprint: np.ndarray) -> np.ndarray:
    """Coverage of [t ± footprint/2] by the pulses [k·period, k·period + duty·period): a box-filtered square
    wave, exact in 1-D, so a pattern finer than a pixel renders as its mean instead of aliasing."""
    h = np.maximum(footprint * np.float32(0.5), np.float32(period * 1e-3))
    on, period = np.float32(duty * period), np.float32(period)

    def integral(s: np.ndarray) -> np.ndarray:
        k = np.floor(s / period)
        return k * on + np.minimum(s - k * period, on)

    return (integral(t + h) - integral(t - h)) / (h + h)


def _band(t: np.ndarray, lo: float, hi: float, footprint: np.ndarray) -> np.ndarray:
    """Coverage of [t ± footprint/2] by [lo, hi]."""
    h = np.maximum(footprint * np.float32(0.5), np.float32(1e-6))
    return np.clip((np.minimum(t + h, np.float32(hi)) - np.maximum(t - h, np.float32(lo))) / (h + h), 0.0, 1.0)


def _cell_hash(i: np.ndarray, j: np.ndarray, seed: int) -> np.ndarray:
    """A deterministic pseudo-random value in [0, 1) per integer cell (i, j): one per window, tile or brick."""
    h = (i.astype(np.int64) * 73856093) ^ (j.astype(np.int64) * 19349663) ^ (seed * 83492791)
    h = (h ^ (h >> 13)) * 1274126177
    return (((h ^ (h >> 16)) & 0xFFFF) * (1 / 65536)).astype(np.float32)


def _rgb(c) -> np.ndarray:
    """A colour (3,) as a (3, 1) column, or (3, n) colours unchanged, as float32."""
    c = np.asarray(c, np.float32)
    return c.reshape(3, 1) if c.ndim == 1 else c


def _mix(a, b, t: np.ndarray) -> np.ndarray:
    """(3, n) colours: a where t = 0, b where t = 1; a and b are colours or (3, n) arrays."""
    a = _rgb(a)
    return a + (_rgb(b) - a) * t


def _near(t: np.ndarray, lo: float, hi: float, footprint: np.ndarray) -> np.ndarray:
    """Indices where [t ± footprint/2] meets [lo, hi]: where a narrow band needs evaluating at all."""
    return np.flatnonzero((t + footprint > lo) & (t - footprint < hi))


class Pattern(Protocol):
    def colors(self, x: np.ndarray, y: np.ndarray, pixel: tuple[float, float], base: Color) -> np.ndarray:
        """(3, n) float32 colours at the scene points (x, y); `pixel` is one pixel's size in scene units."""


@dataclass(frozen=True, eq=False)
class Gradient:
    """A vertical blend from `top` at scene height y0 to `bottom` at y1: glass, shaded bodies."""

    top: Color
    bottom: Color
    y0: float
    y1: float

    def colors(self, x, y, pixel, base):
        return _mix(self.top, self.bottom, np.clip((y - self.y0) / (self.y1 - self.y0), 0.0, 1.0))


@dataclass(frozen=True, eq=False)
class Sky:
    """Zenith-to-horizon gradient with value-noise clouds stretched horizontally."""

    zenith: Color
    horizon_color: Color
    horizon: float  # scene y of the horizon
    cloud_cover: float  # 0 clear .. 1 overcast
    cloud_color: Color
    seed: int

    def colors(self, x, y, pixel, base):
        t = np.clip(y / self.horizon, 0.0, 1.0) ** 0.6
        sky = _mix(self.zenith, self.horizon_color, t)
        X, Y = x * ASPECT, y * 2.5  # clouds are flatter than they are wide
        n = 0.65 * _noise_at(self.seed, 0, 0.35, X, Y) + 0.35 * _noise_at(self.seed, 1, 0.09, X, Y)
        cover = np.clip((n + 0.6 * self.cloud_cover - 0.25) * 4.0, 0.0, 1.0) * (1 - 0.4 * t)
        shading = 0.82 + 0.18 * np.clip(1.0 - 2 * n, 0.0, 1.0)
        return _mix(sky, _rgb(self.cloud_color) * shading, cover)


@dataclass(frozen=True, eq=False)
class Facade:
    """A building face: storeys of windows above a ground floor of shop windows, optional brickwork."""

    surface: Surface  # u along the face, v up, metres from its base
    glass: Color
    trim: Color
    roof: float  # height of the face (m)
    storey: float
    ground: float  # ground-floor height
    bay: float  # window period along the face
    window: tuple[float, float]  # fraction of bay and storey that is glass
    phase: float
    bricks: bool
    seed: int

    def colors(self, x, y, pixel, base):
        u, v, du, dv = self.surface.coords(x, y, pixel)
        wall = _rgb(base)
        if self.bricks:  # mortar lines 7.7 cm apart and staggered joints; they fade to a tint far away
            row = np.floor(v / np.float32(0.077))
            mortar = 1 - (1 - _pulses(v, 0.077, 0.14, dv)) * (1 - _pulses(u + 0.12 * (row % 2), 0.24, 0.05, du))
            wall = _mix(wall, _rgb(base) * 1.25 + 15, mortar)
        uu = u - np.float32(self.phase)
        upper = _band(v, self.ground, self.roof - 0.7 * self.storey, dv)
        windows = (_pulses(uu, self.bay, self.window[0], du) * upper
                   * _pulses(v - np.float32(self.ground + (1 - self.window[1]) * 0.6 * self.storey), self.storey,
                             self.window[1], dv))
        shops = _pulses(uu + np.float32(0.1 * self.bay), 2 * self.bay, 0.8, du) * _band(v, 0.35, self.ground - 0.45, dv)
        ledges = (_pulses(v - np.float32(self.ground - 0.12), self.storey, 0.05, dv)
                  * _band(v, self.ground - 0.3, self.roof, dv) + _band(v, self.roof - 0.45, self.roof + 1, dv))
        cell = _cell_hash(np.floor(uu / np.float32(self.bay)), np.floor((v - self.ground) / np.float32(self.storey)),
                          self.seed)
        sharp = np.clip(1.0 - np.maximum(du / self.bay, dv / self.storey), 0.0, 1.0)  # far away: the mean glass
        brightness = 1.0 + sharp * np.where(cell > 0.9, np.float32(1.6), 0.9 * (cell - 0.45))  # lit or curtained
        out = _mix(wall, self.trim, np.minimum(ledges, 1.0))
        out = _mix(out, _rgb(self.glass) * brightness, windows)
        return _mix(out, _rgb(self.glass) * 0.8, shops)


@dataclass(frozen=True, eq=False)
class Masonry:
    """Bricks or blocks with mortar joints and per-unit shade variation: walls."""

    surface: Surface
    mortar: Color
    unit: tuple[float, float]  # (length, height) in metres
    seed: int

    def colors(self, x, y, pixel, base):
        u, v, du, dv = self.surface.coords(x, y, pixel)
        w, h = self.unit
        row = np.floor(v / np.float32(h))
        us = u + np.float32(0.5 * w) * (row % 2)
        joints = 1 - (1 - _pulses(v, h, 0.08, dv)) * (1 - _pulses(us, w, 0.04, du))
        sharp = np.clip(1.0 - np.maximum(du / w, dv / h), 0.0, 1.0)
        shade = 1.0 + 0.18 * sharp * (_cell_hash(np.floor(us / np.float32(w)), row, self.seed) - 0.5)
        return _mix(_rgb(base) * shade, self.mortar, joints)


@dataclass(frozen=True, eq=False)
class Paving:
    """Tiles with grout lines and per-tile shade variation: sidewalks."""

    surface: Surface
    grout: Color
    tile: tuple[float, float]
    seed: int

    def colors(self, x, y, pixel, base):
        u, v, du, dv = self.surface.coords(x, y, pixel)
        tu, tv = self.tile
        joints = 1 - (1 - _pulses(u, tu, 0.06, du)) * (1 - _pulses(v, tv, 0.06, dv))
        sharp = np.clip(1.0 - np.maximum(du / tu, dv / tv), 0.0, 1.0)
        shade = 1.0 + 0.16 * sharp * (_cell_hash(np.floor(u / np.float32(tu)), np.floor(v / np.float32(tv)),
                                                 self.seed) - 0.5)
        return _mix(_rgb(base) * shade, self.grout, joints)


@dataclass(frozen=True, eq=False)
class Asphalt:
    """A road plane (u = X across, v = Z along, metres) with painted lines, zebra crossings, tram rails and
    darker tyre tracks. Markings are class road, as in Cityscapes."""

    surface: Surface
    paint: Color
    lines: tuple[tuple[float, float, float, float], ...]  # (x, width, dash period or 0 for solid, dash duty)
    zebras: tuple[tuple[float, float], ...]  # (z0, z1) of crossings
    rails: tuple[float, ...]  # x of rails
    lanes: tuple[float, float, float]  # (lane width, x of the leftmost and of the rightmost lane centre)

    def colors(self, x, y, pixel, base):
        u, v, du, dv = self.surface.coords(x, y, pixel)
        width, left, right = self.lanes  # lane centres are multiples of the lane width: tracks are periodic
        off_centre = np.abs(u / np.float32(width) - np.round(u / np.float32(width))) * np.float32(width)
        tracks = _band(off_centre, 0.55, 1.1, du) * ((u > left - width / 2) & (u < right + width / 2))
        out = _rgb(base) * (1 - 0.09 * tracks)
        paint = np.zeros_like(u)
        for cx, w, period, duty in self.lines:  # each line only where it can cover some of a pixel
            i = _near(u, cx - w / 2, cx + w / 2, du)
            line = _band(u[i], cx - w / 2, cx + w / 2, du[i])
            paint[i] = np.maximum(paint[i], line * _pulses(v[i], period, duty, dv[i]) if period else line)
        for z0, z1 in self.zebras:
            i = _near(v, z0, z1, dv)
            paint[i] = np.maximum(paint[i], _band(v[i], z0, z1, dv[i]) * _pulses(u[i], 1.0, 0.5, du[i]))
        out = _mix(out, self.paint, paint)
        for r in self.rails:
            i = _near(u, r - 0.04, r + 0.08, du)
            out[:, i] = _mix(out[:, i], (150, 150, 155), _band(u[i], r - 0.04, r + 0.04, du[i]))
            out[:, i] = _mix(out[:, i], (35, 35, 38), _band(u[i], r + 0.04, r + 0.08, du[i]))
        return out


@dataclass(frozen=True, eq=False)
class Slats:
    """A fence: vertical slats or bars (or a diagonal mesh) with rails, on a see-through background."""

    surface: Surface
    behind: Color  # what shows between the slats; still labelled fence
    period: float
    duty: float
    rails: tuple[tuple[float, float], ...]  # (v0, v1)
    mesh: bool

    def colors(self, x, y, pixel, base):
        u, v, du, dv = self.surface.coords(x, y, pixel)
        if self.mesh:
            d = np.maximum(du, dv)
            cover = np.maximum(_pulses(u + v, self.period, self.duty, d), _pulses(u - v, self.period, self.duty, d))
            cover = np.maximum(cover, _pulses(u, 2.5, 0.04, du))  # posts
        else:
            cover = _pulses(u, self.period, self.duty, du)
        for v0, v1 in self.rails:
            cover = np.maximum(cover, _band(v, v0, v1, dv))
        return _mix(self.behind, base, cover)


@dataclass(frozen=True, eq=False)
class Material:
    """How a shape's visible pixels are coloured."""

    color: Color
    grain: tuple[float, float, float] = (0.03, 0.03, 0.04)  # relative amplitude of the NOISE_CELLS textures
    pattern: Pattern | None = None  # replaces `color` pixel by pixel
    light: float = 1.0  # direct + ambient light on this face
    fog: float = 0.0  # 0..1 blend towards the scene's haze colour (aerial perspective)


@dataclass(frozen=True, eq=False)
class Shape:
    geometry: Geometry
    label: int  # trainId
    material: Material


@dataclass(frozen=True, eq=False)
class Shade:
    """A shadow: darkens what is painted before it, labels nothing; a later opaque shape covers it."""

    geometry: Geometry
    factor: float


@dataclass(frozen=True, eq=False)
class Scene:
    """A street scene as vector data: renders identically (up to sampling) at every resolution."""

    shapes: tuple[Shape | Shade, ...]  # back to front
    haze: Color
    gain: Color  # exposure × colour temperature, per channel
    noise_seed: int  # seeds the texture lattices and the sensor noise
    sensor_noise: float  # standard deviation, 0–255 scale


# ---------------------------------------------------------------------------------------------------------------
# The renderer
# ---------------------------------------------------------------------------------------------------------------


def _lattice(seed: int, octave: int, cell: float, extent: tuple[float, float] = (1.0, ASPECT)) -> np.ndarray:
    """Uniform values in [-1, 1) on a grid `cell` image heights apart that covers `extent` (height, width)."""
    rng = np.random.default_rng([seed, octave])
    shape = (math.ceil(extent[0] / cell) + 2, math.ceil(extent[1] / cell) + 2)
    return rng.random(shape, dtype=np.float32) * 2 - 1


def _smooth_index(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    i = np.floor(p)
    t = p - i
    return i.astype(np.intp), (t * t * (3 - 2 * t)).astype(np.float32)


def _noise_field(seed: int, octave: int, cell: float, H: int, W: int) -> np.ndarray:
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


def _noise_at(seed: int, octave: int, cell: float, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Value noise at scattered points (x, y in image heights, within the lattice)."""
    grid = _lattice(seed, 100 + octave, cell, (3.0, ASPECT))
    gy, gx = grid.shape
    ix, tx = _smooth_index(np.clip(x / cell, 0, gx - 1.001))
    iy, ty = _smooth_index(np.clip(y / cell, 0, gy - 1.001))
    top = grid[iy, ix] * (1 - tx) + grid[iy, ix + 1] * tx
    bottom = grid[iy + 1, ix] * (1 - tx) + grid[iy + 1, ix + 1] * tx
    return top * (1 - ty) + bottom * ty


def _pixel_box(bounds, H: int, W: int) -> tuple[int, int, int, int] | None:
    """Rows r0:r1 and columns c0:c1 whose pixel centres lie within the scene-coordinate bounds."""
    x0, y0, x1, y1 = bounds
    c0, c1 = max(0, math.ceil(x0 * W - 0.5)), min(W, math.floor(x1 * W - 0.5) + 1)
    r0, r1 = max(0, math.ceil(y0 * H - 0.5)), min(H, math.floor(y1 * H - 0.5) + 1)
    return (r0, r1, c0, c1) if r0 < r1 and c0 < c1 else None


def _check_size(size) -> tuple[int, int]:
    try:
        H, W = (int(s) for s in size)
        ok = (H, W) == tuple(size)
    except (TypeError, ValueError):
        ok = False
    if not ok or min(H, W) < MIN_SIDE:
        raise UserError(f"SynthCity size must be (height, width) in pixels, both at least {MIN_SIDE}; got {size!r}")
    return H, W


def render(scene: Scene, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The (H, W, 3) uint8 RGB image and (H, W) uint8 trainId label of `scene` at `size` = (H, W).

    Pixels no shape covers (none, for generated scenes) are black and labelled 255 (ignore).
    """
    H, W = _check_size(size)
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
        texture += np.take(table[3 + octave], ids) * _noise_field(scene.noise_seed, octave, cell, H, W)
    texture *= np.take(table[6], ids)
    if shade is not None:
        texture *= shade
    image *= texture
    if table[7].any():
        image += np.take(table[7], ids) * (np.asarray(scene.haze, np.float32)[:, None, None] - image)
    image *= np.asarray(scene.gain, np.float32)[:, None, None]
    if scene.sensor_noise > 0:  # luminance noise, seeded by the scene and the size, so still deterministic
        rng = np.random.default_rng([scene.noise_seed, H, W])
        # triangular: the difference of two uniforms, scaled to unit variance; cheaper than a Gaussian
        noise = rng.random((H, W), dtype=np.float32) - rng.random((H, W), dtype=np.float32)
        image += noise * np.float32(scene.sensor_noise * math.sqrt(6))
    return np.ascontiguousarray(np.clip(image, 0, 255).astype(np.uint8).transpose(1, 2, 0)), label


# ---------------------------------------------------------------------------------------------------------------
# The world: a pinhole camera over a street, and the projection of 3-D surfaces and upright figures.
# World axes: X right, Y up, Z forward, metres; the camera sits at (0, height, 0) looking along +Z.
# ---------------------------------------------------------------------------------------------------------------

Z_NEAR = 0.3  # metres; polygons are clipped to Z >= Z_NEAR before projection
FACING_CAMERA, UP = (0.0, 0.0, -1.0), (0.0, 1.0, 0.0)


def _clip_near(points: np.ndarray) -> np.ndarray | None:
    """The part of a planar 3-D polygon in front of the near plane (Sutherland–Hodgman), or None."""
    if points[:, 2].min() >= Z_NEAR:
        return points
    out = []
    for p, q in zip(points, np.roll(points, -1, axis=0), strict=True):
        if p[2] >= Z_NEAR:
            out.append(p)
        if (p[2] >= Z_NEAR) != (q[2] >= Z_NEAR):
            out.append(p + (Z_NEAR - p[2]) / (q[2] - p[2]) * (q - p))
    return np.array(out) if len(out) >= 3 else None


@dataclass(frozen=True)
class Billboard:
    """Upright flat figures at one depth: (right, up) metres from a ground point to scene coordinates.

    `squash` scales the horizontal axis (1 side view, about 0.3 seen from behind; negative mirrors), so a
    bicycle or a walker can be turned.
    """

    x: float
    y: float
    scale: float  # image heights per metre at this depth
    squash: float = 1.0

    def points(self, pts) -> np.ndarray:
        p = np.asarray(pts, float)
        return np.column_stack([self.x + p[:, 0] * self.squash * self.scale / ASPECT, self.y - p[:, 1] * self.scale])

    def polygon(self, *rings) -> Polygon:
        return Polygon(tuple(self.points(r) for r in rings))

    def rect(self, x0: float, y0: float, x1: float, y1: float) -> Polygon:
        return self.polygon([(x0, y0), (x1, y0), (x1, y1), (x0, y1)])

    def ellipse(self, cx: float, cy: float, rx: float, ry: float, turn: bool = True) -> Ellipse:
        sx = abs(self.squash) if turn else 1.0
        return Ellipse((self.x + cx * self.squash * self.scale / ASPECT, self.y - cy * self.scale),
                       (max(rx * sx, 0.02) * self.scale / ASPECT, ry * self.scale))

    def line(self, pts, width: float) -> Polyline:
        return Polyline(self.points(pts), width * self.scale)

    def ring(self, cx: float, cy: float, r_out: float, r_in: float) -> Polygon:
        """An annulus (a tyre), as a polygon with a hole."""
        a = np.linspace(0, 2 * np.pi, 28, endpoint=False)
        circle = np.column_stack([np.cos(a), np.sin(a)])
        return self.polygon(circle * r_out + (cx, cy), circle * r_in + (cx, cy))


@dataclass(frozen=True)
class Camera:
    focal: float  # image heights
    height: float  # metres above the road
    cx: float  # principal point, image heights from the left edge (the image is ASPECT wide)
    horizon: float  # principal point, image heights from the top

    def project(self, p: np.ndarray) -> np.ndarray:
        p = np.asarray(p, float)
        f_z = self.focal / p[..., 2]
        out = np.empty(p.shape[:-1] + (2,))
        out[..., 0] = (self.cx + p[..., 0] * f_z) * (1 / ASPECT)
        out[..., 1] = self.horizon - (p[..., 1] - self.height) * f_z
        return out

    def polygon(self, points) -> Polygon | None:
        clipped = _clip_near(np.asarray(points, float))
        return None if clipped is None else Polygon((self.project(clipped),))

    def surface(self, origin, a, b) -> Surface:
        """The plane origin + u·a + v·b as a Surface (scene coordinates -> (u, v))."""
        k = np.array([[self.focal / ASPECT, 0.0, self.cx / ASPECT], [0.0, -self.focal, self.horizon], [0.0, 0.0, 1.0]])
        o = np.asarray(origin, float) - (0.0, self.height, 0.0)
        return Surface(np.linalg.inv(k @ np.column_stack([a, b, o])))

    def billboard(self, x: float, z: float, squash: float = 1.0) -> Billboard:
        bx, by = self.project((x, 0.0, z))
        return Billboard(float(bx), float(by), self.focal / z, squash)


@dataclass(frozen=True)
class Lighting:
    sun: np.ndarray  # unit vector towards the sun
    ambient: float
    direct: float
    visibility: float  # metres at which haze reaches 63 %

    def on(self, normal) -> float:
        return self.ambient + self.direct * max(0.0, float(np.dot(normal, self.sun)))

    def fog(self, z: float) -> float:
        return 1.0 - math.exp(-max(z, 0.0) / self.visibility)


def _rect3(origin, a, b, u0: float, u1: float, v0: float, v1: float) -> np.ndarray:
    """The 3-D rectangle origin + [u0, u1]·a + [v0, v1]·b."""
    return np.array([[o + u * ai + v * bi for o, ai, bi in zip(origin, a, b, strict=True)]
                     for u, v in ((u0, v0), (u1, v0), (u1, v1), (u0, v1))])


def _ground(x0: float, x1: float, z0: float, z1: float, y: float = 0.0) -> np.ndarray:
    return np.array([(x0, y, z0), (x1, y, z0), (x1, y, z1), (x0, y, z1)], float)


@dataclass(frozen=True)
class _Face:
    """A visible face of an axis-aligned box: origin + [0, length]·a + [0, height]·b."""

    origin: tuple[float, float, float]
    a: tuple[float, float, float]
    b: tuple[float, float, float]
    length: float
    height: float
    normal: tuple[float, float, float]

    def rect(self, u0: float, u1: float, v0: float, v1: float) -> np.ndarray:
        return _rect3(self.origin, self.a, self.b, u0, u1, v0, v1)


def _box_faces(x0, x1, y0, y1, z0, z1, eye: float) -> dict[str, _Face]:
    """The faces of a box that a camera at (0, eye, 0) sees, by world side: near (−Z), left (−X), right (+X), top."""
    faces = {}
    if z0 > 0:
        faces["near"] = _Face((x0, y0, z0), (1, 0, 0), (0, 1, 0), x1 - x0, y1 - y0, FACING_CAMERA)
    if x0 > 0:
        faces["left"] = _Face((x0, y0, z0), (0, 0, 1), (0, 1, 0), z1 - z0, y1 - y0, (-1.0, 0.0, 0.0))
    if x1 < 0:
        faces["right"] = _Face((x1, y0, z0), (0, 0, 1), (0, 1, 0), z1 - z0, y1 - y0, (1.0, 0.0, 0.0))
    if y1 < eye:
        faces["top"] = _Face((x0, y1, z0), (1, 0, 0), (0, 0, 1), x1 - x0, z1 - z0, UP)
    return faces


# ---------------------------------------------------------------------------------------------------------------
# Palettes (RGB before lighting). Several classes share hues on purpose.
# ---------------------------------------------------------------------------------------------------------------

CAR_COLORS = ((200, 201, 205), (232, 232, 230), (28, 29, 32), (112, 113, 117), (72, 76, 80), (150, 28, 30),
              (32, 52, 118), (45, 82, 52), (182, 152, 96), (92, 62, 42), (28, 92, 140), (214, 176, 46))
TRUCK_COLORS = ((230, 230, 228), (150, 152, 155), (58, 100, 62), (160, 40, 35), (40, 70, 140), (215, 170, 40),
                (220, 110, 30))
BUS_COLORS = ((226, 178, 42), (168, 40, 38), (225, 225, 222), (40, 82, 160), (62, 128, 82), (140, 142, 146))
TRAM_COLORS = ((230, 230, 228), (180, 35, 35), (230, 190, 40), (40, 90, 170), (70, 140, 90))
FACADE_COLORS = ((198, 184, 160), (214, 210, 200), (140, 140, 142), (220, 200, 142), (150, 82, 62), (92, 92, 96),
                 (168, 186, 158), (140, 150, 166), (122, 96, 76), (190, 160, 130), (235, 225, 205))
WALL_COLORS = ((150, 150, 148), (188, 178, 158), (140, 78, 60), (208, 204, 192), (110, 110, 105), (170, 160, 120))
FENCE_COLORS = ((120, 122, 125), (40, 42, 44), (132, 100, 70), (62, 92, 62), (220, 220, 215), (150, 140, 120))
POLE_COLORS = ((140, 142, 146), (60, 75, 65), (40, 41, 43), (170, 172, 175))
CLOTHES = ((25, 25, 28), (40, 48, 80), (110, 110, 112), (225, 225, 222), (190, 170, 130), (160, 35, 40),
           (55, 80, 125), (60, 90, 60), (100, 70, 50), (200, 120, 40), (130, 60, 120), (70, 110, 150))
SKIN = ((232, 192, 162), (205, 152, 120), (152, 102, 72), (98, 68, 50))
HAIR = ((30, 25, 20), (90, 60, 35), (180, 150, 90), (140, 140, 140), (60, 40, 25))
FOLIAGE = (0.2, 0.28, 0.14)  # grain of leaves: strong fine and medium noise
GRASS = (0.16, 0.2, 0.18)
RAW = (0.02, 0.02, 0.03)  # smooth paint, glass


# ---------------------------------------------------------------------------------------------------------------
# The street generator
# ---------------------------------------------------------------------------------------------------------------

Item = tuple[float, list]  # (depth for sorting, shapes drawn in this order)
Footprint = tuple[float, float, float, float]  # x0, x1, z0, z1 on the ground, metres


def _occlusion_order(footprints: np.ndarray) -> list[int]:
    """A back-to-front drawing order for objects standing on the ground, given their footprints.

    Far first (by the near edge), except that of two objects side by side (overlapping in Z, apart in X) the one
    on the camera's side of the gap between them is drawn later, whatever their near edges: a tram beside a bus
    starts nearer but must not cover it. A topological sort of those constraints, ties broken far first.
    """
    x0, x1, z0, z1 = footprints.T
    beside = (z0[:, None] < z1[None, :]) & (z0[None, :] < z1[:, None])
    # in_front[a, b]: a occludes b; the camera (X = 0) is on a's side of the gap between them
    in_front = beside & (((x1[:, None] <= x0[None, :]) & (x1[:, None] >= 0))
                         | ((x1[None, :] <= x0[:, None]) & (x0[:, None] <= 0)))
    waiting = in_front.sum(axis=1)  # how many objects each one must wait for
    ready = [(-z0[i], i) for i in np.flatnonzero(waiting == 0)]
    heapq.heapify(ready)
    order = []
    while ready:
        _, i = heapq.heappop(ready)
        order.append(int(i))
        for j in np.flatnonzero(in_front[:, i]):
            waiting[j] -= 1
            if waiting[j] == 0:
                heapq.heappush(ready, (-z0[j], j))
    if len(order) < len(footprints):  # a cycle (objects placed overlapping): the rest far first
        left = sorted(set(range(len(footprints))) - set(order), key=lambda i: -z0[i])
        order += left
    return order


class _Street:
    """Builds one scene: layout first, then layers of shapes drawn back to front.

    Layers: sky and distant skyline; ground (terrain, sidewalks, kerbs, road) and cast shadows; the street's
    far end; each side's building row (far to near: a row's faces are outside everything in the street, so
    they are behind it); walls, fences and hedges along the sidewalks; then everything on the sidewalks and the
    road, in the order :func:`_occlusion_order` gives their footprints.
    """

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        u = rng.uniform
        self.cam = Camera(focal=u(1.7, 2.3), height=u(1.2, 1.7), cx=ASPECT / 2 + u(-0.12, 0.12), horizon=u(0.36, 0.47))
        self.overcast = rng.random() < 0.35
        elevation, azimuth = u(0.25, 1.1), u(0, 2 * np.pi)
        sun = np.array([math.cos(elevation) * math.sin(azimuth), math.sin(elevation),
                        math.cos(elevation) * math.cos(azimuth)])
        ambient, direct = (u(0.75, 0.9), u(0.05, 0.2)) if self.overcast else (u(0.4, 0.55), u(0.5, 0.8))
        self.light = Lighting(sun, ambient, direct, u(150, 400) if self.overcast else u(300, 1000))
        exposure = u(0.72, 1.2) / (ambient + direct * sun[1])  # the road ends up around `exposure`
        warmth = u(-1, 1)
        self.gain = (exposure * (1 + 0.08 * warmth), exposure, exposure * (1 - 0.1 * warmth))
        # Cast shadows: ground offset (X, Z) per metre of height, and how dark; none under an overcast sky.
        self.shadow = None if self.overcast else (-sun[0] / sun[1], -sun[2] / sun[1], ambient / self.light.on(UP))

        # Lanes: the camera drives in the lane centred on X = 0.
        lane = u(2.9, 3.5)
        self.lanes = [(0.0, 1)]  # (centre X, direction: +1 away from the camera, -1 towards it)
        right = rng.choice(["parking", "lane", "bike", "none"], p=[0.4, 0.2, 0.2, 0.2])
        if right == "lane":
            self.lanes.append((lane, 1))
        same, oncoming = int(rng.integers(0, 2)), int(rng.integers(1, 3))
        self.lanes += [(-lane * (k + 1), 1) for k in range(same)]
        self.lanes += [(-lane * (same + k + 1), -1) for k in range(oncoming)]
        self.lane = lane
        self.parking = {1: right == "parking", -1: rng.random() < 0.5}
        self.bike_lane = right == "bike"
        xs = [x for x, _ in self.lanes]
        self.edge = {1: max(xs) + lane / 2 + (2.2 if self.parking[1] else 1.5 if self.bike_lane else 0.0),
                     -1: min(xs) - lane / 2 - (2.2 if self.parking[-1] else 0.0)}
        self.kerb = u(0.1, 0.16)
        self.verge = {s: u(1.0, 2.5) if rng.random() < 0.3 else 0.0 for s in (-1, 1)}
        self.walk = {s: u(2.0, 5.0) for s in (-1, 1)}
        self.garden = {s: u(1.5, 5.0) if rng.random() < 0.3 else 0.0 for s in (-1, 1)}

        self.end = str(rng.choice(["open", "facade", "trees"], p=[0.45, 0.35, 0.2]))
        self.z_end = u(90, 260)
        self.z_far = 5000.0 if self.end == "open" else self.z_end
        self.crossing = (u(25, 70), u(10, 16)) if rng.random() < 0.5 else None  # (z, width) of a cross street
        self.zebra = None  # (z0, z1) of a pedestrian crossing: before the cross street, or mid-block
        if self.crossing:
            self.zebra = (self.crossing[0] - 4.5, self.crossing[0] - 1.0)
        elif rng.random() < 0.25:
            z = u(15, 45)
            self.zebra = (z, z + 3.5)
        self.tram_lane = min(xs) if rng.random() < 0.25 else None

        self.sky_shapes: list[Shape] = []
        self.ground: list[Shape | Shade] = []
        self.far_end: list[Shape] = []
        self.rows: dict[int, list[Item]] = {-1: [], 1: []}
        self.frontage: list[Item] = []
        self.street: list[tuple[Footprint, list]] = []

    # -- helpers ------------------------------------------------------------------------------------------------

    def walk_edges(self, s: int) -> tuple[float, float]:
        """X of the inner (kerb side) and outer edge of side s's sidewalk."""
        inner = self.edge[s] + s * self.verge[s]
        return inner, inner + s * self.walk[s]

    def building_line(self, s: int) -> float:
        return self.walk_edges(s)[1] + s * self.garden[s]

    def crossing_gap(self) -> tuple[float, float]:
        """Z range of the cross street and its sidewalks, where the building rows stop."""
        zc, w = self.crossing
        return zc - self.walk[1], zc + w + self.walk[-1]

    def in_crossing(self, z: float, margin: float = 0.0) -> bool:
        if self.crossing is None:
            return False
        g0, g1 = self.crossing_gap()
        return g0 - margin < z < g1 + margin

    def jitter(self, color, amount: float = 0.08) -> Color:
        """`color` with its brightness varied by ±amount and each channel by ±4 %."""
        r = self.rng.random(4)
        gain = 1 - amount + 2 * amount * r[0]
        return tuple(min(255.0, max(0.0, float(c) * gain * (0.96 + 0.08 * t)))
                     for c, t in zip(color, r[1:], strict=True))

    def pick(self, palette) -> Color:
        return self.jitter(palette[self.rng.integers(len(palette))])

    def material(self, color, normal=FACING_CAMERA, z: float = 20.0, grain=(0.03, 0.03, 0.04), pattern=None,
                 light: float | None = None) -> Material:
        """A material lit as a face with `normal` and hazed as at distance z."""
        return Material(tuple(float(c) for c in color), grain, pattern,
                        self.light.on(normal) if light is None else light, self.light.fog(z))

    def put(self, x: float, z: float, shapes: list, radius: float = 0.3) -> None:
        """Place an upright figure standing at (x, z) in the street layer."""
        self.street.append(((x - radius, x + radius, z - radius, z + radius), shapes))

    def poly(self, points, label: int, material: Material) -> list[Shape]:
        geometry = self.cam.polygon(points)
        return [] if geometry is None else [Shape(geometry, label, material)]

    # -- layers -------------------------------------------------------------------------------------------------

    def build(self) -> Scene:
        self.add_sky()
        self.add_ground()
        self.add_far_end()
        for s in (-1, 1):
            self.add_row(s)
            self.add_frontage(s)
            self.add_trees(s)
            self.add_lamps(s)
        self.add_signs()
        self.add_traffic_lights()
        self.add_vehicles()
        self.add_people()
        self.add_two_wheelers()

        def back_to_front(items: list[Item]) -> list:
            return [shape for _, shapes in sorted(items, key=lambda item: -item[0]) for shape in shapes]

        order = _occlusion_order(np.array([footprint for footprint, _ in self.street], float).reshape(-1, 4))
        street = [shape for i in order for shape in self.street[i][1]]

        shapes = (self.sky_shapes + self.ground + self.far_end + back_to_front(self.rows[-1])
                  + back_to_front(self.rows[1]) + back_to_front(self.frontage) + street)
        return Scene(tuple(shapes), self.haze, self.gain, int(self.rng.integers(2**31)),
                     float(self.rng.uniform(1.0, 3.5)))

    def add_sky(self) -> None:
        """Sky (clear, cloudy, overcast or dusk) and a hazy skyline and tree line along the horizon."""
        rng, u = self.rng, self.rng.uniform
        if self.overcast:
            g = u(150, 200)
            zenith, horizon = (g * u(0.95, 1.0), g * u(0.97, 1.0), g * u(1.0, 1.06)), (g + 25, g + 27, g + 30)
            cover, cloud = u(0.5, 1.0), (g + u(-30, 20),) * 3
        else:
            zenith = (u(55, 110), u(115, 165), u(190, 240))
            horizon = (u(175, 215), u(195, 225), u(220, 242))
            if rng.random() < 0.15:  # low sun: a warm horizon
                horizon = (u(225, 250), u(185, 210), u(150, 180))
            cover, cloud = u(0.0, 0.6), (u(225, 250),) * 3
        self.haze = tuple(float(c) for c in horizon)
        sky = Sky(zenith, horizon, self.cam.horizon, cover, cloud, int(rng.integers(2**31)))
        square = np.array([(-0.01, -0.01), (1.01, -0.01), (1.01, 1.01), (-0.01, 1.01)])
        self.sky_shapes.append(Shape(Polygon((square,)), SKY, Material((0, 0, 0), (0.0, 0.0, 0.0), sky, 1.0, 0.0)))

        # A distant skyline and tree line along the horizon, drawn over the sky and under everything else.
        h = self.cam.horizon + 0.004
        x = u(-0.05, 0.0)
        while x < 1.0:
            w = u(0.015, 0.07)
            if rng.random() < 0.35:
                r = u(0.006, 0.02)
                self.sky_shapes.append(Shape(Ellipse((x + w / 2, h - r * 0.6), (w / 2, r)), VEGETATION,
                                             Material(self.jitter((70, 92, 60)), FOLIAGE, None, 1.0, u(0.45, 0.7))))
            else:
                top = h - u(0.004, 0.05)
                square = np.array([(x, top), (x + w, top), (x + w, h), (x, h)])
                self.sky_shapes.append(Shape(Polygon((square,)), BUILDING,
                                             Material(self.pick(FACADE_COLORS), (0.02, 0.05, 0.04), None,
                                                      u(0.7, 1.0), u(0.55, 0.8))))
            x += w

    def add_ground(self) -> None:
        """Terrain under everything, sidewalks with kerbs, grass verges and gardens, the cross street, and the
        road with its markings and patches."""
        rng, u, cam = self.rng, self.rng.uniform, self.cam
        far = self.z_far
        grass = self.jitter(((96, 128, 62), (128, 138, 78), (120, 104, 80), (80, 118, 58))[rng.integers(4)])
        self.ground += self.poly(_ground(-600, 600, 1.0, 6000), TERRAIN,
                                 self.material(grass, UP, 60, GRASS))

        walk_color = self.pick(((150, 148, 144), (168, 160, 150), (150, 112, 100), (120, 120, 122), (182, 176, 160)))
        grout = tuple(c * 0.75 for c in walk_color)
        paving = Paving(cam.surface((0, self.kerb, 0), (1, 0, 0), (0, 0, 1)), grout,
                        (u(0.25, 0.6),) * 2 if rng.random() < 0.6 else (u(0.2, 0.35), u(0.1, 0.2)),
                        int(rng.integers(2**31)))
        for s in (-1, 1):
            inner, outer = self.walk_edges(s)
            line = self.building_line(s)
            if self.garden[s]:
                self.ground += self.poly(_ground(outer, line, 1.0, far, self.kerb), TERRAIN,
                                         self.material(self.jitter(grass), UP, 30, GRASS))
            self.ground += self.poly(_ground(inner, outer, 1.0, far, self.kerb), SIDEWALK,
                                     self.material(walk_color, UP, 30, (0.05, 0.05, 0.06), paving))
            if self.verge[s]:
                self.ground += self.poly(_ground(self.edge[s], inner, 1.0, far, self.kerb), TERRAIN,
                                         self.material(self.jitter(grass), UP, 30, GRASS))
            kerb = _rect3((self.edge[s], 0, 0), (0, 0, 1), (0, 1, 0), 1.0, far, 0, self.kerb)
            self.ground += self.poly(kerb, SIDEWALK, self.material(self.jitter((175, 175, 170)), (-s, 0, 0), 30,
                                                                   (0.05, 0.04, 0.05)))

        if self.crossing:  # the cross street, with its sidewalks, across everything beyond the kerbs
            zc, w = self.crossing
            self.ground += self.poly(_ground(-600, 600, zc - self.walk[1], zc + w + self.walk[-1], self.kerb),
                                     SIDEWALK, self.material(walk_color, UP, zc, (0.05, 0.05, 0.06), paving))
            self.ground += self.poly(_ground(-600, 600, zc, zc + w), ROAD,
                                     self.material(self.jitter((92, 92, 96)), UP, zc, (0.1, 0.06, 0.06)))

        g = u(68, 118)
        asphalt = (g * u(0.96, 1.03), g, g * u(1.0, 1.07))
        paint = (235, 235, 228) if rng.random() < 0.85 else (225, 190, 60)
        lines = []
        xs = sorted(self.lanes)
        for (xa, da), (xb, db) in zip(xs[:-1], xs[1:], strict=True):
            mid = (xa + xb) / 2
            if da == db:  # between lanes of one direction: dashed
                lines.append((mid, 0.12, u(9, 15), u(0.25, 0.45)))
            else:  # the centre line: solid, double or dashed
                kind = rng.integers(3)
                if kind == 0:
                    lines.append((mid, 0.12, 0, 0))
                elif kind == 1:
                    lines += [(mid - 0.12, 0.1, 0, 0), (mid + 0.12, 0.1, 0, 0)]
                else:
                    lines.append((mid, 0.12, 12.0, 0.5))
        for s in (-1, 1):  # the outer lanes' edges
            x_lane = (max if s > 0 else min)(xs)[0] + s * self.lane / 2
            if abs(x_lane - self.edge[s]) < 0.1:  # the lane ends at the kerb: a solid line just inside
                lines.append((x_lane - s * 0.2, 0.12, 0, 0))
            elif s > 0 and self.bike_lane:
                lines.append((x_lane, 0.12, 0, 0))
            else:  # a parking strip
                lines.append((x_lane, 0.12, 5.0, 0.5))
        rails = () if self.tram_lane is None else (self.tram_lane - 0.72, self.tram_lane + 0.72)
        road = Asphalt(cam.surface((0, 0, 0), (1, 0, 0), (0, 0, 1)), paint, tuple(lines),
                       (self.zebra,) if self.zebra else (), rails, (self.lane, min(xs)[0], max(xs)[0]))
        self.ground += self.poly(_ground(self.edge[-1], self.edge[1], 1.0, far), ROAD,
                                 self.material(asphalt, UP, 30, (0.12, 0.05, 0.07), road))
        for _ in range(rng.integers(0, 4)):  # patched asphalt
            x0, z0 = u(self.edge[-1], self.edge[1] - 1), u(4, 60)
            x1, z1 = min(x0 + u(0.8, 4), self.edge[1]), z0 + u(1, 12)
            shade = u(0.8, 1.15)
            self.ground += self.poly(_ground(x0, x1, z0, z1, 0.001), ROAD,
                                     self.material(tuple(c * shade for c in asphalt), UP, z0, (0.1, 0.05, 0.05)))

    def cast_shadow(self, x: float, z0: float, z1: float, height: float) -> list[Shade]:
        """The shadow on the ground of a wall at X = x from z0 to z1, if it falls towards the street."""
        if self.shadow is None:
            return []
        sx, sz, factor = self.shadow
        if x * sx >= 0:  # it falls away from the street
            return []
        dx, dz = height * sx, height * sz
        quad = np.array([(x, 0.002, z0), (x, 0.002, z1), (x + dx, 0.002, z1 + dz), (x + dx, 0.002, z0 + dz)])
        geometry = self.cam.polygon(quad)
        return [] if geometry is None else [Shade(geometry, factor)]

    # -- buildings ----------------------------------------------------------------------------------------------

    def facade(self, origin, a, roof: float, style: dict) -> Facade:
        """The windows and trim of `style` on the plane origin + u·a + v·up."""
        return Facade(self.cam.surface(origin, a, UP), style["glass"], style["trim"], roof, style["storey"],
                      style["ground"], style["bay"], style["window"], float(self.rng.uniform(0, style["bay"])),
                      style["bricks"], style["seed"])

    def building_style(self) -> dict:
        """Colour, brickwork and window layout of one building: its faces share them."""
        rng, u = self.rng, self.rng.uniform
        bricks = rng.random() < 0.2
        color = self.jitter((150, 82, 62)) if bricks else self.pick(FACADE_COLORS)
        office = rng.random() < 0.15
        g = u(25, 75)
        return dict(color=color, bricks=bricks, glass=(g, g * u(1.0, 1.15), g * u(1.05, 1.35)),
                    trim=self.jitter(np.asarray(color) * u(0.75, 1.2)), storey=u(2.9, 3.6), ground=u(3.4, 4.8),
                    bay=u(1.6, 2.4) if office else u(2.2, 3.8),
                    window=(u(0.75, 0.9), u(0.65, 0.8)) if office else (u(0.35, 0.65), u(0.4, 0.62)),
                    seed=int(rng.integers(2**31)))

    def block(self, s: int, x: float, z0: float, z1: float, height: float) -> Item:
        """A building whose street face is the plane X = x from z0 to z1, with its near end face."""
        style = self.building_style()
        light = self.light
        grain = (0.03, 0.05, 0.06)
        depth = self.rng.uniform(12, 30)
        shapes: list = []
        end = _rect3((x, 0, z0), (s, 0, 0), UP, 0, depth, 0, height)
        shapes += self.poly(end, BUILDING, Material(
            style["color"], grain, self.facade((x, 0, z0), (s, 0, 0), height, style),
            light.on(FACING_CAMERA), light.fog(z0)))
        face = _rect3((x, 0, z0), (0, 0, 1), UP, 0, z1 - z0, 0, height)
        shapes += self.poly(face, BUILDING, Material(
            style["color"], grain, self.facade((x, 0, z0), (0, 0, 1), height, style),
            light.on((-s, 0, 0)), light.fog(max((z0 + z1) / 2, z0))))
        self.ground += self.cast_shadow(x, z0, z1, height)
        return (z0, shapes)

    def add_row(self, s: int) -> None:
        """Side s's buildings from behind the camera to the street's end, with gaps and the cross street."""
        rng, u = self.rng, self.rng.uniform
        line = self.building_line(s)
        z = u(-40, -5)
        while z < self.z_end:
            if self.in_crossing(z):
                z = self.crossing_gap()[1]
                continue
            z1 = min(z + u(8, 35), self.z_end)
            if self.crossing and z < self.crossing_gap()[0] < z1:
                z1 = self.crossing_gap()[0]
            if rng.random() < 0.12 and z > 10:  # a gap: trees, a recessed building or a lawn behind
                kind = rng.integers(3)
                if kind == 0:
                    for zt in np.arange(z + u(1, 4), z1, u(4, 8)):
                        self.rows[s].append((zt, self.tree_shapes(line + s * u(2, 8), zt)))
                elif kind == 1:
                    self.rows[s].append(self.block(s, line + s * u(6, 15), z - 3, z1 + 3, u(8, 30)))
            else:
                x = line + (s * u(0, 1.5) if rng.random() < 0.3 else 0.0)
                self.rows[s].append(self.block(s, x, z, z1, u(7, 28)))
            z = z1

    def add_far_end(self) -> None:
        """What closes the street: nothing (it runs to the horizon), a building across it, or trees."""
        u = self.rng.uniform
        z = self.z_end
        if self.end == "facade":
            style = self.building_style()
            height = u(10, 30)
            face = _rect3((-400, 0, z), (1, 0, 0), UP, 0, 800, 0, height)
            self.far_end += self.poly(face, BUILDING, Material(
                style["color"], (0.03, 0.05, 0.06), self.facade((-400, 0, z), (1, 0, 0), height, style),
                self.light.on(FACING_CAMERA), self.light.fog(z)))
        elif self.end == "trees":
            for x in np.arange(-60, 60, u(4, 8)):
                self.far_end += self.tree_shapes(x, z + u(0, 10), crown_only=True)

    # -- along the sidewalks ------------------------------------------------------------------------------------

    def add_frontage(self, s: int) -> None:
        """Walls, fences and hedges along the outer edge of the sidewalk."""
        rng, u = self.rng, self.rng.uniform
        x = self.walk_edges(s)[1] + s * 0.1
        z = u(-10, 30)
        while z < min(self.z_end, 150):
            length = u(6, 40)
            z1 = z + length
            if not (self.in_crossing(z, 2) or self.in_crossing(z1, 2)):
                kind = rng.choice(["wall", "fence", "hedge", "none"], p=[0.3, 0.3, 0.15, 0.25])
                if kind == "wall":
                    self.frontage.append((max(z, 0.0), self.wall(s, x, z, z1)))
                elif kind == "fence":
                    self.frontage.append((max(z, 0.0), self.fence(s, x, z, z1)))
                elif kind == "hedge":
                    self.frontage.append((max(z, 0.0), self.hedge(x, z, z1)))
            z = z1 + u(0, 25)

    def wall(self, s: int, x: float, z0: float, z1: float) -> list:
        """A low wall (plaster or masonry, with a coping) in the plane X = x from z0 to z1, facing side −s."""
        rng, u = self.rng, self.rng.uniform
        height = u(0.5, 2.4)
        color = self.pick(WALL_COLORS)
        surface = self.cam.surface((x, 0, z0), (0, 0, 1), UP)
        pattern = (Masonry(surface, tuple(c * 0.8 for c in color), (u(0.22, 0.5), u(0.07, 0.25)),
                           int(rng.integers(2**31))) if rng.random() < 0.5 else None)
        normal, z = (-s, 0.0, 0.0), max(z0, 1.0)
        shapes = self.poly(_rect3((x, 0, z0), (0, 0, 1), UP, 0, z1 - z0, 0, height), WALL,
                           self.material(color, normal, z, (0.06, 0.06, 0.08), pattern))
        shapes += self.poly(_rect3((x, 0, z0), (0, 0, 1), UP, 0, z1 - z0, height, height + 0.08), WALL,
                            self.material(self.jitter(np.asarray(color) * 1.15), normal, z))
        if z0 > Z_NEAR:  # its end, facing the camera
            shapes += self.poly(_rect3((x, 0, z0), (s, 0, 0), UP, 0, 0.3, 0, height + 0.08), WALL,
                                self.material(color, FACING_CAMERA, z))
        return shapes

    def fence(self, s: int, x: float, z0: float, z1: float) -> list:
        """Slats, bars or mesh in the plane X = x from z0 to z1, facing side −s."""
        rng, u = self.rng, self.rng.uniform
        height = u(0.9, 2.0)
        color = self.pick(FENCE_COLORS)
        behind = self.jitter(((50, 62, 45), (70, 70, 72), (90, 100, 80))[rng.integers(3)])
        mesh = rng.random() < 0.3
        pattern = Slats(self.cam.surface((x, 0, z0), (0, 0, 1), UP), behind,
                        u(0.06, 0.12) if mesh else u(0.1, 0.25), u(0.12, 0.2) if mesh else u(0.3, 0.7),
                        ((height - 0.08, height), (0.1, 0.18)) if rng.random() < 0.7 else (), mesh)
        return self.poly(_rect3((x, 0, z0), (0, 0, 1), UP, 0, z1 - z0, 0, height), FENCE,
                         self.material(color, (-s, 0, 0), max(z0, 1.0), (0.04, 0.04, 0.05), pattern))

    def hedge(self, x: float, z0: float, z1: float) -> list:
        """A hedge with an uneven top in the plane X = x from z0 to z1."""
        u = self.rng.uniform
        height = u(0.8, 2.0)
        zs = np.linspace(z0, z1, max(3, int((z1 - z0) / 0.8)))
        top = height + 0.12 * np.sin(zs * u(1, 3)) + u(-0.05, 0.05, len(zs))
        points = np.concatenate([np.column_stack([np.full(len(zs), x), np.zeros(len(zs)), zs]),
                                 np.column_stack([np.full(len(zs), x), top, zs])[::-1]])
        return self.poly(points, VEGETATION, self.material(self.jitter((52, 86, 40)), UP, max(z0, 1.0), FOLIAGE))

    def tree_shapes(self, x: float, z: float, crown_only: bool = False) -> list:
        """A tree at (x, z): trunk and branches, and a crown of leafy clumps (or a cone); all vegetation, as
        Cityscapes labels trunks."""
        rng, u = self.rng, self.rng.uniform
        if z < 1.0:
            return []
        bb = self.cam.billboard(x, z)
        fog = self.light.fog(z)
        shapes = []
        crown = u(1.5, 3.5)
        trunk_top = u(2.0, 4.5)
        green = self.jitter(((58, 92, 38), (72, 104, 44), (46, 74, 38), (96, 112, 50), (120, 100, 45))[
            rng.choice(5, p=[0.3, 0.25, 0.25, 0.12, 0.08])])
        if not crown_only:
            w = u(0.25, 0.5)
            bark = Material(self.jitter((78, 70, 60)), (0.1, 0.08, 0.05), None, self.light.on(FACING_CAMERA), fog)
            shapes.append(Shape(bb.polygon([(-w / 2, 0), (w / 2, 0), (w * 0.3, trunk_top + 0.5),
                                            (-w * 0.3, trunk_top + 0.5)]), VEGETATION, bark))
            for side in (-1, 1):
                if rng.random() < 0.7:
                    shapes.append(Shape(bb.line([(0, trunk_top), (side * crown * u(0.4, 0.8), trunk_top + crown * 0.7)],
                                                w * 0.35), VEGETATION, bark))
        if rng.random() < 0.08:  # a conifer
            cone = [(-crown * 0.9, trunk_top * 0.6), (crown * 0.9, trunk_top * 0.6), (0, trunk_top + 2.2 * crown)]
            shapes.append(Shape(bb.polygon(cone), VEGETATION,
                                Material(self.jitter(np.asarray(green) * 0.75), FOLIAGE, None, 0.9, fog)))
            return shapes
        for _ in range(rng.integers(4, 9)):
            cy = trunk_top + crown * u(0.4, 1.5)
            lit = self.light.ambient + self.light.direct * u(0.2, 1.0) * (0.6 + 0.4 * (cy - trunk_top) / (1.5 * crown))
            shapes.append(Shape(bb.ellipse(crown * u(-0.6, 0.6), cy, crown * u(0.45, 0.75), crown * u(0.4, 0.65)),
                                VEGETATION, Material(self.jitter(green, 0.1), FOLIAGE, None, lit, fog)))
        return shapes

    def add_trees(self, s: int) -> None:
        """A row of trees along side s's kerb, and bushes in its front gardens."""
        rng, u = self.rng, self.rng.uniform
        if rng.random() < 0.65:
            inner = self.walk_edges(s)[0]
            x = (self.edge[s] + inner) / 2 if self.verge[s] else inner + s * u(0.6, 1.0)
            for z in np.arange(u(2, 12), min(self.z_end, 120), u(7, 14)):
                if not self.in_crossing(z, 2):
                    self.put(x, z, self.tree_shapes(x, z))
        if self.garden[s] and rng.random() < 0.7:  # bushes in the front gardens
            x0 = self.walk_edges(s)[1]
            for z in np.arange(u(3, 10), min(self.z_end, 80), u(5, 15)):
                bb = self.cam.billboard(x0 + s * u(0.7, self.garden[s]), z)
                r = u(0.4, 1.0)
                mat = Material(self.jitter((60, 95, 45)), FOLIAGE, None, self.light.on(UP) * 0.85, self.light.fog(z))
                self.frontage.append((z, [Shape(bb.ellipse(0, r * 0.8, r * u(1, 1.6), r), VEGETATION, mat)]))

    def add_lamps(self, s: int) -> None:
        """Street lamps along side s's kerb, their arms over the road."""
        rng, u = self.rng, self.rng.uniform
        if rng.random() > 0.7:
            return
        x = self.edge[s] + s * 0.45
        color = self.pick(POLE_COLORS)
        height, arm = u(6, 9), u(1.0, 2.5)
        for z in np.arange(u(3, 20), min(self.z_end, 160), u(18, 32)):
            bb = self.cam.billboard(x, z)
            mat = self.material(color, FACING_CAMERA, z, (0.03, 0.03, 0.04))
            shapes = [Shape(bb.polygon([(-0.11, 0), (0.11, 0), (0.06, height), (-0.06, height)]), POLE, mat),
                      Shape(bb.line([(0, height - 0.3), (-s * arm * 0.6, height + 0.15), (-s * arm, height + 0.1)],
                                    0.08), POLE, mat),
                      Shape(bb.rect(-s * arm - 0.3, height - 0.05, -s * arm + 0.3, height + 0.12), POLE,
                            self.material(self.jitter((190, 190, 185)), FACING_CAMERA, z, RAW))]
            self.put(x, z, shapes, 0.15)

    def sign_shapes(self, bb: Billboard, z: float, height: float) -> list:
        """One traffic sign, its centre `height` m up; the back of a sign is grey metal."""
        rng, u = self.rng, self.rng.uniform
        lit = self.light.on(FACING_CAMERA)
        fog = self.light.fog(z)

        def mat(color) -> Material:
            return Material(self.jitter(color, 0.06), RAW, None, lit, fog)

        kind = rng.choice(["round", "triangle", "square", "diamond", "plate", "back"],
                          p=[0.3, 0.2, 0.15, 0.1, 0.1, 0.15])
        r, h = u(0.28, 0.42), height
        red, white, blue = (200, 30, 35), (235, 235, 232), (30, 80, 175)
        if kind == "round":
            outer, inner = ((red, white) if rng.random() < 0.6 else (blue, blue) if rng.random() < 0.5
                            else (red, red))
            shapes = [Shape(bb.ellipse(0, h, r, r, turn=False), TRAFFIC_SIGN, mat(outer)),
                      Shape(bb.ellipse(0, h, r * 0.78, r * 0.78, turn=False), TRAFFIC_SIGN, mat(inner))]
            if inner == white:
                shapes.append(Shape(bb.rect(-r * 0.4, h - r * 0.2, r * 0.4, h + r * 0.2), TRAFFIC_SIGN,
                                    mat((30, 30, 30))))
            elif inner == red:
                shapes.append(Shape(bb.rect(-r * 0.6, h - r * 0.15, r * 0.6, h + r * 0.15), TRAFFIC_SIGN, mat(white)))
            else:
                shapes.append(Shape(bb.polygon([(-r * 0.1, h - r * 0.6), (r * 0.1, h - r * 0.6), (r * 0.1, h + r * 0.1),
                                                (r * 0.35, h + r * 0.1), (0, h + r * 0.6), (-r * 0.35, h + r * 0.1),
                                                (-r * 0.1, h + r * 0.1)]), TRAFFIC_SIGN, mat(white)))
            return shapes
        if kind == "triangle":
            a = r * 1.2
            tri = np.array([(-a, -a * 0.55), (a, -a * 0.55), (0, a * 1.1)]) + (0, h)
            flip = rng.random() < 0.3  # give way: apex down
            if flip:
                tri = np.array([(-a, a * 0.55), (a, a * 0.55), (0, -a * 1.1)]) + (0, h)
            centre = tri.mean(axis=0)
            return [Shape(bb.polygon(tri), TRAFFIC_SIGN, mat(red)),
                    Shape(bb.polygon(centre + (tri - centre) * 0.68), TRAFFIC_SIGN, mat(white))]
        if kind == "square":
            return [Shape(bb.rect(-r, h - r, r, h + r), TRAFFIC_SIGN, mat(blue)),
                    Shape(bb.rect(-r * 0.3, h - r * 0.6, -r * 0.1, h + r * 0.6), TRAFFIC_SIGN, mat(white)),
                    Shape(bb.rect(-r * 0.1, h + r * 0.05, r * 0.35, h + r * 0.6), TRAFFIC_SIGN, mat(white))]
        if kind == "diamond":
            a = r * 1.1
            d = np.array([(0, -a), (a, 0), (0, a), (-a, 0)]) + (0, h)
            return [Shape(bb.polygon(d), TRAFFIC_SIGN, mat(white)),
                    Shape(bb.polygon((d - (0, h)) * 0.7 + (0, h)), TRAFFIC_SIGN, mat((235, 190, 30)))]
        if kind == "plate":
            color = ((30, 110, 60), white, blue)[rng.integers(3)]
            return [Shape(bb.rect(-r * 2, h - r * 0.5, r * 2, h + r * 0.5), TRAFFIC_SIGN, mat(color)),
                    Shape(bb.rect(-r * 1.6, h - r * 0.15, r * 1.4, h + r * 0.15), TRAFFIC_SIGN,
                          mat((30, 30, 30) if color == white else white))]
        if rng.random() < 0.5:
            return [Shape(bb.ellipse(0, h, r, r, turn=False), TRAFFIC_SIGN, mat((150, 152, 155)))]
        return [Shape(bb.rect(-r, h - r, r, h + r), TRAFFIC_SIGN, mat((150, 152, 155)))]

    def add_signs(self) -> None:
        """Sign posts by the kerbs with one or two signs each."""
        rng, u = self.rng, self.rng.uniform
        for _ in range(rng.integers(1, 6)):
            s = int(rng.choice([-1, 1]))
            z = u(5, 70)
            x = self.edge[s] + s * u(0.3, 1.0)
            bb = self.cam.billboard(x, z)
            height = u(2.2, 3.2)
            mat = self.material(self.pick(POLE_COLORS), FACING_CAMERA, z, (0.03, 0.03, 0.04))
            shapes = [Shape(bb.rect(-0.04, 0, 0.04, height + 0.4), POLE, mat)]
            shapes += self.sign_shapes(bb, z, height)
            if rng.random() < 0.35:
                shapes += self.sign_shapes(bb, z, height - 0.85)
            self.put(x, z, shapes, 0.1)

    def light_shapes(self, bb: Billboard, z: float, bottom: float, facing: bool) -> list:
        """A traffic-light head from `bottom` up; one lamp lit when it faces the camera."""
        rng = self.rng
        lit, fog = self.light.on(FACING_CAMERA), self.light.fog(z)
        housing = self.jitter((34, 36, 34)) if rng.random() < 0.8 else self.jitter((205, 172, 52))
        w, h = 0.17, 0.95
        shapes = []
        if rng.random() < 0.4:  # a backplate
            shapes.append(Shape(bb.rect(-w - 0.12, bottom - 0.1, w + 0.12, bottom + h + 0.1), TRAFFIC_LIGHT,
                                Material(self.jitter((28, 28, 28)), RAW, None, lit, fog)))
        shapes.append(Shape(bb.rect(-w, bottom, w, bottom + h), TRAFFIC_LIGHT, Material(housing, RAW, None, lit, fog)))
        if facing:
            on = rng.integers(3)
            colors = ((255, 45, 30), (255, 185, 40), (60, 255, 150))
            for i in range(3):
                cy = bottom + h - 0.17 - i * 0.305
                glow = i == on
                shapes.append(Shape(bb.ellipse(0, cy, 0.11, 0.11, turn=False), TRAFFIC_LIGHT,
                                    Material(colors[i] if glow else (45, 45, 42), RAW, None,
                                             1.3 / self.gain[1] if glow else lit, fog)))
        return shapes

    def add_traffic_lights(self) -> None:
        """Traffic lights at the cross street's corners (and over the road on a mast arm), at a mid-block
        crossing, or alone."""
        rng, u = self.rng, self.rng.uniform
        spots = []
        if self.crossing:
            zc, w = self.crossing
            spots += [(s, zc - 1.5, True) for s in (-1, 1)] + [(s, zc + w + 1.5, False) for s in (-1, 1)]
        elif self.zebra and rng.random() < 0.7:
            spots += [(s, self.zebra[0] - 1.0, True) for s in (-1, 1)]
        elif rng.random() < 0.4:
            spots.append((int(rng.choice([-1, 1])), u(15, 50), True))
        color = self.pick(POLE_COLORS)
        for s, z, facing in spots:
            x = self.edge[s] + s * 0.5
            bb = self.cam.billboard(x, z)
            mat = self.material(color, FACING_CAMERA, z, (0.03, 0.03, 0.04))
            height = u(2.2, 2.8)
            shapes = [Shape(bb.rect(-0.07, 0, 0.07, height + 1.0), POLE, mat)]
            shapes += self.light_shapes(bb, z, height, facing)
            if facing and s == 1 and rng.random() < 0.6:  # a mast arm over the road with a second head
                reach = u(3, 6)
                shapes.append(Shape(bb.line([(0, height + 2.6), (-reach, height + 2.8)], 0.12), POLE, mat))
                shapes.append(Shape(bb.rect(-0.07, height + 1.0, 0.07, height + 2.8), POLE, mat))
                shapes += self.light_shapes(Billboard(bb.x - reach * bb.scale / ASPECT, bb.y, bb.scale), z,
                                            height + 1.5, True)
            self.put(x, z, shapes, 0.15)

    # -- vehicles ----------------------------------------------------------------------------------------------

    def box(self, x0, x1, y0, y1, z0, z1, label: int, color, grain=RAW, shine: bool = True):
        """The faces of a box the camera sees, as shapes (paint brighter towards the top unless not `shine`),
        and those faces by world side."""
        faces = _box_faces(x0, x1, y0, y1, z0, z1, self.cam.height)
        shapes = []
        for face in faces.values():
            points = face.rect(0, face.length, 0, face.height)
            geometry = self.cam.polygon(points)
            if geometry is None:
                continue
            pattern = None
            if shine and face.normal != UP:
                _, top, _, bottom = geometry.bounds()
                pattern = Gradient(tuple(np.asarray(color) * 1.12), tuple(np.asarray(color) * 0.82), top, bottom)
            z = max(float(points[:, 2].min()), 1.0)
            shapes.append(Shape(geometry, label, self.material(color, face.normal, z, grain, pattern)))
        return shapes, faces

    def on_face(self, face: _Face, u0, u1, v0, v1, label: int, color, glass: bool = False) -> list:
        """A rectangle [u0, u1] × [v0, v1] (metres) on a face: a window, a lamp, a plate."""
        points = face.rect(u0, u1, v0, v1)
        geometry = self.cam.polygon(points)
        if geometry is None:
            return []
        pattern = None
        if glass:  # reflections: the sky at the top of the pane, the street below
            _, top, _, bottom = geometry.bounds()
            pattern = Gradient(tuple(np.asarray(color) * 2.2), tuple(np.asarray(color) * 0.7), top, bottom)
        return [Shape(geometry, label, self.material(color, face.normal, max(float(points[:, 2].min()), 1.0), RAW,
                                                     pattern))]

    def wheel(self, face: _Face, at: float, r: float, label: int) -> list:
        """A wheel centred `at` metres along a side face: an ellipse spanning the projected disc, and its hub."""
        a = np.asarray(face.a, float)
        centre = np.asarray(face.origin, float) + at * a
        centre[1] = r
        if centre[2] - r < Z_NEAR:
            return []
        p = self.cam.project(np.array([centre, centre - r * a, centre + r * a, centre + (0, r, 0), centre - (0, r, 0)]))
        radii = (abs(p[1, 0] - p[2, 0]) / 2, abs(p[3, 1] - p[4, 1]) / 2)
        if min(radii) <= 0:
            return []
        z = float(centre[2])
        return [Shape(Ellipse(tuple(p[0]), radii), label, self.material((24, 24, 26), face.normal, z, RAW)),
                Shape(Ellipse(tuple(p[0]), (radii[0] * 0.55, radii[1] * 0.55)), label,
                      self.material((150, 150, 152), face.normal, z, RAW))]

    def vehicle(self, kind: str, x: float, z: float, along_z: bool, facing: int) -> tuple[Footprint, list]:
        """A car, truck, bus or tram centred at (x, z), driving along Z (along X when not `along_z`) in direction
        `facing` (+1 or −1). Built from boxes, with windows, wheels and lamps on the faces the camera sees; far
        away, lamps and plates are left out."""
        rng, u = self.rng, self.rng.uniform
        label, length, width = {"car": (CAR, u(3.9, 4.8), u(1.7, 1.9)), "truck": (TRUCK, u(6, 9.5), 2.45),
                                "bus": (BUS, u(10.5, 12.5), 2.55), "tram": (TRAIN, u(22, 32), 2.4)}[kind]
        color = self.pick({CAR: CAR_COLORS, TRUCK: TRUCK_COLORS, BUS: BUS_COLORS, TRAIN: TRAM_COLORS}[label])
        clear = {"car": 0.28, "truck": 0.45, "bus": 0.3, "tram": 0.35}[kind]  # ground clearance
        wheel_r = {"car": 0.32, "truck": 0.5, "bus": 0.5, "tram": 0.38}[kind]
        axles = {"car": (0.18, 0.8), "truck": (0.15, 0.3, 0.86), "bus": (0.2, 0.78), "tram": (0.1, 0.3, 0.7, 0.9)}[kind]
        centre_a, centre_l = (z, x) if along_z else (x, z)

        def world(s0: float, s1: float, l0: float, l1: float) -> tuple[float, float, float, float]:
            """Vehicle coordinates (s metres from the rear, l across from the centre line) to world x0, x1, z0, z1."""
            a0, a1 = sorted((centre_a + facing * (s0 - length / 2), centre_a + facing * (s1 - length / 2)))
            return (centre_l + l0, centre_l + l1, a0, a1) if along_z else (a0, a1, centre_l + l0, centre_l + l1)

        def box(s0, s1, l0, l1, y0, y1, color, grain=RAW) -> tuple[list, dict[str, _Face]]:
            """A part of the vehicle, with its visible faces by vehicle side: rear, front, side."""
            shapes, faces = self.box(*world(s0, s1, l0, l1)[:2], y0, y1, *world(s0, s1, l0, l1)[2:], label, color,
                                     grain)
            roles = {}
            for name, face in faces.items():
                if name == "top":
                    continue
                if (name == "near") != along_z:
                    roles["side"] = face
                else:  # the end facing −axis is the rear when driving towards +axis
                    roles["rear" if (name in ("near", "left")) == (facing > 0) else "front"] = face
            return shapes, roles

        def along(s: float) -> float:
            """Position s (from the rear) as u on a side face, whose u runs towards +axis."""
            return s if facing > 0 else length - s

        x0, x1, z0, z1 = world(0, length, -width / 2, width / 2)
        detail = z0 < 60
        shapes: list = []
        footprint = self.cam.polygon(_ground(x0 - 0.2, x1 + 0.2, z0 - 0.2, z1 + 0.3, 0.003))
        if footprint is not None:
            shapes.append(Shade(footprint, u(0.3, 0.5)))
        if along_z:  # tyres under the near end
            tz = z0 + 0.4
            for tx0, tx1 in ((x0 + 0.05, x0 + 0.32), (x1 - 0.32, x1 - 0.05)):
                shapes += self.poly([(tx0, 0, tz), (tx1, 0, tz), (tx1, clear + 0.1, tz), (tx0, clear + 0.1, tz)],
                                    label, self.material((24, 24, 26), FACING_CAMERA, tz, RAW))
        glass = (u(28, 50),) * 2 + (u(40, 62),)
        lamp = {"rear": (180, 20, 25), "front": (235, 235, 215)}

        if kind == "car":
            style = rng.choice(["sedan", "hatch", "suv", "van"], p=[0.4, 0.3, 0.2, 0.1])
            shoulder = clear + u(0.55, 0.7)
            roof = {"sedan": u(1.4, 1.5), "hatch": u(1.45, 1.55), "suv": u(1.65, 1.8), "van": u(1.9, 2.1)}[style]
            c0, c1 = {"sedan": (0.2, 0.7), "hatch": (0.05, 0.68), "suv": (0.06, 0.72), "van": (0.02, 0.84)}[style]
            parts, body = box(0, length, -width / 2, width / 2, clear, shoulder, color)
            shapes += parts
            parts, cabin = box(c0 * length, c1 * length, -width / 2 + 0.09, width / 2 - 0.09, shoulder, roof, color)
            shapes += parts
            for role, face in cabin.items():
                if role == "side":  # two windows either side of the B pillar
                    mid = face.length * u(0.45, 0.55)
                    for u0, u1 in ((0.12, mid - 0.06), (mid + 0.06, face.length - 0.12)):
                        shapes += self.on_face(face, u0, u1, 0.05, face.height - 0.08, label, glass, glass=True)
                else:
                    shapes += self.on_face(face, 0.1, face.length - 0.1, 0.04, face.height - 0.07, label, glass,
                                           glass=True)
            for role, face in body.items():
                if role == "side":
                    for s in axles:
                        shapes += self.wheel(face, along(s * length), wheel_r, label)
                elif detail:
                    top, mid = face.height, face.length / 2
                    shapes += self.on_face(face, 0.06, face.length - 0.06, 0.0, 0.13, label, np.asarray(color) * 0.55)
                    for u0 in (0.08, face.length - 0.38):
                        shapes += self.on_face(face, u0, u0 + 0.3, top - 0.24, top - 0.08, label, lamp[role])
                    shapes += self.on_face(face, mid - 0.26, mid + 0.26, 0.14, 0.27, label, (225, 225, 200))  # plate
                    if role == "front":
                        shapes += self.on_face(face, mid - 0.35, mid + 0.35, 0.3, top - 0.1, label, (38, 38, 40))
        elif kind == "truck":
            cab_h, cargo_h = u(2.6, 3.1), u(3.0, 3.9)
            shapes += box(0, length, -width / 2 + 0.15, width / 2 - 0.15, clear, clear + 0.5, (40, 40, 42))[0]
            cargo_color = self.pick(TRUCK_COLORS) if rng.random() < 0.5 else color
            parts, cargo = box(0, length - 2.4, -width / 2, width / 2, clear + 0.2, cargo_h, cargo_color,
                               (0.03, 0.04, 0.06))
            shapes += parts
            parts, cab = box(length - 2.3, length, -width / 2, width / 2, clear + 0.1, cab_h, color)
            shapes += parts
            for role, face in cab.items():
                if role == "front":
                    shapes += self.on_face(face, 0.15, face.length - 0.15, face.height * 0.5, face.height - 0.15,
                                           label, glass, glass=True)
                    if detail:
                        for u0 in (0.2, face.length - 0.45):
                            shapes += self.on_face(face, u0, u0 + 0.25, 0.2, 0.45, label, lamp[role])
                elif role == "side":
                    door = along(length - 1.6)
                    shapes += self.on_face(face, door - 0.5, door + 0.5, face.height * 0.5, face.height - 0.2, label,
                                           glass, glass=True)
            for role, face in cargo.items():
                if role == "rear" and detail:
                    mid = face.length / 2
                    shapes += self.on_face(face, mid - 0.03, mid + 0.03, 0.1, face.height - 0.1, label,
                                           np.asarray(cargo_color) * 0.5)  # the doors' seam
                    for u0 in (0.1, face.length - 0.4):
                        shapes += self.on_face(face, u0, u0 + 0.3, 0.05, 0.25, label, lamp[role])
                elif role == "side" and rng.random() < 0.5:  # a painted band
                    shapes += self.on_face(face, 0.3, face.length - 0.3, face.height * 0.45, face.height * 0.7, label,
                                           self.pick(TRUCK_COLORS))
            side = cab.get("side") or cargo.get("side")
            if side is not None:
                for s in axles:
                    shapes += self.wheel(side, along(s * length), wheel_r, label)
        else:  # bus or tram: one long box with a band of windows
            height = u(3.0, 3.2) if kind == "bus" else u(3.3, 3.5)
            parts, faces = box(0, length, -width / 2, width / 2, clear, height, color, (0.02, 0.03, 0.05))
            shapes += parts
            top = height - clear
            for role, face in faces.items():
                if role == "side":
                    points = face.rect(0.4, face.length - 0.4, top * 0.32, top - 0.3)
                    geometry = self.cam.polygon(points)
                    if geometry is not None:  # windows between pillars
                        band = Slats(self.cam.surface(face.origin, face.a, face.b), glass, u(1.3, 2.0), 0.12, (), False)
                        shapes.append(Shape(geometry, label, self.material(
                            color, face.normal, max(float(points[:, 2].min()), 1.0), RAW, band)))
                    if kind == "tram":  # articulations
                        for s in (length / 3, 2 * length / 3):
                            shapes += self.on_face(face, s - 0.25, s + 0.25, 0.0, top, label, (30, 30, 30))
                    for s in axles:
                        shapes += self.wheel(face, along(s * length), wheel_r, label)
                    if rng.random() < 0.5:
                        shapes += self.on_face(face, 0.3, face.length - 0.3, top * 0.12, top * 0.2, label,
                                               self.pick(BUS_COLORS))
                elif role == "front":
                    shapes += self.on_face(face, 0.12, face.length - 0.12, top * 0.3, top - 0.45, label, glass,
                                           glass=True)
                    shapes += self.on_face(face, 0.3, face.length - 0.3, top - 0.4, top - 0.12, label, (35, 35, 35))
                    if detail:
                        shapes += self.on_face(face, 0.4, face.length - 0.4, top - 0.33, top - 0.2, label,
                                               (255, 170, 40))  # destination display
                        for u0 in (0.1, face.length - 0.4):
                            shapes += self.on_face(face, u0, u0 + 0.3, 0.15, 0.35, label, lamp[role])
                else:
                    shapes += self.on_face(face, 0.25, face.length - 0.25, top * 0.55, top - 0.25, label, glass,
                                           glass=True)
                    if detail:
                        for u0 in (0.1, face.length - 0.35):
                            shapes += self.on_face(face, u0, u0 + 0.25, 0.15, 0.5, label, lamp[role])
            if kind == "tram":  # pantographs: a folded frame on the roof's centre line
                for s in (length * 0.3, length * 0.7):
                    px, _, pz, _ = world(s, s + 0.01, 0, 0.01)
                    if pz > 1.0:
                        bb = self.cam.billboard(px, pz, 1.0 if along_z else 0.3)
                        shapes.append(Shape(bb.line([(-0.5, height), (0.1, height + 0.6), (-0.3, height + 1.1),
                                                     (0.5, height + 1.1)], 0.06), label,
                                            self.material((40, 40, 40), FACING_CAMERA, pz)))
        return ((x0, x1, z0, z1), shapes)

    def add_vehicles(self) -> None:
        """Traffic in every lane (a tram in its own), cars parked along the kerbs, and cross traffic."""
        rng, u = self.rng, self.rng.uniform
        for x, direction in self.lanes:
            if x == self.tram_lane:
                z = u(12, 45)
                self.street.append(self.vehicle("tram", x, z, True, direction))
                continue
            z = u(10, 30) if x == 0 else u(4, 30)
            while z < 150 and rng.random() < 0.75:
                kind = rng.choice(["car", "truck", "bus", "motorcycle"], p=[0.78, 0.08, 0.07, 0.07])
                if kind == "motorcycle":
                    xm = x + u(-0.5, 0.5)
                    self.put(xm, z, self.motorcycle(xm, z, u(0.25, 0.45) * direction), 0.6)
                    z += u(5, 30)
                    continue
                item = self.vehicle(kind, x + u(-0.3, 0.3), z, True, direction)
                self.street.append(item)
                z += {"car": 4.5, "truck": 9, "bus": 12}[kind] + u(3, 35)
        for s in (-1, 1):  # parked along the kerbs
            if not self.parking[s]:
                continue
            x = self.edge[s] - s * u(1.0, 1.2)
            z = u(2, 10)
            while z < 100:
                if rng.random() < 0.15 or self.in_crossing(z, 3):
                    z += u(4, 12)
                    continue
                kind = "car" if rng.random() < 0.94 else "truck"
                item = self.vehicle(kind, x, z + 3, True, 1 if s > 0 else int(rng.choice([-1, 1])))
                self.street.append(item)
                z += (5 if kind == "car" else 9.5) + u(0.5, 3)
        if self.crossing and rng.random() < 0.6:  # cross traffic
            zc, w = self.crossing
            kind = rng.choice(["car", "truck", "bus"], p=[0.6, 0.2, 0.2])
            facing = int(rng.choice([-1, 1]))
            self.street.append(self.vehicle(kind, u(-15, 15), zc + w / 2 - facing * w / 4, False, facing))

    # -- people and two-wheelers -------------------------------------------------------------------------------

    def outfit(self) -> dict:
        """Colours of one person: skin, hair, top, legs, shoes."""
        return dict(skin=self.pick(SKIN), hair=self.pick(HAIR), top=self.pick(CLOTHES), legs=self.pick(CLOTHES),
                    shoes=self.pick(((25, 25, 25), (60, 45, 35), (220, 220, 220))))

    def person_shapes(self, bb: Billboard, z: float, height: float, side_view: bool, label: int = PERSON) -> list:
        """A pedestrian, front/back or walking side view, `height` m tall (billboard at the feet)."""
        rng, u = self.rng, self.rng.uniform
        k = height / 1.75
        o = self.outfit()
        lit, fog = self.light.on(FACING_CAMERA), self.light.fog(z)

        def m(color) -> Material:
            return Material(color, (0.04, 0.05, 0.04), None, lit, fog)

        shapes = []
        coat = rng.random() < 0.3
        if side_view:
            stride = u(0.1, 0.3)
            for sign, color in ((-1, np.asarray(o["legs"]) * 0.8), (1, o["legs"])):
                foot = (sign * stride, 0.06 * k)
                shapes.append(Shape(bb.line([(0, 0.9 * k), (sign * stride * 0.5, 0.48 * k), foot], 0.14 * k), label,
                                    m(tuple(color))))
                shapes.append(Shape(bb.ellipse(foot[0] + 0.05 * k, 0.04 * k, 0.1 * k, 0.045 * k), label, m(o["shoes"])))
            torso = [(-0.12 * k, 1.43 * k), (0.1 * k, 1.43 * k), (0.11 * k, 0.86 * k), (-0.12 * k, 0.86 * k)]
            if coat:
                torso[2:] = [(0.14 * k, 0.6 * k), (-0.15 * k, 0.6 * k)]
            shapes.append(Shape(bb.polygon(torso), label, m(o["top"])))
            if rng.random() < 0.3:
                shapes.append(Shape(bb.rect(-0.28 * k, 0.95 * k, -0.1 * k, 1.38 * k), label, m(self.pick(CLOTHES))))
            swing = u(-0.15, 0.15)
            shapes.append(Shape(bb.line([(0, 1.38 * k), (swing * k, 1.08 * k), (swing * 1.6 * k, 0.84 * k)], 0.09 * k),
                                label, m(tuple(np.asarray(o["top"]) * 0.9))))
            shapes.append(Shape(bb.ellipse(0.03 * k, 1.6 * k, 0.1 * k, 0.12 * k), label, m(o["skin"])))
            shapes.append(Shape(bb.ellipse(-0.01 * k, 1.66 * k, 0.1 * k, 0.08 * k), label, m(o["hair"])))
            return shapes
        spread = u(0.0, 0.06)
        for sign in (-1, 1):
            foot = (sign * (0.1 + spread) * k, 0.06 * k)
            shapes.append(Shape(bb.line([(sign * 0.09 * k, 0.9 * k), foot], 0.14 * k), label, m(o["legs"])))
            shapes.append(Shape(bb.ellipse(foot[0], 0.04 * k, 0.075 * k, 0.045 * k), label, m(o["shoes"])))
        for sign in (-1, 1):
            hand = (sign * 0.25 * k, 0.84 * k)
            shapes.append(Shape(bb.line([(sign * 0.19 * k, 1.38 * k), (sign * 0.24 * k, 1.1 * k), hand], 0.085 * k),
                                label, m(tuple(np.asarray(o["top"]) * 0.92))))
            shapes.append(Shape(bb.ellipse(hand[0], hand[1] - 0.03 * k, 0.04 * k, 0.05 * k), label, m(o["skin"])))
        bottom = 0.6 * k if coat else 0.86 * k
        shapes.append(Shape(bb.polygon([(-0.2 * k, 1.43 * k), (0.2 * k, 1.43 * k), (0.17 * k, bottom),
                                        (-0.17 * k, bottom)]), label, m(o["top"])))
        shapes.append(Shape(bb.rect(-0.04 * k, 1.4 * k, 0.04 * k, 1.5 * k), label, m(o["skin"])))
        back = rng.random() < 0.5
        shapes.append(Shape(bb.ellipse(0, 1.6 * k, 0.095 * k, 0.12 * k), label, m(o["hair"] if back else o["skin"])))
        if not back:
            shapes.append(Shape(bb.ellipse(0, 1.67 * k, 0.1 * k, 0.065 * k), label, m(o["hair"])))
        return shapes

    def add_people(self) -> None:
        """Pedestrians on the sidewalks and on the zebra crossing."""
        rng, u = self.rng, self.rng.uniform
        for _ in range(rng.poisson(7) + (1 if rng.random() < 0.8 else 0)):
            s = int(rng.choice([-1, 1]))
            inner, outer = self.walk_edges(s)
            x = u(min(inner, outer) + 0.3, max(inner, outer) - 0.3)
            z = u(6, 55)
            side_view = rng.random() < 0.5
            bb = self.cam.billboard(x, z, float(rng.choice([-1, 1])) if side_view else 1.0)
            height = u(1.55, 1.95) if rng.random() < 0.9 else u(1.0, 1.4)
            self.put(x, z, self.person_shapes(bb, z, height, side_view))
        if self.zebra and rng.random() < 0.6:  # people on the crossing
            z0, z1 = self.zebra
            for _ in range(rng.integers(1, 4)):
                z = u(z0, z1)
                x = u(self.edge[-1], self.edge[1])
                bb = self.cam.billboard(x, z, float(rng.choice([-1, 1])))
                self.put(x, z, self.person_shapes(bb, z, u(1.55, 1.95), True))

    def bicycle_shapes(self, bb: Billboard, z: float, rider: bool) -> list:
        """A bicycle in side view (squashed by the billboard when seen from behind), optionally ridden."""
        lit, fog = self.light.on(FACING_CAMERA), self.light.fog(z)
        frame = Material(self.pick(((30, 30, 32), (150, 30, 30), (40, 60, 140), (200, 200, 200), (60, 100, 60))),
                         RAW, None, lit, fog)
        tyre = Material((28, 28, 30), RAW, None, lit, fog)
        r = 0.34
        shapes = [Shape(bb.ring(x, r, r, r - 0.06), BICYCLE, tyre) for x in (-0.52, 0.52)]
        joints = [(-0.52, r), (0.0, 0.3), (-0.12, 0.85), (-0.52, r)]
        shapes.append(Shape(bb.line(joints, 0.045), BICYCLE, frame))
        shapes.append(Shape(bb.line([(0.0, 0.3), (0.42, 0.85), (0.52, r)], 0.045), BICYCLE, frame))
        shapes.append(Shape(bb.line([(-0.12, 0.85), (0.42, 0.85), (0.38, 1.02), (0.3, 1.05)], 0.045), BICYCLE, frame))
        shapes.append(Shape(bb.ellipse(-0.14, 0.9, 0.12, 0.04), BICYCLE, tyre))  # saddle
        if rider:
            shapes += self.rider_shapes(bb, z, seat=(-0.14, 0.95), bar=(0.32, 1.04), pedal=(0.0, 0.3), helmet=0.4)
        return shapes

    def rider_shapes(self, bb: Billboard, z: float, seat, bar, pedal, helmet: float) -> list:
        """A rider sitting at `seat`, hands on `bar`, feet on `pedal` (billboard metres); a helmet with
        probability `helmet`."""
        rng, u = self.rng, self.rng.uniform
        o = self.outfit()
        lit, fog = self.light.on(FACING_CAMERA), self.light.fog(z)

        def m(color) -> Material:
            return Material(color, (0.04, 0.05, 0.04), None, lit, fog)

        sx, sy = seat
        lean = u(0.15, 0.3)
        shoulder = (sx + lean, sy + 0.55)
        knee = (sx + 0.3, sy - 0.15)
        shapes = [Shape(bb.line([(sx + 0.02, sy), (pedal[0] + 0.15, pedal[1] + 0.35), (pedal[0] - 0.12, pedal[1])],
                                0.13), RIDER, m(tuple(np.asarray(o["legs"]) * 0.8))),
                  Shape(bb.line([(sx, sy), knee, (pedal[0] + 0.1, pedal[1] + 0.05)], 0.14), RIDER, m(o["legs"])),
                  Shape(bb.line([(sx, sy + 0.05), shoulder], 0.3), RIDER, m(o["top"])),
                  Shape(bb.line([shoulder, bar], 0.085), RIDER, m(tuple(np.asarray(o["top"]) * 0.9)))]
        head = (shoulder[0] + 0.06, shoulder[1] + 0.2)
        shapes.append(Shape(bb.ellipse(head[0], head[1], 0.1, 0.12), RIDER, m(o["skin"])))
        if rng.random() < helmet:
            shapes.append(Shape(bb.ellipse(head[0] - 0.01, head[1] + 0.05, 0.13, 0.09), RIDER, m(self.pick(CLOTHES))))
        else:
            shapes.append(Shape(bb.ellipse(head[0] - 0.02, head[1] + 0.06, 0.105, 0.07), RIDER, m(o["hair"])))
        return shapes

    def motorcycle(self, x: float, z: float, squash: float, rider: bool = True) -> list:
        """A motorcycle in side view at (x, z), turned by `squash` (see Billboard), optionally ridden."""
        bb = self.cam.billboard(x, z, squash)
        lit, fog = self.light.on(FACING_CAMERA), self.light.fog(z)
        body = Material(self.pick(((30, 30, 32), (170, 30, 30), (40, 60, 150), (200, 200, 200), (220, 160, 40))),
                        (0.03, 0.03, 0.04), None, lit, fog)
        dark = Material((30, 30, 32), RAW, None, lit, fog)
        r = 0.31
        shapes = []
        for cx in (-0.7, 0.7):
            shapes.append(Shape(bb.ring(cx, r, r, r - 0.1), MOTORCYCLE, dark))
            shapes.append(Shape(bb.ellipse(cx, r, 0.1, 0.1), MOTORCYCLE,
                                Material((150, 150, 152), RAW, None, lit, fog)))
        shapes.append(Shape(bb.polygon([(-0.75, 0.55), (-0.2, 0.75), (0.25, 0.95), (0.55, 0.9), (0.45, 0.55),
                                        (0.1, 0.3), (-0.35, 0.35)]), MOTORCYCLE, body))
        shapes.append(Shape(bb.polygon([(-0.55, 0.78), (0.05, 0.82), (0.05, 0.9), (-0.5, 0.88)]), MOTORCYCLE, dark))
        shapes.append(Shape(bb.line([(0.7, r), (0.5, 1.0), (0.38, 1.1)], 0.06), MOTORCYCLE, dark))
        shapes.append(Shape(bb.line([(-0.6, 0.35), (-0.95, 0.45)], 0.08), MOTORCYCLE,
                            Material((160, 160, 165), RAW, None, lit, fog)))
        if rider:
            shapes += self.rider_shapes(bb, z, seat=(-0.2, 0.92), bar=(0.38, 1.1), pedal=(0.05, 0.38), helmet=1.0)
        return shapes

    def add_two_wheelers(self) -> None:
        """Cyclists, parked bicycles, motorcyclists and parked motorcycles."""
        rng, u = self.rng, self.rng.uniform
        if rng.random() < 0.6:  # cyclists along the right edge, seen from behind
            for _ in range(rng.integers(1, 3)):
                z = u(7, 45)
                x = self.edge[1] - u(0.6, 1.0) if not self.parking[1] else self.edge[1] - u(2.6, 3.0)
                bb = self.cam.billboard(x, z, u(0.25, 0.55) * float(rng.choice([-1, 1])))
                self.put(x, z, self.bicycle_shapes(bb, z, rider=True), 0.5)
        if self.zebra and rng.random() < 0.4:  # crossing, in side view
            z = u(*self.zebra)
            x = u(self.edge[-1], self.edge[1])
            bb = self.cam.billboard(x, z, u(0.8, 1.0) * float(rng.choice([-1, 1])))
            self.put(x, z, self.bicycle_shapes(bb, z, rider=True), 0.5)
        if rng.random() < 0.35:  # parked bicycles on a sidewalk
            s = int(rng.choice([-1, 1]))
            inner, outer = self.walk_edges(s)
            z = u(8, 40)
            for i in range(rng.integers(1, 5)):
                bb = self.cam.billboard(inner + s * 0.5, z + i * 0.7, u(0.4, 1.0) * float(rng.choice([-1, 1])))
                self.put(inner + s * 0.5, z + i * 0.7, self.bicycle_shapes(bb, z + i * 0.7, rider=False), 0.3)
        if rng.random() < 0.3:  # a motorcyclist
            x, direction = self.lanes[rng.integers(len(self.lanes))]
            z = u(8, 40)
            x += u(-0.8, 0.8)
            self.put(x, z, self.motorcycle(x, z, u(0.3, 0.9) * direction), 0.6)
        if rng.random() < 0.15:  # a parked motorcycle
            s = int(rng.choice([-1, 1]))
            z = u(8, 40)
            x = self.walk_edges(s)[0] + s * 0.8
            self.put(x, z, self.motorcycle(x, z, u(0.6, 1.0) * s, rider=False), 0.6)


def generate_scene(rng: np.random.Generator) -> Scene:
    """A random street scene; everything it draws comes from `rng`."""
    return _Street(rng).build()


# ---------------------------------------------------------------------------------------------------------------
# The dataset
# ---------------------------------------------------------------------------------------------------------------

SPLITS = {"train": (0, 2975), "val": (1, 500), "test": (2, 1525)}  # (code in the seed, Cityscapes' size)


class SynthCity(SegmentationDataset):
    """Procedural street scenes in Cityscapes' 19 classes, generated on the fly.

    Sample `index` of `split` is a function of (seed, split, index) only, and renders at any `size`; the
    default lengths are Cityscapes' (2975 / 500 / 1525).
    """

    info = DatasetInfo("synthcity", len(CITYSCAPES_CLASSES), CITYSCAPES_CLASSES)

    def __init__(self, split: str = "train", size: tuple[int, int] = (512, 1024), length: int | None = None,
                 seed: int = 0, cache: bool = False):
        if split not in SPLITS:
            raise UserError(f"SynthCity has no split {split!r}; choose one of {', '.join(SPLITS)}")
        if length is not None and (not isinstance(length, int) or length < 0):
            raise UserError(f"SynthCity length must be a non-negative integer (or None for {SPLITS[split][1]}); "
                            f"got {length!r}")
        if not isinstance(seed, int) or seed < 0:
            raise UserError(f"SynthCity seed must be a non-negative integer; got {seed!r}")
        if not isinstance(cache, bool):
            raise UserError(f"SynthCity cache must be true or false; got {cache!r}")
        self.split, self.size, self.seed = split, _check_size(size), seed
        self.length = SPLITS[split][1] if length is None else length
        self.cache = cache_dir() / _generator_id() / f"{split}-{seed}-{self.size[0]}x{self.size[1]}" if cache else None

    def __len__(self) -> int:
        return self.length

    def name(self, index: int) -> str:
        return f"synthcity/{self.split}/{index:06d}"

    def scene(self, index: int) -> Scene:
        """The vector description of sample `index`."""
        if not 0 <= index < self.length:
            raise IndexError(f"SynthCity {self.split} has {self.length} samples; index {index} is out of range")
        return generate_scene(np.random.default_rng([self.seed, SPLITS[self.split][0], index]))

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        cached = self.cache / f"{index:06d}.npz" if self.cache is not None else None
        if cached is not None and cached.is_file():
            try:
                with np.load(cached) as f:
                    image, label = f["image"], f["label"]
                check_sample(image, label, self.info.num_classes, self.name(index))
                if image.shape[:2] == tuple(self.size):
                    return image, label
            except (OSError, ValueError, KeyError, UserError, zipfile.BadZipFile):
                pass  # unreadable or stale: render it again and overwrite
        image, label = render(self.scene(index), self.size)
        check_sample(image, label, self.info.num_classes, self.name(index))
        if cached is not None:
            from ..image_io import atomic_path

            with atomic_path(cached) as tmp, open(tmp, "wb") as fh:
                np.savez(fh, image=image, label=label)
        return image, label


def cache_dir() -> Path:
    """Where rendered SynthCity samples are kept when a dataset asks for a cache: $SEGFORMER_BENCH_CACHE_DIR,
    else $XDG_CACHE_HOME/segformer-bench/synthcity, else ~/.cache/segformer-bench/synthcity."""
    if os.environ.get("SEGFORMER_BENCH_CACHE_DIR"):
        return Path(os.environ["SEGFORMER_BENCH_CACHE_DIR"]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "segformer-bench" / "synthcity"


@functools.cache
def _generator_id() -> str:
    """A digest of this module's source: any change to the generator or renderer starts a fresh cache."""
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]
