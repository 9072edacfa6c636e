"""The corruption API, protocols, seeds, and the resumable `corrupt` command."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest

from segformer_bench.cli import main
from segformer_bench.corruptions import PROTOCOLS, corrupt, derive_seed, get_protocol
from segformer_bench.corruptions.generate import CorruptionJob, generate
from segformer_bench.corruptions.views import CorruptedTree
from segformer_bench.errors import UserError


def test_segformer_protocol_is_the_papers_table():
    p = PROTOCOLS["segformer"]
    assert [g for g, _ in p.groups] == ["blur", "noise", "digital", "weather"]
    assert p.corruptions == ("motion_blur", "defocus_blur", "glass_blur", "gaussian_blur",
                             "gaussian_noise", "impulse_noise", "shot_noise", "speckle_noise",
                             "brightness", "contrast", "saturate", "jpeg_compression",
                             "snow", "spatter", "fog", "frost")
    for c in p.corruptions:
        assert p.severities_of(c) == ((1, 2, 3) if c.endswith("_noise") else (1, 2, 3, 4, 5))
    assert len(p.cells()) == 4 * 3 + 12 * 5
    assert len(PROTOCOLS["imagenet-c"].cells()) == 15 * 5 and "speckle_noise" not in PROTOCOLS["imagenet-c"].corruptions
    assert len(PROTOCOLS["all"].cells()) == 19 * 5
    with pytest.raises(UserError, match="unknown corruption protocol 'cityscapes-c'"):
        get_protocol("cityscapes-c")


def test_seeds_are_stable_distinct_and_in_range():
    base = derive_seed(0, "frankfurt/frankfurt_000000_000294", "fog", 3)
    assert base == derive_seed(0, "frankfurt/frankfurt_000000_000294", "fog", 3)
    others = {derive_seed(1, "frankfurt/frankfurt_000000_000294", "fog", 3),
              derive_seed(0, "frankfurt/frankfurt_000000_000576", "fog", 3),
              derive_seed(0, "frankfurt/frankfurt_000000_000294", "frost", 3),
              derive_seed(0, "frankfurt/frankfurt_000000_000294", "fog", 4)}
    assert base not in others and len(others) == 4
    assert all(0 <= s < 2**32 for s in others | {base})
    # the same in a fresh interpreter (no dependence on Python's per-process hash seed)
    code = "from segformer_bench.corruptions import derive_seed; print(derive_seed(0, 'a/b', 'fog', 3))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert int(out) == derive_seed(0, "a/b", "fog", 3)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"name": "blizzard"}, "unknown corruption 'blizzard'"),
    ({"severity": 0}, "severity must be an integer from 1 to 5"),
    ({"severity": 6}, "severity must be an integer from 1 to 5"),
    ({"severity": True}, "severity must be an integer from 1 to 5"),
    ({"image": np.zeros((40, 40, 3), np.float32)}, "image must be uint8"),
    ({"image": np.zeros((40, 40, 4), np.uint8)}, "image must be H×W×3 or H×W"),
    ({"image": np.zeros((31, 64, 3), np.uint8)}, "at least 32×32"),
    ({"backend": "cuda"}, "unknown corruption backend"),
    ({"seed": -1}, r"seed must be in \[0, 2\*\*32\)"),
])
def test_bad_input_is_a_clear_error(kwargs, message):
    args = {"image": np.zeros((40, 48, 3), np.uint8), "name": "fog", "severity": 2, "seed": 0, "backend": "reference"}
    args.update(kwargs)
    with pytest.raises(UserError, match=message):
        corrupt(args["image"], args["name"], args["severity"], args["seed"], backend=args["backend"])


def test_grey_input_is_stacked():
    grey = np.random.default_rng(0).integers(0, 256, (40, 50), dtype=np.uint8)
    rgb = np.stack([grey] * 3, -1)
    a = corrupt(grey, "contrast", 3, 7, backend="reference")
    assert a.shape == (40, 50, 3) and np.array_equal(a, corrupt(rgb, "contrast", 3, 7, backend="reference"))
    assert np.array_equal(a, corrupt(grey[:, :, None], "contrast", 3, 7, backend="reference"))


JOB = CorruptionJob(dataset="synthcity", split="val", root=None, dataset_options={"size": [48, 96], "length": 3},
                    cells=(("contrast", 1), ("contrast", 4), ("gaussian_noise", 2)), seed=5, backend="reference")


def _hashes(tree) -> dict:
    return {str(p.relative_to(tree)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(tree.rglob("*.png"))}


def test_generate_writes_the_tree_and_manifest(tmp_path):
    generate(JOB, tmp_path / "c", progress=False, log=lambda _: None)
    files = _hashes(tmp_path / "c")
    assert sorted(files) == sorted(f"{c}/{s}/synthcity/val/{i:06d}.png" for c, s in JOB.cells for i in range(3))
    manifest = json.loads((tmp_path / "c" / "manifest.json").read_text())
    assert manifest["files"] == files  # every file recorded with its hash
    assert manifest["job"]["seed"] == 5 and manifest["job"]["backend"] == "reference"
    assert "numpy" in manifest["versions"] and len(manifest["images"]) == 3
    # a file holds exactly corrupt(image, cell, derived seed)
    from PIL import Image

    from segformer_bench.data import build_dataset

    image = build_dataset("synthcity", "val", size=[48, 96], length=3)[1]["image"]
    want = corrupt(image, "gaussian_noise", 2, derive_seed(5, "synthcity/val/000001", "gaussian_noise", 2),
                   backend="reference")
    got = np.array(Image.open(tmp_path / "c" / "gaussian_noise" / "2" / "synthcity" / "val" / "000001.png"))
    assert np.array_equal(got, want)
    # read back as a dataset: corrupted images with the source's labels
    tree = CorruptedTree(tmp_path / "c", "gaussian_noise", 2)
    sample = tree[1]
    assert np.array_equal(sample["image"], want) and sample["name"] == "synthcity/val/000001"
    assert sample["label"].shape == (48, 96)


def test_generate_resumes_without_redoing_work(tmp_path, monkeypatch):
    out = tmp_path / "c"
    generate(JOB, out, progress=False, log=lambda _: None)
    before = _hashes(out)
    # an interrupted run: one file never written, and the manifest saved before the last files finished
    (out / "contrast" / "4" / "synthcity" / "val" / "000002.png").unlink()
    calls = []
    import segformer_bench.corruptions.generate as gen

    real = gen.corrupt
    monkeypatch.setattr(gen, "corrupt", lambda *a, **k: calls.append(a[1:3]) or real(*a, **k))
    generate(JOB, out, progress=False, log=lambda _: None, check_space=False)
    assert calls == [("contrast", 4)]
    assert _hashes(out) == before


def test_a_different_job_in_the_same_directory_is_refused(tmp_path):
    generate(JOB, tmp_path / "c", progress=False, log=lambda _: None)
    other = CorruptionJob(dataset="synthcity", split="val", root=None, dataset_options=JOB.dataset_options,
                          protocol="imagenet-c", cells=JOB.cells, seed=5, backend="reference")
    with pytest.raises(UserError, match=r"made differently \(protocol 'segformer'; differs in: protocol\)"):
        generate(other, tmp_path / "c", progress=False, log=lambda _: None)


def test_cli_corrupt_with_workers_matches_one_process(tmp_path, capsys):
    common = ["corrupt", "--dataset", "synthcity", "--dataset-option", "size=[48,96]", "--dataset-option", "length=3",
              "--corruption", "contrast", "--corruption", "speckle_noise", "--severity", "2", "--seed", "1",
              "--backend", "reference", "--no-progress"]
    assert main([*common, "--out", str(tmp_path / "one")]) == 0
    assert main([*common, "--out", str(tmp_path / "two"), "--workers", "2"]) == 0
    one, two = _hashes(tmp_path / "one"), _hashes(tmp_path / "two")
    assert len(one) == 6 and one == two
    capsys.readouterr()
    assert main(["corrupt", "--out", str(tmp_path / "x"), "--protocol", "nope"]) == 2
    assert capsys.readouterr().err.startswith("segformer-bench: error: unknown corruption protocol")


@pytest.mark.parametrize("name", sorted(PROTOCOLS["all"].corruptions))
def test_fast_backend_through_the_api_equals_reference(name):
    image = np.random.default_rng(3).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    for severity in (1, 5):
        seed = derive_seed(0, "api", name, severity)
        want = corrupt(image, name, severity, seed, backend="reference")
        assert np.array_equal(corrupt(image, name, severity, seed, backend="fast"), want)


def test_torch_backend_through_the_api_is_batch_independent():
    import torch

    from segformer_bench.corruptions import corrupt_batch

    images = torch.from_numpy(np.random.default_rng(4).integers(0, 256, (3, 3, 40, 56), dtype=np.uint8))
    for name in ("glass_blur", "fog", "brightness", "gaussian_noise"):
        together = corrupt_batch(images, name, 2, [11, 12, 13])
        alone = corrupt_batch(images[2:3], name, 2, [13])
        assert together.shape == images.shape and together.dtype == torch.uint8
        assert torch.equal(together[2:3], alone), name


def test_generate_mirrors_a_cityscapes_tree_and_reads_back_labels(tmp_path):
    from ..helpers import make_cityscapes

    make_cityscapes(tmp_path / "cs", split="val")
    job = CorruptionJob(dataset="cityscapes", split="val", root=str(tmp_path / "cs"), cells=(("fog", 1),),
                        seed=0, backend="fast")
    generate(job, tmp_path / "out", progress=False, log=lambda _: None)
    written = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.png"))
    assert written and all(p.startswith("fog/1/leftImg8bit/val/") and p.endswith("_leftImg8bit.png") for p in written)
    from segformer_bench.data import build_dataset

    source = build_dataset("cityscapes", "val", str(tmp_path / "cs"))
    tree = CorruptedTree(tmp_path / "out", "fog", 1)
    assert len(tree) == len(source)
    for i in range(len(tree)):
        assert np.array_equal(tree[i]["label"], source[i]["label"]) and tree[i]["name"] == source.name(i)
