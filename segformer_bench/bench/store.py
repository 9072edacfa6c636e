"""The results store: one SQLite database per run directory.

Every finished unit of an analysis (a corruption cell, a resolution test, a block of ERF images) is one row
written in one transaction, so a run killed at any moment — kill -9 included — keeps every finished unit and
no half of one. The store itself knows two tables:

* ``meta(key, value)``: the resolved suite (JSON), package versions;
* ``models(name, checkpoint, sha256, config)``: what each model's rows were computed with.

Each analysis brings its own tables (``Analysis.schema``) and reads and writes them through the small generic
API here (``has``, ``insert``, ``rows``); arrays are stored as compressed ``.npy``/``.npz`` bytes
(``encode_array``, ``decode_array``, ``encode_arrays``, ``decode_arrays``).

A store that cannot be used — a directory in its place, a file that is not SQLite, a full or read-only disk —
is a UserError of one line naming the file. ``report`` opens the store read-only (``read_only=True``): it never
writes, so a finished run on a read-only disk can still be reported.
"""

from __future__ import annotations

import io
import json
import os
import re
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import TypeVar

import numpy as np

from ..errors import UserError
from ..image_io import writing

T = TypeVar("T")

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


# SQLite's result codes (and, before Python 3.11, the start of its messages) that are the environment's, not a bug's.
_SQLITE_ADVICE = (
    ("SQLITE_FULL", "database or disk is full", "the disk is full; free some space and run the same command "
     "again (every finished unit is kept)"),
    ("SQLITE_READONLY", "attempt to write a readonly database", "it is read-only; run on a writable copy of the "
     "run directory (report only reads and works on it as it is)"),
    ("SQLITE_NOTADB", "file is not a database", "it is not a SQLite results store; move it away or choose another "
     "run directory"),
    ("SQLITE_CORRUPT", "database disk image is malformed", "the store is damaged; restore it from a copy, or move it "
     "away and run again"),
    ("SQLITE_CANTOPEN", "unable to open database file", "it cannot be opened; check that its directory exists and "
     "is readable and writable"),
    ("SQLITE_IOERR", "disk I/O error", "the disk failed a read or write (full, removed or failing?)"),
    ("SQLITE_BUSY", "database is locked", "another process holds it locked; wait for it, then run again"),
)


def _advice(error: sqlite3.Error) -> str | None:
    name = getattr(error, "sqlite_errorname", "")
    text = str(error)
    for code, message, advice in _SQLITE_ADVICE:
        if name.startswith(code) or text.startswith(message):
            return advice
    return None


@contextmanager
def _sqlite_errors(path: Path) -> Iterator[None]:
    """SQLite errors a user can fix (see ``_SQLITE_ADVICE``) as one-line UserErrors naming `path`; others raise."""
    try:
        with writing(path):
            yield
    except sqlite3.Error as e:
        advice = _advice(e)
        if advice is None:
            raise
        raise UserError(f"{path}: {e}; {advice}") from None


def _checked(method: Callable[..., T]) -> Callable[..., T]:
    @wraps(method)
    def call(self: Store, *args, **kwargs) -> T:
        with _sqlite_errors(self.path):
            return method(self, *args, **kwargs)
    return call


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """A connection that never writes. A WAL-mode store needs its ``-shm`` index, which SQLite creates beside it;
    in a read-only directory that holds none (a run that finished: SQLite removes both on the last close) the
    store is opened as immutable instead, which reads the main file alone — all there is."""
    uri = path.resolve().as_uri()
    db = sqlite3.connect(f"{uri}?mode=ro", uri=True)
    try:
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return db
    except sqlite3.OperationalError as e:
        db.close()
        wal = path.with_name(path.name + "-wal")
        if not _advice(e) or os.access(path.parent, os.W_OK) or (wal.exists() and wal.stat().st_size > 0):
            raise
    return sqlite3.connect(f"{uri}?immutable=1", uri=True)


def _add_missing_columns(db: sqlite3.Connection, schema: str) -> None:
    """Columns the schema declares that an existing table lacks (a store written before they existed) are added,
    NULL in its old rows; the declared tables are read from an in-memory copy of the schema."""
    declared = sqlite3.connect(":memory:")
    try:
        declared.executescript(schema)
        for (table,) in declared.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
            have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
            for _, column, kind, *_ in declared.execute(f"PRAGMA table_info({table})").fetchall():
                if column not in have:
                    with db:
                        db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
    finally:
        declared.close()


class Store:
    """A run directory's results.sqlite, with the tables of `schema` (the analyses') besides its own.

    `read_only`: open an existing store for reading (``report``), creating and writing nothing."""

    def __init__(self, path: str | os.PathLike, schema: str = "", read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        if self.path.is_dir():
            raise UserError(f"{self.path}: is a directory, not a results store; move it away or choose another "
                            "run directory")
        if read_only and not self.path.is_file():
            raise UserError(f"{self.path}: no such results store; run a suite into its directory first")
        with _sqlite_errors(self.path):
            if read_only:
                self.db = _connect_read_only(self.path)
                self.db.execute("SELECT count(*) FROM sqlite_master").fetchone()  # a file that is not SQLite fails here
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=60)
            try:
                self.db.execute("PRAGMA journal_mode=WAL")  # a reader (report) never blocks the runner
                self.db.execute("PRAGMA synchronous=FULL")  # a committed unit is on the disk, not only in a cache
                self.db.executescript(SCHEMA + schema)
                _add_missing_columns(self.db, SCHEMA + schema)
            except BaseException:
                self.db.close()
                raise

    def close(self) -> None:
        self.db.close()

    # meta ------------------------------------------------------------------------------------------
    def _absent(self, table: str) -> bool:
        """Whether a read-only store lacks `table` (one written before the analysis existed); it then reads as
        empty. A writable store has every table of its schema."""
        return self.read_only and not self.has_table(table)

    @_checked
    def get_meta(self, key: str) -> object | None:
        if self._absent("meta"):
            return None
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    @_checked
    def set_meta(self, key: str, value: object) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    @_checked
    def clear(self, tables: Sequence[str] = (), meta: Mapping[str, object] | None = None) -> None:
        """Delete every row — meta, models and the given analyses' `tables` — and write `meta` anew, in one
        transaction: a run killed meanwhile finds the old store or the new one, never a mix."""
        with self.db:
            for table in ("meta", "models", *tables):
                if self.has_table(table):
                    self.db.execute(f"DELETE FROM {_name(table)}")  # noqa: S608  (checked identifier)
            for key, value in (meta or {}).items():
                self.db.execute("INSERT INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    @_checked
    def holds_rows(self, tables: Sequence[str], **key: object) -> bool:
        """Whether any of `tables` holds a row (with these column values, e.g. ``model=...``): a finished unit."""
        return any(self.has(t, **key) for t in tables if self.has_table(t))

    @_checked
    @_checked
    def has_column(self, table: str, column: str) -> bool:
        """Whether `table` has `column` (a read-only store written before the column existed does not)."""
        return column in {row[1] for row in self.db.execute(f"PRAGMA table_info({table})")}

    def has_table(self, table: str) -> bool:
        return self.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                               (table,)).fetchone() is not None

    # models ----------------------------------------------------------------------------------------
    @_checked
    def set_model(self, name: str, checkpoint: str, sha256: str, config: dict) -> None:
        with self.db:
            self.db.execute("INSERT INTO models VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                            "checkpoint = excluded.checkpoint, sha256 = excluded.sha256, config = excluded.config",
                            (name, checkpoint, sha256, json.dumps(config)))  # keeps the first-seen order

    @_checked
    def models(self) -> dict[str, dict]:
        if self._absent("models"):
            return {}
        return {name: {"checkpoint": ckpt, "sha256": sha, "config": json.loads(cfg)}
                for name, ckpt, sha, cfg in self.db.execute("SELECT * FROM models ORDER BY rowid")}

    # an analysis's rows ----------------------------------------------------------------------------
    @_checked
    def has(self, table: str, **key: object) -> bool:
        """Whether `table` holds a row with these column values (a unit's primary key; none: any row)."""
        if self._absent(table):
            return False
        where = " WHERE " + " AND ".join(f"{_name(c)} = ?" for c in key) if key else ""
        return self.db.execute(f"SELECT 1 FROM {_name(table)}{where} LIMIT 1",  # noqa: S608
                               tuple(key.values())).fetchone() is not None

    @_checked
    def insert(self, table: str, row: Mapping[str, object]) -> None:
        """Write one row (a finished unit) in its own transaction, replacing a row with the same key."""
        columns = ", ".join(_name(c) for c in row)
        marks = ", ".join("?" for _ in row)
        with self.db:
            self.db.execute(f"INSERT OR REPLACE INTO {_name(table)} ({columns}) VALUES ({marks})",  # noqa: S608
                            tuple(row.values()))

    @_checked
    def rows(self, table: str, columns: Sequence[str], order_by: Sequence[str] = ()) -> list[tuple]:
        """Every row of `table` as tuples of `columns`, in `order_by` order (else SQLite's table order)."""
        if self._absent(table):
            return []
        order = f" ORDER BY {', '.join(_name(c) for c in order_by)}" if order_by else ""
        return self.db.execute(f"SELECT {', '.join(_name(c) for c in columns)} FROM {_name(table)}{order}"  # noqa: S608
                               ).fetchall()
