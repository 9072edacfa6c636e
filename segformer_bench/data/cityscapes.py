"""Cityscapes (fine annotations) from the standard directory layout.

::

    <root>/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    <root>/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelTrainIds.png   (made by cityscapesScripts)
    <root>/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png        (shipped)

A ``*_labelTrainIds.png`` is used when it exists; otherwise the shipped ``*_labelIds.png`` (ids 0–33) is
mapped to the 19 trainIds in memory, every other id becoming 255. Reading labelIds as if they were
trainIds is the classic cause of a near-zero mIoU, so both are validated by value.

Also the file helpers the other file-based datasets share: root resolution and validated image and label
reading, each failure a ``DataError`` naming the file; and the gtFine label reading Foggy Cityscapes shares.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import UserError
from ..image_io import open_image, rgb_array
from .base import IGNORE_INDEX, DataError, DatasetInfo, SegmentationDataset, check_sample
from .labels import CITYSCAPES_CLASSES, NUM_CITYSCAPES_CLASSES, label_ids_to_train_ids

MAX_LABEL_ID = 33  # the largest Cityscapes labelId written to *_gtFine_labelIds.png (bicycle)


class Cityscapes(SegmentationDataset):
    """The Cityscapes `split` ('train', 'val' or 'test') under `root` (default: $CITYSCAPES_ROOT).

    The test split has no public labels: open it with ``labels=False`` (every label is then all 255), to
    export predictions for the evaluation server.
    """

    info = DatasetInfo("cityscapes", NUM_CITYSCAPES_CLASSES, CITYSCAPES_CLASSES)
    splits = ("train", "val", "test")

    def __init__(self, root: str | os.PathLike | None = None, split: str = "val", *, labels: bool = True) -> None:
        if not isinstance(labels, bool):
            raise DataError(f"Cityscapes option labels must be true or false, got {labels!r}")
        if split not in self.splits:
            raise DataError(f"unknown Cityscapes split {split!r}: choose one of {', '.join(self.splits)}")
        if split == "test" and labels:
            raise DataError("the Cityscapes test split has no public labels; open it with labels=False "
                            "(prediction export only) or evaluate on 'val'")
        self.root = resolve_root(root, "CITYSCAPES_ROOT", "Cityscapes")
        self.split, self.labels = split, labels
        self.image_dir = require_dir(self.root / "leftImg8bit" / split,
                                     f"not a Cityscapes root (it needs leftImg8bit/{split}/<city>/)")
        self.label_dir = self.root / "gtFine" / split
        if labels:
            require_dir(self.label_dir, f"the fine annotations of {split!r} are missing; unpack gtFine_trainvaltest "
                                        f"into {self.root}")
        pattern = "*/*_leftImg8bit.png"
        # (city, stem) of every image, from directory listings only: no file is opened here
        self.items = sorted((p.parent.name, p.name.removesuffix("_leftImg8bit.png"))
                            for p in self.image_dir.glob(pattern))
        if not self.items:
            raise DataError(f"{self.image_dir}: no images matching {pattern}; check the root "
                            f"(it needs leftImg8bit/{split}/<city>/<city>_<seq>_<frame>_leftImg8bit.png)")

    def __len__(self) -> int:
        return len(self.items)

    def name(self, index: int) -> str:
        city, stem = self.items[index]
        return f"{city}/{stem}"

    def image_path(self, index: int) -> Path:
        city, stem = self.items[index]
        return self.image_dir / city / f"{stem}_leftImg8bit.png"

    def label_path(self, index: int) -> Path:
        """The labelTrainIds file when it exists, else the labelIds file (which may be missing too)."""
        city, stem = self.items[index]
        return gtfine_label_path(self.label_dir, city, stem)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        image_path = self.image_path(index)
        image = read_image_file(image_path)
        if not self.labels:
            return image, np.full(image.shape[:2], IGNORE_INDEX, np.uint8)
        path = self.label_path(index)
        label = read_gtfine_label(path, image_path, self.split)
        check_sample(image, label, self.info.num_classes, str(path))
        return image, label


# --------------------------------------------------------------------------------------------------
# Cityscapes' fine annotations, also the labels of Foggy Cityscapes


def gtfine_label_path(label_dir: Path, city: str, stem: str) -> Path:
    """Under gtFine/<split>/: the labelTrainIds file of image `stem` when it exists, else its labelIds file
    (which may be missing too)."""
    train_ids = label_dir / city / f"{stem}_gtFine_labelTrainIds.png"
    return train_ids if train_ids.exists() else label_dir / city / f"{stem}_gtFine_labelIds.png"


def read_gtfine_label(path: Path, image_path: Path, split: str) -> np.ndarray:
    """The trainIds of the gtFine file `path` (``gtfine_label_path``'s choice) of the image at `image_path`:
    a labelTrainIds file as it is, a labelIds file mapped; each validated by value, since reading one as the
    other is the classic cause of a near-zero mIoU."""
    if not path.exists():
        raise DataError(f"{image_path}: no label file ({path.name} or *_gtFine_labelTrainIds.png in "
                        f"{path.parent}); restore gtFine/{split} or remove the image")
    label = read_label_file(path)
    values = np.unique(label)
    if path.name.endswith("_labelTrainIds.png"):
        bad = values[(values >= NUM_CITYSCAPES_CLASSES) & (values != IGNORE_INDEX)]
        if bad.size:
            raise DataError(f"{path}: values {bad[:8].tolist()} are not trainIds (0..18, 255); regenerate the "
                            f"file with cityscapesscripts' csCreateTrainIdLabelImgs, or delete the "
                            f"*_labelTrainIds.png files to use *_labelIds.png")
    else:
        bad = values[(values > MAX_LABEL_ID) & (values != IGNORE_INDEX)]
        if bad.size:
            raise DataError(f"{path}: values {bad[:8].tolist()} are not Cityscapes labelIds (0..{MAX_LABEL_ID}, "
                            f"255); re-extract the file from gtFine_trainvaltest")
        label = label_ids_to_train_ids(label)
    return label


# --------------------------------------------------------------------------------------------------
# Shared by the file-based datasets


def resolve_root(root: str | os.PathLike | None, env_var: str, dataset: str) -> Path:
    """`root`, else $`env_var`, as an existing directory."""
    if root is None or str(root) == "":
        root = os.environ.get(env_var) or None
        if root is None:
            raise DataError(f"no {dataset} directory given: pass its root (--data-root DIR) or set {env_var}")
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DataError(f"{path}: {dataset} root does not exist or is not a directory; check the path "
                        f"(or {env_var})")
    return path


def require_dir(path: Path, why: str) -> Path:
    """`path` if it is a directory, else DataError '<path>: missing; <why>'."""
    if not path.is_dir():
        raise DataError(f"{path}: missing; {why}")
    return path


def read_image_file(path: Path) -> np.ndarray:
    """The (H, W, 3) uint8 RGB image at `path`, fully decoded and converted by ``image_io.rgb_array`` (grey
    and palette images as mmseg's loader converts them, 16-bit ones by their high byte); an image over the
    pixel budget is refused before decoding; any failure is a DataError naming the file."""
    with _decoding(path, "image"):
        with open_image(path) as image:
            image.load()  # decode now, so that a truncated file fails here
            return rgb_array(image, path)


# single-channel Pillow modes whose pixel values are class ids; "P" reads as its palette indices, never its
# colours (a palette label PNG's indices are its class ids)
_ID_MODES = {"L", "P", "1", "I", "I;16", "I;16L", "I;16B", "I;16N"}


def read_label_file(path: Path) -> np.ndarray:
    """The single-channel label map at `path` as (H, W) uint8, fully decoded; DataError naming the file
    when it is missing, unreadable, truncated, over the pixel budget (checked before decoding), not one
    channel of integers, or has values above 255 (16-bit label PNGs are read as they are, never scaled)."""
    with _decoding(path, "label"):
        with open_image(path) as image:
            if image.mode not in _ID_MODES:
                kind = ("floating-point values" if image.mode == "F"
                        else f"{len(image.getbands())} channels")
                raise DataError(f"{path}: label has mode {image.mode} ({kind}), not one channel of class ids; "
                                f"use the id PNGs (e.g. *_labelIds.png), not colour maps")
            image.load()
            label = np.array(image)
    if label.dtype != np.uint8:
        if label.size and (label.min() < 0 or label.max() > 255):
            raise DataError(f"{path}: label values reach {label.max()}, above 255; class ids must fit 8 bits")
        label = label.astype(np.uint8)
    return label


@contextmanager
def _decoding(path: Path, what: str) -> Iterator[None]:
    """Turn Pillow's failures while reading `path` into one-line DataErrors naming the file."""
    try:
        yield
    except DataError:
        raise
    except UserError as e:  # the pixel budget and conversion rules of image_io, as this module's error
        raise DataError(str(e)) from None
    except FileNotFoundError:
        raise DataError(f"{path}: no such {what} file; restore it from the dataset archive") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, not an {what} file; remove or rename it") from None
    except UnidentifiedImageError:
        raise DataError(f"{path}: not an image Pillow can read; re-extract the {what} from the dataset "
                        f"archive") from None
    except Image.DecompressionBombError as e:
        raise DataError(f"{path}: {e}; this is not a plausible dataset {what}") from None
    # Pillow reports damaged data as OSError ("image file is truncated"), SyntaxError ("broken PNG file")
    # or ValueError, depending on the format and where the damage is
    except (OSError, SyntaxError, ValueError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(f"{path}: corrupt or truncated {what} ({reason}); re-extract or re-download it") from None
