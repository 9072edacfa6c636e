"""The training pipeline against hand computations, mmseg 0.13's documented behaviour, OpenCV's documented
HSV formulas and torch's bilinear interpolation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from segformer_bench.data.transforms import (
    TrainAugment,
    crop_is_balanced,
    eval_transform,
    hsv_to_rgb,
    nearest_indices,
    photometric_distortion,
    random_crop_box,
    rescale_size,
    resize_image,
    resize_label,
    rgb_to_hsv,
    sample_scale,
)

MEAN = np.array([123.675, 116.28, 103.53])
STD = np.array([58.395, 57.12, 57.375])


def normalised(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 → (3, H, W) float64, by the formula."""
    return ((image.astype(np.float64) - MEAN) / STD).transpose(2, 0, 1)


class ScriptedRng:
    """A stand-in for numpy.random.Generator that answers from a script of (method, args, value) and
    checks that the code asks for exactly those draws, in that order."""

    def __init__(self, script: list[tuple[str, tuple, float]]) -> None:
        self.script = list(script)

    def _next(self, method: str, args: tuple) -> float:
        assert self.script, f"unexpected extra draw {method}{args}"
        expected_method, expected_args, value = self.script.pop(0)
        assert (method, args) == (expected_method, expected_args)
        return value

    def integers(self, *args):
        return self._next("integers", args)

    def uniform(self, *args):
        return self._next("uniform", args)

    def random(self):
        return self._next("random", ())


# --------------------------------------------------------------------------------------------------
# Resize


@pytest.mark.parametrize(("size", "scale", "expected"), [
    ((1024, 2048), (2048, 1024), (1024, 2048)),  # Cityscapes at r = 1: unchanged
    ((1024, 2048), (1024, 512), (512, 1024)),  # r = 0.5
    ((1024, 2048), (4096, 2048), (2048, 4096)),  # r = 2
    ((100, 1000), (2048, 1024), (205, 2048)),  # the long side binds: 2048/1000 = 2.048; 204.8 + .5 → 205
    ((512, 683), (2048, 512), (512, 683)),  # ADE20K: short side already 512
    ((375, 500), (2048, 512), (512, 683)),  # 512/375 = 1.3653; 500·1.3653 + .5 = 683.2 → 683
])
def test_rescale_size_by_hand(size, scale, expected):
    assert rescale_size(size, scale) == expected


def test_sample_scale_truncates_like_mmseg():
    # ratio = random()·(2.0 − 0.5) + 0.5 = 0.6; (2048·0.6, 1024·0.6) = (1228.8, 614.4) → (1228, 614)
    rng = ScriptedRng([("random", (), 0.1 / 1.5)])
    assert sample_scale((2048, 1024), (0.5, 2.0), rng) == (1228, 614)
    assert rescale_size((1024, 2048), (1228, 614)) == (614, 1228)


@pytest.mark.parametrize(("src", "dst", "expected"), [
    (4, 8, [0, 0, 1, 1, 2, 2, 3, 3]),  # floor(x · 4/8)
    (8, 3, [0, 2, 5]),  # floor(x · 8/3) = floor(0, 2.67, 5.33)
    (5, 2, [0, 2]),  # floor(x · 2.5)
    (3, 3, [0, 1, 2]),
])
def test_nearest_indices_by_hand(src, dst, expected):
    assert nearest_indices(src, dst).tolist() == expected


def test_resize_label_is_nearest_and_keeps_ids():
    label = np.array([[0, 1], [2, 255]], np.uint8)
    out = resize_label(label, (4, 4))
    assert out.tolist() == [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 255, 255], [2, 2, 255, 255]]


@pytest.mark.parametrize("size", [(29, 40), (6, 7), (13, 34), (26, 34)])
def test_resize_image_matches_torch_bilinear(size):
    image = np.random.default_rng(0).integers(0, 256, (13, 17, 3), dtype=np.uint8)
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    oracle = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=False)
    oracle = oracle.round().clamp(0, 255)[0].permute(1, 2, 0).numpy()
    out = resize_image(image, size)
    assert out.dtype == np.uint8 and out.shape == (*size, 3)
    diff = np.abs(out.astype(np.float64) - oracle)
    assert diff.max() <= 1 and (diff == 0).mean() > 0.98  # float weights may round a .5 the other way


def test_resize_image_window_equals_crop_of_the_whole():
    image = np.random.default_rng(1).integers(0, 256, (21, 30, 3), dtype=np.uint8)
    whole = resize_image(image, (50, 70))
    for box in [(0, 50, 0, 70), (7, 29, 13, 40), (40, 60, 60, 80)]:  # the last runs past the border
        np.testing.assert_array_equal(resize_image(image, (50, 70), box), whole[box[0]:box[1], box[2]:box[3]])


def test_resize_image_of_a_constant_is_constant():
    image = np.full((9, 11, 3), (7, 130, 250), np.uint8)
    assert (resize_image(image, (20, 3)) == (7, 130, 250)).all()


# --------------------------------------------------------------------------------------------------
# Crop


def test_crop_offsets_stay_in_range():
    seen_h, seen_w = set(), set()
    for seed in range(300):
        y0, y1, x0, x1 = random_crop_box((20, 30), (16, 16), np.random.default_rng(seed))
        assert 0 <= y0 <= 4 and 0 <= x0 <= 14 and (y1 - y0, x1 - x0) == (16, 16)
        seen_h.add(y0)
        seen_w.add(x0)
    assert seen_h == set(range(5)) and seen_w == set(range(15))  # every offset, both ends included
    # an axis shorter than the crop has offset 0 (the crop is padded later)
    assert random_crop_box((10, 12), (16, 16), np.random.default_rng(0)) == (0, 16, 0, 16)


def test_crop_is_balanced_by_hand():
    assert not crop_is_balanced(np.zeros((4, 4), np.uint8), 0.75)  # one class
    assert not crop_is_balanced(np.array([[0, 0, 0, 1]], np.uint8), 0.75)  # 3/4 is not below 0.75
    assert crop_is_balanced(np.array([[0, 0, 1, 1]], np.uint8), 0.75)
    # 255 does not count: 2 of class 0 against 1 of class 1 is 2/3
    assert crop_is_balanced(np.array([[0, 0, 1, 255, 255, 255]], np.uint8), 0.75)
    assert not crop_is_balanced(np.array([[0, 255, 255, 255]], np.uint8), 0.75)


def replay_boxes(seed: int, size: tuple[int, int], crop: tuple[int, int], n: int) -> list[tuple[int, int, int, int]]:
    """The first n boxes mmseg would draw: offset_h then offset_w, each integers(0, margin + 1)."""
    rng = np.random.default_rng(seed)
    boxes = []
    for _ in range(n):
        y = int(rng.integers(0, max(size[0] - crop[0], 0) + 1))
        x = int(rng.integers(0, max(size[1] - crop[1], 0) + 1))
        boxes.append((y, y + crop[0], x, x + crop[1]))
    return boxes


def test_cat_max_ratio_redraws_until_balanced():
    # class 0 everywhere except columns 24..39 (class 1); 16×16 crops at x = 0..48 are balanced only when
    # they hold 5..11 columns of class 1: x in 13..19 or 29..35, 14 of the 49 offsets
    label = np.zeros((16, 64), np.uint8)
    label[:, 24:40] = 1

    def crop_label(box):
        return label[box[0]:box[1], box[2]:box[3]]

    balanced = 0
    for seed in range(200):
        box = random_crop_box((16, 64), (16, 16), np.random.default_rng(seed), 0.75, crop_label)
        drawn = replay_boxes(seed, (16, 64), (16, 16), 11)
        checks = [crop_is_balanced(crop_label(b), 0.75) for b in drawn[:10]]
        if any(checks):
            assert box == drawn[checks.index(True)]  # the first balanced draw is taken
            balanced += 1
        else:
            assert box == drawn[10]  # ten failed checks: the eleventh draw, unchecked
        assert (box[2] in range(13, 20) or box[2] in range(29, 36)) == crop_is_balanced(crop_label(box), 0.75)
    assert balanced > 180  # 1 − (35/49)^10 ≈ 0.97 of the seeds find a balanced crop


def test_cat_max_ratio_gives_up_after_ten_redraws():
    label = np.ones((16, 64), np.uint8)  # one class: never balanced

    def crop_label(box):
        return label[box[0]:box[1], box[2]:box[3]]

    box = random_crop_box((16, 64), (16, 16), np.random.default_rng(5), 0.75, crop_label)
    assert box == replay_boxes(5, (16, 64), (16, 16), 11)[10]


def test_no_redraw_without_cat_max_ratio():
    box = random_crop_box((16, 64), (16, 16), np.random.default_rng(5))
    assert box == replay_boxes(5, (16, 64), (16, 16), 1)[0]


# --------------------------------------------------------------------------------------------------
# HSV (OpenCV's uint8 convention: H = degrees / 2 in 0..179, S = 255·(V − min)/V, V = max)


@pytest.mark.parametrize(("rgb", "hsv"), [
    ((255, 0, 0), (0, 255, 255)),  # red: 0°
    ((0, 255, 0), (60, 255, 255)),  # green: 120° / 2
    ((0, 0, 255), (120, 255, 255)),  # blue: 240° / 2
    ((255, 255, 0), (30, 255, 255)),  # yellow: 60°
    ((128, 128, 128), (0, 0, 128)),  # grey: no hue, no saturation
    ((0, 0, 0), (0, 0, 0)),
    ((255, 128, 0), (15, 255, 255)),  # V = R: 60·(128 − 0)/255 = 30.1° → 15
    ((30, 60, 90), (105, 170, 90)),  # V = B: 240 + 60·(30 − 60)/60 = 210° → 105; S = 255·60/90 = 170
    ((50, 200, 100), (70, 191, 200)),  # V = G: 120 + 60·(100 − 50)/150 = 140° → 70; S = 255·150/200 = 191.25
    ((200, 50, 120), (166, 191, 200)),  # V = R: 60·(50 − 120)/150 = −28° → 332° → 166
])
def test_rgb_to_hsv_by_hand(rgb, hsv):
    assert rgb_to_hsv(np.array([[rgb]], np.uint8))[0, 0].tolist() == list(hsv)


def test_rgb_to_hsv_uses_opencv_fixed_point():
    # (100, 150, 200): S = 255·100/200 = 127.5 exactly. OpenCV computes (diff · round(255·2^12 / V) + 2^11)
    # >> 12 = (100 · 5222 + 2048) >> 12 = 524248 >> 12 = 127, not 128. H: (R − G + 4·diff) = 350;
    # round(180·2^12 / (6·100)) = 1229; (350 · 1229 + 2048) >> 12 = 105 (210°).
    assert rgb_to_hsv(np.array([[(100, 150, 200)]], np.uint8))[0, 0].tolist() == [105, 127, 200]


@pytest.mark.parametrize(("hsv", "rgb"), [
    ((0, 255, 255), (255, 0, 0)),
    ((60, 255, 255), (0, 255, 0)),
    ((120, 255, 255), (0, 0, 255)),
    ((77, 0, 128), (128, 128, 128)),  # no saturation: grey whatever the hue
    ((105, 170, 90), (30, 60, 90)),  # 210°: sector 3, f = .5; (v(1−s), v(1−s·f), v) = (30, 60, 90)
    ((70, 191, 200), (50, 200, 100)),  # 140°: sector 2, f = 1/3; (v(1−s), v, v(1−s(1−f))) = (50.2, 200, 100.1)
    ((10, 255, 255), (255, 85, 0)),  # 20°: sector 0, f = 1/3; G = 255/3
    ((162, 127, 255), (255, 128, 204)),  # 324°: sector 5, f = .4; B = 255·(1 − 127/255·.4) = 204.2
])
def test_hsv_to_rgb_by_hand(hsv, rgb):
    assert hsv_to_rgb(np.array([[hsv]], np.uint8))[0, 0].tolist() == list(rgb)


def test_hsv_round_trip():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    hsv = rgb_to_hsv(image)
    assert hsv[..., 0].max() <= 179
    # H is quantised to 2°, which moves the middle channel by up to V·S/60 ≈ 4.25 levels, plus rounding
    assert np.abs(hsv_to_rgb(hsv).astype(int) - image).max() <= 5
    greys = np.repeat(np.arange(256, dtype=np.uint8)[:, None, None], 3, axis=2)
    np.testing.assert_array_equal(hsv_to_rgb(rgb_to_hsv(greys)), greys)


# --------------------------------------------------------------------------------------------------
# Photometric distortion: mmseg 0.13's draws, in order, and its uint8 arithmetic


def test_photometric_brightness_then_contrast_last_truncates_to_uint8():
    image = np.array([[(100, 250, 3), (0, 128, 255)]], np.uint8)
    rng = ScriptedRng([
        ("integers", (2,), 1), ("uniform", (-32, 32), 10.7),  # brightness +10.7
        ("integers", (2,), 0),  # mode 0: contrast last
        ("integers", (2,), 0),  # no saturation
        ("integers", (2,), 0),  # no hue
        ("integers", (2,), 1), ("uniform", (0.5, 1.5), 0.5),  # contrast ×0.5
    ])
    out = photometric_distortion(image, rng)
    # +10.7 and truncate: (110, 255, 13), (10, 138, 255); ×0.5 and truncate: (55, 127, 6), (5, 69, 127)
    assert out.tolist() == [[[55, 127, 6], [5, 69, 127]]]
    assert not rng.script


def test_photometric_saturation_and_hue():
    image = np.array([[(255, 0, 0), (128, 128, 128)]], np.uint8)
    rng = ScriptedRng([
        ("integers", (2,), 0),  # no brightness
        ("integers", (2,), 1),  # mode 1: contrast first
        ("integers", (2,), 0),  # ... but not this time
        ("integers", (2,), 1), ("uniform", (0.5, 1.5), 0.5),  # saturation ×0.5
        ("integers", (2,), 1), ("integers", (-18, 18), -18),  # hue −18 (mmseg's randint(-18, 18): −18..17)
    ])
    out = photometric_distortion(image, rng)
    # red (0, 255, 255) → S 127 → (255, 128, 128) = HSV (0, 127, 255) → H −18 % 180 = 162 → (255, 128, 204);
    # grey has S = 0 and keeps its value through both
    assert out.tolist() == [[[255, 128, 204], [128, 128, 128]]]
    assert not rng.script


def test_photometric_only_changes_values_not_shape():
    image = np.random.default_rng(0).integers(0, 256, (10, 12, 3), dtype=np.uint8)
    out = photometric_distortion(image, np.random.default_rng(3))
    assert out.shape == image.shape and out.dtype == np.uint8


# --------------------------------------------------------------------------------------------------
# The whole pipeline


def small_pair(h: int = 8, w: int = 12) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    label = ((np.arange(h)[:, None] + np.arange(w)[None, :]) % 4).astype(np.uint8)  # 4 classes, balanced
    return image, label


def test_pipeline_draw_order_crop_and_flip():
    image, label = small_pair()
    augment = TrainAugment(crop=(4, 6), img_scale=(12, 8), ratio_range=(1.0, 1.0), photometric=False)
    rng = ScriptedRng([
        ("random", (), 0.3),  # ratio 1: (12, 8) keeps the 8×12 image
        ("integers", (0, 5), 2), ("integers", (0, 7), 3),  # crop at y = 2, x = 3; balanced, no redraw
        ("random", (), 0.2),  # < 0.5: flip
    ])
    out_image, out_label = augment.apply(image, label, rng)
    assert not rng.script
    np.testing.assert_allclose(out_image.numpy(), normalised(image[2:6, 3:9, :][:, ::-1]), atol=1e-5)
    np.testing.assert_array_equal(out_label.numpy(), label[2:6, 3:9][:, ::-1])


@pytest.mark.parametrize("flip", [True, False])
def test_flip_moves_image_and_label_together(flip):
    image, label = small_pair()
    augment = TrainAugment(crop=(8, 12), img_scale=(12, 8), ratio_range=(1.0, 1.0), cat_max_ratio=1.0,
                           flip_prob=1.0 if flip else 0.0, photometric=False)
    out_image, out_label = augment.apply(image, label, np.random.default_rng(0))
    expected_image, expected_label = (image[:, ::-1], label[:, ::-1]) if flip else (image, label)
    np.testing.assert_allclose(out_image.numpy(), normalised(expected_image), atol=1e-5)
    np.testing.assert_array_equal(out_label.numpy(), expected_label)


def test_pad_fills_image_with_zero_and_label_with_255():
    image, label = small_pair(6, 10)
    augment = TrainAugment(crop=(8, 12), img_scale=(10, 6), ratio_range=(1.0, 1.0), flip_prob=0.0,
                           photometric=False)
    out_image, out_label = augment.apply(image, label, np.random.default_rng(0))
    assert out_image.shape == (3, 8, 12) and out_label.shape == (8, 12)
    np.testing.assert_allclose(out_image[:, :6, :10].numpy(), normalised(image), atol=1e-5)
    assert (out_image[:, 6:, :] == 0).all() and (out_image[:, :, 10:] == 0).all()
    assert (out_label[6:, :] == 255).all() and (out_label[:, 10:] == 255).all()
    np.testing.assert_array_equal(out_label[:6, :10].numpy(), label)


def test_pipeline_is_a_function_of_the_seed():
    rng = np.random.default_rng(7)
    image = rng.integers(0, 256, (64, 128, 3), dtype=np.uint8)
    label = rng.integers(0, 19, (64, 128), dtype=np.uint8)
    label[:8] = 255
    augment = TrainAugment(crop=(32, 32), img_scale=(128, 64))
    a_image, a_label = augment.apply(image, label, np.random.default_rng([3, 11]))
    b_image, b_label = augment.apply(image, label, np.random.default_rng([3, 11]))
    c_image, c_label = augment.apply(image, label, np.random.default_rng([3, 12]))
    assert a_image.dtype == torch.float32 and a_image.shape == (3, 32, 32)
    assert a_label.dtype == torch.int64 and a_label.shape == (32, 32)
    assert torch.equal(a_image, b_image) and torch.equal(a_label, b_label)
    assert not torch.equal(a_image, c_image)
    assert set(a_label.unique().tolist()) <= set(range(19)) | {255}


def test_cityscapes_defaults_give_1024_crops():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (512, 1024, 3), dtype=np.uint8)  # half size keeps the test fast
    label = rng.integers(0, 19, (512, 1024), dtype=np.uint8)
    out_image, out_label = TrainAugment().apply(image, label, np.random.default_rng(1))
    assert out_image.shape == (3, 1024, 1024) and out_label.shape == (1024, 1024)


def test_train_augment_rejects_bad_parameters():
    with pytest.raises(ValueError, match="crop"):
        TrainAugment(crop=(0, 512))
    with pytest.raises(ValueError, match="ratio_range"):
        TrainAugment(ratio_range=(2.0, 0.5))
    with pytest.raises(ValueError, match="cat_max_ratio"):
        TrainAugment(cat_max_ratio=0.0)


# --------------------------------------------------------------------------------------------------
# Evaluation


def test_eval_transform_keeps_cityscapes_native_size():
    image = np.zeros((1024, 2048, 3), np.uint8)
    image[0, 0] = 255
    label = np.full((1024, 2048), 3, np.uint8)
    out_image, out_label = eval_transform(image, label, img_scale=(2048, 1024))
    assert out_image.shape == (3, 1024, 2048) and out_label.shape == (1024, 2048)
    np.testing.assert_allclose(out_image[:, 0, 0].numpy(), (255 - MEAN) / STD, rtol=1e-6)
    np.testing.assert_allclose(out_image[:, 1, 1].numpy(), -MEAN / STD, rtol=1e-6)
    assert out_label.dtype == torch.int64 and (out_label == 3).all()


def test_eval_transform_resizes_the_image_only():
    image, label = small_pair(32, 64)
    out_image, out_label = eval_transform(image, label, img_scale=(32, 16))
    assert out_image.shape == (3, 16, 32)
    np.testing.assert_array_equal(out_label.numpy(), label)  # predictions are scored at the native size
    out_image, _ = eval_transform(image[:20, :30], label[:20, :30], size_divisor=32)
    assert out_image.shape == (3, 32, 32)
