"""The conditions analysis's store table: one row per (model, condition) with the numbers of a corruption cell
(per-image confusion matrices, names, per-image calibration counts) and the condition's dataset as evaluated."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import numpy as np

from ...bench.store import Store, decode_array, encode_array

SCHEMA = """
CREATE TABLE IF NOT EXISTS conditions (
    model TEXT NOT NULL, condition TEXT NOT NULL, miou REAL, aacc REAL, macc REAL, iou TEXT,
    per_image BLOB NOT NULL, names TEXT NOT NULL, dataset TEXT NOT NULL, calibration BLOB, seed INTEGER,
    seconds REAL, finished REAL,
    PRIMARY KEY (model, condition));
"""
TABLES = ("conditions",)


@dataclass(frozen=True)
class ConditionResult:
    per_image: np.ndarray  # (N, K, K)
    names: tuple[str, ...]
    calibration: np.ndarray | None  # (N, 3·bins + 3); None for a model of scores


def has_result(store: Store, model: str, condition: str) -> bool:
    return store.has("conditions", model=model, condition=condition)


def add_result(store: Store, model: str, condition: str, metrics: dict, per_image: np.ndarray, names: list[str],
               dataset: dict, calibration: np.ndarray | None, seed: int, seconds: float) -> None:
    store.insert("conditions", {"model": model, "condition": condition, "miou": metrics["mIoU"],
                                "aacc": metrics["aAcc"], "macc": metrics["mAcc"], "iou": json.dumps(metrics["IoU"]),
                                "per_image": encode_array(per_image), "names": json.dumps(names),
                                "dataset": json.dumps(dataset, sort_keys=True),
                                "calibration": None if calibration is None else encode_array(calibration),
                                "seed": seed, "seconds": seconds, "finished": time.time()})


def results(store: Store) -> dict[tuple[str, str], ConditionResult]:
    """(model, condition) → its stored result, in the order stored."""
    if not store.has_table("conditions"):
        return {}
    return {(m, c): ConditionResult(decode_array(blob), tuple(json.loads(names)),
                                    None if cal is None else decode_array(cal))
            for m, c, blob, names, cal in store.rows(
                "conditions", ("model", "condition", "per_image", "names", "calibration"), order_by=("rowid",))}
