"""The dataset: :class:`SynthCity`'s splits, samples determined by (seed, split, index), their weather, and the
render cache."""

from __future__ import annotations

import functools
import hashlib
import os
import zipfile
from pathlib import Path

import numpy as np

from ...errors import UserError
from ..base import DatasetInfo, SegmentationDataset, check_sample
from ..labels import CITYSCAPES_CLASSES
from .materials import Scene
from .renderer import check_size, render
from .street import generate_scene
from .weather import DEFAULT_LEVEL, Weather, check_condition

SPLITS = {"train": (0, 2975), "val": (1, 500), "test": (2, 1525)}  # (code in the seed, Cityscapes' size)


class SynthCity(SegmentationDataset):
    """Procedural street scenes in Cityscapes' 19 classes, generated on the fly.

    Sample `index` of `split` is a function of (seed, split, index) only, and renders at any `size`; the
    default lengths are Cityscapes' (2975 / 500 / 1525). `condition` renders the same scenes, with the same
    labels, in clear weather (the default), fog, at night, in rain or in snow, at severity `level` 1 (mild) to
    5 (hardest), default 3, each level a set of physical values (:mod:`.weather`; fog's levels 1–3 are Foggy
    Cityscapes' β = 0.005, 0.01, 0.02 per metre); `level` does nothing in clear weather.
    """

    info = DatasetInfo("synthcity", len(CITYSCAPES_CLASSES), CITYSCAPES_CLASSES)

    def __init__(self, split: str = "train", size: tuple[int, int] = (512, 1024), length: int | None = None,
                 seed: int = 0, cache: bool = False, condition: str = "clear", level: int = DEFAULT_LEVEL):
        if split not in SPLITS:
            raise UserError(f"SynthCity has no split {split!r}; choose one of {', '.join(SPLITS)}")
        if length is not None and (type(length) is not int or length < 0):
            raise UserError(f"SynthCity length must be a non-negative integer (or None for {SPLITS[split][1]}); "
                            f"got {length!r}")
        if type(seed) is not int or seed < 0:
            raise UserError(f"SynthCity seed must be a non-negative integer; got {seed!r}")
        if not isinstance(cache, bool):
            raise UserError(f"SynthCity cache must be true or false; got {cache!r}")
        check_condition(condition, level)
        self.split, self.size, self.seed = split, check_size(size), seed
        self.condition, self.level = condition, level
        self.length = SPLITS[split][1] if length is None else length
        key = f"{split}-{seed}-{self.size[0]}x{self.size[1]}" + ("" if condition == "clear" else f"-{condition}{level}")
        self.cache = cache_dir() / _generator_id() / key if cache else None

    def __len__(self) -> int:
        return self.length

    def name(self, index: int) -> str:
        return f"synthcity/{self.split}/{index:06d}"

    def scene(self, index: int) -> Scene:
        """The vector description of sample `index`."""
        if not 0 <= index < self.length:
            raise IndexError(f"SynthCity {self.split} has {self.length} samples; index {index} is out of range")
        return generate_scene(np.random.default_rng([self.seed, SPLITS[self.split][0], index]))

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        cached = self.cache / f"{index:06d}.npz" if self.cache is not None else None
        if cached is not None and cached.is_file():
            try:
                with np.load(cached) as f:
                    image, label = f["image"], f["label"]
                check_sample(image, label, self.info.num_classes, self.name(index))
                if image.shape[:2] == tuple(self.size):
                    return image, label
            except (OSError, ValueError, KeyError, UserError, zipfile.BadZipFile):
                pass  # unreadable or stale: render it again and overwrite
        weather = Weather(self.condition, self.level, (self.seed, SPLITS[self.split][0], index))
        image, label = render(self.scene(index), self.size, weather)
        check_sample(image, label, self.info.num_classes, self.name(index))
        if cached is not None:
            from ...image_io import atomic_path

            with atomic_path(cached) as tmp, open(tmp, "wb") as fh:
                np.savez(fh, image=image, label=label)
        return image, label


def cache_dir() -> Path:
    """Where rendered SynthCity samples are kept when a dataset asks for a cache: $SEGFORMER_BENCH_CACHE_DIR,
    else $XDG_CACHE_HOME/segformer-bench/synthcity, else ~/.cache/segformer-bench/synthcity."""
    if os.environ.get("SEGFORMER_BENCH_CACHE_DIR"):
        return Path(os.environ["SEGFORMER_BENCH_CACHE_DIR"]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "segformer-bench" / "synthcity"


def source_digest(package: Path) -> str:
    """A digest of the source of the package in directory `package`: every .py file under it, in the order of
    their relative paths, each as that path and its bytes (length-prefixed, so no two packages share a digest by
    moving bytes from one file to the next)."""
    digest = hashlib.sha256()
    for name in sorted(path.relative_to(package).as_posix() for path in package.rglob("*.py")):
        data = (package / name).read_bytes()
        digest.update(f"{name}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()[:16]


@functools.cache
def _generator_id() -> str:
    """A digest of this package's source (:func:`source_digest`): any change to the generator or renderer, in
    whichever module, starts a fresh cache."""
    return source_digest(Path(__file__).parent)
