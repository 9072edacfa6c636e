"""The results store: one SQLite database per run directory.

Every finished cell (model × corruption × severity, or the clean set) is one row written in one
transaction, so a run killed at any moment — kill -9 included — keeps every finished cell and no half of
one. Tables:

* ``meta(key, value)``: the resolved suite (JSON), package versions, creation time;
* ``models(name, checkpoint, sha256, config)``: what each model row was computed with;
* ``cells(model, corruption, severity, …)``: mIoU, aAcc, mAcc, per-class IoU (JSON), the per-image
  confusion matrices (compressed .npy bytes), image names, the seed and timings; the clean set is
  corruption "clean", severity 0;
* ``gallery(model, corruption, severity, image, prediction)``: PNG bytes of one image and its prediction
  per cell, for the report's gallery;
* ``resolution(model, test, …)``: the resolution-shift analysis, one row per (model, test resolution), with
  the same numbers as a cell plus the network's input size (H, W) at that test;
* ``erf(model, block, …)``: the ERF analysis, one row per block of images: per tap the sum of the block's
  contribution maps (compressed .npy), how many maps it sums and how many were skipped as non-finite.
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS models (name TEXT PRIMARY KEY, checkpoint TEXT, sha256 TEXT, config TEXT);
CREATE TABLE IF NOT EXISTS cells (
    model TEXT NOT NULL, corruption TEXT NOT NULL, severity INTEGER NOT NULL,
    miou REAL, aacc REAL, macc REAL, iou TEXT, per_image BLOB NOT NULL, names TEXT NOT NULL,
    seed INTEGER, seconds REAL, finished REAL,
    PRIMARY KEY (model, corruption, severity));
CREATE TABLE IF NOT EXISTS gallery (
    model TEXT NOT NULL, corruption TEXT NOT NULL, severity INTEGER NOT NULL, image BLOB, prediction BLOB,
    PRIMARY KEY (model, corruption, severity));
CREATE TABLE IF NOT EXISTS resolution (
    model TEXT NOT NULL, test TEXT NOT NULL, miou REAL, aacc REAL, macc REAL, iou TEXT, per_image BLOB NOT NULL,
    names TEXT NOT NULL, input_h INTEGER, input_w INTEGER, seed INTEGER, seconds REAL, finished REAL,
    PRIMARY KEY (model, test));
CREATE TABLE IF NOT EXISTS erf (
    model TEXT NOT NULL, block INTEGER NOT NULL, names TEXT NOT NULL, sums BLOB NOT NULL, counts TEXT NOT NULL,
    skipped TEXT NOT NULL, seconds REAL, finished REAL,
    PRIMARY KEY (model, block));
"""

CLEAN = ("clean", 0)


@dataclass(frozen=True)
class ResolutionResult:
    """One (model, test resolution): per-image confusion matrices, their image names, the network input size."""

    per_image: np.ndarray
    names: tuple[str, ...]
    input_size: tuple[int, int]


def _npy(array: np.ndarray) -> bytes:
    return _npz({"a": array})


def _from_npy(blob: bytes) -> np.ndarray:
    return _from_npz(blob)["a"]


def _npz(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def _from_npz(blob: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(blob)) as f:
        return {k: f[k] for k in f.files}


class Store:
    """A run directory's results.sqlite."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=60)
        self.db.execute("PRAGMA journal_mode=WAL")  # a reader (report) never blocks the runner
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    # meta ------------------------------------------------------------------------------------------
    def get_meta(self, key: str) -> object | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def set_meta(self, key: str, value: object) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def clear(self) -> None:
        with self.db:
            for table in ("meta", "models", "cells", "gallery", "resolution", "erf"):
                self.db.execute(f"DELETE FROM {table}")  # noqa: S608  (fixed table names)

    # models ----------------------------------------------------------------------------------------
    def set_model(self, name: str, checkpoint: str, sha256: str, config: dict) -> None:
        with self.db:
            self.db.execute("INSERT INTO models VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                            "checkpoint = excluded.checkpoint, sha256 = excluded.sha256, config = excluded.config",
                            (name, checkpoint, sha256, json.dumps(config)))  # keeps the first-seen order

    def models(self) -> dict[str, dict]:
        return {name: {"checkpoint": ckpt, "sha256": sha, "config": json.loads(cfg)}
                for name, ckpt, sha, cfg in self.db.execute("SELECT * FROM models ORDER BY rowid")}

    # cells -----------------------------------------------------------------------------------------
    def has_cell(self, model: str, corruption: str, severity: int) -> bool:
        return self.db.execute("SELECT 1 FROM cells WHERE model = ? AND corruption = ? AND severity = ?",
                               (model, corruption, severity)).fetchone() is not None

    def add_cell(self, model: str, corruption: str, severity: int, metrics: dict, per_image: np.ndarray,
                 names: list[str], seed: int, seconds: float) -> None:
        with self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO cells VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (model, corruption, severity, metrics["mIoU"], metrics["aAcc"], metrics["mAcc"],
                 json.dumps(metrics["IoU"]), _npy(per_image), json.dumps(names), seed, seconds, time.time()))

    def cell_matrices(self) -> dict[tuple[str, str, int], np.ndarray]:
        """Per-image confusion matrices of every finished cell, keyed (model, corruption, severity)."""
        return {(m, c, s): _from_npy(blob)
                for m, c, s, blob in self.db.execute("SELECT model, corruption, severity, per_image FROM cells")}

    def cell_names(self, model: str, corruption: str, severity: int) -> list[str]:
        row = self.db.execute("SELECT names FROM cells WHERE model = ? AND corruption = ? AND severity = ?",
                              (model, corruption, severity)).fetchone()
        return json.loads(row[0]) if row else []

    # gallery ---------------------------------------------------------------------------------------
    def add_gallery(self, model: str, corruption: str, severity: int, image_png: bytes, pred_png: bytes) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO gallery VALUES (?, ?, ?, ?, ?)",
                            (model, corruption, severity, image_png, pred_png))

    def has_gallery(self, model: str, corruption: str, severity: int) -> bool:
        return self.db.execute("SELECT 1 FROM gallery WHERE model = ? AND corruption = ? AND severity = ?",
                               (model, corruption, severity)).fetchone() is not None

    def gallery(self) -> dict[tuple[str, str, int], tuple[bytes, bytes]]:
        return {(m, c, s): (img, pred) for m, c, s, img, pred in self.db.execute("SELECT * FROM gallery")}

    # resolution shift ------------------------------------------------------------------------------
    def has_resolution(self, model: str, test: str) -> bool:
        return self.db.execute("SELECT 1 FROM resolution WHERE model = ? AND test = ?",
                               (model, test)).fetchone() is not None

    def add_resolution(self, model: str, test: str, metrics: dict, per_image: np.ndarray, names: list[str],
                       input_size: tuple[int, int], seed: int, seconds: float) -> None:
        with self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO resolution VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (model, test, metrics["mIoU"], metrics["aAcc"], metrics["mAcc"], json.dumps(metrics["IoU"]),
                 _npy(per_image), json.dumps(names), int(input_size[0]), int(input_size[1]), seed, seconds,
                 time.time()))

    def resolution_results(self) -> dict[tuple[str, str], ResolutionResult]:
        """(model, test) → per-image confusion matrices, image names and the network's input size."""
        return {(m, t): ResolutionResult(_from_npy(blob), tuple(json.loads(names)), (h, w))
                for m, t, blob, names, h, w in self.db.execute(
                    "SELECT model, test, per_image, names, input_h, input_w FROM resolution ORDER BY rowid")}

    # effective receptive fields --------------------------------------------------------------------
    def has_erf_block(self, model: str, block: int) -> bool:
        return self.db.execute("SELECT 1 FROM erf WHERE model = ? AND block = ?",
                               (model, block)).fetchone() is not None

    def add_erf_block(self, model: str, block: int, names: list[str], sums: dict[str, np.ndarray],
                      counts: dict[str, int], skipped: dict[str, int], seconds: float) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO erf VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                            (model, block, json.dumps(names), _npz(sums), json.dumps(counts), json.dumps(skipped),
                             seconds, time.time()))

    def erf_blocks(self) -> dict[tuple[str, int], dict]:
        """(model, block) → {names, sums: {tap: (H, W)}, counts: {tap: n}, skipped: {tap: n}}."""
        return {(m, b): {"names": json.loads(names), "sums": _from_npz(sums), "counts": json.loads(counts),
                         "skipped": json.loads(skipped)}
                for m, b, names, sums, counts, skipped in self.db.execute(
                    "SELECT model, block, names, sums, counts, skipped FROM erf ORDER BY model, block")}
