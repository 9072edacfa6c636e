"""The results store: its own tables, an analysis's rows through the generic API, arrays as bytes."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from segformer_bench.bench.store import Store, decode_array, decode_arrays, encode_array, encode_arrays

SCHEMA = "CREATE TABLE IF NOT EXISTS units (model TEXT NOT NULL, k INTEGER NOT NULL, v BLOB, PRIMARY KEY (model, k));"


def test_meta_and_models_round_trip_in_first_seen_order(tmp_path):
    store = Store(tmp_path / "r.sqlite")
    store.set_meta("suite", {"name": "x", "models": [1, 2]})
    store.set_model("B", "b.pt", "0" * 64, {"num_classes": 19})
    store.set_model("A", "a.pt", "1" * 64, {})
    store.set_model("B", "b2.pt", "2" * 64, {})  # updated in place: B stays first
    assert store.get_meta("suite") == {"name": "x", "models": [1, 2]} and store.get_meta("other") is None
    assert list(store.models()) == ["B", "A"] and store.models()["B"]["checkpoint"] == "b2.pt"
    store.close()


def test_an_analysis_table_through_has_insert_rows(tmp_path):
    store = Store(tmp_path / "r.sqlite", SCHEMA)
    assert not store.has("units", model="m", k=1)
    store.insert("units", {"model": "m", "k": 1, "v": b"a"})
    store.insert("units", {"model": "m", "k": 0, "v": b"b"})
    store.insert("units", {"model": "m", "k": 1, "v": b"c"})  # the same key replaces its row
    assert store.has("units", model="m", k=1) and not store.has("units", model="n", k=1)
    assert store.rows("units", ("k", "v"), order_by=("k",)) == [(0, b"b"), (1, b"c")]
    store.close()
    with sqlite3.connect(tmp_path / "r.sqlite") as db:  # what another process sees: committed rows
        assert db.execute("SELECT count(*) FROM units").fetchone()[0] == 2


def test_clear_empties_the_given_tables_and_its_own(tmp_path):
    store = Store(tmp_path / "r.sqlite", SCHEMA)
    store.set_meta("suite", {})
    store.set_model("m", "m.pt", "0" * 64, {})
    store.insert("units", {"model": "m", "k": 1, "v": None})
    store.clear(["units", "not_created_yet"])
    assert store.get_meta("suite") is None and store.models() == {} and store.rows("units", ("k",)) == []
    store.close()


@pytest.mark.parametrize("name", ["units; DROP TABLE meta", "Units", "1x", "a-b"])
def test_identifiers_are_checked(tmp_path, name):
    store = Store(tmp_path / "r.sqlite", SCHEMA)
    with pytest.raises(ValueError, match="not a table or column name"):
        store.rows(name, ("k",))
    with pytest.raises(ValueError, match="not a table or column name"):
        store.insert("units", {name: 1})
    store.close()


def test_arrays_round_trip_exactly():
    a = np.random.default_rng(0).integers(0, 2**40, (3, 19, 19), dtype=np.int64)
    assert np.array_equal(decode_array(encode_array(a)), a) and decode_array(encode_array(a)).dtype == np.int64
    maps = {"stage1": np.random.default_rng(1).random((5, 7)), "logits": np.zeros((2, 2))}
    back = decode_arrays(encode_arrays(maps))
    assert back.keys() == maps.keys() and all(np.array_equal(back[k], maps[k]) for k in maps)
