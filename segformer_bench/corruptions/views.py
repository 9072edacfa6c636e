"""Corrupted datasets: views of a dataset whose images come corrupted, for evaluation.

* ``CorruptedView``: a dataset's images corrupted on the fly on the CPU (``fast`` or ``reference`` backend),
  each with the seed ``derive_seed(seed, image name, corruption, severity)``, so every model sees the same
  corrupted images whatever the order, batching or sharding;
* ``CorruptedTree``: one (corruption, severity) of a tree written by ``segformer-bench corrupt``, its images
  read from disk and its labels from the source dataset.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..data import build_dataset
from ..data.base import SegmentationDataset
from ..errors import UserError
from ..image_io import read_image
from . import corrupt, derive_seed
from .generate import MANIFEST, read_manifest


class CorruptedView(SegmentationDataset):
    """`dataset` with every image corrupted by (corruption, severity) on the CPU, seeded per image."""

    def __init__(self, dataset: SegmentationDataset, corruption: str, severity: int, seed: int, backend: str) -> None:
        self.dataset, self.corruption, self.severity, self.seed, self.backend = (
            dataset, corruption, severity, seed, backend)
        self.info = dataset.info

    def __len__(self) -> int:
        return len(self.dataset)

    def name(self, index: int) -> str:
        return self.dataset.name(index)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        sample = self.dataset[index]
        seed = derive_seed(self.seed, sample["name"], self.corruption, self.severity)
        return corrupt(sample["image"], self.corruption, self.severity, seed, backend=self.backend), sample["label"]


class CorruptedTree(SegmentationDataset):
    """One (corruption, severity) of a tree written by ``generate``: its images, the source dataset's labels."""

    def __init__(self, tree: str | os.PathLike, corruption: str, severity: int) -> None:
        self.tree = Path(tree)
        path = self.tree / MANIFEST
        if not path.is_file():
            raise UserError(f"{self.tree}: no {MANIFEST}; make the tree with `segformer-bench corrupt`")
        manifest = read_manifest(path)
        job = manifest["job"]
        if [corruption, severity] not in job["cells"]:
            raise UserError(f"{self.tree}: has no {corruption} at severity {severity} (protocol {job['protocol']})")
        try:
            self.source = build_dataset(job["dataset"], job["split"], job["root"], **job["options"])
        except UserError as e:
            raise UserError(f"{path}: the tree's source dataset cannot be opened: {e}") from None
        self.info = self.source.info
        self.images = manifest["images"]
        # Labels come from the source by index: the tree's images must be the source's, in its order.
        if len(self.images) > len(self.source) or any(
                image["name"] != self.source.name(i) for i, image in enumerate(self.images)):
            raise UserError(f"{path}: its images are not those of its source dataset ({job['dataset']} "
                            f"{job['split']}, {len(self.source)} images) any more; make the tree again")
        self.corruption, self.severity = corruption, severity

    def __len__(self) -> int:
        return len(self.images)

    def name(self, index: int) -> str:
        return self.images[index]["name"]

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        path = self.tree / self.corruption / str(self.severity) / self.images[index]["image"]
        if not path.is_file():
            raise UserError(f"{path}: missing from the corrupted tree; run `segformer-bench corrupt` again to "
                            "finish it")
        image = read_image(path)
        label = self.source[index]["label"]
        if label.shape != image.shape[:2]:
            raise UserError(f"{path}: is {image.shape[1]}×{image.shape[0]} but its label is "
                            f"{label.shape[1]}×{label.shape[0]}")
        return image, label
