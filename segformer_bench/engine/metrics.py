"""Segmentation metrics from confusion matrices, as mmseg and the Cityscapes evaluator define them.

A confusion matrix ``cm[K, K]`` counts pixels by (ground truth row, prediction column); pixels whose
label is the ignore index (255) are not counted. Over a dataset the matrices are summed, so IoU is
Σ intersection / Σ union over all images (not a mean of per-image IoUs):

* IoU_c = cm[c, c] / (Σ_row c + Σ_col c − cm[c, c]), NaN where class c is neither in the labels nor predicted;
* mIoU = mean of IoU over classes that are not NaN (for Cityscapes' 19 classes this is cityscapesScripts'
  "IoU class" score);
* aAcc = Σ diagonal / Σ labelled pixels; Acc_c = cm[c, c] / Σ_row c; mAcc = nanmean(Acc).
"""

from __future__ import annotations

import numpy as np
import torch

from ..data.base import IGNORE_INDEX


def confusion_matrix(pred: torch.Tensor, label: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(K, K) int64 counts of (label, pred) over one or more images; label 255 is ignored.

    Works on any device; `pred` and `label` are integer tensors of the same shape.
    """
    label = label.long()
    valid = label != IGNORE_INDEX
    if valid.any() and int(label[valid].max()) >= num_classes:
        raise ValueError(f"label values must be < {num_classes} or {IGNORE_INDEX}")
    index = label[valid] * num_classes + pred[valid].long()
    return torch.bincount(index, minlength=num_classes * num_classes).view(num_classes, num_classes)


def per_image_confusion(pred: torch.Tensor, label: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(B, K, K) confusion matrices for a batch of (B, H, W) predictions and labels, in one bincount."""
    B = pred.shape[0]
    label = label.long().reshape(B, -1)
    pred = pred.long().reshape(B, -1)
    valid = label != IGNORE_INDEX
    image = torch.arange(B, device=label.device)[:, None].expand_as(label)
    index = (image * num_classes + label) * num_classes + pred
    counts = torch.bincount(index[valid], minlength=B * num_classes * num_classes)
    return counts.view(B, num_classes, num_classes)


def scores(cm: np.ndarray | torch.Tensor) -> dict:
    """mIoU, per-class IoU, aAcc, mAcc and per-class accuracy from a (K, K) confusion matrix.

    Ratios are fractions (0..1); classes with NaN IoU (absent and never predicted) are excluded from the means.
    """
    cm = np.asarray(cm.cpu() if isinstance(cm, torch.Tensor) else cm, dtype=np.float64)
    intersect = np.diag(cm)
    label_area = cm.sum(axis=1)
    pred_area = cm.sum(axis=0)
    union = label_area + pred_area - intersect
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, intersect / union, np.nan)
        acc = np.where(label_area > 0, intersect / label_area, np.nan)
    total = label_area.sum()
    return {
        "mIoU": float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan"),
        "aAcc": float(intersect.sum() / total) if total else float("nan"),
        "mAcc": float(np.nanmean(acc)) if np.isfinite(acc).any() else float("nan"),
        "IoU": iou.tolist(),
        "Acc": acc.tolist(),
    }
