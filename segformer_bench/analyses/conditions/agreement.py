"""Does Cityscapes-C predict real conditions? Rank agreement across models between each corruption's mIoU and
each condition's mIoU, with bootstrap intervals over images.

For every corruption of the protocol (its mIoU the mean over its severities, as the corruption table averages
them), plus the clean images and the mean over all corruptions as two reference rows, and for every condition
other than the clean reference: Spearman's ρ and Kendall's τ-b across the models that have both. The interval
resamples images: one multinomial draw of the corruption dataset's images and one of the condition's images per
resample (``stats.resample_counts``), the same draw for every model and every cell, so each resample ranks the
models on one resampled set of images. Where a condition holds the very images of the corruption cells (SynthCity
rendered in fog), the two draws are the same — paired — since ``resample_counts`` is seeded by (seed, number of
images). The interval reflects the choice of images only: which models were compared is fixed, and with few
models a rank correlation takes few values — ``MIN_MODELS`` is the least number shown at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..stats import Interval, image_features, miou_from_features, percentile_interval, resample_counts

MIN_MODELS = 3  # fewer: ρ and τ are ±1 or undefined, whatever the models do
CLEAN_ROW, MEAN_ROW = "clean", "mean"


@dataclass(frozen=True)
class Agreement:
    corruption: str  # a corruption, or CLEAN_ROW / MEAN_ROW
    condition: str
    models: tuple[str, ...]
    spearman: Interval
    kendall: Interval


def spearman(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's ρ of each row of x and y (R, M): Pearson's r of their average ranks; NaN for a constant row."""
    from scipy.stats import rankdata

    rx, ry = rankdata(x, axis=-1), rankdata(y, axis=-1)
    rx, ry = rx - rx.mean(-1, keepdims=True), ry - ry.mean(-1, keepdims=True)
    den = np.sqrt((rx * rx).sum(-1) * (ry * ry).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (rx * ry).sum(-1) / np.where(den > 0, den, 1), np.nan)


def kendall(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's τ-b of each row of x and y (R, M), ties counted as scipy's ``kendalltau`` counts them."""
    i, j = np.triu_indices(x.shape[-1], k=1)
    sx, sy = np.sign(x[..., i] - x[..., j]), np.sign(y[..., i] - y[..., j])
    n0 = i.size
    den = np.sqrt((n0 - (sx == 0).sum(-1)) * (n0 - (sy == 0).sum(-1)).astype(np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (sx * sy).sum(-1) / np.where(den > 0, den, 1), np.nan)


def _resampled_miou(matrices: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """(1 + R,) mIoU of all images, then of each resample (draws (R, N))."""
    f = image_features(matrices)
    n = f.shape[0]
    weights = np.vstack([np.ones((1, n)), draws])
    return miou_from_features((weights @ f.reshape(n, -1)).reshape(len(weights), *f.shape[1:]))


def _interval(values: np.ndarray, confidence: float) -> Interval:
    point, samples = float(values[0]), values[1:]
    samples = samples[np.isfinite(samples)]
    if not np.isfinite(point) or samples.size == 0:
        return Interval(point, float("nan"), float("nan"))
    return percentile_interval(point, samples, confidence)


def rank_agreement(cells: Mapping[tuple[str, str, int], np.ndarray],
                   conditions: Mapping[tuple[str, str], np.ndarray],
                   corruptions: Sequence[tuple[str, Sequence[int]]], targets: Sequence[str], models: Sequence[str],
                   *, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> list[Agreement]:
    """Agreement of every corruption row with every target condition.

    `cells`: (model, corruption, severity) → per-image confusion matrices, the clean set as ("clean", 0);
    `conditions`: (model, condition) → per-image matrices; `corruptions`: (corruption, severities) in protocol
    order. A row uses the models that have every cell it needs and the target; fewer than MIN_MODELS give NaN.
    """
    rows: dict[str, list[tuple[str, int]]] = {CLEAN_ROW: [("clean", 0)]}
    rows.update({c: [(c, s) for s in sev] for c, sev in corruptions})
    # per model: (1 + R,) resampled mIoU of each row (mean over severities), and of each target
    row_miou: dict[tuple[str, str], np.ndarray] = {}
    target_miou: dict[tuple[str, str], np.ndarray] = {}
    draws: dict[int, np.ndarray] = {}  # one draw per number of images, shared by every model and cell

    def drawn(n: int) -> np.ndarray:
        if n not in draws:
            draws[n] = resample_counts(n, n_resamples, seed)
        return draws[n]

    for m in models:
        for row, needed in rows.items():
            if all((m, *k) in cells for k in needed):
                values = [_resampled_miou(cells[(m, *k)], drawn(len(cells[(m, *k)]))) for k in needed]
                row_miou[(m, row)] = np.mean(values, axis=0)
        per_corruption = [row_miou.get((m, c)) for c, _ in corruptions]
        if corruptions and all(v is not None for v in per_corruption):
            row_miou[(m, MEAN_ROW)] = np.mean(per_corruption, axis=0)
        for t in targets:
            if (m, t) in conditions:
                target_miou[(m, t)] = _resampled_miou(conditions[(m, t)], drawn(len(conditions[(m, t)])))
    out = []
    for row in [*rows, MEAN_ROW]:
        for t in targets:
            both = tuple(m for m in models if (m, row) in row_miou and (m, t) in target_miou)
            if len(both) < MIN_MODELS:
                nan = Interval(float("nan"), float("nan"), float("nan"))
                out.append(Agreement(row, t, both, nan, nan))
                continue
            x = np.stack([row_miou[(m, row)] for m in both], axis=-1)  # (1 + R, M)
            y = np.stack([target_miou[(m, t)] for m in both], axis=-1)
            out.append(Agreement(row, t, both, _interval(spearman(x, y), confidence),
                                 _interval(kendall(x, y), confidence)))
    return out
