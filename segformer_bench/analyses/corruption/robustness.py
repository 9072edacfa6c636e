"""Robustness scores from per-image confusion matrices: mPC, rPC, CD, rCD and bootstrap intervals.

The input is plain data: ``results[(model, corruption, severity)]`` is an ``(N, K, K)`` int64 array of
per-image confusion matrices (rows ground truth, columns prediction), the same N images in the same order
in every cell of a model; the clean cell is ``(model, "clean", 0)``. Everything here is a pure function of
it. Scores are fractions (0..1); reports multiply by 100.

* A cell's mIoU comes from its summed matrix (:func:`segformer_bench.metrics.scores`): IoU is Σ intersection /
  Σ union over the images, never a mean of per-image IoUs.
* Per corruption, the mIoU is averaged over the protocol's severities (the paper's table cells); group
  columns average their corruptions; **mPC** is the mean over all corruptions and **rPC** = mPC / clean mIoU
  (Michaelis et al.; the SegFormer paper, §4.4).
* **Corruption degradation** (Kamann & Rother, CVPR 2020, after ImageNet-C's CE), with D = 1 − mIoU, relative
  to a reference model: CD_c = Σ_s D_{s,c} / Σ_s D^ref_{s,c} and rCD_c = Σ_s (D_{s,c} − D_clean) /
  Σ_s (D^ref_{s,c} − D^ref_clean); mCD and mrCD average them over corruptions. 1.0 means "as fragile as the
  reference", lower is better.
* **Bootstrap intervals** resample the images with replacement and recompute each statistic from the
  resampled *summed* matrices, so an interval answers "how much would this number move on another draw of
  images from the same distribution". Resampling with replacement is drawing multinomial counts per image;
  a resample's summed matrix is then ``counts @ per_image``, one matrix product for all resamples and cells.
  Models evaluated on the same images are resampled with the same counts, so differences are paired.

Point estimates and resamples go through the same aggregation functions (:func:`corruption_means`,
:func:`aggregate`, :func:`degradation`), which accept floats or arrays of resamples alike; the paper's
published rows go through them too (:func:`published_summary`), which is the aggregator's regression check.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ...corruptions.protocols import PROTOCOLS, Protocol
from ...engine.metrics import scores
from ..stats import (
    Interval,
    cell_miou,
    check_bootstrap_args,
    image_features,
    miou_from_features,
    percentile_interval,
    resample_counts,
)

CLEAN = ("clean", 0)  # the (corruption, severity) key of the uncorrupted cell

Key = tuple[str, str, int]  # (model, corruption, severity)
Value = float | np.ndarray  # a point estimate, or one value per bootstrap resample


# --- cells -----------------------------------------------------------------------------------------------


def model_names(results: Mapping[Key, np.ndarray]) -> list[str]:
    """The models in `results`, in the order their first cell appears."""
    return list(dict.fromkeys(model for model, _, _ in results))


def cell_mious(results: Mapping[Key, np.ndarray]) -> dict[Key, float]:
    """mIoU of every cell, same keys as `results`."""
    return {key: cell_miou(matrices) for key, matrices in results.items()}


def _cells_of(mious: Mapping[Key, Value], model: str) -> dict[tuple[str, int], Value]:
    return {(c, s): v for (m, c, s), v in mious.items() if m == model}


# --- aggregation (shared by point estimates, bootstrap resamples and the published rows) ----------------


@dataclass(frozen=True)
class Summary:
    """One model's row of the robustness table (fractions, or arrays of resamples inside the bootstrap)."""

    clean: Value  # clean mIoU
    corruptions: dict[str, Value]  # per corruption: mIoU averaged over the protocol's severities
    groups: dict[str, Value]  # per group: mean of its corruptions
    mpc: Value  # mean performance under corruption: mean over corruptions
    rpc: Value  # relative performance under corruption: mpc / clean


@dataclass(frozen=True)
class Degradation:
    """Corruption degradation of one model relative to `reference` (1.0 = as fragile as the reference)."""

    reference: str
    cd: dict[str, Value]  # per corruption: Σ_s D / Σ_s D_ref, D = 1 − mIoU
    rcd: dict[str, Value]  # per corruption: Σ_s (D − D_clean) / Σ_s (D_ref − D_ref_clean)
    mcd: Value  # mean of cd over corruptions
    mrcd: Value  # mean of rcd over corruptions


def _ratio(numerator: Value, denominator: Value) -> Value:
    """numerator / denominator, NaN where the denominator is 0."""
    numerator, denominator = np.asarray(numerator, np.float64), np.asarray(denominator, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator != 0, numerator / np.where(denominator != 0, denominator, 1.0), np.nan)


def _scalar(value: Value) -> Value:
    """0-d arrays back to floats, so point estimates read as plain numbers."""
    return float(value) if np.ndim(value) == 0 else value


def _mean(values: Sequence[Value]) -> Value:
    """Plain mean of floats or same-shaped arrays; NaN if any input is NaN (a missing cell is not skipped: its
    NaN stands beside the resamples of the cells that are there)."""
    if not values:
        return math.nan
    return _scalar(np.mean(np.stack(np.broadcast_arrays(*[np.asarray(v, np.float64) for v in values])), axis=0))


def corruption_means(cells: Mapping[tuple[str, int], Value], protocol: Protocol) -> dict[str, Value]:
    """Per corruption, the mIoU averaged over the protocol's severities; NaN if any of those cells is missing.

    `cells` maps (corruption, severity) to mIoU (one model's cells). A corruption with a missing severity is
    NaN rather than a mean over fewer severities, which would not be comparable with a complete run.
    """
    return {c: _mean([cells.get((c, s), math.nan) for s in protocol.severities_of(c)]) for c in protocol.corruptions}


def aggregate(clean: Value, per_corruption: Mapping[str, Value], protocol: Protocol) -> Summary:
    """Group means, mPC and rPC from the clean mIoU and the per-corruption means (the one aggregation path).

    mPC is the mean over the protocol's corruptions (NaN if any is missing); rPC = mPC / clean (NaN if clean is 0).
    """
    corruptions = {c: per_corruption.get(c, math.nan) for c in protocol.corruptions}
    groups = {g: _mean([corruptions[c] for c in members]) for g, members in protocol.groups}
    mpc = _mean(list(corruptions.values()))
    return Summary(clean=_scalar(np.asarray(clean, np.float64)), corruptions=corruptions, groups=groups, mpc=mpc,
                   rpc=_scalar(_ratio(mpc, clean)))


def aggregate_row(clean: float, row: Sequence[float] | Mapping[str, float], protocol: Protocol) -> Summary:
    """:func:`aggregate` for a table row: per-corruption mIoUs in the protocol's column order (or by name)."""
    if not isinstance(row, Mapping):
        if len(row) != len(protocol.corruptions):
            raise ValueError(f"a {protocol.name} row has {len(protocol.corruptions)} corruption columns, "
                             f"got {len(row)}")
        row = dict(zip(protocol.corruptions, row, strict=True))
    return aggregate(clean, row, protocol)


def degradation(cells: Mapping[tuple[str, int], Value], clean: Value, reference_cells: Mapping[tuple[str, int], Value],
                reference_clean: Value, protocol: Protocol, reference: str = "reference") -> Degradation:
    """CD and rCD per corruption, and their means, of one model's cells against a reference model's cells.

    Sums run over the protocol's severities. A zero denominator (the reference has mIoU 1 on every severity
    for CD; for rCD, the reference loses nothing to the corruption, or gains as much as it loses) gives NaN
    for that corruption, and so NaN for mCD / mrCD: a ratio to nothing is undefined, not 0 or infinity. A
    missing cell also gives NaN.
    """
    cd, rcd = {}, {}
    for c in protocol.corruptions:
        severities = protocol.severities_of(c)
        d = [1.0 - np.asarray(cells.get((c, s), math.nan), np.float64) for s in severities]
        d_ref = [1.0 - np.asarray(reference_cells.get((c, s), math.nan), np.float64) for s in severities]
        d_clean, d_ref_clean = 1.0 - np.asarray(clean, np.float64), 1.0 - np.asarray(reference_clean, np.float64)
        cd[c] = _scalar(_ratio(sum(d), sum(d_ref)))
        rcd[c] = _scalar(_ratio(sum(x - d_clean for x in d), sum(x - d_ref_clean for x in d_ref)))
    return Degradation(reference=reference, cd=cd, rcd=rcd, mcd=_mean(list(cd.values())),
                       mrcd=_mean(list(rcd.values())))


# --- point estimates from results ------------------------------------------------------------------------


def _clean_of(cells: Mapping[tuple[str, int], Value], model: str) -> Value:
    if CLEAN not in cells:
        raise ValueError(f"results have no clean cell ({model!r}, 'clean', 0); every model needs one")
    return cells[CLEAN]


def summarize(results: Mapping[Key, np.ndarray], protocol: Protocol) -> dict[str, Summary]:
    """Each model's :class:`Summary` (clean, per-corruption and group means, mPC, rPC), in model order."""
    mious = cell_mious(results)
    out = {}
    for model in model_names(results):
        cells = _cells_of(mious, model)
        out[model] = aggregate(_clean_of(cells, model), corruption_means(cells, protocol), protocol)
    return out


def degradations(results: Mapping[Key, np.ndarray], protocol: Protocol, reference_model: str) -> dict[str, Degradation]:
    """Each model's :class:`Degradation` relative to `reference_model` (which gets CD = rCD = 1)."""
    models = model_names(results)
    if reference_model not in models:
        raise ValueError(f"reference model {reference_model!r} is not in the results ({', '.join(models)})")
    mious = cell_mious(results)
    ref = _cells_of(mious, reference_model)
    out = {}
    for model in models:
        cells = _cells_of(mious, model)
        out[model] = degradation(cells, _clean_of(cells, model), ref, _clean_of(ref, reference_model), protocol,
                                 reference_model)
    return out


def per_class_iou(results: Mapping[Key, np.ndarray], protocol: Protocol) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per model: (clean IoU per class, IoU per class averaged over corruptions), each (K,).

    The corrupted value averages each corruption's severities first, then the corruptions, as mPC does; a
    class that is NaN in a cell (absent and never predicted) is skipped in that average.
    """
    out = {}
    for model in model_names(results):
        iou = {(c, s): np.asarray(scores(np.asarray(m).sum(axis=0))["IoU"])
               for (name, c, s), m in results.items() if name == model}
        clean = _clean_of(iou, model)
        with warnings.catch_warnings():  # an all-NaN class stays NaN; that is the answer, not a problem
            warnings.simplefilter("ignore", RuntimeWarning)
            per_corruption = [np.nanmean([iou[(c, s)] for s in protocol.severities_of(c) if (c, s) in iou], axis=0)
                              for c in protocol.corruptions
                              if any((c, s) in iou for s in protocol.severities_of(c))]
            corrupted = np.nanmean(per_corruption, axis=0) if per_corruption else np.full_like(clean, np.nan)
        out[model] = (clean, corrupted)
    return out


# --- bootstrap -------------------------------------------------------------------------------------------


def _statistics(cells: Mapping[tuple[str, int], Value], protocol: Protocol,
                reference_cells: Mapping[tuple[str, int], Value] | None) -> dict[str, Value]:
    """The named statistics of one model (clean, mPC, rPC, each group, and mCD/mrCD with a reference)."""
    summary = aggregate(cells[CLEAN], corruption_means(cells, protocol), protocol)
    stats = {"clean": summary.clean, "mPC": summary.mpc, "rPC": summary.rpc, **summary.groups}
    if reference_cells is not None:
        d = degradation(cells, cells[CLEAN], reference_cells, reference_cells[CLEAN], protocol)
        stats |= {"mCD": d.mcd, "mrCD": d.mrcd}
    return stats


def resampled_cells(results: Mapping[Key, np.ndarray], model: str, protocol: Protocol, n_resamples: int,
                     seed: int) -> dict[tuple[str, int], np.ndarray]:
    """Per cell of `model` (protocol cells and clean): its mIoU in each of the resamples, (n_resamples,)."""
    keys = [k for k in [CLEAN, *protocol.cells()] if (model, *k) in results]
    if CLEAN not in keys:
        raise ValueError(f"results have no clean cell ({model!r}, 'clean', 0); every model needs one")
    stacked = [np.asarray(results[(model, *k)]) for k in keys]
    n_images = {m.shape[0] for m in stacked}
    if len(n_images) != 1:
        raise ValueError(f"model {model!r}: cells have different image counts {sorted(n_images)}; "
                         "the bootstrap needs the same images in every cell")
    (n,) = n_images
    features = np.stack([image_features(m) for m in stacked], axis=1)  # (N, cells, 3, K)
    counts = resample_counts(n, n_resamples, seed)  # (B, N)
    sums = (counts @ features.reshape(n, -1)).reshape(n_resamples, *features.shape[1:])  # (B, cells, 3, K)
    mious = miou_from_features(sums)  # (B, cells)
    return {k: mious[:, i] for i, k in enumerate(keys)}


def bootstrap(results: Mapping[Key, np.ndarray], protocol: Protocol, *, reference_model: str | None = None,
              n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> dict[str, dict[str, Interval]]:
    """Percentile bootstrap intervals over images for each model's statistics.

    Returns ``{model: {name: Interval}}`` with names ``clean``, ``mPC``, ``rPC``, one per protocol group, and
    ``mCD``, ``mrCD`` when `reference_model` is given (resampled together with the reference, which must
    have been evaluated on the same images). Each interval's `value` is the point estimate on all images.
    Deterministic for a given `seed`.
    """
    check_bootstrap_args(n_resamples, confidence)
    models = model_names(results)
    if reference_model is not None:
        if reference_model not in models:
            raise ValueError(f"reference model {reference_model!r} is not in the results ({', '.join(models)})")
        _check_same_images(results, models, reference_model)
    mious = cell_mious(results)
    resampled = {m: resampled_cells(results, m, protocol, n_resamples, seed) for m in models}
    out = {}
    for model in models:
        cells = _cells_of(mious, model)
        point = _statistics(cells, protocol, None if reference_model is None else _cells_of(mious, reference_model))
        samples = _statistics(resampled[model], protocol,
                              None if reference_model is None else resampled[reference_model])
        out[model] = {name: percentile_interval(point[name], samples[name], confidence) for name in point}
    return out


def _check_same_images(results: Mapping[Key, np.ndarray], models: Sequence[str], reference: str) -> None:
    """Paired resampling needs the same images for both models; the count is what the data lets us check."""
    def count(model: str) -> int:
        key = (model, *CLEAN)
        if key not in results:
            raise ValueError(f"results have no clean cell {key}; every model needs one")
        return np.asarray(results[key]).shape[0]

    n_ref = count(reference)
    for model in models:
        if count(model) != n_ref:
            raise ValueError(f"a paired bootstrap needs the same images: {model!r} has {count(model)}, "
                             f"{reference!r} has {n_ref}")


def paired_difference(results: Mapping[Key, np.ndarray], protocol: Protocol, model_a: str, model_b: str, *,
                      statistic: str = "mPC", n_resamples: int = 1000, confidence: float = 0.95,
                      seed: int = 0) -> Interval:
    """Paired bootstrap interval of `statistic`(model_a) − `statistic`(model_b).

    Both models are resampled with the same image counts, so image difficulty cancels out of the
    difference. That is only meaningful if both were evaluated on the same image list in the same order
    (the runner guarantees it; here it is checked as far as the data allows: the same number of images).
    `statistic` is ``clean``, ``mPC``, ``rPC`` or a protocol group name.
    """
    check_bootstrap_args(n_resamples, confidence)
    models = model_names(results)
    for model in (model_a, model_b):
        if model not in models:
            raise ValueError(f"model {model!r} is not in the results ({', '.join(models)})")
    _check_same_images(results, [model_a], model_b)
    mious = cell_mious(results)
    points = [_statistics(_cells_of(mious, m), protocol, None) for m in (model_a, model_b)]
    if statistic not in points[0]:
        raise ValueError(f"unknown statistic {statistic!r}: choose one of {', '.join(points[0])}")
    samples = [_statistics(resampled_cells(results, m, protocol, n_resamples, seed), protocol, None)[statistic]
               for m in (model_a, model_b)]
    return percentile_interval(points[0][statistic] - points[1][statistic], samples[0] - samples[1], confidence)


# --- the paper's rows ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PublishedRow:
    """A row of the SegFormer paper's Cityscapes-C table, as printed (mIoU in %)."""

    model: str
    clean: float
    cells: tuple[float, ...]  # per corruption, in the segformer protocol's column order
    mpc: float  # as printed, for the regression check
    rpc: float  # as printed (%)
    source: str = "Xie et al., SegFormer (NeurIPS 2021, arXiv 2105.15203v3), Cityscapes-C table"

    def by_corruption(self, protocol: Protocol = PROTOCOLS["segformer"]) -> dict[str, float]:
        return dict(zip(protocol.corruptions, self.cells, strict=True))


# Column order: blur (motion, defocus, glass, gaussian) · noise (gaussian, impulse, shot, speckle) ·
# digital (brightness, contrast, saturate, jpeg) · weather (snow, spatter, fog, frost).
PUBLISHED: dict[str, PublishedRow] = {
    "SegFormer-B5": PublishedRow(
        "SegFormer-B5", 82.4,
        (69.1, 68.6, 64.1, 69.8, 57.8, 63.4, 52.3, 72.8, 81.0, 77.7, 80.1, 58.8, 40.7, 68.4, 78.5, 49.9),
        mpc=65.81, rpc=79.9),
    "DeepLabv3+ R101": PublishedRow(
        "DeepLabv3+ R101", 77.1,
        (59.1, 56.3, 47.7, 57.3, 13.2, 13.9, 16.3, 36.9, 59.2, 54.5, 41.5, 37.4, 11.9, 47.8, 55.1, 22.7),
        mpc=39.42, rpc=51.1),
}


def published_summary(row: PublishedRow, protocol: Protocol = PROTOCOLS["segformer"]) -> Summary:
    """A published row aggregated as fractions through :func:`aggregate_row`, the path measured rows take."""
    if set(protocol.corruptions) != set(PROTOCOLS["segformer"].corruptions):
        raise ValueError(f"the published rows use the segformer protocol's 16 corruptions, not {protocol.name!r}'s")
    by_name = row.by_corruption()
    return aggregate_row(row.clean / 100, {c: by_name[c] / 100 for c in protocol.corruptions}, protocol)


