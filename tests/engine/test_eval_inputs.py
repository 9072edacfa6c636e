"""`segformer-bench eval` refuses outputs it could only fail on at the end, and limits that select nothing,
before anything is loaded or computed: one line, exit 2, nothing written."""

from __future__ import annotations

import pytest

import segformer_bench as sb
from segformer_bench.config import ConfigError

from ..helpers import cli_error, corruption_suite, one_line_error


@pytest.fixture(scope="module")
def b0_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "b0.pt"
    sb.save_model(sb.build_model("b0", 19), path)
    return path


def eval_argv(checkpoint, *extra: str) -> list[str]:
    return ["eval", "--checkpoint", str(checkpoint), "--dataset-option", "size=[32,64]", "--dataset-option",
            "length=2", "--device", "cpu", "--no-progress", *extra]


def listing(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_out_that_is_a_directory_is_refused_before_loading(tmp_path, capsys, b0_checkpoint):
    (tmp_path / "results").mkdir()
    # checked before the checkpoint: a missing one would be another message
    message = cli_error(eval_argv(tmp_path / "missing.pt", "--out", str(tmp_path / "results")), capsys)
    assert message.startswith(f"--out {tmp_path / 'results'}: is a directory")
    message = cli_error(eval_argv(b0_checkpoint, "--out", str(tmp_path / "results")), capsys)
    assert "is a directory" in message and "names the JSON file" in message
    assert listing(tmp_path) == ["results"]


def test_out_whose_npz_is_a_directory_or_that_is_an_npz(tmp_path, capsys, b0_checkpoint):
    (tmp_path / "r.npz").mkdir()
    assert "r.npz: is a directory" in cli_error(eval_argv(b0_checkpoint, "--out", str(tmp_path / "r.json")), capsys)
    assert "name the JSON file" in cli_error(eval_argv(b0_checkpoint, "--out", str(tmp_path / "s.npz")), capsys)
    assert listing(tmp_path) == ["r.npz"]


def test_out_under_a_file_is_refused(tmp_path, capsys, b0_checkpoint):
    (tmp_path / "f").write_text("keep")
    message = cli_error(eval_argv(b0_checkpoint, "--out", str(tmp_path / "f" / "sub" / "r.json")), capsys)
    assert f"{tmp_path / 'f'} is a file" in message
    assert listing(tmp_path) == ["f"] and (tmp_path / "f").read_text() == "keep"


def test_export_cityscapes_that_is_a_file_is_refused_before_loading(tmp_path, capsys, b0_checkpoint):
    (tmp_path / "export").write_text("keep")
    argv = ["--export-cityscapes", str(tmp_path / "export"), "--out", str(tmp_path / "r.json")]
    message = cli_error(eval_argv(tmp_path / "missing.pt", *argv), capsys)
    assert message.startswith(f"--export-cityscapes {tmp_path / 'export'}: exists and is not a directory")
    cli_error(eval_argv(b0_checkpoint, *argv), capsys)
    assert listing(tmp_path) == ["export"] and (tmp_path / "export").read_text() == "keep"


def test_a_valid_out_is_written(tmp_path, capsys, b0_checkpoint):
    """The counterpart: the same command with outputs that can be written succeeds and writes them."""
    from segformer_bench.cli import main

    assert main(eval_argv(b0_checkpoint, "--out", str(tmp_path / "r.json"), "--export-cityscapes",
                          str(tmp_path / "export"), "--set", "workers=0")) == 0
    assert {"r.json", "r.npz", "export"} <= set(listing(tmp_path))


@pytest.mark.parametrize("limit", ["0", "-3"])
def test_limit_below_one_names_the_flag(tmp_path, capsys, limit):
    message = cli_error(eval_argv(tmp_path / "missing.pt", "--limit", limit, "--out", str(tmp_path / "r.json")),
                        capsys)
    assert message == f"--limit must be at least 1, got {limit}"
    assert listing(tmp_path) == []


def test_limit_below_one_through_the_api(b0_checkpoint):
    from segformer_bench.engine.evaluate import run_evaluation

    with pytest.raises(ConfigError) as excinfo:
        run_evaluation(str(b0_checkpoint), "synthcity", limit=0, dataset_options={"size": [32, 64], "length": 2})
    one_line_error(excinfo, "limit must be at least 1", "got 0")


@pytest.mark.parametrize("limit", [0, -1, 2.5, True])
def test_suite_dataset_limit_below_one(tmp_path, capsys, limit):
    suite = corruption_suite(tmp_path, dataset={"name": "synthcity", "limit": limit,
                                                "options": {"size": [48, 96], "length": 3}})
    for argv in (["validate", suite], ["run", suite, "--run-dir", str(tmp_path / "run"), "--no-progress"]):
        message = cli_error(argv, capsys)
        assert suite in message and "'dataset'" in message and "limit" in message
    assert not (tmp_path / "run").exists()
