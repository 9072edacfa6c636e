"""Hostile names (model, class and column names come from suites and datasets) in every table format: read back
by an independent parser, each name is the text it was, and none becomes markup, a cell split or a new row."""

from __future__ import annotations

from html.parser import HTMLParser

from segformer_bench.report.tables import Table, to_html, to_latex, to_markdown

NAMES = ["A|B", "<script>alert(1)</script>", "R&D &lt;x&gt;", "back\\slash \\| pipe", "$x^2$ and 50%", "snake_case",
         "two\nlines", "[opt] {b}", "*star* #1 ~", "_a_ __init__ `code` ~~gone~~", "[link](http://x) ![i](y.png)"]


def _table() -> Table:
    """Hostile names as the label column's header, a column label, every row label and a cell."""
    return Table(NAMES[0], [NAMES[1], "mIoU"], [(name, [name, "1.0"]) for name in NAMES])


class _Cells(HTMLParser):
    """The text of every th/td, row by row, and every tag seen."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[list[str]] = []
        self.tags: set[str] = set()
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        if tag == "tr":
            self.rows.append([])
        elif tag in ("th", "td"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("th", "td") and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _parsed(html: str) -> _Cells:
    cells = _Cells()
    cells.feed(html)
    cells.close()
    return cells


def _expected_rows(newline: str) -> list[list[str]]:
    def shown(name: str) -> str:
        return name.replace("\n", newline)

    return [[shown(NAMES[0]), shown(NAMES[1]), "mIoU"]] + [[shown(n), shown(n), "1.0"] for n in NAMES]


def test_markdown_names_render_as_their_own_text():
    import markdown_it  # the test extra installs it
    text = to_markdown(_table(), "Caption <b>with</b> | and\nnewline")
    lines = text.splitlines()
    assert len(lines) == 2 + 2 + len(NAMES)  # caption, blank line, header, rule, one line per row: no name adds one
    page = _parsed(markdown_it.MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(text))
    assert page.rows == _expected_rows(" ")  # a GFM parser reads every cell back as the name (line breaks as spaces)
    assert page.tags == {"p", "table", "thead", "tbody", "tr", "th", "td"}  # no <script>, no <b>


def test_latex_names_are_escaped_by_hand_computation():
    lines = to_latex(_table(), "Caption\n\\input{/etc/passwd}").splitlines()
    assert lines[0] == r"% Caption \input{/etc/passwd}"  # a line break would have ended the comment
    header = lines.index(r"\toprule") + 1
    assert lines[header] == r"A\textbar{}B & \textless{}script\textgreater{}alert(1)\textless{}/script\textgreater{} " \
                            r"& mIoU \\"
    rows = lines[header + 2:header + 2 + len(NAMES)]
    want = [r"A\textbar{}B", r"\textless{}script\textgreater{}alert(1)\textless{}/script\textgreater{}",
            r"R\&D \&lt;x\&gt;", r"back\textbackslash{}slash \textbackslash{}\textbar{} pipe",
            r"\$x\textasciicircum{}2\$ and 50\%", r"snake\_case", "two lines", r"[opt] \{b\}",
            r"*star* \#1 \textasciitilde{}",
            r"\_a\_ \_\_init\_\_ \textasciigrave{}code\textasciigrave{} \textasciitilde{}\textasciitilde{}gone"
            r"\textasciitilde{}\textasciitilde{}", "[link](http://x) ![i](y.png)"]
    # a first cell starting with [ or * would be read as the optional argument of the \\ or \midrule before it
    firsts = [("{}" + w if w[:1] in "[*" else w) for w in want]
    assert rows == [f"{first} & {w} & 1.0 \\\\" for first, w in zip(firsts, want, strict=True)]
    assert lines[header + 2 + len(NAMES):] == [r"\bottomrule", r"\end{tabular}"]


def test_html_names_are_their_own_text():
    page = _parsed(to_html(_table(), "Caption <b>"))
    assert page.rows == _expected_rows("\n")
    assert page.tags == {"div", "table", "caption", "thead", "tbody", "tr", "th", "td"}
