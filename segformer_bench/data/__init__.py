"""Datasets: Cityscapes, ADE20K, SynthCity (procedural, the embedded default) and the real adverse conditions
(ACDC, Dark Zurich, Foggy Cityscapes), behind one constructor."""

from __future__ import annotations

from collections.abc import Mapping

from .base import IGNORE_INDEX, DataError, DatasetInfo, Sample, SegmentationDataset, check_sample

DATASETS = ("synthcity", "cityscapes", "ade20k", "acdc", "dark_zurich", "foggy_cityscapes")

# The options each dataset's constructor takes besides its split and root (SynthCity renders, so it has the
# most); every door that takes options from a user (--dataset-option, a suite's dataset.options, a training
# config's dataset_options) is checked against this table before anything is built.
DATASET_OPTIONS: dict[str, tuple[str, ...]] = {
    "synthcity": ("size", "length", "seed", "cache", "condition", "level"),
    "cityscapes": ("labels",),
    "ade20k": (),
    "acdc": ("condition", "labels", "invalid"),
    "dark_zurich": ("labels", "invalid"),
    "foggy_cityscapes": ("beta", "refined"),
}
_TITLES = {"synthcity": "SynthCity", "cityscapes": "Cityscapes", "ade20k": "ADE20K", "acdc": "ACDC",
           "dark_zurich": "Dark Zurich", "foggy_cityscapes": "Foggy Cityscapes"}

__all__ = ["DATASETS", "DATASET_OPTIONS", "IGNORE_INDEX", "DataError", "DatasetInfo", "Sample",
           "SegmentationDataset", "build_dataset", "check_dataset_options", "check_sample", "class_names"]


def check_dataset_options(name: str, options: Mapping[str, object], where: str = "dataset options") -> None:
    """A DataError naming `where` (the flag or field they came from), the unknown keys of `options` and the
    allowed ones for dataset `name`. Values are checked by the dataset's constructor."""
    if name not in DATASET_OPTIONS:
        raise DataError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)}")
    if not isinstance(options, Mapping):
        raise DataError(f"{where}: expected a mapping of {_TITLES[name]} options, got {type(options).__name__}")
    allowed = DATASET_OPTIONS[name]
    unknown = [str(k) for k in options if k not in allowed]
    if unknown:
        choices = f"allowed: {', '.join(allowed)}" if allowed else f"{_TITLES[name]} takes none"
        raise DataError(f"{where}: unknown {_TITLES[name]} option(s) {', '.join(map(repr, unknown))}; {choices}")


def build_dataset(name: str, split: str = "val", root: str | None = None, /, **options: object) -> SegmentationDataset:
    """The dataset `name` (one of ``DATASETS``) for `split` ('train', 'val', 'test').

    `root` defaults to $CITYSCAPES_ROOT, $ADE20K_ROOT, $ACDC_ROOT, $DARK_ZURICH_ROOT or $FOGGY_CITYSCAPES_ROOT;
    SynthCity needs none. The options each takes are ``DATASET_OPTIONS`` (e.g. SynthCity ``size``, ACDC
    ``condition``, Foggy Cityscapes ``beta``); any other is a DataError.
    """
    check_dataset_options(name, options)
    if name == "synthcity":
        from .synthcity import SynthCity

        return SynthCity(split=split, **options)
    if name == "cityscapes":
        from .cityscapes import Cityscapes

        return Cityscapes(root, split, **options)
    if name == "acdc":
        from .acdc import ACDC

        return ACDC(root, split, **options)
    if name == "dark_zurich":
        from .acdc import DarkZurich

        return DarkZurich(root, split, **options)
    if name == "foggy_cityscapes":
        from .foggy_cityscapes import FoggyCityscapes

        return FoggyCityscapes(root, split, **options)
    from .ade20k import ADE20K

    return ADE20K(root, split, **options)


def class_names(name: str) -> tuple[str, ...]:
    """The class names of dataset `name`, without building it (reports are rendered from a store alone)."""
    if name == "ade20k":
        from .ade20k import ADE20K_CLASSES

        return ADE20K_CLASSES
    if name in DATASETS:  # SynthCity and the adverse-condition datasets are in Cityscapes' label space
        from .labels import CITYSCAPES_CLASSES

        return CITYSCAPES_CLASSES
    raise DataError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)}")
