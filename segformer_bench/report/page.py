"""The HTML page: one self-contained file (inline CSS, images as data: URIs, no external resources).

``html_page(title, metadata, sections)`` lays out a header with the run's metadata (suite, dataset, models with
their checkpoint hashes, versions, seed) and then each analysis's sections, ``(heading, explanation HTML,
content HTML)``; ``figure`` embeds a PNG. Nothing here reads the clock or the environment: the page is a
function of its inputs.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence

Section = tuple[str, str, str]  # (heading, explanation HTML, content HTML) on the page

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


def html_page(title: str, metadata: Mapping[str, object], sections: Sequence[Section]) -> str:
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


def figure(png: bytes, alt: str) -> str:
    return f'<figure><img src="{_data_uri(png)}" alt="{html.escape(alt)}"></figure>'

