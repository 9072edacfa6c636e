"""The resolution-shift and ERF analyses: stored numbers against independent recomputations, resume, two ranks,
and their reports."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import segformer_bench as sb
from segformer_bench.analyses.corruption.store import cell_matrices
from segformer_bench.analyses.erf.report import NOT_REACHED, ModelERF, area_table, maps_npz, merge_blocks
from segformer_bench.analyses.erf.store import blocks as erf_blocks
from segformer_bench.analyses.resolution.report import resolution_report, resolution_table, summarize_resolution
from segformer_bench.analyses.resolution.store import ResolutionResult
from segformer_bench.analyses.resolution.store import results as resolution_results
from segformer_bench.analyses.stats import paired_change
from segformer_bench.bench.runner import run_suite
from segformer_bench.bench.suite import load_suite
from segformer_bench.config import ConfigError
from segformer_bench.data import build_dataset
from segformer_bench.engine.evaluate import evaluate
from segformer_bench.engine.inference import EvalSettings
from segformer_bench.engine.metrics import scores
from segformer_bench.models.base import normalize

from ..helpers import (
    SIZE,
    analyses_suite,
    images_loaded_in_browser,
    needs_browser,
    run_then_kill_9,
    run_two_gloo_ranks,
    stored,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _quiet(_: str) -> None:
    pass


# --- suites --------------------------------------------------------------------------------------------------


# --- runner: stored numbers and resume -------------------------------------------------------------------------


def _resolution_rows(run) -> dict:
    return stored(run, resolution_results)


def _erf_blocks(run) -> dict:
    return stored(run, erf_blocks)


def _hand_erf(model: torch.nn.Module, image: np.ndarray, stage: int) -> np.ndarray:
    """One image's ERF of encoder stage `stage`, written out: ∂ Σ_k ReLU(F_k[centre]) / ∂x, positive part, RGB sum."""
    x = normalize(torch.from_numpy(image).permute(2, 0, 1)[None].float()).requires_grad_(True)
    model.eval()
    f = model.encoder.forward_features(x)[stage]
    h, w = f.shape[-2:]
    f[0, :, h // 2, w // 2].relu().sum().backward()
    return x.grad[0].clamp(min=0).sum(0).double().numpy()


def test_resolution_and_erf_numbers_are_independent_recomputations(tmp_path):
    suite = load_suite(analyses_suite(tmp_path))
    run = run_suite(suite, tmp_path / "run", progress=False, render=False, log=_quiet)
    rows = _resolution_rows(run)
    assert sorted(rows) == [("Mix", "2x"), ("Mix", "crop"), ("PE", "2x"), ("PE", "crop")]
    # each row is evaluate() of the checkpoint on that test's images with that test's settings
    pe = sb.load_model(tmp_path / "pe.pt")
    big = build_dataset("synthcity", "val", size=[64, 128], length=5)
    whole = evaluate(pe, big, EvalSettings(mode="whole"), limit=3)
    assert np.array_equal(rows[("PE", "2x")].per_image, whole.per_image)
    assert rows[("PE", "2x")].names == tuple(whole.names) and rows[("PE", "2x")].input_size == (64, 128)
    small = build_dataset("synthcity", "val", size=SIZE, length=5)
    slide = evaluate(pe, small, EvalSettings(mode="slide", crop=(32, 32), stride=(24, 24)), limit=3)
    assert np.array_equal(rows[("PE", "crop")].per_image, slide.per_image)
    assert rows[("PE", "crop")].input_size == (32, 32)
    # ERF blocks: images 0-1, 2-3, 4 (all five: `limit` is for evaluation); sums = per-image maps by hand
    blocks = _erf_blocks(run)
    assert sorted(blocks) == [("DL", 0), ("DL", 1), ("DL", 2), ("Mix", 0), ("Mix", 1), ("Mix", 2)]
    assert blocks[("Mix", 2)]["names"] == [big.name(4)] and blocks[("Mix", 2)]["counts"] == {"stage1": 1, "logits": 1}
    mix = sb.load_model(tmp_path / "mix.pt")
    erf_images = build_dataset("synthcity", "val", size=SIZE, length=5)
    from segformer_bench.analyses.erf.maps import cover_crop

    hand = sum(_hand_erf(mix, cover_crop(erf_images[i]["image"], (40, 40)).permute(1, 2, 0).numpy(), 0)
               for i in (2, 3))
    np.testing.assert_allclose(blocks[("Mix", 1)]["sums"]["stage1"], hand, rtol=1e-4, atol=1e-9 * np.abs(hand).max())


def test_cover_crop_resizes_to_cover_then_centre_crops():
    from segformer_bench.analyses.erf.maps import cover_crop

    image = np.arange(4 * 8 * 3, dtype=np.uint8).reshape(4, 8, 3)
    assert torch.equal(cover_crop(image, (4, 8)), torch.from_numpy(image).permute(2, 0, 1).float())
    crop = cover_crop(image, (4, 4))  # no resize needed: the centre 4 columns
    assert torch.equal(crop, torch.from_numpy(image[:, 2:6]).permute(2, 0, 1).float())
    up = cover_crop(image, (8, 8))  # ×2 to 8×16, then the centre 8 columns
    ref = torch.nn.functional.interpolate(torch.from_numpy(image).permute(2, 0, 1)[None].float(), size=(8, 16),
                                          mode="bilinear", align_corners=False)[0, :, :, 4:12]
    assert torch.equal(up, ref)


def test_interrupted_analyses_resume_with_the_uninterrupted_numbers(tmp_path, monkeypatch):
    import segformer_bench.analyses.erf.run as erf_run
    import segformer_bench.analyses.resolution.run as resolution_run

    suite = load_suite(analyses_suite(tmp_path))
    reference = run_suite(suite, tmp_path / "whole", progress=False, render=False, log=_quiet)
    # a run that dies in its second resolution test, then (rerun) in its second ERF block
    real_evaluate, real_block = resolution_run.evaluate, erf_run.erf_block
    calls: list[str] = []

    def dying_evaluate(*args, **kwargs):
        calls.append(kwargs["desc"])
        if len(calls) == 2 and die["evaluate"]:
            raise KeyboardInterrupt
        return real_evaluate(*args, **kwargs)

    def dying_block(spec, model, dataset, indices, device, taps):
        calls.append(f"erf {indices}")
        if len([c for c in calls if c.startswith("erf")]) == 2 and die["erf"]:
            raise KeyboardInterrupt
        return real_block(spec, model, dataset, indices, device, taps)

    die = {"evaluate": True, "erf": False}
    monkeypatch.setattr(resolution_run, "evaluate", dying_evaluate)
    monkeypatch.setattr(erf_run, "erf_block", dying_block)
    with pytest.raises(KeyboardInterrupt):
        run_suite(suite, tmp_path / "run", progress=False, render=False, log=_quiet)
    assert list(_resolution_rows(tmp_path / "run")) == [("Mix", "crop")]
    calls.clear()
    die.update(evaluate=False, erf=True)
    with pytest.raises(KeyboardInterrupt):
        run_suite(suite, tmp_path / "run", progress=False, render=False, log=_quiet)
    assert calls[:3] == ["Mix 2x", "PE crop", "PE 2x"]  # the finished test is not recomputed
    assert sorted(_erf_blocks(tmp_path / "run")) == [("DL", 0)]
    calls.clear()
    die.update(erf=False)
    run_suite(suite, tmp_path / "run", progress=False, render=False, log=_quiet)
    assert calls == ["erf [2, 3]", "erf [4]", "erf [0, 1]", "erf [2, 3]", "erf [4]"]  # DL's 1-2, then Mix
    done, want = _resolution_rows(tmp_path / "run"), _resolution_rows(reference)
    assert sorted(done) == sorted(want)
    for key in want:
        assert np.array_equal(done[key].per_image, want[key].per_image)
    blocks, want_blocks = _erf_blocks(tmp_path / "run"), _erf_blocks(reference)
    assert sorted(blocks) == sorted(want_blocks)
    for key, block in want_blocks.items():
        assert blocks[key]["names"] == block["names"]
        for tap, a in block["sums"].items():
            np.testing.assert_array_equal(blocks[key]["sums"][tap], a)


def test_report_of_a_run_with_every_analysis(tmp_path):
    from segformer_bench.cli import main

    path = analyses_suite(tmp_path, analyses=["corruption", "resolution", "erf"],
                       corruptions={"protocol": "segformer", "cells": [["contrast", 1]], "models": ["Mix"]})
    run, out = tmp_path / "run", tmp_path / "report"
    assert main(["run", path, "--run-dir", str(run), "--no-progress", "--no-report"]) == 0
    assert main(["report", str(run), "--out", str(out)]) == 0
    for name in ("table.md", "resolution.md", "resolution.tex", "resolution.csv", "resolution.png", "erf.png",
                 "erf_power.png", "erf_area.md", "erf_area.tex", "erf_area.csv", "erf_maps.npz", "index.html"):
        assert (out / name).is_file(), name
    page = (out / "index.html").read_text()
    for heading in ("Corruption robustness", "Resolution shift", "Effective receptive field", "ERF area ratios"):
        assert f"<h2>{heading}</h2>" in page
    with np.load(out / "erf_maps.npz") as f:
        assert {"DL/stage1", "DL/logits", "Mix/stage1", "Mix/logits", "Mix/images"} <= set(f.files)
        assert f["Mix/stage1"].shape == (40, 40) and int(f["Mix/stage1/count"]) == 5
        blocks = _erf_blocks(run)
        np.testing.assert_allclose(f["Mix/stage1"], sum(blocks[("Mix", b)]["sums"]["stage1"] for b in range(3)) / 5)
    rows = (out / "erf_area.md").read_text().splitlines()
    assert [r.split("|")[1].strip() for r in rows if r.startswith("| ") and "·" in r][1:] == [
        "DL · Stage 1", "DL · Head (logits)", "Mix · Stage 1", "Mix · Head (logits)"]  # Figure 3 order: DL first


@needs_browser
def test_the_page_of_every_analysis_loads_in_a_headless_browser(tmp_path):
    from segformer_bench.bench.runner import render_run

    suite = load_suite(analyses_suite(tmp_path, erf={"models": ["Mix"], "images": 2, "size": [32, 32]}))
    run = run_suite(suite, tmp_path / "run", progress=False, render=False, log=_quiet)
    out = render_run(run, tmp_path / "report", log=_quiet)
    assert images_loaded_in_browser(out / "index.html", tmp_path / "profile") == (3, 3)


# --- reports against hand computations ------------------------------------------------------------------------


def _cm(tp0: int, tp1: int, x01: int = 0, x10: int = 0) -> np.ndarray:
    return np.array([[tp0, x01], [x10, tp1]], dtype=np.int64)


def _miou(cm: np.ndarray) -> float:
    iou = [cm[k, k] / (cm[k].sum() + cm[:, k].sum() - cm[k, k]) for k in range(2)]
    return sum(iou) / 2


def test_resolution_summary_by_hand():
    a = np.stack([_cm(8, 2, 1, 1), _cm(5, 5)])  # baseline, images x and y
    b = np.stack([_cm(6, 2, 2, 2), _cm(4, 4, 1, 1)])
    results = {("M", "base"): ResolutionResult(a, ("x", "y"), (768, 768)),
               ("M", "big"): ResolutionResult(b, ("x", "y"), (1024, 2048)),
               ("N", "base"): ResolutionResult(a, ("x", "y"), (768, 768)),
               ("N", "big"): ResolutionResult(b[:1], ("x",), (1024, 2048))}
    summary = summarize_resolution(results, ["base", "big"], None, n_resamples=200, seed=3)
    assert summary.baseline == "base" and summary.input_size == {"base": (768, 768), "big": (1024, 2048)}
    assert summary.miou[("M", "base")] == pytest.approx(_miou(a.sum(0)))
    change = summary.change[("M", "big")]
    assert change.value == pytest.approx(_miou(b.sum(0)) - _miou(a.sum(0)))
    assert change.low <= change.value <= change.high
    unpaired = summary.change[("N", "big")]  # different images: no interval
    assert unpaired.value == pytest.approx(_miou(b[0]) - _miou(a.sum(0))) and math.isnan(unpaired.low)
    table = resolution_table(summary, include_published=True)
    assert table.columns == ["base", "big", "Δ big"]
    assert table.rows[0][1][:2] == [f"{100 * _miou(a.sum(0)):.1f}", f"{100 * _miou(b.sum(0)):.1f}"]
    assert table.rows[0][1][2].startswith("−")
    assert [r[0] for r in table.rows[2:]] == ["PE (published)", "Mix-FFN (published)"]
    assert table.rows[2][1] == ["77.3", "74.0", "−3.3"] and table.rows[3][1] == ["80.5", "79.8", "−0.7"]
    files, sections = resolution_report(results, ["base", "big"], "base", False, n_resamples=50)
    assert "PE (published)" not in files["resolution.md"] and files["resolution.png"].startswith(b"\x89PNG")
    other = {k: ResolutionResult(r.per_image, r.names, (32, 32) if k[1] == "base" else (64, 128))
             for k, r in results.items()}  # not the paper's test sizes: its rows would not fit
    assert "(published)" not in resolution_report(other, ["base", "big"], "base", True, n_resamples=50)[0][
        "resolution.md"]


def test_paired_change_of_identical_sides_is_exactly_zero():
    a = np.stack([_cm(8, 2, 1, 1), _cm(5, 5), _cm(1, 9, 3, 0)])
    c = paired_change(a, a, n_resamples=100)
    assert (c.value, c.low, c.high) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="same images"):
        paired_change(a, a[:2])
    assert scores(a.sum(0))["mIoU"] == pytest.approx(_miou(a.sum(0)))


def test_erf_blocks_merge_to_the_mean_and_report_unreached_thresholds():
    ones = np.ones((5, 5))
    peak = np.zeros((5, 5))
    peak[2, 2] = 4.0
    blocks = {("M", 0): {"names": ["a", "b"], "sums": {"stage1": 2 * ones, "logits": peak},
                         "counts": {"stage1": 2, "logits": 1}, "skipped": {"stage1": 0, "logits": 1}},
              ("M", 1): {"names": ["c"], "sums": {"stage1": 4 * ones, "logits": peak},
                         "counts": {"stage1": 1, "logits": 1}, "skipped": {"stage1": 0, "logits": 0}}}
    erfs = merge_blocks(blocks)
    m = erfs["M"]
    assert m.images == ("a", "b", "c") and m.counts == {"stage1": 3, "logits": 2} and m.skipped["logits"] == 1
    np.testing.assert_array_equal(m.maps["stage1"], 2 * ones)
    np.testing.assert_array_equal(m.maps["logits"], peak)
    table = area_table(erfs)
    stage1 = dict(zip(table.columns, table.rows[0][1], strict=True))
    # a flat 5×5 map: the 3×3 square holds 9/25 = 36 % > 30 %, the 5×5 square 100 %; under both normalisations
    assert table.rows[0][1][:4] == ["36.00", "36.00", "100.00", "100.00"]
    assert list(stage1)[:4] == ["t = 20 %", "t = 30 %", "t = 50 %", "t = 99 %"]
    # a single peak: the 1×1 square holds everything (1/25 = 4 %)
    assert table.rows[1][1] == ["4.00"] * 8
    flat_edge = {("E", 0): {"names": ["e"], "sums": {"stage1": np.pad(np.zeros((1, 1)), 2, constant_values=1.0)},
                            "counts": {"stage1": 1}, "skipped": {"stage1": 0}}}
    edge = area_table(merge_blocks(flat_edge))  # all mass on the border: 99 % needs the full 5×5 square
    assert edge.rows[0][1][3] == "100.00"
    wide = {("W", 0): {"names": ["w"], "sums": {"stage1": np.pad(np.zeros((1, 3)), ((0, 0), (0, 1)),
                                                                   constant_values=1.0)},
                       "counts": {"stage1": 1}, "skipped": {"stage1": 0}}}  # 1×4: no centred square can grow
    assert area_table(merge_blocks(wide)).rows[0][1][0] == NOT_REACHED
    raw = np.load(__import__("io").BytesIO(maps_npz({"M": ModelERF(m.maps, m.counts, m.skipped, m.images)})))
    np.testing.assert_array_equal(raw["M/stage1"], 2 * ones)
    assert list(raw["M/images"]) == ["a", "b", "c"]


def test_a_models_own_eval_settings_apply_to_it_only(tmp_path):
    from segformer_bench.bench.suite import SUITES_DIR
    from segformer_bench.engine.evaluate import eval_settings

    slide = {"mode": "slide", "crop": [32, 32], "stride": [24, 24]}
    path = analyses_suite(tmp_path, analyses=["corruption"], resolution=None, erf=None,
                       corruptions={"protocol": "segformer", "cells": [["contrast", 1]], "models": ["Mix", "PE"]},
                       models=[{"name": "Mix", "variant": "b0", "checkpoint": "mix.pt"},
                               {"name": "PE", "variant": "b0", "checkpoint": "pe.pt", "eval": slide}])
    run = run_suite(load_suite(path), tmp_path / "run", progress=False, render=False, log=_quiet)
    cells = stored(run, cell_matrices)
    ds = build_dataset("synthcity", "val", size=SIZE, length=5)
    for name, settings in (("Mix", EvalSettings(mode="whole")),
                           ("PE", EvalSettings(mode="slide", crop=(32, 32), stride=(24, 24)))):
        want = evaluate(sb.load_model(tmp_path / f"{name.lower()}.pt"), ds, settings, limit=3)
        assert np.array_equal(cells[(name, "clean", 0)], want.per_image), name
    # the ADE20K suite tests B5 at short side 640 as released, the others at 512
    ade = load_suite(SUITES_DIR / "ade20k_c.yaml")
    scales = {m.name: eval_settings(ade.eval.preset, ade.eval.overrides, m.eval, where="ade").img_scale
              for m in ade.models}
    assert scales["SegFormer-B5"] == (2048, 640) and scales["SegFormer-B0"] == (2048, 512)


def test_kill_9_during_erf_then_resume_gives_the_uninterrupted_maps(tmp_path):
    import subprocess

    path = analyses_suite(tmp_path, analyses=["erf"], erf={"models": ["Mix"], "images": 12, "block": 1,
                                                           "size": [64, 64], "dataset_options": {"length": 12}})
    cmd = run_then_kill_9(path, tmp_path / "killed", "erf", 1)
    assert 1 <= len(_erf_blocks(tmp_path / "killed")) < 12  # it really was interrupted, after a block
    subprocess.run([*cmd, str(tmp_path / "killed")], check=True, capture_output=True)
    subprocess.run([*cmd, str(tmp_path / "straight")], check=True, capture_output=True)
    killed, straight = _erf_blocks(tmp_path / "killed"), _erf_blocks(tmp_path / "straight")
    assert sorted(killed) == sorted(straight) == [("Mix", b) for b in range(12)]
    for key, block in straight.items():
        for tap, a in block["sums"].items():
            np.testing.assert_array_equal(killed[key]["sums"][tap], a)


def test_two_ranks_store_the_resolution_and_erf_numbers_of_one_process(tmp_path):
    path = analyses_suite(tmp_path)
    run_two_gloo_ranks(path, tmp_path / "ddp")
    run_suite(load_suite(path), tmp_path / "one", progress=False, render=False, log=_quiet)
    ddp, one = _resolution_rows(tmp_path / "ddp"), _resolution_rows(tmp_path / "one")
    assert sorted(ddp) == sorted(one)
    for key, row in one.items():
        assert np.array_equal(ddp[key].per_image, row.per_image) and ddp[key].names == row.names
    ddp_blocks, one_blocks = _erf_blocks(tmp_path / "ddp"), _erf_blocks(tmp_path / "one")
    assert sorted(ddp_blocks) == sorted(one_blocks)
    for key, block in one_blocks.items():
        assert ddp_blocks[key]["names"] == block["names"]
        for tap, a in block["sums"].items():
            np.testing.assert_allclose(ddp_blocks[key]["sums"][tap], a, rtol=1e-6, atol=0)


def test_only_the_reports_the_suite_asks_for_are_written(tmp_path):
    from segformer_bench.bench.runner import render_run

    path = analyses_suite(tmp_path, reports=["tables"], erf={"models": ["Mix"], "images": 2, "size": [32, 32]})
    run = run_suite(load_suite(path), tmp_path / "run", progress=False, render=False, log=_quiet)
    from segformer_bench.analyses.erf.maps import TAPS

    assert set(_erf_blocks(run)[("Mix", 0)]["sums"]) == set(TAPS)  # no taps listed: all of them
    out = render_run(run, tmp_path / "tables", log=_quiet)
    assert sorted(p.name for p in out.iterdir()) == ["erf_area.csv", "erf_area.md", "erf_area.tex", "erf_maps.npz",
                                                    "resolution.csv", "resolution.md", "resolution.tex",
                                                    "resolution_calibration.csv", "resolution_calibration.md",
                                                    "resolution_calibration.tex", "run_time.csv", "run_time.md",
                                                    "run_time.tex"]


def test_erf_over_a_listed_set_of_images(tmp_path):
    listed = ["synthcity/val/000003", "synthcity/val/000001", "synthcity/val/000004"]
    path = analyses_suite(tmp_path, analyses=["erf"], erf={"models": ["Mix"], "names": listed, "block": 2,
                                                        "size": [32, 32]})
    run = run_suite(load_suite(path), tmp_path / "run", progress=False, render=False, log=_quiet)
    blocks = _erf_blocks(run)
    assert [blocks[("Mix", b)]["names"] for b in (0, 1)] == [listed[:2], listed[2:]]
    bad = analyses_suite(tmp_path, analyses=["erf"], erf={"names": ["synthcity/val/000009"]})
    with pytest.raises(sb.UserError, match=r"erf.names: 1 image\(s\) not in the dataset, e.g. 'synthcity/val/000009'"):
        run_suite(load_suite(bad), tmp_path / "bad", progress=False, render=False, log=_quiet)
    with pytest.raises(ConfigError, match="lists an image more than once"):
        load_suite(analyses_suite(tmp_path, erf={"names": listed[:1] * 2}))
