"""The report's files: right numbers in the right columns, valid formats, a self-contained page."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from segformer_bench.analyses.corruption.report import Gallery, render_report
from segformer_bench.corruptions.protocols import PROTOCOLS, Protocol

from ..helpers import images_loaded_in_browser, needs_browser

SEGFORMER = PROTOCOLS["segformer"]
CLASSES = ("road", "sky")
CORRUPTIONS = SEGFORMER.corruptions


def cm_with_miou(percent: int) -> np.ndarray:
    """[[2k, 100−k], [100−k, 2k]]: both classes have I = 2k, U = 200, so IoU = mIoU = k / 100 exactly."""
    return np.array([[2 * percent, 100 - percent], [100 - percent, 2 * percent]], np.int64)


def cell_percent(model: str, corruption: str, severity: int) -> int:
    """The designed mIoU (%) of each cell: A is best everywhere but motion blur, where B is."""
    if corruption == "clean":
        return {"A": 80, "B": 75}[model]
    a = 70 - 4 * severity + CORRUPTIONS.index(corruption) % 4
    if model == "A":
        return a
    return a + 5 if corruption == "motion_blur" else a - 1


def expected_row(model: str) -> dict[str, float]:
    """The table row computed by hand: severities averaged per corruption, then mPC and rPC."""
    row = {"clean": float(cell_percent(model, "clean", 0))}
    for c in CORRUPTIONS:
        severities = SEGFORMER.severities_of(c)
        row[c] = sum(cell_percent(model, c, s) for s in severities) / len(severities)
    row["mPC"] = sum(row[c] for c in CORRUPTIONS) / len(CORRUPTIONS)
    row["rPC"] = 100 * row["mPC"] / row["clean"]
    return row


def make_results(protocol: Protocol = SEGFORMER, n_images: int = 3) -> dict:
    return {(m, c, s): np.repeat(cm_with_miou(cell_percent(m, c, s))[None], n_images, axis=0)
            for m in ("A", "B") for c, s in [("clean", 0), *protocol.cells()]}


def make_gallery() -> Gallery:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (64, 128, 3), dtype=np.uint8)
    label = (np.arange(128)[None, :] // 64 + np.zeros((64, 1), int)).astype(np.uint8)
    images = {("clean", 0): image} | {cell: image // (cell[1] + 1) for cell in SEGFORMER.cells()}
    predictions = {(m, c, s): label for m in ("A", "B") for c, s in [("clean", 0), *SEGFORMER.cells()]}
    return Gallery(images, predictions, label, name="synthetic_000")


METADATA = {"suite": "report-test", "dataset": {"name": "synthetic", "split": "val", "images": 3},
            "models": {"A": {"checkpoint": "a.pth", "sha256": "0" * 64},
                       "B": {"checkpoint": "b.pth", "sha256": "1" * 64}},
            "seed": 0, "date": "2025-01-01", "versions": {"segformer_bench": "0.1.0"}}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("report")
    return render_report(make_results(), CLASSES, SEGFORMER, out, METADATA, reference_model="B",
                         include_published=True, gallery=make_gallery(), n_resamples=200)


def markdown_rows(path: Path) -> tuple[list[str], dict[str, list[str]]]:
    lines = [line for line in path.read_text().splitlines() if line.startswith("|")]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    header, body = cells[0], cells[2:]  # cells[1] is the |---| rule
    return header, {row[0]: row for row in body}


def test_files(report: dict[str, Path]):
    names = {"table.md", "table.tex", "table.csv", "groups.md", "groups.tex", "groups.csv", "per_class.md",
             "per_class.tex", "per_class.csv", "severity.png", "groups.png", "gallery.png", "index.html"}
    assert set(report) == names and all(p.is_file() and p.name == n for n, p in report.items())
    assert not list(report["index.html"].parent.glob(".*.tmp"))  # no leftovers of the atomic writes


def test_markdown_table_numbers_in_their_columns(report: dict[str, Path]):
    header, rows = markdown_rows(report["table.md"])
    # the paper's layout: Clean | Blur ×4 | Noise ×4 | Digital ×4 | Weather ×4 | mPC | rPC
    assert header[:3] == ["Model", "Clean", "Blur: Motion"] and header[-2:] == ["mPC", "rPC"]
    assert header[6] == "Noise: Gauss." and header[10] == "Digital: Bright." and header[14] == "Weather: Snow"
    for model in ("A", "B"):
        expected = expected_row(model)
        values = [float(v) for v in rows[model][1:]]
        for column, value in zip(["clean", *CORRUPTIONS, "mPC", "rPC"], values, strict=True):
            digits = 2 if column == "mPC" else 1
            assert value == pytest.approx(expected[column], abs=0.5 * 10 ** -digits + 1e-9), (model, column)
    published = rows["SegFormer-B5 (published)"]
    assert published[1] == "82.4" and published[3] == "68.6" and published[-2:] == ["65.81", "79.9"]
    assert rows["DeepLabv3+ R101 (published)"][-2:] == ["39.42", "51.1"]


def test_csv_parses_back_to_the_same_numbers(report: dict[str, Path]):
    frame = pd.read_csv(report["table.csv"], index_col="model")
    assert list(frame.columns) == ["source", "clean", *CORRUPTIONS, "mPC", "rPC"]
    for model in ("A", "B"):
        for column, value in expected_row(model).items():
            assert frame.loc[model, column] == pytest.approx(value, abs=1e-3), (model, column)
    assert frame.loc["SegFormer-B5 (published)", "source"] == "published"
    assert frame.loc["SegFormer-B5 (published)", "mPC"] == pytest.approx(1053.0 / 16, abs=1e-3)


def test_latex_is_booktabs_with_the_best_measured_value_bold(report: dict[str, Path]):
    tex = report["table.tex"].read_text()
    for rule in (r"\toprule", r"\midrule", r"\bottomrule", r"\cmidrule(lr){3-6}", r"\multicolumn{4}{c}{Weather}"):
        assert rule in tex
    rows = {}
    for line in tex.splitlines():
        if line.endswith(r"\\") and line.split(" & ")[0] in ("A", "B"):
            cells = line.removesuffix(r"\\").strip().split(" & ")
            rows[cells[0]] = cells[1:]
    a, b = expected_row("A"), expected_row("B")
    for j, column in enumerate(["clean", *CORRUPTIONS, "mPC", "rPC"]):
        best = "A" if a[column] > b[column] else "B"
        assert rows[best][j].startswith(r"\textbf{"), column
        assert not rows["A" if best == "B" else "B"][j].startswith(r"\textbf{"), column
    assert r"\textbf{80.0}" in rows["A"][0] and rows["B"][1].startswith(r"\textbf{")  # clean: A; motion: B
    assert "SegFormer-B5 (published) & 82.4 &" in tex  # published rows are shown but never bold


def test_groups_table_with_intervals_and_degradation(report: dict[str, Path]):
    header, rows = markdown_rows(report["groups.md"])
    assert header == ["Model", "Clean", "Blur", "Noise", "Digital", "Weather", "mPC", "rPC", "mCD", "mrCD"]
    # identical images in every cell: every bootstrap resample gives the same mIoU, a zero-width interval
    assert rows["A"][1] == "80.0 [80.0, 80.0]"
    for cell in rows["A"][1:]:
        assert re.fullmatch(r"\d+\.\d \[\d+\.\d, \d+\.\d\]", cell)
    a = expected_row("A")
    blur = [c for g, members in SEGFORMER.groups if g == "blur" for c in members]
    assert float(rows["A"][2].split()[0]) == pytest.approx(sum(a[c] for c in blur) / 4, abs=0.05)
    # mCD by hand: CD_c = Σ_s (1 − mIoU_A) / Σ_s (1 − mIoU_B), over the protocol's severities
    cd = []
    for c in CORRUPTIONS:
        severities = SEGFORMER.severities_of(c)
        cd.append(sum(100 - cell_percent("A", c, s) for s in severities)
                  / sum(100 - cell_percent("B", c, s) for s in severities))
    groups = pd.read_csv(report["groups.csv"], index_col="model")
    assert groups.loc["A", "mCD"] == pytest.approx(100 * sum(cd) / len(cd), abs=1e-3)
    assert groups.loc["B", "mCD"] == pytest.approx(100.0) and rows["B"][-2].startswith("100.0")
    assert groups.loc["A", "mPC"] == pytest.approx(a["mPC"], abs=1e-3)
    assert groups.loc["A", "clean_low"] == pytest.approx(80.0) and groups.loc["A", "clean_high"] == pytest.approx(80.0)
    assert rows["SegFormer-B5 (published)"][-2:] == ["–", "–"]  # no per-severity cells, no CD


def test_per_class_table(report: dict[str, Path]):
    header, rows = markdown_rows(report["per_class.md"])
    assert header == ["Class", "A: clean", "corrupted", "B: clean", "corrupted"]
    assert rows["road"][1] == "80.0" and rows["sky"][3] == "75.0"
    frame = pd.read_csv(report["per_class.csv"], index_col="class")
    # each class's IoU is the cell's mIoU here, so "corrupted" (severities, then corruptions) is mPC
    assert frame.loc["sky", "A corrupted"] == pytest.approx(expected_row("A")["mPC"], abs=1e-3)


def test_pngs(report: dict[str, Path]):
    for name in ("severity.png", "groups.png", "gallery.png"):
        with Image.open(report[name]) as image:
            image.verify()
    with Image.open(report["gallery.png"]) as gallery:
        # 150 px of row labels, then 5 severity columns of 160 px thumbnails with 8 px gaps
        assert gallery.size[0] == 150 + 5 * (160 + 8)
        assert gallery.size[1] < 6000
    assert report["gallery.png"].stat().st_size < 2_000_000


def test_index_html_is_self_contained(report: dict[str, Path]):
    page = report["index.html"].read_text()
    assert not re.search(r"https?://", page)
    assert not re.search(r"<(link|iframe)\b|<script[^>]*\bsrc=|url\(", page)
    sources = re.findall(r'<img\b[^>]*\bsrc="([^"]*)"', page)
    assert len(sources) == len(re.findall(r"<img\b", page)) == 3  # severity, groups, gallery
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        png = base64.b64decode(src.split(",", 1)[1])
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        Image.open(io.BytesIO(png)).verify()
    for text in ("report-test", "synthetic", "000000000000", "2025-01-01", "mPC", "rPC", "mCD", "Kamann"):
        assert text in page


def test_published_rows_need_the_papers_protocol(tmp_path: Path):
    tiny = Protocol("tiny", (("blur", ("motion_blur",)), ("noise", ("gaussian_noise",))),
                    (("motion_blur", (1, 2)), ("gaussian_noise", (1,))))
    files = render_report(make_results(tiny), CLASSES, tiny, tmp_path, {"suite": "tiny"}, include_published=True,
                          n_resamples=20)
    assert "(published)" not in files["table.md"].read_text()
    assert "Published rows are omitted" in files["index.html"].read_text()


def test_class_count_must_match_the_matrices(tmp_path: Path):
    with pytest.raises(ValueError, match="3 classes"):
        render_report(make_results(), ("a", "b", "c"), SEGFORMER, tmp_path, {})








@needs_browser
def test_every_image_loads_in_a_headless_browser(report: dict[str, Path], tmp_path: Path):
    assert images_loaded_in_browser(report["index.html"], tmp_path) == (3, 3)


def test_files_get_the_permissions_of_a_plain_open(report: dict[str, Path], tmp_path: Path):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert {p.stat().st_mode & 0o777 for p in report.values()} == {plain.stat().st_mode & 0o777}
