"""The metric against cityscapesScripts' official evaluator and a hand computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from segformer_bench.data.labels import label_ids_to_train_ids, train_ids_to_label_ids
from segformer_bench.engine.metrics import confusion_matrix, per_image_confusion, scores


def test_hand_computed_two_class_case():
    label = torch.tensor([[0, 0, 1, 1], [0, 255, 1, 1]])
    pred = torch.tensor([[0, 1, 1, 1], [1, 0, 1, 0]])
    cm = confusion_matrix(pred, label, 3)
    # rows = label, cols = pred; the 255 pixel is not counted
    assert cm.tolist() == [[1, 2, 0], [1, 3, 0], [0, 0, 0]]
    s = scores(cm)
    # class 0: I=1, U=3+2-1=4; class 1: I=3, U=4+5-3=6; class 2 absent and never predicted → NaN, excluded
    assert s["IoU"][0] == pytest.approx(1 / 4) and s["IoU"][1] == pytest.approx(3 / 6) and math.isnan(s["IoU"][2])
    assert s["mIoU"] == pytest.approx((1 / 4 + 1 / 2) / 2)
    assert s["aAcc"] == pytest.approx(4 / 7)
    assert s["mAcc"] == pytest.approx((1 / 3 + 3 / 4) / 2)


def test_class_predicted_but_absent_counts_as_zero():
    label = torch.tensor([0, 0, 0, 0])
    pred = torch.tensor([0, 0, 0, 1])
    s = scores(confusion_matrix(pred, label, 2))
    assert s["IoU"] == [pytest.approx(0.75), 0.0] and s["mIoU"] == pytest.approx(0.375)


def test_per_image_matrices_sum_to_the_dataset_matrix():
    g = torch.Generator().manual_seed(0)
    label = torch.randint(0, 5, (3, 7, 9), generator=g)
    label[label == 4] = 255
    pred = torch.randint(0, 4, (3, 7, 9), generator=g)
    per = per_image_confusion(pred, label, 4)
    assert per.shape == (3, 4, 4)
    for b in range(3):
        assert torch.equal(per[b], confusion_matrix(pred[b], label[b], 4))
    assert torch.equal(per.sum(0), confusion_matrix(pred, label, 4))


def _cityscapes_eval(pred_files: list[str], gt_files: list[str]) -> dict:
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as cs

    cs.args.evalInstLevelScore = False
    cs.args.JSONOutput = False
    cs.args.quiet = True
    return cs.evaluateImgLists(pred_files, gt_files, cs.args)


def test_matches_cityscapesscripts_evaluator(tmp_path):
    """Random labelId ground truth (with void ids) and trainId predictions: per-class IoU and the mean
    equal the official evaluator's, which reads the same files."""
    from cityscapesscripts.helpers.labels import trainId2label

    rng = np.random.default_rng(0)
    gts, preds = [], []
    total = np.zeros((19, 19), np.int64)
    for i, (h, w) in enumerate([(24, 40), (31, 17), (16, 64)]):
        label_ids = rng.integers(0, 34, (h, w)).astype(np.uint8)  # includes void ids 0–6, 9, 10, …
        # predictions agree with the ground truth on about half the pixels, to give non-trivial IoUs
        train = label_ids_to_train_ids(label_ids)
        pred = np.where((rng.random((h, w)) < 0.5) & (train != 255), train, rng.integers(0, 19, (h, w)))
        pred = pred.astype(np.uint8)
        if i == 0:
            pred[pred == 16] = 17  # class 16 (train) never predicted here
        stem = f"city_{i:06d}_000019"
        gts.append(str(tmp_path / f"{stem}_gtFine_labelIds.png"))
        preds.append(str(tmp_path / f"{stem}_pred.png"))
        Image.fromarray(label_ids).save(gts[-1])
        Image.fromarray(train_ids_to_label_ids(pred)).save(preds[-1])
        total += confusion_matrix(torch.from_numpy(pred), torch.from_numpy(train), 19).numpy()
    official = _cityscapes_eval(preds, gts)
    ours = scores(total)
    for train_id in range(19):
        name = trainId2label[train_id].name
        want = official["classScores"][name]
        got = ours["IoU"][train_id]
        assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want, abs=1e-12), name
    assert ours["mIoU"] == pytest.approx(official["averageScoreClasses"], abs=1e-12)
