"""Materials: a base colour, noise textures, and optionally a pattern in the metres of the plane a shape lies on;
and the scene, a back-to-front list of shapes (geometry, trainId, material) and shadows.

Patterns (windows, bricks, paving, road markings, fence slats) are box-filtered over each pixel's footprint, so
that fine patterns fade to their mean instead of aliasing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from .constants import ASPECT, Color
from .geometry import Geometry
from .noise import noise_at


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


def pulses(t: np.ndarray, period: float, duty: float, footprint: np.ndarray) -> np.ndarray:
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
        n = 0.65 * noise_at(self.seed, 0, 0.35, X, Y) + 0.35 * noise_at(self.seed, 1, 0.09, X, Y)
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
            mortar = 1 - (1 - pulses(v, 0.077, 0.14, dv)) * (1 - pulses(u + 0.12 * (row % 2), 0.24, 0.05, du))
            wall = _mix(wall, _rgb(base) * 1.25 + 15, mortar)
        uu = u - np.float32(self.phase)
        upper = _band(v, self.ground, self.roof - 0.7 * self.storey, dv)
        windows = (pulses(uu, self.bay, self.window[0], du) * upper
                   * pulses(v - np.float32(self.ground + (1 - self.window[1]) * 0.6 * self.storey), self.storey,
                             self.window[1], dv))
        shops = pulses(uu + np.float32(0.1 * self.bay), 2 * self.bay, 0.8, du) * _band(v, 0.35, self.ground - 0.45, dv)
        ledges = (pulses(v - np.float32(self.ground - 0.12), self.storey, 0.05, dv)
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
        joints = 1 - (1 - pulses(v, h, 0.08, dv)) * (1 - pulses(us, w, 0.04, du))
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
        joints = 1 - (1 - pulses(u, tu, 0.06, du)) * (1 - pulses(v, tv, 0.06, dv))
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
            paint[i] = np.maximum(paint[i], line * pulses(v[i], period, duty, dv[i]) if period else line)
        for z0, z1 in self.zebras:
            i = _near(v, z0, z1, dv)
            paint[i] = np.maximum(paint[i], _band(v[i], z0, z1, dv[i]) * pulses(u[i], 1.0, 0.5, du[i]))
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
            cover = np.maximum(pulses(u + v, self.period, self.duty, d), pulses(u - v, self.period, self.duty, d))
            cover = np.maximum(cover, pulses(u, 2.5, 0.04, du))  # posts
        else:
            cover = pulses(u, self.period, self.duty, du)
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


@dataclass(frozen=True)
class Depth:
    """Where a planar shape lies: its inverse depth as an affine function of scene coordinates, 1/Z = a·x + b·y + c
    in 1/m (exact for any plane seen through a pinhole camera: (0, 0, 1/z) for an upright figure at depth z, a
    row-dependent one for the ground), and how horizontal the plane is (|n · up|: 1 for the ground and the tops
    of boxes, 0 for upright faces), which is where snow settles."""

    a: float
    b: float
    c: float
    up: float = 0.0

    @staticmethod
    def at(z: float, up: float = 0.0) -> Depth:
        return Depth(0.0, 0.0, 1.0 / z, up)


@dataclass(frozen=True, eq=False)
class Shape:
    geometry: Geometry
    label: int  # trainId
    material: Material
    depth: Depth | None = None  # None: infinitely far (the sky; and a hand-made scene that gives no depth)


@dataclass(frozen=True)
class Light:
    """A light source the generator placed (a street lamp, a vehicle's head or rear light, a lit traffic light).
    By day it changes nothing; at night it lights the surfaces near it and glows (:mod:`.weather`)."""

    x: float  # scene coordinates of its centre
    y: float
    z: float  # depth, metres
    color: Color
    power: float  # the illuminance it gives a surface next to it, relative to daylight
    reach: float  # metres at which that falls to a quarter: power · (reach² / (d² + reach²))²
    size: float  # the lamp's radius in metres, which sets its glow
    forward: bool = False  # a headlight: it lights what is in front of it (towards the camera) much more


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
    # the generator's world.Camera (world builds on this module, so it is not named here): what the weather needs
    # to place things in 3-D; None for hand-made scenes
    camera: Any = None
    lights: tuple[Light, ...] = ()
