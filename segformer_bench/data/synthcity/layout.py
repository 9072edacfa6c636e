"""The street generator's base: the layout of one street (camera, light, lanes, kerbs and sidewalks, the street's
end, crossings), drawn from the scene's random generator, and the helpers every layer is drawn with."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from .constants import ASPECT, Color
from .materials import Depth, Light, Material, Shade, Shape
from .world import FACING_CAMERA, UP, Z_NEAR, Camera, Lighting

Item = tuple[float, list]  # (depth for sorting, shapes drawn in this order)
Footprint = tuple[float, float, float, float]  # x0, x1, z0, z1 on the ground, metres


class Layout:
    """One street's layout and the helpers its layers share; :class:`~.street.Street` draws the layers."""

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
        self.lights: list[Light] = []  # recorded as the layers draw lamps; never drawn from `rng`

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
        self.street.append(((x - radius, x + radius, z - radius, z + radius), at_depth(shapes, z)))

    def poly(self, points, label: int, material: Material) -> list[Shape]:
        geometry = self.cam.polygon(points)
        return [] if geometry is None else [Shape(geometry, label, material, self.cam.depth(points))]

    def add_light(self, x: float, y: float, z: float, color, power: float, reach: float, size: float,
              forward: bool = False) -> None:
        """Record a light source at scene point (x, y), z metres away (none behind the near plane)."""
        if z > Z_NEAR:
            self.lights.append(Light(x, y, z, tuple(float(c) for c in color), power, reach, size, forward))


def at_depth(shapes: list, z: float) -> list:
    """`shapes` with those that have no depth yet placed upright at depth z (a figure drawn on a billboard)."""
    depth = Depth.at(max(z, Z_NEAR))
    return [replace(s, depth=depth) if isinstance(s, Shape) and s.depth is None else s for s in shapes]
