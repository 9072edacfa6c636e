"""The results store: one SQLite database per run directory.

Every finished unit of an analysis (a corruption cell, a resolution test, a block of ERF images) is one row
written in one transaction, so a run killed at any moment — kill -9 included — keeps every finished unit and
no half of one. The store itself knows two tables:

* ``meta(key, value)``: the resolved suite (JSON), package versions;
* ``models(name, checkpoint, sha256, config)``: what each model's rows were computed with.

Each analysis brings its own tables (``Analysis.schema``) and reads and writes them through the small generic
API here (``has``, ``insert``, ``rows``); arrays are stored as compressed ``.npy``/``.npz`` bytes
(``encode_array``, ``decode_array``, ``encode_arrays``, ``decode_arrays``).
"""

from __future__ import annotations

import io
import json
import os
import re
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS models (name TEXT PRIMARY KEY, checkpoint TEXT, sha256 TEXT, config TEXT);
"""

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")  # table and column names come from the code, never from users


def _name(identifier: str) -> str:
    if not _IDENTIFIER.match(identifier):
        raise ValueError(f"not a table or column name: {identifier!r}")
    return identifier


def encode_arrays(arrays: Mapping[str, np.ndarray]) -> bytes:
    """Named arrays as the bytes of a compressed .npz file."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def decode_arrays(blob: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(blob)) as f:
        return {k: f[k] for k in f.files}


def encode_array(array: np.ndarray) -> bytes:
    return encode_arrays({"a": array})


def decode_array(blob: bytes) -> np.ndarray:
    return decode_arrays(blob)["a"]


class Store:
    """A run directory's results.sqlite, with the tables of `schema` (the analyses') besides its own."""

    def __init__(self, path: str | os.PathLike, schema: str = "") -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=60)
        self.db.execute("PRAGMA journal_mode=WAL")  # a reader (report) never blocks the runner
        self.db.executescript(SCHEMA + schema)

    def close(self) -> None:
        self.db.close()

    # meta ------------------------------------------------------------------------------------------
    def get_meta(self, key: str) -> object | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def set_meta(self, key: str, value: object) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def clear(self, tables: Sequence[str] = ()) -> None:
        """Delete every row: meta, models and the given analyses' `tables`, in one transaction."""
        with self.db:
            for table in ("meta", "models", *tables):
                if self.has_table(table):
                    self.db.execute(f"DELETE FROM {_name(table)}")  # noqa: S608  (checked identifier)

    def has_table(self, table: str) -> bool:
        return self.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                               (table,)).fetchone() is not None

    # models ----------------------------------------------------------------------------------------
    def set_model(self, name: str, checkpoint: str, sha256: str, config: dict) -> None:
        with self.db:
            self.db.execute("INSERT INTO models VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                            "checkpoint = excluded.checkpoint, sha256 = excluded.sha256, config = excluded.config",
                            (name, checkpoint, sha256, json.dumps(config)))  # keeps the first-seen order

    def models(self) -> dict[str, dict]:
        return {name: {"checkpoint": ckpt, "sha256": sha, "config": json.loads(cfg)}
                for name, ckpt, sha, cfg in self.db.execute("SELECT * FROM models ORDER BY rowid")}

    # an analysis's rows ----------------------------------------------------------------------------
    def has(self, table: str, **key: object) -> bool:
        """Whether `table` holds a row with these column values (a unit's primary key)."""
        where = " AND ".join(f"{_name(c)} = ?" for c in key)
        return self.db.execute(f"SELECT 1 FROM {_name(table)} WHERE {where}",  # noqa: S608
                               tuple(key.values())).fetchone() is not None

    def insert(self, table: str, row: Mapping[str, object]) -> None:
        """Write one row (a finished unit) in its own transaction, replacing a row with the same key."""
        columns = ", ".join(_name(c) for c in row)
        marks = ", ".join("?" for _ in row)
        with self.db:
            self.db.execute(f"INSERT OR REPLACE INTO {_name(table)} ({columns}) VALUES ({marks})",  # noqa: S608
                            tuple(row.values()))

    def rows(self, table: str, columns: Sequence[str], order_by: Sequence[str] = ()) -> list[tuple]:
        """Every row of `table` as tuples of `columns`, in `order_by` order (else SQLite's table order)."""
        order = f" ORDER BY {', '.join(_name(c) for c in order_by)}" if order_by else ""
        return self.db.execute(f"SELECT {', '.join(_name(c) for c in columns)} FROM {_name(table)}{order}"  # noqa: S608
                               ).fetchall()
