"""Cityscapes and ADE20K readers on tiny fake trees: layout, label mapping (against cityscapesScripts'
official table), roots from the environment, and one clear DataError for every kind of bad data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cityscapesscripts.helpers.labels import id2label
from PIL import Image

from segformer_bench.data import DataError
from segformer_bench.data.ade20k import ADE20K, reduce_zero_label
from segformer_bench.data.cityscapes import Cityscapes

from ..helpers import CITIES, H, W, make_cityscapes, official_train_ids, one_line_error, random_image, save

# --------------------------------------------------------------------------------------------------
# Cityscapes


def test_cityscapes_lists_sorted_names_and_loads(tmp_path):
    files = make_cityscapes(tmp_path)
    ds = Cityscapes(tmp_path, "train")
    names = [ds.name(i) for i in range(len(ds))]
    assert names == sorted(files) and names[0] == "aachen/aachen_000003_000021"
    assert ds.info.name == "cityscapes" and ds.info.num_classes == 19 and len(ds.info.class_names) == 19
    sample = ds[0]
    assert sample["name"] == names[0]
    assert sample["image"].shape == (H, W, 3) and sample["image"].dtype == np.uint8
    assert sample["label"].shape == (H, W) and sample["label"].dtype == np.uint8
    np.testing.assert_array_equal(sample["image"], np.array(Image.open(files[names[0]][0])))
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_cityscapes_label_ids_mapped_with_the_official_table(tmp_path):
    files = make_cityscapes(tmp_path)
    ds = Cityscapes(tmp_path, "train")
    for i in range(len(ds)):
        label_ids = np.array(Image.open(files[ds.name(i)][1]))
        label = ds[i]["label"]
        np.testing.assert_array_equal(label, official_train_ids(label_ids))
        assert set(np.unique(label)) == set(range(19)) | {255}
    # the class names in trainId order are the official ones
    official = {label.trainId: label.name for label in id2label.values() if 0 <= label.trainId < 255}
    assert ds.info.class_names == tuple(official[t] for t in range(19))


def test_cityscapes_prefers_label_train_ids(tmp_path):
    files = make_cityscapes(tmp_path)
    _, label_ids_path = files["aachen/aachen_000003_000021"]
    marker = np.full((H, W), 7, np.uint8)  # unlike the mapped labelIds file
    save(label_ids_path.with_name("aachen_000003_000021_gtFine_labelTrainIds.png"), marker)
    ds = Cityscapes(tmp_path, "train")
    np.testing.assert_array_equal(ds[0]["label"], marker)
    np.testing.assert_array_equal(ds[1]["label"], official_train_ids(np.array(Image.open(files[ds.name(1)][1]))))


def test_cityscapes_test_split_without_labels(tmp_path):
    for city in CITIES:  # the test split: images only
        save(tmp_path / "leftImg8bit" / "test" / city / f"{city}_000000_000001_leftImg8bit.png", random_image(0))
    ds = Cityscapes(tmp_path, "test", labels=False)
    assert len(ds) == 2 and (ds[0]["label"] == 255).all() and ds[0]["label"].shape == (H, W)
    with pytest.raises(DataError) as excinfo:
        Cityscapes(tmp_path, "test")
    one_line_error(excinfo, "labels=False")


def test_cityscapes_root_from_environment(tmp_path, monkeypatch):
    make_cityscapes(tmp_path)
    monkeypatch.setenv("CITYSCAPES_ROOT", str(tmp_path))
    assert len(Cityscapes(None, "train")) == 4
    monkeypatch.delenv("CITYSCAPES_ROOT")
    with pytest.raises(DataError) as excinfo:
        Cityscapes(None, "train")
    one_line_error(excinfo, "CITYSCAPES_ROOT", "--data-root")


def test_cityscapes_listing_opens_no_file(tmp_path, monkeypatch):
    make_cityscapes(tmp_path)

    def no_open(*args, **kwargs):
        raise AssertionError("listing opened a file")

    monkeypatch.setattr(Image, "open", no_open)
    assert len(Cityscapes(tmp_path, "train")) == 4


def test_cityscapes_missing_root_and_directories(tmp_path):
    with pytest.raises(DataError) as excinfo:
        Cityscapes(tmp_path / "nowhere", "train")
    one_line_error(excinfo, tmp_path / "nowhere")
    with pytest.raises(DataError) as excinfo:
        Cityscapes(tmp_path, "train")
    one_line_error(excinfo, tmp_path / "leftImg8bit" / "train")
    (tmp_path / "leftImg8bit" / "train" / "aachen").mkdir(parents=True)
    with pytest.raises(DataError) as excinfo:
        Cityscapes(tmp_path, "train")
    one_line_error(excinfo, tmp_path / "gtFine" / "train")
    (tmp_path / "gtFine" / "train").mkdir(parents=True)
    with pytest.raises(DataError) as excinfo:  # an empty split: say which pattern was searched
        Cityscapes(tmp_path, "train")
    one_line_error(excinfo, tmp_path / "leftImg8bit" / "train", "*_leftImg8bit.png")
    with pytest.raises(DataError) as excinfo:
        Cityscapes(tmp_path, "training")
    one_line_error(excinfo, "train, val, test")


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def break_cityscapes(files: dict[str, tuple[Path, Path]], case: str) -> Path:
    """Damage the first sample (aachen/aachen_000003_000021) as `case` says; return the file to be named."""
    image, label = files["aachen/aachen_000003_000021"]
    if case == "no label":
        label.unlink()
        return image
    if case == "garbage image":
        image.write_bytes(b"this is not a png")
        return image
    if case == "truncated image":
        truncate(image)
        return image
    if case == "truncated label":
        truncate(label)
        return label
    if case == "label size":
        save(label, np.zeros((H, W - 1), np.uint8))
        return label
    if case == "labelIds value":
        save(label, np.full((H, W), 40, np.uint8))
        return label
    if case == "trainIds value":
        return save(label.with_name("aachen_000003_000021_gtFine_labelTrainIds.png"), np.full((H, W), 30, np.uint8))
    if case == "colour label":
        save(label, random_image(0))
        return label
    raise AssertionError(case)


@pytest.mark.parametrize(("case", "says"), [
    ("no label", "no label file"),
    ("garbage image", "not an image"),
    ("truncated image", "truncated"),
    ("truncated label", "truncated"),
    ("label size", "does not belong"),
    ("labelIds value", "[40]"),
    ("trainIds value", "[30]"),
    ("colour label", "RGB"),
])
def test_cityscapes_bad_sample_is_one_clear_error(tmp_path, case, says):
    named = break_cityscapes(make_cityscapes(tmp_path), case)
    ds = Cityscapes(tmp_path, "train")  # listing does not look inside files, so it still works
    with pytest.raises(DataError) as excinfo:
        ds[0]
    one_line_error(excinfo, named, says)
    ds[1]  # the other samples are fine


# --------------------------------------------------------------------------------------------------
# ADE20K


def make_ade(parent: Path, split_dir: str = "validation", n: int = 3) -> dict[str, np.ndarray]:
    """n JPEG images of 24×40 with annotations using 0..150; returns stem → annotation."""
    base = parent / "ADEChallengeData2016"
    prefix = "train" if split_dir == "training" else "val"
    annotations = {}
    for k in reversed(range(1, n + 1)):
        stem = f"ADE_{prefix}_{k:08d}"
        save(base / "images" / split_dir / f"{stem}.jpg", random_image(k, 24, 40), quality=90)
        annotation = np.random.default_rng(k).integers(0, 151, (24, 40), dtype=np.uint8)
        annotations[stem] = annotation
        save(base / "annotations" / split_dir / f"{stem}.png", annotation)
    return annotations


def test_reduce_zero_label_by_hand():
    annotation = np.array([[0, 1, 2, 150, 255]], np.uint8)
    assert reduce_zero_label(annotation).tolist() == [[255, 0, 1, 149, 255]]


def test_ade20k_loads_with_reduced_labels(tmp_path):
    annotations = make_ade(tmp_path)
    ds = ADE20K(tmp_path, "val")
    assert [ds.name(i) for i in range(len(ds))] == sorted(annotations)
    assert ds.info.num_classes == 150 and len(ds.info.class_names) == 150
    # spot checks against mmseg's ADE20KDataset.CLASSES
    names = ds.info.class_names
    assert (names[0], names[12], names[20], names[149]) == ("wall", "person", "car", "flag")
    for i in range(len(ds)):
        sample = ds[i]
        annotation = annotations[sample["name"]]
        assert sample["image"].shape == (24, 40, 3)
        expected = np.where(annotation == 0, 255, annotation.astype(int) - 1)
        np.testing.assert_array_equal(sample["label"], expected)


def test_ade20k_root_is_either_level_or_from_environment(tmp_path, monkeypatch):
    make_ade(tmp_path, "training", n=2)
    assert len(ADE20K(tmp_path, "train")) == 2
    assert len(ADE20K(tmp_path / "ADEChallengeData2016", "train")) == 2
    monkeypatch.setenv("ADE20K_ROOT", str(tmp_path))
    assert len(ADE20K(None, "train")) == 2
    monkeypatch.delenv("ADE20K_ROOT")
    with pytest.raises(DataError) as excinfo:
        ADE20K(None, "train")
    one_line_error(excinfo, "ADE20K_ROOT")


def test_ade20k_bad_layout(tmp_path):
    with pytest.raises(DataError) as excinfo:
        ADE20K(tmp_path, "val")
    one_line_error(excinfo, tmp_path, "ADEChallengeData2016")
    make_ade(tmp_path, "training", n=1)
    with pytest.raises(DataError) as excinfo:  # images/validation is missing
        ADE20K(tmp_path, "val")
    one_line_error(excinfo, tmp_path / "ADEChallengeData2016" / "images" / "validation")
    with pytest.raises(DataError) as excinfo:
        ADE20K(tmp_path, "training")
    one_line_error(excinfo, "train, val")
    (tmp_path / "ADEChallengeData2016" / "images" / "validation").mkdir()
    (tmp_path / "ADEChallengeData2016" / "annotations" / "validation").mkdir()
    with pytest.raises(DataError) as excinfo:
        ADE20K(tmp_path, "val")
    one_line_error(excinfo, "*.jpg")


@pytest.mark.parametrize("case", ["no label", "truncated image", "value 151", "label size"])
def test_ade20k_bad_sample_is_one_clear_error(tmp_path, case):
    make_ade(tmp_path, n=2)
    base = tmp_path / "ADEChallengeData2016"
    image, label = base / "images/validation/ADE_val_00000001.jpg", base / "annotations/validation/ADE_val_00000001.png"
    if case == "no label":
        label.unlink()
        named, says = image, "no label file"
    elif case == "truncated image":
        truncate(image)
        named, says = image, "truncated"
    elif case == "value 151":
        save(label, np.full((24, 40), 151, np.uint8))
        named, says = label, "[151]"
    else:
        save(label, np.ones((20, 40), np.uint8))
        named, says = label, "does not belong"
    ds = ADE20K(tmp_path, "val")
    with pytest.raises(DataError) as excinfo:
        ds[0]
    one_line_error(excinfo, named, says)
    ds[1]
