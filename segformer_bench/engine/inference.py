"""From images to logits and label maps: whole-image and sliding-window inference, multi-scale and flip.

Every model runs as a ``models.segmenter.Segmenter``. ``whole_inference`` and ``slide_inference`` take the
network's input (the Segmenter's ``preprocess`` of the images) and its ``network`` and return logits at the input
resolution. ``segment_batch`` is the one pipeline from uint8 images to labels that every caller runs
(evaluation, the benchmark runner, the CLI through ``predict``): preprocess, resize to each test scale of its
``EvalSettings``, run whole or sliding, optionally flipped, resize the logits back; one run gives the argmax of
its logits, several the argmax of their averaged softmax probabilities.

The sliding window is mmseg 0.13's ``EncoderDecoder.slide_inference``, which produced every released
SegFormer Cityscapes number (1024×1024 windows, stride 768 on 1024×2048 images): windows start on a
regular grid, the last row and column are shifted back to end at the border, each window's logits are
resized bilinearly to the window, summed into the full image and divided by the number of windows
covering each pixel. An image smaller than the window in one axis is covered by one window of its own
size in that axis (no padding).

The fast path is two settings. ``autocast`` runs the network under torch.autocast (bf16 on CPU and GPU, fp16 on
GPU); its logits are cast back to float32 before they are resized, summed, softmaxed or argmaxed. ``compile`` runs
the network through ``torch.compile`` (``Segmenter.compiled_network``: compiled once per model object, reused by
every later call): ``off`` (default, eager), ``on``, or ``auto``, which compiles only where the compile pays back
(``decide_compile``): when the network inputs the model runs at one input shape, counted before running
(images × windows × scales × flips, in 512² units) plus those it already ran there, reach ``COMPILE_BREAK_EVEN``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from ..config import ConfigError
from ..errors import UserError
from ..models.segmenter import Segmenter, as_segmenter

Mode = Literal["whole", "slide"]

# Autocast dtypes by the names EvalSettings.autocast and TrainConfig.amp use.
AUTOCAST: dict[str, torch.dtype | None] = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}

# `compile: auto` compiles once the network inputs run at one input shape, in units of one 512×512 input, reach
# this many: the compile's seconds over the seconds it saves per 512² input, measured with
# `benchmarks/model_speed.py --fast-path --variants b0 --sizes 512` (it prints this break-even per row) for B0 at
# 512² on the 2-core AMD EPYC, torch 2.13, a quiet machine, cold compile: 43.9 s to compile, 136.0 → 75.8 ms per
# input, so 43.9 / 0.0602 ≈ 730 (benchmarks/RESULTS.md). A larger input saves proportionally more per pass, hence
# the pixel units; a larger model both compiles longer and saves more (B2 broke even sooner), so B0's constant,
# the most cautious, stands for all.
COMPILE_BREAK_EVEN = 730
COMPILE = ("off", "on", "auto")


@dataclass(frozen=True)
class EvalSettings:
    """How a model is run on each test image."""

    mode: Mode = "slide"
    crop: tuple[int, int] = (1024, 1024)  # sliding window (H, W)
    stride: tuple[int, int] = (768, 768)
    img_scale: tuple[int, int] | None = None  # keep-ratio resize target (long, short) before inference
    size_divisor: int | None = None  # then resize up to a multiple of this (ADE20K: 32)
    scales: tuple[float, ...] = (1.0,)  # ratios of img_scale (or of the image size when img_scale is None)
    flip: bool = False
    batch_size: int = 1  # images per forward pass (same-size images only)
    autocast: Literal["none", "bf16", "fp16"] = "none"
    workers: int = 0  # DataLoader worker processes that read/decode images
    window_batch: int = 8  # sliding windows per forward pass
    # torch.compile the network: off, on, or auto (where it pays, ``decide_compile``); YAML's bare on/off are
    # booleans, so True and False mean "on" and "off"
    compile: Literal["off", "on", "auto"] | bool = "off"

    def __post_init__(self) -> None:
        if isinstance(self.compile, bool):
            object.__setattr__(self, "compile", "on" if self.compile else "off")
        if self.compile not in COMPILE:
            raise ConfigError(f"compile must be one of off, on, auto, got {self.compile!r}")


def window_starts(length: int, crop: int, stride: int) -> list[int]:
    """Start offsets of the sliding windows along one axis of `length` pixels (mmseg 0.13).

    ceil((length − crop) / stride) + 1 windows at i·stride, the last shifted back to end at the border;
    all start at 0 when the axis is shorter than the crop. E.g. (2048, 1024, 768) gives [0, 768, 1024].
    """
    if crop < 1 or not 1 <= stride <= crop:
        raise UserError(f"sliding window crop {crop} and stride {stride}: need crop ≥ 1 and 1 ≤ stride ≤ crop "
                        "(a stride above the crop leaves pixels no window covers)")
    count = max(math.ceil((length - crop) / stride), 0) + 1
    return [max(min(i * stride, length - crop), 0) for i in range(count)]


def window_grid(size: tuple[int, int], crop: tuple[int, int],
                stride: tuple[int, int]) -> list[tuple[int, int, int, int]]:
    """The windows (y0, y1, x0, x1) covering an image of `size` (H, W), rows first, as slide_inference visits them.

    Every window has the same size, min(crop, size) per axis.
    """
    (H, W), (ch, cw), (sh, sw) = size, crop, stride
    h, w = min(ch, H), min(cw, W)
    return [(y0, y0 + h, x0, x0 + w) for y0 in window_starts(H, ch, sh) for x0 in window_starts(W, cw, sw)]


def check_input_size(model: Segmenter, size: tuple[int, int], mode: Mode = "whole",
                     crop: tuple[int, int] = (1024, 1024), stride: tuple[int, int] = (768, 768)) -> None:
    """Raise a UserError unless `mode` can run `model` on an image of `size` (H, W): a known mode, a valid
    window, and an image (or window) no smaller than the model's ``min_input_side``."""
    if mode not in ("whole", "slide"):
        raise UserError(f"unknown inference mode {mode!r}; use 'whole' or 'slide'")
    H, W = size
    if mode == "slide":
        y0, y1, x0, x1 = window_grid((H, W), crop, stride)[0]
        H, W = y1 - y0, x1 - x0
    smallest = model.min_input_side
    if min(H, W) < smallest:
        what = "sliding window" if mode == "slide" else "image"
        raise UserError(f"{what} of {H}×{W} pixels is too small: {model.display_name} needs at least "
                        f"{smallest}×{smallest}; use a larger {what}")


Network = Callable[[torch.Tensor], torch.Tensor]  # network input → logits at the network's output resolution


def whole_inference(model: Network, images: torch.Tensor) -> torch.Tensor:
    """Logits (B, K, H, W) for normalised images (B, 3, H, W): one forward pass over the whole image, its
    logits (SegFormer's and DeepLabV3+'s at quarter resolution) resized bilinearly (align_corners=False) to the
    input size."""
    logits = model(images).float()  # float32 even under autocast
    if logits.shape[-2:] != images.shape[-2:]:
        logits = F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=False)
    return logits


def slide_inference(model: Network, images: torch.Tensor, crop: tuple[int, int], stride: tuple[int, int],
                    num_classes: int | None = None, window_batch: int = 8) -> torch.Tensor:
    """Logits (B, K, H, W) for normalised images (B, 3, H, W) by sliding-window inference (module docstring).

    Windows of all images go through the model `window_batch` at a time, so memory does not grow with the
    batch. `num_classes`, when given, is checked against the model's output. Logits are summed in float32.
    """
    B, _, H, W = images.shape
    windows = window_grid((H, W), crop, stride)
    h, w = windows[0][1] - windows[0][0], windows[0][3] - windows[0][2]
    crops = [(b, y0, x0) for b in range(B) for y0, _, x0, _ in windows]

    logits: torch.Tensor | None = None
    for start in range(0, len(crops), window_batch):
        chunk = crops[start:start + window_batch]
        batch = torch.stack([images[b, :, y0:y0 + h, x0:x0 + w] for b, y0, x0 in chunk])  # n, 3, h, w
        out = F.interpolate(model(batch).float(), size=(h, w), mode="bilinear", align_corners=False)  # n, K, h, w
        if logits is None:
            if num_classes is not None and out.shape[1] != num_classes:
                raise ValueError(f"slide_inference: model gives {out.shape[1]} classes, {num_classes} expected")
            logits = torch.zeros((B, out.shape[1], H, W), dtype=torch.float32, device=images.device)
        for (b, y0, x0), window_logits in zip(chunk, out, strict=True):
            logits[b, :, y0:y0 + h, x0:x0 + w] += window_logits

    count = torch.zeros((H, W), dtype=torch.float32, device=images.device)
    for y0, y1, x0, x1 in windows:
        count[y0:y1, x0:x1] += 1
    return logits / count


def inference_size(size: tuple[int, int], settings: EvalSettings, ratio: float) -> tuple[int, int]:
    """(H, W) the image is resized to before inference at scale `ratio` (mmcv imrescale + AlignedResize)."""
    h, w = size
    if settings.img_scale is not None:
        long_edge, short_edge = max(settings.img_scale) * ratio, min(settings.img_scale) * ratio
        factor = min(long_edge / max(h, w), short_edge / min(h, w))
    else:
        factor = ratio
    h, w = int(h * factor + 0.5), int(w * factor + 0.5)
    if settings.size_divisor:
        d = settings.size_divisor
        h, w = -(-h // d) * d, -(-w // d) * d
    return h, w


def planned_passes(size: tuple[int, int], settings: EvalSettings, images: int) -> dict[tuple[int, int], int]:
    """The network inputs (one image, or one sliding window, each) that `images` images of `size` (H, W) make
    under `settings`, by input (h, w): windows × flips per image at each test scale."""
    passes: dict[tuple[int, int], int] = {}
    for ratio in settings.scales:
        target = inference_size(size, settings, ratio)
        if settings.mode == "slide":
            windows = window_grid(target, settings.crop, settings.stride)
            y0, y1, x0, x1 = windows[0]
            shape, count = (y1 - y0, x1 - x0), len(windows)
        else:
            shape, count = target, 1
        passes[shape] = passes.get(shape, 0) + images * count * (2 if settings.flip else 1)
    return passes


def compile_pays(passes: dict[tuple[int, int], int], break_even: float | None = None) -> bool:
    """Whether compiling pays for network inputs counted by shape (h, w): their mean per shape (each shape is
    compiled once), in units of one 512×512 input, reaches `break_even` (default ``COMPILE_BREAK_EVEN``)."""
    if not passes:
        return False
    units = sum(n * h * w for (h, w), n in passes.items()) / 512**2
    return units / len(passes) >= (COMPILE_BREAK_EVEN if break_even is None else break_even)


def decide_compile(model: Segmenter, size: tuple[int, int], settings: EvalSettings, images: int) -> bool:
    """`compile: auto`'s decision for running `images` images of `size` under `settings`, recorded on the model:
    the passes they make plus those the model already ran at the same shapes (earlier cells, tests, attack steps)
    go to ``compile_pays``. Once a shape has paid it stays compiled."""
    planned = planned_passes(size, settings, images)
    for shape, n in planned.items():
        model.passes[shape] = model.passes.get(shape, 0) + n
    return compile_pays({shape: model.passes[shape] for shape in planned})


def network_for(model: Segmenter, settings: EvalSettings, size: tuple[int, int], images: int) -> Network:
    """The network `settings.compile` runs for `images` images of `size`: eager, compiled, or auto's choice.
    Each network input shape (h, w) — and each batch size, so a dataset's last, partial batch too — is compiled
    once (``dynamic=False``)."""
    if settings.compile == "on" or (settings.compile == "auto" and decide_compile(model, size, settings, images)):
        return model.compiled_network()
    return model.network


def _run(model: Network, x: torch.Tensor, settings: EvalSettings) -> torch.Tensor:
    if settings.mode == "slide":
        return slide_inference(model, x, settings.crop, settings.stride, window_batch=settings.window_batch)
    return whole_inference(model, x)


def _scaled_logits(net: Network, x: torch.Tensor, size: tuple[int, int], settings: EvalSettings, ratio: float,
                   flipped: bool) -> torch.Tensor:
    """Logits at `size` of network input `x` run through `net` at test scale `ratio`, flipped or not."""
    target = inference_size(size, settings, ratio)
    xs = x if target == size else F.interpolate(x, size=target, mode="bilinear", align_corners=False)
    logits = _run(net, xs.flip(-1) if flipped else xs, settings)
    if flipped:
        logits = logits.flip(-1)
    if logits.shape[-2:] != size:
        logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
    return logits


def eval_logits(model: Segmenter | torch.nn.Module, images: torch.Tensor, settings: EvalSettings,
                scale: float = 255.0) -> torch.Tensor:
    """Float32 logits (B, K, H, W) at the image size, exactly as ``segment_batch`` runs one test scale without
    flipping (whole or sliding window), for RGB images on the 0–`scale` scale; differentiable, so attacks take
    their gradients through the evaluation itself. Multi-scale or flipped settings are refused (one line)."""
    if settings.scales != (1.0,) or settings.flip:
        raise UserError("an attack runs the model as it is evaluated, at one test scale without flipping; set "
                        "scales: [1.0] and flip: false for this analysis")
    model = as_segmenter(model)
    size = tuple(images.shape[-2:])
    net = network_for(model, settings, size, images.shape[0])
    return _scaled_logits(net, model.preprocess(images, scale=scale), size, settings, 1.0, False)


def segment_batch(model: Segmenter | torch.nn.Module, images: torch.Tensor, settings: EvalSettings,
                  probabilities: list[torch.Tensor] | None = None) -> torch.Tensor:
    """Label maps (B, H, W) for uint8 RGB images (B, 3, H, W) on the model's device, by `settings` (or float
    images on the 0–255 scale, e.g. adversarial ones). With a `probabilities` list, the class probabilities the
    labels are the argmax of are appended to it (B, K, H, W): the softmax of the logits, or the mean of the
    softmaxes over scales and flips; the labels themselves are computed exactly as without it.

    The caller chooses the grad mode, autocast and the model's train/eval mode (``predict`` does all three);
    ``settings.compile`` chooses the network (``network_for``).
    """
    model = as_segmenter(model)
    size = tuple(images.shape[-2:])
    x = model.preprocess(images, scale=255)
    net = network_for(model, settings, size, images.shape[0])
    single = settings.scales == (1.0,) and not settings.flip
    probs, runs = None, 0
    for ratio in settings.scales:
        for flipped in (False, True) if settings.flip else (False,):
            logits = _scaled_logits(net, x, size, settings, ratio, flipped)
            if single:
                if probabilities is not None:
                    probabilities.append(logits.float().softmax(dim=1))
                return logits.argmax(dim=1)
            p = logits.softmax(dim=1)
            probs = p if probs is None else probs + p
            runs += 1
    if probabilities is not None:
        probabilities.append(probs.float() / runs)
    return probs.argmax(dim=1)


def predict(model: Segmenter | torch.nn.Module, images: torch.Tensor, mode: Mode = "whole",
            crop: tuple[int, int] = (1024, 1024), stride: tuple[int, int] = (768, 768),
            autocast: torch.dtype | None = None, window_batch: int = 8) -> torch.Tensor:
    """Argmax labels (B, H, W) for RGB images (B, 3, H, W) on the 0–255 scale, uint8 unless the model has
    more than 256 classes (then int64), on the model's device: ``segment_batch`` at the image's own size.

    `autocast` (e.g. torch.bfloat16 or torch.float16 on a GPU) runs the model under torch.autocast; logits
    are still resized and accumulated in float32. The model runs in eval mode and is restored afterwards.
    """
    model = as_segmenter(model)
    check_input_size(model, tuple(images.shape[-2:]), mode, crop, stride)
    settings = EvalSettings(mode=mode, crop=crop, stride=stride, window_batch=window_batch)
    device = next(model.parameters()).device
    amp = torch.autocast(device.type, dtype=autocast) if autocast is not None else nullcontext()
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), amp:
            labels = segment_batch(model, images.to(device), settings)
    finally:
        model.train(was_training)
    return labels.to(torch.uint8) if model.num_classes <= 256 else labels
