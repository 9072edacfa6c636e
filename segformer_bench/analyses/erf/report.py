"""The effective-receptive-field report: a pure function of the stored ERF blocks.

Blocks (sums of contribution maps over a few images, per tap) are added up per model into mean maps, which are
written raw to ``erf_maps.npz`` (``<model>/<tap>`` float64 (H, W), plus ``<model>/images`` and per-tap
counts), normalised both ways of :mod:`segformer_bench.erf` and drawn as the paper's Figure 3 grid: one row
per model, one column per tap (stages 1–4, then the head's fused feature and its logits), on one colour scale
(0–1, the normalised contribution) with one colour bar — ``erf.png`` with log10(A+1)/max as in RepLKNet's and
the paper's figures, ``erf_power.png`` with (A/max)^0.25. ``erf_area.md`` / ``.tex`` / ``.csv``: the
high-contribution area ratio r(t) for t = 20, 30, 50, 99 % under both normalisations ("not reached" when no
centred square holds t of the total).
"""

from __future__ import annotations

import html
import io
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ...report import plots
from ...report.page import Section, figure
from ...report.tables import Table, table_files, to_html
from .maps import TAPS, THRESHOLDS, ERFAccumulator, area_ratios, normalise_log, normalise_power

NORMALISATIONS: dict[str, tuple[str, Callable[[np.ndarray], np.ndarray]]] = {
    "log": ("log10(A+1)/max", normalise_log),
    "power": ("(A/max)^0.25", normalise_power),
}
TAP_TITLES = {"stage1": "Stage 1", "stage2": "Stage 2", "stage3": "Stage 3", "stage4": "Stage 4",
              "fused": "Head (fused)", "logits": "Head (logits)"}
NOT_REACHED = "not reached"


def ordered_taps(names: Iterable[str]) -> list[str]:
    """The distinct tap names, those of TAPS first in its order, then others (a foreign model's) as first seen."""
    seen = list(dict.fromkeys(names))
    return [t for t in TAPS if t in seen] + [t for t in seen if t not in TAPS]


@dataclass(frozen=True)
class ModelERF:
    """One model's mean contribution map per tap over its images."""

    maps: dict[str, np.ndarray]
    counts: dict[str, int]  # images averaged per tap
    skipped: dict[str, int]  # images skipped per tap (non-finite gradient)
    images: tuple[str, ...]


def merge_blocks(blocks: Mapping[tuple[str, int], Mapping]) -> dict[str, ModelERF]:
    """Stored blocks {(model, block): {names, sums, counts, skipped}} → per model, the mean maps (in block order)."""
    out: dict[str, ModelERF] = {}
    models = list(dict.fromkeys(m for m, _ in blocks))
    for model in models:
        keys = sorted(b for m, b in blocks if m == model)
        taps = ordered_taps(t for b in keys for t in blocks[(model, b)]["counts"])
        acc = ERFAccumulator(taps)
        names: list[str] = []
        for b in keys:
            block = blocks[(model, b)]
            acc.merge(block["sums"], block["counts"], block["skipped"])
            names += block["names"]
        out[model] = ModelERF(acc.means(), dict(acc.count), dict(acc.skipped), tuple(names))
    return out


def maps_npz(erfs: Mapping[str, ModelERF]) -> bytes:
    arrays: dict[str, np.ndarray] = {}
    for model, e in erfs.items():
        for tap, a in e.maps.items():
            arrays[f"{model}/{tap}"] = a
            arrays[f"{model}/{tap}/count"] = np.array(e.counts[tap])
        arrays[f"{model}/images"] = np.array(e.images, dtype=np.str_)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def _ratio_text(r: float | None) -> str:
    return NOT_REACHED if r is None else f"{100 * r:.2f}"


def area_ratio_rows(erfs: Mapping[str, ModelERF],
                    thresholds: Sequence[float] = THRESHOLDS) -> list[tuple[str, str, str, float, float | None]]:
    """(model, tap, normalisation, threshold, ratio or None) for every combination."""
    rows = []
    for model, e in erfs.items():
        for tap, a in e.maps.items():
            for norm, (_, f) in NORMALISATIONS.items():
                for t, r in area_ratios(f(a), thresholds).items():
                    rows.append((model, tap, norm, t, r))
    return rows


def area_table(erfs: Mapping[str, ModelERF], thresholds: Sequence[float] = THRESHOLDS) -> Table:
    """Rows (model, tap); columns r(t) in % of the input's area for each t, under each normalisation."""
    ratios = {(m, tap, n, t): r for m, tap, n, t, r in area_ratio_rows(erfs, thresholds)}
    columns = [f"t = {round(100 * t)} %" for _ in NORMALISATIONS for t in thresholds]
    rows, rules = [], set()
    for model, e in erfs.items():
        if rows:
            rules.add(len(rows))
        for tap in e.maps:
            rows.append((f"{model} · {TAP_TITLES.get(tap, tap)}",
                         [_ratio_text(ratios[(model, tap, n, t)]) for n in NORMALISATIONS for t in thresholds]))
    return Table("Model · feature", columns, rows, top=[(title, len(thresholds)) for title, _ in
                                                        NORMALISATIONS.values()], rules=rules)


def area_frame(erfs: Mapping[str, ModelERF], thresholds: Sequence[float] = THRESHOLDS):  # -> pd.DataFrame
    import pandas as pd

    records = [{"model": m, "tap": tap, "normalisation": n, "threshold": t,
                "area_ratio": math.nan if r is None else r, "reached": r is not None, "images": erfs[m].counts[tap]}
               for m, tap, n, t, r in area_ratio_rows(erfs, thresholds)]
    return pd.DataFrame.from_records(records).set_index(["model", "tap", "normalisation", "threshold"])


def erf_grid_png(erfs: Mapping[str, ModelERF], normalisation: str = "log") -> bytes:
    """The paper's Figure 3: rows models, columns taps, one shared colour scale and colour bar."""
    from matplotlib.figure import Figure

    title, f = NORMALISATIONS[normalisation]
    taps = ordered_taps(t for e in erfs.values() for t in e.maps)
    models = list(erfs)
    fig = Figure(figsize=(1.9 * len(taps) + 1.6, 1.9 * len(models) + 0.6), dpi=100, layout="constrained")
    axes = fig.subplots(len(models), len(taps), squeeze=False)
    image = None
    for i, model in enumerate(models):
        for j, tap in enumerate(taps):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if tap in erfs[model].maps:
                image = ax.imshow(f(erfs[model].maps[tap]), cmap="RdYlGn", vmin=0.0, vmax=1.0,
                                  interpolation="nearest")
            else:
                ax.set_facecolor("0.9")
            if i == 0:
                ax.set_title(TAP_TITLES.get(tap, tap), fontsize=10)
            if j == 0:
                ax.set_ylabel(plots.plain(model), fontsize=9)
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.85, label=f"contribution, {title}")
    return plots.png(fig)


def missing_note(erfs: Mapping[str, ModelERF], models: Sequence[str], images: int | None) -> str:
    """What a partial store lacks: models without blocks, and models with fewer images than another model (or than
    the section asks for, which a dataset with fewer images also explains)."""
    counts = {m: len(erfs[m].images) for m in models if m in erfs}
    notes = [f"Not computed yet: {', '.join(m for m in models if m not in erfs)}."] if len(counts) < len(models) else []
    most = max(counts.values(), default=0)
    behind = [f"{m} ({n} of the {most} images of {next(o for o, k in counts.items() if k == most)})"
              for m, n in counts.items() if n < most]
    if behind:
        notes.append(f"Not finished yet, averaged over fewer images: {', '.join(behind)}.")
    if notes:
        return "Incomplete run. " + " ".join(notes)
    if images is not None and counts and most < images:
        return (f"Every model has {most} images of the {images} the section asks for: the dataset has fewer, or the "
                "run has not finished.")
    return ""


def erf_report(blocks: Mapping[tuple[str, int], Mapping], size: tuple[int, int] | None = None,
               models: Sequence[str] = (), images: int | None = None,
               ) -> tuple[dict[str, str | bytes], list[Section]]:
    """({file name: content}, [(heading, note HTML, content HTML)]) of the ERF analysis.

    `models` and `images`: what the suite asks for; a partial store's shortfall (models without blocks, models
    with fewer images) is named in the caption and on the page."""
    if not blocks:
        raise ValueError("no ERF results to report")
    erfs = merge_blocks(blocks)
    incomplete = missing_note(erfs, list(models) or list(erfs), images)
    table = area_table(erfs)
    counts = ", ".join(f"{m}: {max(e.counts.values(), default=0)} images"
                       + (f" ({sum(e.skipped.values())} maps skipped as non-finite)" if any(e.skipped.values()) else "")
                       for m, e in erfs.items())
    input_note = f" at {size[0]}×{size[1]}" if size else ""
    caption = ("High-contribution area ratio r(t), % of the input area: the smallest centred square holding t of "
               f"the normalised ERF's total ({counts}{input_note}).") + (f" {incomplete}" if incomplete
                                                                         else "")
    pngs = {"erf.png": erf_grid_png(erfs, "log"), "erf_power.png": erf_grid_png(erfs, "power")}
    files: dict[str, str | bytes] = {**table_files("erf_area", table, caption, area_frame(erfs)),
                                     "erf_maps.npz": maps_npz(erfs), **pngs}
    recipe = ("ERF by the RepLKNet recipe: for each image, the gradient of Σ<sub>k</sub> ReLU(F<sub>k</sub> at the "
              "feature map's centre) with respect to the input, positive part summed over RGB, averaged over "
              f"images ({html.escape(counts)}{html.escape(input_note)}). Stages: the encoder's four outputs (SegFormer "
              "after each stage norm, DeepLabV3+ ResNet layer1–4); head: the decoder feature before the classifier, "
              "and the logits. Raw mean maps: erf_maps.npz."
              + (f" <b>{html.escape(incomplete)}</b>" if incomplete else ""))
    sections = [
        ("Effective receptive field", recipe + " Colour: log10(A+1)/max, one scale for every panel.",
         figure(pngs["erf.png"], "effective receptive fields, log normalisation")),
        ("Effective receptive field, scale-free",
         "The same maps as (A/max)^0.25, which does not depend on the gradient's overall scale.",
         figure(pngs["erf_power.png"], "effective receptive fields, power normalisation")),
        ("ERF area ratios", html.escape(caption) + f" “{NOT_REACHED}”: no centred square inside the map holds that "
         "share.", to_html(table)),
    ]
    return files, sections
