"""The resumable runner: cells in the store, resume, refusal of a changed suite, kill -9, two ranks."""

from __future__ import annotations

import dataclasses
import sqlite3

import numpy as np
import pytest

import segformer_bench as sb
from segformer_bench.analyses.corruption.store import cell_matrices, cell_names
from segformer_bench.bench.runner import run_suite
from segformer_bench.bench.suite import load_suite
from segformer_bench.cli import main

from ..helpers import corruption_suite, run_then_kill_9, run_two_gloo_ranks, stored


def _cells(run_dir):
    with sqlite3.connect(run_dir / "results.sqlite") as db:
        return sorted(db.execute("SELECT model, corruption, severity, miou FROM cells"))


def test_runner_stores_every_cell_and_resumes(tmp_path, monkeypatch):
    suite = load_suite(corruption_suite(tmp_path))
    run = run_suite(suite, tmp_path / "run", progress=False, render=False, log=lambda _: None)
    cells = _cells(run)
    assert [c[:3] for c in cells] == [("B0", "clean", 0), ("B0", "contrast", 2), ("B0", "gaussian_noise", 1)]
    # a cell's numbers are those of evaluate() on the corrupted images (an independent recomputation)
    per_image = stored(run, cell_matrices)[("B0", "contrast", 2)]
    from segformer_bench.corruptions import corrupt, derive_seed
    from segformer_bench.corruptions.views import CorruptedView
    from segformer_bench.data import build_dataset
    from segformer_bench.engine.evaluate import EVAL_PRESETS, evaluate

    ds = build_dataset("synthcity", "val", size=[48, 96], length=3)
    view = CorruptedView(ds, "contrast", 2, 0, "reference")
    assert np.array_equal(view[1]["image"], corrupt(ds[1]["image"], "contrast", 2,
                                                    derive_seed(0, ds.name(1), "contrast", 2), backend="reference"))
    again = evaluate(sb.load_model(tmp_path / "b0.pt"), view, EVAL_PRESETS["whole"])
    assert np.array_equal(again.per_image, per_image)
    # an interrupted run (one cell lost) resumes: only the missing cell is computed, numbers unchanged
    with sqlite3.connect(run / "results.sqlite") as db:
        db.execute("DELETE FROM cells WHERE corruption = 'gaussian_noise'")
    import segformer_bench.analyses.corruption.run as corruption_run

    calls = []
    real = corruption_run.evaluate
    monkeypatch.setattr(corruption_run, "evaluate", lambda *a, **k: calls.append(k["desc"]) or real(*a, **k))
    run_suite(suite, run, progress=False, render=False, log=lambda _: None)
    assert calls == ["B0 gaussian_noise 1"] and _cells(run) == cells


def test_changed_suite_is_refused_unless_restarted(tmp_path):
    suite = load_suite(corruption_suite(tmp_path))
    run_suite(suite, tmp_path / "run", progress=False, render=False, log=lambda _: None)
    changed = dataclasses.replace(suite, seed=1)
    with pytest.raises(sb.UserError, match=r"different suite \(changed: seed\)"):
        run_suite(changed, tmp_path / "run", progress=False, render=False, log=lambda _: None)
    run_suite(changed, tmp_path / "run", restart=True, progress=False, render=False, log=lambda _: None)


def test_cli_validate_and_ls(tmp_path, capsys):
    path = corruption_suite(tmp_path)
    assert main(["validate", path]) == 0
    assert "tiny: 1 model(s)" in capsys.readouterr().out
    assert main(["ls"]) == 0
    out = capsys.readouterr().out
    assert "quickstart" in out and "segformer" in out and "b5" in out
    assert "adversarial" in out and "transformers, python, mmseg" in out and "segpgd, cospgd" in out
    assert "condition clear, fog, night, rain, snow; level 1-5" in out and "$FOGGY_CITYSCAPES_ROOT" in out
    assert main(["validate", str(tmp_path / "missing.yaml")]) == 2
    assert capsys.readouterr().err.startswith("segformer-bench: error: ")


def test_run_then_report_from_the_store(tmp_path, capsys):
    path = corruption_suite(tmp_path, reports=["tables", "plots", "html", "gallery"])
    run = tmp_path / "run"
    assert main(["run", path, "--run-dir", str(run), "--no-progress", "--no-report"]) == 0
    out = tmp_path / "report"
    assert main(["report", str(run), "--out", str(out)]) == 0
    for name in ("table.md", "table.tex", "table.csv", "index.html", "severity.png", "gallery.png"):
        assert (out / name).is_file(), name
    table = (out / "table.md").read_text()
    assert "B0" in table
    capsys.readouterr()
    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert "no results.sqlite" in capsys.readouterr().err


def test_kill_9_mid_run_then_resume_gives_the_uninterrupted_numbers(tmp_path):
    import subprocess

    cells = [["contrast", s] for s in (1, 2, 3, 4, 5)] + [["gaussian_noise", s] for s in (1, 2, 3)]
    path = corruption_suite(tmp_path, corruptions={"protocol": "segformer", "cells": cells, "backend": "reference"})
    cmd = run_then_kill_9(path, tmp_path / "killed", "cells", 2)
    assert len(_cells(tmp_path / "killed")) < len(cells) + 1  # it really was interrupted
    subprocess.run([*cmd, str(tmp_path / "killed")], check=True, capture_output=True)
    subprocess.run([*cmd, str(tmp_path / "straight")], check=True, capture_output=True)
    ma, mb = stored(tmp_path / "killed", cell_matrices), stored(tmp_path / "straight", cell_matrices)
    assert ma.keys() == mb.keys() and len(ma) == len(cells) + 1
    assert all(np.array_equal(ma[k], mb[k]) for k in ma)


def test_two_ranks_give_the_numbers_of_one_process(tmp_path):
    path = corruption_suite(tmp_path)
    run_two_gloo_ranks(path, tmp_path / "ddp")
    run_suite(load_suite(path), tmp_path / "one", progress=False, render=False, log=lambda _: None)
    ma, mb = stored(tmp_path / "ddp", cell_matrices), stored(tmp_path / "one", cell_matrices)
    names_a = stored(tmp_path / "ddp", cell_names)[("B0", "clean", 0)]
    names_b = stored(tmp_path / "one", cell_names)[("B0", "clean", 0)]
    assert ma.keys() == mb.keys() and all(np.array_equal(ma[k], mb[k]) for k in ma)
    assert names_a == names_b and len(names_a) == 3
