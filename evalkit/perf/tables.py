"""The performance grid as tables: report.md, report.html and the `evalkit run` summary.

Why its own module: every other metric is a rate and is printed as a percentage with an interval;
a performance metric is tok/s, ms or MiB measured once per grid point, and reads best as one table
of batch size x prompt length. The numbers come from report.json alone (each point's value is its
group under the `point` field), so the renderings stay pure functions of the signed report.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from evalkit.perf.grid import BATCH_FIELD, KIND, LENGTH_FIELD, POINT_FIELD

# Per-sample value -> (column heading, unit).
COLUMNS: dict[str, tuple[str, str]] = {
    "prefill_tokens_per_s": ("prefill tok/s", "tok/s"),
    "decode_tokens_per_s": ("decode tok/s", "tok/s"),
    "ttft_ms": ("TTFT ms", "ms"),
    "peak_memory_mb": ("peak MiB", "MiB"),
    "memory_growth_mb": ("growth MiB", "MiB"),
}


def is_performance(suite: Mapping[str, Any]) -> bool:
    return suite.get("kind") == KIND


def format_number(value: float | None) -> str:
    """Three significant figures at most, thousands separated: 12,345 / 123 / 12.3 / 1.23."""
    if value is None:
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


def _value_key(suite: Mapping[str, Any], metric: str) -> str | None:
    for spec in suite.get("metric_specs", []):
        if spec.get("name") == metric:
            return spec.get("value")
    return None


def summary_text(suite: Mapping[str, Any], metric: str, entry: Mapping[str, Any]) -> str:
    """One cell for a summary table: the mean over the grid points, with its unit."""
    unit = COLUMNS.get(_value_key(suite, metric) or "", ("", ""))[1]
    return f"{format_number(entry.get('value'))} {unit} (mean of {entry.get('n')} points)".replace("  ", " ")


def grid(suite: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Headings and rows: one row per grid point (by batch size, then prompt length), one column
    per measured value the suite has a metric for."""
    by_value: dict[str, str] = {}
    for spec in suite.get("metric_specs", []):
        if spec.get("value") in COLUMNS and not spec.get("where"):
            by_value.setdefault(spec["value"], spec["name"])
    columns = [v for v in COLUMNS if v in by_value]
    results = suite.get("results", {})
    points = sorted(
        (suite.get("performance") or {}).get("grid", []), key=lambda p: (p[BATCH_FIELD], p[LENGTH_FIELD])
    )
    rows = []
    for point in points:
        cells = [str(point[BATCH_FIELD]), str(point[LENGTH_FIELD])]
        for value in columns:
            group = results.get(by_value[value], {}).get("groups", {}).get(POINT_FIELD, {}).get(point[POINT_FIELD])
            cells.append(format_number(group.get("value") if group else None))
        rows.append(cells)
    return ["batch size", "prompt length"] + [COLUMNS[v][0] for v in columns], rows


def settings_sentence(suite: Mapping[str, Any]) -> str:
    perf = suite.get("performance") or {}
    return (
        f"{perf.get('dtype')} on {perf.get('device')}; per point {perf.get('warmup')} warm-up and "
        f"{perf.get('repeats')} timed rounds (medians) of one prefill and {perf.get('new_tokens')} decode "
        f"steps, synthetic prompts (seed {perf.get('seed')}). Memory: {perf.get('memory')}."
    )


def markdown_lines(suite: Mapping[str, Any]) -> list[str]:
    headings, rows = grid(suite)
    lines = ["", "| " + " | ".join(headings) + " |", "|" + "---|" * len(headings)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines + ["", settings_sentence(suite)]


def html_section(suite: Mapping[str, Any]) -> str:
    """The grid as an escaped HTML table (numbers right-aligned, as report.html's other tables)."""
    e = html.escape
    headings, rows = grid(suite)
    head = "".join(f"<th>{e(h)}</th>" for h in headings)
    body = "".join(
        "<tr>" + "".join(f'<td class="num">{e(c)}</td>' for c in row) + "</tr>" for row in rows
    )
    return (
        f"<h3>{e(str(suite.get('ref')))}: speed and memory per grid point</h3>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        f'<p class="sub">{e(settings_sentence(suite))}</p>'
    )
