"""One Table type in every format: spanning headers, bold, rules, muted rows and escaping, checked by hand; a
new format is one function in FORMATS."""

from __future__ import annotations

import math

import pandas as pd

from segformer_bench.report import tables
from segformer_bench.report.page import html_page
from segformer_bench.report.tables import (
    MISSING,
    Table,
    fmt,
    fmt_interval,
    table_files,
    to_csv,
    to_html,
    to_latex,
    to_markdown,
)


def _table() -> Table:
    return Table("Model", ["Motion", "Gauss.", "mPC"],
                 [("B0", ["1.0", "2.5", "3.25"]), ("B1 <i> & co (published)", ["–", "4.0", "5_0"])],
                 top=[("Blur", 2), ("", 1)], bold={(0, 2)}, rules={1}, muted={1})


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_markdown_has_one_header_row_with_the_spanning_header_prefixed():
    lines = to_markdown(_table(), "Caption.").splitlines()
    assert lines[0] == "Caption." and lines[1] == ""
    assert _cells(lines[2]) == ["Model", "Blur: Motion", "Gauss.", "mPC"]
    assert set(lines[3]) <= set("|-: ")
    assert _cells(lines[4]) == ["B0", "1.0", "2.5", "3.25"]
    assert _cells(lines[5])[1:] == ["–", "4.0", "5_0"]


def test_latex_is_booktabs_with_spans_bold_rules_and_escapes():
    tex = to_latex(_table(), "Caption.")
    lines = tex.splitlines()
    assert lines[0] == "% Caption." and r"\begin{tabular}{lrrr}" in lines and lines[-1] == r"\end{tabular}"
    assert r" & \multicolumn{2}{c}{Blur} &  \\" in lines and r"\cmidrule(lr){2-3}" in lines
    assert r"B0 & 1.0 & 2.5 & \textbf{3.25} \\" in lines
    b1 = lines.index(r"B1 \textless{}i\textgreater{} \& co (published) & -- & 4.0 & 5\_0 \\")
    assert lines[b1 - 1] == r"\midrule"  # the rule before row 1


def test_html_has_colspans_bold_classes_and_escapes_names():
    page = to_html(_table(), "Caption.")
    assert '<th colspan="2" class="group">Blur</th>' in page and "<caption>Caption.</caption>" in page
    assert "<td><strong>3.25</strong></td>" in page
    assert '<tr class="rule muted"><th class="label">B1 &lt;i&gt; &amp; co (published)</th>' in page


def test_an_interval_cell_shows_its_bracket_smaller_in_html():
    t = Table("Model", ["mPC"], [("B0", ["65.8 [64.9, 66.7]"])], bold={(0, 0)})
    assert '<td><strong>65.8</strong> <span class="ci">[64.9, 66.7]</span></td>' in to_html(t)


def test_numbers_round_half_to_even_as_the_paper_prints_them():
    assert fmt(39.425000000000004, 2) == "39.42" and fmt(65.8125, 2) == "65.81" and fmt(0.135, 2) == "0.14"
    assert fmt(math.nan) == MISSING and fmt(math.inf) == MISSING

    class Interval:
        value, low, high = 0.658, 0.649, 0.667

    assert fmt_interval(Interval(), 0.658) == "65.8 [64.9, 66.7]"
    assert fmt_interval(None, 0.658) == "65.8"


def test_table_files_write_every_format_and_adding_one_is_one_function(monkeypatch):
    frame = pd.DataFrame({"mPC": [3.25]}, index=pd.Index(["B0"], name="model"))
    files = table_files("t", _table(), "Caption.", frame)
    assert files == {"t.md": to_markdown(_table(), "Caption."), "t.tex": to_latex(_table(), "Caption."),
                     "t.csv": "model,mPC\nB0,3.25\n"}
    assert to_csv(frame) == "model,mPC\nB0,3.25\n"
    monkeypatch.setitem(tables.FORMATS, ".txt", lambda table, caption: f"{caption} {len(table.rows)} rows\n")
    assert table_files("t", _table(), "Caption.")["t.txt"] == "Caption. 2 rows\n"


def test_the_page_escapes_its_title_metadata_and_headings():
    page = html_page("<run>", {"suite": "a<b", "models": {"M&M": {"sha256": "ab" * 32}}},
                     [("<Heading>", "note", "<p>content</p>")])
    assert "<title>&lt;run&gt;</title>" in page and "a&lt;b" in page and "M&amp;M" in page
    assert "<h2>&lt;Heading&gt;</h2>" in page and "<p>content</p>" in page  # content is HTML the analysis made
    assert f'title="{"ab" * 32}">{"ab" * 6}…</code>' in page  # a sha256 in short form
