"""The parts of a suite that every analysis shares: model entries, the dataset, evaluation settings.

They live apart from the suite loader (``suite.py``) because analyses read them too, while the loader reads
the analyses' registry for their sections.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from ..config import ConfigError
from ..data import check_dataset_options
from ..models.entry import ModelEntry


@dataclass(frozen=True)
class TrainSpec:
    """Train the model first: a TrainConfig preset with fields laid over it."""

    preset: str = "synthcity"
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelSpec(ModelEntry):
    """A suite's model: which model (``models.entry.ModelEntry``: a checkpoint, a transformers directory, a
    factory…), or for this package's own families a recipe to train it first; and its own eval settings."""

    train: TrainSpec | None = None  # this package's models: train first (then no checkpoint)
    eval: dict[str, Any] = field(default_factory=dict)  # EvalSettings fields for this model only (ADE B5: 640)

    def entry(self, checkpoint: str | None = None) -> ModelEntry:
        """The model entry ``open_model`` opens (with `checkpoint`, e.g. the trained one, in place of its own)."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(ModelEntry)}
        return ModelEntry(**{**fields, **({"checkpoint": checkpoint} if checkpoint is not None else {})})


@dataclass(frozen=True)
class DatasetSpec:
    name: Literal["synthcity", "cityscapes", "ade20k", "acdc", "dark_zurich", "foggy_cityscapes"] = "synthcity"
    root: str | None = None  # default: the dataset's variable ($CITYSCAPES_ROOT, $ACDC_ROOT, … see build_dataset)
    split: str = "val"
    limit: int | None = None  # evaluate the first N images only
    options: dict[str, Any] = field(default_factory=dict)  # data.DATASET_OPTIONS[name], e.g. SynthCity's size

    def __post_init__(self) -> None:
        if self.limit is not None and (type(self.limit) is not int or self.limit < 1):
            raise ConfigError(f"limit must be a positive number of images (or null for all), "
                              f"got {self.limit!r}")
        check_dataset_options(self.name, self.options, "options")


@dataclass(frozen=True)
class EvalSpec:
    preset: str = "whole"  # an engine.evaluate.EVAL_PRESETS name
    overrides: dict[str, Any] = field(default_factory=dict)  # EvalSettings fields


def check_eval(spec: EvalSpec, where: str) -> None:
    """An eval section: a known preset, and overrides that are EvalSettings fields of the right types."""
    from ..engine.evaluate import EVAL_PRESETS

    if spec.preset not in EVAL_PRESETS:
        raise ConfigError(f"{where}.preset {spec.preset!r}: choose one of {', '.join(EVAL_PRESETS)}")
    check_eval_overrides(spec.overrides, f"{where}.overrides")


def check_eval_overrides(overrides: dict[str, Any], where: str) -> None:
    from ..engine.evaluate import eval_settings

    eval_settings("whole", overrides, where=where)


