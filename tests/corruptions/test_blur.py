"""Blur corruptions (glass, motion, defocus, Gaussian, zoom): fast and torch backends against imagecorruptions.

The oracle is imagecorruptions 1.1.2 itself (the reference backend) and, for glass blur's pixel loop, a literal
port of that loop that runs on images too small for the package. Test images mix flat regions (where the
reference's truncation sits on a knife edge), gradients and noise.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from scipy import ndimage

from segformer_bench.corruptions import fast_blur, torch_blur
from segformer_bench.corruptions.kernels import motion_taps
from segformer_bench.corruptions.reference import reference_corrupt
from segformer_bench.corruptions.torch_ops import gaussian_filter

NAMES = ("glass_blur", "motion_blur", "defocus_blur", "gaussian_blur", "zoom_blur")
RANDOM = ("glass_blur", "motion_blur")
SHAPES = ((32, 32), (37, 53), (64, 96), (45, 120))


@functools.cache
def _image(shape: tuple[int, int], seed: int) -> np.ndarray:
    """H×W×3 uint8: a colour gradient with flat blocks (0, 255, mid-grey) and a noisy patch."""
    H, W = shape
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W]
    x = np.stack([255 * yy / (H - 1), 255 * xx / (W - 1), 128 + 100 * np.sin(xx / 5.0 + yy / 7.0)], axis=-1)
    x[: H // 4, : W // 3] = 255
    x[H // 4 : H // 2, : W // 3] = 0
    x[H // 2 :, W // 2 :] = rng.integers(0, 256, 3)
    x[: H // 3, W // 3 : 2 * W // 3] += rng.normal(0, 25, (H // 3, 2 * W // 3 - W // 3, 3))
    return np.clip(x, 0, 255).astype(np.uint8)


@functools.cache
def _reference(name: str, shape: tuple[int, int], severity: int, seed: int) -> np.ndarray:
    return reference_corrupt(_image(shape, seed % 1000), name, severity, seed)


def _cases():
    """(name, shape, severity, seed): every corruption × severity on every shape; seeds vary with the case."""
    for name in NAMES:
        for k, shape in enumerate(SHAPES):
            for severity in range(1, 6):
                seed = (2**32 - 1) if (k, severity) == (0, 5) else 1000 * k + severity
                yield name, shape, severity, seed


# /////////////// glass blur's pixel loop ///////////////


def _glass_loop(x: np.ndarray, delta: int, iterations: int, rs: np.random.RandomState) -> np.ndarray:
    """imagecorruptions' shuffle loop, verbatim but for the random state."""
    x = x.copy()
    H, W = x.shape[:2]
    for _ in range(iterations):
        for h in range(H - delta, delta, -1):
            for w in range(W - delta, delta, -1):
                dx, dy = rs.randint(-delta, delta, size=(2,))
                h_prime, w_prime = h + dy, w + dx
                x[h, w], x[h_prime, w_prime] = x[h_prime, w_prime], x[h, w]
    return x


def _glass_gather(x: np.ndarray, delta: int, iterations: int, rs: np.random.RandomState) -> np.ndarray:
    H, W = x.shape[:2]
    index = np.arange(H * W)
    for _ in range(iterations):
        index = index[fast_blur.glass_shuffle_index((H, W), delta, fast_blur.glass_offsets(rs, (H, W), delta))]
    return x.reshape(H * W, 3)[index].reshape(x.shape)


@pytest.mark.parametrize("delta", [1, 2, 3, 4])
def test_glass_shuffle_equals_the_reference_loop(delta):
    rng = np.random.default_rng(delta)
    for shape in ((2 * delta + 1, 2 * delta + 1), (11, 9), (13, 21), (24, 17)):
        for iterations in (1, 2, 3):
            for seed in (0, 12345):
                x = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
                expected = _glass_loop(x, delta, iterations, np.random.RandomState(seed))
                got = _glass_gather(x, delta, iterations, np.random.RandomState(seed))
                np.testing.assert_array_equal(got, expected, err_msg=f"{shape=} {iterations=} {seed=}")


def test_glass_swap_is_a_copy():
    """The reference's tuple "swap" of two pixel views copies one way: x[p] ← x[p'], x[p'] unchanged."""
    x = np.arange(4 * 4 * 3, dtype=np.uint8).reshape(4, 4, 3)
    before = x.copy()
    x[1, 1], x[2, 3] = x[2, 3], x[1, 1]
    np.testing.assert_array_equal(x[1, 1], before[2, 3])
    np.testing.assert_array_equal(x[2, 3], before[2, 3])


@pytest.mark.parametrize("delta", [1, 2, 3, 4])
def test_glass_bulk_draws_continue_the_per_pixel_stream(delta):
    per_pixel = np.random.RandomState(3)
    expected = np.array([per_pixel.randint(-delta, delta, size=(2,)) for _ in range(2000)])
    bulk = np.random.RandomState(3)
    got = bulk.randint(-delta, delta, size=(2000, 2), dtype=np.int32)
    np.testing.assert_array_equal(got, expected)
    assert bulk.randint(1 << 30) == per_pixel.randint(1 << 30)  # and leave the state where the loop leaves it


# /////////////// fast backend ///////////////


@pytest.mark.parametrize("name", NAMES)
def test_fast_is_bit_identical_to_reference(name):
    for case_name, shape, severity, seed in _cases():
        if case_name != name:
            continue
        got = fast_blur.FAST[name](_image(shape, seed % 1000), severity, seed)
        expected = _reference(name, shape, severity, seed)
        assert got.dtype == np.uint8 and got.shape == expected.shape
        np.testing.assert_array_equal(got, expected, err_msg=f"{name} {shape} severity {severity} seed {seed}")


def test_scipy_fallbacks_are_exact(monkeypatch):
    """Where the NumPy Gaussian or zoom does not match SciPy (FMA builds), SciPy runs; both paths give the reference."""
    assert fast_blur.numpy_gaussian_matches_scipy()  # on this machine the NumPy paths are the ones in use
    assert fast_blur.numpy_zoom_matches_scipy()
    monkeypatch.setattr(fast_blur, "numpy_gaussian_matches_scipy", lambda: False)
    monkeypatch.setattr(fast_blur, "numpy_zoom_matches_scipy", lambda: False)
    for name, severity in (("gaussian_blur", 5), ("glass_blur", 1), ("zoom_blur", 3)):
        got = fast_blur.FAST[name](_image((37, 53), 7), severity, 7)
        np.testing.assert_array_equal(got, reference_corrupt(_image((37, 53), 7), name, severity, 7))


@pytest.mark.parametrize("sigma", [0.7, 0.9, 1, 1.1, 1.5, 2, 3, 4, 6])
def test_numpy_gaussian_matches_scipy(sigma):
    x = np.random.default_rng(0).random((41, 67, 3))
    np.testing.assert_array_equal(fast_blur.gaussian_numpy(x, sigma), fast_blur.gaussian_scipy(x, sigma))


@pytest.mark.parametrize("mode", ["nearest", "reflect"])
def test_torch_gaussian_filter_in_scipy_order_is_scipy(mode):
    """The torch backend's shared Gaussian, summed in SciPy's order in float64, is SciPy's filter bit for bit
    (also for one sigma per axis, another truncate, and a radius longer than the line)."""
    x = np.random.default_rng(1).random((2, 37, 29))
    for sigma, truncate in ((0.7, 4.0), ((1.5, 6.0), 4.0), ((0.37, 0.53), 3.0), (9, 4.0)):
        sy, sx = sigma if isinstance(sigma, tuple) else (sigma, sigma)
        expected = ndimage.gaussian_filter(x, (0, sy, sx), mode=mode, truncate=truncate)
        got = gaussian_filter(torch.from_numpy(x), sigma, mode=mode, summation="scipy", truncate=truncate)
        np.testing.assert_array_equal(got.numpy(), expected, err_msg=f"sigma {sigma} truncate {truncate}")


def test_fast_determinism():
    x = _image((45, 120), 3)
    before = x.copy()
    for name in NAMES:
        a, b = fast_blur.FAST[name](x, 3, 11), fast_blur.FAST[name](x, 3, 11)
        np.testing.assert_array_equal(x, before)  # the input is not modified
        np.testing.assert_array_equal(a, b)
        if name in RANDOM:
            assert not np.array_equal(a, fast_blur.FAST[name](x, 3, 12)), name


def test_motion_taps_stop_at_the_border():
    """41 taps on a 32-pixel-wide image: the reference stops at the first shift that reaches the border."""
    taps = motion_taps((32, 32), 20, 15, 0.0)  # horizontal: tap i shifts by i
    assert len(taps) == 32 and taps[-1][1:] == (0, -31)
    x = _image((32, 32), 5)
    seed = next(s for s in range(1000) if abs(np.random.RandomState(s).uniform(-45, 45)) < 5)
    assert len(motion_taps((32, 32), 20, 15, np.random.RandomState(seed).uniform(-45, 45))) < 41
    np.testing.assert_array_equal(fast_blur.motion_blur(x, 5, seed), reference_corrupt(x, "motion_blur", 5, seed))
    got = torch_blur.motion_blur(_to_batch([x, _image((32, 32), 6)], "cpu"), 5, [seed, 0])
    np.testing.assert_array_equal(_from_batch(got)[0], reference_corrupt(x, "motion_blur", 5, seed))


# /////////////// torch backend ///////////////


def _to_batch(images: list[np.ndarray], device) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous().to(device)


def _from_batch(x: torch.Tensor) -> np.ndarray:
    return x.permute(0, 2, 3, 1).cpu().numpy()


@pytest.mark.parametrize("name", NAMES)
def test_torch_matches_reference(name, device):
    """Bit-identical on the CPU for every blur; on any device at least the contract (≥ 99.5 % equal, off by ≤ 1).

    gaussian, glass, motion and zoom repeat the reference's float64 elementwise operations in its order; defocus
    is a float64 conv2d whose summation order differs from OpenCV's (exact on these images, ±1 possible).
    """
    for case_name, shape, severity, seed in _cases():
        if case_name != name:
            continue
        out = torch_blur.TORCH[name](_to_batch([_image(shape, seed % 1000)], device), severity, [seed])
        assert out.dtype == torch.uint8 and out.device.type == device.type
        got, expected = _from_batch(out)[0], _reference(name, shape, severity, seed)
        diff = np.abs(got.astype(int) - expected)
        assert diff.max() <= 1 and (diff == 0).mean() >= 0.995, (shape, severity, seed)
        if device.type == "cpu":
            np.testing.assert_array_equal(got, expected, err_msg=f"{shape} severity {severity} seed {seed}")


@pytest.mark.parametrize("name", NAMES)
def test_torch_batch_independence_and_determinism(name, device):
    images = [_image((37, 53), k) for k in (1, 2, 3)]
    seeds = [101, 202, 303]
    alone = torch_blur.TORCH[name](_to_batch(images[:1], device), 4, seeds[:1])
    order = [2, 0, 1]
    batch = torch_blur.TORCH[name](_to_batch([images[k] for k in order], device), 4, [seeds[k] for k in order])
    assert torch.equal(batch[1], alone[0])
    again = torch_blur.TORCH[name](_to_batch(images[:1], device), 4, seeds[:1])
    assert torch.equal(again, alone)
    if name in RANDOM:
        other = torch_blur.TORCH[name](_to_batch(images[:1], device), 4, [seeds[0] + 1])
        assert not torch.equal(other, alone)


def test_torch_rejects_bad_input():
    with pytest.raises(ValueError, match="one seed per image"):
        torch_blur.gaussian_blur(torch.zeros(2, 3, 32, 32, dtype=torch.uint8), 1, [0])
    with pytest.raises(ValueError, match="uint8"):
        torch_blur.gaussian_blur(torch.zeros(1, 3, 32, 32), 1, [0])


# /////////////// full resolution ///////////////


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_bit_identical_at_cityscapes_resolution(name):
    """One 1024×2048 SynthCity frame: fast at every severity, torch (CPU) at severity 2.

    Glass blur runs at severity 2 only: the reference takes 30–100 s per severity.
    """
    from segformer_bench.data.synthcity import generate_scene, render

    image, _ = render(generate_scene(np.random.default_rng(3)), (1024, 2048))
    for severity in (2,) if name == "glass_blur" else range(1, 6):
        expected = reference_corrupt(image, name, severity, 77 + severity)
        np.testing.assert_array_equal(fast_blur.FAST[name](image, severity, 77 + severity), expected)
        if severity == 2:
            got = _from_batch(torch_blur.TORCH[name](_to_batch([image], "cpu"), severity, [77 + severity]))[0]
            diff = np.abs(got.astype(int) - expected)
            assert diff.max() <= 1 and (diff == 0).mean() >= 0.995
            if name != "defocus_blur":  # defocus's float64 tap sum is not OpenCV's summation order
                np.testing.assert_array_equal(got, expected)
