"""Statistics every analysis shares: a cell's mIoU from per-image confusion matrices, and percentile bootstrap
intervals over images.

A per-image confusion matrix (rows ground truth, columns prediction) reduces to three linear features per
class — intersection, label area, prediction area — so a bootstrap resample's summed matrix is one matrix
product of multinomial image counts with the stacked features, for all resamples at once. mIoU is always
computed from *summed* counts (Σ intersection / Σ union over images), as mmseg and cityscapesScripts do.
The resample counts are seeded with (seed, number of images): two results on the same images are resampled
identically, so their differences are paired.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..engine.metrics import scores


@dataclass(frozen=True)
class Interval:
    """A point estimate and its percentile bootstrap interval."""

    value: float
    low: float
    high: float


def cell_miou(matrices: np.ndarray) -> float:
    """mIoU of one cell from its (N, K, K) per-image matrices (summed first), as :func:`metrics.scores` defines it."""
    return scores(np.asarray(matrices).sum(axis=0))["mIoU"]


def image_features(matrices: np.ndarray) -> np.ndarray:
    """(N, 3, K) per-image intersection, label area and prediction area: all IoU needs, and linear in images."""
    m = np.asarray(matrices, np.float64)  # float64: summed counts exceed float32's exact range (2**24)
    return np.stack([np.diagonal(m, axis1=1, axis2=2), m.sum(axis=2), m.sum(axis=1)], axis=1)


def miou_from_features(f: np.ndarray) -> np.ndarray:
    """mIoU from summed features (..., 3, K), exactly as metrics.scores: classes with zero union are skipped."""
    intersect, label, pred = f[..., 0, :], f[..., 1, :], f[..., 2, :]
    union = label + pred - intersect
    present = union > 0
    iou = intersect / np.where(present, union, 1.0)
    n = present.sum(axis=-1)
    return np.where(n > 0, (iou * present).sum(axis=-1) / np.maximum(n, 1), np.nan)


def resample_counts(n_images: int, n_resamples: int, seed: int) -> np.ndarray:
    """(n_resamples, n_images) multinomial counts: image i appears counts[b, i] times in resample b.

    The generator is seeded with (seed, n_images), so a model's intervals do not depend on which other
    models are in the results, and models on the same images get the same resamples (paired).
    """
    rng = np.random.default_rng([seed, n_images])
    return rng.multinomial(n_images, np.full(n_images, 1.0 / n_images), size=n_resamples).astype(np.float64)


def percentile_interval(value: float, samples: np.ndarray, confidence: float) -> Interval:
    alpha = (1.0 - confidence) / 2.0
    low, high = np.percentile(samples, [100 * alpha, 100 * (1 - alpha)])
    return Interval(float(value), float(low), float(high))


def check_bootstrap_args(n_resamples: int, confidence: float) -> None:
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be ≥ 1, got {n_resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def paired_change(before: np.ndarray, after: np.ndarray, *, n_resamples: int = 1000, confidence: float = 0.95,
                  seed: int = 0) -> Interval:
    """mIoU(after) − mIoU(before) for per-image confusion matrices of the same images in the same order (the
    same scenes at two test resolutions, say), with a paired percentile bootstrap interval over images."""
    check_bootstrap_args(n_resamples, confidence)
    before, after = np.asarray(before), np.asarray(after)
    if before.shape[0] != after.shape[0]:
        raise ValueError(f"paired_change needs the same images on both sides, got {before.shape[0]} and "
                         f"{after.shape[0]}")
    n = before.shape[0]
    counts = resample_counts(n, n_resamples, seed)  # (B, N)
    fa, fb = image_features(after), image_features(before)
    value = float(miou_from_features(fa.sum(0)) - miou_from_features(fb.sum(0)))
    diff = (miou_from_features((counts @ fa.reshape(n, -1)).reshape(n_resamples, *fa.shape[1:]))
            - miou_from_features((counts @ fb.reshape(n, -1)).reshape(n_resamples, *fb.shape[1:])))
    return percentile_interval(value, diff, confidence)


def miou_interval(matrices: np.ndarray, *, n_resamples: int = 1000, confidence: float = 0.95,
                  seed: int = 0) -> Interval:
    """mIoU of (N, K, K) per-image confusion matrices with a percentile bootstrap interval over images."""
    check_bootstrap_args(n_resamples, confidence)
    f = image_features(matrices)
    n = f.shape[0]
    counts = resample_counts(n, n_resamples, seed)
    samples = miou_from_features((counts @ f.reshape(n, -1)).reshape(n_resamples, *f.shape[1:]))
    return percentile_interval(float(miou_from_features(f.sum(0))), samples, confidence)


def ece_interval(counts: np.ndarray, *, n_resamples: int = 1000, confidence: float = 0.95,
                 seed: int = 0) -> Interval:
    """The ECE of (N, 3·bins + 3) per-image calibration counts (``calibration.calibration_counts``) with a
    percentile bootstrap interval over images; the resamples are :func:`resample_counts`' (the same images as an
    mIoU interval of the same images draw). NaN when the images hold no pixel."""
    from ..calibration import ece

    check_bootstrap_args(n_resamples, confidence)
    counts = np.asarray(counts, np.float64)
    value = ece(counts)
    if not np.isfinite(value):
        return Interval(value, value, value)
    samples = np.array([ece(row) for row in resample_counts(counts.shape[0], n_resamples, seed) @ counts])
    return percentile_interval(value, samples[np.isfinite(samples)], confidence)


def unpaired_change(before: np.ndarray, after: np.ndarray, *, n_resamples: int = 1000, confidence: float = 0.95,
                    seed: int = 0) -> Interval:
    """mIoU(after) − mIoU(before) for per-image confusion matrices of different images (a clean set and real
    fog, say), each side resampled on its own (:func:`resample_counts`), with a percentile bootstrap interval."""
    check_bootstrap_args(n_resamples, confidence)
    fa, fb = image_features(after), image_features(before)

    def samples(f: np.ndarray) -> np.ndarray:
        n = f.shape[0]
        return miou_from_features((resample_counts(n, n_resamples, seed) @ f.reshape(n, -1))
                                  .reshape(n_resamples, *f.shape[1:]))

    value = float(miou_from_features(fa.sum(0)) - miou_from_features(fb.sum(0)))
    return percentile_interval(value, samples(fa) - samples(fb), confidence)
