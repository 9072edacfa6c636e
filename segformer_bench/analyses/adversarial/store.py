"""The adversarial analysis's store tables: one row per (model, attack, ε), with per-image confusion matrices,
per-image losses (the attack's cross-entropy at its adversarial image), the attack's settings and the per-image
calibration counts of the probabilities at the adversarial images (``calibration.calibration_counts``; NULL for a
model of scores, or a unit stored before they were); and the gallery:
per model, the first image, its adversarial image under the first attack at the headline ε, and the model's
predictions of both (the arrays as stored by ``encode_arrays``: the adversarial image in float, unrounded)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import numpy as np

from ...bench.store import Store, decode_array, encode_array

SCHEMA = """
CREATE TABLE IF NOT EXISTS adversarial (
    model TEXT NOT NULL, attack TEXT NOT NULL, eps REAL NOT NULL, miou REAL, aacc REAL, per_image BLOB NOT NULL,
    loss BLOB NOT NULL, names TEXT NOT NULL, settings TEXT NOT NULL, seed INTEGER, seconds REAL, finished REAL,
    calibration BLOB, PRIMARY KEY (model, attack, eps));
CREATE TABLE IF NOT EXISTS adversarial_gallery (
    model TEXT NOT NULL PRIMARY KEY, attack TEXT NOT NULL, eps REAL NOT NULL, image BLOB NOT NULL,
    adversarial BLOB NOT NULL, prediction BLOB NOT NULL, adversarial_prediction BLOB NOT NULL);
"""
TABLES = ("adversarial", "adversarial_gallery")


@dataclass(frozen=True)
class AdversarialResult:
    per_image: np.ndarray  # (N, K, K)
    loss: np.ndarray  # (N,)
    names: tuple[str, ...]
    settings: dict
    calibration: np.ndarray | None = None  # (N, 3·bins + 3) at the adversarial images; None for a model of scores


def has_unit(store: Store, model: str, attack: str, eps: float) -> bool:
    return store.has("adversarial", model=model, attack=attack, eps=float(eps))


def add_unit(store: Store, model: str, attack: str, eps: float, metrics: dict, per_image: np.ndarray,
             loss: np.ndarray, names: list[str], settings: dict, seed: int, seconds: float,
             calibration: np.ndarray | None = None) -> None:
    store.insert("adversarial", {"model": model, "attack": attack, "eps": float(eps), "miou": metrics["mIoU"],
                                 "aacc": metrics["aAcc"], "per_image": encode_array(per_image),
                                 "loss": encode_array(np.asarray(loss, np.float64)), "names": json.dumps(names),
                                 "settings": json.dumps(settings), "seed": seed, "seconds": seconds,
                                 "finished": time.time(),
                                 "calibration": None if calibration is None else encode_array(calibration)})


def results(store: Store) -> dict[tuple[str, str, float], AdversarialResult]:
    """(model, attack, ε in 1/255 units) → the unit's per-image results."""
    columns = ("model", "attack", "eps", "per_image", "loss", "names", "settings")
    if store.has_column("adversarial", "calibration"):
        columns += ("calibration",)  # a read-only store written before the counts has no such column
    return {(m, a, e): AdversarialResult(decode_array(pi), decode_array(lo), tuple(json.loads(n)), json.loads(st),
                                         decode_array(c[0]) if c and c[0] is not None else None)
            for m, a, e, pi, lo, n, st, *c in store.rows("adversarial", columns, order_by=("rowid",))}


def has_gallery(store: Store, model: str) -> bool:
    return store.has("adversarial_gallery", model=model)


def add_gallery(store: Store, model: str, attack: str, eps: float, image: np.ndarray, adversarial: np.ndarray,
                prediction: np.ndarray, adversarial_prediction: np.ndarray) -> None:
    store.insert("adversarial_gallery", {"model": model, "attack": attack, "eps": float(eps),
                                         "image": encode_array(image), "adversarial": encode_array(adversarial),
                                         "prediction": encode_array(prediction),
                                         "adversarial_prediction": encode_array(adversarial_prediction)})


def gallery(store: Store) -> dict[str, dict]:
    """model → {attack, eps, image (H, W, 3) uint8, adversarial (H, W, 3) float on 0–255, prediction and
    adversarial_prediction (H, W) class ids}."""
    columns = ("model", "attack", "eps", "image", "adversarial", "prediction", "adversarial_prediction")
    return {row[0]: {"attack": row[1], "eps": row[2], **{c: decode_array(v) for c, v in zip(columns[3:], row[3:],
                                                                                         strict=True)}}
            for row in store.rows("adversarial_gallery", columns, order_by=("rowid",))}
