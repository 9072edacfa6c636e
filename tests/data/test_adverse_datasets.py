"""ACDC, Dark Zurich and Foggy Cityscapes readers on tiny fake trees in each dataset's real layout: names, order,
labels (trainIds as written, labelIds against cityscapesScripts' table), invalid-region masks, the refined list,
roots from the environment, one clear DataError for every kind of bad data, and the doors a user comes in by
(build_dataset, a suite's dataset, the CLI)."""

from __future__ import annotations

import inspect
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from cityscapesscripts.helpers.labels import id2label
from PIL import Image

import segformer_bench as sb
from segformer_bench.bench.validate import validate_suite
from segformer_bench.config import ConfigError
from segformer_bench.data import DATASET_OPTIONS, DataError, build_dataset, class_names
from segformer_bench.data.acdc import ACDC, DarkZurich
from segformer_bench.data.cityscapes import Cityscapes
from segformer_bench.data.foggy_cityscapes import FoggyCityscapes

from ..helpers import (
    H,
    W,
    cli_error,
    corruption_suite,
    label_ids_map,
    make_cityscapes,
    official_train_ids,
    one_line_error,
    random_image,
    save,
)

# Frames as ACDC and Dark Zurich name them; GOPR0475 is written first but sorts last, and the same frame exists
# under fog and night (ACDC reuses sequence names across conditions), so names must carry the condition.
FRAMES = {"GOPR0475": ("GOPR0475_frame_000041", "GOPR0475_frame_000007"), "GOPR0122": ("GOPR0122_frame_000500",)}


def invalid_mask(seed: int) -> np.ndarray:
    """An invIds mask as ACDC ships it: 0 valid, non-zero (here 1 and 255) invalid."""
    return np.random.default_rng(seed).choice(np.array([0, 0, 1, 255], np.uint8), (H, W))


def write_frames(image_dir: Path, label_dir: Path | None, seed: int) -> dict[str, dict[str, Path]]:
    """FRAMES under `image_dir` (and their ground truth under `label_dir`): the trainIds file holds the official
    mapping of the labelIds file; returns stem → {kind: path}."""
    files = {}
    for seq, stems in FRAMES.items():
        for k, stem in enumerate(stems):
            s = seed + 10 * k + len(seq)
            paths = {"image": save(image_dir / seq / f"{stem}_rgb_anon.png", random_image(s))}
            if label_dir is not None:
                ids = label_ids_map(s)
                paths["labelIds"] = save(label_dir / seq / f"{stem}_gt_labelIds.png", ids)
                paths["trainIds"] = save(label_dir / seq / f"{stem}_gt_labelTrainIds.png", official_train_ids(ids))
                paths["invIds"] = save(label_dir / seq / f"{stem}_gt_invIds.png", invalid_mask(s))
                save(label_dir / seq / f"{stem}_gt_labelColor.png", random_image(s))  # never read
            files[stem] = paths
    return files


def make_acdc(root: Path, split: str = "val", conditions=("fog", "night", "rain", "snow"), labels: bool = True):
    """FRAMES under every condition of `split`, plus a `<split>_ref` folder that must never be read; returns
    (condition, stem) → {kind: path}."""
    files = {}
    for c, condition in enumerate(conditions):
        label_dir = root / "gt" / condition / split if labels else None
        for stem, paths in write_frames(root / "rgb_anon" / condition / split, label_dir, 100 * c).items():
            files[condition, stem] = paths
        save(root / "rgb_anon" / condition / f"{split}_ref" / "GOPR0001" / "GOPR0001_frame_000001_ref_rgb_anon.png",
             random_image(1))
    return files


def acdc_names(condition: str) -> list[str]:
    return [f"acdc/{condition}/{seq}/{stem}" for seq in sorted(FRAMES) for stem in sorted(FRAMES[seq])]


def read(path: Path) -> np.ndarray:
    return np.array(Image.open(path))


def test_the_allowed_options_are_the_constructors_keywords():
    for name, cls in (("acdc", ACDC), ("dark_zurich", DarkZurich), ("foggy_cityscapes", FoggyCityscapes)):
        taken = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "split", "root")]
        assert sorted(DATASET_OPTIONS[name]) == sorted(taken), name


def test_class_names_are_cityscapes_official_ones():
    official = {label.trainId: label.name for label in id2label.values() if 0 <= label.trainId < 255}
    for name in ("acdc", "dark_zurich", "foggy_cityscapes"):
        assert class_names(name) == tuple(official[t] for t in range(19)), name


# --------------------------------------------------------------------------------------------------
# ACDC


def test_acdc_lists_sorted_names_and_reads_train_ids(tmp_path):
    files = make_acdc(tmp_path)
    ds = ACDC(tmp_path, "val", condition="night")
    assert [ds.name(i) for i in range(len(ds))] == acdc_names("night")  # the val_ref image is not among them
    assert ds.info.name == "acdc" and ds.info.num_classes == 19
    for i in range(len(ds)):
        sample = ds[i]
        paths = files["night", ds.name(i).rsplit("/", 1)[1]]
        assert sample["name"] == ds.name(i)
        np.testing.assert_array_equal(sample["image"], read(paths["image"]))
        np.testing.assert_array_equal(sample["label"], read(paths["trainIds"]))
        assert sample["label"].dtype == np.uint8
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_acdc_label_ids_are_mapped_with_the_official_table(tmp_path):
    files = make_acdc(tmp_path, conditions=("snow",))
    for paths in files.values():  # trainIds files unlike the mapped labelIds, so that the two readings differ
        save(paths["trainIds"], np.full((H, W), 7, np.uint8))
    by_ids = ACDC(tmp_path, "val", condition="snow", labels="labelIds")
    as_train_ids = ACDC(tmp_path, "val", condition="snow")
    for i in range(len(by_ids)):
        paths = files["snow", by_ids.name(i).rsplit("/", 1)[1]]
        label = by_ids[i]["label"]
        np.testing.assert_array_equal(label, official_train_ids(read(paths["labelIds"])))
        assert set(np.unique(label)) == set(range(19)) | {255}
        assert (as_train_ids[i]["label"] == 7).all()
    assert (ACDC(tmp_path, "val", condition="snow", labels=True)[0]["label"] == 7).all()  # true: the default


def test_acdc_invalid_regions_are_ignored_only_when_asked(tmp_path):
    files = make_acdc(tmp_path, conditions=("fog",))
    official = ACDC(tmp_path, "val", condition="fog")
    masked = ACDC(tmp_path, "val", condition="fog", invalid=True)
    for i in range(len(masked)):
        paths = files["fog", masked.name(i).rsplit("/", 1)[1]]
        train_ids, invalid = read(paths["trainIds"]), read(paths["invIds"]) != 0
        assert invalid.any() and (train_ids[invalid] != 255).any()
        label = masked[i]["label"]
        assert (label[invalid] == 255).all()
        np.testing.assert_array_equal(label[~invalid], train_ids[~invalid])
        np.testing.assert_array_equal(official[i]["label"], train_ids)  # the official protocol scores them


def test_acdc_all_is_the_four_conditions_in_order_with_distinct_names(tmp_path):
    make_acdc(tmp_path)
    ds = ACDC(tmp_path, "val", condition="all")
    names = [ds.name(i) for i in range(len(ds))]
    assert names == [n for c in ("fog", "night", "rain", "snow") for n in acdc_names(c)]
    assert len(set(names)) == len(names) == 12
    fog, night = ACDC(tmp_path, "val", condition="fog"), ACDC(tmp_path, "val", condition="night")
    assert fog.image_path(0) != night.image_path(0)
    assert not {fog.name(i) for i in range(len(fog))} & {night.name(i) for i in range(len(night))}


def test_acdc_test_split_is_read_without_labels(tmp_path):
    make_acdc(tmp_path, split="test", conditions=("rain",), labels=False)
    ds = ACDC(tmp_path, "test", condition="rain", labels=False)
    assert len(ds) == 3 and ds[0]["label"].shape == (H, W) and (ds[0]["label"] == 255).all()
    with pytest.raises(DataError) as excinfo:
        ACDC(tmp_path, "test", condition="rain")
    one_line_error(excinfo, "no public labels", "labels=false")
    with pytest.raises(DataError) as excinfo:
        ACDC(tmp_path, "test", condition="rain", labels=False, invalid=True)
    one_line_error(excinfo, "invalid=true", "labels=false")


def test_acdc_root_from_environment(tmp_path, monkeypatch):
    make_acdc(tmp_path, conditions=("fog",))
    monkeypatch.setenv("ACDC_ROOT", str(tmp_path))
    assert len(ACDC()) == 3 and len(build_dataset("acdc", "val", None)) == 3
    monkeypatch.delenv("ACDC_ROOT")
    with pytest.raises(DataError) as excinfo:
        ACDC()
    one_line_error(excinfo, "ACDC_ROOT", "--data-root")


@pytest.mark.parametrize(("options", "says"), [
    ({"condition": "dusk"}, "fog, night, rain, snow or all"),
    ({"condition": 3}, "fog, night, rain, snow or all"),
    ({"labels": "colour"}, "trainIds, labelIds or false"),
    ({"labels": None}, "trainIds, labelIds or false"),
    ({"invalid": "yes"}, "true or false"),
    ({"split": "val_ref"}, "train, val, test"),
])
def test_acdc_bad_option_is_one_clear_error(tmp_path, options, says):
    make_acdc(tmp_path, conditions=("fog",))
    split = options.pop("split", "val")
    with pytest.raises(DataError) as excinfo:
        ACDC(tmp_path, split, **options)
    one_line_error(excinfo, says)


def test_acdc_missing_root_and_directories(tmp_path):
    with pytest.raises(DataError) as excinfo:
        ACDC(tmp_path / "nowhere")
    one_line_error(excinfo, tmp_path / "nowhere")
    with pytest.raises(DataError) as excinfo:
        ACDC(tmp_path)
    one_line_error(excinfo, tmp_path / "rgb_anon", "not an ACDC root")
    make_acdc(tmp_path, conditions=("fog",))
    with pytest.raises(DataError) as excinfo:  # a condition not unpacked
        ACDC(tmp_path, condition="night")
    one_line_error(excinfo, tmp_path / "rgb_anon" / "night" / "val", "rgb_anon_trainvaltest")
    with pytest.raises(DataError) as excinfo:  # 'all' needs the four
        ACDC(tmp_path, condition="all")
    one_line_error(excinfo, tmp_path / "rgb_anon" / "night" / "val")
    (tmp_path / "rgb_anon" / "night" / "val").mkdir(parents=True)
    with pytest.raises(DataError) as excinfo:  # images without their labels
        ACDC(tmp_path, condition="night")
    one_line_error(excinfo, tmp_path / "gt" / "night" / "val", "gt_trainval")
    (tmp_path / "gt" / "night" / "val").mkdir(parents=True)
    with pytest.raises(DataError) as excinfo:  # an empty condition: say which pattern was searched
        ACDC(tmp_path, condition="night")
    one_line_error(excinfo, tmp_path / "rgb_anon" / "night" / "val", "*_rgb_anon.png")


def break_frame(paths: dict[str, Path], case: str) -> Path:
    """Damage one frame's files as `case` says; return the file the message must name."""
    if case == "no label":
        paths["trainIds"].unlink()
        paths["labelIds"].unlink()
        return paths["image"]
    if case == "only labelIds":
        paths["trainIds"].unlink()
        return paths["image"]
    if case == "garbage image":
        paths["image"].write_bytes(b"this is not a png")
        return paths["image"]
    if case == "label size":
        return save(paths["trainIds"], np.zeros((H, W - 1), np.uint8))
    if case == "trainIds value":
        return save(paths["trainIds"], np.full((H, W), 30, np.uint8))
    if case == "colour label":
        return save(paths["trainIds"], random_image(0))
    if case == "no mask":
        paths["invIds"].unlink()
        return paths["invIds"]
    if case == "mask size":
        return save(paths["invIds"], np.zeros((H - 1, W), np.uint8))
    raise AssertionError(case)


@pytest.mark.parametrize(("case", "options", "says"), [
    ("no label", {}, "restore the ground truth"),
    ("only labelIds", {}, "labels=labelIds"),
    ("garbage image", {}, "not an image"),
    ("label size", {}, "does not belong"),
    ("trainIds value", {}, "[30]"),
    ("colour label", {}, "RGB"),
    ("no mask", {"invalid": True}, "invalid=false"),
    ("mask size", {"invalid": True}, "does not belong"),
])
def test_acdc_bad_sample_is_one_clear_error(tmp_path, case, options, says):
    files = make_acdc(tmp_path, conditions=("fog",))
    named = break_frame(files["fog", "GOPR0122_frame_000500"], case)  # the first in order
    ds = ACDC(tmp_path, "val", condition="fog", **options)  # listing does not look inside files
    with pytest.raises(DataError) as excinfo:
        ds[0]
    one_line_error(excinfo, named, says)
    ds[1]  # the other samples are fine


def test_acdc_label_ids_out_of_range_is_one_clear_error(tmp_path):
    files = make_acdc(tmp_path, conditions=("fog",))
    bad = save(files["fog", "GOPR0122_frame_000500"]["labelIds"], np.full((H, W), 40, np.uint8))
    with pytest.raises(DataError) as excinfo:
        ACDC(tmp_path, "val", condition="fog", labels="labelIds")[0]
    one_line_error(excinfo, bad, "[40]", "labelIds")


# --------------------------------------------------------------------------------------------------
# Dark Zurich


def make_dark_zurich(root: Path) -> dict[str, dict[str, Path]]:
    files = write_frames(root / "rgb_anon" / "val" / "night", root / "gt" / "val" / "night", 7)
    write_frames(root / "rgb_anon" / "test" / "night", None, 8)
    write_frames(root / "rgb_anon" / "train" / "day", None, 9)  # unlabelled, for adaptation: never read
    return files


def test_dark_zurich_reads_val_with_labels_and_masks(tmp_path):
    files = make_dark_zurich(tmp_path)
    ds = DarkZurich(tmp_path)
    assert [ds.name(i) for i in range(len(ds))] == [
        f"dark_zurich/night/{seq}/{stem}" for seq in sorted(FRAMES) for stem in sorted(FRAMES[seq])]
    masked, by_ids = DarkZurich(tmp_path, invalid=True), DarkZurich(tmp_path, labels="labelIds")
    for i in range(len(ds)):
        paths = files[ds.name(i).rsplit("/", 1)[1]]
        train_ids, invalid = read(paths["trainIds"]), read(paths["invIds"]) != 0
        np.testing.assert_array_equal(ds[i]["image"], read(paths["image"]))
        np.testing.assert_array_equal(ds[i]["label"], train_ids)
        np.testing.assert_array_equal(by_ids[i]["label"], official_train_ids(read(paths["labelIds"])))
        np.testing.assert_array_equal(masked[i]["label"], np.where(invalid, 255, train_ids))


def test_dark_zurich_test_split_and_refused_train(tmp_path, monkeypatch):
    make_dark_zurich(tmp_path)
    monkeypatch.setenv("DARK_ZURICH_ROOT", str(tmp_path))
    ds = build_dataset("dark_zurich", "test", None, labels=False)
    assert len(ds) == 3 and (ds[2]["label"] == 255).all()
    with pytest.raises(DataError) as excinfo:
        DarkZurich(None, "test")
    one_line_error(excinfo, "no public labels", "labels=false")
    with pytest.raises(DataError) as excinfo:
        DarkZurich(None, "train")
    one_line_error(excinfo, "val, test", "no labels")
    monkeypatch.delenv("DARK_ZURICH_ROOT")
    with pytest.raises(DataError) as excinfo:
        DarkZurich()
    one_line_error(excinfo, "DARK_ZURICH_ROOT", "--data-root")


def test_dark_zurich_missing_directories_and_bad_sample(tmp_path):
    with pytest.raises(DataError) as excinfo:
        DarkZurich(tmp_path)
    one_line_error(excinfo, tmp_path / "rgb_anon", "not a Dark Zurich root")
    (tmp_path / "rgb_anon" / "val" / "night").mkdir(parents=True)
    with pytest.raises(DataError) as excinfo:
        DarkZurich(tmp_path)
    one_line_error(excinfo, tmp_path / "gt" / "val" / "night")
    (tmp_path / "gt" / "val" / "night").mkdir(parents=True)
    with pytest.raises(DataError) as excinfo:
        DarkZurich(tmp_path)
    one_line_error(excinfo, tmp_path / "rgb_anon" / "val" / "night", "*_rgb_anon.png")
    files = make_dark_zurich(tmp_path)
    bad = save(files["GOPR0122_frame_000500"]["trainIds"], np.full((H, W), 19, np.uint8))
    with pytest.raises(DataError) as excinfo:
        DarkZurich(tmp_path)[0]
    one_line_error(excinfo, bad, "[19]", "not trainIds")


# --------------------------------------------------------------------------------------------------
# Foggy Cityscapes


BETAS = ("0.005", "0.01", "0.02")


def make_foggy(root: Path, split: str = "train") -> dict[str, dict[str, Path]]:
    """A fake Cityscapes tree (make_cityscapes) with its images fogged at the three betas, and the refined list
    absent; returns <city>/<stem> → {beta or 'label': path}."""
    files = {}
    for name, (image, label) in make_cityscapes(root, split).items():
        city, stem = name.split("/")
        paths = {"label": label, "clear": image}
        for k, beta in enumerate(BETAS):
            path = root / "leftImg8bit_foggy" / split / city / f"{stem}_leftImg8bit_foggy_beta_{beta}.png"
            paths[beta] = save(path, random_image(1000 * k + len(files)))
        files[name] = paths
    return files


@pytest.mark.parametrize("beta", [0.005, 0.01, 0.02, "0.02"])
def test_foggy_cityscapes_reads_the_beta_asked_with_gtfine_labels(tmp_path, beta):
    files = make_foggy(tmp_path)
    ds = FoggyCityscapes(tmp_path, "train", beta=beta)
    spelled = str(beta)
    assert [ds.name(i) for i in range(len(ds))] == [f"foggy_cityscapes/{spelled}/{n}" for n in sorted(files)]
    assert ds.info.name == "foggy_cityscapes"
    for i in range(len(ds)):
        paths = files[ds.name(i).split("/", 2)[2]]
        sample = ds[i]
        np.testing.assert_array_equal(sample["image"], read(paths[spelled]))
        np.testing.assert_array_equal(sample["label"], official_train_ids(read(paths["label"])))


def test_foggy_cityscapes_names_differ_by_beta_and_share_a_cityscapes_root(tmp_path):
    files = make_foggy(tmp_path)
    names = [FoggyCityscapes(tmp_path, "train", beta=b).name(0) for b in (0.005, 0.01, 0.02)]
    assert len(set(names)) == 3
    assert len(Cityscapes(tmp_path, "train")) == len(files) == 4  # the foggy images are not Cityscapes' own
    marker = np.full((H, W), 11, np.uint8)  # a labelTrainIds file is preferred, as by Cityscapes
    first = sorted(files)[0]
    save(files[first]["label"].with_name(f"{first.split('/')[1]}_gtFine_labelTrainIds.png"), marker)
    np.testing.assert_array_equal(FoggyCityscapes(tmp_path, "train")[0]["label"], marker)


def test_foggy_cityscapes_refined_list(tmp_path):
    files = make_foggy(tmp_path)
    names = sorted(files)  # aachen/aachen_000003_000021, aachen/aachen_000019_000133, bochum/…
    (tmp_path / "foggy_trainval_refined_filenames.txt").write_text(
        "# the refined images\n"
        f"{names[3]}\n"  # <city>/<stem>
        "\n"
        f"train/{names[0]}_leftImg8bit.png\n"  # a path ending in the image file
        "frankfurt/frankfurt_000000_000294\n")  # a val image: not in this split
    ds = FoggyCityscapes(tmp_path, "train", refined=True)
    assert [ds.name(i) for i in range(len(ds))] == [f"foggy_cityscapes/0.02/{n}" for n in (names[0], names[3])]
    np.testing.assert_array_equal(ds[1]["image"], read(files[names[3]]["0.02"]))
    (tmp_path / "foggy_trainval_refined_filenames.txt").write_text("frankfurt/frankfurt_000000_000294\n")
    with pytest.raises(DataError) as excinfo:
        FoggyCityscapes(tmp_path, "train", refined=True)
    one_line_error(excinfo, "foggy_trainval_refined_filenames.txt", "names none of the 4 train images")
    (tmp_path / "foggy_trainval_refined_filenames.txt").write_text(f"{names[0]}\nnot an image name\n")
    with pytest.raises(DataError) as excinfo:
        FoggyCityscapes(tmp_path, "train", refined=True)
    one_line_error(excinfo, "foggy_trainval_refined_filenames.txt:2", "'not an image name'")
    (tmp_path / "foggy_trainval_refined_filenames.txt").unlink()
    with pytest.raises(DataError) as excinfo:
        FoggyCityscapes(tmp_path, "train", refined=True)
    one_line_error(excinfo, tmp_path / "foggy_trainval_refined_filenames.txt", "refined=false")


def test_foggy_cityscapes_root_from_environment(tmp_path, monkeypatch):
    make_foggy(tmp_path, split="val")
    monkeypatch.setenv("FOGGY_CITYSCAPES_ROOT", str(tmp_path))
    assert len(FoggyCityscapes()) == 4
    monkeypatch.delenv("FOGGY_CITYSCAPES_ROOT")
    with pytest.raises(DataError) as excinfo:
        FoggyCityscapes()
    one_line_error(excinfo, "FOGGY_CITYSCAPES_ROOT", "--data-root")


@pytest.mark.parametrize(("options", "says"), [
    ({"beta": 0.03}, "0.005, 0.01, 0.02"),
    ({"beta": "thick"}, "0.005, 0.01, 0.02"),
    ({"beta": True}, "0.005, 0.01, 0.02"),
    ({"refined": "yes"}, "true or false"),
    ({"split": "test"}, "no foggy test images"),
])
def test_foggy_cityscapes_bad_option_is_one_clear_error(tmp_path, options, says):
    make_foggy(tmp_path)
    split = options.pop("split", "train")
    with pytest.raises(DataError) as excinfo:
        FoggyCityscapes(tmp_path, split, **options)
    one_line_error(excinfo, says)


def test_foggy_cityscapes_missing_directories_and_bad_samples(tmp_path):
    with pytest.raises(DataError) as excinfo:
        FoggyCityscapes(tmp_path / "nowhere")
    one_line_error(excinfo, tmp_path / "nowhere")
    make_cityscapes(tmp_path, "val")  # a Cityscapes root without the foggy images
    with pytest.raises(DataError) as excinfo:
        FoggyCityscapes(tmp_path)
    one_line_error(excinfo, tmp_path / "leftImg8bit_foggy" / "val", "not a Foggy Cityscapes root")
    files = make_foggy(tmp_path / "foggy", split="val")
    for paths in files.values():
        paths["0.02"].unlink()
    with pytest.raises(DataError) as excinfo:  # fogged at other betas only
        FoggyCityscapes(tmp_path / "foggy", beta=0.02)
    one_line_error(excinfo, "_leftImg8bit_foggy_beta_0.02.png", "check the root and beta")
    first = sorted(files)[0]
    files[first]["label"].unlink()
    with pytest.raises(DataError) as excinfo:
        FoggyCityscapes(tmp_path / "foggy", beta=0.01)[0]
    one_line_error(excinfo, files[first]["0.01"], "no label file", "gtFine/val")
    save(files[sorted(files)[1]]["label"], np.full((H, W), 40, np.uint8))
    with pytest.raises(DataError) as excinfo:
        FoggyCityscapes(tmp_path / "foggy", beta=0.01)[1]
    one_line_error(excinfo, files[sorted(files)[1]]["label"], "[40]")
    save(files[sorted(files)[2]]["0.01"], random_image(0, H - 2, W))
    with pytest.raises(DataError) as excinfo:
        FoggyCityscapes(tmp_path / "foggy", beta=0.01)[2]
    one_line_error(excinfo, files[sorted(files)[2]]["label"], "does not belong")
    shutil.rmtree(tmp_path / "foggy" / "gtFine")
    with pytest.raises(DataError) as excinfo:
        FoggyCityscapes(tmp_path / "foggy", beta=0.01)
    one_line_error(excinfo, tmp_path / "foggy" / "gtFine" / "val", "gtFine_trainvaltest")


# --------------------------------------------------------------------------------------------------
# The doors: build_dataset, a suite's dataset, the CLI


def test_build_dataset_refuses_an_option_the_dataset_does_not_take(tmp_path):
    make_acdc(tmp_path, conditions=("fog",))
    assert [build_dataset("acdc", "val", str(tmp_path), condition="fog").name(0)] == acdc_names("fog")[:1]
    with pytest.raises(DataError) as excinfo:
        build_dataset("acdc", "val", str(tmp_path), beta=0.02)
    one_line_error(excinfo, "'beta'", "allowed: condition, labels, invalid")
    with pytest.raises(DataError) as excinfo:
        build_dataset("foggy_cityscapes", "val", str(tmp_path), condition="fog")
    one_line_error(excinfo, "'condition'", "allowed: beta, refined")


def test_a_suite_names_acdc_with_its_condition(tmp_path, monkeypatch):
    make_acdc(tmp_path / "acdc", conditions=("night",))
    dataset = {"name": "acdc", "root": str(tmp_path / "acdc"), "split": "val", "options": {"condition": "night"}}
    assert "acdc" in validate_suite(corruption_suite(tmp_path, dataset=dataset))
    dataset["options"] = {"condition": "fog"}  # not unpacked here
    with pytest.raises(ConfigError) as excinfo:
        validate_suite(corruption_suite(tmp_path, dataset=dataset))
    one_line_error(excinfo, "tiny.yaml", tmp_path / "acdc" / "rgb_anon" / "fog" / "val")
    monkeypatch.delenv("ACDC_ROOT", raising=False)  # no root anywhere: noted, read at run time
    del dataset["root"]
    assert "$ACDC_ROOT" in validate_suite(corruption_suite(tmp_path, dataset=dataset))


def test_cli_names_a_bad_acdc_root_in_one_line(tmp_path, capsys):
    message = cli_error(["eval", "--checkpoint", str(tmp_path / "b0.pt"), "--dataset", "acdc", "--dataset-option",
                         "condition=night", "--data-root", str(tmp_path / "nowhere"), "--out",
                         str(tmp_path / "r.json")], capsys)
    assert str(tmp_path / "nowhere") in message and "ACDC root does not exist" in message
    assert list(tmp_path.iterdir()) == []


def test_cli_eval_on_acdc_night(tmp_path, capsys):
    files = make_acdc(tmp_path / "acdc", conditions=("fog", "night"))
    sb.save_model(sb.build_model("b0", 19), tmp_path / "b0.pt")
    out = tmp_path / "r.json"
    from segformer_bench.cli import main

    assert main(["eval", "--checkpoint", str(tmp_path / "b0.pt"), "--dataset", "acdc", "--dataset-option",
                 "condition=night", "--dataset-option", "labels=labelIds", "--data-root", str(tmp_path / "acdc"),
                 "--preset", "whole", "--set", "workers=0", "--device", "cpu", "--no-progress",
                 "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["names"] == acdc_names("night") and record["images"] == 3 and record["dataset"] == "acdc"
    # every labelled pixel of the night images, and no other, was scored
    labelled = sum(int((official_train_ids(read(p["labelIds"])) != 255).sum())
                   for (c, _), p in files.items() if c == "night")
    assert int(np.sum(record["confusion"])) == labelled
