"""Datasets: Cityscapes, ADE20K and SynthCity (procedural, the embedded default), behind one constructor."""

from __future__ import annotations

from .base import IGNORE_INDEX, DataError, DatasetInfo, Sample, SegmentationDataset, check_sample

DATASETS = ("synthcity", "cityscapes", "ade20k")

__all__ = ["DATASETS", "IGNORE_INDEX", "DataError", "DatasetInfo", "Sample", "SegmentationDataset",
           "build_dataset", "check_sample", "class_names"]


def build_dataset(name: str, split: str = "val", root: str | None = None, **options: object) -> SegmentationDataset:
    """The dataset `name` ('synthcity', 'cityscapes' or 'ade20k') for `split` ('train', 'val', 'test').

    `root` defaults to $CITYSCAPES_ROOT / $ADE20K_ROOT; SynthCity needs none and takes ``size``, ``length``
    and ``seed`` options.
    """
    if name == "synthcity":
        from .synthcity import SynthCity

        return SynthCity(split=split, **options)
    if name == "cityscapes":
        from .cityscapes import Cityscapes

        return Cityscapes(root, split, **options)
    if name == "ade20k":
        from .ade20k import ADE20K

        return ADE20K(root, split, **options)
    raise DataError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)}")


def class_names(name: str) -> tuple[str, ...]:
    """The class names of dataset `name`, without building it (reports are rendered from a store alone)."""
    if name == "ade20k":
        from .ade20k import ADE20K_CLASSES

        return ADE20K_CLASSES
    if name in DATASETS:  # SynthCity is in Cityscapes' label space
        from .labels import CITYSCAPES_CLASSES

        return CITYSCAPES_CLASSES
    raise DataError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)}")
