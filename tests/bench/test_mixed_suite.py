"""A mixed suite — this package's SegFormer-B0, a transformers UperNet (ConvNeXt backbone) and a user's ``python``
model — through corruption, resolution and ERF on SynthCity, end to end, with every report showing all three."""

import textwrap

import torch
import yaml

import segformer_bench as sb
from segformer_bench.bench.runner import run_suite
from segformer_bench.bench.suite import load_suite
from tests.helpers import TESTS, stored

USER_CODE = textwrap.dedent('''
    import torch
    from torch import nn


    class Tiny(nn.Module):
        def __init__(self, classes=19):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU())
            self.body = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU())
            self.head = nn.Conv2d(16, classes, 1)

        def forward(self, x):
            return {"out": self.head(self.body(self.stem(x))), "extra": x.mean()}


    def tiny(classes=19):
        torch.manual_seed(3)
        return Tiny(classes)
''')


def upernet_dir(path):
    from transformers import ConvNextConfig, SegformerImageProcessor, UperNetConfig, UperNetForSemanticSegmentation

    torch.manual_seed(0)
    backbone = ConvNextConfig(hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1],
                              out_features=["stage1", "stage2", "stage3", "stage4"])
    config = UperNetConfig(backbone_config=backbone, hidden_size=16, use_auxiliary_head=False, num_labels=19,
                           pool_scales=[1, 2])
    UperNetForSemanticSegmentation(config).eval().save_pretrained(path)
    SegformerImageProcessor().save_pretrained(path)


def test_a_mixed_suite_runs_every_analysis_and_reports_all_three(tmp_path, monkeypatch):
    (tmp_path / "user_tiny.py").write_text(USER_CODE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    sb.save_model(sb.build_model("b0", 19), tmp_path / "b0.pt")
    upernet_dir(tmp_path / "upernet")
    models = [{"name": "SegFormer-B0", "variant": "b0", "checkpoint": "b0.pt"},
              {"name": "UperNet", "family": "transformers", "path": "upernet"},
              {"name": "Tiny", "family": "python", "factory": "user_tiny:tiny", "output": {"key": "out", "stride": 4},
               "preprocess": {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]},
               "taps": {"stage1": "stem", "stage2": "body"}}]
    suite = {"version": 1, "name": "mixed", "analyses": ["corruption", "resolution", "erf"],
             "dataset": {"name": "synthcity", "split": "val", "limit": 2, "options": {"size": [32, 64], "length": 2}},
             "models": models, "reference_model": "SegFormer-B0",
             "corruptions": {"cells": [["contrast", 1], ["gaussian_noise", 1]], "backend": "fast"},
             "resolution": {"tests": TESTS},
             "erf": {"images": 2, "block": 2, "size": [32, 32]},
             "device": "cpu", "reports": ["tables", "html"], "report_dir": str(tmp_path / "report")}
    (tmp_path / "mixed.yaml").write_text(yaml.safe_dump(suite, allow_unicode=True))
    run_suite(load_suite(str(tmp_path / "mixed.yaml")), tmp_path / "run", progress=False, log=lambda _: None)

    report = tmp_path / "report"
    for table in ("table.md", "resolution.md", "erf_area.md"):
        text = (report / table).read_text()
        for name in ("SegFormer-B0", "UperNet", "Tiny"):
            assert name in text, (table, name)
    erf = (report / "erf_area.md").read_text()
    assert "Tiny · Stage 1" in erf and "UperNet · Stage 4" in erf and "Tiny · Stage 3" not in erf
    page = (report / "index.html").read_text()
    assert all(name in page for name in ("SegFormer-B0", "UperNet", "Tiny"))
    recorded = stored(tmp_path / "run", lambda store: store.models())
    assert recorded["UperNet"]["config"]["family"] == "transformers" and len(recorded["UperNet"]["sha256"]) == 64
    assert recorded["Tiny"]["config"]["factory"] == "user_tiny:tiny"

    # the run-time table: every model × analysis with the store's own count and sum of unit seconds (SQL's)
    import sqlite3

    import pandas as pd

    frame = pd.read_csv(report / "run_time.csv", index_col=0)
    db = sqlite3.connect(tmp_path / "run" / "results.sqlite")
    want = {(m, analysis): (n, s) for analysis, table in (("corruption", "cells"), ("resolution", "resolution"),
                                                          ("erf", "erf"))
            for m, n, s in db.execute(f"SELECT model, count(*), sum(seconds) FROM {table} GROUP BY model")}
    got = {(r.model, r.analysis): (r.units, r.seconds) for r in frame.itertuples()}
    assert got.keys() == want.keys() and len(got) == 9
    for key, (n, s) in want.items():
        assert got[key][0] == n and abs(got[key][1] - s) <= 1e-5 * s, key  # the CSV keeps six digits
    assert list(frame["model"].drop_duplicates()) == ["SegFormer-B0", "UperNet", "Tiny"]
    text = (report / "run_time.md").read_text()
    threads = torch.get_num_threads()
    machine = f"cpu {__import__('platform').machine()} ({threads} thread{'s' if threads > 1 else ''}), 1 rank, torch "
    assert machine in text and "Run time" in page and machine in page
