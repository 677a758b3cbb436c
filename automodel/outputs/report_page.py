"""The run report's page: its look and its assembly, shared by the run report and the answers of `automodel ask`.

A page is self-contained: the style and plotly.js are inlined once (``page_html``), so it opens with no
network and prints to PDF from the browser. ``figure_html``, ``html_table`` and ``Section`` are the pieces a
page is built from, every label and cell redacted like every output; ``figures_in_html`` reads the figures
back out of a written page.
"""

from __future__ import annotations

import base64
import html
import json
import re
from dataclasses import dataclass, field

import numpy as np

from automodel.outputs.facts import metric_text

CHART_HEIGHT = 420

STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;max-width:1040px;margin:0 auto;padding:0 20px 40px;color:#1f2933;line-height:1.45}
h1{font-size:1.6em;margin:24px 0 8px}h2{font-size:1.25em;margin:32px 0 8px;border-bottom:1px solid #d9dee3;padding-bottom:4px}
h3{font-size:1.05em;margin:18px 0 6px}
nav.toc{background:#f5f7f9;border:1px solid #d9dee3;padding:8px 14px;margin:12px 0}nav.toc ol{margin:4px 0;padding-left:20px}
nav.toc li{display:inline-block;margin-right:18px}
table{border-collapse:collapse;margin:6px 0 12px;font-size:.92em}th,td{border:1px solid #d9dee3;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f5f7f9}td.num{text-align:right;font-variant-numeric:tabular-nums}
.verdict{padding:8px 12px;border-left:4px solid;margin:10px 0}.trusted{border-color:#2f9e44;background:#ebfbee}
.untrusted{border-color:#e8590c;background:#fff4e6}.note{color:#52606d;font-size:.92em}
.chart{margin:8px 0 18px;page-break-inside:avoid;break-inside:avoid}
@media print{nav.toc{display:none}body{max-width:none;padding:0}h2{page-break-after:avoid}}
"""
# Plotly sizes its charts when drawn; printing needs them redrawn to the page's width.
PRINT_SCRIPT = ("window.addEventListener('beforeprint',function(){document.querySelectorAll('.js-plotly-plot')"
                ".forEach(function(d){Plotly.Plots.resize(d);});});")


def style_figure(fig, height: int = CHART_HEIGHT):
    """The report's look, shared with the charts of `automodel ask`."""
    fig.update_layout(template="plotly_white", height=height, margin={"l": 70, "r": 30, "t": 60, "b": 60},
                      font={"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 13},
                      title={"x": 0.01, "xanchor": "left", "font": {"size": 15}})
    return fig


def page_html(title: str, body: str) -> str:
    """A whole page: the style, plotly.js once, and ``body``."""
    from plotly.offline import get_plotlyjs

    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><meta name='viewport' content='width=device-width'>"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style><script type='text/javascript'>{get_plotlyjs()}</script>"
            f"<script>{PRINT_SCRIPT}</script></head><body>{body}</body></html>")


def figure_html(name: str, fig) -> str:
    from automodel.safety import redact_figure

    fig = redact_figure(fig)  # labels, hover text and categories that are e-mails, phones or SSNs are redacted like every output
    return (f"<div class='chart' data-chart='{html.escape(name)}'>"
            + fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"chart-{name}", config={"displaylogo": False, "responsive": True})
            + "</div>")


def _cell(value) -> str:
    from automodel.safety import redact_pii

    if isinstance(value, str):
        value = redact_pii(value)  # every table of the report (predictions preview, roles, leaderboard) shows cells redacted
    if isinstance(value, bool) or value is None:
        return f"<td>{'' if value is None else html.escape(str(value))}</td>"
    if isinstance(value, (int, float, np.integer, np.floating)):
        number = float(value) if isinstance(value, (float, np.floating)) else int(value)
        return f"<td class='num'>{html.escape(metric_text(number))}</td>"
    return f"<td>{html.escape(str(value))}</td>"


def html_table(rows: list[dict], columns: list[str] | None = None, table_id: str | None = None) -> str:
    if not rows:
        return "<p class='note'>none</p>"
    columns = columns or list(dict.fromkeys(k for row in rows for k in row))
    from automodel.safety import redact_pii

    head = "".join(f"<th>{html.escape(redact_pii(str(c)))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(_cell(row.get(c)) for c in columns) + "</tr>" for row in rows)
    ident = f" id='{table_id}'" if table_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


@dataclass
class Section:
    ident: str
    title: str
    body: str = ""
    figures: list = field(default_factory=list)

    def html(self) -> str:
        charts = "".join(figure_html(name, fig) for name, fig in self.figures)
        return f"<section id='{self.ident}'><h2>{html.escape(self.title)}</h2>{self.body}{charts}</section>"


_DTYPES = {"i1": np.int8, "u1": np.uint8, "i2": np.int16, "u2": np.uint16, "i4": np.int32, "u4": np.uint32,
           "i8": np.int64, "u8": np.uint64, "f4": np.float32, "f8": np.float64}


def _decode_arrays(value):
    """plotly 6 writes numpy arrays as {"dtype", "bdata", "shape"}; turn them back into lists."""
    if isinstance(value, dict):
        if "bdata" in value and "dtype" in value:
            array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=_DTYPES[value["dtype"]])
            if value.get("shape"):
                array = array.reshape([int(s) for s in str(value["shape"]).split(",")])
            return array.tolist()
        return {k: _decode_arrays(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode_arrays(v) for v in value]
    return value


def figures_in_html(text: str) -> dict[str, dict]:
    """{chart name: {"data": [...traces], "layout": {...}}} for every chart in a report written here."""
    decoder = json.JSONDecoder()
    out = {}
    for match in re.finditer(r'Plotly\.newPlot\(\s*"chart-([\w-]+)",\s*', text):
        data, end = decoder.raw_decode(text, match.end())
        rest = re.match(r"\s*,\s*", text[end:])
        layout, _ = decoder.raw_decode(text, end + rest.end()) if rest else ({}, end)
        out[match.group(1)] = {"data": _decode_arrays(data), "layout": layout}
    return out
