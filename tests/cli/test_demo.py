"""The demo's procedural scene, and the demo run from a checkpoint."""

from __future__ import annotations

import hashlib

import numpy as np

from segformer_bench import build_model, save_model
from segformer_bench.cli.demo import run_demo, street_scene
from segformer_bench.data.labels import CITYSCAPES_CLASSES


def test_scene_is_determined_by_its_seed():
    image, label = street_scene((64, 128), seed=3)
    again = street_scene((64, 128), seed=3)
    other = street_scene((64, 128), seed=4)
    assert image.shape == (64, 128, 3) and image.dtype == np.uint8
    assert label.shape == (64, 128) and label.dtype == np.uint8
    assert np.array_equal(image, again[0]) and np.array_equal(label, again[1])
    assert not np.array_equal(image, other[0])


def test_scene_labels_are_laid_out_like_a_street():
    _, label = street_scene((128, 256), seed=0)
    ids = {name: i for i, name in enumerate(CITYSCAPES_CLASSES)}
    assert {CITYSCAPES_CLASSES[i] for i in np.unique(label)} >= {"road", "sidewalk", "building", "sky", "car"}
    assert label[-1, 128] == ids["road"]  # the camera drives on the road
    ground = np.isin(label, [ids["road"], ids["sidewalk"], ids["terrain"]])
    assert not ground[:32].any()  # the ground lies below the horizon (in the middle third of the view) ...
    assert not (label[96:] == ids["sky"]).any()  # ... and the sky above it


def test_demo_from_a_checkpoint_records_it(tmp_path):
    path = save_model(build_model("b0", 19), tmp_path / "b0.safetensors")
    summary = run_demo(tmp_path / "demo", checkpoint=path, size=(64, 96))
    assert summary["trained"] is True
    assert summary["checkpoint_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert summary["note"].startswith("the scene is procedural")
