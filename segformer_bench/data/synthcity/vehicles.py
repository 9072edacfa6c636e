"""Vehicles: cars, trucks, buses and trams built from boxes, in every lane, parked along the kerbs, and crossing."""

from __future__ import annotations

import numpy as np

from .constants import BUS, CAR, TRAIN, TRUCK
from .geometry import Ellipse
from .layout import Footprint
from .materials import Gradient, Shade, Shape, Slats
from .palettes import BUS_COLORS, CAR_COLORS, RAW, TRAM_COLORS, TRUCK_COLORS
from .people import People
from .world import FACING_CAMERA, UP, Z_NEAR, Face, box_faces, ground_quad

LAMP_COLORS = {"rear": (180, 20, 25), "front": (235, 235, 215)}


class Vehicles(People):
    """Traffic; motorcycles in the lanes come from :class:`~.people.People`."""

    def box(self, x0, x1, y0, y1, z0, z1, label: int, color, grain=RAW, shine: bool = True):
        """The faces of a box the camera sees, as shapes (paint brighter towards the top unless not `shine`),
        and those faces by world side."""
        faces = box_faces(x0, x1, y0, y1, z0, z1, self.cam.height)
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
            shapes.append(Shape(geometry, label, self.material(color, face.normal, z, grain, pattern),
                                self.cam.depth(points)))
        return shapes, faces

    def on_face(self, face: Face, u0, u1, v0, v1, label: int, color, glass: bool = False) -> list:
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
                                                     pattern), self.cam.depth(points))]

    def lamp(self, face: Face, u0, u1, v0, v1, label: int, role: str) -> list:
        """A head light (`role` front) or rear light on a face, drawn and recorded as a light source."""
        centre = face.rect(u0, u1, v0, v1).mean(axis=0)
        if role == "front":
            self.add_light(*self.cam.scene_point(centre), float(centre[2]), (255, 250, 235), 0.9, 4.0, 0.12, True)
        else:
            self.add_light(*self.cam.scene_point(centre), float(centre[2]), (255, 40, 30), 0.12, 1.5, 0.1)
        return self.on_face(face, u0, u1, v0, v1, label, LAMP_COLORS[role])

    def wheel(self, face: Face, at: float, r: float, label: int) -> list:
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
        depth = self.cam.depth(face.rect(0, face.length, 0, face.height))
        return [Shape(Ellipse(tuple(p[0]), radii), label, self.material((24, 24, 26), face.normal, z, RAW), depth),
                Shape(Ellipse(tuple(p[0]), (radii[0] * 0.55, radii[1] * 0.55)), label,
                      self.material((150, 150, 152), face.normal, z, RAW), depth)]

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

        def box(s0, s1, l0, l1, y0, y1, color, grain=RAW) -> tuple[list, dict[str, Face]]:
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
        footprint = self.cam.polygon(ground_quad(x0 - 0.2, x1 + 0.2, z0 - 0.2, z1 + 0.3, 0.003))
        if footprint is not None:
            shapes.append(Shade(footprint, u(0.3, 0.5)))
        if along_z:  # tyres under the near end
            tz = z0 + 0.4
            for tx0, tx1 in ((x0 + 0.05, x0 + 0.32), (x1 - 0.32, x1 - 0.05)):
                shapes += self.poly([(tx0, 0, tz), (tx1, 0, tz), (tx1, clear + 0.1, tz), (tx0, clear + 0.1, tz)],
                                    label, self.material((24, 24, 26), FACING_CAMERA, tz, RAW))
        glass = (u(28, 50),) * 2 + (u(40, 62),)

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
                        shapes += self.lamp(face, u0, u0 + 0.3, top - 0.24, top - 0.08, label, role)
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
                            shapes += self.lamp(face, u0, u0 + 0.25, 0.2, 0.45, label, role)
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
                        shapes += self.lamp(face, u0, u0 + 0.3, 0.05, 0.25, label, role)
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
                            shapes += self.lamp(face, u0, u0 + 0.3, 0.15, 0.35, label, role)
                else:
                    shapes += self.on_face(face, 0.25, face.length - 0.25, top * 0.55, top - 0.25, label, glass,
                                           glass=True)
                    if detail:
                        for u0 in (0.1, face.length - 0.35):
                            shapes += self.lamp(face, u0, u0 + 0.25, 0.15, 0.5, label, role)
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
