"""Calibration of per-pixel class probabilities: per-image counts that add up, and the scores made from them.

``calibration_counts(probs, labels, bins=15)`` reduces a batch of probabilities (B, K, H, W) to, per image and
per equal-width confidence bin, the number of non-ignored pixels, their summed top-label confidence and how many
of them are correct, plus the image's summed NLL (−log p_label) and summed Brier score (Σ_k (p_k − 1[k =
label])²) and its pixel count. Counts of several images simply add, so the ECE of a set of images — and its
bootstrap interval — comes from stored per-image counts as mIoU comes from per-image confusion matrices.

Top-label ECE as Guo et al. (ICML 2017) define it: bin b holds the confidences in ((b − 1)/M, b/M] (so a
confidence of exactly 1 is in the last bin; torchmetrics' ``MulticlassCalibrationError`` bins [(b − 1)/M, b/M)
and gives exactly 1 a bin of its own: the two agree wherever no confidence lies on a bin edge), ECE =
Σ_b (n_b / N)·|acc_b − conf_b|, MCE = max over non-empty bins of |acc_b − conf_b|.
"""

from __future__ import annotations

import numpy as np
import torch

IGNORE_INDEX = 255
DEFAULT_BINS = 15  # equal-width confidence bins of every analysis's stored counts (Guo et al.'s choice)
# the columns of a counts array's last axis: bins × (pixels, summed confidence, correct), then 3 totals
TOTALS = ("nll", "brier", "pixels")


def calibration_counts(probs: torch.Tensor, labels: torch.Tensor, bins: int = DEFAULT_BINS,
                       ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """Per-image calibration counts (B, 3·bins + 3) float64 of probabilities (B, K, H, W) and labels (B, H, W):
    for each bin its pixels, summed confidence and correct pixels (``[:, :3·bins]`` reshapes to (B, bins, 3)),
    then the summed NLL, the summed Brier score and the number of non-ignored pixels."""
    if probs.ndim != 4 or labels.shape != (probs.shape[0], *probs.shape[2:]):
        raise ValueError(f"calibration_counts needs probs (B, K, H, W) and labels (B, H, W), got "
                         f"{tuple(probs.shape)} and {tuple(labels.shape)}")
    if type(bins) is not int or bins < 1:
        raise ValueError(f"bins must be a whole number ≥ 1, got {bins!r}")
    p = probs.detach().float()  # sums are taken in float64; the (K, pixels) array itself stays float32
    B, K = p.shape[:2]
    labels = labels.long()
    out = torch.zeros((B, 3 * bins + 3), dtype=torch.float64, device=p.device)
    for i in range(B):
        valid = labels[i] != ignore_index
        pi = p[i].flatten(1)[:, valid.flatten()]  # K, N
        y = labels[i][valid]
        if y.numel() == 0:
            continue
        if int(y.max()) >= K or int(y.min()) < 0:
            raise ValueError(f"labels hold class ids outside 0–{K - 1} (and {ignore_index} for ignored)")
        conf, pred = pi.max(dim=0)
        conf = conf.double()
        index = (torch.ceil(conf * bins).long() - 1).clamp(0, bins - 1)  # ((b − 1)/M, b/M]
        n = torch.bincount(index, minlength=bins).double()
        s = torch.bincount(index, weights=conf, minlength=bins)
        c = torch.bincount(index, weights=(pred == y).double(), minlength=bins)
        out[i, :3 * bins] = torch.stack([n, s, c], dim=1).flatten()
        p_label = pi.gather(0, y[None])[0].double()
        out[i, 3 * bins] = -torch.log(p_label.clamp(min=torch.finfo(torch.float64).tiny)).sum()
        # Σ_k (p_k − 1[k = y])² = Σ_k p_k² − 2·p_y + 1
        out[i, 3 * bins + 1] = ((pi * pi).sum(dim=0).double() - 2 * p_label + 1).sum()
        out[i, 3 * bins + 2] = float(y.numel())
    return out.cpu().numpy()


def _summed(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    c = np.asarray(counts, dtype=np.float64)
    total = c.reshape(-1, c.shape[-1]).sum(axis=0)
    bins = (total.shape[0] - 3) // 3
    if total.shape[0] != 3 * bins + 3 or bins < 1:
        raise ValueError(f"not calibration counts: last axis of {total.shape[0]} values")
    return total[:3 * bins].reshape(bins, 3), total[3 * bins:]


def ece(counts: np.ndarray) -> float:
    """The ECE of all the images whose counts (…, 3·bins + 3) are given (summed over the leading axes); NaN
    when they hold no pixel."""
    per_bin, totals = _summed(counts)
    n, conf, correct = per_bin.T
    if totals[2] == 0:
        return float("nan")
    nonempty = n > 0
    gap = np.abs(correct[nonempty] - conf[nonempty])  # n_b · |acc_b − conf_b|
    return float(gap.sum() / totals[2])


def mce(counts: np.ndarray) -> float:
    """The largest |acc_b − conf_b| over the non-empty bins of the summed counts; NaN without pixels."""
    per_bin, _ = _summed(counts)
    n, conf, correct = per_bin.T
    nonempty = n > 0
    if not nonempty.any():
        return float("nan")
    return float(np.max(np.abs(correct[nonempty] - conf[nonempty]) / n[nonempty]))


def nll(counts: np.ndarray) -> float:
    """Mean −log p_label over the pixels of the summed counts."""
    _, totals = _summed(counts)
    return float(totals[0] / totals[2]) if totals[2] else float("nan")


def brier(counts: np.ndarray) -> float:
    """Mean Σ_k (p_k − 1[k = label])² over the pixels of the summed counts."""
    _, totals = _summed(counts)
    return float(totals[1] / totals[2]) if totals[2] else float("nan")
