"""The conditions report: a pure function of the stored (model, condition) results and, for the agreement, of
corruption cells (this run's or a reference run's).

Files: ``conditions.{md,tex,csv}`` (mIoU per model × condition with bootstrap intervals, then the change from
the clean reference), ``conditions.png``, ``conditions_calibration.{md,tex,csv}`` (ECE with intervals; NLL,
Brier, MCE in the CSV) and, with corruption cells, ``agreement.{md,tex,csv}`` and ``agreement.png`` (Spearman's
ρ per corruption × condition). The HTML sections are returned to the caller.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence

import numpy as np

from ...calibration import brier, mce, nll
from ...report import plots
from ...report.page import Section, figure
from ...report.tables import MISSING, Table, fmt_interval, table_files, to_html
from ..stats import Interval, ece_interval, miou_interval, paired_change, unpaired_change
from .agreement import CLEAN_ROW, MEAN_ROW, MIN_MODELS, Agreement
from .store import ConditionResult

Files = dict[str, str | bytes]


def _signed(text: str) -> str:
    text = text.replace("-", "−")
    return text if text.startswith(("−", MISSING)) else "+" + text


def change(before: ConditionResult, after: ConditionResult, seed: int) -> Interval:
    """after − before: paired over images when both hold the same images (SynthCity's scenes in fog), else each
    side resampled on its own."""
    if before.names == after.names:
        return paired_change(before.per_image, after.per_image, seed=seed)
    return unpaired_change(before.per_image, after.per_image, seed=seed)


def conditions_part(results: Mapping[tuple[str, str], ConditionResult], conditions: Sequence[str], reference: str,
                    models: Sequence[str], *, seed: int = 0,
                    described: Mapping[str, str] | None = None) -> tuple[Files, list[Section]]:
    """The mIoU table, its plot and the calibration table."""
    import pandas as pd

    conditions = [reference, *[c for c in conditions if c != reference]]
    conditions = [c for c in conditions if any(k[1] == c for k in results)]
    models = [m for m in models if any(k[0] == m for k in results)]
    shifted = [c for c in conditions if c != reference]
    miou = {k: miou_interval(r.per_image, seed=seed) for k, r in results.items()}
    delta = {(m, c): change(results[(m, reference)], results[(m, c)], seed)
             for m in models for c in shifted if (m, reference) in results and (m, c) in results}
    rows = []
    for m in models:
        cells = [fmt_interval(miou[(m, c)], miou[(m, c)].value) if (m, c) in miou else MISSING for c in conditions]
        cells += [_signed(fmt_interval(delta[(m, c)], delta[(m, c)].value)) if (m, c) in delta else MISSING
                  for c in shifted]
        rows.append((m, cells))
    top = [("mIoU (%)", len(conditions))] + ([(f"change from {reference}", len(shifted))] if shifted else [])
    table = Table("Model", [*conditions, *(f"Δ {c}" for c in shifted)], rows, top=top)
    missing = [(m, c) for m in models for c in conditions if (m, c) not in results]
    incomplete = (" Not computed yet: " + "; ".join(f"{m} on {c}" for m, c in missing) + ".") if missing else ""
    caption = (f"mIoU (%) under each condition with 95 % bootstrap intervals over images (1000 resamples, seed "
               f"{seed}); Δ = change from {reference} (paired over images where a condition holds the same "
               f"images, else each side resampled on its own)." + incomplete)
    records = []
    for (m, c), r in results.items():
        d = delta.get((m, c))
        records.append({"model": m, "condition": c, "images": len(r.names), "mIoU": 100 * miou[(m, c)].value,
                        "mIoU_low": 100 * miou[(m, c)].low, "mIoU_high": 100 * miou[(m, c)].high,
                        "change": 100 * d.value if d else (0.0 if c == reference else math.nan),
                        "change_low": 100 * d.low if d else math.nan, "change_high": 100 * d.high if d else math.nan})
    frame = pd.DataFrame.from_records(records).set_index(["model", "condition"])
    png = conditions_png(miou, models, conditions)
    files: Files = {**table_files("conditions", table, caption, frame), "conditions.png": png}
    what = "".join(f"<li><b>{html.escape(c)}</b>: {html.escape(described[c])}</li>"
                   for c in conditions if described and c in described)
    note = (f"mIoU per model under each condition, and the change from <b>{html.escape(reference)}</b>; brackets: "
            "95 % percentile bootstrap intervals over images." + (f"<ul>{what}</ul>" if what else "")
            + (f" <b>Incomplete run.</b>{html.escape(incomplete)}" if missing else ""))
    sections: list[Section] = [("Adverse conditions", note, to_html(table)),
                               ("mIoU per condition", "Bars: mIoU; whiskers: 95 % bootstrap intervals.",
                                figure(png, "mIoU per condition"))]
    more_files, more_sections = calibration_part(results, conditions, models, seed=seed)
    return files | more_files, sections + more_sections


def conditions_png(miou: Mapping[tuple[str, str], Interval], models: Sequence[str], conditions: Sequence[str]) -> bytes:
    """Grouped bars: one group per condition, one bar per model, whiskers for the intervals."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(max(5.0, 1.1 * len(conditions) * max(1, len(models)) ** 0.5 + 1.5), 3.8), dpi=100,
                 layout="constrained")
    ax = fig.subplots()
    width = 0.8 / max(1, len(models))
    for k, m in enumerate(models):
        xs = [i + (k - (len(models) - 1) / 2) * width for i, c in enumerate(conditions) if (m, c) in miou]
        v = [miou[(m, c)] for c in conditions if (m, c) in miou]
        heights = [100 * x.value for x in v]
        errors = np.array([[100 * (x.value - x.low), 100 * (x.high - x.value)] for x in v]).T.reshape(2, -1)
        ax.bar(xs, heights, width=width, color=plots.COLORS[k % len(plots.COLORS)], label=plots.plain(m),
               yerr=np.nan_to_num(errors), capsize=2, error_kw={"linewidth": 0.8})
    ax.set_xticks(range(len(conditions)), [plots.plain(c) for c in conditions], fontsize=8,
                  rotation=20 if len(conditions) > 5 else 0)
    ax.set_ylabel("mIoU (%)")
    ax.grid(axis="y", alpha=0.3, linewidth=0.6)
    ax.legend(fontsize=8, frameon=False)
    return plots.png(fig)


def calibration_part(results: Mapping[tuple[str, str], ConditionResult], conditions: Sequence[str],
                     models: Sequence[str], *, seed: int = 0) -> tuple[Files, list[Section]]:
    """ECE (%) per model × condition with bootstrap intervals; empty when no result holds calibration counts."""
    import pandas as pd

    counts = {k: r.calibration for k, r in results.items() if r.calibration is not None}
    if not counts:
        return {}, []
    shown = [m for m in models if any(k[0] == m for k in counts)]
    left_out = [m for m in models if m not in shown]
    intervals = {k: ece_interval(v, seed=seed) for k, v in counts.items()}
    rows = [(m, [fmt_interval(intervals[(m, c)], intervals[(m, c)].value) if (m, c) in intervals else MISSING
                 for c in conditions]) for m in shown]
    table = Table("Model", list(conditions), rows, top=[("ECE (%), lower is better", len(conditions))])
    caption = ("Calibration under each condition: top-label ECE (%) over non-ignored pixels, 15 equal-width "
               "confidence bins, with 95 % bootstrap intervals over images (the CSV has MCE, NLL and Brier too)."
               + (f" Left out (outputs are scores, not probabilities): {', '.join(left_out)}." if left_out else ""))
    records = [{"model": m, "condition": c, "ECE": 100 * intervals[(m, c)].value,
                "ECE_low": 100 * intervals[(m, c)].low, "ECE_high": 100 * intervals[(m, c)].high,
                "MCE": 100 * mce(v), "NLL": nll(v), "Brier": brier(v),
                "pixels": float(v[:, -1].sum())} for (m, c), v in counts.items()]
    frame = pd.DataFrame.from_records(records).set_index(["model", "condition"])
    reliability = plots.reliability_diagrams({m: {c: counts[(m, c)] for c in conditions if (m, c) in counts}
                                              for m in shown})
    files: Files = {**table_files("conditions_calibration", table, caption, frame),
                    "conditions_reliability.png": reliability}
    return files, [("Calibration under adverse conditions", html.escape(caption), to_html(table)),
                   ("Reliability under adverse conditions", "Per model: accuracy against confidence per bin for each "
                    "condition (the diagonal is perfect calibration); below, the share of pixels per bin.",
                    figure(reliability, "reliability diagrams per condition"))]


def agreement_part(agreements: Sequence[Agreement], corruptions: Sequence[str], targets: Sequence[str],
                   source: str) -> tuple[Files, list[Section]]:
    """The agreement table (ρ with intervals; τ in the CSV) and heatmap, or a plain statement that there are too
    few models. `source` names where the corruption cells came from."""
    import pandas as pd

    rows_order = [CLEAN_ROW, *corruptions, MEAN_ROW]
    by_key = {(a.corruption, a.condition): a for a in agreements}
    counts = sorted({len(a.models) for a in agreements})
    most = max(counts) if counts else 0
    if most < MIN_MODELS:
        text = (f"Synthetic-versus-real agreement is not computed: it ranks models, and {source} has "
                f"{most} model{'s' if most != 1 else ''} with both corruption cells and condition results; a rank "
                f"correlation needs at least {MIN_MODELS} (with 2 it is ±1 whatever the models do). Add models to "
                "the corruption and conditions sections.")
        return {"agreement.md": text + "\n"}, [("Does Cityscapes-C predict the conditions?", html.escape(text), "")]
    label = {CLEAN_ROW: "clean images", MEAN_ROW: "mean of all corruptions"}
    table_rows = []
    for r in rows_order:
        cells = []
        for t in targets:
            a = by_key.get((r, t))
            ok = a is not None and math.isfinite(a.spearman.value)
            cells.append(fmt_interval(a.spearman, a.spearman.value, digits=2, scale=1.0).replace("-", "−")
                         if ok else MISSING)
        table_rows.append((label.get(r, r), cells))
    table = Table("mIoU under", list(targets), table_rows,
                  top=[("Spearman's ρ across models with mIoU under", len(targets))], rules={1, len(rows_order) - 1})
    n_text = (f"{most} models" if len(counts) == 1 else f"{counts[0]}–{most} models (see the CSV per cell)")
    few = (f" With only {most} models ρ can take few values and a single swap changes it a lot: read it as "
           "indicative." if most < 6 else "")
    caption = (f"Synthetic-versus-real agreement: Spearman's rank correlation across {n_text} between each "
               f"corruption's mIoU (mean over its severities; corruption cells from {source}) and each condition's "
               "mIoU, with 95 % bootstrap intervals over images (the models compared are fixed; Kendall's τ-b in the "
               "CSV). The clean row is the baseline a corruption must beat to add anything beyond clean accuracy."
               + few)
    records = [{"corruption": a.corruption, "condition": a.condition, "models": len(a.models),
                "spearman": a.spearman.value, "spearman_low": a.spearman.low, "spearman_high": a.spearman.high,
                "kendall": a.kendall.value, "kendall_low": a.kendall.low, "kendall_high": a.kendall.high,
                "model_names": "; ".join(a.models)} for a in agreements]
    frame = pd.DataFrame.from_records(records).set_index(["corruption", "condition"])
    png = agreement_png(by_key, rows_order, targets, label, most)
    files: Files = {**table_files("agreement", table, caption, frame), "agreement.png": png}
    return files, [("Does Cityscapes-C predict the conditions?", html.escape(caption), to_html(table)),
                   ("Agreement heatmap", "Spearman's ρ per corruption (rows) and condition (columns).",
                    figure(png, "rank agreement heatmap"))]


def agreement_png(by_key: Mapping[tuple[str, str], Agreement], rows: Sequence[str], targets: Sequence[str],
                  label: Mapping[str, str], models: int) -> bytes:
    from matplotlib.figure import Figure

    grid = np.array([[by_key[(r, t)].spearman.value if (r, t) in by_key else np.nan for t in targets] for r in rows])
    fig = Figure(figsize=(2.2 + 1.1 * len(targets), 1.2 + 0.3 * len(rows)), dpi=100, layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(np.ma.masked_invalid(grid), cmap="RdBu", vmin=-1, vmax=1, aspect="auto")
    for i in range(len(rows)):
        for j in range(len(targets)):
            if math.isfinite(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.2f}".replace("-", "−"), ha="center", va="center", fontsize=7,
                        color="white" if abs(grid[i, j]) > 0.6 else "black")
    ax.set_xticks(range(len(targets)), [plots.plain(t) for t in targets], fontsize=8, rotation=30, ha="right")
    ax.set_yticks(range(len(rows)), [plots.plain(label.get(r, r)) for r in rows], fontsize=8)
    ax.set_title(f"Spearman's ρ across {models} models", fontsize=9)
    fig.colorbar(image, ax=ax, shrink=0.8)
    return plots.png(fig)
