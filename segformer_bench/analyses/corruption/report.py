"""The corruption analysis's report: tables, plots and page sections, pure functions of the stored cells.

The input is ``results[(model, corruption, severity)]`` → per-image confusion matrices (see
:mod:`.robustness`), the class names, the protocol and the run's metadata: the same inputs give the same
files, and nothing here reads the clock or the network.

* ``table.*``: the SegFormer paper's Cityscapes-C table: one row per model (and, optionally, the paper's
  rows, labelled "(published)"), columns Clean | the protocol's groups and corruptions | mPC | rPC.
* ``groups.*``: clean, group means, mPC, rPC (and mCD / mrCD against a reference model) with percentile
  bootstrap intervals over images, "65.8 [64.9, 66.7]".
* ``per_class.*``: IoU per class, clean and averaged over corruptions.
* ``severity.png`` (mIoU against severity, one panel per corruption), ``groups.png`` (bars per group) and
  ``gallery.png`` (one image under every corruption, with each model's prediction), all embedded in the page.
"""

from __future__ import annotations

import html
import io
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ...corruptions.protocols import PROTOCOLS, Protocol
from ...data.labels import colorize
from ...report import plots, write_report
from ...report.page import Section, figure
from ...report.tables import Table, fmt, fmt_interval, round_half_even, table_files, to_html
from ..stats import Interval
from .robustness import (
    CLEAN,
    PUBLISHED,
    Degradation,
    Key,
    Summary,
    bootstrap,
    cell_mious,
    degradations,
    model_names,
    per_class_iou,
    published_summary,
    summarize,
)

if TYPE_CHECKING:  # pandas and matplotlib are imported where used, so importing this module stays cheap
    import pandas as pd

# Column headers as the paper abbreviates them; anything else is shown by its name.
SHORT_NAMES: dict[str, str] = {
    "motion_blur": "Motion", "defocus_blur": "Defocus", "glass_blur": "Glass", "gaussian_blur": "Gauss.",
    "zoom_blur": "Zoom", "gaussian_noise": "Gauss.", "impulse_noise": "Impulse", "shot_noise": "Shot",
    "speckle_noise": "Speckle", "brightness": "Bright.", "contrast": "Contrast", "saturate": "Saturate",
    "jpeg_compression": "JPEG", "pixelate": "Pixelate", "elastic_transform": "Elastic", "snow": "Snow",
    "spatter": "Spatter", "fog": "Fog", "frost": "Frost",
}


def short_name(corruption: str) -> str:
    return SHORT_NAMES.get(corruption, corruption.replace("_", " ").capitalize())


def long_name(corruption: str) -> str:
    return "JPEG compression" if corruption == "jpeg_compression" else corruption.replace("_", " ").capitalize()


@dataclass(frozen=True)
class Gallery:
    """One image under every corruption, and each model's prediction for it."""

    images: Mapping[tuple[str, int], np.ndarray]  # (corruption, severity) → (H, W, 3) uint8; ("clean", 0) = original
    predictions: Mapping[Key, np.ndarray]  # (model, corruption, severity) → (H, W) class ids
    label: np.ndarray | None = None  # (H, W) ground-truth class ids (255 = ignore), shown beside the clean image
    name: str = ""  # the image's name, for the caption


# --- table model -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """A model's row in the tables: measured, or one of the paper's (published) rows."""

    label: str
    summary: Summary
    published: bool = False


def _best(values: np.ndarray, digits: Sequence[int], lower_is_better: Sequence[bool],
          rows: Sequence[Row]) -> set[tuple[int, int]]:
    """(row, col) of the best measured value per column, compared as displayed (rounded), ties all marked.

    Published rows are context, not contenders: they come from other images and another corruption script.
    """
    bold = set()
    for j in range(values.shape[1]):
        shown = [math.nan if r.published else round_half_even(v, digits[j]) for v, r in zip(values[:, j], rows,
                                                                                             strict=True)]
        finite = [v for v in shown if math.isfinite(v)]
        if len(finite) < 2:  # a single row has no "best"
            continue
        target = min(finite) if lower_is_better[j] else max(finite)
        bold |= {(i, j) for i, v in enumerate(shown) if v == target}
    return bold


def _rows(results: Mapping[Key, np.ndarray], protocol: Protocol, include_published: bool) -> list[Row]:
    rows = [Row(m, s) for m, s in summarize(results, protocol).items()]
    if include_published and _published_applies(protocol):
        rows += [Row(f"{name} (published)", published_summary(row, protocol), True) for name, row in PUBLISHED.items()]
    return rows


def _published_applies(protocol: Protocol) -> bool:
    """The paper's rows only fit its own protocol: the same corruptions at the same severities."""
    paper = PROTOCOLS["segformer"]
    return set(protocol.corruptions) == set(paper.corruptions) and all(
        protocol.severities_of(c) == paper.severities_of(c) for c in paper.corruptions)


def _protocol_note(protocol: Protocol) -> str:
    """'severities 1–5 (gaussian noise, …: 1–3)': which severities each cell averages."""
    def span(sev: tuple[int, ...]) -> str:
        return f"{sev[0]}–{sev[-1]}" if list(sev) == list(range(sev[0], sev[-1] + 1)) and len(sev) > 1 \
            else ", ".join(map(str, sev))

    by_span: dict[str, list[str]] = {}
    for c in protocol.corruptions:
        by_span.setdefault(span(protocol.severities_of(c)), []).append(long_name(c).lower())
    main = max(by_span, key=lambda k: len(by_span[k]))
    others = "; ".join(f"{', '.join(cs)}: {k}" for k, cs in by_span.items() if k != main)
    return f"severities {main}" + (f" ({others})" if others else "")


def cityscapes_c_table(rows: Sequence[Row], protocol: Protocol) -> tuple[Table, np.ndarray]:
    """The paper's table, and its numbers (percent, unrounded) as a (rows, columns) array."""
    columns = ["Clean"] + [short_name(c) for c in protocol.corruptions] + ["mPC", "rPC"]
    top = [("", 1)] + [(g.capitalize(), len(members)) for g, members in protocol.groups] + [("", 2)]
    values = np.array([[r.summary.clean, *(r.summary.corruptions[c] for c in protocol.corruptions), r.summary.mpc,
                        r.summary.rpc] for r in rows], dtype=np.float64) * 100
    digits = [1] * (len(columns) - 2) + [2, 1]  # the paper prints mPC with two decimals
    table = Table("Model", columns, [(r.label, [fmt(v, d) for v, d in zip(vals, digits, strict=True)])
                                     for r, vals in zip(rows, values, strict=True)], top=top,
                  bold=_best(values, digits, [False] * len(columns), rows))
    _mark_published(table, rows)
    return table, values


def _mark_published(table: Table, rows: Sequence[Row]) -> None:
    first = next((i for i, r in enumerate(rows) if r.published), None)
    if first is not None and first > 0:  # a rule between the measured rows and the paper's
        table.rules.add(first)
    table.muted |= {i for i, r in enumerate(rows) if r.published}


def groups_table(rows: Sequence[Row], protocol: Protocol, intervals: Mapping[str, Mapping[str, Interval]],
                 cd: Mapping[str, Degradation] | None) -> tuple[Table, list[str], np.ndarray]:
    """Clean, group means, mPC, rPC (and mCD, mrCD) with bootstrap intervals; also the statistic names and values."""
    names = ["clean", *(g for g, _ in protocol.groups), "mPC", "rPC"] + (["mCD", "mrCD"] if cd else [])
    columns = ["Clean", *(g.capitalize() for g, _ in protocol.groups), "mPC", "rPC"] + (["mCD", "mrCD"] if cd else [])
    values = np.full((len(rows), len(names)), np.nan)
    cells = []
    for i, r in enumerate(rows):
        point = {"clean": r.summary.clean, **r.summary.groups, "mPC": r.summary.mpc, "rPC": r.summary.rpc}
        if cd and not r.published:
            d = cd[r.label]
            point |= {"mCD": d.mcd, "mrCD": d.mrcd}
        row_cells = []
        for j, name in enumerate(names):
            value = point.get(name, math.nan)
            values[i, j] = 100 * value
            row_cells.append(fmt_interval(None if r.published else intervals.get(r.label, {}).get(name), value))
        cells.append((r.label, row_cells))
    table = Table("Model", columns, cells,
                  bold=_best(values, [1] * len(names), [n in ("mCD", "mrCD") for n in names], rows))
    _mark_published(table, rows)
    return table, names, values


def per_class_table(per_class: Mapping[str, tuple[np.ndarray, np.ndarray]], class_names: Sequence[str]) -> Table:
    models = list(per_class)
    columns = [c for _ in models for c in ("clean", "corrupted")]
    rows = [(name, [fmt(100 * per_class[m][k][i]) for m in models for k in (0, 1)])
            for i, name in enumerate(class_names)]
    return Table("Class", columns, rows, top=[(m, 2) for m in models])


# --- formats ---------------------------------------------------------------------------------------------


def cityscapes_c_frame(rows: Sequence[Row], protocol: Protocol, values: np.ndarray) -> pd.DataFrame:
    """The table's numbers for machines: mIoU in percent, unrounded, columns named by corruption id."""
    import pandas as pd

    frame = pd.DataFrame(values, columns=["clean", *protocol.corruptions, "mPC", "rPC"],
                         index=pd.Index([r.label for r in rows], name="model"))
    frame.insert(0, "source", ["published" if r.published else "measured" for r in rows])
    return frame


# --- plots -----------------------------------------------------------------------------------------------


def severity_png(mious: Mapping[Key, float], models: Sequence[str], protocol: Protocol) -> bytes:
    """mIoU against severity: one panel per corruption (a row per group), a line per model, clean dashed."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    ncols = max(len(members) for _, members in protocol.groups)
    grid = [(g, c) for g, members in protocol.groups for c in members] if ncols <= 6 else None
    if grid is None:  # very wide groups: fill rows of 4 regardless of groups
        ncols = 4
    nrows = len(protocol.groups) if grid else math.ceil(len(protocol.corruptions) / ncols)
    fig = Figure(figsize=(2.6 * ncols + 0.4, 2.05 * nrows + 0.7), dpi=100, layout="constrained")
    axes = fig.subplots(nrows, ncols, sharey=True, squeeze=False)
    used = set()
    positions = ([(gi, k) for gi, (_, members) in enumerate(protocol.groups) for k in range(len(members))] if grid
                 else [divmod(i, ncols) for i in range(len(protocol.corruptions))])
    max_severity = max(max(protocol.severities_of(c)) for c in protocol.corruptions)
    for (row, col), c in zip(positions, protocol.corruptions, strict=True):
        ax = axes[row, col]
        used.add((row, col))
        severities = protocol.severities_of(c)
        for k, model in enumerate(models):
            color = plots.COLORS[k % len(plots.COLORS)]
            ax.plot(severities, [100 * mious.get((model, c, s), math.nan) for s in severities], marker="o",
                    markersize=3.5, linewidth=1.6, color=color)
            clean = mious.get((model, *CLEAN), math.nan)
            if math.isfinite(clean):
                ax.axhline(100 * clean, color=color, linestyle="--", linewidth=1.0, alpha=0.8)
        ax.set_title(long_name(c), fontsize=10)
        ax.set_xticks(range(1, max_severity + 1))
        ax.set_xlim(0.7, max_severity + 0.3)
        ax.grid(alpha=0.3, linewidth=0.6)
        ax.tick_params(labelsize=8)
        if col == 0:
            group = protocol.groups[row][0].capitalize() + "\n" if grid else ""
            ax.set_ylabel(f"{group}mIoU (%)", fontsize=9)
        ax.set_xlabel("severity", fontsize=8)
    for row in range(nrows):
        for col in range(ncols):
            if (row, col) not in used:
                axes[row, col].set_visible(False)
    handles = [Line2D([], [], color=plots.COLORS[k % len(plots.COLORS)], marker="o", markersize=4,
                      label=plots.plain(m)) for k, m in enumerate(models)]
    handles.append(Line2D([], [], color="0.4", linestyle="--", label="clean mIoU (same colour)"))
    fig.legend(handles=handles, loc="outside upper center", ncol=min(len(handles), 5), fontsize=9, frameon=False)
    return plots.png(fig)


def groups_png(rows: Sequence[Row], protocol: Protocol, intervals: Mapping[str, Mapping[str, Interval]]) -> bytes:
    """Bars per model for clean, each group and mPC, with bootstrap intervals as error bars."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    names = ["clean", *(g for g, _ in protocol.groups), "mPC"]
    labels = ["Clean", *(g.capitalize() for g, _ in protocol.groups), "mPC"]
    fig = Figure(figsize=(min(12.0, max(6.5, 0.55 * len(names) * max(1, len(rows)) + 2)), 3.8), dpi=100,
                 layout="constrained")
    ax = fig.subplots()
    width = 0.8 / max(1, len(rows))
    x = np.arange(len(names))
    for k, r in enumerate(rows):
        point = {"clean": r.summary.clean, **r.summary.groups, "mPC": r.summary.mpc}
        heights = np.array([100 * point[n] for n in names], dtype=np.float64)
        ci = intervals.get(r.label, {}) if not r.published else {}
        yerr = None
        if all(n in ci for n in names):
            yerr = np.array([[heights[i] - 100 * ci[n].low, 100 * ci[n].high - heights[i]]
                             for i, n in enumerate(names)]).T.clip(min=0)
        offset = (k - (len(rows) - 1) / 2) * width
        bars = ax.bar(x + offset, np.nan_to_num(heights), width * 0.92, color=plots.COLORS[k % len(plots.COLORS)],
                      alpha=0.45 if r.published else 0.9, hatch="//" if r.published else None, edgecolor="white",
                      linewidth=0.5, yerr=yerr, error_kw={"elinewidth": 0.9, "capsize": 2, "ecolor": "0.2"},
                      label=plots.plain(r.label))
        if len(rows) <= 4:  # value labels, above the error bar where there is one
            tops = heights + (yerr[1] if yerr is not None else 0)
            for bar, h, top in zip(bars, heights, tops, strict=True):
                if math.isfinite(h):
                    ax.annotate(fmt(h), (bar.get_x() + bar.get_width() / 2, top), xytext=(0, 2),
                                textcoords="offset points", ha="center", va="bottom", fontsize=6.5, color="0.25")
    ax.set_xticks(x, labels)
    ax.set_ylabel("mIoU (%)")
    ax.set_ylim(0, 105)
    ax.grid(axis="y", alpha=0.3, linewidth=0.6)
    ax.set_axisbelow(True)
    handles = [Patch(facecolor=plots.COLORS[k % len(plots.COLORS)], alpha=0.45 if r.published else 0.9,
                     hatch="//" if r.published else None, edgecolor="white", label=plots.plain(r.label))
               for k, r in enumerate(rows)]
    fig.legend(handles=handles, loc="outside upper center", ncol=min(len(rows), 6), fontsize=9, frameon=False)
    return plots.png(fig)


def _thumb(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize(size, Image.Resampling.BOX))


def _label_thumb(label: np.ndarray, size: tuple[int, int], num_classes: int) -> np.ndarray:
    from PIL import Image

    small = np.asarray(Image.fromarray(np.asarray(label).astype(np.uint8)).resize(size, Image.Resampling.NEAREST))
    return colorize(small, num_classes)


def gallery_png(gallery: Gallery, protocol: Protocol, models: Sequence[str], num_classes: int,
                thumb_width: int = 160, colors: int | None = 256) -> bytes:
    """A grid: a row per corruption (the clean image first), a column per severity; in each cell the image
    above each model's prediction.

    Thumbnails are `thumb_width` pixels wide, and the picture is stored with a `colors`-entry palette
    (None: full RGB), which keeps a 16-corruption gallery around a megabyte instead of several.
    """
    from PIL import Image, ImageDraw

    if CLEAN not in gallery.images:
        raise ValueError("gallery.images needs the clean image under ('clean', 0)")
    H, W = gallery.images[CLEAN].shape[:2]
    tw, th = thumb_width, max(1, round(thumb_width * H / W))
    severities = sorted({s for c in protocol.corruptions for s in protocol.severities_of(c)})
    rows = [c for c in protocol.corruptions if any((c, s) in gallery.images for s in protocol.severities_of(c))]
    slots = 1 + len(models)  # the image, then one prediction per model
    left, top, header, gap, slot_gap, row_gap = 150, 24, 28, 8, 2, 12
    cell_h = slots * th + (slots - 1) * slot_gap
    width = left + len(severities) * (tw + gap)
    height = top + cell_h + header + len(rows) * (cell_h + row_gap)
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    title_font, small_font, bold_font = plots.font(12), plots.font(10), plots.font(12, bold=True)

    def paste(picture: np.ndarray | None, x: int, y: int) -> None:
        if picture is None:
            draw.rectangle((x, y, x + tw - 1, y + th - 1), fill=(235, 235, 235))
        else:
            canvas.paste(Image.fromarray(picture), (x, y))

    def cell(key: tuple[str, int], x: int, y: int) -> None:
        image = gallery.images.get(key)
        paste(None if image is None else _thumb(image, (tw, th)), x, y)
        for k, model in enumerate(models):
            pred = gallery.predictions.get((model, *key))
            paste(None if pred is None else _label_thumb(pred, (tw, th), num_classes), x, y + (k + 1) * (th + slot_gap))

    def row_labels(title: str, y: int) -> None:
        draw.text((left - 8, y + th / 2), title, fill="black", font=bold_font, anchor="rm")
        for k, model in enumerate(models):
            draw.text((left - 8, y + (k + 1) * (th + slot_gap) + th / 2), model, fill=(90, 90, 90), font=small_font,
                      anchor="rm")

    def heading(text: str, x: float, y: int) -> None:
        draw.text((x, y - 6), text, fill="black", font=title_font, anchor="mb")

    y = top  # the clean row, with the ground truth beside it
    cell(CLEAN, left, y)
    heading("clean", left + tw / 2, y)
    if gallery.label is not None and len(severities) > 1:
        paste(_label_thumb(gallery.label, (tw, th), num_classes), left + tw + gap, y)
        heading("ground truth", left + tw + gap + tw / 2, y)
    row_labels("clean", y)
    y += cell_h + header
    for j, s in enumerate(severities):
        heading(f"severity {s}", left + j * (tw + gap) + tw / 2, y)
    for c in rows:
        for j, s in enumerate(severities):
            if s in protocol.severities_of(c):
                cell((c, s), left + j * (tw + gap), y)
        row_labels(long_name(c), y)
        y += cell_h + row_gap

    if colors is not None:
        canvas = canvas.quantize(colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.FLOYDSTEINBERG)
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    return buffer.getvalue()


# --- HTML ------------------------------------------------------------------------------------------------


# --- the report ------------------------------------------------------------------------------------------


def _check_results(results: Mapping[Key, np.ndarray], class_names: Sequence[str]) -> None:
    if not results:
        raise ValueError("no results to report")
    K = len(class_names)
    for key, matrices in results.items():
        shape = np.shape(matrices)
        if len(shape) != 3 or shape[1:] != (K, K) or shape[0] == 0:
            raise ValueError(f"results[{key}]: expected per-image confusion matrices (N ≥ 1, {K}, {K}) for "
                             f"{K} classes, got shape {shape}")


def render_report(results: Mapping[Key, np.ndarray], class_names: Sequence[str], protocol: Protocol,
                  out_dir: str | os.PathLike, metadata: Mapping[str, object], reference_model: str | None = None,
                  include_published: bool = False, gallery: Gallery | None = None, *, n_resamples: int = 1000,
                  confidence: float = 0.95, seed: int | None = None) -> dict[str, Path]:
    """Write every table, plot and ``index.html`` into `out_dir`; return {file name: path}.

    `metadata` is shown in the page header as given (suite, dataset, models with checkpoint hashes, versions,
    seed, date, …); nothing is added from the environment, so the output is a function of the inputs. The
    bootstrap uses `seed` (default: ``metadata["seed"]``, else 0). Published rows are added only when the
    protocol is the paper's (same corruptions and severities).
    """
    files, sections = corruption_report(results, class_names, protocol, metadata, reference_model, include_published,
                                        gallery, n_resamples=n_resamples, confidence=confidence, seed=seed)
    title = f"{metadata.get('suite', 'segformer-bench')}: corruption robustness"
    return write_report(out_dir, title, metadata, files, sections)


def missing_note(missing: Sequence[Key], expected: Sequence[Key], limit: int = 8) -> str:
    """'Not computed yet (3 cells): B0: fog 4, fog 5; B1: all 17 cells.' for the cells of `expected` in `missing`."""
    by_model: dict[str, list[str]] = {}
    for m, c, s in missing:
        by_model.setdefault(m, []).append("clean" if (c, s) == CLEAN else f"{c} {s}")
    parts = []
    for m, cells in by_model.items():
        total = sum(1 for k in expected if k[0] == m)
        shown = (f"all {total} cells" if len(cells) == total else
                 ", ".join(cells[:limit]) + (f" and {len(cells) - limit} more" if len(cells) > limit else ""))
        parts.append(f"{m}: {shown}")
    return f"Not computed yet ({len(missing)} cell{'s' * (len(missing) != 1)}): {'; '.join(parts)}."


def _partial(results: Mapping[Key, np.ndarray], expected: Sequence[Key], reference_model: str | None,
             gallery: Gallery | None) -> tuple[dict[Key, np.ndarray], str | None, Gallery | None, list[str]]:
    """What of a partial store (a killed or running run) can be reported, and sentences saying what is left out:
    models without their clean cell, mCD/mrCD without the reference model's, a gallery without its clean image."""
    notes = []
    missing = [k for k in expected if k not in results]
    if missing:
        notes.append(missing_note(missing, expected))
    no_clean = [m for m in model_names(results) if (m, *CLEAN) not in results]
    if no_clean:
        notes.append(f"Left out until their clean cell is stored: {', '.join(no_clean)}.")
        results = {k: v for k, v in results.items() if k[0] not in no_clean}
    if reference_model is not None and reference_model not in model_names(results):
        notes.append(f"mCD and mrCD are left out: the reference model {reference_model} has no results yet.")
        reference_model = None
    if gallery is not None and CLEAN not in gallery.images:
        notes.append("The gallery is not stored yet.")
        gallery = None
    return dict(results), reference_model, gallery, notes


def corruption_report(results: Mapping[Key, np.ndarray], class_names: Sequence[str], protocol: Protocol,
                      metadata: Mapping[str, object], reference_model: str | None = None,
                      include_published: bool = False, gallery: Gallery | None = None, *, n_resamples: int = 1000,
                      confidence: float = 0.95, seed: int | None = None,
                      expected: Sequence[Key] = ()) -> tuple[dict[str, str | bytes], list[Section]]:
    """({file name: content}, page sections) of the corruption analysis; see ``render_report``.

    `expected`: the cells the suite asks for; those not in `results` (a partial store) are named in the captions
    and on the page, and shown as – in the tables along with every number that depends on them."""
    results, reference_model, gallery, notes = _partial(results, expected, reference_model, gallery)
    incomplete = " ".join(notes)
    if not results:
        return {}, [("Corruption robustness", html.escape(incomplete), "")]
    _check_results(results, class_names)
    if seed is None:
        seed = int(str(metadata.get("seed") or 0))
    models = model_names(results)
    mious = cell_mious(results)
    rows = _rows(results, protocol, include_published)
    degr = degradations(results, protocol, reference_model) if reference_model else None
    intervals = bootstrap(results, protocol, reference_model=reference_model, n_resamples=n_resamples,
                          confidence=confidence, seed=seed)
    per_class = per_class_iou(results, protocol)

    note = _protocol_note(protocol)
    main_table, main_values = cityscapes_c_table(rows, protocol)
    main_caption = f"Corruption robustness, mIoU (%), protocol {protocol.name}: each cell averages {note}." + (
        f" Incomplete run. {incomplete}" if incomplete else "")
    group_table, group_names, group_values = groups_table(rows, protocol, intervals, degr)
    level = f"{round(100 * confidence)} %"
    group_caption = (f"Group means, mPC and rPC (%) with {level} bootstrap intervals over images "
                     f"({n_resamples} resamples, seed {seed})"
                     + (f"; mCD and mrCD (%) relative to {reference_model}." if reference_model else "."))
    class_table = per_class_table(per_class, class_names)
    class_caption = "IoU (%) per class: clean, and averaged over corruptions (severities first, as mPC)."

    import pandas as pd

    main_csv = cityscapes_c_frame(rows, protocol, main_values)
    group_csv = pd.DataFrame(index=pd.Index([r.label for r in rows], name="model"))
    group_csv["source"] = ["published" if r.published else "measured" for r in rows]
    for j, name in enumerate(group_names):
        group_csv[name] = group_values[:, j]
        for bound in ("low", "high"):
            group_csv[f"{name}_{bound}"] = [
                100 * getattr(intervals[r.label][name], bound) if not r.published and name in intervals.get(r.label, {})
                else math.nan for r in rows]
    class_csv = pd.DataFrame({f"{m} {kind}": 100 * per_class[m][k] for m in per_class
                              for k, kind in enumerate(("clean", "corrupted"))},
                             index=pd.Index(list(class_names), name="class"))

    files: dict[str, str | bytes] = {**table_files("table", main_table, main_caption, main_csv),
                                     **table_files("groups", group_table, group_caption, group_csv),
                                     **table_files("per_class", class_table, class_caption, class_csv)}
    plots: list[tuple[str, str, Callable[[], bytes]]] = [
        ("severity.png", "mIoU against severity", lambda: severity_png(mious, models, protocol)),
        ("groups.png", "mIoU per corruption group", lambda: groups_png(rows, protocol, intervals)),
    ]
    if gallery is not None:
        plots.append(("gallery.png", "Gallery",
                      lambda: gallery_png(gallery, protocol, models, len(class_names))))
    pngs = {name: make() for name, _, make in plots}
    files |= pngs

    ref_note = (f" CD and rCD are relative to <b>{html.escape(reference_model)}</b> (= 100 %)." if reference_model
                else " Name a reference model to add mCD and mrCD.")
    published_note = ""
    if include_published:
        published_note = (" Rows marked “(published)” are the SegFormer paper's numbers (Cityscapes val, their "
                          "corruption script), aggregated by the same code as the measured rows."
                          if _published_applies(protocol) else
                          f" Published rows are omitted: the paper's table uses the segformer protocol, not "
                          f"{html.escape(protocol.name)}.")
    sections = [
        ("Corruption robustness",
         f"mIoU (%) on the clean images and under each corruption; {html.escape(note)} are averaged per cell. "
         "<b>mPC</b> (mean performance under corruption) is the mean of the corruption columns; <b>rPC</b> = mPC / "
         "clean mIoU, the fraction of clean performance a model keeps. Bold: best measured value per column."
         + published_note + (f" <b>Incomplete run.</b> {html.escape(incomplete)}" if incomplete else ""),
         to_html(main_table)),
        ("Corruption groups",
         f"Each group column averages its corruptions. Brackets: {level} percentile bootstrap interval over images "
         f"({n_resamples} resamples of the image set with replacement, seed {seed}), recomputing mIoU from the "
         "resampled summed confusion matrices. <b>mCD</b>: mean corruption degradation (Kamann &amp; Rother), "
         "D = 1 − mIoU and CD<sub>c</sub> = Σ<sub>s</sub> D<sub>s,c</sub> / Σ<sub>s</sub> D<sup>ref</sup><sub>s,c"
         "</sub>; <b>mrCD</b> does the same for the drop from clean, D<sub>s,c</sub> − D<sub>clean</sub>. Lower is "
         "better; 100 = as fragile as the reference; – where a denominator is 0." + ref_note,
         to_html(group_table)),
        ("mIoU against severity",
         "One panel per corruption, one line per model; the dashed line in the model's colour is its clean mIoU.",
         figure(pngs["severity.png"], "mIoU against severity per corruption")),
        ("Groups", "Clean, group means and mPC per model; error bars are the bootstrap intervals above.",
         figure(pngs["groups.png"], "mIoU per corruption group")),
        ("Per-class IoU", html.escape(class_caption), to_html(class_table)),
    ]
    if gallery is not None:
        caption = f"Image {html.escape(gallery.name)}: " if gallery.name else ""
        sections.append(("Gallery", caption + "each corruption and severity, with every model's prediction below "
                         "the image (" + ("Cityscapes colours" if len(class_names) == 19 else "one colour per class")
                         + "; black = ignored).",
                         figure(pngs["gallery.png"], "gallery of corrupted images and predictions")))
    return files, sections
