"""Foggy Cityscapes (Sakaridis et al., IJCV 2018): Cityscapes images with fog rendered from their depth.

::

    <root>/leftImg8bit_foggy/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit_foggy_beta_<beta>.png
    <root>/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelTrainIds.png   (or _labelIds.png, as Cityscapes)
    <root>/foggy_trainval_refined_filenames.txt                                   (for refined=True)

Fog follows Koschmieder's law with attenuation coefficient β = 0.005, 0.01 or 0.02 (visibility of about 600,
300 and 150 m); every image exists at the three, in train and val only (no foggy test images). The labels are
Cityscapes' own gtFine, read exactly as the Cityscapes reader reads them, so the root may be a Cityscapes root
into which the foggy images were unpacked.

The refined list names the 550 images (498 train, 52 val) whose fog came out best. One image per line, as
``<city>/<stem>``, a bare ``<stem>`` or any path ending in one, with or without a ``_leftImg8bit…`` suffix and
``.png``; blank lines and lines starting with ``#`` are skipped.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from .base import DataError, DatasetInfo, SegmentationDataset, check_sample
from .cityscapes import gtfine_label_path, read_gtfine_label, read_image_file, require_dir, resolve_root
from .labels import CITYSCAPES_CLASSES, NUM_CITYSCAPES_CLASSES

# β as the file names spell it
BETAS: dict[float, str] = {0.005: "0.005", 0.01: "0.01", 0.02: "0.02"}
REFINED_LIST = "foggy_trainval_refined_filenames.txt"
_STEM = re.compile(r"[A-Za-z]+_\d{6}_\d{6}")  # <city>_<seq>_<frame>, Cityscapes' image stem


class FoggyCityscapes(SegmentationDataset):
    """The Foggy Cityscapes images of attenuation `beta` (0.005, 0.01 or 0.02) of `split` ('train' or 'val')
    under `root` (default: $FOGGY_CITYSCAPES_ROOT); with ``refined=True`` only those the refined list names."""

    info = DatasetInfo("foggy_cityscapes", NUM_CITYSCAPES_CLASSES, CITYSCAPES_CLASSES)
    splits = ("train", "val")

    def __init__(self, root: str | os.PathLike | None = None, split: str = "val", *, beta: float = 0.02,
                 refined: bool = False) -> None:
        self.beta_name = _beta_name(beta)
        if not isinstance(refined, bool):
            raise DataError(f"Foggy Cityscapes option refined must be true or false, got {refined!r}")
        if split not in self.splits:
            raise DataError(f"unknown Foggy Cityscapes split {split!r}: choose one of {', '.join(self.splits)} "
                            f"(there are no foggy test images)")
        self.root = resolve_root(root, "FOGGY_CITYSCAPES_ROOT", "Foggy Cityscapes")
        self.split, self.beta, self.refined = split, float(self.beta_name), refined
        self.image_dir = require_dir(self.root / "leftImg8bit_foggy" / split,
                                     f"not a Foggy Cityscapes root (it needs leftImg8bit_foggy/{split}/<city>/)")
        self.label_dir = require_dir(self.root / "gtFine" / split,
                                     f"Foggy Cityscapes is labelled by Cityscapes' fine annotations: unpack "
                                     f"gtFine_trainvaltest into {self.root}")
        self.suffix = f"_leftImg8bit_foggy_beta_{self.beta_name}.png"
        pattern = f"*/*{self.suffix}"
        # (city, stem) of every image, from directory listings only: no file is opened here
        self.items = sorted((p.parent.name, p.name.removesuffix(self.suffix)) for p in self.image_dir.glob(pattern))
        if not self.items:
            raise DataError(f"{self.image_dir}: no images matching {pattern}; check the root and beta (it needs "
                            f"leftImg8bit_foggy/{split}/<city>/<city>_<seq>_<frame>{self.suffix})")
        if refined:
            listed = read_refined_list(self.root / REFINED_LIST)
            found = len(self.items)
            self.items = [item for item in self.items if item[1] in listed]
            if not self.items:
                raise DataError(f"{self.root / REFINED_LIST}: names none of the {found} {split} images of "
                                f"beta {self.beta_name} here; check that the list and the images belong together")

    def __len__(self) -> int:
        return len(self.items)

    def name(self, index: int) -> str:
        city, stem = self.items[index]
        return f"foggy_cityscapes/{self.beta_name}/{city}/{stem}"

    def image_path(self, index: int) -> Path:
        city, stem = self.items[index]
        return self.image_dir / city / f"{stem}{self.suffix}"

    def label_path(self, index: int) -> Path:
        """As Cityscapes: the labelTrainIds file when it exists, else the labelIds file (which may be missing too)."""
        city, stem = self.items[index]
        return gtfine_label_path(self.label_dir, city, stem)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        image_path, path = self.image_path(index), self.label_path(index)
        image = read_image_file(image_path)
        label = read_gtfine_label(path, image_path, self.split)
        check_sample(image, label, self.info.num_classes, str(path))
        return image, label


def _beta_name(beta: object) -> str:
    """β as the file names spell it; 0.02 and "0.02" alike, anything but the three values a DataError."""
    value: float | None = None
    if isinstance(beta, (int, float)) and not isinstance(beta, bool):
        value = float(beta)
    elif isinstance(beta, str):
        try:
            value = float(beta)
        except ValueError:
            pass
    if value not in BETAS:
        raise DataError(f"Foggy Cityscapes option beta must be one of {', '.join(BETAS.values())} "
                        f"(visibility about 600, 300, 150 m), got {beta!r}")
    return BETAS[value]


def read_refined_list(path: Path) -> set[str]:
    """The image stems (``<city>_<seq>_<frame>``) the refined list at `path` names (see the module docstring)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: missing; refined=true needs Foggy Cityscapes' list of refined images at the "
                        f"root (it comes with the foggy images), or open the dataset with refined=false") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, not the list of refined images; remove or rename it") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: unreadable ({type(e).__name__}); restore the list from the foggy archive") from None
    stems = set()
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        base = line.replace("\\", "/").rsplit("/", 1)[-1]
        match = _STEM.match(base)
        rest = base[match.end():] if match else None
        if rest is None or not (rest in ("", ".png") or rest.startswith("_leftImg8bit")):
            raise DataError(f"{path}:{number}: {line!r} names no Cityscapes image (expected <city>/<city>_<seq>_"
                            f"<frame>, e.g. aachen/aachen_000000_000019); fix or delete the line")
        stems.add(match.group())
    return stems
