"""The label tables against the official Cityscapes table, and the palettes against known colour maps."""

from __future__ import annotations

import numpy as np
import pytest

from segformer_bench.data import labels

# cityscapesScripts, helpers/labels.py: (name, id, trainId, color) of every row, copied from the official
# table (category, hasInstances and ignoreInEval left out). The package is only a test oracle, and is not
# installed here; test_matches_cityscapesscripts compares with it wherever it is.
OFFICIAL = [
    ("unlabeled", 0, 255, (0, 0, 0)),
    ("ego vehicle", 1, 255, (0, 0, 0)),
    ("rectification border", 2, 255, (0, 0, 0)),
    ("out of roi", 3, 255, (0, 0, 0)),
    ("static", 4, 255, (0, 0, 0)),
    ("dynamic", 5, 255, (111, 74, 0)),
    ("ground", 6, 255, (81, 0, 81)),
    ("road", 7, 0, (128, 64, 128)),
    ("sidewalk", 8, 1, (244, 35, 232)),
    ("parking", 9, 255, (250, 170, 160)),
    ("rail track", 10, 255, (230, 150, 140)),
    ("building", 11, 2, (70, 70, 70)),
    ("wall", 12, 3, (102, 102, 156)),
    ("fence", 13, 4, (190, 153, 153)),
    ("guard rail", 14, 255, (180, 165, 180)),
    ("bridge", 15, 255, (150, 100, 100)),
    ("tunnel", 16, 255, (150, 120, 90)),
    ("pole", 17, 5, (153, 153, 153)),
    ("polegroup", 18, 255, (153, 153, 153)),
    ("traffic light", 19, 6, (250, 170, 30)),
    ("traffic sign", 20, 7, (220, 220, 0)),
    ("vegetation", 21, 8, (107, 142, 35)),
    ("terrain", 22, 9, (152, 251, 152)),
    ("sky", 23, 10, (70, 130, 180)),
    ("person", 24, 11, (220, 20, 60)),
    ("rider", 25, 12, (255, 0, 0)),
    ("car", 26, 13, (0, 0, 142)),
    ("truck", 27, 14, (0, 0, 70)),
    ("bus", 28, 15, (0, 60, 100)),
    ("caravan", 29, 255, (0, 0, 90)),
    ("trailer", 30, 255, (0, 0, 110)),
    ("train", 31, 16, (0, 80, 100)),
    ("motorcycle", 32, 17, (0, 0, 230)),
    ("bicycle", 33, 18, (119, 11, 32)),
    ("license plate", -1, -1, (0, 0, 142)),
]
TRAIN_ROWS = sorted((row for row in OFFICIAL if 0 <= row[2] < 255), key=lambda row: row[2])


def _as_rows(classes) -> list[tuple]:
    return [(c.name, c.label_id, c.train_id, c.color) for c in classes]


def test_the_19_classes_match_the_official_table():
    assert _as_rows(labels.CITYSCAPES) == TRAIN_ROWS
    assert labels.CITYSCAPES_CLASSES == tuple(name for name, _, _, _ in TRAIN_ROWS)


def test_train_id_to_label_id_matches_the_official_table():
    expected = {train_id: label_id for _, label_id, train_id, _ in TRAIN_ROWS} | {255: 0}
    assert labels.TRAIN_ID_TO_LABEL_ID == expected
    train_ids = np.array([[0, 18, 255], [10, 13, 5]], np.uint8)
    assert labels.train_ids_to_label_ids(train_ids).tolist() == [[7, 33, 0], [23, 26, 17]]


def test_label_ids_to_train_ids_matches_the_official_table():
    label_ids = np.arange(256, dtype=np.uint8)
    official = {label_id: train_id for _, label_id, train_id, _ in OFFICIAL if label_id >= 0}
    expected = [official.get(i, 255) for i in range(256)]
    assert labels.label_ids_to_train_ids(label_ids).tolist() == expected


def test_cityscapes_palette_matches_the_official_colours():
    table = labels.palette(19)
    assert [tuple(c) for c in table[:19].tolist()] == [color for _, _, _, color in TRAIN_ROWS]
    assert table[255].tolist() == [0, 0, 0]
    label = np.array([[0, 13], [255, 10]], np.uint8)
    assert labels.colorize(label).tolist() == [[[128, 64, 128], [0, 0, 142]], [[0, 0, 0], [70, 130, 180]]]


def test_other_class_counts_get_the_pascal_voc_colour_map():
    # VOC's colour map for ids 1..8 (class k is drawn with VOC id k + 1, so that no class is black)
    voc = [(128, 0, 0), (0, 128, 0), (128, 128, 0), (0, 0, 128), (128, 0, 128), (0, 128, 128), (128, 128, 128),
           (64, 0, 0)]
    table = labels.palette(150)
    assert [tuple(c) for c in table[:8].tolist()] == voc
    colors = {tuple(c) for c in table[:150].tolist()}
    assert len(colors) == 150 and (0, 0, 0) not in colors
    assert np.array_equal(labels.palette(150), table)
    assert labels.colorize(np.array([[149, 255]], np.int64), 150).tolist() == [[table[149].tolist(), [0, 0, 0]]]


def test_colorize_rejects_ids_outside_the_classes():
    with pytest.raises(ValueError, match="19"):
        labels.colorize(np.array([[19]], np.uint8))
    with pytest.raises(ValueError):
        labels.colorize(np.array([[-1]], np.int64))
    with pytest.raises(TypeError):
        labels.colorize(np.zeros((2, 2), np.float32))


def test_matches_cityscapesscripts():
    from cityscapesscripts.helpers import labels as helpers  # in the test extra: must not skip

    official = [(lab.name, lab.id, lab.trainId, tuple(lab.color)) for lab in helpers.labels]
    assert official == OFFICIAL
