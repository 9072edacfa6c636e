"""Buildings: each side's row of blocks with windowed facades, and the building (or trees) closing the street."""

from __future__ import annotations

import numpy as np

from .backdrop import Backdrop
from .constants import BUILDING
from .layout import Item, at_depth
from .materials import Facade, Material
from .palettes import FACADE_COLORS
from .sidewalks import Sidewalks
from .world import FACING_CAMERA, UP, rect3


class Buildings(Backdrop, Sidewalks):
    """Building rows and the street's far end; gaps in a row hold trees, and blocks cast shadows."""

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
        end = rect3((x, 0, z0), (s, 0, 0), UP, 0, depth, 0, height)
        shapes += self.poly(end, BUILDING, Material(
            style["color"], grain, self.facade((x, 0, z0), (s, 0, 0), height, style),
            light.on(FACING_CAMERA), light.fog(z0)))
        face = rect3((x, 0, z0), (0, 0, 1), UP, 0, z1 - z0, 0, height)
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
                        self.rows[s].append((zt, at_depth(self.tree_shapes(line + s * u(2, 8), zt), zt)))
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
            face = rect3((-400, 0, z), (1, 0, 0), UP, 0, 800, 0, height)
            self.far_end += self.poly(face, BUILDING, Material(
                style["color"], (0.03, 0.05, 0.06), self.facade((-400, 0, z), (1, 0, 0), height, style),
                self.light.on(FACING_CAMERA), self.light.fog(z)))
        elif self.end == "trees":
            for x in np.arange(-60, 60, u(4, 8)):
                zt = z + u(0, 10)
                self.far_end += at_depth(self.tree_shapes(x, zt, crown_only=True), zt)
