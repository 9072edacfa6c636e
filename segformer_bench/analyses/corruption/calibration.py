"""The corruption analysis's calibration part: ECE (%) per model on the clean images and under each corruption
(the mean of its severities' ECE, as the mIoU table averages severities), in the protocol's column order, from the
per-image calibration counts the cells store (``calibration.calibration_counts``, 15 equal-width bins); the CSV
has ECE with its bootstrap interval over images, MCE, NLL and Brier per cell. Two plots: reliability diagrams,
clean against each corruption group (the group's cells pooled), one panel per model; and ECE against severity,
one panel per model, a line per corruption (per group when the protocol has more than ``MAX_LINES``).
Models whose outputs are scores (universal segmentation models) store none and are named as left out."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import numpy as np

from ...calibration import brier, ece, mce, nll
from ...corruptions.protocols import Protocol
from ...report import plots
from ...report.page import Section, figure
from ...report.tables import MISSING, Table, fmt, table_files, to_html
from ..stats import ece_interval
from .robustness import CLEAN

Key = tuple[str, str, int]
MAX_LINES = 6  # more corruptions than this in ECE against severity: one line per group instead


def calibration_part(counts: Mapping[Key, np.ndarray], protocol: Protocol, models: Sequence[str], *,
                     seed: int = 0, n_resamples: int = 1000) -> tuple[dict[str, str | bytes], list[Section]]:
    """(files, sections) of the calibration table and plots; empty when no cell holds counts."""
    import pandas as pd

    shown = [m for m in models if any(k[0] == m for k in counts)]
    if not shown:
        return {}, []
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
    records = []
    for (m, c, s), v in counts.items():
        interval = ece_interval(v, n_resamples=n_resamples, seed=seed)
        records.append({"model": m, "corruption": c, "severity": s, "ECE": 100 * interval.value,
                        "ECE_low": 100 * interval.low, "ECE_high": 100 * interval.high, "MCE": 100 * mce(v),
                        "NLL": nll(v), "Brier": brier(v), "pixels": float(v[:, -1].sum()), "images": len(v)})
    frame = pd.DataFrame.from_records(records).set_index(["model", "corruption", "severity"])
    caption = ("Calibration under corruption: top-label ECE (%) over non-ignored pixels, 15 equal-width confidence "
               "bins, each corruption the mean of its severities (the CSV has ECE with its 95 % bootstrap interval "
               f"over images ({n_resamples} resamples, seed {seed}), MCE, NLL and Brier per cell)."
               + (f" Left out (outputs are scores, not probabilities): {', '.join(left_out)}." if left_out else ""))
    files: dict[str, str | bytes] = {**table_files("calibration", table, caption, frame),
                                     "reliability.png": plots.reliability_diagrams(
                                         {m: group_counts(counts, protocol, m) for m in shown}),
                                     "ece_severity.png": plots.ece_vs_severity(
                                         {m: severity_lines(counts, protocol, m) for m in shown})}
    lines = "corruption" if len(protocol.corruptions) <= MAX_LINES else "corruption group (its cells pooled)"
    sections = [("Calibration under corruption", html.escape(caption), to_html(table)),
                ("Reliability diagrams", "Per model: accuracy against confidence in each of the 15 bins, on the "
                 "clean images and under each corruption group (all its cells' pixels pooled); below, the share of "
                 "the pixels in each bin. On the diagonal a model is as often right as it is confident; below it, "
                 "over-confident.", figure(files["reliability.png"], "reliability diagrams")),
                ("ECE against severity", f"Per model: ECE (%) at each severity, one line per {lines}; severity 0 "
                 "is the clean images.", figure(files["ece_severity.png"], "ECE against severity"))]
    return files, sections


def group_counts(counts: Mapping[Key, np.ndarray], protocol: Protocol, model: str) -> dict[str, np.ndarray]:
    """'clean' and each protocol group that `model` has cells of → the counts of all those cells' images."""
    out = {}
    if (model, *CLEAN) in counts:
        out["clean"] = counts[(model, *CLEAN)]
    for group, members in protocol.groups:
        cells = [counts[(model, c, s)] for c in members for s in protocol.severities_of(c) if (model, c, s) in counts]
        if cells:
            out[group] = np.concatenate(cells)
    return out


def severity_lines(counts: Mapping[Key, np.ndarray], protocol: Protocol, model: str,
                   ) -> dict[str, list[tuple[float, float]]]:
    """Per corruption (per group, the group's cells at each severity pooled, when the protocol has more than
    MAX_LINES corruptions): its (severity, ECE) points, starting from (0, the clean ECE)."""
    clean = counts.get((model, *CLEAN))
    start = [] if clean is None else [(0.0, ece(clean))]
    if len(protocol.corruptions) <= MAX_LINES:
        lines = {c: [(c, s) for s in protocol.severities_of(c)] for c in protocol.corruptions}
    else:
        lines = {g: [(c, s) for c in members for s in protocol.severities_of(c)] for g, members in protocol.groups}
    out = {}
    for label, cells in lines.items():
        by_severity: dict[int, list[np.ndarray]] = {}
        for c, s in cells:
            if (model, c, s) in counts:
                by_severity.setdefault(s, []).append(counts[(model, c, s)])
        if by_severity:
            out[label] = start + [(float(s), ece(np.concatenate(v))) for s, v in sorted(by_severity.items())]
    return out
