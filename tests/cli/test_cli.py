"""The command line, run in-process through main() and once as a real process."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from segformer_bench import __version__, build_model, load_model, save_model
from segformer_bench.cli import main
from segformer_bench.data.labels import palette


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "street.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def checkpoint(tmp_path: Path) -> tuple[Path, torch.nn.Module]:
    model = build_model("b0", 19).eval()
    return save_model(model, tmp_path / "b0.pt"), model


def _one_error_line(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("segformer-bench: error: ")
    assert "Traceback" not in err
    return lines[0]


def test_help_runs_as_a_process_without_importing_torch():
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "segformer_bench", "--help"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert "predict" in result.stdout and "convert" in result.stdout
    assert time.perf_counter() - start < 10  # torch alone takes seconds to import; --help must not wait for it

    probe = 'import sys, segformer_bench.cli; print("torch" in sys.modules)'
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "False", result.stderr


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"segformer-bench {__version__}"


@pytest.mark.parametrize(("argv", "message"), [
    ([], "the following arguments are required: COMMAND"),
    (["predict"], "predict: the following arguments are required: IMAGE, --out"),
    (["eval", "--checkpoint", "m.pt", "--limit", "abc"], "eval: argument --limit: invalid"),
    (["nonsense"], "argument COMMAND: invalid choice: 'nonsense'"),
])
def test_usage_errors_are_one_line_and_exit_2(capsys, argv, message):
    from ..helpers import cli_error

    error = cli_error(argv, capsys)
    assert message in error and error.endswith("--help)"), error


def test_models_table_shows_the_published_counts(capsys):
    # the released B0: encoder 3.319 M, with 19 classes 3.719 M, 121.0 GMACs on a 1024×2048 image (NVlabs code).
    assert main(["models", "b0"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("b0"))
    assert row.split() == ["b0", "3.319", "3.719", "121.0"]


def test_predict_writes_label_maps(image, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["predict", str(image), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "random weights" in captured.err  # the untrained-model warning

    with Image.open(out / "street_trainids.png") as ids:
        assert ids.mode == "L" and ids.size == (96, 64)
        ids = np.asarray(ids)
    assert ids.max() < 19
    with Image.open(out / "street_color.png") as color:
        assert color.mode == "RGB" and color.size == (96, 64)
        color = np.asarray(color)
    assert np.array_equal(color, palette(19)[ids])
    assert sorted(captured.out.split()) == sorted(str(out / name) for name in ("street_trainids.png",
                                                                               "street_color.png"))


def test_predict_with_a_checkpoint_and_sliding_window(image, checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["predict", str(image), "--out", str(out), "--checkpoint", str(checkpoint[0]),
            "--mode", "slide", "--crop", "48", "48", "--stride", "32", "32"]
    assert main(args) == 0
    assert capsys.readouterr().err == ""  # a checkpoint: no warning
    with Image.open(out / "street_trainids.png") as ids:
        assert ids.size == (96, 64)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _save_copy(src: Path, dst: Path) -> Path:
    dst.parent.mkdir()
    return _write(dst, src.read_bytes())


ERROR_CASES = {
    "missing image": lambda t, img: ["predict", str(t / "missing.png"), "--out", str(t / "out")],
    "image is a directory": lambda t, img: ["predict", str(t), "--out", str(t / "out")],
    "not an image": lambda t, img: ["predict", str(_write(t / "notes.png", b"not a png")), "--out", str(t / "out")],
    "truncated image": lambda t, img: ["predict", str(_write(t / "cut.png", img.read_bytes()[:200])),
                                       "--out", str(t / "out")],
    "second image corrupt": lambda t, img: ["predict", str(img), str(_write(t / "cut.png", img.read_bytes()[:200])),
                                            "--out", str(t / "out")],
    "two images, one stem": lambda t, img: ["predict", str(img), str(_save_copy(img, t / "copy" / img.name)),
                                            "--out", str(t / "out")],
    "image too small": lambda t, img: ["predict", str(img), "--out", str(t / "out"), "--mode", "slide",
                                       "--crop", "16", "16", "--stride", "8", "8"],
    "stride above crop": lambda t, img: ["predict", str(img), "--out", str(t / "out"), "--mode", "slide",
                                         "--crop", "32", "32", "--stride", "48", "48"],
    "unknown variant": lambda t, img: ["predict", str(img), "--out", str(t / "out"), "--variant", "b9"],
    "unknown device": lambda t, img: ["predict", str(img), "--out", str(t / "out"), "--device", "tpu9"],
    "missing checkpoint": lambda t, img: ["predict", str(img), "--out", str(t / "out"),
                                          "--checkpoint", str(t / "none.pt")],
    "unreadable checkpoint": lambda t, img: ["predict", str(img), "--out", str(t / "out"),
                                             "--checkpoint", str(_write(t / "junk.pt", b"\x00junk" * 10))],
    "output is a file": lambda t, img: ["predict", str(img), "--out", str(_write(t / "out", b"keep me"))],
    "convert missing source": lambda t, img: ["convert", str(t / "none.pt"), "--out", str(t / "out")],
    "convert junk": lambda t, img: ["convert", str(_write(t / "junk.safetensors", b"junk")), "--out", str(t / "out")],
    "demo output is a file": lambda t, img: ["demo", "--out", str(_write(t / "out", b"keep me")), "--size", "64", "64"],
    "demo too small": lambda t, img: ["demo", "--out", str(t / "out"), "--size", "40", "64"],
    "demo unknown variant": lambda t, img: ["demo", "--out", str(t / "out"), "--variant", "b7", "--size", "64", "64"],
}


@pytest.mark.parametrize("case", ERROR_CASES)
def test_user_errors_are_one_line_and_write_nothing(case, image, tmp_path, capsys):
    argv = ERROR_CASES[case](tmp_path, image)
    out = tmp_path / "out"
    before = out.read_bytes() if out.is_file() else None
    assert main(argv) == 2
    _one_error_line(capsys)
    if before is not None:
        assert out.read_bytes() == before
    else:
        assert not out.exists()


def test_unsupported_checkpoint_is_named(image, tmp_path, capsys):
    ckpt = tmp_path / "other.pt"
    torch.save({"state_dict": {"features.0.weight": torch.zeros(1)}}, ckpt)
    assert main(["convert", str(ckpt), "--out", str(tmp_path / "out")]) == 2
    assert "not a SegFormer checkpoint" in _one_error_line(capsys)


def test_convert_file_formats_need_a_file_name(checkpoint, tmp_path, capsys):
    assert main(["convert", str(checkpoint[0]), "--format", "official", "--out", str(tmp_path / "model.txt")]) == 2
    assert ".pth" in _one_error_line(capsys)
    assert not (tmp_path / "model.txt").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_cuda_is_a_user_error(image, tmp_path, capsys):
    assert main(["predict", str(image), "--out", str(tmp_path / "out"), "--device", "cuda"]) == 2
    assert "no CUDA device" in _one_error_line(capsys)


def test_convert_to_huggingface_matches_transformers(checkpoint, tmp_path, capsys):
    import transformers
    path, model = checkpoint
    out = tmp_path / "hf"
    assert main(["convert", str(path), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)

    hf = transformers.SegformerForSemanticSegmentation.from_pretrained(out).eval()
    # transformers builds every LayerNorm with eps 1e-5; the released blocks and stage norms use 1e-6.
    for name, module in hf.named_modules():
        if re.fullmatch(r"segformer\.stages\.\d+\.(layer_norm|blocks\.\d+\.layernorm_(before|after))", name):
            module.eps = 1e-6
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        # with transformers' eps the logits differ by about 1e-5; with the released eps, by float noise
        torch.testing.assert_close(hf(pixel_values=x).logits, model(x), rtol=0, atol=3e-6)


@pytest.mark.parametrize(("fmt", "name"), [("official", "model.pth"), ("segformer-bench", "model.safetensors")])
def test_convert_to_file_formats_round_trips(fmt, name, checkpoint, tmp_path):
    path, model = checkpoint
    assert main(["convert", str(path), "--format", fmt, "--out", str(tmp_path / name)]) == 0
    reloaded = load_model(tmp_path / name)
    for key, tensor in model.state_dict().items():
        assert torch.equal(reloaded.state_dict()[key], tensor), key


def test_demo_writes_all_its_files(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--size", "64", "128"]) == 0
    assert "untrained" in capsys.readouterr().out
    for name in ("input.png", "label.png", "pred_whole.png", "pred_slide.png", "pred_whole_trainids.png",
                 "summary.json", "hf/config.json", "hf/model.safetensors"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["input_size"] == [64, 128] and summary["variant"] == "b0" and summary["trained"] is False
    assert summary["hf_roundtrip_max_abs_logit_diff"] <= 1e-5
    assert 0.0 <= summary["pixel_accuracy"]["whole"] <= 1.0
    assert summary["versions"]["torch"] == torch.__version__
    with Image.open(out / "pred_whole_trainids.png") as ids:
        assert ids.mode == "L" and ids.size == (128, 64)
    assert not list(out.glob("**/*.tmp"))
