"""Cityscapes' 19 training classes, their colours, and the input normalisation the models were trained with.

The table is the part of cityscapesScripts' ``helpers/labels.py`` that segmentation uses: the 19 classes
with a trainId (0–18), their dataset labelId, and the official colour. Every other labelId is ignored in
training and evaluation (trainId 255, :data:`IGNORE_INDEX`); going back, 255 becomes labelId 0
("unlabeled"). Models predict trainIds; the Cityscapes server and ``*_gtFine_labelIds.png`` use labelIds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Normalisation of every SegFormer checkpoint: ImageNet statistics, RGB order, on the 0–255 scale.
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)

IGNORE_INDEX = 255  # trainId of every pixel that is not one of the 19 classes; never a prediction
UNLABELED_ID = 0  # the labelId an ignored trainId maps back to


@dataclass(frozen=True)
class CityscapesClass:
    name: str
    train_id: int
    label_id: int
    color: tuple[int, int, int]  # RGB


CITYSCAPES: tuple[CityscapesClass, ...] = (
    CityscapesClass("road", 0, 7, (128, 64, 128)),
    CityscapesClass("sidewalk", 1, 8, (244, 35, 232)),
    CityscapesClass("building", 2, 11, (70, 70, 70)),
    CityscapesClass("wall", 3, 12, (102, 102, 156)),
    CityscapesClass("fence", 4, 13, (190, 153, 153)),
    CityscapesClass("pole", 5, 17, (153, 153, 153)),
    CityscapesClass("traffic light", 6, 19, (250, 170, 30)),
    CityscapesClass("traffic sign", 7, 20, (220, 220, 0)),
    CityscapesClass("vegetation", 8, 21, (107, 142, 35)),
    CityscapesClass("terrain", 9, 22, (152, 251, 152)),
    CityscapesClass("sky", 10, 23, (70, 130, 180)),
    CityscapesClass("person", 11, 24, (220, 20, 60)),
    CityscapesClass("rider", 12, 25, (255, 0, 0)),
    CityscapesClass("car", 13, 26, (0, 0, 142)),
    CityscapesClass("truck", 14, 27, (0, 0, 70)),
    CityscapesClass("bus", 15, 28, (0, 60, 100)),
    CityscapesClass("train", 16, 31, (0, 80, 100)),
    CityscapesClass("motorcycle", 17, 32, (0, 0, 230)),
    CityscapesClass("bicycle", 18, 33, (119, 11, 32)),
)
assert [c.train_id for c in CITYSCAPES] == list(range(len(CITYSCAPES)))

CITYSCAPES_CLASSES: tuple[str, ...] = tuple(c.name for c in CITYSCAPES)
NUM_CITYSCAPES_CLASSES = len(CITYSCAPES)
TRAIN_ID_TO_LABEL_ID: dict[int, int] = {c.train_id: c.label_id for c in CITYSCAPES} | {IGNORE_INDEX: UNLABELED_ID}


def _lookup(pairs: dict[int, int], default: int) -> np.ndarray:
    table = np.full(256, default, np.uint8)
    table[list(pairs)] = list(pairs.values())
    return table


_TRAIN_TO_LABEL = _lookup(TRAIN_ID_TO_LABEL_ID, UNLABELED_ID)
_LABEL_TO_TRAIN = _lookup({c.label_id: c.train_id for c in CITYSCAPES}, IGNORE_INDEX)


def train_ids_to_label_ids(train_ids: np.ndarray) -> np.ndarray:
    """Map a trainId map (uint8) to Cityscapes labelIds, e.g. for the evaluation server."""
    return _TRAIN_TO_LABEL[np.asarray(train_ids, dtype=np.uint8)]


def label_ids_to_train_ids(label_ids: np.ndarray) -> np.ndarray:
    """Map a ``*_gtFine_labelIds.png`` array (uint8) to trainIds; classes outside the 19 become 255."""
    return _LABEL_TO_TRAIN[np.asarray(label_ids, dtype=np.uint8)]


def _bit_palette(num_classes: int) -> np.ndarray:
    """PASCAL VOC's colour map for ids 1..num_classes: bit 3j+c of the id becomes bit 7−j of channel c.

    Deterministic, distinct for every id below 2**24 and never black (id 0 is skipped), so it does not
    collide with the ignore colour.
    """
    ids = np.arange(1, num_classes + 1)
    colors = np.zeros((num_classes, 3), np.uint8)
    for j in range(8):
        for c in range(3):
            colors[:, c] |= (((ids >> (3 * j + c)) & 1) << (7 - j)).astype(np.uint8)
    return colors


def palette(num_classes: int = NUM_CITYSCAPES_CLASSES) -> np.ndarray:
    """A (256, 3) uint8 lookup table from class id to RGB colour, black for ignore (255) and unused ids.

    19 classes get the official Cityscapes colours; any other count (e.g. ADE20K's 150) gets the PASCAL
    VOC bit-pattern colours, which are deterministic and distinct.
    """
    if not 1 <= num_classes <= IGNORE_INDEX:
        raise ValueError(f"palette: num_classes must be in 1..{IGNORE_INDEX} (255 is the ignore id), got {num_classes}")
    table = np.zeros((256, 3), np.uint8)
    if num_classes == NUM_CITYSCAPES_CLASSES:
        table[:num_classes] = [c.color for c in CITYSCAPES]
    else:
        table[:num_classes] = _bit_palette(num_classes)
    return table


def colorize(label: np.ndarray, num_classes: int = NUM_CITYSCAPES_CLASSES) -> np.ndarray:
    """An (H, W) map of class ids (and 255 for ignore) as an (H, W, 3) uint8 RGB picture."""
    label = np.asarray(label)
    if not np.issubdtype(label.dtype, np.integer):
        raise TypeError(f"colorize needs integer class ids, got dtype {label.dtype}")
    valid = ((label >= 0) & (label < num_classes)) | (label == IGNORE_INDEX)
    if not valid.all():
        bad = np.unique(label[~valid])[:5].tolist()
        raise ValueError(f"colorize: ids {bad} are neither a class of {num_classes} nor {IGNORE_INDEX} (ignore)")
    return palette(num_classes)[label.astype(np.uint8)]
