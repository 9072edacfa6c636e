"""Along the sidewalks: walls, fences and hedges, trees and bushes, street lamps, traffic signs and traffic lights."""

from __future__ import annotations

import numpy as np

from .constants import ASPECT, FENCE, POLE, TRAFFIC_LIGHT, TRAFFIC_SIGN, VEGETATION, WALL
from .layout import Layout
from .materials import Depth, Masonry, Material, Shape, Slats
from .palettes import FENCE_COLORS, FOLIAGE, POLE_COLORS, RAW, WALL_COLORS
from .world import FACING_CAMERA, UP, Z_NEAR, Billboard, rect3


class Sidewalks(Layout):
    """What stands along the sidewalks."""

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
        shapes = self.poly(rect3((x, 0, z0), (0, 0, 1), UP, 0, z1 - z0, 0, height), WALL,
                           self.material(color, normal, z, (0.06, 0.06, 0.08), pattern))
        shapes += self.poly(rect3((x, 0, z0), (0, 0, 1), UP, 0, z1 - z0, height, height + 0.08), WALL,
                            self.material(self.jitter(np.asarray(color) * 1.15), normal, z))
        if z0 > Z_NEAR:  # its end, facing the camera
            shapes += self.poly(rect3((x, 0, z0), (s, 0, 0), UP, 0, 0.3, 0, height + 0.08), WALL,
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
        return self.poly(rect3((x, 0, z0), (0, 0, 1), UP, 0, z1 - z0, 0, height), FENCE,
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
                self.frontage.append((z, [Shape(bb.ellipse(0, r * 0.8, r * u(1, 1.6), r), VEGETATION, mat,
                                                Depth.at(z))]))

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
            self.add_light(*bb.points([(-s * arm, height - 0.05)])[0], z, (255, 205, 150), 1.6, 7.0, 0.3)

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
                if glow:
                    self.add_light(bb.x, bb.y - cy * bb.scale, z, colors[i], 0.2, 1.5, 0.11)
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
