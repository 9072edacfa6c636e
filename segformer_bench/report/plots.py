"""Plot style in one place: the model colours, the PNG encoding and the font used in every figure; and the
calibration plots every analysis shares (reliability diagrams, ECE against a shift's strength).

Plots use matplotlib's object API (``Figure`` and the Agg canvas), never pyplot, so rendering touches no
global backend state; a figure becomes PNG bytes with ``png``.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # matplotlib is imported where used, so importing this module stays cheap
    from matplotlib.figure import Figure

# One colour per model, in the order the models appear (matplotlib's tab10, red second).
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
          "#7f7f7f")


def png(fig: Figure) -> bytes:
    """The figure as PNG bytes at its own dpi, on white."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=fig.dpi, facecolor="white")
    return buffer.getvalue()


def font(size: int, bold: bool = False):  # -> PIL.ImageFont.FreeTypeFont
    """DejaVu Sans from matplotlib's own data (always installed with it), so labels look the same everywhere."""
    import matplotlib
    from PIL import ImageFont

    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / ("DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf")
    return ImageFont.truetype(str(path), size) if path.exists() else ImageFont.load_default(size)



# --- calibration -----------------------------------------------------------------------------------------------

def plain(text: str) -> str:
    """`text` shown as it is: a model named "$x$" must not become mathtext (nor fail to parse as it)."""
    return text.replace("$", r"\$")


def reliability_curve(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean confidence, accuracy, share of the pixels) per confidence bin of calibration counts (…, 3·bins + 3)
    (``calibration.calibration_counts``) summed over the leading axes; NaN for an empty bin."""
    c = np.asarray(counts, np.float64)
    total = c.reshape(-1, c.shape[-1]).sum(axis=0)
    bins = (total.shape[0] - 3) // 3
    if bins < 1 or total.shape[0] != 3 * bins + 3:
        raise ValueError(f"not calibration counts: last axis of {total.shape[0]} values")
    n, conf, correct = total[:3 * bins].reshape(bins, 3).T
    with np.errstate(invalid="ignore", divide="ignore"):
        empty = n == 0
        confidence = np.where(empty, np.nan, conf / np.where(empty, 1, n))
        accuracy = np.where(empty, np.nan, correct / np.where(empty, 1, n))
        share = n / n.sum() if n.sum() > 0 else np.full(bins, np.nan)
    return confidence, accuracy, share


def reliability_diagrams(panels: Mapping[str, Mapping[str, np.ndarray]], title: str | None = None) -> bytes:
    """One reliability diagram per panel (e.g. per model): for each label's summed counts, accuracy against mean
    confidence per bin (the diagonal is perfect calibration), the label's ECE in the legend, and below it the
    share of the pixels in each bin."""
    from matplotlib.figure import Figure

    from ..calibration import ece

    fig = Figure(figsize=(3.6 * len(panels) + 0.4, 4.4), dpi=100, layout="constrained")
    if title:
        fig.suptitle(plain(title), fontsize=11)
    axes = fig.subplots(2, len(panels), squeeze=False, sharex=True, height_ratios=(3, 1))
    for j, (panel, curves) in enumerate(panels.items()):
        top, bottom = axes[0, j], axes[1, j]
        top.plot([0, 1], [0, 1], color="#999999", linestyle="--", linewidth=1.0)
        for k, (label, counts) in enumerate(curves.items()):
            confidence, accuracy, share = reliability_curve(counts)
            bins = len(share)
            color = COLORS[k % len(COLORS)]
            shown = np.isfinite(confidence)
            top.plot(confidence[shown], accuracy[shown], marker="o", markersize=3.5, linewidth=1.5, color=color,
                     label=plain(f"{label} (ECE {100 * ece(counts):.1f} %)"))
            bottom.step((np.arange(bins) + 0.5) / bins, 100 * np.nan_to_num(share), where="mid", color=color,
                        linewidth=1.2)
        top.set_xlim(0, 1)
        top.set_ylim(0, 1)
        top.set_title(plain(panel), fontsize=10)
        top.grid(alpha=0.3, linewidth=0.6)
        top.legend(fontsize=7, frameon=False, loc="upper left")
        bottom.set_xlabel("confidence", fontsize=9)
        bottom.grid(alpha=0.3, linewidth=0.6)
        bottom.tick_params(labelsize=8)
        top.tick_params(labelsize=8)
        if j == 0:
            top.set_ylabel("accuracy", fontsize=9)
            bottom.set_ylabel("pixels (%)", fontsize=9)
    return png(fig)


def reliability_diagram(curves: Mapping[str, np.ndarray], title: str) -> bytes:
    """A reliability diagram of each label's counts (e.g. clean against each corruption group) in one panel."""
    return reliability_diagrams({title: curves})


def ece_vs_severity(panels: Mapping[str, Mapping[str, Sequence[tuple[float, float]]]],
                    xlabel: str = "severity (0 = clean)") -> bytes:
    """ECE (%) against a shift's strength: one panel per key of `panels` (e.g. per model), one line per label of
    its (strength, ECE in [0, 1]) points, the same label the same colour in every panel."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    labels = list(dict.fromkeys(label for lines in panels.values() for label in lines))
    fig = Figure(figsize=(3.4 * len(panels) + 0.6, 3.4), dpi=100, layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False, sharey=True)[0]
    for ax, (panel, lines) in zip(axes, panels.items(), strict=True):
        for label, points in lines.items():
            points = sorted(p for p in points if np.isfinite(p[1]))
            if points:
                x, y = zip(*points, strict=True)
                ax.plot(x, [100 * v for v in y], marker="o", markersize=3.5, linewidth=1.5, label=plain(label),
                        color=COLORS[labels.index(label) % len(COLORS)])
        ax.set_title(plain(panel), fontsize=10)
        ax.set_xlabel(xlabel, fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # severities and budgets are whole numbers
        ax.grid(alpha=0.3, linewidth=0.6)
        ax.tick_params(labelsize=8)
    axes[0].set_ylabel("ECE (%)", fontsize=9)
    handles: dict[str, object] = {}  # every label drawn in any panel (a partial store may leave a panel empty)
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    if handles:
        axes[-1].legend(list(handles.values()), list(handles), fontsize=7, frameon=False)
    return png(fig)
