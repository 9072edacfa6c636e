"""How long a run took: the machines that ran it, and per model and analysis the stored units and their seconds.

Every analysis stores one row per finished unit (a corruption cell, a resolution test, an ERF block, an attack at
one ε, a condition) with the wall seconds rank 0 measured around it (``seconds``): the model's evaluation, its
corruption or attack included, without loading or training the model. The sum over a model's units is the time
that model cost the analysis on the run's machine; with torchrun, the wall time of all ranks together. A run that
was resumed on another machine, or under another world size, lists every machine that added units (``machine``
below is recorded each time ``run`` starts), so that a time is never read as one machine's when it is not.

The report's ``run_time`` table (Markdown, LaTeX, CSV) is its own file: the seconds differ from run to run, the
other tables do not.
"""

from __future__ import annotations

import html
import platform
from collections.abc import Sequence

import pandas as pd
import torch

from ..analyses import ANALYSES
from ..analyses.base import ReportPart
from ..report.tables import MISSING, Table, table_files, to_html
from .store import Store

MACHINES_KEY = "machines"


def machine(device: torch.device, world: int) -> str:
    """One line naming the hardware a run runs on: the device (the GPU's name on CUDA; the CPU's architecture
    and torch's thread count on CPU), the number of ranks, torch and its CUDA build."""
    if device.type == "cuda":
        where = f"{torch.cuda.get_device_name(device)} (cuda)"
    else:
        threads = torch.get_num_threads()
        where = f"{device.type} {platform.machine()} ({threads} thread{'s' if threads > 1 else ''})"
    cuda = f", CUDA {torch.version.cuda}" if device.type == "cuda" and torch.version.cuda else ""
    return f"{where}, {world} rank{'s' if world > 1 else ''}, torch {torch.__version__}{cuda}"


def record_machine(store: Store, description: str) -> None:
    """Add `description` to the store's machines (once each, in the order they first ran)."""
    machines = store.get_meta(MACHINES_KEY)
    machines = list(machines) if isinstance(machines, list) else []
    if description not in machines:
        store.set_meta(MACHINES_KEY, [*machines, description])


def unit_seconds(store: Store, analyses: Sequence[str]) -> pd.DataFrame:
    """Per model and analysis (in suite order): the stored units and their summed seconds."""
    rows = []
    for name in analyses:
        for table in ANALYSES[name].tables:
            if not (store.has_table(table) and store.has_column(table, "seconds")):
                continue  # galleries: images, not units
            units: dict[str, list[float]] = {}
            for model, seconds in store.rows(table, ["model", "seconds"]):
                units.setdefault(model, []).append(seconds or 0.0)
            rows += [{"model": model, "analysis": name, "units": len(s), "seconds": sum(s)}
                     for model, s in units.items()]
    return pd.DataFrame(rows, columns=["model", "analysis", "units", "seconds"])


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes = seconds / 60
    return f"{minutes:.1f} min" if minutes < 60 else f"{minutes / 60:.2f} h"


def run_time_part(store: Store, analyses: Sequence[str], models: Sequence[str]) -> ReportPart | None:
    """The report's run-time table: a row per model (in suite order), for each analysis its units and time, and
    the model's total; the machines in the caption. None when nothing is stored."""
    frame = unit_seconds(store, analyses)  # in analysis order
    if frame.empty:
        return None
    order = {m: i for i, m in enumerate(models)}
    frame = frame.sort_values("model", key=lambda s: s.map(lambda m: order.get(m, len(order))), kind="stable")
    present = [a for a in analyses if a in set(frame["analysis"])]
    table_rows = []
    for model, group in frame.groupby("model", sort=False):
        by = {row.analysis: row for row in group.itertuples()}
        cells = [f"{by[a].units} · {_duration(by[a].seconds)}" if a in by else MISSING for a in present]
        table_rows.append((str(model), [*cells, _duration(group["seconds"].sum())]))
    machines = store.get_meta(MACHINES_KEY)
    ran_on = ("; ".join(machines) if isinstance(machines, list) and machines else "not recorded (a store written "
              "before run times were kept)")
    caption = (f"Run time: per model and analysis, the stored units · their summed wall seconds (evaluation, "
               f"corruption and attacks included; loading and training the model not). Machine(s): {ran_on}.")
    table = Table("model", [*[ANALYSES[a].title for a in present], "total"], table_rows)
    files = table_files("run_time", table, caption, frame.reset_index(drop=True))
    return ReportPart(files, [("Run time", html.escape(caption), to_html(table))], {"machines": ran_on})
