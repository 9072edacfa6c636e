"""The street generator: :func:`generate_scene` builds a :class:`Street`, which draws a street's layers back to
front into a :class:`~.materials.Scene`.

:class:`Street` only orders the layers and the objects in the street; its other methods come from one base
class per module: the layout and shared helpers (``layout``), sky and ground (``backdrop``), what stands along
the sidewalks (``sidewalks``), buildings (``buildings``), people and two-wheelers (``people``), vehicles
(``vehicles``). Each base class calls only methods of its own bases, so the modules import in one direction.
"""

from __future__ import annotations

import heapq

import numpy as np

from .buildings import Buildings
from .layout import Item, at_depth
from .materials import Scene
from .vehicles import Vehicles


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


class Street(Buildings, Vehicles):
    """Builds one scene: layout first, then layers of shapes drawn back to front.

    Layers: sky and distant skyline; ground (terrain, sidewalks, kerbs, road) and cast shadows; the street's
    far end; each side's building row (far to near: a row's faces are outside everything in the street, so
    they are behind it); walls, fences and hedges along the sidewalks; then everything on the sidewalks and the
    road, in the order :func:`_occlusion_order` gives their footprints.
    """

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
            return [shape for z, shapes in sorted(items, key=lambda item: -item[0]) for shape in at_depth(shapes, z)]

        order = _occlusion_order(np.array([footprint for footprint, _ in self.street], float).reshape(-1, 4))
        # what a vehicle draws without a plane of its own (a pantograph) stands at its footprint's centre
        street = [shape for i in order for shape in at_depth(self.street[i][1], sum(self.street[i][0][2:]) / 2)]

        shapes = (self.sky_shapes + self.ground + self.far_end + back_to_front(self.rows[-1])
                  + back_to_front(self.rows[1]) + back_to_front(self.frontage) + street)
        return Scene(tuple(shapes), self.haze, self.gain, int(self.rng.integers(2**31)),
                     float(self.rng.uniform(1.0, 3.5)), self.cam, tuple(self.lights))


def generate_scene(rng: np.random.Generator) -> Scene:
    """A random street scene; everything it draws comes from `rng`."""
    return Street(rng).build()
