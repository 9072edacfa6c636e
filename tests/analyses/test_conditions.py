"""The conditions analysis: units against a direct evaluation, resume and ranks, the synthetic-versus-real
agreement against scipy and a by-hand bootstrap, and the report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
import yaml

from segformer_bench.analyses.conditions import store as tables
from segformer_bench.analyses.conditions.agreement import MIN_MODELS, kendall, rank_agreement, spearman
from segformer_bench.analyses.corruption import store as cells
from segformer_bench.analyses.stats import resample_counts, unpaired_change
from segformer_bench.bench.runner import render_run, run_suite
from segformer_bench.bench.suite import load_suite
from segformer_bench.calibration import ece
from segformer_bench.data import build_dataset
from segformer_bench.engine.evaluate import EVAL_PRESETS, evaluate
from segformer_bench.engine.metrics import scores
from segformer_bench.models.open import open_model

from ..helpers import analyses_suite, cli_error, run_then_kill_9, run_two_gloo_ranks, stored

CONDITIONS = [{"name": "clear"}, {"name": "night", "options": {"condition": "night", "level": 4}},
              {"name": "larger", "options": {"size": [48, 96]}, "limit": 2}]


def conditions_suite(tmp_path, **changes) -> str:
    """Three tiny models on SynthCity: three corruption cells and three conditions (the clear scenes, the same
    scenes at night, and other images: larger renders of the first two scenes)."""
    data = {"analyses": ["corruption", "conditions"],
            "corruptions": {"cells": [["contrast", 2], ["gaussian_noise", 1], ["gaussian_noise", 2]],
                            "backend": "fast"},
            "conditions": {"reference": "clear", "conditions": CONDITIONS},
            "eval": {"preset": "whole", "overrides": {"batch_size": 2}}} | changes
    return analyses_suite(tmp_path, **data)


def test_rank_correlations_equal_scipy():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 4, (50, 6)).astype(float)  # ties on purpose
    y = rng.integers(0, 4, (50, 6)).astype(float)
    rho, tau = spearman(x, y), kendall(x, y)
    for i in range(50):
        want_rho = scipy.stats.spearmanr(x[i], y[i]).statistic
        want_tau = scipy.stats.kendalltau(x[i], y[i]).statistic
        np.testing.assert_allclose(rho[i], want_rho, atol=1e-12, equal_nan=True)
        np.testing.assert_allclose(tau[i], want_tau, atol=1e-12, equal_nan=True)


def _matrices(rng, n, k=3):
    return rng.integers(0, 20, (n, k, k)).astype(np.int64)


def test_agreement_against_scipy_and_a_bootstrap_by_hand():
    """Four models, one corruption at two severities, one condition on other images: the point estimate is scipy's
    ρ/τ of the per-model mIoUs (the corruption's the mean over severities), and each resample ranks the models on
    the images drawn (drawn twice = counted twice)."""
    rng = np.random.default_rng(1)
    models = ["a", "b", "c", "d"]
    cell = {(m, c, s): _matrices(rng, 5) for m in models for c, s in [("clean", 0), ("blur", 1), ("blur", 2)]}
    cond = {(m, "night"): _matrices(rng, 7) for m in models}
    out = {(a.corruption, a.condition): a for a in rank_agreement(cell, cond, [("blur", [1, 2])], ["night"], models,
                                                                   n_resamples=30, confidence=0.9, seed=4)}
    miou = lambda m: scores(m.sum(0))["mIoU"]  # noqa: E731
    x = [np.mean([miou(cell[(m, "blur", s)]) for s in (1, 2)]) for m in models]
    y = [miou(cond[(m, "night")]) for m in models]
    a = out[("blur", "night")]
    assert a.models == tuple(models)
    assert a.spearman.value == pytest.approx(scipy.stats.spearmanr(x, y).statistic)
    assert a.kendall.value == pytest.approx(scipy.stats.kendalltau(x, y).statistic)
    rhos = []
    for dc, dn in zip(resample_counts(5, 30, 4), resample_counts(7, 30, 4), strict=True):
        pick_c = np.repeat(np.arange(5), dc.astype(int))
        pick_n = np.repeat(np.arange(7), dn.astype(int))
        xb = [np.mean([miou(cell[(m, "blur", s)][pick_c]) for s in (1, 2)]) for m in models]
        yb = [miou(cond[(m, "night")][pick_n]) for m in models]
        rhos.append(scipy.stats.spearmanr(xb, yb).statistic)
    rhos = np.array(rhos)[np.isfinite(rhos)]
    assert a.spearman.low == pytest.approx(np.percentile(rhos, 5))
    assert a.spearman.high == pytest.approx(np.percentile(rhos, 95))
    clean = out[("clean", "night")]
    assert clean.spearman.value == pytest.approx(
        scipy.stats.spearmanr([miou(cell[(m, "clean", 0)]) for m in models], y).statistic)
    assert out[("mean", "night")].spearman.value == pytest.approx(a.spearman.value)  # one corruption: its mean


def test_too_few_models_give_no_number():
    rng = np.random.default_rng(2)
    models = ["a", "b"]
    cell = {(m, "blur", 1): _matrices(rng, 4) for m in models}
    cond = {(m, "fog"): _matrices(rng, 4) for m in models}
    (row, *_) = [a for a in rank_agreement(cell, cond, [("blur", [1])], ["fog"], models) if a.corruption == "blur"]
    assert len(row.models) == 2 < MIN_MODELS and np.isnan(row.spearman.value)


def test_unpaired_change_resamples_each_side():
    rng = np.random.default_rng(3)
    before, after = _matrices(rng, 6), _matrices(rng, 9)
    got = unpaired_change(before, after, n_resamples=40, confidence=0.8, seed=5)
    miou = lambda m: scores(m.sum(0))["mIoU"]  # noqa: E731
    diffs = [miou(after[np.repeat(np.arange(9), da.astype(int))])
             - miou(before[np.repeat(np.arange(6), db.astype(int))])
             for da, db in zip(resample_counts(9, 40, 5), resample_counts(6, 40, 5), strict=True)]
    assert got.value == pytest.approx(miou(after) - miou(before))
    assert (got.low, got.high) == pytest.approx(tuple(np.percentile(diffs, [10, 90])))


def test_run_stores_what_a_direct_evaluation_gives_and_reports(tmp_path):
    path = conditions_suite(tmp_path)
    run = run_suite(load_suite(path), tmp_path / "run", progress=False, log=lambda _: None)
    results = stored(run, tables.results)
    assert sorted(results) == sorted((m, c["name"]) for m in ("Mix", "PE", "DL") for c in CONDITIONS)
    # the "larger" condition by hand: SynthCity at 48×96, two images, the suite's eval settings
    model = open_model({"name": "PE", "variant": "b0", "checkpoint": str(tmp_path / "pe.pt")})
    dataset = build_dataset("synthcity", "val", None, size=[48, 96], length=5)
    settings = EVAL_PRESETS["whole"].__class__(**{**EVAL_PRESETS["whole"].__dict__, "batch_size": 2})
    direct = evaluate(model, dataset, settings, limit=2, calibration_bins=15)
    r = results[("PE", "larger")]
    np.testing.assert_array_equal(r.per_image, direct.per_image)
    assert r.names == tuple(direct.names) and len(r.names) == 2
    assert ece(r.calibration) == pytest.approx(ece(direct.calibration))
    # the clear condition is the suite's dataset: the corruption analysis's clean cell, image for image
    every = stored(run, cells.cell_matrices)
    np.testing.assert_array_equal(results[("Mix", "clear")].per_image, every[("Mix", "clean", 0)])
    out = tmp_path / "report"
    render_run(run, out, log=lambda _: None)
    text = (out / "conditions.md").read_text()
    for name in ("clear", "night", "larger", "Δ larger", "Mix", "PE", "DL"):
        assert name in text
    assert (out / "conditions.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import pandas as pd

    from segformer_bench.analyses.stats import paired_change

    frame = pd.read_csv(out / "conditions.csv").set_index(["model", "condition"])
    clear, night, larger = (results[("Mix", c)] for c in ("clear", "night", "larger"))
    paired = paired_change(clear.per_image, night.per_image, seed=0)  # the same scenes at night: paired
    assert frame.loc[("Mix", "night"), "change_low"] == pytest.approx(100 * paired.low, rel=1e-5)
    unpaired = unpaired_change(clear.per_image, larger.per_image, seed=0)  # other images: each side on its own
    assert frame.loc[("Mix", "larger"), "change_high"] == pytest.approx(100 * unpaired.high, rel=1e-5)
    agreement = (out / "agreement.csv").read_text().splitlines()
    assert agreement[0].startswith("corruption,condition,models,spearman")
    assert any(line.startswith("contrast,night,3,") for line in agreement)
    assert "ECE (%)" in (out / "conditions_calibration.md").read_text()
    assert (out / "conditions_reliability.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (out / "index.html").read_text()
    assert "Does Cityscapes-C predict the conditions?" in page and "Adverse conditions" in page
    assert "Reliability under adverse conditions" in page


def test_report_with_two_models_says_why_there_is_no_agreement(tmp_path):
    path = conditions_suite(tmp_path, models=[{"name": "Mix", "variant": "b0", "checkpoint": "mix.pt"},
                                              {"name": "DL", "variant": "deeplabv3plus-r50", "checkpoint": "dl.pt"}],
                            resolution=None, erf=None)
    run = run_suite(load_suite(path), tmp_path / "run", progress=False, render=False, log=lambda _: None)
    render_run(run, tmp_path / "report", log=lambda _: None)
    text = (tmp_path / "report" / "agreement.md").read_text()
    assert "not computed" in text and "2 models" in text and not (tmp_path / "report" / "agreement.png").exists()


def test_reference_run_supplies_the_cells_for_the_same_weights_only(tmp_path):
    first = conditions_suite(tmp_path, analyses=["corruption"])
    run_suite(load_suite(first), tmp_path / "cells", progress=False, render=False, log=lambda _: None)
    second = yaml.safe_load(Path(first).read_text())
    second |= {"analyses": ["conditions"], "conditions": second["conditions"] | {"reference_run": "cells"}}
    path = tmp_path / "second.yaml"
    path.write_text(yaml.safe_dump(second))
    run = run_suite(load_suite(path), tmp_path / "run", progress=False, render=False, log=lambda _: None)
    render_run(run, tmp_path / "report", log=lambda _: None)
    csv = (tmp_path / "report" / "agreement.csv").read_text()
    assert ",3," in csv and "reference run cells" in (tmp_path / "report" / "agreement.md").read_text()
    # another PE checkpoint in the conditions run: PE's cells are not its own, so two models remain
    import segformer_bench as sb

    sb.save_model(sb.build_model("b0", 19, ffn="plain", pos_embed="learned", pos_embed_size=[32, 32]),
                  tmp_path / "pe2.pt")
    for m in second["models"]:
        if m["name"] == "PE":
            m["checkpoint"] = "pe2.pt"
    path.write_text(yaml.safe_dump(second))
    run = run_suite(load_suite(path), tmp_path / "run2", progress=False, render=False, log=lambda _: None)
    render_run(run, tmp_path / "report2", log=lambda _: None)
    assert "not computed" in (tmp_path / "report2" / "agreement.md").read_text()


def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path):
    path = conditions_suite(tmp_path, analyses=["conditions"])
    whole = run_suite(load_suite(path), tmp_path / "whole", progress=False, render=False, log=lambda _: None)
    cmd = run_then_kill_9(path, tmp_path / "killed", "conditions", 2)
    import subprocess

    subprocess.run([*cmd, str(tmp_path / "killed")], check=True, capture_output=True)
    a, b = stored(whole, tables.results), stored(tmp_path / "killed", tables.results)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k].per_image, b[k].per_image)
        np.testing.assert_array_equal(a[k].calibration, b[k].calibration)


def test_two_ranks_store_what_one_process_stores(tmp_path):
    path = conditions_suite(tmp_path, analyses=["conditions"])
    one = run_suite(load_suite(path), tmp_path / "one", progress=False, render=False, log=lambda _: None)
    run_two_gloo_ranks(path, tmp_path / "two")
    a, b = stored(one, tables.results), stored(tmp_path / "two", tables.results)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k].per_image, b[k].per_image)
        assert a[k].names == b[k].names
        # the probabilities of an image batched otherwise differ in float32's last bits, not its prediction
        np.testing.assert_allclose(a[k].calibration, b[k].calibration, rtol=1e-5)


@pytest.mark.parametrize(("section", "message"), [
    ({"conditions": []}, "lists no conditions"),
    ({"conditions": [{"name": "a"}, {"name": "a"}]}, "unique"),
    ({"conditions": [{"name": "a"}], "reference": "b"}, "not one of the conditions"),
    ({"conditions": [{"name": "a", "dataset": "kitti"}]}, "unknown dataset 'kitti'"),
    ({"conditions": [{"name": "a", "options": {"colour": 1}}]}, "unknown SynthCity option"),
])
def test_bad_sections_are_one_line(tmp_path, capsys, section, message):
    path = conditions_suite(tmp_path, conditions=section)
    assert message in cli_error(["validate", path], capsys)


def test_missing_reference_run_is_one_line_and_stores_nothing(tmp_path, capsys):
    path = conditions_suite(tmp_path, analyses=["conditions"],
                            conditions={"conditions": CONDITIONS, "reference_run": "nowhere"})
    msg = cli_error(["run", path, "--run-dir", str(tmp_path / "run"), "--no-progress"], capsys)
    assert "holds no results.sqlite" in msg
    assert not stored(tmp_path / "run", tables.results)


def test_stored_dataset_description(tmp_path):
    path = conditions_suite(tmp_path, analyses=["conditions"])
    run = run_suite(load_suite(path), tmp_path / "run", progress=False, render=False, log=lambda _: None)
    rows = stored(run, lambda s: s.rows("conditions", ("model", "condition", "dataset")))
    described = {c: json.loads(d) for m, c, d in rows if m == "Mix"}
    assert described["larger"] == {"dataset": "synthcity", "split": "val", "limit": 2,
                                   "options": {"size": [48, 96], "length": 5}}


def test_validate_opens_every_condition_dataset(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    path = conditions_suite(tmp_path, conditions={"conditions": [
        {"name": "clear"}, {"name": "real", "dataset": "cityscapes", "root": "empty"}]})
    msg = cli_error(["validate", path], capsys)
    assert "conditions.conditions[1]" in msg and "not a Cityscapes root" in msg


def test_hostile_names_are_drawn_as_text(tmp_path):
    """Names with dollar signs (mathtext that cannot parse) in the conditions and corruption plots."""
    from segformer_bench.analyses.conditions.report import agreement_part, conditions_part
    from segformer_bench.analyses.conditions.store import ConditionResult

    from ..helpers import corruption_suite

    rng = np.random.default_rng(5)
    name = "B0 $x^$ 50%"
    counts = np.zeros((4, 48))
    counts[:, [3 * 14, 3 * 14 + 1, 3 * 14 + 2, 45, 46, 47]] = [10, 9.5, 9, 1.0, 0.5, 10]
    results = {(m, c): ConditionResult(_matrices(rng, 4), ("a", "b", "c", "d"), counts)
               for m in (name, "m2", "m3") for c in ("clear", name)}
    files, _ = conditions_part(results, ["clear", name], "clear", [name, "m2", "m3"])
    assert files["conditions.png"].startswith(b"\x89PNG") and files["conditions_reliability.png"].startswith(b"\x89PNG")
    cell = {(m, "blur", 1): _matrices(rng, 4) for m in (name, "m2", "m3")}
    agreements = rank_agreement(cell, {k: r.per_image for k, r in results.items()}, [("blur", [1])], [name],
                                [name, "m2", "m3"], n_resamples=5)
    files, _ = agreement_part(agreements, ["blur"], [name], "this run")
    assert files["agreement.png"].startswith(b"\x89PNG")
    path = corruption_suite(tmp_path, models=[{"name": name, "variant": "b0", "checkpoint": "b0.pt"}],
                            reports=["tables", "plots"])
    run = run_suite(load_suite(path), tmp_path / "run", progress=False, render=False, log=lambda _: None)
    render_run(run, tmp_path / "report", log=lambda _: None)
    assert (tmp_path / "report" / "severity.png").read_bytes().startswith(b"\x89PNG")
