"""The world: a pinhole camera over a street, and the projection of 3-D surfaces and upright figures; the sun and
haze that light them, and the faces of boxes.

World axes: X right, Y up, Z forward, metres; the camera sits at (0, height, 0) looking along +Z.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .constants import ASPECT
from .geometry import Ellipse, Polygon, Polyline
from .materials import Depth, Surface

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

    def depth(self, points) -> Depth:
        """The inverse depth of the plane through the 3-D polygon `points` (world coordinates), in scene
        coordinates: with the plane n · Q = d in camera-centred coordinates Q and Q = Z · (X/Z, (Y − height)/Z, 1),
        1/Z = (n_x · X/Z + n_y · (Y − height)/Z + n_z) / d, where X/Z and (Y − height)/Z are affine in the scene
        point. A plane through the camera (seen edge-on, so it covers no area) gets the depth of its centre."""
        q = np.asarray(points, float) - (0.0, self.height, 0.0)
        nxt = np.roll(q, -1, axis=0)  # Newell's normal: robust for any planar polygon
        n = np.array([np.sum((q[:, 1] - nxt[:, 1]) * (q[:, 2] + nxt[:, 2])),
                      np.sum((q[:, 2] - nxt[:, 2]) * (q[:, 0] + nxt[:, 0])),
                      np.sum((q[:, 0] - nxt[:, 0]) * (q[:, 1] + nxt[:, 1]))])
        norm = float(np.linalg.norm(n))
        d = float(n @ q.mean(axis=0))
        if norm == 0 or abs(d) < 1e-9 * norm:
            return Depth.at(max(float(q[:, 2].mean()), Z_NEAR))
        nx, ny, nz = n / d
        f = self.focal
        return Depth(nx * ASPECT / f, -ny / f, nz - nx * self.cx / f + ny * self.horizon / f, abs(float(n[1])) / norm)

    def scene_point(self, p) -> tuple[float, float]:
        x, y = self.project(np.asarray(p, float))
        return float(x), float(y)

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


def rect3(origin, a, b, u0: float, u1: float, v0: float, v1: float) -> np.ndarray:
    """The 3-D rectangle origin + [u0, u1]·a + [v0, v1]·b."""
    return np.array([[o + u * ai + v * bi for o, ai, bi in zip(origin, a, b, strict=True)]
                     for u, v in ((u0, v0), (u1, v0), (u1, v1), (u0, v1))])


def ground_quad(x0: float, x1: float, z0: float, z1: float, y: float = 0.0) -> np.ndarray:
    return np.array([(x0, y, z0), (x1, y, z0), (x1, y, z1), (x0, y, z1)], float)


@dataclass(frozen=True)
class Face:
    """A visible face of an axis-aligned box: origin + [0, length]·a + [0, height]·b."""

    origin: tuple[float, float, float]
    a: tuple[float, float, float]
    b: tuple[float, float, float]
    length: float
    height: float
    normal: tuple[float, float, float]

    def rect(self, u0: float, u1: float, v0: float, v1: float) -> np.ndarray:
        return rect3(self.origin, self.a, self.b, u0, u1, v0, v1)


def box_faces(x0, x1, y0, y1, z0, z1, eye: float) -> dict[str, Face]:
    """The faces of a box that a camera at (0, eye, 0) sees, by world side: near (−Z), left (−X), right (+X), top."""
    faces = {}
    if z0 > 0:
        faces["near"] = Face((x0, y0, z0), (1, 0, 0), (0, 1, 0), x1 - x0, y1 - y0, FACING_CAMERA)
    if x0 > 0:
        faces["left"] = Face((x0, y0, z0), (0, 0, 1), (0, 1, 0), z1 - z0, y1 - y0, (-1.0, 0.0, 0.0))
    if x1 < 0:
        faces["right"] = Face((x1, y0, z0), (0, 0, 1), (0, 1, 0), z1 - z0, y1 - y0, (1.0, 0.0, 0.0))
    if y1 < eye:
        faces["top"] = Face((x0, y1, z0), (1, 0, 0), (0, 0, 1), x1 - x0, z1 - z0, UP)
    return faces
