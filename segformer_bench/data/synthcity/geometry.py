"""Vector geometry: polygons (with holes), ellipses and thick polylines, and which pixel centres each covers.

Coordinates are scene coordinates: x in [0, 1] across, y in [0, 1] down. Lengths that must be the same across
and along (line widths) are in image heights; one unit of x is ASPECT image heights.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .constants import ASPECT


@dataclass(frozen=True, eq=False)
class Polygon:
    """Closed rings of (x, y) vertices filled by the even-odd rule, so a ring inside another is a hole."""

    rings: tuple[np.ndarray, ...]  # each (N, 2)

    @cached_property
    def _edges(self) -> tuple[np.ndarray, ...]:
        """Non-horizontal edges as (y_low, y_high, x at y_low, dx/dy)."""
        a = self.rings[0] if len(self.rings) == 1 else np.concatenate(self.rings)
        b = np.concatenate([np.concatenate((r[1:], r[:1])) for r in self.rings])
        keep = a[:, 1] != b[:, 1]
        a, b = a[keep], b[keep]
        up = a[:, 1] < b[:, 1]
        low, high = np.where(up[:, None], a, b), np.where(up[:, None], b, a)
        return low[:, 1], high[:, 1], low[:, 0], (high[:, 0] - low[:, 0]) / (high[:, 1] - low[:, 1])

    def bounds(self) -> tuple[float, float, float, float]:
        points = self.rings[0] if len(self.rings) == 1 else np.concatenate(self.rings)
        (x0, y0), (x1, y1) = points.min(axis=0), points.max(axis=0)
        return x0, y0, x1, y1

    def mask(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Which of the pixel centres xs × ys (ascending) lie inside: a scanline fill.

        Every edge crosses the rows whose centre y lies in [y_low, y_high) (half-open, so a shared vertex counts
        once and each row is crossed an even number of times). Sorted along the row, crossings pair up into
        spans of inside pixel centres: those right of an odd crossing and not right of the next one.
        """
        y_low, y_high, x_low, slope = self._edges
        first = np.searchsorted(ys, y_low)
        counts = np.searchsorted(ys, y_high) - first
        edge = np.repeat(np.arange(len(counts)), counts)
        row = np.arange(edge.size) - np.repeat(np.cumsum(counts) - counts - first, counts)
        col = np.searchsorted(xs, x_low[edge] + (ys[row] - y_low[edge]) * slope[edge], side="right")
        h, w = len(ys), len(xs)
        if col.size == 0:
            return np.zeros((h, w), bool)
        order = np.lexsort((col, row))
        row, col = row[order], col[order]
        per_row = np.bincount(row, minlength=h)
        spans = np.full((h, per_row.max()), w, np.intp)  # rows with fewer crossings get empty spans (w, w)
        spans[row, np.arange(row.size) - np.repeat(np.cumsum(per_row) - per_row, per_row)] = col
        cols = np.arange(w)
        inside = (cols >= spans[:, :1]) & (cols < spans[:, 1:2])
        for j in range(2, spans.shape[1], 2):
            inside |= (cols >= spans[:, j:j + 1]) & (cols < spans[:, j + 1:j + 2])
        return inside


@dataclass(frozen=True, eq=False)
class Ellipse:
    """An axis-aligned ellipse; radii in scene units (rx across, ry down)."""

    center: tuple[float, float]
    radii: tuple[float, float]

    def bounds(self) -> tuple[float, float, float, float]:
        (x, y), (rx, ry) = self.center, self.radii
        return x - rx, y - ry, x + rx, y + ry

    def mask(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        (x, y), (rx, ry) = self.center, self.radii
        return ((ys - y) / ry)[:, None] ** 2 + ((xs - x) / rx)[None, :] ** 2 < 1.0


@dataclass(frozen=True, eq=False)
class Polyline:
    """A thick polyline with round caps: every pixel centre closer than width / 2 to a segment."""

    points: np.ndarray  # (N, 2)
    width: float  # image heights

    def bounds(self) -> tuple[float, float, float, float]:
        r = self.width / 2
        return (self.points[:, 0].min() - r / ASPECT, self.points[:, 1].min() - r,
                self.points[:, 0].max() + r / ASPECT, self.points[:, 1].max() + r)

    def mask(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        X, Y = xs[None, :] * ASPECT, ys[:, None]  # isotropic: distances in image heights
        inside = np.zeros((len(ys), len(xs)), bool)
        p = self.points * (ASPECT, 1.0)
        for (ax, ay), (bx, by) in zip(p[:-1], p[1:], strict=True):
            dx, dy = bx - ax, by - ay
            t = np.clip(((X - ax) * dx + (Y - ay) * dy) / max(dx * dx + dy * dy, 1e-12), 0.0, 1.0)
            inside |= (X - ax - t * dx) ** 2 + (Y - ay - t * dy) ** 2 < (self.width / 2) ** 2
        return inside


Geometry = Polygon | Ellipse | Polyline
