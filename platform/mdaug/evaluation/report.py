"""The evaluation report: one self-contained HTML file (figures embedded as data URIs), plus the comparison
table as CSV and Markdown."""

from __future__ import annotations

import base64
import csv
import html
import io
import math
import platform
import time
from pathlib import Path

from mdaug.evaluation.arms import ARM_HELP
from mdaug.evaluation.stats import ArmRow
from mdaug.evaluation.verdict import DETAIL
from mdaug.storage import write_text
from mdaug.tables import markdown_table

COLUMNS = ("arm", "k", "arch", "replicates", "runs", "train_images", "accuracy", "accuracy_lo", "accuracy_hi",
           "macro_f1", "versus", "family", "gain", "gain_lo", "gain_hi", "se", "df", "p", "p_adj", "p_perm",
           "p_improve", "mde", "status", "method")


def fmt_value(v: object) -> str:
    """Table cell: NaN as a dash, small p-values in 3 significant digits, points with one decimal."""
    if not isinstance(v, float):
        return str(v)
    if math.isnan(v):
        return "–"
    if v != 0 and abs(v) < 0.01:
        return f"{v:.3g}"
    return f"{v:.1f}" if abs(v) >= 1 else f"{v:.3f}"


def write_tables(rows: list[ArmRow], out: Path) -> tuple[Path, Path]:
    csv_path, md_path = out / "comparison.csv", out / "comparison.md"
    text = io.StringIO(newline="")
    w = csv.DictWriter(text, fieldnames=COLUMNS)
    w.writeheader()
    w.writerows(r.to_dict() for r in rows)
    write_text(csv_path, text.getvalue())
    write_text(md_path, markdown_table(table_rows(rows)))
    return csv_path, md_path


def table_rows(rows: list[ArmRow]) -> list[dict[str, str]]:
    """The comparison table's cells (COLUMNS), formatted."""
    return [{k: fmt_value(v) for k, v in r.to_dict().items() if k in COLUMNS} for r in rows]


def _img(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return (f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _table(rows: list[ArmRow]) -> str:
    head = ("<tr><th>arm</th><th>k</th><th>classifier</th><th>generator replicates × seeds</th><th>train images</th>"
            "<th>accuracy % (95 % CI)</th><th>macro-F1 %</th><th>versus</th><th>family</th>"
            "<th>gain, points (95 % CI)</th><th>p</th><th>p (Holm)</th><th>P(improvement)</th><th>MDE</th>"
            "<th>status</th><th>p (sign-flip, conditional)</th></tr>")
    body = []
    for r in rows:
        classes = (["win"] if r.significant_gain else ["loss"] if r.significant else []) + (
            ["primary"] if r.family == "primary" else [])
        cls = f' class="{" ".join(classes)}"' if classes else ""
        gain = "–" if math.isnan(r.gain) else f"{r.gain:+.1f} ({r.gain_lo:+.1f}…{r.gain_hi:+.1f})"
        body.append(f"<tr{cls}><td>{html.escape(r.arm)}</td><td>{r.k}</td><td>{r.arch}</td>"
                    f"<td>{r.replicates} × {r.runs // max(r.replicates, 1)}</td><td>{r.train_images:.0f}</td>"
                    f"<td>{r.accuracy:.1f} ({r.accuracy_lo:.1f}…{r.accuracy_hi:.1f})</td>"
                    f"<td>{r.macro_f1:.1f}</td><td>{html.escape(r.versus) or '–'}</td><td>{r.family}</td>"
                    f"<td>{gain}</td><td>{fmt_value(r.p)}</td><td>{fmt_value(r.p_adj)}</td>"
                    f"<td>{fmt_value(r.p_improve)}</td><td>{fmt_value(r.mde)}</td><td>{r.status or '–'}</td>"
                    f"<td>{fmt_value(r.p_perm)}</td></tr>")
    return f"<table>{head}{''.join(body)}</table>"


STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}
td:first-child{text-align:left}tr.win{background:#e3f5e1}tr.loss{background:#fbe4e4}tr.primary{font-weight:600}
.verdict{font-size:16px;background:#f4f6fb;border-left:4px solid #3559c7;padding:.6em 1em}
.verdict .detail{font-size:14px;margin-left:2em;color:#333}
figure{display:inline-block;margin:.5em}img{max-width:100%}dt{font-weight:600}"""


def write_report(out: Path, rows: list[ArmRow], verdict: list[str], figures: list[tuple[Path, str]],
                 facts: dict[str, str], notes: list[str], generators: list[tuple[str, str]]) -> Path:
    """out/report.html; returns its path. generators: (k, what its generator saw and how its images measure)."""
    arms = "".join(f"<dt>{html.escape(a)}</dt><dd>{html.escape(h)}</dd>" for a, h in ARM_HELP.items())
    fact_rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in facts.items())
    note_items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    doc = f"""<!doctype html><html><head><meta charset="utf-8"><title>mdaug augmentation report</title>
<style>{STYLE}</style></head><body>
<h1>Does augmentation help person identification?</h1>
<div class="verdict">{"".join(f"<p{' class=detail' if v.startswith(DETAIL) else ''}>{html.escape(v.strip())}</p>"
                            for v in verdict)}</div>
<h2>Comparison</h2>
<p>Accuracy on the held-out real test split. An evaluation replicate is a generator replicate (its own random
k-subset and DiT seed) with its classifier seeds (each with its own generated images); every arm of a replicate
trains on that replicate's real k-subset for the same number of optimizer steps (chosen arm-blind, on real). A gain
is the paired difference against the arm in <i>versus</i>. The CI, p, MDE (80 % power) and status come from one
crossed model of generator replicates × test images (person-stratified; Satterthwaite df); Holm adjusts p within
each family — the pre-registered <b>primary</b> (bold, per classifier), each control, the secondary comparisons.
Status: gain / loss (Holm p &lt; 0.05), equivalent (TOST within the pre-registered margin), inconclusive.
P(improvement): share of generator replicates whose gain is above 0. The sign-flip p over runs holds this test
set and these generators fixed.</p>
{_table(rows)}
<h2>Generators</h2><table>{"".join(f"<tr><td>k={html.escape(k)}</td><td>{html.escape(g)}</td></tr>"
                                   for k, g in generators)}</table>
<h2>Figures</h2>
{"".join(_img(p, c) for p, c in figures)}
<h2>Arms</h2><dl>{arms}</dl>
<h2>Run</h2><table>{fact_rows}</table>
<ul>{note_items}</ul>
<p>Generated {time.strftime("%Y-%m-%d %H:%M %Z")} on {html.escape(platform.node())}.</p>
</body></html>"""
    path = out / "report.html"
    write_text(path, doc)
    return path
