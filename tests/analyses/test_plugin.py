"""One place is enough: an analysis defined in this file, registered in ANALYSES from here, runs through the
suite loader, ``run`` (with resume), ``report`` and ``validate`` without any change to the package."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
import yaml

import segformer_bench as sb
from segformer_bench.analyses import ANALYSES, Analysis, ReportPart
from segformer_bench.bench.runner import render_run, run_suite
from segformer_bench.bench.suite import load_suite
from segformer_bench.cli import main
from segformer_bench.config import ConfigError
from segformer_bench.data import build_dataset
from segformer_bench.models.base import normalize
from segformer_bench.report.page import figure
from segformer_bench.report.tables import Table, table_files, to_html

from ..helpers import stored

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@dataclass(frozen=True)
class MeanLogitSpec:
    images: int = 2
    models: tuple[str, ...] = ()


class MeanLogit(Analysis):
    """A toy: the mean logit of each model on each of the first `images` images, one stored row per image."""

    name = "mean_logit"
    title = "mean logits"
    section = "mean_logit"
    spec = MeanLogitSpec
    example = "{images: 2}"
    schema = ("CREATE TABLE IF NOT EXISTS mean_logit (model TEXT NOT NULL, image TEXT NOT NULL, value REAL, "
              "PRIMARY KEY (model, image));")
    tables = ("mean_logit",)

    def __init__(self) -> None:
        self.computed: list[tuple[str, str]] = []

    def check(self, spec, suite, where):
        if spec.images < 1:
            raise ConfigError(f"{where}: mean_logit.images must be at least 1")

    def describe(self, spec):
        return f"mean logits ({spec.images} images)"

    def run(self, ctx, spec):
        dataset = ctx.dataset()
        for model_spec in ctx.models(spec.models):
            model = ctx.model(model_spec, dataset).eval()
            for i in range(spec.images):
                sample = dataset[i]
                if ctx.main and ctx.store.has("mean_logit", model=model_spec.name, image=sample["name"]):
                    continue
                x = normalize(torch.from_numpy(sample["image"]).permute(2, 0, 1)[None].float())
                with torch.inference_mode():
                    value = float(model.network(x).mean())
                self.computed.append((model_spec.name, sample["name"]))
                ctx.store.insert("mean_logit", {"model": model_spec.name, "image": sample["name"], "value": value})

    def report(self, store, suite, metadata):
        rows = store.rows("mean_logit", ("model", "image", "value"), order_by=("rowid",))
        if not rows:
            return None
        table = Table("Model · image", ["mean logit"], [(f"{m} · {i}", [f"{v:.6f}"]) for m, i, v in rows])
        from matplotlib.figure import Figure

        from segformer_bench.report import plots

        fig = Figure(figsize=(3, 2))
        fig.subplots().bar(range(len(rows)), [v for *_, v in rows], color=plots.COLORS[0])
        png = plots.png(fig)
        return ReportPart({**table_files("mean_logit", table, "Mean logit per image."), "mean_logit.png": png},
                          [("Mean logits", "A toy analysis.", to_html(table) + figure(png, "mean logits"))])


@pytest.fixture
def toy(monkeypatch):
    analysis = MeanLogit()
    monkeypatch.setitem(ANALYSES, analysis.name, analysis)
    return analysis


def _suite(tmp_path, **changes) -> str:
    sb.save_model(sb.build_model("b0", 19), tmp_path / "b0.pt")
    data = {"version": 1, "name": "toy", "analyses": ["mean_logit"], "device": "cpu",
            "dataset": {"name": "synthcity", "options": {"size": [32, 64], "length": 3}},
            "models": [{"name": "B0", "variant": "b0", "checkpoint": "b0.pt"}],
            "mean_logit": {"images": 2}, "reports": ["tables", "plots", "html"]} | changes
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_a_registered_analysis_runs_resumes_reports_and_validates(tmp_path, toy, capsys):
    path = _suite(tmp_path)
    suite = load_suite(path)
    assert suite.section("mean_logit") == MeanLogitSpec(images=2)
    run = run_suite(suite, tmp_path / "run", progress=False, render=False, log=lambda _: None)
    rows = stored(run, lambda store: store.rows("mean_logit", ("model", "image", "value")))
    # the stored numbers are the model's own forward pass on the dataset's images, recomputed here
    model, dataset = sb.load_model(tmp_path / "b0.pt").eval(), build_dataset("synthcity", size=[32, 64], length=3)
    want = []
    for i in range(2):
        x = normalize(torch.from_numpy(dataset[i]["image"]).permute(2, 0, 1)[None].float())
        with torch.inference_mode():
            want.append(("B0", dataset.name(i), float(model(x).mean())))
    assert rows == want
    # a second run resumes: nothing is recomputed
    toy.computed.clear()
    run_suite(suite, run, progress=False, render=False, log=lambda _: None)
    assert toy.computed == []
    out = render_run(run, tmp_path / "report", log=lambda _: None)
    assert {p.name for p in out.iterdir()} == {"mean_logit.md", "mean_logit.tex", "mean_logit.png", "index.html"}
    assert f"{want[0][2]:.6f}" in (out / "mean_logit.md").read_text()
    page = (out / "index.html").read_text()
    assert "<title>toy: mean logits</title>" in page and "Mean logits" in page
    assert main(["validate", path]) == 0
    assert "mean logits (2 images)" in capsys.readouterr().out


def test_a_registered_analysis_checks_its_own_section(tmp_path, toy):
    with pytest.raises(ConfigError, match=r"toy.yaml: mean_logit.images must be at least 1"):
        load_suite(_suite(tmp_path, mean_logit={"images": 0}))
    with pytest.raises(ConfigError, match=r"field 'mean_logit': unknown field\(s\) steps"):
        load_suite(_suite(tmp_path, mean_logit={"steps": 3}))
    with pytest.raises(ConfigError, match=r"there is no mean_logit section; add mean_logit: \{images: 2\}"):
        load_suite(_suite(tmp_path, mean_logit=None))


def test_an_unregistered_analysis_is_an_unknown_name(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown field\(s\) mean_logit"):
        load_suite(_suite(tmp_path))
