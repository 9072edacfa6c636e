"""Robustness scores against the paper's published rows, hand computations and explicit resampling."""

from __future__ import annotations

import math

import numpy as np
import pytest

from segformer_bench.analyses.corruption.robustness import (
    PUBLISHED,
    aggregate_row,
    bootstrap,
    degradations,
    paired_difference,
    per_class_iou,
    published_summary,
    resampled_cells,
    summarize,
)
from segformer_bench.analyses.stats import cell_miou, resample_counts
from segformer_bench.corruptions.protocols import Protocol
from segformer_bench.engine.metrics import scores
from segformer_bench.report.tables import round_half_even

# The SegFormer paper's Cityscapes-C table (arXiv 2105.15203v3), typed in again here: its column order and two rows.
PAPER_COLUMNS = ("motion_blur", "defocus_blur", "glass_blur", "gaussian_blur", "gaussian_noise", "impulse_noise",
                 "shot_noise", "speckle_noise", "brightness", "contrast", "saturate", "jpeg_compression", "snow",
                 "spatter", "fog", "frost")
PAPER_ROWS = {
    "SegFormer-B5": (82.4, "69.1 68.6 64.1 69.8 57.8 63.4 52.3 72.8 81.0 77.7 80.1 58.8 40.7 68.4 78.5 49.9"),
    "DeepLabv3+ R101": (77.1, "59.1 56.3 47.7 57.3 13.2 13.9 16.3 36.9 59.2 54.5 41.5 37.4 11.9 47.8 55.1 22.7"),
}

# Two corruptions in two groups; c1 at severities 1 and 2, c2 at severity 1 only.
TINY = Protocol("tiny", (("a", ("c1",)), ("b", ("c2",))), (("c1", (1, 2)), ("c2", (1,))))


def cm_with_miou(percent: int) -> np.ndarray:
    """A 2-class confusion matrix whose mIoU is exactly percent / 100.

    [[2k, 100−k], [100−k, 2k]]: each class has I = 2k and U = 2k + 2(100−k) = 200, so IoU = k/100.
    """
    k = percent
    return np.array([[2 * k, 100 - k], [100 - k, 2 * k]], np.int64)


def results_from(mious: dict[str, dict[tuple[str, int], int]], n_images: int = 3) -> dict:
    """Results whose every image has the same matrix, so each cell's mIoU is the given percentage."""
    return {(model, c, s): np.repeat(cm_with_miou(k)[None], n_images, axis=0)
            for model, cells in mious.items() for (c, s), k in cells.items()}


M = {("clean", 0): 80, ("c1", 1): 60, ("c1", 2): 40, ("c2", 1): 65}
R = {("clean", 0): 90, ("c1", 1): 70, ("c1", 2): 50, ("c2", 1): 80}


# --- the published rows -----------------------------------------------------------------------------------


def test_published_data_is_the_papers_table():
    for name, (clean, row) in PAPER_ROWS.items():
        published = PUBLISHED[name]
        assert published.clean == clean
        assert published.by_corruption() == dict(zip(PAPER_COLUMNS, map(float, row.split()), strict=True))


@pytest.mark.parametrize(("name", "mpc", "rpc"),
                         [("SegFormer-B5", "65.81", "79.9"), ("DeepLabv3+ R101", "39.42", "51.1")])
def test_published_rows_aggregate_to_the_papers_mpc_and_rpc(name: str, mpc: str, rpc: str):
    summary = published_summary(PUBLISHED[name])
    assert f"{round_half_even(100 * summary.mpc, 2):.2f}" == mpc
    assert f"{round_half_even(100 * summary.rpc, 1):.1f}" == rpc
    # unrounded: the plain mean of the 16 printed cells (B5: 1053.0 / 16; DeepLabv3+: 630.8 / 16)
    clean, row = PAPER_ROWS[name]
    assert 100 * summary.mpc == pytest.approx(sum(map(float, row.split())) / 16, abs=1e-9)
    assert summary.rpc == pytest.approx(sum(map(float, row.split())) / 16 / clean, abs=1e-12)


def test_rounding_is_half_even_on_the_decimal_value():
    # DeepLabv3+'s mPC comes out of the fractions as 39.425000000000004: a plain format prints 39.43
    noisy = 100 * published_summary(PUBLISHED["DeepLabv3+ R101"]).mpc
    assert f"{39.425000000000004:.2f}" == "39.43" and round_half_even(39.425000000000004, 2) == 39.42
    assert round_half_even(noisy, 2) == 39.42
    assert round_half_even(65.8125, 2) == 65.81
    assert round_half_even(0.135, 2) == 0.14 and round_half_even(0.125, 2) == 0.12
    assert math.isnan(round_half_even(math.nan, 1))


def test_aggregate_row_takes_the_protocols_column_order():
    s = aggregate_row(0.8, [0.5, 0.65], TINY)
    assert s.corruptions == {"c1": 0.5, "c2": 0.65} and s.mpc == pytest.approx(0.575)
    with pytest.raises(ValueError, match="2 corruption columns"):
        aggregate_row(0.8, [0.5], TINY)


# --- hand computations ------------------------------------------------------------------------------------


def test_cell_miou_sums_matrices_before_dividing():
    # image 1 sees only class 0 (IoU 0.9, class 1: 0), image 2 only class 1: per-image mIoUs are 0.45 each,
    # but over the set each class has I = 9, U = 11.
    matrices = np.array([[[9, 1], [0, 0]], [[0, 0], [1, 9]]])
    assert cell_miou(matrices) == pytest.approx(9 / 11)


def test_mpc_rpc_by_hand():
    s = summarize(results_from({"M": M, "R": R}), TINY)
    m, r = s["M"], s["R"]
    assert m.clean == pytest.approx(0.80)
    assert m.corruptions == {"c1": pytest.approx(0.50), "c2": pytest.approx(0.65)}  # c1: (60 + 40) / 2
    assert m.groups == {"a": pytest.approx(0.50), "b": pytest.approx(0.65)}
    assert m.mpc == pytest.approx(0.575) and m.rpc == pytest.approx(0.575 / 0.80)
    assert r.mpc == pytest.approx((0.60 + 0.80) / 2) and r.rpc == pytest.approx(0.70 / 0.90)


def test_cd_rcd_by_hand():
    d = degradations(results_from({"M": M, "R": R}), TINY, "R")
    m = d["M"]
    # D = 1 − mIoU. c1: ΣD = 0.4 + 0.6, ΣD_ref = 0.3 + 0.5 → 1.25; c2: 0.35 / 0.20 → 1.75
    assert m.cd == {"c1": pytest.approx(1.25), "c2": pytest.approx(1.75)} and m.mcd == pytest.approx(1.5)
    # rCD c1: ((0.4 − 0.2) + (0.6 − 0.2)) / ((0.3 − 0.1) + (0.5 − 0.1)) = 1.0; c2: (0.35 − 0.2) / (0.2 − 0.1) = 1.5
    assert m.rcd == {"c1": pytest.approx(1.0), "c2": pytest.approx(1.5)} and m.mrcd == pytest.approx(1.25)
    assert d["R"].mcd == pytest.approx(1.0) and d["R"].mrcd == pytest.approx(1.0) and d["M"].reference == "R"


def test_zero_denominators_give_nan():
    unharmed = {**R, ("c2", 1): 90}  # the reference loses nothing to c2: rCD's denominator is 0
    d = degradations(results_from({"M": M, "R": unharmed}), TINY, "R")["M"]
    assert math.isnan(d.rcd["c2"]) and math.isnan(d.mrcd)
    assert d.rcd["c1"] == pytest.approx(1.0) and d.cd["c2"] == pytest.approx(0.35 / 0.10)
    perfect = {key: 100 for key in R}  # D_ref = 0 everywhere: CD's denominator is 0
    d = degradations(results_from({"M": M, "R": perfect}), TINY, "R")["M"]
    assert all(math.isnan(v) for v in d.cd.values()) and math.isnan(d.mcd)


def test_a_missing_cell_makes_its_corruption_and_mpc_nan():
    partial = {k: v for k, v in M.items() if k != ("c1", 2)}
    s = summarize(results_from({"M": partial}), TINY)["M"]
    assert math.isnan(s.corruptions["c1"]) and s.corruptions["c2"] == pytest.approx(0.65)
    assert math.isnan(s.mpc) and math.isnan(s.rpc)


def test_per_class_iou_by_hand():
    clean, corrupted = per_class_iou(results_from({"M": M}), TINY)["M"]
    assert clean == pytest.approx([0.8, 0.8])  # both classes of cm_with_miou have IoU k / 100
    assert corrupted == pytest.approx([0.575, 0.575])  # severities first (c1: 0.5), then corruptions


def test_missing_clean_cell_is_an_error():
    with pytest.raises(ValueError, match="no clean cell"):
        summarize(results_from({"M": {k: v for k, v in M.items() if k != ("clean", 0)}}), TINY)


# --- bootstrap --------------------------------------------------------------------------------------------


def random_results(n_images: int, seed: int = 0, models: tuple[str, ...] = ("A", "B")) -> dict:
    """Per-image 3-class matrices whose accuracy varies from image to image (and with the corruption)."""
    rng = np.random.default_rng(seed)
    out = {}
    for m, model in enumerate(models):
        for c, s in [("clean", 0), *TINY.cells()]:
            accuracy = np.clip(rng.normal(0.85 - 0.05 * m - 0.1 * s, 0.08, n_images), 0.05, 1.0)
            pixels = rng.integers(100, 1000, (n_images, 3))
            cms = np.zeros((n_images, 3, 3), np.int64)
            for i in range(n_images):
                for k in range(3):
                    right = int(pixels[i, k] * accuracy[i])
                    cms[i, k, k] = right
                    cms[i, k, (k + 1) % 3] = pixels[i, k] - right
            out[(model, c, s)] = cms
    return out


def test_resampled_miou_equals_scores_of_the_resampled_images():
    # the vectorised path (counts @ per-image features) against explicit index resampling + metrics.scores
    results = random_results(12)
    counts = resample_counts(12, 5, seed=7)
    fast = resampled_cells(results, "A", TINY, 5, seed=7)
    for b in range(5):
        images = np.repeat(np.arange(12), counts[b].astype(int))
        for c, s in [("clean", 0), ("c1", 2), ("c2", 1)]:
            assert fast[(c, s)][b] == pytest.approx(scores(results[("A", c, s)][images].sum(axis=0))["mIoU"], abs=1e-12)


def test_interval_contains_the_point_estimate():
    results = random_results(40)
    point = summarize(results, TINY)
    intervals = bootstrap(results, TINY, n_resamples=300, seed=1)
    for model in ("A", "B"):
        for name, value in (("clean", point[model].clean), ("mPC", point[model].mpc), ("rPC", point[model].rpc)):
            ci = intervals[model][name]
            assert ci.value == pytest.approx(value)
            assert ci.low <= ci.value <= ci.high and ci.low < ci.high


def test_interval_shrinks_with_more_images():
    def width(n: int) -> float:
        ci = bootstrap(random_results(n, seed=3), TINY, n_resamples=400, seed=0)["A"]["mPC"]
        return ci.high - ci.low

    assert width(400) < width(25) / 2  # ≈ 1/√N: 4× narrower expected


def test_bootstrap_is_deterministic_for_a_seed():
    results = random_results(30)
    assert bootstrap(results, TINY, n_resamples=200, seed=5) == bootstrap(results, TINY, n_resamples=200, seed=5)
    assert bootstrap(results, TINY, n_resamples=200, seed=5) != bootstrap(results, TINY, n_resamples=200, seed=6)


def test_identical_images_give_a_degenerate_interval():
    intervals = bootstrap(results_from({"M": M, "R": R}, n_images=8), TINY, reference_model="R", n_resamples=100)
    for name, expected in (("clean", 0.8), ("mPC", 0.575), ("a", 0.5), ("mCD", 1.5), ("mrCD", 1.25)):
        ci = intervals["M"][name]
        assert (ci.low, ci.value, ci.high) == pytest.approx((expected,) * 3, abs=1e-12)
    assert (intervals["R"]["mCD"].low, intervals["R"]["mCD"].high) == pytest.approx((1.0, 1.0))


def test_paired_difference_of_a_model_with_itself_is_zero():
    results = random_results(30)
    ci = paired_difference(results, TINY, "A", "A", n_resamples=200)
    assert (ci.value, ci.low, ci.high) == (0.0, 0.0, 0.0)


def test_paired_difference_cancels_shared_image_difficulty():
    # B is A with 5 % of every image's correct pixels moved off the diagonal: the same hard and easy images,
    # so resampling them together cancels most of the variance of the difference
    a = random_results(60, models=("A",))
    b = {}
    for (_, c, s), cms in a.items():
        moved = cms.copy()
        shift = (np.einsum("nkk->nk", cms) * 0.05).astype(np.int64)
        for k in range(3):
            moved[:, k, k] -= shift[:, k]
            moved[:, k, (k + 2) % 3] += shift[:, k]
        b[("B", c, s)] = moved
    results = a | b
    diff = paired_difference(results, TINY, "A", "B", statistic="clean", n_resamples=500)
    point = summarize(results, TINY)
    assert diff.value == pytest.approx(point["A"].clean - point["B"].clean) and diff.value > 0
    assert diff.low <= diff.value <= diff.high
    separate = bootstrap(results, TINY, n_resamples=500)
    unpaired = math.hypot(*(separate[m]["clean"].high - separate[m]["clean"].low for m in ("A", "B")))
    assert diff.high - diff.low < unpaired / 4


def test_paired_difference_needs_the_same_images():
    results = random_results(10) | {k: v[:5] for k, v in random_results(10, models=("C",)).items()}
    with pytest.raises(ValueError, match="same images"):
        paired_difference(results, TINY, "A", "C")
    with pytest.raises(ValueError, match="unknown statistic"):
        paired_difference(results, TINY, "A", "B", statistic="mCE")
