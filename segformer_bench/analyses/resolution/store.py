"""The resolution-shift analysis's store table: one row per (model, test resolution), with the numbers of a
corruption cell plus the network's input size (H, W) at that test."""

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
    PRIMARY KEY (model, test));
"""
TABLES = ("resolution",)


@dataclass(frozen=True)
class ResolutionResult:
    """One (model, test resolution): per-image confusion matrices, their image names, the network input size."""

    per_image: np.ndarray
    names: tuple[str, ...]
    input_size: tuple[int, int]


def has_result(store: Store, model: str, test: str) -> bool:
    return store.has("resolution", model=model, test=test)


def add_result(store: Store, model: str, test: str, metrics: dict, per_image: np.ndarray, names: list[str],
               input_size: tuple[int, int], seed: int, seconds: float) -> None:
    store.insert("resolution", {"model": model, "test": test, "miou": metrics["mIoU"], "aacc": metrics["aAcc"],
                                "macc": metrics["mAcc"], "iou": json.dumps(metrics["IoU"]),
                                "per_image": encode_array(per_image), "names": json.dumps(names),
                                "input_h": int(input_size[0]), "input_w": int(input_size[1]), "seed": seed,
                                "seconds": seconds, "finished": time.time()})


def results(store: Store) -> dict[tuple[str, str], ResolutionResult]:
    """(model, test) → per-image confusion matrices, image names and the network's input size."""
    return {(m, t): ResolutionResult(decode_array(blob), tuple(json.loads(names)), (h, w))
            for m, t, blob, names, h, w in store.rows(
                "resolution", ("model", "test", "per_image", "names", "input_h", "input_w"), order_by=("rowid",))}
