"""The ERF analysis's store table: one row per (model, block of images): per tap the sum of the block's
contribution maps (compressed .npz), how many maps it sums and how many were skipped as non-finite."""

from __future__ import annotations

import json
import time

import numpy as np

from ...bench.store import Store, decode_arrays, encode_arrays

SCHEMA = """
CREATE TABLE IF NOT EXISTS erf (
    model TEXT NOT NULL, block INTEGER NOT NULL, names TEXT NOT NULL, sums BLOB NOT NULL, counts TEXT NOT NULL,
    skipped TEXT NOT NULL, seconds REAL, finished REAL,
    PRIMARY KEY (model, block));
"""
TABLES = ("erf",)


def has_block(store: Store, model: str, block: int) -> bool:
    return store.has("erf", model=model, block=block)


def add_block(store: Store, model: str, block: int, names: list[str], sums: dict[str, np.ndarray],
              counts: dict[str, int], skipped: dict[str, int], seconds: float) -> None:
    store.insert("erf", {"model": model, "block": block, "names": json.dumps(names), "sums": encode_arrays(sums),
                         "counts": json.dumps(counts), "skipped": json.dumps(skipped), "seconds": seconds,
                         "finished": time.time()})


def blocks(store: Store) -> dict[tuple[str, int], dict]:
    """(model, block) → {names, sums: {tap: (H, W)}, counts: {tap: n}, skipped: {tap: n}}."""
    return {(m, b): {"names": json.loads(names), "sums": decode_arrays(sums), "counts": json.loads(counts),
                     "skipped": json.loads(skipped)}
            for m, b, names, sums, counts, skipped in store.rows(
                "erf", ("model", "block", "names", "sums", "counts", "skipped"), order_by=("model", "block"))}
