"""The constants several modules share: the trainIds shapes are labelled with, the scene's aspect, the smallest
side a scene renders at, the spacings of the noise textures, and the colour type.

Scene coordinates are x in [0, 1] across and y in [0, 1] down; the scene is ASPECT image heights wide.
"""

from __future__ import annotations

from ..labels import CITYSCAPES_CLASSES

# trainIds, in Cityscapes' order
(ROAD, SIDEWALK, BUILDING, WALL, FENCE, POLE, TRAFFIC_LIGHT, TRAFFIC_SIGN, VEGETATION, TERRAIN, SKY, PERSON, RIDER,
 CAR, TRUCK, BUS, TRAIN, MOTORCYCLE, BICYCLE) = range(19)
assert CITYSCAPES_CLASSES[BICYCLE] == "bicycle" and CITYSCAPES_CLASSES[TERRAIN] == "terrain"

ASPECT = 2.0  # scene width / height: Cityscapes' 1024×2048. Rendering at another aspect stretches the scene.
MIN_SIDE = 32
NOISE_CELLS = (1 / 512, 1 / 96, 1 / 20)  # value-noise lattice spacing in image heights: grain, mottle, patches

Color = tuple[float, float, float]  # RGB on the 0–255 scale, before lighting
