"""SynthCity under fog, night, rain and snow: the same scenes and labels, changed as physics says.

The oracles are independent of the weather code: the clear render and the label (which weather must not
change), Koschmieder's law computed here from the depth map, the ground plane's depth computed here from the
camera, world points computed here from depth and camera for the night's lamps, the sky's airlight read off the
fog image itself, and plain image statistics (contrast, brightness) whose direction physics fixes.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from segformer_bench.data import build_dataset
from segformer_bench.data.synthcity import ROAD, SIDEWALK, SKY, TERRAIN, SynthCity, Weather, render
from segformer_bench.errors import UserError

SIZE = (96, 192)
WEATHER = ("fog", "night", "rain", "snow")
FOG_BETA = {1: 0.005, 3: 0.02, 5: 0.06}  # the documented extinction per level, 1/m


def luminance(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def noiseless(index: int, split: str = "val"):
    """Scene `index` without the scene's own sensor noise, and the seed SynthCity gives its weather."""
    ds = SynthCity(split, size=SIZE)
    return dataclasses.replace(ds.scene(index), sensor_noise=0.0), (0, {"train": 0, "val": 1, "test": 2}[split], index)


@pytest.mark.parametrize("condition", WEATHER)
def test_labels_are_the_clear_scenes_at_every_level(condition):
    clear = SynthCity("val", size=SIZE, length=3)
    for level in (1, 3, 5):
        ds = SynthCity("val", size=SIZE, length=3, condition=condition, level=level)
        for i in range(3):
            image, label = ds.load(i)
            clear_image, clear_label = clear.load(i)
            assert np.array_equal(label, clear_label), (condition, level, i)
            assert not np.array_equal(image, clear_image), (condition, level, i)


def test_conditions_are_deterministic_and_differ_by_seed_level_and_index():
    for condition in WEATHER:
        a = SynthCity("val", size=SIZE, condition=condition, level=4).load(2)[0]
        assert np.array_equal(a, SynthCity("val", size=SIZE, condition=condition, level=4).load(2)[0])
        assert not np.array_equal(a, SynthCity("val", size=SIZE, condition=condition, level=4, seed=1).load(2)[0])
        assert not np.array_equal(a, SynthCity("val", size=SIZE, condition=condition, level=2).load(2)[0])


def test_clear_is_the_plain_dataset_whatever_the_level():
    plain = SynthCity("val", size=SIZE)
    for i in range(3):
        image, label = plain.load(i)
        for kwargs in ({"condition": "clear"}, {"condition": "clear", "level": 5}):
            again = SynthCity("val", size=SIZE, **kwargs).load(i)
            assert np.array_equal(image, again[0]) and np.array_equal(label, again[1])
    via_options = build_dataset("synthcity", "val", size=list(SIZE), condition="fog", level=1).load(0)
    assert np.array_equal(via_options[0], SynthCity("val", size=SIZE, condition="fog", level=1).load(0)[0])


def test_depth_is_the_ground_planes_on_the_road_and_infinite_only_in_the_sky():
    for i in range(4):
        scene, _ = noiseless(i)
        image, label, depth = render(scene, SIZE, depth=True)
        assert np.array_equal(image, render(scene, SIZE)[0])  # asking for depth changes nothing
        assert np.array_equal(np.isinf(depth), label == SKY)
        cam = scene.camera  # a road pixel sees the plane Y = 0: Z = focal · height / (y − horizon), by hand
        y = (np.arange(SIZE[0]) + 0.5) / SIZE[0]
        rows, cols = np.nonzero((label == ROAD) & (y[:, None] > cam.horizon + 0.05))
        expected = cam.focal * cam.height / (y[rows] - cam.horizon)
        np.testing.assert_allclose(depth[rows, cols], expected, rtol=2e-3)


@pytest.mark.parametrize("level", [1, 3, 5])
def test_fog_follows_koschmieders_law_per_pixel(level):
    beta = FOG_BETA[level]
    for i in range(3):
        scene, seed = noiseless(i)
        clear, label, depth = render(scene, SIZE, depth=True)
        fog = render(scene, SIZE, Weather("fog", level, seed))[0].astype(np.float64)
        sky = np.isinf(depth)
        assert sky.any()
        airlight = fog[sky]  # t = 0 in the sky: it is the atmospheric light, quantised
        assert (airlight == airlight[0]).all()
        a = airlight[0] + 0.5
        t = np.exp(-beta * depth)[..., None]
        expected = clear * t + a * (1 - t)
        assert np.abs(fog - expected).max() < 1.5, (level, i)


def test_fog_lowers_the_contrast_as_the_level_rises():
    """Local contrast (the mean luminance step between neighbouring pixels, off the sky) falls with every level.
    (The global spread of luminance need not: fog turns the far half of a street bright while the near half
    stays dark.)"""
    def contrast(level: int | None) -> float:
        steps = []
        for i in range(6):
            ds = SynthCity("val", size=SIZE, **({} if level is None else {"condition": "fog", "level": level}))
            image, label = ds.load(i)
            lum, ground = luminance(image), label != SKY
            across = np.abs(np.diff(lum, axis=1))[ground[:, 1:] & ground[:, :-1]]
            down = np.abs(np.diff(lum, axis=0))[ground[1:] & ground[:-1]]
            steps.append(np.concatenate([across, down]).mean())
        return float(np.mean(steps))

    values = [contrast(None)] + [contrast(level) for level in (1, 2, 3, 4, 5)]
    assert all(a > b for a, b in zip(values, values[1:], strict=False)), values


def test_night_is_dark_but_bright_at_and_around_its_lamps():
    means = {None: [], 1: [], 3: [], 5: []}
    lamps_seen = 0
    for i in range(6):
        scene, seed = noiseless(i)
        clear, label, depth = render(scene, SIZE, depth=True)
        means[None].append(luminance(clear).mean())
        for level in (1, 3, 5):
            means[level].append(luminance(render(scene, SIZE, Weather("night", level, seed))[0]).mean())
        night = luminance(render(scene, SIZE, Weather("night", 1, seed))[0])
        H, W = SIZE
        for light in scene.lights:  # a lamp not hidden by something nearer is far brighter than the night
            r, c = min(H - 1, int(light.y * H)), min(W - 1, int(light.x * W))
            if 0 <= light.y < 1 and 0 <= light.x < 1 and depth[r, c] > light.z - 0.5 and light.power > 0.5:
                lamps_seen += 1
                assert night[r, c] > 2 * np.median(night) + 40, (i, light)
    assert lamps_seen >= 3
    m = {k: float(np.mean(v)) for k, v in means.items()}
    assert m[None] > 2 * m[1] and m[1] > m[3] > m[5], m


def world_distance(light, cam, X, Y, Z) -> np.ndarray:
    """Metres from each world point (X, Y, Z) to `light`, placed in 3-D from its scene point and depth."""
    lz = light.z
    lx, ly = (light.x * 2.0 - cam.cx) / cam.focal * lz, cam.height + (cam.horizon - light.y) / cam.focal * lz
    return np.sqrt((X - lx) ** 2 + (Y - ly) ** 2 + (Z - lz) ** 2)


def test_street_lamps_light_the_surfaces_near_them():
    """The night/clear ratio of pixels whose world point (from depth and camera, by hand) is within 6 m of a
    street lamp is well above that of pixels more than 40 m from every light."""
    near_ratio, far_ratio = [], []
    for i in range(12):
        scene, seed = noiseless(i)
        clear, label, depth = render(scene, SIZE, depth=True)
        lamps = [light for light in scene.lights if light.power > 1]
        if not lamps:
            continue
        night = luminance(render(scene, SIZE, Weather("night", 1, seed))[0])
        cam = scene.camera
        H, W = SIZE
        x = ((np.arange(W) + 0.5) / W * 2.0 - cam.cx) / cam.focal  # X/Z per column (the scene is 2 heights wide)
        y = (cam.horizon - (np.arange(H) + 0.5) / H) / cam.focal  # (Y − height)/Z per row
        finite = np.isfinite(depth)
        Z = np.where(finite, depth, 1e6)
        X, Y = x[None, :] * Z, cam.height + y[:, None] * Z

        near = np.zeros(SIZE, bool)
        for lamp in lamps:
            near |= world_distance(lamp, cam, X, Y, Z) < 6
        far = np.ones(SIZE, bool)
        for light in scene.lights:
            far &= world_distance(light, cam, X, Y, Z) > 40
        lit = luminance(clear) > 20
        for mask, out in ((near & finite & lit, near_ratio), (far & finite & lit, far_ratio)):
            if mask.sum() > 20:
                out.append(float(night[mask].mean() / luminance(clear)[mask].mean()))
    assert len(near_ratio) >= 3 and len(far_ratio) >= 3
    assert np.mean(near_ratio) > 2 * np.mean(far_ratio), (near_ratio, far_ratio)


def test_rain_darkens_the_road_and_falls_in_streaks():
    road_clear, road_rain, streaked = [], [], {1: [], 5: []}
    for i in range(6):
        scene, seed = noiseless(i)
        clear, label = render(scene, SIZE)
        road = label == ROAD
        road_clear.append(luminance(clear)[road].mean())
        road_rain.append(luminance(render(scene, SIZE, Weather("rain", 3, seed))[0])[road].mean())
        for level in (1, 5):  # without streaks the rainy sky is one grey (t = 0): every other pixel is a streak
            sky = render(scene, SIZE, Weather("rain", level, seed))[0][label == SKY]
            values, counts = np.unique(sky, axis=0, return_counts=True)
            streaked[level].append(1 - counts.max() / counts.sum())
    assert np.mean(road_rain) < 0.85 * np.mean(road_clear), (road_clear, road_rain)
    assert np.mean(streaked[1]) > 0.002 and np.mean(streaked[5]) > 2 * np.mean(streaked[1]), streaked


def test_snow_whitens_horizontal_ground_and_brightens_the_sky():
    for i in range(4):
        scene, seed = noiseless(i)
        clear, label = render(scene, SIZE)
        snow = render(scene, SIZE, Weather("snow", 3, seed))[0]
        for cls in (ROAD, SIDEWALK, TERRAIN):
            mask = label == cls
            if mask.sum() > 50:
                assert luminance(snow)[mask].mean() > luminance(clear)[mask].mean() + 10, (i, cls)
        sky_before, sky = luminance(clear)[label == SKY].mean(), luminance(snow)[label == SKY].mean()
        assert sky > 220 and sky > min(sky_before + 10, 230), (i, sky_before, sky)  # a bright, diffuse sky
        grey = np.abs(snow.astype(float) - snow.mean(axis=2, keepdims=True)).mean()
        assert grey < np.abs(clear.astype(float) - clear.mean(axis=2, keepdims=True)).mean()  # less colourful


@pytest.mark.parametrize("condition", WEATHER)
def test_a_scene_looks_the_same_at_twice_the_size(condition):
    """Blocks of 8×8 pixels at 1× against blocks of 16×16 at 2× (the same scene area): as close as clear."""
    def blocks(image: np.ndarray, k: int) -> np.ndarray:
        lum = luminance(image)
        return lum.reshape(lum.shape[0] // k, k, lum.shape[1] // k, k).mean(axis=(1, 3))

    def gap(kwargs) -> float:
        gaps = []
        for i in (1, 3, 5):
            small, big = (SynthCity("val", size=s, **kwargs).load(i)[0] for s in (SIZE, (2 * SIZE[0], 2 * SIZE[1])))
            gaps.append(np.abs(blocks(small, 8) - blocks(big, 16)).mean())
        return float(np.mean(gaps))

    for level in (1, 5):
        assert gap({"condition": condition, "level": level}) < 2 * gap({}) + 0.5, (condition, level)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"condition": "haze"}, "no condition 'haze'; choose one of clear, fog, night, rain, snow"),
    ({"condition": None}, "no condition None"),
    ({"condition": "fog", "level": 0}, "level must be an integer severity from 1 (mild) to 5 (hardest)"),
    ({"condition": "fog", "level": 6}, "got 6"),
    ({"condition": "snow", "level": 2.5}, "got 2.5"),
    ({"condition": "rain", "level": "3"}, "got '3'"),
    ({"condition": "night", "level": True}, "got True"),
])
def test_bad_conditions_and_levels_are_one_line_user_errors(kwargs, message):
    for make in (lambda: SynthCity("val", size=SIZE, **kwargs), lambda: build_dataset("synthcity", "val", **kwargs)):
        with pytest.raises(UserError) as info:
            make()
        assert message in str(info.value) and "\n" not in str(info.value)


def test_the_cache_keys_on_condition_and_level(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGFORMER_BENCH_CACHE_DIR", str(tmp_path))
    kinds = [{}, {"condition": "fog", "level": 1}, {"condition": "fog", "level": 5}, {"condition": "night"}]
    for kwargs in kinds:
        SynthCity("val", size=SIZE, length=2, cache=True, **kwargs).load(1)
    assert len(list(tmp_path.rglob("000001.npz"))) == len(kinds)  # one file each, none overwritten
    for kwargs in kinds:  # read back from the cache: each is its own condition's image, as rendered afresh
        cached = SynthCity("val", size=SIZE, length=2, cache=True, **kwargs).load(1)[0]
        assert np.array_equal(cached, SynthCity("val", size=SIZE, length=2, **kwargs).load(1)[0]), kwargs


@pytest.mark.slow
def test_a_model_trained_in_clear_weather_does_worse_in_thicker_fog(tmp_path):
    import segformer_bench as sb
    from segformer_bench.engine.evaluate import EVAL_PRESETS, evaluate
    from segformer_bench.engine.train import train
    from segformer_bench.models.segmenter import as_segmenter
    from tests.helpers import TINY_TRAIN

    config = dataclasses.replace(TINY_TRAIN, iters=150, batch_size=4, lr=6e-4, warmup_iters=10,
                                 dataset_options={"size": [64, 128], "length": 64}, checkpoint_interval=150)
    model = as_segmenter(sb.load_model(train(config, tmp_path / "train", progress=False, log=lambda _: None)))

    def miou(**options) -> float:
        data = build_dataset("synthcity", "val", size=[64, 128], length=16, **options)
        return evaluate(model, data, EVAL_PRESETS["whole"]).metrics["mIoU"]

    clear, light, thick = miou(), miou(condition="fog", level=1), miou(condition="fog", level=5)
    assert clear > 0.15, clear  # it learned something
    assert clear > light > thick, (clear, light, thick)
