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

Every shape also knows where it lies (:class:`Depth`: its plane's inverse depth, affine in scene coordinates,
and how horizontal it is) and the generator records the scene's light sources (:class:`Light`: street lamps,
head and rear lights, lit traffic lights) and its camera, without drawing from the scene's generator. With them
:func:`render` can return every pixel's true depth and render the same scene, with the same labels, under a
:class:`Weather`: fog by Koschmieder's law from the true depth, night lit by the scene's own lamps, rain with
streaks and a wet mirroring road, snow settled on horizontal surfaces with falling flakes, each at a severity
1–5 (``weather``). These are placed in 3-D, unlike the 2-D corruptions of Cityscapes-C.

Every sample is determined by ``np.random.default_rng([seed, split_code, index])``, and its weather by its own
``np.random.default_rng([seed, split_code, index, condition, level])``; no global random state.
Rendering costs tens of milliseconds per small sample, which dominates short CPU runs that see each scene
many times (training epochs, every corruption cell); ``cache=True`` keeps each rendered sample as an .npz
under :func:`cache_dir`, keyed by a digest of the package's source (:func:`source_digest`), the split, seed,
size, condition, level and index, written atomically (loader workers may render the same sample at once) and
re-rendered if unreadable.

The modules, each building only on those before it: ``constants`` (trainIds, scene space), ``geometry``,
``noise`` (value noise), ``materials`` (patterns, materials and the scene), ``weather``, ``renderer``; the generator's
``world`` (camera, lighting, boxes), ``palettes``, ``layout`` (one street's layout and the helpers its layers
share), then a layer per module: ``backdrop`` (sky and ground), ``sidewalks``, ``buildings``, ``people`` (and
two-wheelers), ``vehicles``, and ``street``, which draws them in order; last, ``dataset``.
"""

from __future__ import annotations

# The API: what code outside the package imports, and what describing and rendering a scene by hand takes. The
# generator's own parts (patterns, the camera, palettes) are imported from their modules.
from .constants import (
    ASPECT,
    BICYCLE,
    BUILDING,
    BUS,
    CAR,
    FENCE,
    MOTORCYCLE,
    PERSON,
    POLE,
    RIDER,
    ROAD,
    SIDEWALK,
    SKY,
    TERRAIN,
    TRAFFIC_LIGHT,
    TRAFFIC_SIGN,
    TRAIN,
    TRUCK,
    VEGETATION,
    WALL,
    Color,
)
from .dataset import SPLITS, SynthCity, cache_dir, source_digest
from .geometry import Ellipse, Geometry, Polygon, Polyline
from .materials import Depth, Light, Material, Scene, Shade, Shape
from .materials import pulses as pulses  # the box filter, for its test
from .renderer import render
from .street import generate_scene
from .weather import CONDITIONS, DEFAULT_LEVEL, LEVELS, Weather

__all__ = [
    "ROAD", "SIDEWALK", "BUILDING", "WALL", "FENCE", "POLE", "TRAFFIC_LIGHT", "TRAFFIC_SIGN", "VEGETATION", "TERRAIN",
    "SKY", "PERSON", "RIDER", "CAR", "TRUCK", "BUS", "TRAIN", "MOTORCYCLE", "BICYCLE", "ASPECT", "Color",
    "Polygon", "Ellipse", "Polyline", "Geometry", "Material", "Shape", "Shade", "Scene", "Depth", "Light", "render",
    "generate_scene", "Weather", "CONDITIONS", "LEVELS", "DEFAULT_LEVEL", "SPLITS", "SynthCity", "cache_dir",
    "source_digest",
]
