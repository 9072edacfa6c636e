"""Data a user can get wrong: dataset options (on the command line, in a suite, in a training config) and
image files (16-bit, palette, float, larger than the pixel budget). A mistake is one line and exit 2 with
nothing written; a convertible image is converted by the documented rule, checked by hand computation."""

from __future__ import annotations

import inspect
import struct
import time
import zlib

import numpy as np
import pytest
import yaml
from PIL import Image

import segformer_bench as sb
from segformer_bench.data import DATASET_OPTIONS, build_dataset
from segformer_bench.image_io import read_image

from ..helpers import cli_error, corruption_suite, make_cityscapes, official_train_ids, save

# --- dataset options ---------------------------------------------------------------------------------------


def test_the_allowed_options_are_the_constructors_keywords():
    """The table the checks use lists exactly what each constructor takes besides its split and root."""
    from segformer_bench.data.ade20k import ADE20K
    from segformer_bench.data.cityscapes import Cityscapes
    from segformer_bench.data.synthcity import SynthCity

    for name, cls in (("synthcity", SynthCity), ("cityscapes", Cityscapes), ("ade20k", ADE20K)):
        taken = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "split", "root")]
        assert sorted(DATASET_OPTIONS[name]) == sorted(taken), name


@pytest.mark.parametrize(("dataset", "option", "allowed"), [
    ("synthcity", "sizee=[48,96]", "allowed: size, length, seed, cache"),
    ("synthcity", "split=train", "allowed: size, length, seed, cache"),  # a name build_dataset takes itself
    ("cityscapes", "size=[48,96]", "allowed: labels"),
    ("ade20k", "length=3", "ADE20K takes none"),
])
def test_unknown_option_of_eval_is_refused_before_loading(tmp_path, capsys, dataset, option, allowed):
    key = option.split("=")[0]
    missing = tmp_path / "no-such-checkpoint.pt"  # checked first would be another message
    message = cli_error(["eval", "--checkpoint", str(missing), "--dataset", dataset, "--dataset-option", option,
                         "--out", str(tmp_path / "r.json")], capsys)
    assert message.startswith("--dataset-option: unknown ") and f"'{key}'" in message and allowed in message
    assert list(tmp_path.iterdir()) == []


def test_unknown_option_of_corrupt_is_refused(tmp_path, capsys):
    message = cli_error(["corrupt", "--out", str(tmp_path / "c"), "--dataset-option", "lenght=3"], capsys)
    assert "--dataset-option" in message and "'lenght'" in message and "allowed: size, length, seed, cache" in message
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("item", ["size", "=3", " =[1,2]"])
def test_malformed_dataset_option_names_the_flag(tmp_path, capsys, item):
    for argv in (["eval", "--checkpoint", str(tmp_path / "x.pt")], ["corrupt", "--out", str(tmp_path / "c")]):
        message = cli_error([*argv, "--dataset-option", item], capsys)
        assert message.startswith("--dataset-option: ") and "key=value" in message
    assert list(tmp_path.iterdir()) == []


def test_unknown_option_in_a_suite(tmp_path, capsys):
    suite = corruption_suite(tmp_path, dataset={"name": "synthcity", "limit": 3, "options": {"size": [48, 96],
                                                                                             "colour": "red"}})
    for argv in (["validate", suite], ["run", suite, "--run-dir", str(tmp_path / "run"), "--no-progress"]):
        message = cli_error(argv, capsys)
        assert suite in message and "'dataset'" in message and "'colour'" in message
        assert "allowed: size, length, seed, cache" in message
    assert not (tmp_path / "run").exists()


def test_unknown_option_in_a_training_config(tmp_path, capsys):
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump({"dataset": "synthcity", "dataset_options": {"size": [64, 128], "sead": 3}}))
    run = tmp_path / "run"
    message = cli_error(["train", "--run-dir", str(run), "--preset", "synthcity", "--config", str(config)], capsys)
    assert str(config) in message and "dataset_options" in message and "'sead'" in message
    assert "allowed: size, length, seed, cache" in message
    message = cli_error(["train", "--run-dir", str(run), "--preset", "synthcity", "--set",
                         "dataset_options={sead: 3}"], capsys)
    assert "--set" in message and "'sead'" in message
    assert not run.exists()


# --- images: 16-bit, palette, float ---------------------------------------------------------------------------


def png_bytes(width: int, height: int, bit_depth: int, colour_type: int, rows: bytes | None) -> bytes:
    """A PNG written by hand (PNG spec: signature, IHDR, one IDAT of filter-0 scanlines, IEND), so that the test
    controls every header field; `rows` None writes a few zero bytes only (a header that promises more)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    data = zlib.compress(b"\0" * 16 if rows is None else rows)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


SAMPLES16 = np.array([[0, 1, 255, 256, 257, 300, 1000, 4096],
                      [25600, 32767, 32768, 40000, 65279, 65280, 65534, 65535]], np.uint16)
SAMPLES16 = np.tile(SAMPLES16, (4, 4))  # 8 × 32


def test_16_bit_grey_image_keeps_the_high_byte(tmp_path):
    Image.fromarray(SAMPLES16).save(tmp_path / "g16.png")
    with Image.open(tmp_path / "g16.png") as image:
        assert image.mode == "I;16"
    got = read_image(tmp_path / "g16.png")
    high_byte = SAMPLES16 // 256  # by hand: 0, 0, 0, 1, 1, 1, 3, 16, 100, 127, 128, 156, 254, 255, 255, 255
    assert got.shape == (8, 32, 3) and got.dtype == np.uint8
    assert all(np.array_equal(got[..., c], high_byte) for c in range(3))
    assert got[0, 6, 0] == 3 and got[1, 0, 0] == 100  # 1000 and 25600 are not clipped to 255


def test_the_16_bit_rule_is_pillows_own_for_16_bit_rgb_pngs(tmp_path):
    """The rule's reference: Pillow reads the samples of a 16-bit RGB PNG (written here byte by byte) by
    their high byte too, so a grey and an RGB 16-bit image of the same samples read alike."""
    rgb16 = np.stack([SAMPLES16, SAMPLES16[::-1], 65535 - SAMPLES16], -1)
    rows = b"".join(b"\0" + row.astype(">u2").tobytes() for row in rgb16)
    (tmp_path / "rgb16.png").write_bytes(png_bytes(32, 8, 16, 2, rows))
    assert np.array_equal(read_image(tmp_path / "rgb16.png"), (rgb16 >> 8).astype(np.uint8))


def test_palette_image_goes_through_its_palette(tmp_path):
    palette = np.random.default_rng(0).integers(0, 256, (256, 3), dtype=np.uint8)
    indices = np.random.default_rng(1).integers(0, 256, (32, 64), dtype=np.uint8)
    image = Image.fromarray(indices, mode="P")
    image.putpalette(palette.tobytes())
    image.save(tmp_path / "p.png")
    assert np.array_equal(read_image(tmp_path / "p.png"), palette[indices])


def test_16_bit_and_palette_images_in_a_cityscapes_tree(tmp_path):
    files = make_cityscapes(tmp_path / "cs", split="val")
    (image16, _), (palette_image, _) = list(files.values())[:2]
    samples = np.resize(SAMPLES16, (32, 64))
    Image.fromarray(samples).save(image16)
    palette = np.random.default_rng(2).integers(0, 256, (256, 3), dtype=np.uint8)
    indices = np.random.default_rng(3).integers(0, 256, (32, 64), dtype=np.uint8)
    p = Image.fromarray(indices, mode="P")
    p.putpalette(palette.tobytes())
    p.save(palette_image)
    dataset = build_dataset("cityscapes", "val", str(tmp_path / "cs"))
    by_path = {dataset.image_path(i): dataset[i]["image"] for i in range(len(dataset))}
    assert np.array_equal(by_path[image16], np.repeat((samples >> 8).astype(np.uint8)[..., None], 3, -1))
    assert np.array_equal(by_path[palette_image], palette[indices])


@pytest.mark.parametrize(("mode", "array", "kind"), [
    ("F", np.linspace(0, 1, 32 * 64, dtype=np.float32).reshape(32, 64), "floating-point"),
    ("I", np.arange(32 * 64, dtype=np.int32).reshape(32, 64) * 1000, "32-bit integer"),
])
def test_float_and_32_bit_images_are_refused(tmp_path, capsys, mode, array, kind):
    Image.fromarray(array, mode=mode).save(tmp_path / "x.tif")
    with Image.open(tmp_path / "x.tif") as image:
        assert image.mode == mode
    out = tmp_path / "out"
    message = cli_error(["predict", str(tmp_path / "x.tif"), "--out", str(out)], capsys)
    assert str(tmp_path / "x.tif") in message and f"a {kind} image (Pillow mode {mode})" in message
    assert not out.exists()


# --- labels: 16-bit and palette label PNGs keep their values --------------------------------------------------


@pytest.fixture(scope="module")
def b0_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "b0.pt"
    sb.save_model(sb.build_model("b0", 19), path)
    return path


def eval_argv(checkpoint, root, out) -> list[str]:
    return ["eval", "--checkpoint", str(checkpoint), "--dataset", "cityscapes", "--data-root", str(root),
            "--preset", "whole", "--set", "workers=0", "--device", "cpu", "--no-progress", "--out", str(out)]


def test_16_bit_label_above_255_is_refused(tmp_path, capsys, b0_checkpoint):
    files = make_cityscapes(tmp_path / "cs", split="val", train_ids=True)
    _, label = next(iter(files.values()))
    values = np.full((32, 64), 7, np.uint16)
    values[3, 5] = 300
    Image.fromarray(values).save(label)
    message = cli_error(eval_argv(b0_checkpoint, tmp_path / "cs", tmp_path / "r.json"), capsys)
    assert str(label) in message and "300, above 255" in message
    assert not (tmp_path / "r.json").exists() and not (tmp_path / "r.npz").exists()


def test_16_bit_label_values_are_kept(tmp_path):
    files = make_cityscapes(tmp_path / "cs", split="val", train_ids=True)
    _, label = next(iter(files.values()))
    values = np.resize(np.r_[np.arange(19), 255].astype(np.uint16), (32, 64))
    Image.fromarray(values).save(label)
    with Image.open(label) as image:
        assert image.mode == "I;16"
    dataset = build_dataset("cityscapes", "val", str(tmp_path / "cs"))
    got = {dataset.label_path(i): dataset[i]["label"] for i in range(len(dataset))}[label]
    assert got.dtype == np.uint8 and np.array_equal(got, values.astype(np.uint8))


def palette_png(path, indices: np.ndarray) -> None:
    """`indices` as a palette PNG whose colours are unrelated to the indices (a colour-coded label map)."""
    image = Image.fromarray(indices.astype(np.uint8), mode="P")
    image.putpalette(np.random.default_rng(4).integers(0, 256, (256, 3), dtype=np.uint8).tobytes())
    image.save(path)


def test_palette_label_keeps_its_indices(tmp_path):
    files = make_cityscapes(tmp_path / "cs", split="val", train_ids=True)
    _, train_ids_path = next(iter(files.values()))
    indices = np.resize(np.r_[np.arange(19), 255], (32, 64))
    palette_png(train_ids_path, indices)
    dataset = build_dataset("cityscapes", "val", str(tmp_path / "cs"))
    got = {dataset.label_path(i): dataset[i]["label"] for i in range(len(dataset))}[train_ids_path]
    assert np.array_equal(got, indices)


def test_palette_label_ids_are_mapped_like_cityscapes_scripts(tmp_path):
    files = make_cityscapes(tmp_path / "cs", split="val")
    _, label_ids_path = next(iter(files.values()))
    label_ids = np.resize(np.r_[np.arange(34), 255], (32, 64))
    palette_png(label_ids_path, label_ids)
    dataset = build_dataset("cityscapes", "val", str(tmp_path / "cs"))
    got = {dataset.label_path(i): dataset[i]["label"] for i in range(len(dataset))}[label_ids_path]
    assert np.array_equal(got, official_train_ids(label_ids.astype(np.uint8)))


# --- the pixel budget ----------------------------------------------------------------------------------------


def test_header_over_the_budget_is_refused_before_decoding(tmp_path, capsys, monkeypatch):
    """10 000 × 10 000 pixels promised by a 100-byte file (above the 8192² budget, below Pillow's own
    error limit): refused from the header. Decoding it would have failed on its truncated data instead, as
    raising the budget shows."""
    monkeypatch.delenv("SEGFORMER_BENCH_MAX_PIXELS", raising=False)
    path = tmp_path / "big.png"
    path.write_bytes(png_bytes(10_000, 10_000, 8, 2, None))
    out = tmp_path / "out"
    start = time.perf_counter()
    message = cli_error(["predict", str(path), "--out", str(out)], capsys)
    assert time.perf_counter() - start < 1.0
    assert str(path) in message and "10000×10000 = 100,000,000 pixels" in message
    assert "budget of 67,108,864" in message and "SEGFORMER_BENCH_MAX_PIXELS" in message
    assert not out.exists()
    monkeypatch.setenv("SEGFORMER_BENCH_MAX_PIXELS", str(10**8))
    assert "corrupt or truncated" in cli_error(["predict", str(path), "--out", str(out)], capsys)


def test_label_header_over_the_budget_is_refused(tmp_path, monkeypatch):
    from segformer_bench.data import DataError

    monkeypatch.delenv("SEGFORMER_BENCH_MAX_PIXELS", raising=False)
    files = make_cityscapes(tmp_path / "cs", split="val", train_ids=True)
    _, label = next(iter(files.values()))
    label.write_bytes(png_bytes(9000, 9000, 8, 0, None))
    dataset = build_dataset("cityscapes", "val", str(tmp_path / "cs"))
    index = next(i for i in range(len(dataset)) if dataset.label_path(i) == label)
    with pytest.raises(DataError) as excinfo:
        dataset[index]
    assert str(label) in str(excinfo.value) and "9000×9000" in str(excinfo.value) and "\n" not in str(excinfo.value)


def test_the_budget_can_be_set(tmp_path, capsys, monkeypatch):
    save(tmp_path / "a.png", np.zeros((32, 64, 3), np.uint8))  # 2048 pixels
    monkeypatch.setenv("SEGFORMER_BENCH_MAX_PIXELS", "2047")
    assert "budget of 2,047" in cli_error(["predict", str(tmp_path / "a.png"), "--out", str(tmp_path / "o")], capsys)
    monkeypatch.setenv("SEGFORMER_BENCH_MAX_PIXELS", "2048")
    assert read_image(tmp_path / "a.png").shape == (32, 64, 3)
    monkeypatch.setenv("SEGFORMER_BENCH_MAX_PIXELS", "lots")
    message = cli_error(["predict", str(tmp_path / "a.png"), "--out", str(tmp_path / "o")], capsys)
    assert "$SEGFORMER_BENCH_MAX_PIXELS must be a positive whole number" in message
    assert not (tmp_path / "o").exists()


def test_header_beyond_pillows_own_limit_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SEGFORMER_BENCH_MAX_PIXELS", raising=False)
    (tmp_path / "bomb.png").write_bytes(png_bytes(30_000, 30_000, 8, 2, None))
    message = cli_error(["predict", str(tmp_path / "bomb.png"), "--out", str(tmp_path / "o")], capsys)
    assert str(tmp_path / "bomb.png") in message and "900000000 pixels" in message
    assert not (tmp_path / "o").exists()
