"""The corruption analysis's store tables: one row per (model, corruption, severity) cell, and the gallery.

* ``cells``: mIoU, aAcc, mAcc, per-class IoU (JSON), the per-image confusion matrices (compressed .npy), the
  image names, the seed and timings, and the per-image calibration counts (``calibration.calibration_counts``;
  NULL for a model of scores, or a cell stored before they were); the clean set is the cell ("clean", 0);
* ``gallery``: PNG bytes of the first image under each cell and of each model's prediction of it.
"""

from __future__ import annotations

import json
import time

import numpy as np

from ...bench.store import Store, decode_array, encode_array

SCHEMA = """
CREATE TABLE IF NOT EXISTS cells (
    model TEXT NOT NULL, corruption TEXT NOT NULL, severity INTEGER NOT NULL,
    miou REAL, aacc REAL, macc REAL, iou TEXT, per_image BLOB NOT NULL, names TEXT NOT NULL,
    seed INTEGER, seconds REAL, finished REAL, calibration BLOB,
    PRIMARY KEY (model, corruption, severity));
CREATE TABLE IF NOT EXISTS gallery (
    model TEXT NOT NULL, corruption TEXT NOT NULL, severity INTEGER NOT NULL, image BLOB, prediction BLOB,
    PRIMARY KEY (model, corruption, severity));
"""
TABLES = ("cells", "gallery")


def has_cell(store: Store, model: str, corruption: str, severity: int) -> bool:
    return store.has("cells", model=model, corruption=corruption, severity=severity)


def add_cell(store: Store, model: str, corruption: str, severity: int, metrics: dict, per_image: np.ndarray,
             names: list[str], seed: int, seconds: float, calibration: np.ndarray | None = None) -> None:
    store.insert("cells", {"model": model, "corruption": corruption, "severity": severity,
                           "miou": metrics["mIoU"], "aacc": metrics["aAcc"], "macc": metrics["mAcc"],
                           "iou": json.dumps(metrics["IoU"]), "per_image": encode_array(per_image),
                           "names": json.dumps(names), "seed": seed, "seconds": seconds, "finished": time.time(),
                           "calibration": None if calibration is None else encode_array(calibration)})


def cell_calibration(store: Store) -> dict[tuple[str, str, int], np.ndarray]:
    """Per-image calibration counts of every cell that has them, keyed (model, corruption, severity)."""
    if not store.has_table("cells") or not store.has_column("cells", "calibration"):
        return {}
    return {(m, c, s): decode_array(blob)
            for m, c, s, blob in store.rows("cells", ("model", "corruption", "severity", "calibration"))
            if blob is not None}


def cell_matrices(store: Store) -> dict[tuple[str, str, int], np.ndarray]:
    """Per-image confusion matrices of every finished cell, keyed (model, corruption, severity)."""
    return {(m, c, s): decode_array(blob)
            for m, c, s, blob in store.rows("cells", ("model", "corruption", "severity", "per_image"))}


def cell_names(store: Store) -> dict[tuple[str, str, int], list[str]]:
    """The image names of every finished cell, in the order of its matrices."""
    return {(m, c, s): json.loads(names)
            for m, c, s, names in store.rows("cells", ("model", "corruption", "severity", "names"))}


def has_gallery(store: Store, model: str, corruption: str, severity: int) -> bool:
    return store.has("gallery", model=model, corruption=corruption, severity=severity)


def add_gallery(store: Store, model: str, corruption: str, severity: int, image_png: bytes, pred_png: bytes) -> None:
    store.insert("gallery", {"model": model, "corruption": corruption, "severity": severity, "image": image_png,
                             "prediction": pred_png})


def gallery(store: Store) -> dict[tuple[str, str, int], tuple[bytes, bytes]]:
    return {(m, c, s): (img, pred) for m, c, s, img, pred in
            store.rows("gallery", ("model", "corruption", "severity", "image", "prediction"))}
