"""The resolution-shift analysis's store table: one row per (model, test resolution), with the numbers of a
corruption cell plus the network's input size (H, W) at that test; its per-image calibration counts
(``calibration.calibration_counts``) are NULL for a model of scores, or a row stored before they were."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import numpy as np

from ...bench.store import Store, decode_array, encode_array

SCHEMA = """
CREATE TABLE IF NOT EXISTS resolution (
    model TEXT NOT NULL, test TEXT NOT NULL, miou REAL, aacc REAL, macc REAL, iou TEXT, per_image BLOB NOT NULL,
    names TEXT NOT NULL, input_h INTEGER, input_w INTEGER, seed INTEGER, seconds REAL, finished REAL,
    calibration BLOB, PRIMARY KEY (model, test));
"""
TABLES = ("resolution",)


@dataclass(frozen=True)
class ResolutionResult:
    """One (model, test resolution): per-image confusion matrices, their image names, the network input size,
    and the per-image calibration counts (None: a model of scores, or a store written before them)."""

    per_image: np.ndarray
    names: tuple[str, ...]
    input_size: tuple[int, int]
    calibration: np.ndarray | None = None


def has_result(store: Store, model: str, test: str) -> bool:
    return store.has("resolution", model=model, test=test)


def add_result(store: Store, model: str, test: str, metrics: dict, per_image: np.ndarray, names: list[str],
               input_size: tuple[int, int], seed: int, seconds: float, calibration: np.ndarray | None = None) -> None:
    store.insert("resolution", {"model": model, "test": test, "miou": metrics["mIoU"], "aacc": metrics["aAcc"],
                                "macc": metrics["mAcc"], "iou": json.dumps(metrics["IoU"]),
                                "per_image": encode_array(per_image), "names": json.dumps(names),
                                "input_h": int(input_size[0]), "input_w": int(input_size[1]), "seed": seed,
                                "seconds": seconds, "finished": time.time(),
                                "calibration": None if calibration is None else encode_array(calibration)})


def results(store: Store) -> dict[tuple[str, str], ResolutionResult]:
    """(model, test) → per-image confusion matrices, image names, the network's input size and calibration counts."""
    columns = ("model", "test", "per_image", "names", "input_h", "input_w")
    if store.has_column("resolution", "calibration"):
        columns += ("calibration",)  # a read-only store written before the counts has no such column
    return {(m, t): ResolutionResult(decode_array(blob), tuple(json.loads(names)), (h, w),
                                     decode_array(counts[0]) if counts and counts[0] is not None else None)
            for m, t, blob, names, h, w, *counts in store.rows("resolution", columns, order_by=("rowid",))}
