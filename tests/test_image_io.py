"""Reading images and writing files: bad inputs are one-line UserErrors, writes are atomic, hashes are sha256."""

from __future__ import annotations

import os
import stat
import subprocess

import numpy as np
import pytest
from PIL import Image

from segformer_bench.errors import UserError
from segformer_bench.image_io import atomic_path, check_output_dir, read_image, sha256_of, write_json, write_png


def test_read_image_converts_grey_palette_and_rgba_to_rgb(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    Image.fromarray(rgb[..., 0]).save(tmp_path / "grey.png")
    Image.fromarray(np.dstack([rgb, np.full((5, 7), 128, np.uint8)])).save(tmp_path / "rgba.png")
    assert np.array_equal(read_image(tmp_path / "rgb.png"), rgb)
    assert np.array_equal(read_image(tmp_path / "grey.png"), np.repeat(rgb[..., :1], 3, axis=2))
    assert np.array_equal(read_image(tmp_path / "rgba.png"), rgb)  # alpha dropped, colour kept


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: None, "no such image file"),
    (lambda p: p.mkdir(), "is a directory"),
    (lambda p: p.write_bytes(b"not an image"), "not an image Pillow can read"),
    (lambda p: p.write_bytes(_png_bytes()[:60]), "corrupt or truncated image"),
])
def test_bad_image_files_are_one_line_user_errors(tmp_path, make, message):
    path = tmp_path / "x.png"
    make(path)
    with pytest.raises(UserError, match=message) as err:
        read_image(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def _png_bytes() -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_atomic_path_publishes_on_success_and_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    with atomic_path(target) as tmp:
        tmp.write_text("new")
        assert not target.exists()  # nothing visible until the block ends
    assert target.read_text() == "new"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError
    assert target.read_text() == "new" and sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]


def test_written_files_get_a_plain_opens_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        write_json(tmp_path / "a.json", {"x": 1})
        with open(tmp_path / "b.json", "w") as f:
            f.write("{}")
    finally:
        os.umask(old)
    mode = lambda name: stat.S_IMODE((tmp_path / name).stat().st_mode)  # noqa: E731
    assert mode("a.json") == mode("b.json") == 0o644


def test_write_png_round_trips_and_refuses_other_dtypes(tmp_path):
    label = np.arange(12, dtype=np.uint8).reshape(3, 4)
    write_png(tmp_path / "l.png", label)
    assert np.array_equal(np.array(Image.open(tmp_path / "l.png")), label)
    with pytest.raises(ValueError, match="uint8"):
        write_png(tmp_path / "f.png", label.astype(np.float32))


def test_check_output_dir_refuses_a_file(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(UserError, match="exists and is not a directory"):
        check_output_dir(tmp_path / "f")
    assert check_output_dir(tmp_path / "new") == tmp_path / "new"


def test_sha256_of_a_file_is_sha256sums(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(os.urandom(3 << 20))  # more than one read chunk
    want = subprocess.run(["sha256sum", str(path)], capture_output=True, text=True, check=True).stdout.split()[0]
    assert sha256_of(path) == want


def test_sha256_of_a_directory_covers_names_and_contents(tmp_path):
    d = tmp_path / "hf"
    (d / "sub").mkdir(parents=True)
    (d / "config.json").write_text("{}")
    (d / "sub" / "model.safetensors").write_bytes(b"weights")
    first = sha256_of(d)
    (d / "sub" / "model.safetensors").write_bytes(b"weightz")
    changed_content = sha256_of(d)
    (d / "sub" / "model.safetensors").write_bytes(b"weights")
    assert sha256_of(d) == first != changed_content
    (d / "sub" / "model.safetensors").rename(d / "sub" / "other.safetensors")
    assert sha256_of(d) != first
