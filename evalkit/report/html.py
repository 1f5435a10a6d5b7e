"""report.html: one self-contained page a minister, a vendor or an auditor can open offline.

Why its own module: report.md is for diffs and terminals; this page is for people. It is a pure
function of report.json (plus an optional verification verdict), so the same report always gives
the same bytes and anyone can re-render it to check it. It loads nothing: no scripts, fonts, styles
or images from anywhere, charts are hand-written inline SVG, and a Content-Security-Policy forbids
every fetch and every script, so even a mistake in escaping could not phone home or run code.
Every string taken from the report (model outputs, dataset text, file names) goes through
`html.escape`.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from evalkit.perf import tables as perf_tables

REPORT_HTML = "report.html"

# Two-sided 95% normal interval: value ± Z95 × stderr (a Wald interval; small n makes it rough).
Z95 = 1.96

_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"

_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
 color:#1d232a;background:#f6f7f9;margin:0}
main{max-width:1080px;margin:0 auto;padding:24px 28px 60px;background:#fff;min-height:100vh}
h1{font-size:26px;margin:0 0 4px}h2{font-size:20px;margin:34px 0 10px;border-bottom:2px solid #e3e6ea;padding-bottom:4px}
h3{font-size:16px;margin:22px 0 8px}
.sub{color:#5b6673;margin:0 0 16px}
table{border-collapse:collapse;margin:8px 0 14px;font-size:14px}
th,td{border:1px solid #dde1e6;padding:4px 9px;text-align:left;vertical-align:top}
th{background:#f0f2f5;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px;word-break:break-all}
pre{background:#f4f5f7;border:1px solid #e3e6ea;padding:8px 10px;overflow-x:auto;font-size:12.5px;white-space:pre-wrap}
details{margin:6px 0}summary{cursor:pointer;font-weight:600}
.banner{padding:10px 14px;border-radius:6px;margin:10px 0;border:1px solid}
.ok{background:#e8f6ec;border-color:#7cc48f;color:#14532d}
.bad{background:#fdecec;border-color:#e58b8b;color:#7f1d1d}
.unk{background:#fff7e0;border-color:#e8c66a;color:#6b4e00}
.kv th{width:230px}
.muted{color:#6b7580}
svg{max-width:100%;height:auto;display:block;margin:6px 0 12px}
@media print{body{background:#fff}main{padding:0}details{display:block}}
"""

_BAR_FILL = "#4a78b5"


def _e(value: Any) -> str:
    """Escaped text of any report value: the report carries dataset text and model outputs."""
    return html.escape("" if value is None else str(value), quote=True)


def _count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else _e(value)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def interval(entry: Mapping[str, Any]) -> tuple[float, float] | None:
    """The 95% interval value ± 1.96·stderr, clipped to [0, 1] (every evalkit metric is a rate);
    None when there is no value or no stderr (n < 2)."""
    value, stderr = entry.get("value"), entry.get("stderr")
    if value is None or stderr is None:
        return None
    return max(0.0, value - Z95 * stderr), min(1.0, value + Z95 * stderr)


def _interval_text(entry: Mapping[str, Any]) -> str:
    bounds = interval(entry)
    return "n/a" if bounds is None else f"[{100 * bounds[0]:.1f}, {100 * bounds[1]:.1f}]"


def _stderr_text(entry: Mapping[str, Any]) -> str:
    stderr = entry.get("stderr")
    return "n/a" if stderr is None else f"{100 * stderr:.1f}"


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, numeric: Sequence[int] = (), cls: str = "") -> str:
    """A table from already-escaped cells; `numeric` columns are right-aligned."""
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>" for i, c in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    attr = f' class="{cls}"' if cls else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _kv(pairs: Iterable[tuple[str, str]]) -> str:
    """A two-column key/value table; keys and values must already be escaped."""
    rows = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in pairs)
    return f'<table class="kv"><tbody>{rows}</tbody></table>'


def _flatten(data: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Nested dicts as sorted (dotted key, leaf) pairs: for sections whose shape may grow (perf)."""
    if isinstance(data, Mapping):
        out: list[tuple[str, Any]] = []
        for key in sorted(data, key=str):
            out += _flatten(data[key], f"{prefix}.{key}" if prefix else str(key))
        return out
    return [(prefix, data)]


def _leaf(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return _e(f"{value:.6g}")
    if isinstance(value, (list, tuple)):
        return _e(json.dumps(value, sort_keys=True, ensure_ascii=False))
    return _e(value)


def bar_chart(rows: Sequence[tuple[str, float | None, tuple[float, float] | None]], *, row_height: int = 28) -> str:
    """A horizontal bar chart of rates (0..100%) with 95% error bars, as inline SVG.

    rows: (label, value in [0, 1] or None, (low, high) or None). Hand-written rather than matplotlib
    so the page needs no plotting library and its bytes do not depend on one's version.
    """
    label_w, x0, plot_w, right = 300, 310, 440, 70
    top, bottom = 26, 8
    width = x0 + plot_w + right
    height = top + row_height * len(rows) + bottom
    parts = [
        (f'<svg width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" font-family="system-ui,sans-serif" font-size="12">')
    ]
    for tick in (0, 25, 50, 75, 100):
        x = x0 + plot_w * tick / 100
        parts.append(f'<line x1="{x:.2f}" y1="{top - 4}" x2="{x:.2f}" y2="{height - bottom}" stroke="#e1e4e8"/>')
        parts.append(f'<text x="{x:.2f}" y="{top - 9}" text-anchor="middle" fill="#6b7580">{tick}%</text>')
    for i, (label, value, bounds) in enumerate(rows):
        y = top + i * row_height
        mid = y + row_height / 2
        shown = label if len(label) <= 46 else label[:45] + "…"
        parts.append(
            f'<text x="{label_w}" y="{mid + 4:.2f}" text-anchor="end" fill="#1d232a">{_e(shown)}</text>'
        )
        if value is None:
            parts.append(f'<text x="{x0 + 4}" y="{mid + 4:.2f}" fill="#6b7580">n/a</text>')
            continue
        tip = f"{label}: {_pct(value)}" + (
            f" (95% interval {100 * bounds[0]:.1f}–{100 * bounds[1]:.1f}%)" if bounds else ""
        )
        bar_w = plot_w * min(max(value, 0.0), 1.0)
        parts.append(
            f'<rect x="{x0}" y="{y + 6:.2f}" width="{bar_w:.2f}" height="{row_height - 12}" '
            f'fill="{_BAR_FILL}"><title>{_e(tip)}</title></rect>'
        )
        if bounds is not None:
            lo, hi = (x0 + plot_w * b for b in bounds)
            cap = (row_height - 12) / 2
            parts.append(
                f'<path d="M{lo:.2f} {mid:.2f}H{hi:.2f}M{lo:.2f} {mid - cap:.2f}V{mid + cap:.2f}'
                f'M{hi:.2f} {mid - cap:.2f}V{mid + cap:.2f}" stroke="#1d232a" stroke-width="1.5" fill="none"/>'
            )
        parts.append(f'<text x="{x0 + plot_w + 8}" y="{mid + 4:.2f}" fill="#1d232a">{_pct(value)}</text>')
    parts.append("</svg>")
    return "".join(parts)


# --- sections --------------------------------------------------------------------------------------


def _verification_banner(verification: str | None) -> str:
    if verification is None:
        return (
            '<div class="banner unk" id="verification"><strong>Verification: not checked.</strong> '
            "This page was rendered without checking the signature. Run "
            "<code>evalkit verify OUTDIR --pub KEY</code> (or <code>evalkit html OUTDIR --pub KEY</code> "
            "to embed the verdict here).</div>"
        )
    passed = verification.startswith("verified")
    cls, title = ("ok", "Verification: passed.") if passed else ("bad", "Verification: FAILED.")
    return f'<div class="banner {cls}" id="verification"><strong>{title}</strong><pre>{_e(verification)}</pre></div>'


def _summary(report: Mapping[str, Any], verification: str | None) -> str:
    model = report["model"]
    precision = report.get("precision", {})
    determinism = report.get("determinism", {})
    test = determinism.get("self_test") or {}
    if not test:
        selftest = "no self-test recorded"
    elif test.get("bit_identical"):
        selftest = (
            f"bit-identical ({_e(test.get('canaries'))} canaries alone, batched, reversed; "
            f"batch sizes {_e(test.get('batch_sizes'))})"
        )
    else:
        selftest = f"<strong>NOT bit-identical</strong> (max difference {_e(test.get('max_abs_diff'))})"
    samples = report.get("samples", {})
    timing = report.get("timing", {})
    pairs = [
        ("Model", (f"<strong>{_e(model.get('name'))}</strong> ({_e(model.get('format'))}, "
                  f"{_e(model.get('architecture'))}, {_count(model.get('parameters'))} parameters)")),
        ("Model manifest digest", f"<code>{_e(model.get('manifest_digest'))}</code>"),
        ("Precision", (f"{_e(precision.get('dtype'))} on {_e(precision.get('device'))} "
                      f"<span class=\"muted\">({_e(precision.get('reason'))})</span>")),
        ("Determinism", f"{_e(determinism.get('mode'))} mode; invariance self-test: {selftest}"),
        ("Suites", _e(", ".join(s["ref"] for s in report["suites"]))),
        ("Samples", f"{_e(samples.get('rows'))} rows in <code>{_e(samples.get('file'))}</code>"),
        ("Run", f"started {_e(timing.get('started_at'))}, {_e(timing.get('seconds'))} s"),
    ]
    return (
        '<section id="summary"><h2>Summary</h2>'
        + _verification_banner(verification)
        + _kv(pairs)
        + "</section>"
    )


def _results(report: Mapping[str, Any]) -> str:
    rows, chart = [], []
    for suite in report["suites"]:
        if perf_tables.is_performance(suite):
            continue  # not rates: shown per grid point under Hardware and performance
        for name, entry in suite["results"].items():
            rows.append((
                _e(suite["ref"]), _e(name), _pct(entry.get("value")), _interval_text(entry),
                _stderr_text(entry), _e(entry.get("n")), _e(entry.get("description", "")),
            ))
            chart.append((f"{suite['ref']} · {name}", entry.get("value"), interval(entry)))
    return (
        '<section id="results"><h2>Results</h2>'
        '<p class="sub">Values are means of per-sample scores; the 95% interval is value ± 1.96 × stderr '
        "(clipped to 0–100%; n/a when n &lt; 2).</p>"
        + _table(["suite", "metric", "value", "95% interval", "± stderr", "n", "meaning"], rows, numeric=(2, 3, 4, 5))
        + bar_chart(chart)
        + "</section>"
    )


def _group_table(name: str, field: str, groups: Mapping[str, Any]) -> str:
    rows = [
        (_e(value), _pct(g.get("value")), _interval_text(g), _stderr_text(g), _e(g.get("n")))
        for value, g in groups.items()
    ]
    chart = [(str(value), g.get("value"), interval(g)) for value, g in groups.items()]
    return (
        f"<details><summary>{_e(name)} by {_e(field)} ({len(groups)} groups)</summary>"
        + _table([_e(field), _e(name), "95% interval", "± stderr", "n"], rows, numeric=(1, 2, 3, 4))
        + bar_chart(chart, row_height=20)
        + "</details>"
    )


def _breakdowns(report: Mapping[str, Any]) -> str:
    parts = ['<section id="breakdowns"><h2>Per-category breakdowns</h2>']
    any_groups = False
    for suite in report["suites"]:
        if perf_tables.is_performance(suite):
            continue
        inner = []
        for name, entry in suite["results"].items():
            for field, groups in entry.get("groups", {}).items():
                if len(groups) >= 2:
                    inner.append(_group_table(name, field, groups))
        if inner:
            any_groups = True
            parts.append(f"<h3>{_e(suite['ref'])}</h3>" + "".join(inner))
    if not any_groups:
        parts.append('<p class="muted">No metric has more than one group in this run.</p>')
    parts.append("</section>")
    return "".join(parts)


def _safety_suite(suite: Mapping[str, Any]) -> str:
    results = suite["results"]
    filtered = {k for spec in suite.get("metric_specs", []) for k in spec.get("where", {})}
    overall = [
        (_e(name), _e(e.get("description", "")), _pct(e.get("value")), _interval_text(e), _e(e.get("n")))
        for name, e in results.items()
    ]
    html_parts = [
        f"<h3>{_e(suite['ref'])}</h3>",
        (f'<p class="sub">Refusals classified by <code>{_e(suite.get("classifier"))}</code>; '
        "partial refusals count as refusals.</p>"),
        _table(["metric", "meaning", "rate", "95% interval", "n"], overall, numeric=(2, 3, 4)),
        bar_chart([(name, e.get("value"), interval(e)) for name, e in results.items()]),
    ]
    # Per type (or any other grouping that is not the safe/unsafe filter itself): one row per group
    # value, one column per metric, so refusal on unsafe and over-refusal on safe sit side by side.
    for field in suite.get("group_by", []):
        if field in filtered:
            continue
        values = sorted({v for e in results.values() for v in e.get("groups", {}).get(field, {})})
        rows = []
        for value in values:
            cells = [_e(value)]
            for e in results.values():
                g = e.get("groups", {}).get(field, {}).get(value)
                cells.append("—" if g is None else f"{_pct(g.get('value'))} (n={_e(g.get('n'))})")
            rows.append(cells)
        html_parts.append(f"<h3>{_e(suite['ref'])} per {_e(field)}</h3>")
        html_parts.append(_table([_e(field)] + [_e(n) for n in results], rows, numeric=tuple(range(1, len(results) + 1))))
    return "".join(html_parts)


def _safety(report: Mapping[str, Any]) -> str:
    suites = [s for s in report["suites"] if s.get("scorer") == "refusal"]
    body = "".join(_safety_suite(s) for s in suites) or '<p class="muted">No safety suite (refusal scorer) in this run.</p>'
    return f'<section id="safety"><h2>Safety</h2>{body}</section>'


def _performance(report: Mapping[str, Any]) -> str:
    env = report.get("environment", {})
    precision = report.get("precision", {})
    engine = report.get("engine", {})
    timing = report.get("timing", {})
    seconds = timing.get("suite_seconds", {})
    hardware = [
        ("Hardware", _e(env.get("hardware"))),
        ("GPU", _e(env.get("gpu") or "none")),
        ("CUDA", _e(env.get("cuda") or "none")),
        ("Device / dtype", f"{_e(precision.get('device'))} / {_e(precision.get('dtype'))}"),
        ("Torch threads", _e(env.get("torch_threads"))),
    ] + [(f"engine.{_e(k)}", _leaf(v)) for k, v in _flatten(engine)]
    rows = []
    for suite in report["suites"]:
        spent = seconds.get(suite["ref"])
        rate = f"{suite['n_samples'] / spent:.2f}" if spent else "n/a"
        rows.append((_e(suite["ref"]), _e(suite.get("n_samples")), _e(spent if spent is not None else "n/a"), rate))
    parts = [
        '<section id="performance"><h2>Hardware and performance</h2>',
        _kv(hardware),
        _table(["suite", "samples", "seconds", "samples/s"], rows, numeric=(1, 2, 3)),
        f'<p class="sub">Whole run: {_e(timing.get("seconds"))} s, including loading, hashing and the self-test.</p>',
    ]
    parts += [perf_tables.html_section(s) for s in report["suites"] if perf_tables.is_performance(s)]
    perf = report.get("perf")
    if perf:
        parts.append("<h3>Performance profile</h3>")
        parts.append(_kv((_e(k), _leaf(v)) for k, v in _flatten(perf)))
    parts.append("</section>")
    return "".join(parts)


def _provenance(report: Mapping[str, Any]) -> str:
    model = report["model"]
    evalkit = report.get("evalkit", {})
    samples = report.get("samples", {})
    model_pairs = [(_e(k), f"<code>{_e(v)}</code>" if k.endswith(("digest", "sha256")) else _leaf(v)) for k, v in _flatten(model)]
    suite_rows = [
        (
            _e(s["ref"]), f"{_e(s.get('name'))}@{_e(s.get('version'))}", f"<code>{_e(s.get('digest'))}</code>",
            _e(s.get("source")), _e(s.get("license")), _e(s.get("fewshot")), _e(s.get("limit") or "all"),
            _e(s.get("n_samples")), _e(s.get("scorer")),
        )
        for s in report["suites"]
    ]
    pack_rows = [
        (
            _e(s["ref"]), _e(s["pack"].get("file")), f"<code>{_e(s['pack'].get('sha256'))}</code>",
            _e(", ".join(s["pack"].get("signed_by") or []) or "unsigned"),
        )
        for s in report["suites"] if s.get("pack")
    ]
    packs = (
        "<h3>Suite packs</h3>" + _table(["ref", "pack", "sha256", "signed by (key ids)"], pack_rows) if pack_rows else ""
    )
    citations = "".join(
        f"<details><summary>Cite {_e(s.get('name'))}</summary><pre>{_e((s.get('citation') or '').rstrip())}</pre></details>"
        for s in {s.get("name"): s for s in report["suites"]}.values()
    )
    run_pairs = [
        ("evalkit", f"{_e(evalkit.get('version'))} (commit <code>{_e(evalkit.get('git_commit') or 'unknown')}</code>)"),
        ("Report schema", _e(report.get("schema"))),
        ("Samples file", (f"<code>{_e(samples.get('file'))}</code>, {_e(samples.get('rows'))} rows, "
                         f"sha256 <code>{_e(samples.get('sha256'))}</code>")),
    ] + [(f"seeds.{_e(k)}", _leaf(v)) for k, v in _flatten(report.get("seeds", {}))]
    run_pairs += [(f"determinism.{_e(k)}", _leaf(v)) for k, v in _flatten(report.get("determinism", {}))]
    config = json.dumps(report.get("config", {}), indent=2, sort_keys=True, ensure_ascii=False)
    return (
        '<section id="provenance"><h2>Provenance</h2>'
        "<h3>Model</h3>" + _kv(model_pairs)
        + "<h3>Suites</h3>"
        + _table(["ref", "suite", "digest", "source", "licence", "shots", "limit", "n", "scorer"], suite_rows, numeric=(5, 6, 7))
        + packs
        + citations
        + "<h3>Run</h3>" + _kv(run_pairs)
        + "<h3>Environment</h3>" + _kv((_e(k), _leaf(v)) for k, v in _flatten(report.get("environment", {})))
        + f"<details><summary>Run configuration</summary><pre>{_e(config)}</pre></details>"
        + "</section>"
    )


def _redaction(report: Mapping[str, Any]) -> str:
    note = report.get("redaction", {}).get("note", "no redaction policy recorded")
    return (
        '<section id="redaction"><h2>Redaction</h2>'
        f"<p>Harmful completions: {_e(note)}. This page shows aggregates only; per-sample prompts and "
        f"answers are in <code>{_e(report.get('samples', {}).get('file', 'samples.jsonl'))}</code>.</p></section>"
    )


def render_html(report: dict[str, Any], *, verification: str | None = None) -> str:
    """The whole page. `verification` is the verdict of `evalkit verify` (starting "verified") or
    its failure text; None says the page was rendered without checking. Same input, same bytes."""
    title = f"evalkit report: {report['model'].get('name')}"
    return "".join([
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="referrer" content="no-referrer">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>",
        f"<h1>{_e(title)}</h1>",
        ('<p class="sub">A rendering of <code>report.json</code>. The signed record is '
        "<code>report.dsse.json</code>; check it with <code>evalkit verify</code>.</p>"),
        _summary(report, verification),
        _results(report),
        _breakdowns(report),
        _safety(report),
        _performance(report),
        _provenance(report),
        _redaction(report),
        "</main></body></html>\n",
    ])
