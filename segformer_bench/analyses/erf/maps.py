"""Effective receptive fields (ERF), by the recipe of RepLKNet (Ding et al., CVPR 2022, its ``erf`` tools; reused
by SLaK and VMamba).

For a feature map F (B, C, h, w) of an input x (B, 3, H, W), the contribution map of one image is the
positive part of ∂s/∂x summed over RGB, with s = Σ_k ReLU(F_k[h // 2, w // 2]) — the response of the
centre position. Maps are averaged over images (an image whose gradient is not finite is skipped and
counted). Two normalisations are reported: log10(A + 1) / max (the paper's figures; depends on the
gradient's scale) and (A / max) ** 0.25 (scale-free). The high-contribution area ratio r(t) is the area,
relative to the image, of the smallest centred odd square whose normalised contribution exceeds t of the
total; None when no square does.

Taps, the same for SegFormer and DeepLabV3+ (the model protocol's ``features``): ``stage1``…``stage4`` (the
encoder's four outputs: SegFormer after each stage's norm, DeepLabV3+ ResNet layer1–4), ``fused`` (the decoder
feature before the classifier: SegFormer after linear_fuse + BN + ReLU, DeepLabV3+ its last 3×3 conv) and
``logits``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ...models.base import TAPS  # the taps this package's model families offer
from ...models.segmenter import Segmenter

THRESHOLDS: tuple[float, ...] = (0.2, 0.3, 0.5, 0.99)


def taps(model: Segmenter, x: torch.Tensor, names: Sequence[str] = TAPS) -> dict[str, torch.Tensor]:
    """The named feature maps of `model` (a Segmenter, or a module with the protocol's ``features``) for network
    input `x` (one forward pass)."""
    return model.network_features(x, names) if isinstance(model, Segmenter) else model.features(x, names)


def centre_response(feature: torch.Tensor) -> torch.Tensor:
    """Σ over images and channels of ReLU(F[:, :, h // 2, w // 2]): the scalar whose gradient is the ERF."""
    h, w = feature.shape[-2:]
    return torch.relu(feature[:, :, h // 2, w // 2]).sum()


def contribution_maps(model: Segmenter | torch.nn.Module, images: torch.Tensor,
                      names: Sequence[str] = TAPS) -> dict[str, torch.Tensor]:
    """Per tap, the (B, H, W) positive-gradient maps of a batch of network inputs (B, 3, H, W): the gradient is
    taken with respect to the model's own (preprocessed) input, as RepLKNet does.

    Images are independent in eval mode, so one backward pass per tap serves the whole batch.
    """
    was_training = model.training
    model.eval()
    try:
        x = images.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            feats = taps(model, x, names)
            maps = {}
            for i, name in enumerate(names):
                (grad,) = torch.autograd.grad(centre_response(feats[name]), x, retain_graph=i < len(names) - 1)
                maps[name] = grad.clamp(min=0).sum(dim=1).detach()  # B, H, W
    finally:
        model.train(was_training)
    return maps


def cover_crop(image: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """A (3, H, W) float tensor on the 0–255 scale: `image` (h, w, 3) resized (bilinear, keeping its aspect) to
    the smallest size covering `size` = (H, W), then centre-cropped to it — the same spatial size for every
    image, so that maps can be averaged. Identity when the image already has that size."""
    H, W = size
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float()[None]  # 1, 3, h, w
    h, w = x.shape[-2:]
    if (h, w) != (H, W):
        scale = max(H / h, W / w)
        rh, rw = max(H, math.ceil(h * scale - 1e-9)), max(W, math.ceil(w * scale - 1e-9))
        if (rh, rw) != (h, w):
            x = F.interpolate(x, size=(rh, rw), mode="bilinear", align_corners=False)
        top, left = (rh - H) // 2, (rw - W) // 2
        x = x[..., top: top + H, left: left + W]
    return x[0]


class ERFAccumulator:
    """Running sums of contribution maps per tap, over batches of images; skips non-finite maps."""

    def __init__(self, names: Sequence[str] = TAPS) -> None:
        self.names = tuple(names)
        self.sums: dict[str, np.ndarray] = {}
        self.count = {n: 0 for n in self.names}
        self.skipped = {n: 0 for n in self.names}

    def add(self, maps: dict[str, torch.Tensor]) -> None:
        for name in self.names:
            m = maps[name].double().cpu().numpy()
            ok = np.isfinite(m).all(axis=(1, 2))
            self.skipped[name] += int((~ok).sum())
            if ok.any():
                total = m[ok].sum(axis=0)
                self.sums[name] = self.sums[name] + total if name in self.sums else total
                self.count[name] += int(ok.sum())

    def means(self) -> dict[str, np.ndarray]:
        return {n: self.sums[n] / self.count[n] for n in self.names if self.count[n]}

    def merge(self, sums: Mapping[str, np.ndarray], count: Mapping[str, int], skipped: Mapping[str, int]) -> None:
        """Add another accumulator's totals (a stored block)."""
        for name in self.names:
            if count.get(name, 0):
                s = np.asarray(sums[name], dtype=np.float64)
                self.sums[name] = self.sums[name] + s if name in self.sums else s
                self.count[name] += int(count[name])
            self.skipped[name] += int(skipped.get(name, 0))


def normalise_log(a: np.ndarray) -> np.ndarray:
    """log10(A + 1) / max (RepLKNet's figures)."""
    a = np.log10(np.asarray(a, dtype=np.float64) + 1)
    return a / a.max() if a.max() > 0 else a


def normalise_power(a: np.ndarray, power: float = 0.25) -> np.ndarray:
    """(A / max) ** power: independent of the gradient's overall scale."""
    a = np.asarray(a, dtype=np.float64)
    return (a / a.max()) ** power if a.max() > 0 else a


def area_ratio(a: np.ndarray, threshold: float) -> float | None:
    """Area (fraction of the map) of the smallest centred odd square holding more than `threshold` of the
    map's total; None if no such square fits in the map."""
    a = np.asarray(a, dtype=np.float64)
    H, W = a.shape
    total = a.sum()
    if total <= 0:
        return None
    cy, cx = H // 2, W // 2
    for half in range(0, min(cy, cx, H - 1 - cy, W - 1 - cx) + 1):
        side = 2 * half + 1
        if a[cy - half: cy + half + 1, cx - half: cx + half + 1].sum() > threshold * total:
            return side * side / (H * W)
    return None


def area_ratios(a: np.ndarray, thresholds: Iterable[float] = THRESHOLDS) -> dict[float, float | None]:
    return {t: area_ratio(a, t) for t in thresholds}
