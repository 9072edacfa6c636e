"""Inference against independent oracles: mmseg 0.13's slide loop written out by hand, and hand arithmetic."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from segformer_bench import UserError, build_model
from segformer_bench.engine.inference import (
    predict,
    slide_inference,
    whole_inference,
    window_grid,
    window_starts,
)
from segformer_bench.models.base import normalize


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("b0", 19).eval()


def reference_slide(model: torch.nn.Module, image: torch.Tensor, crop: tuple[int, int],
                    stride: tuple[int, int]) -> torch.Tensor:
    """mmseg 0.13's EncoderDecoder.slide_inference for one normalised image (1, 3, H, W), as released:
    integer grid counts, windows clamped to the border, logits padded into place, divided by the count."""
    (_, _, H, W), (ch, cw), (sh, sw) = image.shape, crop, stride
    h_grids = max(H - ch + sh - 1, 0) // sh + 1
    w_grids = max(W - cw + sw - 1, 0) // sw + 1
    total, count = 0, torch.zeros(1, 1, H, W)
    for hi in range(h_grids):
        for wi in range(w_grids):
            y1, x1 = hi * sh, wi * sw
            y2, x2 = min(y1 + ch, H), min(x1 + cw, W)
            y1, x1 = max(y2 - ch, 0), max(x2 - cw, 0)
            window = image[:, :, y1:y2, x1:x2]
            logits = F.interpolate(model(window), size=window.shape[2:], mode="bilinear", align_corners=False)
            total = total + F.pad(logits, (x1, W - x2, y1, H - y2))
            count[:, :, y1:y2, x1:x2] += 1
    return total / count


def test_cityscapes_window_grid_matches_the_released_test_config():
    # 1024×2048 image, 1024×1024 windows, stride 768: the last window is shifted to end at x = 2048.
    grid = window_grid((1024, 2048), (1024, 1024), (768, 768))
    assert {y0 for y0, _, _, _ in grid} == {0}
    assert [x0 for _, _, x0, _ in grid] == [0, 768, 1024]
    assert all((y1 - y0, x1 - x0) == (1024, 1024) for y0, y1, x0, x1 in grid)


@pytest.mark.parametrize(("length", "crop", "stride", "starts"), [
    (100, 40, 30, [0, 30, 60]),  # ceil(60/30) + 1 = 3 windows, the last one ends exactly at 100
    (101, 40, 30, [0, 30, 60, 61]),  # one pixel more needs a fourth window, shifted back to end at 101
    (40, 40, 30, [0]),
    (25, 40, 30, [0]),  # shorter than the crop: one window, the whole axis
])
def test_window_starts_by_hand(length, crop, stride, starts):
    assert window_starts(length, crop, stride) == starts


@pytest.mark.parametrize(("crop", "stride"), [((0, 8), (1, 1)), ((32, 32), (40, 16)), ((32, 32), (0, 16))])
def test_invalid_windows_are_user_errors(crop, stride):
    with pytest.raises(UserError, match="stride"):
        window_grid((64, 64), crop, stride)


@torch.no_grad()
def test_slide_equals_whole_when_one_window_covers_the_image(model):
    x = torch.randn(2, 3, 64, 96)
    whole = whole_inference(model, x)
    assert whole.shape == (2, 19, 64, 96)
    for crop in ((64, 96), (128, 128)):
        torch.testing.assert_close(slide_inference(model, x, crop, (32, 32), num_classes=19), whole)


@torch.no_grad()
def test_slide_matches_the_mmseg_loop_on_a_non_divisible_size(model):
    x = torch.randn(2, 3, 70, 100)
    crop, stride = (48, 64), (32, 40)  # 2 × 2 windows, the last row and column shifted back
    # window_batch=3 puts windows of both images into one forward pass
    fast = slide_inference(model, x, crop, stride, window_batch=3)
    slow = torch.cat([reference_slide(model, x[i:i + 1], crop, stride) for i in range(2)])
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5)


def test_normalize_by_hand():
    pixel = torch.tensor([0, 128, 255], dtype=torch.uint8).view(1, 3, 1, 1)
    expected = torch.tensor([(0 - 123.675) / 58.395, (128 - 116.28) / 57.12, (255 - 103.53) / 57.375])
    out = normalize(pixel)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.flatten(), expected)
    torch.testing.assert_close(normalize(pixel.double()).flatten(), expected.double())


def test_predict_is_the_argmax_of_normalised_whole_inference(model):
    images = torch.randint(0, 256, (2, 3, 64, 96), dtype=torch.uint8)
    model.train()
    labels = predict(model, images)
    assert model.training  # predict restores the caller's mode
    model.eval()
    assert labels.shape == (2, 64, 96) and labels.dtype == torch.uint8
    with torch.no_grad():
        expected = whole_inference(model, normalize(images)).argmax(1)
    assert torch.equal(labels.long(), expected)
    slide = predict(model, images, mode="slide", crop=(48, 48), stride=(32, 32))
    assert slide.shape == (2, 64, 96) and int(slide.max()) < 19


def test_predict_rejects_inputs_below_the_smallest_size(model):
    # B0's first stage reduces keys/values with an 8×8 conv over a ceil(H/4) grid: 29 pixels is the minimum.
    predict(model, torch.zeros(1, 3, 29, 29, dtype=torch.uint8))
    with pytest.raises(UserError, match="at least 29×29"):
        predict(model, torch.zeros(1, 3, 28, 64, dtype=torch.uint8))
    with pytest.raises(UserError, match="sliding window"):
        predict(model, torch.zeros(1, 3, 64, 64, dtype=torch.uint8), mode="slide", crop=(16, 16), stride=(8, 8))


def test_predict_under_bf16_autocast_agrees_with_float32(model):
    images = torch.randint(0, 256, (1, 3, 64, 96), dtype=torch.uint8)
    for mode in ("whole", "slide"):
        reference = predict(model, images, mode=mode, crop=(64, 64), stride=(32, 32))
        labels = predict(model, images, mode=mode, crop=(64, 64), stride=(32, 32), autocast=torch.bfloat16)
        assert labels.dtype == torch.uint8
        assert (labels == reference).float().mean() > 0.9  # bf16 keeps about 3 digits: near-ties may flip


@pytest.mark.gpu
def test_predict_on_the_gpu_matches_the_cpu(model, device):
    images = torch.randint(0, 256, (2, 3, 64, 96), dtype=torch.uint8)
    cpu = predict(model, images, mode="slide", crop=(48, 48), stride=(32, 32))
    gpu_model = build_model("b0", 19).eval().to(device)
    gpu_model.load_state_dict(model.state_dict())
    gpu = predict(gpu_model, images, mode="slide", crop=(48, 48), stride=(32, 32))
    assert gpu.device.type == device.type
    assert (gpu.cpu() == cpu).float().mean() > 0.99  # TF32 matmuls may flip near-ties
