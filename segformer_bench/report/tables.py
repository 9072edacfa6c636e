"""Tables: one ``Table`` type and every format it is written in, from one place.

A report builds a ``Table`` (a label column, string cells, spanning headers, bold cells, rules, muted rows) and
renders it with the functions of ``FORMATS`` (Markdown, LaTeX) and ``to_html`` (the page). Machine-readable
numbers go to CSV from a pandas frame of unrounded values (``to_csv``), since a CSV is for computing, not
reading. ``table_files`` writes a table in every format at once: adding a format is one function and one
entry in ``FORMATS``.

Every format escapes what it must in names (model, class and column names come from suites and datasets):
Markdown turns ``|``, ``\\``, ``$`` and emphasis marks into backslash escapes and ``<``, ``>``, ``&`` into
entities, so no name splits a cell or becomes markup (``_md``); LaTeX escapes its specials (``_tex``); HTML
escapes with ``html.escape``. Line breaks in a name become spaces in Markdown and LaTeX, where a newline
would end a row or a comment.

Numbers are shown by ``fmt`` (rounded half to even, as the SegFormer paper prints them) and ``fmt_interval``
("65.8 [64.9, 66.7]"); a missing value is ``MISSING``.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # pandas is imported where used, so importing this module stays cheap
    import pandas as pd

MISSING = "–"  # shown for NaN: a missing value, or a ratio to zero


class _IntervalLike(Protocol):
    value: float
    low: float
    high: float


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



def round_half_even(value: float, digits: int) -> float:
    """`value` rounded to `digits` decimals, ties to even, after removing binary noise (12 significant digits).

    This is how the paper's numbers round: DeepLabv3+'s mPC is 630.8 / 16 = 39.425, printed 39.42; plain
    ``round`` or ``%.2f`` would see 39.425000000000004 (from 0.39425 × 100) and print 39.43.
    """
    if not math.isfinite(value):
        return value
    return float(Decimal(f"{value:.12g}").quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_EVEN))



def fmt(value: float, digits: int = 1) -> str:
    if value is None or not math.isfinite(value):
        return MISSING
    return f"{round_half_even(value, digits):.{digits}f}"


def fmt_interval(interval: _IntervalLike | None, value: float, digits: int = 1, scale: float = 100.0) -> str:
    if interval is None or not (math.isfinite(interval.low) and math.isfinite(interval.high)):
        return fmt(scale * value, digits)
    return (f"{fmt(scale * interval.value, digits)} "
            f"[{fmt(scale * interval.low, digits)}, {fmt(scale * interval.high, digits)}]")



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


_MD_SPECIAL = {"\\": "\\\\", "|": "\\|", "$": "\\$", "*": "\\*", "`": "\\`", "~": "\\~",
               "<": "&lt;", ">": "&gt;", "&": "&amp;"}


def _md(text: str) -> str:
    """`text` as literal Markdown inside a table cell: a pipe cannot split the cell (``\\|``, GFM's escape,
    which a backslash of the name cannot undo since backslashes are doubled), a line break cannot end the row,
    ``<`` cannot open HTML, ``&`` cannot start an entity, ``$`` cannot start math (GitHub), ``*``, ``~`` and
    backticks cannot emphasise, strike or quote, nor ``](`` make a link. An underscore is escaped only where it
    could emphasise, so ``gaussian_noise`` stays as it is; brackets stay, for intervals "65.8 [64.9, 66.7]"."""
    out = []
    for i, ch in enumerate(text):
        if ch == "_":
            inside_word = 0 < i < len(text) - 1 and text[i - 1].isalnum() and text[i + 1].isalnum()
            out.append("_" if inside_word else "\\_")
        elif ch == "(" and i > 0 and text[i - 1] == "]":
            out.append("\\(")
        else:
            out.append(_MD_SPECIAL.get(ch, " " if ch < " " or ch == "\x7f" else ch))
    return "".join(out)


def to_markdown(table: Table, caption: str = "") -> str:
    """GitHub-flavoured Markdown (tabulate's "github" format, which has one header row), every text escaped."""
    from tabulate import tabulate

    body = tabulate([[_md(label), *map(_md, cells)] for label, cells in table.rows],
                    headers=[_md(h) for h in [table.label, *_flat_headers(table)]], tablefmt="github",
                    disable_numparse=True, colalign=("left",) + ("right",) * len(table.columns))
    return (f"{_md(caption)}\n\n" if caption else "") + body + "\n"


_TEX_SPECIAL = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
                "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}", "–": "--",
                # the default (OT1) font encoding prints these three as ¡, ¿ and an em dash; ` is a quote mark
                "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}", "`": r"\textasciigrave{}"}


def _tex(text: str) -> str:
    """`text` as literal LaTeX; control characters (a newline: a blank line ends the tabular) become spaces."""
    return "".join(_TEX_SPECIAL.get(ch, " " if ch < " " or ch == "\x7f" else ch) for ch in text)


def _tex_first(text: str) -> str:
    """The first cell of a line: after ``\\\\`` or ``\\midrule`` a leading ``[`` or ``*`` would be read as their
    optional argument, so such a cell starts with ``{}``."""
    tex = _tex(text)
    return "{}" + tex if tex[:1] in ("[", "*") else tex


def _tex_comment(text: str) -> str:
    """`text` inside a ``%`` comment, which ends at a line break: whatever follows one would be LaTeX code."""
    return "".join(" " if ch < " " or ch == "\x7f" else ch for ch in text)


def to_latex(table: Table, caption: str = "") -> str:
    """A booktabs tabular: spanning headers with \\cmidrule, best value per column in bold."""
    n = len(table.columns)
    lines = [f"% {_tex_comment(caption)}" if caption else "% generated by segformer-bench",
             r"% needs \usepackage{booktabs}", rf"\begin{{tabular}}{{l{'r' * n}}}", r"\toprule"]
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
    lines += [" & ".join([_tex_first(table.label), *map(_tex, table.columns)]) + r" \\", r"\midrule"]
    for i, (label, cells) in enumerate(table.rows):
        if i in table.rules:
            lines.append(r"\midrule")
        shown = [rf"\textbf{{{_tex(c)}}}" if (i, j) in table.bold else _tex(c) for j, c in enumerate(cells)]
        lines.append(" & ".join([_tex_first(label), *shown]) + r" \\")
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


def to_csv(frame: pd.DataFrame) -> str:
    """A frame of unrounded numbers as CSV (six significant digits, Unix line ends)."""
    return frame.to_csv(float_format="%.6g", lineterminator="\n")



# A table's file formats: file suffix → renderer. The page renders tables with ``to_html``.
FORMATS: dict[str, Callable[[Table, str], str]] = {".md": to_markdown, ".tex": to_latex}


def table_files(stem: str, table: Table, caption: str, frame: pd.DataFrame | None = None) -> dict[str, str]:
    """{file name: text}: `table` as ``<stem>.md``, ``<stem>.tex`` (every format of ``FORMATS``), and its
    numbers as ``<stem>.csv`` when a `frame` is given."""
    files = {stem + suffix: render(table, caption) for suffix, render in FORMATS.items()}
    if frame is not None:
        files[stem + ".csv"] = to_csv(frame)
    return files
