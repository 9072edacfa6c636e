"""Reports: what every analysis's report shares — tables in every format (``report.tables``), the HTML page
(``report.page``), the plot style (``report.plots``) — and writing a report directory (here).

An analysis renders its part of a run's report as ``({file name: content}, [page sections])`` from stored
results alone; ``write_report`` writes those files and the page atomically, keeping only the kinds of file a
suite's ``reports`` field asks for. The same inputs give the same files.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..image_io import atomic_path, check_output_dir
from .page import Section, html_page

REPORT_KINDS = ("tables", "plots", "html", "gallery")


def report_kind(name: str) -> str:
    """Which of a suite's `reports` a file belongs to: tables (.md, .tex, .csv and raw data), plots (.png),
    gallery (gallery.png) or html (index.html)."""
    if name == "index.html":
        return "html"
    if name == "gallery.png":
        return "gallery"
    return "plots" if name.endswith(".png") else "tables"


def _write(path: Path, data: str | bytes) -> Path:
    with atomic_path(path) as tmp:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data, encoding="utf-8")
    return path


def write_report(out_dir: str | os.PathLike, title: str, metadata: Mapping[str, object],
                 files: Mapping[str, str | bytes], sections: Sequence[Section],
                 kinds: Sequence[str] = REPORT_KINDS) -> dict[str, Path]:
    """Write those of `files` and ``index.html`` (the metadata, then `sections`) whose kind is in `kinds`,
    atomically, into `out_dir`. The page embeds every plot whether or not the PNG files are written."""
    out_dir = check_output_dir(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pages = {**files, "index.html": html_page(title, metadata, sections)} if "html" in kinds else dict(files)
    return {name: _write(out_dir / name, data) for name, data in pages.items() if report_kind(name) in kinds}

