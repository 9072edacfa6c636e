"""People and two-wheelers: pedestrians, cyclists and parked bicycles, motorcyclists and parked motorcycles."""

from __future__ import annotations

import numpy as np

from .constants import BICYCLE, MOTORCYCLE, PERSON, RIDER
from .layout import Layout
from .materials import Material, Shape
from .palettes import CLOTHES, HAIR, RAW, SKIN
from .world import FACING_CAMERA, Billboard


class People(Layout):
    """Pedestrians and riders, as upright figures on billboards."""

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
