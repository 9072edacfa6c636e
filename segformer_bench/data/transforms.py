"""SegFormer's training pipeline (mmseg 0.13, as in the official configs) and the evaluation resize.

The training pipeline is, in order (``configs/_base_/datasets/cityscapes_1024x1024.py`` and ``ade20k.py``):

1. ``Resize``: keep the aspect ratio, scale ``img_scale`` × r with r ~ U(ratio_range) (mmcv ``imrescale``):
   image bilinear, label nearest;
2. ``RandomCrop`` to ``crop`` with ``cat_max_ratio`` (redraw up to 10 times while one class fills the crop);
3. ``RandomFlip``, horizontal, probability ``flip_prob``;
4. ``PhotoMetricDistortion``: brightness, contrast, saturation, hue, each with probability 0.5, on uint8;
5. ``Normalize`` with the ImageNet mean/std on RGB;
6. ``Pad`` bottom/right to ``crop`` with 0 (image, after normalisation) and 255 (label).

mmseg draws from NumPy's global random state; here every draw comes from the ``numpy.random.Generator``
passed in, in mmseg's order, so a sample's augmentation is a pure function of how that generator was
seeded (the training engine seeds one per sample). mmseg runs OpenCV on BGR images; this module works on
RGB arrays without OpenCV: the resize follows cv2's pixel-centre conventions, and the HSV conversion is a
port of OpenCV's uint8 code (channel order does not matter anywhere else in the pipeline).

The resize and the crop are fused: the crop box is chosen on the resized label, which is indexed lazily,
and only the cropped window of the image is interpolated. This gives the same pixels as resizing the whole
image and cropping afterwards (each output pixel depends only on its own source taps), at a fraction of
the cost when the image is enlarged 2×.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .base import IGNORE_INDEX
from .labels import IMAGENET_MEAN, IMAGENET_STD

Box = tuple[int, int, int, int]  # y0, y1, x0, x1 of a crop, end exclusive


@dataclass(frozen=True)
class TrainAugment:
    """Parameters of the training pipeline; the defaults are the Cityscapes 1024×1024 config."""

    crop: tuple[int, int] = (1024, 1024)  # (h, w) of every training sample; ADE20K uses (512, 512)
    img_scale: tuple[int, int] = (2048, 1024)  # (long, short) edge bounds at ratio 1; ADE20K uses (2048, 512)
    ratio_range: tuple[float, float] = (0.5, 2.0)
    cat_max_ratio: float = 0.75  # a crop is redrawn while one class has this share of its labelled pixels
    flip_prob: float = 0.5
    photometric: bool = True

    def __post_init__(self) -> None:
        if len(self.crop) != 2 or min(self.crop) < 1:
            raise ValueError(f"TrainAugment.crop must be two positive sizes (h, w), got {self.crop}")
        if len(self.img_scale) != 2 or min(self.img_scale) < 1:
            raise ValueError(f"TrainAugment.img_scale must be two positive sizes, got {self.img_scale}")
        if len(self.ratio_range) != 2 or not 0 < self.ratio_range[0] <= self.ratio_range[1]:
            raise ValueError(f"TrainAugment.ratio_range must be (low, high), 0 < low <= high, got {self.ratio_range}")
        if not 0 < self.cat_max_ratio <= 1:
            raise ValueError(f"TrainAugment.cat_max_ratio must be in (0, 1], got {self.cat_max_ratio}")
        if not 0 <= self.flip_prob <= 1:
            raise ValueError(f"TrainAugment.flip_prob must be in [0, 1], got {self.flip_prob}")

    def apply(self, image: np.ndarray, label: np.ndarray,
              rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``train_transform(image, label, rng, self)``."""
        return train_transform(image, label, rng, self)


def train_transform(image: np.ndarray, label: np.ndarray, rng: np.random.Generator,
                    params: TrainAugment) -> tuple[torch.Tensor, torch.Tensor]:
    """One training sample: an (H, W, 3) uint8 RGB image and its (H, W) uint8 trainId label become a
    normalised float32 (3, crop_h, crop_w) image and an int64 (crop_h, crop_w) label (255 = ignore)."""
    _check_pair(image, label)
    scale = sample_scale(params.img_scale, params.ratio_range, rng)
    size = rescale_size(image.shape[:2], scale)
    rows, cols = nearest_indices(label.shape[0], size[0]), nearest_indices(label.shape[1], size[1])
    box = random_crop_box(size, params.crop, rng, params.cat_max_ratio,
                          crop_label=lambda b: label[rows[b[0]:b[1]]][:, cols[b[2]:b[3]]])
    image = resize_image(image, size, box)
    label = label[rows[box[0]:box[1]]][:, cols[box[2]:box[3]]]
    if rng.random() < params.flip_prob:
        image, label = image[:, ::-1], label[:, ::-1]
    if params.photometric:
        image = photometric_distortion(image, rng)
    return pad(normalize(image), torch.from_numpy(label.astype(np.int64)), params.crop)


def eval_transform(image: np.ndarray, label: np.ndarray, img_scale: tuple[int, int] | None = None,
                   size_divisor: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The validation pipeline: optional keep-ratio resize to `img_scale` (mmcv imrescale; Cityscapes'
    (2048, 1024) keeps the native 1024×2048), optionally followed by SegFormer's AlignedResize to a
    multiple of `size_divisor` (ADE20K: 32), then normalisation.

    The label keeps its native size, as in mmseg: predictions are resized back to it before scoring.
    Returns a float32 (3, H', W') image and an int64 (H, W) label.
    """
    _check_pair(image, label)
    if img_scale is not None:
        image = resize_image(image, rescale_size(image.shape[:2], img_scale))
    if size_divisor:
        h, w = image.shape[:2]
        image = resize_image(image, (-(-h // size_divisor) * size_divisor, -(-w // size_divisor) * size_divisor))
    return normalize(image), torch.from_numpy(label.astype(np.int64))


def _check_pair(image: np.ndarray, label: np.ndarray) -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
    if label.shape != image.shape[:2] or label.dtype != np.uint8:
        raise ValueError(f"expected an (H, W) uint8 label of the image's size {image.shape[:2]}, "
                         f"got {label.shape} {label.dtype}")


# --------------------------------------------------------------------------------------------------
# Resize


def sample_scale(img_scale: tuple[int, int], ratio_range: tuple[float, float],
                 rng: np.random.Generator) -> tuple[int, int]:
    """mmseg ``Resize.random_sample_ratio``: img_scale × r, r ~ U(ratio_range), each edge truncated to int."""
    low, high = ratio_range
    ratio = rng.random() * (high - low) + low
    return int(img_scale[0] * ratio), int(img_scale[1] * ratio)


def rescale_size(size: tuple[int, int], scale: tuple[int, int]) -> tuple[int, int]:
    """(h, w) after mmcv ``imrescale(img, scale)``: the largest factor that keeps the long side within
    max(scale) and the short side within min(scale), each side rounded half up."""
    h, w = size
    factor = min(max(scale) / max(h, w), min(scale) / min(h, w))
    return int(h * factor + 0.5), int(w * factor + 0.5)


def nearest_indices(src: int, dst: int) -> np.ndarray:
    """Source index of each of `dst` output pixels for cv2 INTER_NEAREST: floor(x · src/dst), in double
    precision as cv2 computes it (1 / (dst/src))."""
    return np.minimum(np.floor(np.arange(dst) * (1.0 / (dst / src))).astype(np.int64), src - 1)


def linear_taps(src: int, dst: int, start: int = 0,
                stop: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The two source indices and the weight of the second for output pixels start..stop of a bilinear
    resize from `src` to `dst` pixels, with cv2 INTER_LINEAR's (and torch's align_corners=False)
    convention: pixel centres align, x_src = (x + 0.5) · src/dst − 0.5, clamped to the border."""
    x = np.arange(start, dst if stop is None else stop, dtype=np.float64)
    pos = np.maximum((x + 0.5) * (src / dst) - 0.5, 0.0)
    i0 = np.minimum(np.floor(pos).astype(np.int64), src - 1)
    i1 = np.minimum(i0 + 1, src - 1)
    return i0, i1, (pos - i0).astype(np.float32)


def resize_image(image: np.ndarray, size: tuple[int, int], box: Box | None = None) -> np.ndarray:
    """Bilinear resize of an (H, W, 3) uint8 image to `size` (h, w), rounded back to uint8; only the window
    `box` of the resized image is computed when given (the same pixels as resizing, then cropping)."""
    (h, w), (src_h, src_w) = size, image.shape[:2]
    y0, y1, x0, x1 = box if box is not None else (0, h, 0, w)
    y1, x1 = min(y1, h), min(x1, w)
    if (h, w) == (src_h, src_w):
        return np.ascontiguousarray(image[y0:y1, x0:x1])
    r0, r1, wy = linear_taps(src_h, h, y0, y1)
    c0, c1, wx = linear_taps(src_w, w, x0, x1)
    # only the source rectangle the window reads, so that the cost follows the window, not the image
    top, left = r0[0], c0[0]
    src = torch.from_numpy(np.ascontiguousarray(image[top:r1[-1] + 1, left:c1[-1] + 1]))
    r0, r1, c0, c1 = r0 - top, r1 - top, c0 - left, c1 - left
    rows0, rows1 = src[torch.from_numpy(r0)].float(), src[torch.from_numpy(r1)].float()  # h', w_src, 3
    wy_t = torch.from_numpy(wy)[:, None, None]
    rows = rows0 + (rows1 - rows0) * wy_t
    cols0, cols1 = rows[:, torch.from_numpy(c0)], rows[:, torch.from_numpy(c1)]  # h', w', 3
    out = cols0 + (cols1 - cols0) * torch.from_numpy(wx)[None, :, None]
    return out.round_().clamp_(0, 255).to(torch.uint8).numpy()


def resize_label(label: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of an (H, W) label to `size` (h, w), as cv2 INTER_NEAREST."""
    return label[nearest_indices(label.shape[0], size[0])][:, nearest_indices(label.shape[1], size[1])]


# --------------------------------------------------------------------------------------------------
# Crop


def crop_box(size: tuple[int, int], crop: tuple[int, int], rng: np.random.Generator) -> Box:
    """mmseg ``RandomCrop.get_crop_bbox``: a uniformly random offset; the box may extend past a side shorter
    than the crop (slicing then stops at the border, and Pad fills the rest)."""
    offset_h = int(rng.integers(0, max(size[0] - crop[0], 0) + 1))
    offset_w = int(rng.integers(0, max(size[1] - crop[1], 0) + 1))
    return offset_h, offset_h + crop[0], offset_w, offset_w + crop[1]


def crop_is_balanced(label: np.ndarray, cat_max_ratio: float) -> bool:
    """More than one labelled class, and none with cat_max_ratio or more of the labelled pixels."""
    counts = np.bincount(label.ravel(), minlength=256)
    counts = counts[(counts > 0) & (np.arange(counts.size) != IGNORE_INDEX)]
    return len(counts) > 1 and counts.max() / counts.sum() < cat_max_ratio


def random_crop_box(size: tuple[int, int], crop: tuple[int, int], rng: np.random.Generator,
                    cat_max_ratio: float = 1.0, crop_label: Callable[[Box], np.ndarray] | None = None) -> Box:
    """mmseg ``RandomCrop``'s box in an image of `size`: draw one; when cat_max_ratio < 1, check it and
    redraw, at most 10 times, until it is balanced (``crop_is_balanced``); after 10 failed checks the 11th
    box is kept unchecked. `crop_label(box)` returns the label inside a box (needed when cat_max_ratio < 1)."""
    box = crop_box(size, crop, rng)
    if cat_max_ratio < 1.0:
        if crop_label is None:
            raise ValueError("random_crop_box needs crop_label when cat_max_ratio < 1")
        for _ in range(10):
            if crop_is_balanced(crop_label(box), cat_max_ratio):
                break
            box = crop_box(size, crop, rng)
    return box


# --------------------------------------------------------------------------------------------------
# Photometric distortion


def _convert(image: np.ndarray, alpha: float = 1.0, beta: float = 0.0) -> np.ndarray:
    """mmseg ``PhotoMetricDistortion.convert``: x·alpha + beta in float32, clipped, truncated to uint8."""
    out = image.astype(np.float32) * np.float32(alpha) + np.float32(beta)
    return np.clip(out, 0, 255).astype(np.uint8)


def photometric_distortion(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """mmseg 0.13 ``PhotoMetricDistortion`` with its defaults (brightness ±32, contrast and saturation
    ×U(0.5, 1.5), hue ±18 in OpenCV's 0..179 hue), draws in mmseg's order.

    Each step happens with probability 0.5 (a coin ``integers(2)``); contrast comes before saturation and
    hue or after them, by another coin. The hue delta is ``integers(-18, 18)``, i.e. −18..17, because mmseg
    calls NumPy's ``random.randint(-18, 18)``, whose upper bound is exclusive.
    """
    if rng.integers(2):
        image = _convert(image, beta=rng.uniform(-32, 32))
    mode = rng.integers(2)
    if mode == 1 and rng.integers(2):
        image = _convert(image, alpha=rng.uniform(0.5, 1.5))
    if rng.integers(2):
        hsv = rgb_to_hsv(image)
        hsv[..., 1] = _convert(hsv[..., 1], alpha=rng.uniform(0.5, 1.5))
        image = hsv_to_rgb(hsv)
    if rng.integers(2):
        hsv = rgb_to_hsv(image)
        hsv[..., 0] = (hsv[..., 0].astype(np.int64) + rng.integers(-18, 18)) % 180
        image = hsv_to_rgb(hsv)
    if mode == 0 and rng.integers(2):
        image = _convert(image, alpha=rng.uniform(0.5, 1.5))
    return image


# OpenCV's uint8 RGB→HSV works in 12-bit fixed point with two reciprocal tables (color_hsv.simd.hpp,
# RGB2HSV_b): s = round(255·diff / v), h = round(30·(...) / diff), each as (x·table + 2^11) >> 12.
_HSV_SHIFT = 12
_SDIV = np.r_[0, np.rint((255 << _HSV_SHIFT) / np.arange(1, 256))].astype(np.int32)
_HDIV180 = np.r_[0, np.rint((180 << _HSV_SHIFT) / (6.0 * np.arange(1, 256)))].astype(np.int32)


def rgb_to_hsv(image: np.ndarray) -> np.ndarray:
    """cv2.cvtColor(·, COLOR_RGB2HSV) for uint8: H in 0..179 (degrees / 2), S and V in 0..255."""
    r, g, b = (image[..., c].astype(np.int32) for c in range(3))  # products stay below 2^28
    v = np.maximum(np.maximum(r, g), b)
    diff = v - np.minimum(np.minimum(r, g), b)
    s = (diff * _SDIV[v] + (1 << (_HSV_SHIFT - 1))) >> _HSV_SHIFT
    # V == R wins over V == G, as in OpenCV's masks
    h = np.where(v == r, g - b, np.where(v == g, b - r + 2 * diff, r - g + 4 * diff))
    h = (h * _HDIV180[diff] + (1 << (_HSV_SHIFT - 1))) >> _HSV_SHIFT  # an arithmetic shift: floor for h < 0
    h = np.where(h < 0, h + 180, h)
    return np.stack([h, s, v], axis=-1).astype(np.uint8)


# HSV2RGB_native's sector table, reordered to (r, g, b): which of the four values
# (v, v(1−s), v(1−s·f), v(1−s(1−f))) each channel takes in each 60° sector of hue.
_SECTOR_RGB = np.array([[0, 3, 1], [2, 0, 1], [1, 0, 3], [1, 2, 0], [3, 1, 0], [0, 1, 2]])


def hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """cv2.cvtColor(·, COLOR_HSV2RGB) for uint8 (H in 0..179), OpenCV's scalar code in float32:
    s and v scaled by 1/255, the hue sector's value picked for each channel, × 255 and rounded."""
    f32, one = np.float32, np.float32(1)
    h = hsv[..., 0].astype(f32) * (f32(6) / f32(180))
    s = hsv[..., 1].astype(f32) * (one / f32(255))
    v = hsv[..., 2].astype(f32) * (one / f32(255))
    h = np.fmod(h, f32(6))
    sector = np.floor(h)
    h -= sector
    tab = np.empty((4, *h.shape), f32)
    tab[0], tab[1], tab[2], tab[3] = v, v * (one - s), v * (one - s * h), v * (one - s * (one - h))
    # rounding each candidate, then picking, is picking, then rounding; picking uint8 is faster
    tab *= f32(255)
    tab = np.clip(np.rint(tab, out=tab), 0, 255, out=tab).astype(np.uint8).reshape(4, -1)
    n, sector = tab.shape[1], sector.astype(np.intp).ravel()
    rgb = np.empty((n, 3), np.uint8)
    for c in range(3):
        rgb[:, c] = tab.ravel()[_SECTOR_RGB[sector, c] * n + np.arange(n)]
    return rgb.reshape(hsv.shape)


# --------------------------------------------------------------------------------------------------
# Normalise and pad

# mmseg's Normalize keeps mean and std as float32; mmcv subtracts the mean and multiplies by 1/std.
_MEAN = np.array(IMAGENET_MEAN, np.float32)
_STD_INV = (1.0 / np.array(IMAGENET_STD, np.float32).astype(np.float64)).astype(np.float32)


def normalize(image: np.ndarray) -> torch.Tensor:
    """An (H, W, 3) uint8 RGB image as a normalised float32 (3, H, W) tensor."""
    x = (image.astype(np.float32) - _MEAN) * _STD_INV
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))


def pad(image: torch.Tensor, label: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad a (3, h, w) image with 0 and an (h, w) label with 255 at the bottom and right to `size` (h, w)."""
    h, w = label.shape
    if (h, w) == tuple(size):
        return image, label
    out_image = image.new_zeros((image.shape[0], *size))
    out_image[:, :h, :w] = image
    out_label = label.new_full(tuple(size), IGNORE_INDEX)
    out_label[:h, :w] = label
    return out_image, out_label
