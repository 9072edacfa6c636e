"""The street's first layers: the sky and a distant skyline, the ground (terrain, sidewalks, kerbs, the road and its
markings), and the shadows the buildings cast on it."""

from __future__ import annotations

import math

import numpy as np

from .constants import BUILDING, ROAD, SIDEWALK, SKY, TERRAIN, VEGETATION
from .geometry import Ellipse, Polygon
from .layout import Layout
from .materials import Asphalt, Depth, Material, Paving, Shade, Shape, Sky
from .palettes import FACADE_COLORS, FOLIAGE, GRASS
from .world import UP, ground_quad, rect3


class Backdrop(Layout):
    """Sky, ground and cast shadows."""

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
                material = Material(self.jitter((70, 92, 60)), FOLIAGE, None, 1.0, u(0.45, 0.7))
                self.sky_shapes.append(Shape(Ellipse((x + w / 2, h - r * 0.6), (w / 2, r)), VEGETATION, material,
                                             self.distance(material.fog)))
            else:
                top = h - u(0.004, 0.05)
                square = np.array([(x, top), (x + w, top), (x + w, h), (x, h)])
                material = Material(self.pick(FACADE_COLORS), (0.02, 0.05, 0.04), None, u(0.7, 1.0), u(0.55, 0.8))
                self.sky_shapes.append(Shape(Polygon((square,)), BUILDING, material, self.distance(material.fog)))
            x += w

    def distance(self, fog: float) -> Depth:
        """The depth at which the scene's haze is `fog`: where the distant skyline stands."""
        return Depth.at(-self.light.visibility * math.log1p(-fog))

    def add_ground(self) -> None:
        """Terrain under everything, sidewalks with kerbs, grass verges and gardens, the cross street, and the
        road with its markings and patches."""
        rng, u, cam = self.rng, self.rng.uniform, self.cam
        far = self.z_far
        grass = self.jitter(((96, 128, 62), (128, 138, 78), (120, 104, 80), (80, 118, 58))[rng.integers(4)])
        self.ground += self.poly(ground_quad(-600, 600, 1.0, 6000), TERRAIN,
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
                self.ground += self.poly(ground_quad(outer, line, 1.0, far, self.kerb), TERRAIN,
                                         self.material(self.jitter(grass), UP, 30, GRASS))
            self.ground += self.poly(ground_quad(inner, outer, 1.0, far, self.kerb), SIDEWALK,
                                     self.material(walk_color, UP, 30, (0.05, 0.05, 0.06), paving))
            if self.verge[s]:
                self.ground += self.poly(ground_quad(self.edge[s], inner, 1.0, far, self.kerb), TERRAIN,
                                         self.material(self.jitter(grass), UP, 30, GRASS))
            kerb = rect3((self.edge[s], 0, 0), (0, 0, 1), (0, 1, 0), 1.0, far, 0, self.kerb)
            self.ground += self.poly(kerb, SIDEWALK, self.material(self.jitter((175, 175, 170)), (-s, 0, 0), 30,
                                                                   (0.05, 0.04, 0.05)))

        if self.crossing:  # the cross street, with its sidewalks, across everything beyond the kerbs
            zc, w = self.crossing
            self.ground += self.poly(ground_quad(-600, 600, zc - self.walk[1], zc + w + self.walk[-1], self.kerb),
                                     SIDEWALK, self.material(walk_color, UP, zc, (0.05, 0.05, 0.06), paving))
            self.ground += self.poly(ground_quad(-600, 600, zc, zc + w), ROAD,
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
        self.ground += self.poly(ground_quad(self.edge[-1], self.edge[1], 1.0, far), ROAD,
                                 self.material(asphalt, UP, 30, (0.12, 0.05, 0.07), road))
        for _ in range(rng.integers(0, 4)):  # patched asphalt
            x0, z0 = u(self.edge[-1], self.edge[1] - 1), u(4, 60)
            x1, z1 = min(x0 + u(0.8, 4), self.edge[1]), z0 + u(1, 12)
            shade = u(0.8, 1.15)
            self.ground += self.poly(ground_quad(x0, x1, z0, z1, 0.001), ROAD,
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
