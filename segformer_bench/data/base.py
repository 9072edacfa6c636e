"""What every dataset gives the training and evaluation engines.

A dataset is a sequence of samples; a sample is a dict with

* ``image``: H×W×3 uint8 RGB array,
* ``label``: H×W uint8 array of train ids (0..num_classes-1) with 255 = ignore,
* ``name``: a stable id (e.g. ``frankfurt/frankfurt_000000_000294``) used for exported file names and for
  deriving per-image seeds, so no result depends on order, batch composition or sharding.

Datasets read (or render) one sample per ``__getitem__`` and validate it, raising ``DataError`` (a
``UserError``) naming the file and the problem.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

import numpy as np

from ..errors import UserError
from .labels import IGNORE_INDEX

__all__ = ["IGNORE_INDEX", "DataError", "Sample", "DatasetInfo", "SegmentationDataset", "check_sample"]


class DataError(UserError):
    """A dataset file or layout that cannot be used: missing, unreadable, inconsistent."""


class Sample(TypedDict):
    image: np.ndarray  # H, W, 3 uint8 RGB
    label: np.ndarray  # H, W uint8 train ids, 255 = ignore
    name: str


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    num_classes: int
    class_names: tuple[str, ...]
    ignore_index: int = IGNORE_INDEX


class SegmentationDataset:
    """Base class: subclasses set ``info`` and implement ``__len__``, ``name`` and ``load``."""

    info: DatasetInfo

    def __len__(self) -> int:
        raise NotImplementedError

    def name(self, index: int) -> str:
        raise NotImplementedError

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(image, label) of sample `index`, validated."""
        raise NotImplementedError

    def __getitem__(self, index: int) -> Sample:
        if not 0 <= index < len(self):
            raise IndexError(index)
        image, label = self.load(index)
        return Sample(image=image, label=label, name=self.name(index))


def check_sample(image: np.ndarray, label: np.ndarray, num_classes: int, where: str) -> None:
    """Raise DataError unless image is H×W×3 uint8, label is H×W of the same size, and every label value is a
    class id or 255."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise DataError(f"{where}: image must be H×W×3 uint8 RGB, got {image.shape} {image.dtype}")
    if label.shape != image.shape[:2]:
        raise DataError(f"{where}: label is {label.shape[1]}×{label.shape[0]} but the image is "
                        f"{image.shape[1]}×{image.shape[0]}; the pair does not belong together")
    values = np.unique(label)
    bad = values[(values >= num_classes) & (values != IGNORE_INDEX)]
    if bad.size:
        raise DataError(f"{where}: label values {bad[:8].tolist()} are outside the {num_classes} classes "
                        f"(0..{num_classes - 1}, 255 = ignore)")
