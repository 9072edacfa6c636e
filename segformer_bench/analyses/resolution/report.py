"""The resolution-shift report: a pure function of the stored (model, test) results.

The SegFormer paper's ablation (Table 1c) trains Mix-FFN and a positional-encoding variant once and
tests each with a 768×768 sliding window and on the whole 1024×2048 image; the table here has one row per
model, the mIoU at every test resolution, and the change from the baseline test (the first, unless the suite
names one) with a paired bootstrap interval over images (the same images at both resolutions). The plot shows
mIoU against the network's input size (√(H·W), log scale), one line per model.

Files: ``resolution.md`` / ``.tex`` / ``.csv`` and ``resolution.png``; the HTML sections are returned to the
caller, which puts them on the run's page. Calibration, when the store holds counts (``resolution_calibration``):
``resolution_calibration.md`` / ``.tex`` / ``.csv``, mIoU and top-label ECE per model × test with a percentile
bootstrap interval over images (the CSV adds MCE, NLL and Brier), and its own page section.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ...calibration import brier, mce, nll
from ...report import plots
from ...report.page import Section, figure
from ...report.tables import MISSING, Table, fmt, fmt_interval, table_files, to_html
from ..stats import Interval, cell_miou, ece_interval, paired_change
from .store import ResolutionResult

# The paper's ablation rows (Cityscapes val; 768×768 sliding window, then the whole 1024×2048 image).
PUBLISHED: dict[str, tuple[float, float]] = {"PE (published)": (77.3, 74.0), "Mix-FFN (published)": (80.5, 79.8)}


@dataclass(frozen=True)
class ResolutionTable:
    tests: list[str]  # in suite order
    baseline: str
    miou: dict[tuple[str, str], float]  # (model, test) → mIoU in [0, 1]
    change: dict[tuple[str, str], Interval | None]  # (model, shifted test) → change from the baseline
    input_size: dict[str, tuple[int, int]]  # per test (the first model's; it depends only on data and settings)


def summarize_resolution(results: Mapping[tuple[str, str], ResolutionResult], tests: Sequence[str],
                         baseline: str | None, *, n_resamples: int = 1000, confidence: float = 0.95,
                         seed: int = 0) -> ResolutionTable:
    """mIoU per (model, test) and each model's change from the baseline test, paired over images; the
    interval is None when the two tests were not run on the same images."""
    tests = [t for t in tests if any(k[1] == t for k in results)]
    if not tests:
        raise ValueError("no resolution results to report")
    baseline = baseline if baseline in tests else tests[0]
    models = list(dict.fromkeys(m for m, _ in results))
    miou = {k: cell_miou(r.per_image) for k, r in results.items()}
    change: dict[tuple[str, str], Interval | None] = {}
    for m in models:
        base = results.get((m, baseline))
        for t in tests:
            shifted = results.get((m, t))
            if t == baseline or base is None or shifted is None:
                continue
            if base.names == shifted.names:
                change[(m, t)] = paired_change(base.per_image, shifted.per_image, n_resamples=n_resamples,
                                               confidence=confidence, seed=seed)
            else:
                change[(m, t)] = Interval(miou[(m, t)] - miou[(m, baseline)], math.nan, math.nan)
    sizes = {}
    for (_, t), r in results.items():
        sizes.setdefault(t, tuple(r.input_size))
    return ResolutionTable(tests, baseline, miou, change, sizes)


def _size(hw: tuple[int, int]) -> str:
    return f"{hw[0]}×{hw[1]}"


def resolution_table(summary: ResolutionTable, include_published: bool) -> Table:
    """Rows: models (and, optionally, the paper's two rows); columns: mIoU per test, then Δ per shifted test."""
    shifted = [t for t in summary.tests if t != summary.baseline]
    columns = list(summary.tests) + [f"Δ {t}" for t in shifted]
    models = list(dict.fromkeys(m for m, _ in summary.miou))
    rows = []
    for m in models:
        cells = [fmt(100 * summary.miou[(m, t)]) if (m, t) in summary.miou else MISSING for t in summary.tests]
        for t in shifted:
            c = summary.change.get((m, t))
            cells.append(MISSING if c is None else _signed(fmt_interval(c, c.value)))
        rows.append((m, cells))
    table = Table("Model", columns, rows, top=[("mIoU (%)", len(summary.tests)), (f"change from {summary.baseline}",
                                                                                    len(shifted))] if shifted else [])
    if include_published and published_applies(summary):
        table.rules.add(len(rows))
        for label, (before, after) in PUBLISHED.items():
            table.muted.add(len(table.rows))
            table.rows.append((label, [fmt(before), fmt(after), _signed(fmt(after - before))]))
    return table


def published_applies(summary: ResolutionTable) -> bool:
    """The paper's rows fit only its two tests, in its order: a 768×768 window, then the whole 1024×2048 image."""
    return [tuple(summary.input_size[t]) for t in summary.tests] == [(768, 768), (1024, 2048)]


def _signed(text: str) -> str:
    """'−3.3 [−4.0, −2.6]' with typographic minus signs and an explicit + on gains."""
    text = text.replace("-", "−")
    return text if text.startswith(("−", MISSING)) else "+" + text


def resolution_frame(summary: ResolutionTable):  # -> pd.DataFrame
    import pandas as pd

    records = []
    for (m, t), v in summary.miou.items():
        c = summary.change.get((m, t))
        h, w = summary.input_size[t]
        records.append({"model": m, "test": t, "input_h": h, "input_w": w, "mIoU": 100 * v,
                        "change": 100 * c.value if c else (0.0 if t == summary.baseline else math.nan),
                        "change_low": 100 * c.low if c else math.nan, "change_high": 100 * c.high if c else math.nan})
    return pd.DataFrame.from_records(records).set_index(["model", "test"])


def resolution_png(summary: ResolutionTable) -> bytes:
    """mIoU against the network's input size, one line per model; points labelled with their test."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.0), dpi=100, layout="constrained")
    ax = fig.subplots()
    tests = sorted(summary.tests, key=lambda t: (math.prod(summary.input_size[t]), summary.tests.index(t)))
    x = {t: math.sqrt(math.prod(summary.input_size[t])) for t in tests}
    models = list(dict.fromkeys(m for m, _ in summary.miou))
    for k, m in enumerate(models):
        ts = [t for t in tests if (m, t) in summary.miou]
        ax.plot([x[t] for t in ts], [100 * summary.miou[(m, t)] for t in ts], marker="o", linewidth=1.8,
                color=plots.COLORS[k % len(plots.COLORS)], label=plots.plain(m))
    ax.set_xscale("log", base=2)
    ticks = sorted(set(x.values()))
    ax.set_xticks(ticks, [plots.plain("\n".join(f"{t}\n({_size(summary.input_size[t])})" for t in tests if x[t] == v))
                          for v in ticks], fontsize=8)
    ax.minorticks_off()
    if len(ticks) > 1:
        pad = (math.log2(ticks[-1]) - math.log2(ticks[0])) * 0.08
        ax.set_xlim(2 ** (math.log2(ticks[0]) - pad), 2 ** (math.log2(ticks[-1]) + pad))
    ax.set_xlabel("test resolution: network input, √(H·W) (log scale)")
    ax.set_ylabel("mIoU (%)")
    ax.grid(alpha=0.3, linewidth=0.6)
    ax.legend(fontsize=9, frameon=False)
    return plots.png(fig)


def missing_note(missing: Sequence[tuple[str, str]], tests: Sequence[str]) -> str:
    """'Not computed yet: PE at 2x; DL at every test.' for the (model, test) pairs of a partial store."""
    by_model: dict[str, list[str]] = {}
    for m, t in missing:
        by_model.setdefault(m, []).append(t)
    parts = [f"{m} at {'every test' if len(ts) == len(tests) else ', '.join(ts)}" for m, ts in by_model.items()]
    return f"Not computed yet: {'; '.join(parts)}."


def resolution_report(results: Mapping[tuple[str, str], ResolutionResult], tests: Sequence[str], baseline: str | None,
                      include_published: bool, *, n_resamples: int = 1000, confidence: float = 0.95,
                      seed: int = 0, expected: Sequence[tuple[str, str]] = ()) -> tuple[dict[str, str | bytes],
                                                                                        list[Section]]:
    """({file name: content}, [(heading, note HTML, content HTML)]) of the resolution-shift analysis.

    `expected`: the (model, test) pairs the suite asks for; those not in `results` (a partial store) are named in
    the caption and on the page, shown as – in the table (a test no model has reached yet has no column)."""
    missing = [k for k in expected if k not in results]
    incomplete = f" Incomplete run. {missing_note(missing, tests)}" if missing else ""
    summary = summarize_resolution(results, tests, baseline, n_resamples=n_resamples, confidence=confidence,
                                   seed=seed)
    table = resolution_table(summary, include_published)
    sizes = ", ".join(f"{t}: {_size(summary.input_size[t])}" for t in summary.tests)
    level = f"{round(100 * confidence)} %"
    caption = (f"Resolution shift, mIoU (%) per test (network input {sizes}); Δ = change from "
               f"{summary.baseline}, with {level} paired bootstrap intervals over images ({n_resamples} resamples, "
               f"seed {seed})." + incomplete)
    png = resolution_png(summary)
    files: dict[str, str | bytes] = {**table_files("resolution", table, caption, resolution_frame(summary)),
                                     "resolution.png": png}
    published = (" Rows marked “(published)” are the paper's ablation (Cityscapes val, 768×768 sliding window "
                 "versus the whole 1024×2048 image)." if include_published and published_applies(summary) else "")
    note = (f"Each model is tested at every resolution ({html.escape(sizes)}; the size is the network's input: the "
            "window when sliding, the whole image otherwise). <b>Δ</b> is the change in mIoU from "
            f"<b>{html.escape(summary.baseline)}</b>; brackets: {level} paired percentile bootstrap interval over "
            "images (the same images resampled at both resolutions). The paper's claim: Mix-FFN (no positional "
            "encoding) loses far less than a positional encoding when the test resolution differs from training."
            + published + (f" <b>Incomplete run.</b> {html.escape(missing_note(missing, tests))}" if missing else ""))
    sections = [("Resolution shift", note, to_html(table)),
                ("mIoU against test resolution", "One line per model; the x axis is the network input's √(H·W).",
                 figure(png, "mIoU against test resolution"))]
    return files, sections


def resolution_calibration(results: Mapping[tuple[str, str], ResolutionResult], tests: Sequence[str],
                           models: Sequence[str], *, n_resamples: int = 1000, confidence: float = 0.95,
                           seed: int = 0) -> tuple[dict[str, str], list[Section]]:
    """({file name: content}, sections) of calibration under resolution shift: mIoU and ECE (%) per model × test,
    ECE with a percentile bootstrap interval over images (seeded as the mIoU intervals are); empty when no stored
    result holds calibration counts. Models with results but no counts (outputs that are scores) are named."""
    import pandas as pd

    counted = {k: r for k, r in results.items() if r.calibration is not None}
    if not counted:
        return {}, []
    tests = [t for t in tests if any(k[1] == t for k in results)]
    stored = [m for m in dict.fromkeys([*models, *(m for m, _ in results)]) if any(k[0] == m for k in results)]
    shown = [m for m in stored if any(k[0] == m for k in counted)]
    left_out = [m for m in stored if m not in shown]
    eces = {k: ece_interval(r.calibration, n_resamples=n_resamples, confidence=confidence, seed=seed)
            for k, r in counted.items()}
    rows = [(m, [fmt(100 * cell_miou(results[(m, t)].per_image)) if (m, t) in results else MISSING for t in tests]
             + [fmt_interval(eces[(m, t)], eces[(m, t)].value) if (m, t) in eces else MISSING for t in tests])
            for m in shown]
    level = f"{round(100 * confidence)} %"
    table = Table("Model", [*tests, *tests], rows, top=[("mIoU (%)", len(tests)), (f"ECE (%), {level} interval",
                                                                                   len(tests))])
    records = []
    for (m, t), iv in eces.items():
        c = counted[(m, t)].calibration
        records.append({"model": m, "test": t, "mIoU": 100 * cell_miou(counted[(m, t)].per_image),
                        "ECE": 100 * iv.value, "ECE_low": 100 * iv.low, "ECE_high": 100 * iv.high, "MCE": 100 * mce(c),
                        "NLL": nll(c), "Brier": brier(c), "pixels": float(c[:, -1].sum()), "images": len(c)})
    frame = pd.DataFrame.from_records(records).set_index(["model", "test"])
    bins = (next(iter(counted.values())).calibration.shape[-1] - 3) // 3
    caption = (f"Calibration under resolution shift: mIoU (%) and top-label ECE (%) over non-ignored pixels "
               f"({bins} equal-width confidence bins) per test, ECE with {level} percentile bootstrap intervals over "
               f"images ({n_resamples} resamples, seed {seed}); the CSV adds MCE, NLL and Brier."
               + (f" Left out (outputs are scores, not probabilities): {', '.join(left_out)}." if left_out else ""))
    files = table_files("resolution_calibration", table, caption, frame)
    return files, [("Calibration under resolution shift", html.escape(caption), to_html(table))]
