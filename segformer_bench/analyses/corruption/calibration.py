"""The corruption analysis's calibration table: ECE (%) per model on the clean images and under each corruption
(the mean of its severities' ECE, as the mIoU table averages severities), in the protocol's column order, from the
per-image calibration counts the cells store (``calibration.calibration_counts``, 15 equal-width bins). Models
whose outputs are scores (universal segmentation models) store none and are named as left out."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import numpy as np

from ...calibration import brier, ece, mce, nll
from ...corruptions.protocols import Protocol
from ...report.page import Section
from ...report.tables import MISSING, Table, fmt, table_files, to_html
from .robustness import CLEAN

Key = tuple[str, str, int]


def calibration_part(counts: Mapping[Key, np.ndarray], protocol: Protocol, models: Sequence[str],
                     ) -> tuple[dict[str, str], list[Section]]:
    """(files, sections) of the calibration table; empty when no cell holds counts."""
    import pandas as pd

    if not counts:
        return {}, []
    shown = [m for m in models if any(k[0] == m for k in counts)]
    left_out = [m for m in models if m not in shown]
    columns = ["Clean", *protocol.corruptions, "mean"]
    rows = []
    for m in shown:
        cells = []
        per_corruption = []
        clean = counts.get((m, *CLEAN))
        cells.append(MISSING if clean is None else fmt(100 * ece(clean)))
        for c in protocol.corruptions:
            values = [ece(counts[(m, c, s)]) for s in protocol.severities_of(c) if (m, c, s) in counts]
            complete = len(values) == len(protocol.severities_of(c))
            per_corruption.append(float(np.mean(values)) if complete else None)
            cells.append(fmt(100 * per_corruption[-1]) if complete else MISSING)
        mean = None if any(v is None for v in per_corruption) else float(np.mean(per_corruption))
        cells.append(MISSING if mean is None else fmt(100 * mean))
        rows.append((m, cells))
    table = Table("Model", columns, rows, top=[("ECE (%), lower is better", len(columns))])
    records = [{"model": m, "corruption": c, "severity": s, "ECE": 100 * ece(v), "MCE": 100 * mce(v), "NLL": nll(v),
                "Brier": brier(v), "pixels": float(v[:, -1].sum()), "images": len(v)}
               for (m, c, s), v in counts.items()]
    frame = pd.DataFrame.from_records(records).set_index(["model", "corruption", "severity"])
    caption = ("Calibration under corruption: top-label ECE (%) over non-ignored pixels, 15 equal-width confidence "
               "bins, each corruption the mean of its severities (the CSV has ECE, MCE, NLL and Brier per cell)."
               + (f" Left out (outputs are scores, not probabilities): {', '.join(left_out)}." if left_out else ""))
    files = table_files("calibration", table, caption, frame)
    return files, [("Calibration under corruption", html.escape(caption), to_html(table))]
