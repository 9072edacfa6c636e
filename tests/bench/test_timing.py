"""bench/timing.py: the machines a run is recorded under, and the run-time table's sums, on a store built by hand."""

import numpy as np
import torch

from segformer_bench.analyses.corruption.store import SCHEMA, add_cell
from segformer_bench.bench.store import Store
from segformer_bench.bench.timing import machine, record_machine, run_time_part, unit_seconds


def _store(tmp_path) -> Store:
    store = Store(tmp_path / "results.sqlite", SCHEMA)
    per_image = np.zeros((1, 2, 2), dtype=np.int64)
    for model, corruption, seconds in (("A", "fog", 2.5), ("A", "snow", 70.0), ("B", "fog", 4000.0)):
        add_cell(store, model, corruption, 1, {"mIoU": 0.5, "aAcc": 0.5, "mAcc": 0.5, "IoU": [0.5, 0.5]}, per_image,
                 ["x"], 0, seconds)
    return store


def test_machines_are_listed_once_each_in_the_order_they_ran(tmp_path):
    store = _store(tmp_path)
    cpu = machine(torch.device("cpu"), 1)
    assert cpu.startswith("cpu ") and f"torch {torch.__version__}" in cpu and "1 rank," in cpu
    assert "2 ranks," in machine(torch.device("cpu"), 2)
    record_machine(store, cpu)
    record_machine(store, "other")
    record_machine(store, cpu)  # the first machine resuming again
    assert store.get_meta("machines") == [cpu, "other"]


def test_run_time_sums_each_models_units_and_names_a_store_without_machines(tmp_path):
    store = _store(tmp_path)
    frame = unit_seconds(store, ["corruption"])
    assert frame.to_dict("records") == [{"model": "A", "analysis": "corruption", "units": 2, "seconds": 72.5},
                                        {"model": "B", "analysis": "corruption", "units": 1, "seconds": 4000.0}]
    part = run_time_part(store, ["corruption"], ["B", "A"])  # suite order, not the store's
    text = part.files["run_time.md"]
    assert text.index("| B ") < text.index("| A ")
    assert "2 · 1.2 min" in text and "1 · 1.11 h" in text and "not recorded" in text
    assert run_time_part(Store(tmp_path / "empty.sqlite", SCHEMA), ["corruption"], ["A"]) is None
