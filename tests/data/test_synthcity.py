"""SynthCity: deterministic, resolution-independent street scenes that colour alone does not solve.

The oracles are independent of the renderer: a brute-force even-odd ray test for the polygon fill, a numeric
average for the box-filtered patterns, hand-computed pixels for the painter's algorithm and shadows, and the
2× render (a finer sampling of the same vector scene) for the 1× labels.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from segformer_bench.data import synthcity
from segformer_bench.data.base import check_sample
from segformer_bench.data.labels import CITYSCAPES_CLASSES
from segformer_bench.data.synthcity import (
    CAR,
    ROAD,
    SKY,
    Ellipse,
    Material,
    Polygon,
    Polyline,
    Scene,
    Shade,
    Shape,
    SynthCity,
    pulses,
    render,
    source_digest,
)
from segformer_bench.errors import UserError

SMALL = (128, 256)


@pytest.fixture(scope="module")
def val_samples() -> list[tuple[np.ndarray, np.ndarray]]:
    ds = SynthCity("val", size=SMALL)
    return [ds.load(i) for i in range(50)]


def test_a_sample_is_determined_by_seed_split_and_index():
    ds = SynthCity("val", size=SMALL)
    image, label = ds.load(7)
    again = SynthCity("val", size=SMALL).load(7)
    assert np.array_equal(image, again[0]) and np.array_equal(label, again[1])
    assert not np.array_equal(image, ds.load(8)[0])
    assert not np.array_equal(image, SynthCity("val", size=SMALL, seed=1).load(7)[0])


def test_splits_are_different_scenes():
    images = [SynthCity(split, size=SMALL).load(0)[0] for split in ("train", "val", "test")]
    for a in range(3):
        for b in range(a + 1, 3):
            assert not np.array_equal(images[a], images[b])


def test_samples_follow_the_dataset_interface():
    ds = SynthCity("val", size=SMALL)
    assert (len(ds), len(SynthCity("train")), len(SynthCity("test"))) == (500, 2975, 1525)
    assert len(SynthCity("train", length=3)) == 3
    assert ds.info.num_classes == 19 and ds.info.class_names == CITYSCAPES_CLASSES
    sample = ds[42]
    assert sample["name"] == "synthcity/val/000042"
    assert sample["image"].shape == (*SMALL, 3) and sample["image"].dtype == np.uint8
    assert sample["label"].shape == SMALL and sample["label"].dtype == np.uint8
    assert sample["label"].max() <= 18  # every pixel is one of the 19 classes; nothing is left unlabelled
    check_sample(sample["image"], sample["label"], 19, sample["name"])
    with pytest.raises(IndexError):
        ds[500]


@pytest.mark.parametrize("size", [(37, 101), (32, 32), (65, 33)])
def test_odd_and_non_square_sizes_render(size):
    image, label = SynthCity("test", size=size).load(3)
    assert image.shape == (*size, 3) and label.shape == size
    check_sample(image, label, 19, "odd size")


@pytest.mark.parametrize("kwargs, message", [
    (dict(split="training"), "no split 'training'"),
    (dict(size=(16, 64)), "at least 32"),
    (dict(size=(64.5, 128)), "at least 32"),
    (dict(length=-1), "non-negative integer"),
    (dict(seed=-3), "non-negative integer"),
])
def test_bad_arguments_are_user_errors(kwargs, message):
    with pytest.raises(UserError, match=message):
        SynthCity(**kwargs)


def test_labels_do_not_depend_on_the_resolution():
    ds = SynthCity("val", size=(256, 512))
    for index in range(3):
        scene = ds.scene(index)
        image1, label1 = render(scene, (256, 512))
        image2, label2 = render(scene, (512, 1024))
        # A 1× pixel centre sits between four 2× centres; either diagonal neighbour must agree almost everywhere.
        for sub in (label2[0::2, 0::2], label2[1::2, 1::2]):
            assert (label1 == sub).mean() >= 0.97
        for c in np.unique(label1):  # and each class looks the same: its mean colour barely moves
            if (label1 == c).sum() >= 1000:
                assert np.abs(image1[label1 == c].mean(0) - image2[label2 == c].mean(0)).max() < 6


def test_every_class_appears_in_50_val_scenes(val_samples):
    seen = np.zeros(256, int)
    for _, label in val_samples:
        seen += np.bincount(label.ravel(), minlength=256) > 0
    missing = [name for name, n in zip(CITYSCAPES_CLASSES, seen, strict=False) if n == 0]
    assert not missing
    assert seen[255] == 0


def _bins(image: np.ndarray, levels: int = 16) -> np.ndarray:
    q = (image // (256 // levels)).astype(np.int64)
    return (q[..., 0] * levels + q[..., 1]) * levels + q[..., 2]


def test_colour_alone_does_not_solve_the_task(val_samples):
    """Fit on 20 train scenes, score on 10 val scenes."""
    train = SynthCity("train", size=SMALL)
    samples = [train.load(i) for i in range(20)]
    val_images = [image for image, _ in val_samples[:10]]
    pixels = np.concatenate([image.reshape(-1, 3) for image, _ in samples]).astype(float)
    labels = np.concatenate([label.ravel() for _, label in samples])
    test_pixels = np.concatenate([image.reshape(-1, 3) for image in val_images]).astype(float)
    test_labels = np.concatenate([label.ravel() for _, label in val_samples[:10]])

    # nearest class mean in RGB
    present = np.unique(labels)
    means = np.stack([pixels[labels == c].mean(0) for c in present])
    nearest = present[((means**2).sum(1) - 2 * test_pixels @ means.T).argmin(1)]  # |x - m|² up to |x|²
    assert (nearest == test_labels).mean() < 0.5

    # the best any colour rule can do: the majority class of each 16³ colour bin seen in training
    votes = np.zeros((16**3, 19))
    np.add.at(votes, (_bins(np.concatenate([image for image, _ in samples])).ravel(), labels), 1)
    lookup = votes.argmax(1)
    accuracy = (lookup[np.concatenate([_bins(image).ravel() for image in val_images])] == test_labels).mean()
    majority = np.bincount(labels).max() / labels.size
    assert majority < accuracy < 0.7  # colour helps (sky, foliage) but is far from enough


def _inside_even_odd(rings, x: float, y: float) -> bool:
    """Brute-force ray casting: count edge crossings of the ray from (x, y) to the right."""
    inside = False
    for ring in rings:
        for (x0, y0), (x1, y1) in zip(ring, np.roll(ring, -1, axis=0), strict=True):
            if (y0 <= y) != (y1 <= y) and x < x0 + (y - y0) * (x1 - x0) / (y1 - y0):
                inside = not inside
    return inside


def test_polygon_fill_matches_brute_force_ray_casting():
    rng = np.random.default_rng(0)
    xs, ys = (np.arange(40) + 0.5) / 40, (np.arange(30) + 0.5) / 30
    angles = np.sort(rng.uniform(0, 2 * np.pi, 9))
    star = np.column_stack([0.5 + rng.uniform(0.1, 0.45, 9) * np.cos(angles),
                            0.5 + rng.uniform(0.1, 0.45, 9) * np.sin(angles)])  # non-convex
    hole = np.array([(0.45, 0.45), (0.55, 0.45), (0.55, 0.55), (0.45, 0.55)])
    crossing = rng.uniform(-0.2, 1.2, (7, 2))  # self-intersecting, partly outside the box
    for rings in ((star,), (star, hole), (crossing,)):
        expected = np.array([[_inside_even_odd(rings, x, y) for x in xs] for y in ys])
        assert np.array_equal(Polygon(rings).mask(xs, ys), expected)


def test_ellipse_and_polyline_masks():
    xs, ys = (np.arange(64) + 0.5) / 64, (np.arange(32) + 0.5) / 32
    X, Y = np.meshgrid(xs, ys)
    ellipse = Ellipse((0.5, 0.4), (0.3, 0.2)).mask(xs, ys)
    assert np.array_equal(ellipse, ((X - 0.5) / 0.3) ** 2 + ((Y - 0.4) / 0.2) ** 2 < 1)
    # a horizontal line 0.1 image heights wide: |y - 0.5| < 0.05 between its ends, round caps beyond
    line = Polyline(np.array([(0.25, 0.5), (0.75, 0.5)]), 0.1).mask(xs, ys)
    assert np.array_equal(line[:, (xs > 0.25) & (xs < 0.75)], (np.abs(Y - 0.5) < 0.05)[:, (xs > 0.25) & (xs < 0.75)])
    assert not line[:, xs < 0.25 - 0.05 / 2].any()  # a cap reaches half the width, i.e. 0.025 scene widths


def _rect(x0, y0, x1, y1) -> Polygon:
    return Polygon((np.array([(x0, y0), (x1, y0), (x1, y1), (x0, y1)]),))


def test_render_paints_back_to_front_and_shades_only_what_is_beneath():
    flat = (0.0, 0.0, 0.0)  # no texture
    scene = Scene((Shape(_rect(0, 0, 1, 1), SKY, Material((100, 100, 100), flat)),
                   Shape(_rect(0.25, 0.25, 0.75, 0.75), CAR, Material((200, 40, 0), flat)),
                   Shade(_rect(0, 0, 0.5, 1), 0.5),
                   Shape(_rect(0, 0, 0.125, 0.125), ROAD, Material((10, 20, 30), flat, light=2.0))),
                  haze=(0, 0, 0), gain=(1.0, 1.0, 1.0), noise_seed=0, sensor_noise=0.0)
    image, label = render(scene, (40, 80))
    assert label[20, 40] == CAR and label[2, 2] == ROAD and label[2, 70] == SKY
    assert image[20, 70].tolist() == [100, 100, 100] and image[30, 5].tolist() == [50, 50, 50]  # shaded sky
    assert image[20, 50].tolist() == [200, 40, 0] and image[20, 25].tolist() == [100, 20, 0]  # shaded car
    assert image[2, 2].tolist() == [20, 40, 60]  # painted after the shade: lit, not shaded
    uncovered, nothing = render(Scene((Shape(_rect(0, 0, 0.5, 1), SKY, Material((1, 2, 3), flat)),),
                                      (0, 0, 0), (1, 1, 1), 0, 0.0), (32, 32))
    assert (nothing[:, 16:] == 255).all() and (uncovered[:, 16:] == 0).all()  # no shape: black, ignored


@pytest.mark.parametrize("period, duty", [(1.0, 0.5), (0.3, 0.1), (2.5, 0.8)])
def test_patterns_are_box_filtered_exactly(period, duty):
    t = np.linspace(-3, 7, 101).astype(np.float32)
    for footprint in (0.05, 0.4, 3.0):
        s = t[:, None] + np.linspace(-footprint / 2, footprint / 2, 20001)[None, :]
        expected = ((s % period) < duty * period).mean(axis=1)
        got = pulses(t, period, duty, np.full_like(t, footprint))
        assert np.abs(got - expected).max() < 2e-3


def test_cache_returns_the_rendered_sample_and_survives_a_damaged_file(tmp_path, monkeypatch):
    from segformer_bench.data.synthcity import SynthCity

    monkeypatch.setenv("SEGFORMER_BENCH_CACHE_DIR", str(tmp_path))
    plain = SynthCity("val", size=(32, 64), length=3)
    cached = SynthCity("val", size=(32, 64), length=3, cache=True)
    first = cached.load(1)
    files = list(tmp_path.rglob("*.npz"))
    assert [f.name for f in files] == ["000001.npz"] and "val-0-32x64" in str(files[0])
    for again in (first, cached.load(1)):  # rendered, then read back from the file
        assert all(np.array_equal(a, b) for a, b in zip(again, plain.load(1), strict=True))
    files[0].write_bytes(b"not an npz")
    assert np.array_equal(cached.load(1)[0], plain.load(1)[0])  # re-rendered and rewritten
    assert np.array_equal(np.load(files[0])["label"], plain.load(1)[1])
    other = SynthCity("val", size=(48, 96), length=3, cache=True)  # another size: another cache directory
    assert other.load(1)[0].shape == (48, 96, 3) and len(list(tmp_path.rglob("*.npz"))) == 2
    with pytest.raises(UserError, match="cache must be true or false"):
        SynthCity("val", cache="yes")


def test_the_cache_key_covers_every_module_of_the_package(tmp_path, monkeypatch):
    """A change to any module (here the geometry), a renamed or an added module starts a fresh cache."""
    package = Path(synthcity.__file__).parent
    copy = tmp_path / "synthcity"
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__"))
    key = source_digest(package)
    assert source_digest(copy) == key  # what counts is the source, not where the package lies
    geometry = copy / "geometry.py"
    source = bytearray(geometry.read_bytes())
    source[len(source) // 2] ^= 1  # one byte
    geometry.write_bytes(bytes(source))
    assert source_digest(copy) != key
    source[len(source) // 2] ^= 1
    geometry.write_bytes(bytes(source))
    assert source_digest(copy) == key
    (copy / "palettes.py").rename(copy / "colors.py")
    assert source_digest(copy) != key
    (copy / "colors.py").rename(copy / "palettes.py")
    (copy / "extra.py").write_bytes(b"")
    assert source_digest(copy) != key
    monkeypatch.setenv("SEGFORMER_BENCH_CACHE_DIR", str(tmp_path / "cache"))
    assert SynthCity("val", size=(32, 64), cache=True).cache.parent.name == key  # the key the cache uses
