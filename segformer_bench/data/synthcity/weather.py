"""Weather and night: the same scene, with the same labels, as a camera would see it in fog, at night, in rain or in
snow. :func:`~.renderer.render` applies a :class:`Weather` to the clear image, knowing every pixel's true depth, how
horizontal its surface is, and the scene's light sources.

Unlike the 2-D corruptions of Cityscapes-C these are placed physically: fog, and the haze of rain and snow, follow
Koschmieder's law I = J·t + A·(1 − t), t = exp(−β·d), from each pixel's depth d (the sky is infinitely far, t = 0);
lamps and headlights light what is near them in 3-D and glow; snow settles on horizontal surfaces; rain darkens
the road, which mirrors what is above it; drops and flakes fall at depths, hidden behind nearer surfaces, near ones
larger (and flakes blurred). Particles and textures are placed in scene coordinates, so a scene looks the same at
every size; the weather's randomness has its own generator, seeded by (the sample's seed, split and index, the
condition, the level), so it never changes the scene itself.

``level`` is one severity scale for every condition, 1 (mild) to 5 (hardest), default 3; each level stands for
physical values (the tables below):

- fog: extinction β = 0.005, 0.01, 0.02, 0.03, 0.06 per metre (visibility about 3/β: 600, 300, 150, 100, 50 m);
  levels 1–3 are Foggy Cityscapes' three β;
- night: ambient light 20, 13, 8, 5, 3 % of daylight, bluish; sensor noise of a camera at high gain, read noise
  σ = 2.5–9 and shot noise (variance ∝ signal) that grow with the level;
- rain: a rain rate of about 2, 5, 10, 25, 50 mm/h: 150–1200 streaks, extinction β = 0.002–0.02 per metre, a
  dimmer grey sky, and a road that is darker and more mirror-like;
- snow: snowfall from light to heavy: 250–2000 flakes, extinction β = 0.004–0.04 per metre, a bright diffuse sky,
  and snow covering 30–90 % of horizontal surfaces (less on the road, where traffic clears it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ...errors import UserError
from .constants import ASPECT, NOISE_CELLS, ROAD, SIDEWALK
from .materials import Scene
from .noise import noise_field

CONDITIONS = ("clear", "fog", "night", "rain", "snow")
LEVELS = (1, 2, 3, 4, 5)
DEFAULT_LEVEL = 3
_CODES = {c: i for i, c in enumerate(CONDITIONS)}  # in the weather's seed

# One entry per level, 1..5.
FOG_BETA = (0.005, 0.01, 0.02, 0.03, 0.06)  # 1/m
NIGHT_AMBIENT = (0.2, 0.13, 0.08, 0.05, 0.03)  # fraction of daylight
NIGHT_READ_NOISE = (2.5, 3.5, 5.0, 7.0, 9.0)  # σ on the 0–255 scale
NIGHT_SHOT_NOISE = (0.4, 0.6, 0.9, 1.3, 1.8)  # variance per unit of signal (0–255 scale): the sensor's gain
RAIN_BETA = (0.002, 0.004, 0.007, 0.012, 0.02)  # 1/m
RAIN_STREAKS = (150, 300, 500, 800, 1200)
RAIN_DIM = (0.92, 0.88, 0.84, 0.8, 0.75)  # daylight under rain clouds
RAIN_WET = (0.3, 0.38, 0.45, 0.5, 0.55)  # how much darker a wet road is
RAIN_MIRROR = (0.1, 0.13, 0.16, 0.19, 0.22)  # how much of what is above it a wet road reflects
SNOW_BETA = (0.004, 0.008, 0.015, 0.025, 0.04)  # 1/m
SNOW_FLAKES = (250, 500, 900, 1400, 2000)
SNOW_COVER = (0.3, 0.45, 0.6, 0.75, 0.9)  # of horizontal surfaces

Z_PARTICLE = (1.0, 30.0)  # metres: drops and flakes nearer than 1 m or beyond 30 m are not drawn one by one


def check_condition(condition: object, level: object) -> None:
    if not isinstance(condition, str) or condition not in CONDITIONS:
        raise UserError(f"SynthCity has no condition {condition!r}; choose one of {', '.join(CONDITIONS)}")
    if type(level) is not int or level not in LEVELS:
        raise UserError(f"SynthCity level must be an integer severity from 1 (mild) to 5 (hardest), default "
                        f"{DEFAULT_LEVEL}; got {level!r}")


@dataclass(frozen=True)
class Weather:
    """A condition and its level, and the seed of its randomness (the sample's; the condition and level are
    appended to it, so each (sample, condition, level) has its own drops, flakes and noise)."""

    condition: str = "clear"
    level: int = DEFAULT_LEVEL
    seed: tuple[int, ...] = ()

    def __post_init__(self):
        check_condition(self.condition, self.level)

    def rng(self, *more: int) -> np.random.Generator:
        return np.random.default_rng([*self.seed, _CODES[self.condition], self.level, *more])


@dataclass(frozen=True)
class Pixels:
    """What the weather knows of each pixel besides its colour."""

    label: np.ndarray  # (H, W) trainIds
    inverse_depth: np.ndarray  # (H, W) 1/m; 0 for the sky
    up: np.ndarray  # (H, W) how horizontal the surface is, 0..1
    xs: np.ndarray  # (W,) scene x of the pixel centres
    ys: np.ndarray  # (H,) scene y


def apply(weather: Weather, scene: Scene, image: np.ndarray, px: Pixels) -> np.ndarray:
    """The (3, H, W) float image, 0–255, under `weather`; `image` is the clear one (it may be overwritten)."""
    if weather.condition == "clear":
        return image
    if scene.camera is None:
        raise ValueError("weather needs a scene with a camera (a generated scene); this one has none")
    i = weather.level - 1
    if weather.condition == "fog":
        return koschmieder(image, px.inverse_depth, FOG_BETA[i], _airlight(scene, 1.08, 0.3))
    if weather.condition == "night":
        return _night(weather, scene, image, px)
    if weather.condition == "rain":
        return _rain(weather, scene, image, px)
    return _snow(weather, scene, image, px)


def koschmieder(image: np.ndarray, inverse_depth: np.ndarray, beta: float, airlight: np.ndarray) -> np.ndarray:
    """I = J·t + A·(1 − t) with t = exp(−β·d), d = 1 / inverse_depth (t = 0 where that is 0: the sky)."""
    with np.errstate(divide="ignore"):
        t = np.exp(np.float32(-beta) / inverse_depth)
    a = airlight.astype(np.float32)[:, None, None]
    return a + (image - a) * t


def _airlight(scene: Scene, brighter: float, grey: float) -> np.ndarray:
    """The atmospheric light: the scene's haze (its horizon's colour) as exposed, `brighter`, `grey` of the way
    to its own mean."""
    a = np.asarray(scene.haze, np.float32) * np.asarray(scene.gain, np.float32) * np.float32(brighter)
    return np.clip(a + np.float32(grey) * (a.mean() - a), 0, 255)


def _points(scene: Scene, px: Pixels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pixel's world point (X, Y, Z) in metres; the sky as if 10 km away."""
    cam = scene.camera
    z = 1 / np.maximum(px.inverse_depth, np.float32(1e-4))
    x = (px.xs[None, :] * np.float32(ASPECT) - np.float32(cam.cx)) * (z / np.float32(cam.focal))
    y = np.float32(cam.height) - (px.ys[:, None] - np.float32(cam.horizon)) * (z / np.float32(cam.focal))
    return x, y, z


def _box(scene: Scene, H: int, W: int, x: float, y: float, z: float, r: float):
    """Pixel rows and columns (slices) covering the projection of the cube of half-side r (metres) around the
    world point (x, y, z)."""
    cam = scene.camera
    z0 = max(z - r, 0.3)
    corners_x = [(cam.cx + px * cam.focal / pz) / ASPECT for px in (x - r, x + r) for pz in (z0, z + r)]
    corners_y = [cam.horizon - (py - cam.height) * cam.focal / pz for py in (y - r, y + r) for pz in (z0, z + r)]
    c0, c1 = max(0, math.floor(min(corners_x) * W)), min(W, math.ceil(max(corners_x) * W) + 1)
    r0, r1 = max(0, math.floor(min(corners_y) * H)), min(H, math.ceil(max(corners_y) * H) + 1)
    return (slice(r0, r1), slice(c0, c1)) if r0 < r1 and c0 < c1 else None


def _night(weather: Weather, scene: Scene, image: np.ndarray, px: Pixels) -> np.ndarray:
    """Low bluish ambient light; the scene's lamps light what is near them and glow; a noisy sensor."""
    i = weather.level - 1
    _, H, W = image.shape
    cam = scene.camera
    light = np.empty_like(image)
    light[:] = (np.float32(NIGHT_AMBIENT[i]) * np.array([0.75, 0.9, 1.3], np.float32))[:, None, None]
    glow = np.zeros_like(image)
    X, Y, Z = _points(scene, px)
    for lamp in scene.lights:
        color = np.asarray(lamp.color, np.float32)[:, None] / 255
        lx = (lamp.x * ASPECT - cam.cx) * lamp.z / cam.focal
        ly = cam.height - (lamp.y - cam.horizon) * lamp.z / cam.focal
        # (reach² / (d² + reach²))² < 0.005 / power beyond this distance: too little to see
        far = lamp.reach * math.sqrt(max(math.sqrt(lamp.power / 0.005) - 1, 0.0))
        box = _box(scene, H, W, lx, ly, lamp.z, far)
        if box is not None:
            d2 = (X[box] - lx) ** 2 + (Y[box] - ly) ** 2 + (Z[box] - lamp.z) ** 2
            e = np.float32(lamp.power) * (np.float32(lamp.reach ** 2) / (d2 + np.float32(lamp.reach ** 2))) ** 2
            if lamp.forward:  # a headlight lights what is ahead of it (towards the camera), not its own vehicle
                e *= np.where(Z[box] < lamp.z - 0.5, np.float32(1.0), np.float32(0.02))
            light[:, box[0], box[1]] += color[:, :, None] * e
        # the glow: a saturated core the lamp's size and a halo around it, in the image (it is in the lens);
        # none from a lamp hidden behind something nearer
        row, col = min(H - 1, max(0, int(lamp.y * H))), min(W - 1, max(0, int(lamp.x * W)))
        if px.inverse_depth[row, col] * (lamp.z - 0.5) > 1:
            continue
        sigma = lamp.size * cam.focal / lamp.z  # image heights
        s = max(sigma, 0.5 / H)  # below a pixel: spread it over one, keeping its sum, so every size agrees
        amp = min(1.0, 2 * lamp.power) * (sigma / s) ** 2
        reach = 10 * s
        r0, r1 = max(0, math.floor((lamp.y - reach) * H)), min(H, math.ceil((lamp.y + reach) * H) + 1)
        c0, c1 = max(0, math.floor((lamp.x - reach / ASPECT) * W)), min(W, math.ceil((lamp.x + reach / ASPECT) * W) + 1)
        if r0 < r1 and c0 < c1:
            dx = (px.xs[c0:c1] - np.float32(lamp.x)) * np.float32(ASPECT)
            dy = px.ys[r0:r1] - np.float32(lamp.y)
            r = np.sqrt(dy[:, None] ** 2 + dx[None, :] ** 2) / np.float32(s)
            g = np.float32(amp * 255) * (np.float32(2.5) * np.exp(-r * r) + np.float32(0.3) * np.exp(-r / 3))
            glow[:, r0:r1, c0:c1] += color[:, :, None] * g
    out = image * light + glow
    rng = weather.rng(H, W)  # per pixel, so seeded by the size too
    sigma = np.sqrt(np.float32(NIGHT_SHOT_NOISE[i]) * np.clip(out, 0, 255) + np.float32(NIGHT_READ_NOISE[i] ** 2))
    return out + sigma * rng.standard_normal(out.shape, dtype=np.float32)


def _splat(H: int, W: int, boxes: np.ndarray, value) -> np.ndarray:
    """(H, W) sum over particles of value(k, rows, cols) on each particle k's pixel box (rows r0:r1, columns
    c0:c1; `boxes` is (n, 4) of those), evaluated for all the particles' pixels at once."""
    r0, r1, c0, c1 = boxes.T
    h, w = np.maximum(r1 - r0, 0), np.maximum(c1 - c0, 0)
    counts = h * w
    k = np.repeat(np.arange(len(boxes)), counts)
    local = np.arange(k.size) - np.repeat(np.cumsum(counts) - counts, counts)
    rows, cols = r0[k] + local // w[k], c0[k] + local % w[k]
    return np.bincount(rows * W + cols, value(k, rows, cols), minlength=H * W).reshape(H, W).astype(np.float32)


def _particles(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n particles in the view: scene x, y and depth; as many per metre of depth as a frustum holds, which grows
    with the depth, but drawn ∝ z rather than z² so that near ones, the visible ones, are not too rare."""
    x, y = rng.random(n), rng.random(n)
    z0, z1 = Z_PARTICLE
    return x, y, np.sqrt(z0 * z0 + (z1 * z1 - z0 * z0) * rng.random(n))


def _rain(weather: Weather, scene: Scene, image: np.ndarray, px: Pixels) -> np.ndarray:
    """Dimmer light, haze, a wet road mirroring what is above it, and streaks of falling drops."""
    i = weather.level - 1
    _, H, W = image.shape
    image *= np.float32(RAIN_DIM[i])
    grey = _airlight(scene, 0.8 * RAIN_DIM[i], 1.0)
    image = koschmieder(image, px.inverse_depth, RAIN_BETA[i], grey)
    # the road is a rough mirror about the horizon: it shows what is above it (lamps, the sky), smeared by
    # ripples along the rows; pixels whose mirror image is outside the view see the sky's grey
    horizon = scene.camera.horizon * H
    source = np.round(2 * horizon - 1 - np.arange(H)).astype(np.intp)
    inside = (source >= 0) & (source < H)
    mirror = np.empty_like(image)
    mirror[:] = grey[:, None, None]
    mirror[:, inside] = image[:, source[inside]]
    k = max(1, round(0.012 * H))  # the ripples: a box blur over 1.2 % of the height, down the rows
    c = np.cumsum(np.pad(mirror, ((0, 0), (k, k), (0, 0)), mode="edge"), axis=1)
    mirror = (c[:, 2 * k:] - c[:, :-2 * k]) / np.float32(2 * k)
    wet = np.where(px.label == ROAD, np.float32(1.0), np.where(px.label == SIDEWALK, np.float32(0.5), np.float32(0)))
    # Fresnel: a wet surface mirrors most at grazing angles (near the horizon), little at the camera's feet,
    # and nothing below twice the horizon's height, where the mirror image would leave the view
    below = np.clip((px.ys - np.float32(scene.camera.horizon)) / np.float32(scene.camera.horizon), 0, 1)
    fresnel = ((1 - below) ** 2)[:, None]
    image = image * (1 - np.float32(RAIN_WET[i]) * wet) + mirror * (np.float32(RAIN_MIRROR[i]) * wet * fresnel)

    rng = weather.rng()
    n = RAIN_STREAKS[i]
    x, y, z = _particles(rng, n)
    wind = rng.uniform(-0.3, 0.3)  # radians from the vertical, the same for every drop
    angle = wind + rng.normal(0, 0.04, n)
    f = scene.camera.focal
    length = rng.uniform(0.25, 0.6, n) * f / z  # the drop's fall during the exposure, image heights
    width = 0.005 * f / z
    alpha = np.full(n, 0.35)
    streak = _streaks(H, W, x * ASPECT, y, length, angle, width, alpha, 1 / z, px.inverse_depth)
    color = np.float32(min(1.0, RAIN_DIM[i] * 1.1) * 215)
    a = np.minimum(streak, 1)[None]
    return image * (1 - a) + color * a


def _streaks(H, W, x, y, length, angle, width, alpha, inverse_z, inverse_depth) -> np.ndarray:
    """(H, W) summed coverage of anti-aliased segments (centre x, y in image heights, `length` along `angle`
    from the vertical, `width`), each hidden where the scene is nearer than it. A segment thinner than a pixel
    is drawn a pixel wide and fainter, so that its sum does not depend on the size."""
    px = 1 / H
    w = np.maximum(width, px)
    alpha = alpha * width / w
    hx, hy = np.sin(angle) * length / 2, np.cos(angle) * length / 2
    ex, ey = np.abs(hx) + w, np.abs(hy) + w
    boxes = np.stack([np.floor((y - ey) * H), np.ceil((y + ey) * H) + 1,
                      np.floor((x - ex) / ASPECT * W), np.ceil((x + ex) / ASPECT * W) + 1], axis=1)
    boxes = np.clip(boxes, 0, [H, H, W, W]).astype(np.intp)
    xs, ys = (np.arange(W) + 0.5) / W * ASPECT, (np.arange(H) + 0.5) / H

    def value(k, rows, cols):
        qx, qy = xs[cols] - x[k] + hx[k], ys[rows] - y[k] + hy[k]  # from the segment's start
        dx, dy = 2 * hx[k], 2 * hy[k]
        t = np.clip((qx * dx + qy * dy) / np.maximum(dx * dx + dy * dy, 1e-12), 0, 1)
        dist = np.hypot(qx - t * dx, qy - t * dy)
        cover = np.clip((w[k] / 2 - dist) / px + 0.5, 0, 1)
        return alpha[k] * cover * (inverse_depth[rows, cols] < inverse_z[k])

    return _splat(H, W, boxes, value)


def _snow(weather: Weather, scene: Scene, image: np.ndarray, px: Pixels) -> np.ndarray:
    """Snow on horizontal surfaces, a bright haze and sky, and falling flakes."""
    i = weather.level - 1
    _, H, W = image.shape
    rng = weather.rng()
    seed = int(rng.integers(2**31))
    patches = noise_field(seed, 0, 1 / 8, H, W) + 0.5 * noise_field(seed, 1, NOISE_CELLS[2], H, W)
    cover = np.float32(SNOW_COVER[i]) * px.up * np.clip(np.float32(0.7) + np.float32(1.2) * patches, 0, 1)
    cover *= np.where(px.label == ROAD, np.float32(0.65), np.float32(1.0))  # traffic clears the road
    snow = np.array([228, 231, 238], np.float32)[:, None, None]
    image = image + (snow - image) * cover
    bright = np.clip(0.3 * _airlight(scene, 1.1, 0.6) + 0.7 * np.array([232, 235, 242], np.float32), 0, 255)
    image = koschmieder(image, px.inverse_depth, SNOW_BETA[i], bright)

    n = SNOW_FLAKES[i]
    x, y, z = _particles(rng, n)
    f = scene.camera.focal
    radius = rng.uniform(0.004, 0.012, n) * f / z  # image heights
    blur = 0.01 * np.maximum(0.0, 3.0 / z - 1.0)  # out of focus nearer than 3 m
    r = np.sqrt(radius ** 2 + blur ** 2 + (0.5 / H) ** 2)
    alpha = 0.9 * (radius / r) ** 2  # the same amount of white, spread over a larger, fainter disc
    X = x * ASPECT
    boxes = np.stack([np.floor((y - 3 * r) * H), np.ceil((y + 3 * r) * H) + 1,
                      np.floor((X - 3 * r) / ASPECT * W), np.ceil((X + 3 * r) / ASPECT * W) + 1], axis=1)
    boxes = np.clip(boxes, 0, [H, H, W, W]).astype(np.intp)
    xs, ys = (np.arange(W) + 0.5) / W * ASPECT, (np.arange(H) + 0.5) / H
    inverse_z = 1 / z

    def value(k, rows, cols):
        d2 = ((xs[cols] - X[k]) ** 2 + (ys[rows] - y[k]) ** 2) / r[k] ** 2
        return alpha[k] * np.exp(-d2) * (px.inverse_depth[rows, cols] < inverse_z[k])

    a = np.minimum(_splat(H, W, boxes, value), 1)[None]
    return image * (1 - a) + np.float32(245) * a
