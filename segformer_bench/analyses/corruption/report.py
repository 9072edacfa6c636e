"""The robustness report: tables (Markdown, LaTeX, CSV), plots (PNG) and one self-contained HTML page.

Everything is a pure function of the results (``results[(model, corruption, severity)]`` → per-image
confusion matrices, as in :mod:`segformer_bench.robustness`), the class names, the protocol and the run's
metadata: the same inputs give the same files, and nothing here reads the clock or the network. Files are
written atomically (:func:`segformer_bench.image_io.atomic_path`), so a report directory never holds half a
file.

* ``table.*``: the SegFormer paper's Cityscapes-C table: one row per model (and, optionally, the paper's
  rows, labelled "(published)"), columns Clean | the protocol's groups and corruptions | mPC | rPC.
* ``groups.*``: clean, group means, mPC, rPC (and mCD / mrCD against a reference model) with percentile
  bootstrap intervals over images, "65.8 [64.9, 66.7]".
* ``per_class.*``: IoU per class, clean and averaged over corruptions.
* ``severity.png`` (mIoU against severity, one panel per corruption), ``groups.png`` (bars per group),
  ``gallery.png`` (one image under every corruption, with each model's prediction), and ``index.html``,
  which embeds all of it (images as data: URIs, inline CSS, no external resources).

Plots use matplotlib's object API (``Figure`` and the Agg canvas), never pyplot, so rendering touches no
global backend state.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ...corruptions.protocols import PROTOCOLS, Protocol
from ...data.labels import colorize
from ...image_io import atomic_path, check_output_dir
from .robustness import (
    CLEAN,
    PUBLISHED,
    Degradation,
    Interval,
    Key,
    Summary,
    bootstrap,
    cell_mious,
    degradations,
    model_names,
    per_class_iou,
    published_summary,
    round_half_even,
    summarize,
)

if TYPE_CHECKING:  # pandas and matplotlib are imported where used, so importing this module stays cheap
    import pandas as pd
    from matplotlib.figure import Figure

# Column headers as the paper abbreviates them; anything else is shown by its name.
SHORT_NAMES: dict[str, str] = {
    "motion_blur": "Motion", "defocus_blur": "Defocus", "glass_blur": "Glass", "gaussian_blur": "Gauss.",
    "zoom_blur": "Zoom", "gaussian_noise": "Gauss.", "impulse_noise": "Impulse", "shot_noise": "Shot",
    "speckle_noise": "Speckle", "brightness": "Bright.", "contrast": "Contrast", "saturate": "Saturate",
    "jpeg_compression": "JPEG", "pixelate": "Pixelate", "elastic_transform": "Elastic", "snow": "Snow",
    "spatter": "Spatter", "fog": "Fog", "frost": "Frost",
}
MISSING = "–"  # shown for NaN: a missing cell, or a ratio to zero


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


@dataclass
class Table:
    """A table before formatting: one label column, string cells, optional spanning headers and bold cells."""

    label: str  # header of the label column
    columns: list[str]
    rows: list[tuple[str, list[str]]]
    top: list[tuple[str, int]] = field(default_factory=list)  # spanning headers over `columns`: (text, span)
    bold: set[tuple[int, int]] = field(default_factory=set)  # (row, column) indices
    rules: set[int] = field(default_factory=set)  # a rule goes before these row indices
    muted: set[int] = field(default_factory=set)  # rows shown de-emphasised (published rows)


@dataclass(frozen=True)
class Row:
    """A model's row in the tables: measured, or one of the paper's (published) rows."""

    label: str
    summary: Summary
    published: bool = False


def _fmt(value: float, digits: int = 1) -> str:
    if value is None or not math.isfinite(value):
        return MISSING
    return f"{round_half_even(value, digits):.{digits}f}"


def _fmt_interval(interval: Interval | None, value: float, digits: int = 1, scale: float = 100.0) -> str:
    if interval is None or not (math.isfinite(interval.low) and math.isfinite(interval.high)):
        return _fmt(scale * value, digits)
    return (f"{_fmt(scale * interval.value, digits)} "
            f"[{_fmt(scale * interval.low, digits)}, {_fmt(scale * interval.high, digits)}]")


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
    table = Table("Model", columns, [(r.label, [_fmt(v, d) for v, d in zip(vals, digits, strict=True)])
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
            row_cells.append(_fmt_interval(None if r.published else intervals.get(r.label, {}).get(name), value))
        cells.append((r.label, row_cells))
    table = Table("Model", columns, cells,
                  bold=_best(values, [1] * len(names), [n in ("mCD", "mrCD") for n in names], rows))
    _mark_published(table, rows)
    return table, names, values


def per_class_table(per_class: Mapping[str, tuple[np.ndarray, np.ndarray]], class_names: Sequence[str]) -> Table:
    models = list(per_class)
    columns = [c for _ in models for c in ("clean", "corrupted")]
    rows = [(name, [_fmt(100 * per_class[m][k][i]) for m in models for k in (0, 1)])
            for i, name in enumerate(class_names)]
    return Table("Class", columns, rows, top=[(m, 2) for m in models])


# --- formats ---------------------------------------------------------------------------------------------


def _flat_headers(table: Table) -> list[str]:
    """One header row: a spanning header is prefixed to the first column under it ("Blur: Motion")."""
    if not table.top:
        return list(table.columns)
    headers, j = [], 0
    for text, span in table.top:
        for k in range(span):
            col = table.columns[j + k]
            headers.append(f"{text}: {col}" if text and k == 0 else col)
        j += span
    return headers


def to_markdown(table: Table, caption: str = "") -> str:
    """GitHub-flavoured Markdown (tabulate's "github" format, which has one header row)."""
    from tabulate import tabulate

    body = tabulate([[label, *cells] for label, cells in table.rows], headers=[table.label, *_flat_headers(table)],
                    tablefmt="github", disable_numparse=True, colalign=("left",) + ("right",) * len(table.columns))
    return (f"{caption}\n\n" if caption else "") + body + "\n"


_TEX_SPECIAL = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
                "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}", "–": "--"}


def _tex(text: str) -> str:
    return "".join(_TEX_SPECIAL.get(ch, ch) for ch in text)


def to_latex(table: Table, caption: str = "") -> str:
    """A booktabs tabular: spanning headers with \\cmidrule, best value per column in bold."""
    n = len(table.columns)
    lines = [f"% {caption}" if caption else "% generated by segformer-bench", r"% needs \usepackage{booktabs}",
             rf"\begin{{tabular}}{{l{'r' * n}}}", r"\toprule"]
    if table.top:
        cells, rules, col = [""], [], 2
        for text, span in table.top:
            if text:
                cells.append(rf"\multicolumn{{{span}}}{{c}}{{{_tex(text)}}}")
                rules.append(rf"\cmidrule(lr){{{col}-{col + span - 1}}}")
            else:
                cells += [""] * span
            col += span
        lines += [" & ".join(cells) + r" \\", " ".join(rules)]
    lines += [" & ".join(_tex(h) for h in [table.label, *table.columns]) + r" \\", r"\midrule"]
    for i, (label, cells) in enumerate(table.rows):
        if i in table.rules:
            lines.append(r"\midrule")
        shown = [rf"\textbf{{{_tex(c)}}}" if (i, j) in table.bold else _tex(c) for j, c in enumerate(cells)]
        lines.append(" & ".join([_tex(label), *shown]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def _html_cell(text: str, bold: bool) -> str:
    """A cell's HTML: an interval "65.8 [64.9, 66.7]" shows its bracket smaller, under bold only the value."""
    value, sep, interval = text.partition(" [")
    value = f"<strong>{html.escape(value)}</strong>" if bold else html.escape(value)
    return value + (f' <span class="ci">[{html.escape(interval)}</span>' if sep else "")


def to_html(table: Table, caption: str = "") -> str:
    """An HTML table with spanning headers (colspan) and bold best values."""
    e = html.escape
    out = ['<div class="scroll"><table>']
    if caption:
        out.append(f"<caption>{e(caption)}</caption>")
    out.append("<thead>")
    if table.top:
        out.append('<tr><th rowspan="2" class="label">' + e(table.label) + "</th>" + "".join(
            f'<th colspan="{span}" class="group">{e(text)}</th>' if text else
            "".join('<th class="nogroup"></th>' for _ in range(span)) for text, span in table.top) + "</tr>")
        out.append("<tr>" + "".join(f"<th>{e(c)}</th>" for c in table.columns) + "</tr>")
    else:
        out.append(f'<tr><th class="label">{e(table.label)}</th>' + "".join(f"<th>{e(c)}</th>" for c in table.columns)
                   + "</tr>")
    out.append("</thead><tbody>")
    for i, (label, cells) in enumerate(table.rows):
        classes = " ".join(c for c in ("rule" if i in table.rules else "", "muted" if i in table.muted else "") if c)
        attr = f' class="{classes}"' if classes else ""
        out.append(f'<tr{attr}><th class="label">{e(label)}</th>' + "".join(
            f"<td>{_html_cell(c, (i, j) in table.bold)}</td>" for j, c in enumerate(cells)) + "</tr>")
    out.append("</tbody></table></div>")
    return "\n".join(out)


def _csv(frame: pd.DataFrame) -> str:
    return frame.to_csv(float_format="%.6g", lineterminator="\n")


def cityscapes_c_frame(rows: Sequence[Row], protocol: Protocol, values: np.ndarray) -> pd.DataFrame:
    """The table's numbers for machines: mIoU in percent, unrounded, columns named by corruption id."""
    import pandas as pd

    frame = pd.DataFrame(values, columns=["clean", *protocol.corruptions, "mPC", "rPC"],
                         index=pd.Index([r.label for r in rows], name="model"))
    frame.insert(0, "source", ["published" if r.published else "measured" for r in rows])
    return frame


# --- plots -----------------------------------------------------------------------------------------------

_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
           "#7f7f7f")


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=fig.dpi, facecolor="white")
    return buffer.getvalue()


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
            color = _COLORS[k % len(_COLORS)]
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
    handles = [Line2D([], [], color=_COLORS[k % len(_COLORS)], marker="o", markersize=4, label=m)
               for k, m in enumerate(models)]
    handles.append(Line2D([], [], color="0.4", linestyle="--", label="clean mIoU (same colour)"))
    fig.legend(handles=handles, loc="outside upper center", ncol=min(len(handles), 5), fontsize=9, frameon=False)
    return _png(fig)


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
        bars = ax.bar(x + offset, np.nan_to_num(heights), width * 0.92, color=_COLORS[k % len(_COLORS)],
                      alpha=0.45 if r.published else 0.9, hatch="//" if r.published else None, edgecolor="white",
                      linewidth=0.5, yerr=yerr, error_kw={"elinewidth": 0.9, "capsize": 2, "ecolor": "0.2"},
                      label=r.label)
        if len(rows) <= 4:  # value labels, above the error bar where there is one
            tops = heights + (yerr[1] if yerr is not None else 0)
            for bar, h, top in zip(bars, heights, tops, strict=True):
                if math.isfinite(h):
                    ax.annotate(_fmt(h), (bar.get_x() + bar.get_width() / 2, top), xytext=(0, 2),
                                textcoords="offset points", ha="center", va="bottom", fontsize=6.5, color="0.25")
    ax.set_xticks(x, labels)
    ax.set_ylabel("mIoU (%)")
    ax.set_ylim(0, 105)
    ax.grid(axis="y", alpha=0.3, linewidth=0.6)
    ax.set_axisbelow(True)
    handles = [Patch(facecolor=_COLORS[k % len(_COLORS)], alpha=0.45 if r.published else 0.9,
                     hatch="//" if r.published else None, edgecolor="white", label=r.label)
               for k, r in enumerate(rows)]
    fig.legend(handles=handles, loc="outside upper center", ncol=min(len(rows), 6), fontsize=9, frameon=False)
    return _png(fig)


def _thumb(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize(size, Image.Resampling.BOX))


def _label_thumb(label: np.ndarray, size: tuple[int, int], num_classes: int) -> np.ndarray:
    from PIL import Image

    small = np.asarray(Image.fromarray(np.asarray(label).astype(np.uint8)).resize(size, Image.Resampling.NEAREST))
    return colorize(small, num_classes)


def _font(size: int, bold: bool = False):  # -> PIL.ImageFont.FreeTypeFont
    """DejaVu Sans from matplotlib's own data (always installed with it), so labels look the same everywhere."""
    import matplotlib
    from PIL import ImageFont

    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / ("DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf")
    return ImageFont.truetype(str(path), size) if path.exists() else ImageFont.load_default(size)


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
    title_font, small_font, bold_font = _font(12), _font(10), _font(12, bold=True)

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

_CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222; margin: 0;
       background: #fafafa; }
main { max-width: 1440px; margin: 0 auto; padding: 24px 28px 48px; background: #fff; }
h1 { font-size: 1.6em; margin: 0 0 0.2em; } h2 { font-size: 1.25em; margin-top: 2em;
     border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
p.note { color: #555; max-width: 70em; }
code { font: 0.88em ui-monospace, SFMono-Regular, Menlo, monospace; background: #f2f2f2; padding: 0 3px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; margin: 0.6em 0; font-size: 0.88em; }
caption { text-align: left; color: #555; padding-bottom: 0.3em; }
th, td { padding: 3px 6px; text-align: right; white-space: nowrap; }
thead th { border-bottom: 1px solid #999; font-weight: 600; }
thead th.group { border-bottom: 1px solid #bbb; text-align: center; }
thead th.nogroup { border-bottom: none; }
th.label { text-align: left; font-weight: 600; }
tbody tr:nth-child(even) { background: #f6f8fa; }
tbody tr.rule { border-top: 1px solid #999; }
tbody tr.muted { color: #666; font-style: italic; }
table.meta th { text-align: left; vertical-align: top; color: #555; font-weight: 600; }
table.meta td { text-align: left; white-space: normal; }
table.meta table { margin: 0; font-size: 1em; } table.meta table th, table.meta table td { padding: 1px 8px 1px 0; }
figure { margin: 1em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
.ci { color: #666; font-size: 0.85em; }
"""

# Marks the page once every image has decoded (a headless browser's test reads it back).
_SCRIPT = """
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var ok = images.filter(function (img) { return img.complete && img.naturalWidth > 0; }).length;
  document.body.dataset.imagesLoaded = ok + "/" + images.length;
});
"""

_META_ORDER = ("suite", "description", "dataset", "protocol", "models", "reference_model", "seed", "date", "git",
               "versions")


def _html_value(value: object) -> str:
    e = html.escape
    if isinstance(value, Mapping):
        if value and all(isinstance(v, Mapping) for v in value.values()):
            keys = list(dict.fromkeys(k for v in value.values() for k in v))
            head = "<tr><th></th>" + "".join(f"<th>{e(str(k))}</th>" for k in keys) + "</tr>"
            body = "".join(f"<tr><th>{e(str(name))}</th>" + "".join(f"<td>{_html_value(v.get(k, ''))}</td>"
                                                                     for k in keys) + "</tr>"
                           for name, v in value.items())
            return f"<table>{head}{body}</table>"
        return "<table>" + "".join(f"<tr><th>{e(str(k))}</th><td>{_html_value(v)}</td></tr>"
                                   for k, v in value.items()) + "</table>"
    if isinstance(value, list | tuple):
        if value and all(isinstance(v, Mapping) for v in value):
            return _html_value({str(i): v for i, v in enumerate(value)})
        return ", ".join(_html_value(v) for v in value)
    text = str(value)
    if len(text) == 64 and all(ch in "0123456789abcdef" for ch in text.lower()):  # a sha256: short form
        return f'<code title="{e(text)}">{e(text[:12])}…</code>'
    return e(text)


def _metadata_html(metadata: Mapping[str, object]) -> str:
    keys = [k for k in _META_ORDER if k in metadata] + [k for k in metadata if k not in _META_ORDER]
    return '<table class="meta">' + "".join(
        f"<tr><th>{html.escape(k.replace('_', ' '))}</th><td>{_html_value(metadata[k])}</td></tr>" for k in keys) + \
        "</table>"


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def html_page(title: str, metadata: Mapping[str, object], sections: Sequence[tuple[str, str, str]]) -> str:
    """The page: a header with the metadata, then (heading, explanation HTML, content HTML) sections."""
    e = html.escape
    body = "\n".join(f'<section>\n<h2>{e(heading)}</h2>\n<p class="note">{note}</p>\n{content}\n</section>'
                     for heading, note, content in sections)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<main>
<h1>{e(title)}</h1>
{_metadata_html(metadata)}
{body}
</main>
<script>{_SCRIPT}</script>
</body>
</html>
"""


def _figure(png: bytes, alt: str) -> str:
    return f'<figure><img src="{_data_uri(png)}" alt="{html.escape(alt)}"></figure>'


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


def _write(path: Path, data: str | bytes) -> Path:
    with atomic_path(path) as tmp:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data, encoding="utf-8")
    return path


Section = tuple[str, str, str]  # (heading, explanation HTML, content HTML) on the page


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


REPORT_KINDS = ("tables", "plots", "html", "gallery")


def report_kind(name: str) -> str:
    """Which of a suite's `reports` a file belongs to: tables (.md, .tex, .csv and raw data), plots (.png),
    gallery (gallery.png) or html (index.html)."""
    if name == "index.html":
        return "html"
    if name == "gallery.png":
        return "gallery"
    return "plots" if name.endswith(".png") else "tables"


def write_report(out_dir: str | os.PathLike, title: str, metadata: Mapping[str, object],
                 files: Mapping[str, str | bytes], sections: Sequence[Section],
                 kinds: Sequence[str] = REPORT_KINDS) -> dict[str, Path]:
    """Write those of `files` and ``index.html`` (the metadata, then `sections`) whose kind is in `kinds`,
    atomically, into `out_dir`. The page embeds every plot whether or not the PNG files are written."""
    out_dir = check_output_dir(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pages = {**files, "index.html": html_page(title, metadata, sections)} if "html" in kinds else dict(files)
    return {name: _write(out_dir / name, data) for name, data in pages.items() if report_kind(name) in kinds}


def corruption_report(results: Mapping[Key, np.ndarray], class_names: Sequence[str], protocol: Protocol,
                      metadata: Mapping[str, object], reference_model: str | None = None,
                      include_published: bool = False, gallery: Gallery | None = None, *, n_resamples: int = 1000,
                      confidence: float = 0.95, seed: int | None = None) -> tuple[dict[str, str | bytes],
                                                                                   list[Section]]:
    """({file name: content}, page sections) of the corruption analysis; see ``render_report``."""
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
    main_caption = f"Corruption robustness, mIoU (%), protocol {protocol.name}: each cell averages {note}."
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

    files: dict[str, str | bytes] = {
        "table.md": to_markdown(main_table, main_caption),
        "table.tex": to_latex(main_table, main_caption),
        "table.csv": _csv(main_csv),
        "groups.md": to_markdown(group_table, group_caption),
        "groups.tex": to_latex(group_table, group_caption),
        "groups.csv": _csv(group_csv),
        "per_class.md": to_markdown(class_table, class_caption),
        "per_class.csv": _csv(class_csv),
    }
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
         + published_note, to_html(main_table)),
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
         _figure(pngs["severity.png"], "mIoU against severity per corruption")),
        ("Groups", "Clean, group means and mPC per model; error bars are the bootstrap intervals above.",
         _figure(pngs["groups.png"], "mIoU per corruption group")),
        ("Per-class IoU", html.escape(class_caption), to_html(class_table)),
    ]
    if gallery is not None:
        caption = f"Image {html.escape(gallery.name)}: " if gallery.name else ""
        sections.append(("Gallery", caption + "each corruption and severity, with every model's prediction below "
                         "the image (" + ("Cityscapes colours" if len(class_names) == 19 else "one colour per class")
                         + "; black = ignored).",
                         _figure(pngs["gallery.png"], "gallery of corrupted images and predictions")))
    return files, sections
