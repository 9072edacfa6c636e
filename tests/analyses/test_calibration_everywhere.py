"""Calibration in every analysis: the resolution tests' and adversarial units' stored counts against torchmetrics
over the model's own softmax (at the adversarial images, regenerated with the same attack), the ECE interval
against a bootstrap over images computed by hand, stores written before the counts existed, and the reports and
plot curves rendered from hand-built counts."""

import io
import math
import shutil
import sqlite3

import numpy as np
import pandas as pd
import pytest
import torch
import torchmetrics
import yaml

import segformer_bench as sb
from segformer_bench.analyses.adversarial import store as adv_store
from segformer_bench.analyses.adversarial.report import adversarial_report, worst_case
from segformer_bench.analyses.adversarial.spec import AdversarialSpec, AttackSpec
from segformer_bench.analyses.adversarial.store import AdversarialResult
from segformer_bench.analyses.corruption.calibration import calibration_part, group_counts, severity_lines
from segformer_bench.analyses.resolution import store as res_store
from segformer_bench.analyses.resolution.report import resolution_calibration
from segformer_bench.analyses.resolution.store import ResolutionResult
from segformer_bench.attacks import attack
from segformer_bench.bench.runner import render_run, run_suite
from segformer_bench.bench.suite import load_suite
from segformer_bench.corruptions.protocols import get_protocol
from segformer_bench.data import build_dataset
from segformer_bench.report.plots import reliability_curve
from tests.helpers import stored

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SEED = 7
IMAGES = 3
SIZES = {"base": [32, 64], "2x": [64, 128]}
EPS = [0, 8]


def suite_file(tmp_path) -> str:
    sb.save_model(sb.build_model("b0", 19), tmp_path / "b0.pt")
    data = {"version": 1, "name": "calib", "analyses": ["resolution", "adversarial"], "seed": SEED,
            "dataset": {"name": "synthcity", "split": "val", "limit": IMAGES,
                        "options": {"size": SIZES["base"], "length": IMAGES}},
            "models": [{"name": "B0", "variant": "b0", "checkpoint": "b0.pt"}],
            "resolution": {"tests": [{"name": "base"}, {"name": "2x", "dataset_options": {"size": SIZES["2x"]}}]},
            "adversarial": {"attacks": [{"method": "pgd", "eps": EPS, "steps": 1}]},
            "eval": {"preset": "whole", "overrides": {"batch_size": 2}},
            "device": "cpu", "reports": ["tables", "plots", "html"], "report_dir": str(tmp_path / "report")}
    path = tmp_path / "calib.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return str(path)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("calib")
    path = suite_file(tmp)
    run_suite(load_suite(path), tmp / "run", progress=False, log=lambda _: None)
    return tmp, path


def tm_ece(probs: list[torch.Tensor], labels: list[torch.Tensor]) -> float:
    """torchmetrics' top-label ECE (15 bins, L1, 255 ignored) over the pixels of the given images."""
    metric = torchmetrics.classification.MulticlassCalibrationError(num_classes=19, n_bins=15, norm="l1",
                                                                    ignore_index=255)
    p = torch.cat([x.permute(0, 2, 3, 1).reshape(-1, 19) for x in probs]).double()
    return float(metric(p, torch.cat([y.reshape(-1) for y in labels])))


def softmax_and_labels(model, size, adversarial_eps: float | None = None):
    """Per image of the suite's dataset at `size`: the model's softmax (at the PGD image of budget
    `adversarial_eps`/255 when given, regenerated with the run's seed and the image's name) and the labels."""
    dataset = build_dataset("synthcity", "val", size=size, length=IMAGES)
    probs, labels = [], []
    for i in range(IMAGES):
        sample = dataset[i]
        x = torch.from_numpy(sample["image"]).permute(2, 0, 1)[None].float() / 255
        label = torch.from_numpy(sample["label"]).long()[None]
        if adversarial_eps:
            x = attack(model, x, label, eps=adversarial_eps / 255, steps=1, seed=SEED, ids=[sample["name"]])
        with torch.no_grad():
            probs.append(model(x).softmax(1))
        labels.append(label)
    return probs, labels


def bootstrap_by_hand(probs, labels, n_resamples: int = 1000) -> tuple[float, float]:
    """The 95 % percentile interval of torchmetrics' ECE over resamples of the images, drawn as the analyses draw
    them (multinomial counts seeded with (seed, number of images)); each resample's images repeated."""
    n = len(probs)
    draws = np.random.default_rng([SEED, n]).multinomial(n, np.full(n, 1 / n), size=n_resamples)
    cache: dict[tuple, float] = {}
    values = []
    for d in draws:
        key = tuple(int(k) for k in d)
        if key not in cache:
            picked = [i for i in range(n) for _ in range(key[i])]
            cache[key] = tm_ece([probs[i] for i in picked], [labels[i] for i in picked])
        values.append(cache[key])
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def test_resolution_counts_are_torchmetrics_over_the_models_softmax(finished):
    tmp, _ = finished
    results = stored(tmp / "run", res_store.results)
    frame = pd.read_csv(tmp / "report" / "resolution_calibration.csv").set_index(["model", "test"])
    model = sb.open_model(str(tmp / "b0.pt"))
    for test, size in SIZES.items():
        counts = results[("B0", test)].calibration
        assert counts.shape == (IMAGES, 48)
        probs, labels = softmax_and_labels(model, size)
        expected = tm_ece(probs, labels)
        assert sb.calibration.ece(counts) == pytest.approx(expected, abs=1e-6)
        assert frame.loc[("B0", test), "ECE"] == pytest.approx(100 * expected, abs=1e-4)
        low, high = bootstrap_by_hand(probs, labels)
        assert frame.loc[("B0", test), "ECE_low"] == pytest.approx(100 * low, abs=1e-4)
        assert frame.loc[("B0", test), "ECE_high"] == pytest.approx(100 * high, abs=1e-4)
    md = (tmp / "report" / "resolution_calibration.md").read_text()
    assert f"| {frame.loc[('B0', '2x'), 'ECE']:.1f} [" in md
    page = (tmp / "report" / "index.html").read_text()
    assert "Calibration under resolution shift" in page


def test_adversarial_counts_are_of_the_adversarial_images(finished):
    tmp, _ = finished
    units = stored(tmp / "run", adv_store.results)
    frame = pd.read_csv(tmp / "report" / "adversarial_calibration.csv").set_index(["model", "attack", "eps_255"])
    model = sb.open_model(str(tmp / "b0.pt"))
    found = {}
    for eps in EPS:
        counts = units[("B0", "PGD L∞", float(eps))].calibration
        probs, labels = softmax_and_labels(model, SIZES["base"], adversarial_eps=eps)
        found[eps] = tm_ece(probs, labels)
        assert sb.calibration.ece(counts) == pytest.approx(found[eps], abs=1e-6)
        assert frame.loc[("B0", "PGD L∞", eps), "ECE"] == pytest.approx(100 * found[eps], abs=1e-4)
    clean_probs, clean_labels = softmax_and_labels(model, SIZES["base"])
    assert found[0] == pytest.approx(tm_ece(clean_probs, clean_labels), abs=1e-9)
    assert abs(found[8] - found[0]) > 1e-3  # the attacked images' counts are not the clean ones
    for name in ("adversarial_calibration.md", "adversarial_ece.png", "adversarial_reliability.png"):
        assert (tmp / "report" / name).exists()
    page = (tmp / "report" / "index.html").read_text()
    assert "Calibration under attack" in page and "Reliability under attack" in page


# The tables as versions before the calibration counts created them.
OLD_TABLES = {
    "resolution": ("""CREATE TABLE resolution (
        model TEXT NOT NULL, test TEXT NOT NULL, miou REAL, aacc REAL, macc REAL, iou TEXT, per_image BLOB NOT NULL,
        names TEXT NOT NULL, input_h INTEGER, input_w INTEGER, seed INTEGER, seconds REAL, finished REAL,
        PRIMARY KEY (model, test))""",
                   "model, test, miou, aacc, macc, iou, per_image, names, input_h, input_w, seed, seconds, finished",
                   "test = 'base'"),
    "adversarial": ("""CREATE TABLE adversarial (
        model TEXT NOT NULL, attack TEXT NOT NULL, eps REAL NOT NULL, miou REAL, aacc REAL, per_image BLOB NOT NULL,
        loss BLOB NOT NULL, names TEXT NOT NULL, settings TEXT NOT NULL, seed INTEGER, seconds REAL, finished REAL,
        PRIMARY KEY (model, attack, eps))""",
                    "model, attack, eps, miou, aacc, per_image, loss, names, settings, seed, seconds, finished",
                    "eps = 0"),
}


def test_a_store_of_the_old_schema_still_reports_and_resumes(finished):
    tmp, path = finished
    run = tmp / "old-run"
    shutil.copytree(tmp / "run", run)
    with sqlite3.connect(run / "results.sqlite") as conn:  # each table rebuilt as the old schema, one row kept
        for table, (create, columns, keep) in OLD_TABLES.items():
            conn.execute(f"ALTER TABLE {table} RENAME TO new_{table}")
            conn.execute(create)
            conn.execute(f"INSERT INTO {table} SELECT {columns} FROM new_{table} WHERE {keep}")  # noqa: S608
            conn.execute(f"DROP TABLE new_{table}")
    render_run(run, tmp / "old-report", log=lambda _: None)  # read-only: the columns stay absent
    written = {p.name for p in (tmp / "old-report").iterdir()}
    assert {"resolution.md", "adversarial.md", "index.html"} <= written
    assert not {"resolution_calibration.md", "adversarial_calibration.md", "adversarial_ece.png"} & written
    with sqlite3.connect(run / "results.sqlite") as conn:
        assert "calibration" not in {row[1] for row in conn.execute("PRAGMA table_info(resolution)")}
    run_suite(load_suite(path), run, progress=False, render=False, log=lambda _: None)  # resumes the other units
    render_run(run, tmp / "resumed-report", log=lambda _: None)
    results = stored(run, res_store.results)
    assert results[("B0", "base")].calibration is None and results[("B0", "2x")].calibration.shape == (IMAGES, 48)
    units = stored(run, adv_store.results)
    assert units[("B0", "PGD L∞", 0.0)].calibration is None and units[("B0", "PGD L∞", 8.0)].calibration is not None
    frame = pd.read_csv(tmp / "resumed-report" / "resolution_calibration.csv").set_index(["model", "test"])
    assert list(frame.index) == [("B0", "2x")]
    md = (tmp / "resumed-report" / "resolution_calibration.md").read_text()
    assert md.splitlines()[-1].split("|")[4].strip() == "–"  # the old row's test (base) has no ECE


# --- reports and plots from hand-built counts ------------------------------------------------------------------

def counts_of(n, conf, correct, nll=0.0, brier=0.0) -> np.ndarray:
    """One image's counts (1, 3·bins + 3) from its per-bin pixels, summed confidence and correct pixels."""
    per_bin = np.stack([n, conf, correct], axis=1).astype(np.float64).flatten()
    return np.concatenate([per_bin, [nll, brier, float(sum(n))]])[None]


# two bins: 4 pixels of mean confidence 0.3 (1 right), 6 of mean 0.85 (3 right): ECE = (0.2 + 2.1) / 10
HAND = counts_of([4, 6], [1.2, 5.1], [1, 3], nll=5.0, brier=2.5)


def test_reliability_curve_of_hand_built_counts():
    confidence, accuracy, share = reliability_curve(np.concatenate([HAND, HAND]))
    np.testing.assert_allclose(confidence, [0.3, 0.85])
    np.testing.assert_allclose(accuracy, [0.25, 0.5])
    np.testing.assert_allclose(share, [0.4, 0.6])
    confidence, accuracy, share = reliability_curve(counts_of([0, 2, 2], [0, 1.0, 1.8], [0, 1, 2]))
    assert math.isnan(confidence[0]) and math.isnan(accuracy[0]) and share[0] == 0
    np.testing.assert_allclose(accuracy[1:], [0.5, 1.0])


def matrices(n_images: int) -> np.ndarray:
    m = np.zeros((n_images, 19, 19), np.int64)
    m[:, 0, 0], m[:, 1, 1], m[:, 1, 0] = 3, 1, 1  # IoU 3/4 and 1/2: mIoU 62.5 %
    return m


def test_resolution_calibration_table_by_hand_and_the_scores_model_named():
    results = {("A", "t1"): ResolutionResult(matrices(2), ("x", "y"), (32, 64), np.concatenate([HAND, HAND])),
               ("S", "t1"): ResolutionResult(matrices(2), ("x", "y"), (32, 64), None)}
    files, sections = resolution_calibration(results, ["t1"], ["A", "S"], n_resamples=50)
    row = next(line for line in files["resolution_calibration.md"].splitlines() if line.startswith("| A"))
    assert [c.strip() for c in row.split("|")[1:-1]] == ["A", "62.5", "23.0 [23.0, 23.0]"]
    assert "Left out (outputs are scores, not probabilities): S." in files["resolution_calibration.md"]
    assert not any(line.startswith("| S") for line in files["resolution_calibration.md"].splitlines())
    frame = pd.read_csv(io.StringIO(files["resolution_calibration.csv"]))
    assert frame.loc[0, "NLL"] == pytest.approx(0.5) and frame.loc[0, "Brier"] == pytest.approx(0.25)
    assert frame.loc[0, "MCE"] == pytest.approx(100 * 0.35)  # bin 2: |0.5 − 0.85|
    assert [s[0] for s in sections] == ["Calibration under resolution shift"]
    no_counts = {k: ResolutionResult(r.per_image, r.names, r.input_size, None) for k, r in results.items()}
    assert resolution_calibration(no_counts, ["t1"], ["A", "S"]) == ({}, [])


def adv_unit(counts, per_image=None) -> AdversarialResult:
    n = 1 if counts is None else len(counts)
    return AdversarialResult(matrices(n) if per_image is None else per_image, np.zeros(n), tuple("xyz"[:n]), {},
                             counts)


def test_adversarial_calibration_by_hand_only_with_counts():
    spec = AdversarialSpec(attacks=(AttackSpec(eps=(0, 8), steps=1),))
    clean = counts_of([8, 2], [2.0, 1.8], [2, 2])  # ECE (0 + 0.2) / 10 = 2.0 %
    results = {("A", "PGD L∞", 0.0): adv_unit(clean), ("A", "PGD L∞", 8.0): adv_unit(HAND),
               ("S", "PGD L∞", 0.0): adv_unit(None), ("S", "PGD L∞", 8.0): adv_unit(None)}
    files, sections = adversarial_report(results, spec, ["A", "S"], n_resamples=20)
    row = next(line for line in files["adversarial_calibration.md"].splitlines() if line.startswith("| A"))
    assert [c.strip() for c in row.split("|")[1:-1]] == ["A · PGD L∞", "2.0 [2.0, 2.0]", "23.0 [23.0, 23.0]"]
    assert "Left out (outputs are scores, not probabilities): S." in files["adversarial_calibration.md"]
    assert {"Calibration under attack", "ECE against the attack budget", "Reliability under attack"} <= \
        {s[0] for s in sections}
    bare = {k: adv_unit(None, u.per_image) for k, u in results.items()}
    files, sections = adversarial_report(bare, spec, ["A", "S"], n_resamples=20)
    assert not any("calibration" in name or "reliability" in name or "_ece" in name for name in files)
    assert "Calibration under attack" not in {s[0] for s in sections}


def test_the_worst_case_takes_each_images_counts_from_the_attack_it_picks():
    good, bad = matrices(1)[0], np.zeros((19, 19), np.int64)
    bad[0, 1] = 5  # every pixel wrong
    first = adv_unit(np.concatenate([HAND, 2 * HAND]), np.stack([good, bad]))
    second = adv_unit(np.concatenate([3 * HAND, 4 * HAND]), np.stack([bad, good]))
    worst = worst_case([first, second])
    np.testing.assert_array_equal(worst.calibration, np.concatenate([3 * HAND, 2 * HAND]))


def test_corruption_plots_pool_a_groups_cells_and_appear_only_with_counts():
    protocol = get_protocol("segformer")
    other = counts_of([10, 0], [1.0, 0.0], [0, 0])  # 10 pixels at confidence 0.1, all wrong: ECE 0.1
    counts = {("M", "clean", 0): HAND, ("M", "contrast", 1): HAND, ("M", "brightness", 2): other,
              ("M", "fog", 3): other}
    groups = group_counts(counts, protocol, "M")
    assert list(groups) == ["clean", "digital", "weather"]
    _, accuracy, share = reliability_curve(groups["digital"])  # contrast 1 and brightness 2 pooled
    np.testing.assert_allclose(accuracy, [1 / 14, 0.5])
    np.testing.assert_allclose(share, [14 / 20, 6 / 20])
    lines = severity_lines(counts, protocol, "M")  # 16 corruptions: one line per group
    assert lines["digital"] == [(0.0, pytest.approx(0.23)), (1.0, pytest.approx(0.23)), (2.0, pytest.approx(0.1))]
    assert lines["weather"] == [(0.0, pytest.approx(0.23)), (3.0, pytest.approx(0.1))]
    few = protocol.restricted([("contrast", 1), ("fog", 3)])  # 2 corruptions: one line each
    assert set(severity_lines(counts, few, "M")) == {"contrast", "fog"}
    files, sections = calibration_part(counts, protocol, ["M", "U"], n_resamples=20)
    assert {"reliability.png", "ece_severity.png", "calibration.csv"} <= set(files)
    assert {"Reliability diagrams", "ECE against severity"} <= {s[0] for s in sections}
    frame = pd.read_csv(io.StringIO(files["calibration.csv"])).set_index(["corruption", "severity"])
    assert frame.loc[("contrast", 1), ["ECE", "ECE_low", "ECE_high"]].tolist() == pytest.approx([23.0] * 3)
    assert "Left out (outputs are scores, not probabilities): U." in files["calibration.md"]
    assert calibration_part({}, protocol, ["M"]) == ({}, [])


def test_the_calibration_plots_draw_hostile_names_as_text():
    from segformer_bench.report.plots import ece_vs_severity, reliability_diagram

    name = "B0 $x^$ 50%"  # two dollar signs: mathtext, which cannot parse it, unless the names are kept as text
    assert reliability_diagram({name: HAND}, name).startswith(b"\x89PNG")
    assert ece_vs_severity({name: {name: [(0, 0.1), (1, 0.2)]}}).startswith(b"\x89PNG")
    from segformer_bench.analyses.resolution.report import resolution_report

    results = {(name, t): ResolutionResult(matrices(2), ("x", "y"), (32, 64), np.concatenate([HAND, HAND]))
               for t in (name, "t2")}
    files, _ = resolution_report(results, [name, "t2"], None, False, n_resamples=5)
    assert files["resolution.png"].startswith(b"\x89PNG")
    spec = AdversarialSpec(attacks=(AttackSpec(eps=(0, 8), steps=1, name=name),))
    files, _ = adversarial_report({(name, name, e): adv_unit(HAND) for e in (0.0, 8.0)}, spec, [name], n_resamples=5)
    assert files["adversarial.png"].startswith(b"\x89PNG") and "adversarial_reliability.png" in files
