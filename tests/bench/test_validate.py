"""``validate`` checks what a run would meet late, without running: device names, that input files exist,
training recipes, dataset options and roots; each problem one line naming the file and the field, nothing
printed for any suite when one fails, nothing written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from segformer_bench.cli import main

from ..helpers import cli_error, corruption_suite, make_cityscapes

B0 = {"name": "B0", "variant": "b0", "checkpoint": "b0.pt"}
TRAINED = {"name": "T", "variant": "b0", "train": {"preset": "synthcity", "overrides": {
    "dataset_options": {"size": [64, 64], "length": 4}, "iters": 2}}}


def _ok(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 0 and captured.err == "", captured
    return captured.out


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "cuda:-1", "meta", "CPU", ""], ids=lambda d: f"device={d!r}")
def test_a_device_name_no_run_understands_is_one_line(tmp_path, capsys, device):
    path = corruption_suite(tmp_path, device=device)
    assert cli_error(["validate", path], capsys) == \
        f"{path}: device: unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps"


def test_a_device_this_machine_lacks_is_a_note_not_an_error(tmp_path, capsys):
    out = _ok(["validate", corruption_suite(tmp_path, device="cuda:7")], capsys)
    lacks = torch.cuda.device_count() < 8
    assert ("note: device 'cuda:7': this machine sees" in out) == lacks, out
    assert "note:" not in _ok(["validate", corruption_suite(tmp_path, device="cpu")], capsys)


def test_a_missing_or_empty_checkpoint_is_one_line(tmp_path, capsys):
    path = corruption_suite(tmp_path)
    checkpoint = tmp_path / "b0.pt"
    checkpoint.unlink()
    assert cli_error(["validate", path], capsys).startswith(
        f"{path}: models[0].checkpoint: {checkpoint}: no such file or directory")
    checkpoint.write_bytes(b"")
    assert cli_error(["validate", path], capsys) == \
        f"{path}: models[0].checkpoint: {checkpoint} is empty (0 bytes); point it at a complete file"


def test_unknown_or_bad_synthcity_options_of_the_suite_are_one_line(tmp_path, capsys):
    path = corruption_suite(tmp_path, dataset={"name": "synthcity", "options": {"sizes": [48, 96]}})
    message = cli_error(["validate", path], capsys)
    assert message.startswith(f"{path}: field 'dataset': options: unknown SynthCity option(s) 'sizes'; allowed: ")
    assert {"size", "length", "seed", "cache"} <= set(message.rsplit("allowed: ", 1)[1].split(", "))
    path = corruption_suite(tmp_path, dataset={"name": "synthcity", "options": {"size": [8, 8]}})
    assert cli_error(["validate", path], capsys).startswith(f"{path}: dataset: SynthCity size must be")


def test_dataset_options_of_an_analysis_section_are_checked_over_the_suite_s(tmp_path, capsys):
    tests = [{"name": "base"}, {"name": "zoom", "dataset_options": {"zoom": 2}}]
    path = corruption_suite(tmp_path, analyses=["resolution"], resolution={"tests": tests})
    assert cli_error(["validate", path], capsys).startswith(
        f"{path}: resolution.tests[1].dataset_options: unknown SynthCity option(s) 'zoom'")
    tests[1]["dataset_options"] = {"size": [96, 192]}
    assert "resolution (2 tests)" in _ok(["validate", corruption_suite(tmp_path, analyses=["resolution"],
                                                                       resolution={"tests": tests})], capsys)


@pytest.mark.parametrize(("overrides", "field", "message"), [
    ({"dataset_options": {"sizes": [64, 64]}}, "dataset_options", "unknown SynthCity option(s) 'sizes'"),
    ({"lrr": 0.1}, "", "unknown field(s) lrr"),
    ({"lr": "fast"}, "", "field 'lr': expected float, got 'fast'"),
    ({"pretrained": "mit_b0.pth"}, "pretrained", "mit_b0.pth: no such file or directory"),
])
def test_a_training_recipe_is_checked_as_the_runner_builds_it(tmp_path, capsys, overrides, field, message):
    model = {**TRAINED, "train": {"preset": "synthcity", "overrides": overrides}}
    path = corruption_suite(tmp_path, models=[model])
    error = cli_error(["validate", path], capsys)
    assert error.startswith(f"{path}: models[0].train.overrides") and field in error and message in error, error


def test_a_valid_training_recipe_passes_and_nothing_is_written(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SEGFORMER_BENCH_CACHE_DIR", str(tmp_path / "cache"))
    overrides = {**TRAINED["train"]["overrides"], "dataset_options": {"size": [64, 64], "cache": True}}
    path = corruption_suite(tmp_path, models=[B0, {**TRAINED, "train": {"preset": "synthcity",
                                                                         "overrides": overrides}}],
                            dataset={"name": "synthcity", "options": {"size": [48, 96], "cache": True}})
    before = _files(tmp_path)
    out = _ok(["validate", path], capsys)
    assert out == f"{path}: ok (tiny: 2 model(s), synthcity; corruption (protocol segformer))\n"
    assert _files(tmp_path) == before  # no cache, no run directory, no report


def test_a_cityscapes_root_is_opened_or_left_to_the_variable(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("CITYSCAPES_ROOT", raising=False)
    path = corruption_suite(tmp_path, dataset={"name": "cityscapes", "root": "nowhere"})
    assert cli_error(["validate", path], capsys).startswith(f"{path}: dataset: {tmp_path / 'nowhere'}: Cityscapes root")
    make_cityscapes(tmp_path / "cs", "val")
    out = _ok(["validate", corruption_suite(tmp_path, dataset={"name": "cityscapes", "root": "cs"})], capsys)
    assert "ok (tiny: 1 model(s), cityscapes;" in out and "note:" not in out
    path = corruption_suite(tmp_path, dataset={"name": "cityscapes", "root": "cs", "options": {"size": [4, 4]}})
    assert cli_error(["validate", path], capsys) == \
        f"{path}: field 'dataset': options: unknown Cityscapes option(s) 'size'; allowed: labels"
    path = corruption_suite(tmp_path, dataset={"name": "cityscapes"})
    assert "note: the cityscapes root is read from $CITYSCAPES_ROOT at run time (not set here)" in \
        _ok(["validate", path], capsys)
    monkeypatch.setenv("CITYSCAPES_ROOT", str(tmp_path / "elsewhere"))
    assert "CITYSCAPES_ROOT" in cli_error(["validate", path], capsys)
    monkeypatch.setenv("CITYSCAPES_ROOT", str(tmp_path / "cs"))
    assert "note:" not in _ok(["validate", path], capsys)


def test_a_missing_corrupted_tree_is_one_line(tmp_path, capsys):
    path = corruption_suite(tmp_path, corruptions={"source": "tree", "tree": "tree"})
    assert cli_error(["validate", path], capsys).startswith(
        f"{path}: corruptions.tree: {tmp_path / 'tree'}: no such file or directory")
    (tmp_path / "tree").mkdir()
    _ok(["validate", path], capsys)


def test_nothing_is_printed_for_good_suites_when_one_fails(tmp_path, capsys):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    good = corruption_suite(tmp_path / "a")
    bad = corruption_suite(tmp_path / "b")
    os.remove(tmp_path / "b" / "b0.pt")
    code = main(["validate", good, bad])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"segformer-bench: error: {bad}: models[0].checkpoint")
    assert "Traceback" not in captured.err


def test_the_shipped_quickstart_validates(capsys):
    out = _ok(["validate", "quickstart"], capsys)
    assert out.count("\n") == 1 and "quickstart.yaml: ok (quickstart: 3 model(s), synthcity;" in out
