"""ACDC and Dark Zurich: real fog, night, rain and snow, labelled in Cityscapes' 19 classes.

Both come from the same group and share their file naming (anonymised GoPro frames, ground truth beside)::

    ACDC (Sakaridis et al., ICCV 2021)
    <root>/rgb_anon/<condition>/<split>/<seq>/<seq>_frame_<n>_rgb_anon.png        condition: fog night rain snow
    <root>/gt/<condition>/<split>/<seq>/<seq>_frame_<n>_gt_labelTrainIds.png      (train and val only)
                                                   …_gt_labelIds.png  …_gt_invIds.png
    Dark Zurich (Sakaridis et al., ICCV 2019)
    <root>/rgb_anon/<split>/night/<seq>/<seq>_frame_<n>_rgb_anon.png              split: val test
    <root>/gt/val/night/<seq>/<seq>_frame_<n>_gt_labelTrainIds.png                (val only)

Labels are read as trainIds (``labels="trainIds"``, the default), or from the Cityscapes labelIds files mapped
to trainIds (``labels="labelIds"``), or not at all (``labels=False``: every label is 255, for prediction export
on the test splits, whose labels are withheld). ``invalid=True`` also reads the ``*_gt_invIds.png`` masks and
ignores the pixels they mark (non-zero); the official protocol scores them, so it is off by default. ACDC's
``<split>_ref`` folders hold normal-condition images of the same places and are never read.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .base import IGNORE_INDEX, DataError, DatasetInfo, SegmentationDataset, check_sample
from .cityscapes import MAX_LABEL_ID, read_image_file, read_label_file, require_dir, resolve_root
from .labels import CITYSCAPES_CLASSES, NUM_CITYSCAPES_CLASSES, label_ids_to_train_ids

ACDC_CONDITIONS = ("fog", "night", "rain", "snow")
ALL_CONDITIONS = "all"  # ACDC's four conditions together, in that order (ACDC's results are reported so)
LABEL_FILES = {"trainIds": "labelTrainIds", "labelIds": "labelIds"}  # labels option → <stem>_gt_<file>.png
IMAGE_SUFFIX = "_rgb_anon.png"


class _GoProFrames(SegmentationDataset):
    """What ACDC and Dark Zurich share once a subclass has set ``dirs``: the listing, names, paths, loading.

    ``dirs`` maps each group of images (an ACDC condition; Dark Zurich's 'night') to its image and label folders.
    A sample's name is ``<dataset>/<group>/<seq>/<stem>``, unique across groups and datasets.
    """

    title: str  # the dataset's name in messages
    layout: str  # the image layout, in the message for a folder without images
    root: Path
    split: str
    labels: str | None  # a key of LABEL_FILES, or None for no labels
    invalid: bool
    dirs: dict[str, tuple[Path, Path]]
    items: list[tuple[str, str, str]]  # (group, seq, stem) of every image

    def _list_images(self) -> None:
        """``items`` from directory listings only (no file is opened here); a group without images is a DataError."""
        pattern = f"*/*{IMAGE_SUFFIX}"
        self.items = []
        for group, (image_dir, _) in self.dirs.items():
            found = sorted((p.parent.name, p.name.removesuffix(IMAGE_SUFFIX)) for p in image_dir.glob(pattern))
            if not found:
                raise DataError(f"{image_dir}: no images matching {pattern}; check the root (it needs {self.layout})")
            self.items += [(group, seq, stem) for seq, stem in found]

    def __len__(self) -> int:
        return len(self.items)

    def name(self, index: int) -> str:
        group, seq, stem = self.items[index]
        return f"{self.info.name}/{group}/{seq}/{stem}"

    def image_path(self, index: int) -> Path:
        group, seq, stem = self.items[index]
        return self.dirs[group][0] / seq / f"{stem}{IMAGE_SUFFIX}"

    def gt_path(self, index: int, kind: str) -> Path:
        """The ground-truth file ``<stem>_gt_<kind>.png`` of image `index` (kind: labelTrainIds, labelIds, invIds)."""
        group, seq, stem = self.items[index]
        return self.dirs[group][1] / seq / f"{stem}_gt_{kind}.png"

    def label_path(self, index: int) -> Path:
        """The label file the ``labels`` option names (the trainIds one when labels are off)."""
        return self.gt_path(index, LABEL_FILES[self.labels or "trainIds"])

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        image_path = self.image_path(index)
        image = read_image_file(image_path)
        if self.labels is None:
            return image, np.full(image.shape[:2], IGNORE_INDEX, np.uint8)
        path = self.label_path(index)
        if not path.exists():
            other = next(k for k in LABEL_FILES if k != self.labels)
            other_path = self.gt_path(index, LABEL_FILES[other])
            fix = (f"open the dataset with labels={other} (its {other_path.name} is there)" if other_path.exists()
                   else "restore the ground truth or remove the image")
            raise DataError(f"{image_path}: no label file {path}; {fix}")
        label = read_label_file(path)
        values = np.unique(label)
        if self.labels == "labelIds":
            bad = values[(values > MAX_LABEL_ID) & (values != IGNORE_INDEX)]
            if bad.size:
                raise DataError(f"{path}: values {bad[:8].tolist()} are not Cityscapes labelIds (0..{MAX_LABEL_ID}, "
                                f"255); re-extract the file from the {self.title} archive")
            label = label_ids_to_train_ids(label)
        else:
            bad = values[(values >= NUM_CITYSCAPES_CLASSES) & (values != IGNORE_INDEX)]
            if bad.size:
                raise DataError(f"{path}: values {bad[:8].tolist()} are not trainIds (0..18, 255); re-extract the "
                                f"file from the {self.title} archive, or open the dataset with labels=labelIds")
        if self.invalid:
            label = self._mask_invalid(index, label)
        check_sample(image, label, NUM_CITYSCAPES_CLASSES, str(path))
        return image, label

    def _mask_invalid(self, index: int, label: np.ndarray) -> np.ndarray:
        """`label` with the pixels that the image's invIds mask marks (non-zero) set to 255."""
        path = self.gt_path(index, "invIds")
        if not path.exists():
            raise DataError(f"{path}: missing; invalid=true needs every image's invalid-region mask, so restore "
                            f"it or open the dataset with invalid=false (the official protocol)")
        mask = read_label_file(path)
        if mask.shape != label.shape:
            raise DataError(f"{path}: mask is {mask.shape[1]}×{mask.shape[0]} but the label is "
                            f"{label.shape[1]}×{label.shape[0]}; the pair does not belong together")
        return np.where(mask != 0, np.uint8(IGNORE_INDEX), label)


def _labels_option(labels: object, title: str) -> str | None:
    """The ``labels`` option as a kind of ground-truth file, or None for none; true means the default, trainIds."""
    if labels is True:
        return "trainIds"
    if labels is False:
        return None
    if isinstance(labels, str) and labels in LABEL_FILES:
        return labels
    raise DataError(f"{title} option labels must be trainIds, labelIds or false (no labels), got {labels!r}")


def _invalid_option(invalid: object, title: str) -> bool:
    if not isinstance(invalid, bool):
        raise DataError(f"{title} option invalid must be true or false, got {invalid!r}")
    return invalid


class ACDC(_GoProFrames):
    """ACDC's `condition` ('fog', 'night', 'rain', 'snow', or 'all' for the four in that order) of `split`
    ('train', 'val' or 'test') under `root` (default: $ACDC_ROOT). The test labels are withheld: open the test
    split with ``labels=False`` (prediction export only)."""

    info = DatasetInfo("acdc", NUM_CITYSCAPES_CLASSES, CITYSCAPES_CLASSES)
    splits = ("train", "val", "test")
    title = "ACDC"

    def __init__(self, root: str | os.PathLike | None = None, split: str = "val", *, condition: str = "fog",
                 labels: str | bool = "trainIds", invalid: bool = False) -> None:
        if not isinstance(condition, str) or condition not in (*ACDC_CONDITIONS, ALL_CONDITIONS):
            raise DataError(f"unknown ACDC condition {condition!r}: choose one of {', '.join(ACDC_CONDITIONS)} "
                            f"or {ALL_CONDITIONS} (the four together)")
        self.labels = _labels_option(labels, self.title)
        self.invalid = _invalid_option(invalid, self.title)
        if split not in self.splits:
            raise DataError(f"unknown ACDC split {split!r}: choose one of {', '.join(self.splits)} (the *_ref "
                            f"folders hold normal-condition references, not images of the condition)")
        if split == "test" and self.labels:
            raise DataError("the ACDC test split has no public labels; open it with labels=false "
                            "(prediction export only) or evaluate on 'val'")
        if self.labels is None and self.invalid:
            raise DataError("ACDC option invalid=true masks the labels, but labels=false reads none; drop one")
        self.root = resolve_root(root, "ACDC_ROOT", "ACDC")
        self.split, self.condition = split, condition
        require_dir(self.root / "rgb_anon", "not an ACDC root (it needs rgb_anon/<condition>/<split>/<seq>/ and "
                                            "gt/<condition>/<split>/<seq>/)")
        conditions = ACDC_CONDITIONS if condition == ALL_CONDITIONS else (condition,)
        self.dirs = {}
        for c in conditions:
            image_dir = require_dir(self.root / "rgb_anon" / c / split,
                                    f"the ACDC {c} images of {split!r} are missing; unpack rgb_anon_trainvaltest "
                                    f"into {self.root}")
            label_dir = self.root / "gt" / c / split
            if self.labels:
                require_dir(label_dir, f"the ACDC {c} labels of {split!r} are missing; unpack gt_trainval into "
                                       f"{self.root}")
            self.dirs[c] = (image_dir, label_dir)
        self.layout = f"rgb_anon/<condition>/{split}/<seq>/<seq>_frame_<n>{IMAGE_SUFFIX}"
        self._list_images()


class DarkZurich(_GoProFrames):
    """Dark Zurich's night images of `split` ('val', or 'test' whose labels are withheld: open it with
    ``labels=False``) under `root` (default: $DARK_ZURICH_ROOT). Its train split (day, twilight and night
    without labels, for adaptation) is not offered."""

    info = DatasetInfo("dark_zurich", NUM_CITYSCAPES_CLASSES, CITYSCAPES_CLASSES)
    splits = ("val", "test")
    title = "Dark Zurich"

    def __init__(self, root: str | os.PathLike | None = None, split: str = "val", *,
                 labels: str | bool = "trainIds", invalid: bool = False) -> None:
        self.labels = _labels_option(labels, self.title)
        self.invalid = _invalid_option(invalid, self.title)
        if split not in self.splits:
            raise DataError(f"unknown Dark Zurich split {split!r}: choose one of {', '.join(self.splits)} (its "
                            f"train images have no labels)")
        if split == "test" and self.labels:
            raise DataError("the Dark Zurich test split has no public labels; open it with labels=false "
                            "(prediction export only) or evaluate on 'val'")
        if self.labels is None and self.invalid:
            raise DataError("Dark Zurich option invalid=true masks the labels, but labels=false reads none; drop one")
        self.root = resolve_root(root, "DARK_ZURICH_ROOT", "Dark Zurich")
        self.split = split
        require_dir(self.root / "rgb_anon", "not a Dark Zurich root (it needs rgb_anon/<split>/night/<seq>/ and "
                                            "gt/val/night/<seq>/)")
        image_dir = require_dir(self.root / "rgb_anon" / split / "night",
                                f"the Dark Zurich night images of {split!r} are missing; unpack its {split} "
                                f"archive into {self.root}")
        label_dir = self.root / "gt" / split / "night"
        if self.labels:
            require_dir(label_dir, f"the Dark Zurich labels of {split!r} are missing; unpack its {split} archive "
                                   f"(with gt/) into {self.root}")
        self.dirs = {"night": (image_dir, label_dir)}
        self.layout = f"rgb_anon/{split}/night/<seq>/<seq>_frame_<n>{IMAGE_SUFFIX}"
        self._list_images()
