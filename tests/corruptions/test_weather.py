"""Weather corruptions (snow, frost, fog, spatter): the fast and torch backends against imagecorruptions itself.

The oracle is the reference backend (imagecorruptions 1.1.2 seeded through NumPy's legacy global state). The fast
backend must be bit-identical to it. The torch backend draws frost's and fog's randomness exactly as the reference
does; snow's and spatter's normal fields come from a device generator, so their arithmetic is checked on the
reference's own fields and their randomness against the reference's distribution.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from segformer_bench.corruptions import fast_weather as fw
from segformer_bench.corruptions import torch_weather as tw
from segformer_bench.corruptions.reference import reference_corrupt

NAMES = ["snow", "frost", "fog", "spatter"]
SEVERITIES = [1, 2, 3, 4, 5]
SHAPES = [(32, 32), (37, 53), (64, 96), (45, 120)]
SEEDS = [0, 2024, 2**32 - 1]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _image(shape: tuple[int, int], kind: int = 0) -> np.ndarray:
    """A test image: random pixels (kind 0) or smooth colour ramps with a dark and a saturated corner (kind 1)."""
    h, w = shape
    if kind == 0:
        return np.random.default_rng(h * 1000 + w).integers(0, 256, (h, w, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    ramps = [xx * 255 // (w - 1), yy * 255 // (h - 1), (xx + yy) * 255 // (h + w - 2)]
    return np.stack(ramps, axis=-1).astype(np.uint8)


def _reference(image: np.ndarray, name: str, severity: int, seed: int) -> np.ndarray:
    # spatter's liquid mode divides 0 by 0 when its mask is empty (tested below); NumPy warns, the image stays.
    with np.errstate(invalid="ignore", divide="ignore"):
        return reference_corrupt(image, name, severity, seed)


def _to_torch(images: list[np.ndarray], device: torch.device | str = "cpu") -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous().to(device)


def _to_numpy(batch: torch.Tensor) -> np.ndarray:
    return batch.permute(0, 2, 3, 1).cpu().numpy()


def _assert_close(actual: np.ndarray, expected: np.ndarray, min_identical: float = 0.995, max_diff: int = 1) -> None:
    assert actual.shape == expected.shape and actual.dtype == expected.dtype == np.uint8
    diff = np.abs(actual.astype(np.int16) - expected.astype(np.int16))
    assert diff.max() <= max_diff, f"a value differs by {diff.max()}"
    assert (diff == 0).mean() >= min_identical, f"only {(diff == 0).mean():.4%} of values identical"


# /////////////// fast backend: bit-identical ///////////////


@pytest.mark.parametrize("severity", SEVERITIES)
@pytest.mark.parametrize("name", NAMES)
def test_fast_is_bit_identical_to_reference(name: str, severity: int) -> None:
    for i, shape in enumerate(SHAPES):
        image = _image(shape, kind=i % 2)
        for seed in SEEDS:
            out = fw.FAST[name](image, severity, seed)
            expected = _reference(image, name, severity, seed)
            assert out.dtype == np.uint8 and out.shape == image.shape
            assert np.array_equal(out, expected), (name, severity, shape, seed)


@pytest.mark.parametrize("name", NAMES)
def test_fast_on_a_larger_odd_image(name: str) -> None:
    # taller than wide (fog's map and frost's scaling follow the height), larger than frost's smaller textures
    image = _image((331, 217), kind=1)
    for severity in (1, 4):
        assert np.array_equal(fw.FAST[name](image, severity, 7), _reference(image, name, severity, 7))


def test_spatter_with_an_empty_mask_is_black_like_the_reference() -> None:
    # At severity 1 a 32 × 32 liquid layer can lie below its threshold everywhere: the reference normalises an
    # all-zero mask by its maximum, 0 / 0, and NumPy casts the NaNs to 0. Seed 35 is such a case.
    image = _image((32, 32))
    expected = _reference(image, "spatter", 1, 35)
    assert not expected.any()
    assert np.array_equal(fw.spatter(image, 1, 35), expected)
    c = fw._SPATTER[0]
    noise = np.random.RandomState(35).normal(size=(32, 32), loc=c[0], scale=c[1])
    out = tw.spatter_from_field(_to_torch([image]), 1, torch.from_numpy(noise)[None])
    assert not out.any()


def test_frost_textures_come_from_the_installed_package() -> None:
    files = sorted(p.name for p in fw.frost_texture_dir().iterdir())
    assert set(fw._FROST_FILES) <= set(files)
    texture = fw.frost_texture(0, 1024, 2048)  # scaled so that it covers the image with a 10 % margin
    assert texture.shape[0] > 1024 and texture.shape[1] > 2048 and not texture.flags.writeable


# /////////////// torch backend ///////////////


@pytest.mark.parametrize("severity", SEVERITIES)
def test_torch_frost_is_bit_identical_to_reference(severity: int) -> None:
    for shape in SHAPES:
        image = _image(shape)
        out = _to_numpy(tw.frost(_to_torch([image] * len(SEEDS)), severity, SEEDS))
        for b, seed in enumerate(SEEDS):
            assert np.array_equal(out[b], _reference(image, "frost", severity, seed)), (severity, shape, seed)


@pytest.mark.parametrize("severity", SEVERITIES)
def test_torch_fog_matches_reference_to_one_level(severity: int) -> None:
    for i, shape in enumerate(SHAPES):
        image = _image(shape, kind=i % 2)
        out = _to_numpy(tw.fog(_to_torch([image] * len(SEEDS)), severity, SEEDS))
        for b, seed in enumerate(SEEDS):
            _assert_close(out[b], _reference(image, "fog", severity, seed))


@pytest.mark.parametrize("severity", SEVERITIES)
def test_torch_snow_arithmetic_on_the_reference_fields(severity: int) -> None:
    # Given the reference's own normal field and angle, only float32 rounding separates the two.
    for i, shape in enumerate(SHAPES):
        image = _image(shape, kind=i % 2)
        draws = [fw.snow_draws(np.random.RandomState(seed), shape, severity) for seed in SEEDS]
        noise = torch.from_numpy(np.stack([d[0] for d in draws]))
        out = _to_numpy(tw.snow_from_fields(_to_torch([image] * len(SEEDS)), severity, noise, [d[1] for d in draws]))
        for b, seed in enumerate(SEEDS):
            _assert_close(out[b], _reference(image, "snow", severity, seed))


@pytest.mark.parametrize("severity", SEVERITIES)
def test_torch_spatter_arithmetic_on_the_reference_field(severity: int) -> None:
    c = fw._SPATTER[severity - 1]
    for i, shape in enumerate(SHAPES):
        image = _image(shape, kind=i % 2)
        noise = np.stack([np.random.RandomState(s).normal(size=shape, loc=c[0], scale=c[1]) for s in SEEDS])
        out = _to_numpy(tw.spatter_from_field(_to_torch([image] * len(SEEDS)), severity, torch.from_numpy(noise)))
        for b, seed in enumerate(SEEDS):
            _assert_close(out[b], _reference(image, "spatter", severity, seed))


@pytest.mark.parametrize("severity", SEVERITIES)
def test_device_fields_have_the_reference_distribution(severity: int) -> None:
    # Two-sample KS test of each device field against the field the reference draws for the same seed (the fast
    # backend's draws, bit-identical to the reference's as tested above); snow's angle is U(-135, -45).
    shape, seeds = (64, 96), [0, 1, 2**32 - 1]
    snow_noise, angles = tw.snow_fields(seeds, shape, severity, "cpu")
    spatter_noise = tw.spatter_field(seeds, shape, severity, "cpu")
    c = fw._SPATTER[severity - 1]
    for b, seed in enumerate(seeds):
        reference_snow, _ = fw.snow_draws(np.random.RandomState(seed), shape, severity)
        reference_spatter = np.random.RandomState(seed).normal(size=shape, loc=c[0], scale=c[1])
        for field, reference in ((snow_noise[b], reference_snow), (spatter_noise[b], reference_spatter)):
            assert stats.ks_2samp(field.double().ravel().numpy(), reference.ravel()).pvalue > 1e-3
        assert -135 <= angles[b] < -45
    assert not torch.equal(snow_noise[0], snow_noise[1]) and len(set(angles)) == len(seeds)


@pytest.mark.parametrize("name", ["snow", "spatter"])
def test_torch_snow_and_spatter_outputs_match_reference_statistics(name: str) -> None:
    # Per-image mean and standard deviation of the corrupted image over 12 seeds: the two backends' averages must
    # agree within 4.5 standard errors (seed-to-seed spread), at every severity.
    image = _image((48, 64), kind=1)
    seeds = list(range(100, 112))
    batch = _to_torch([image] * len(seeds))
    for severity in SEVERITIES:
        ref = np.stack([_reference(image, name, severity, s) for s in seeds]).astype(np.float64)
        out = _to_numpy(tw.TORCH[name](batch, severity, seeds)).astype(np.float64)
        for statistic in (np.mean, np.std):
            a, b = statistic(ref, axis=(1, 2, 3)), statistic(out, axis=(1, 2, 3))
            stderr = np.sqrt((a.var(ddof=1) + b.var(ddof=1)) / len(seeds)) + 1e-6
            assert abs(a.mean() - b.mean()) < 4.5 * stderr, (name, severity, statistic.__name__, a.mean(), b.mean())


@pytest.mark.parametrize("name", NAMES)
def test_torch_result_does_not_depend_on_the_batch(name: str) -> None:
    images = [_image((40, 56), kind=0), _image((40, 56), kind=1), _image((40, 56), kind=0)[::-1].copy()]
    seeds = [11, 22, 33]
    for severity in (1, 4):
        alone = tw.TORCH[name](_to_torch(images[:1]), severity, seeds[:1])
        batch = tw.TORCH[name](_to_torch(images[::-1]), severity, seeds[::-1])
        assert torch.equal(alone[0], batch[2]), (name, severity)


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_output_other_seed_other_output(name: str) -> None:
    image = _image((37, 53), kind=1)
    batch = _to_torch([image])
    for severity in (2, 5):
        fast = fw.FAST[name](image, severity, 5)
        assert np.array_equal(fast, fw.FAST[name](image, severity, 5))
        assert not np.array_equal(fast, fw.FAST[name](image, severity, 6))
        out = tw.TORCH[name](batch, severity, [5])
        assert out.dtype == torch.uint8 and out.shape == batch.shape
        assert torch.equal(out, tw.TORCH[name](batch, severity, [5]))
        assert not torch.equal(out, tw.TORCH[name](batch, severity, [6]))


def test_torch_rejects_a_wrong_batch() -> None:
    batch = _to_torch([_image((32, 32))])
    with pytest.raises(ValueError, match="one seed per image"):
        tw.fog(batch, 1, [1, 2])
    with pytest.raises(ValueError, match="uint8"):
        tw.frost(batch.float(), 1, [1])


@pytest.mark.gpu
def test_torch_on_cuda_matches_reference(device: torch.device) -> None:
    image = _image((64, 96), kind=1)
    batch = _to_torch([image] * len(SEEDS), device)
    for severity in SEVERITIES:
        frost = _to_numpy(tw.frost(batch, severity, SEEDS))
        fog = _to_numpy(tw.fog(batch, severity, SEEDS))
        draws = [fw.snow_draws(np.random.RandomState(seed), image.shape[:2], severity) for seed in SEEDS]
        noise = torch.from_numpy(np.stack([d[0] for d in draws])).to(device)
        snow = _to_numpy(tw.snow_from_fields(batch, severity, noise, [d[1] for d in draws]))
        c = fw._SPATTER[severity - 1]
        noise = np.stack([np.random.RandomState(s).normal(size=image.shape[:2], loc=c[0], scale=c[1]) for s in SEEDS])
        spatter = _to_numpy(tw.spatter_from_field(batch, severity, torch.from_numpy(noise).to(device)))
        for b, seed in enumerate(SEEDS):
            assert np.array_equal(frost[b], _reference(image, "frost", severity, seed))
            _assert_close(fog[b], _reference(image, "fog", severity, seed))
            _assert_close(snow[b], _reference(image, "snow", severity, seed))
            _assert_close(spatter[b], _reference(image, "spatter", severity, seed))
        for name in ("snow", "spatter"):  # device fields: batch independence on the GPU too
            alone = tw.TORCH[name](batch[:1], severity, SEEDS[:1])
            assert torch.equal(alone[0], tw.TORCH[name](batch.flip(0), severity, SEEDS[::-1])[-1])
