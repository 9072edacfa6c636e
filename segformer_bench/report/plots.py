"""Plot style in one place: the model colours, the PNG encoding and the font used in every figure.

Plots use matplotlib's object API (``Figure`` and the Agg canvas), never pyplot, so rendering touches no
global backend state; a figure becomes PNG bytes with ``png``.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

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

