"""Calibration in the corruption analysis: the stored per-image counts, the table's ECE against torchmetrics over
the same pixels, and stores written before the counts existed."""

import sqlite3

import pandas as pd
import pytest
import torch
import torchmetrics

import segformer_bench as sb
from segformer_bench.analyses.corruption import store as cells
from segformer_bench.bench.runner import open_store, render_run, run_suite
from segformer_bench.bench.suite import load_suite
from segformer_bench.data import build_dataset
from tests.helpers import corruption_suite, stored


def test_the_clean_ece_is_torchmetrics_over_the_cells_pixels(tmp_path):
    path = corruption_suite(tmp_path, reports=["tables"], report_dir=str(tmp_path / "report"))
    run_suite(load_suite(path), tmp_path / "run", progress=False, log=lambda _: None)
    counts = stored(tmp_path / "run", cells.cell_calibration)
    assert set(counts) == {("B0", "clean", 0), ("B0", "contrast", 2), ("B0", "gaussian_noise", 1)}
    seg = sb.open_model(str(tmp_path / "b0.pt"))
    data = build_dataset("synthcity", "val", size=[48, 96], length=3)
    probs, labels = [], []
    for i in range(3):
        x = torch.from_numpy(data[i]["image"]).permute(2, 0, 1)[None].float() / 255
        with torch.no_grad():
            probs.append(seg(x).softmax(1).permute(0, 2, 3, 1).reshape(-1, 19))
        labels.append(torch.from_numpy(data[i]["label"]).long().reshape(-1))
    metric = torchmetrics.classification.MulticlassCalibrationError(num_classes=19, n_bins=15, ignore_index=255)
    expected = 100 * float(metric(torch.cat(probs).double(), torch.cat(labels)))
    frame = pd.read_csv(tmp_path / "report" / "calibration.csv").set_index(["model", "corruption", "severity"])
    assert frame.loc[("B0", "clean", 0), "ECE"] == pytest.approx(expected, abs=1e-4)
    assert "ECE (%)" in (tmp_path / "report" / "calibration.md").read_text()


def test_a_store_written_before_calibration_gains_the_column_and_still_reports(tmp_path):
    path = corruption_suite(tmp_path, reports=["tables"], report_dir=str(tmp_path / "report"))
    run_suite(load_suite(path), tmp_path / "run", progress=False, render=False, log=lambda _: None)
    db = tmp_path / "run" / "results.sqlite"
    with sqlite3.connect(db) as conn:  # as an older version wrote it: no calibration column
        conn.execute("ALTER TABLE cells DROP COLUMN calibration")
    render_run(tmp_path / "run", tmp_path / "old", log=lambda _: None)  # read-only: no column, no table
    assert (tmp_path / "old" / "table.md").exists() and not (tmp_path / "old" / "calibration.md").exists()
    store = open_store(db)  # writable: the column is added, old rows NULL
    try:
        assert store.has_column("cells", "calibration") and cells.cell_calibration(store) == {}
        assert len(cells.cell_matrices(store)) == 3
    finally:
        store.close()
