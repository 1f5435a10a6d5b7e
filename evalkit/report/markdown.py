"""report.md: a readable rendering of report.json, and nothing more.

It is a pure function of the report, so `evalkit verify` re-renders it and checks the file.
"""

from __future__ import annotations

from typing import Any

from evalkit.judge.agreement import judge_header_line, suite_judge_line
from evalkit.perf import tables as perf_tables


def _pct(entry: dict[str, Any]) -> str:
    if entry.get("value") is None:
        return "n/a"
    text = f"{100 * entry['value']:.1f}%"
    if entry.get("stderr") is not None:
        text += f" ± {100 * entry['stderr']:.1f}"
    return text


def _suite_section(suite: dict[str, Any]) -> list[str]:
    lines = [f"## {suite['ref']}", ""]
    lines.append(
        f"{suite['description']} Version {suite['version']}, {suite['n_samples']} samples"
        + (f" (limited to {suite['limit']})" if suite.get("limit") else "")
        + f", scorer `{suite['scorer']}`"
        + (f" ({suite['classifier']})" if suite.get("classifier") else "")
        + (f", {suite['fewshot']}-shot" if suite.get("fewshot") else "")
        + "."
    )
    if perf_tables.is_performance(suite):  # tok/s, ms and MiB per grid point, not rates
        lines += perf_tables.markdown_lines(suite)
        lines += ["", f"Licence: {suite['license']}. Suite digest `{suite['digest']}`.", "", "Cite:", "", "```"]
        return lines + [suite["citation"].rstrip(), "```", ""]
    lines += ["", "| metric | value ± stderr | n | meaning |", "|---|---|---|---|"]
    for name, entry in suite["results"].items():
        lines.append(f"| {name} | {_pct(entry)} | {entry['n']} | {entry.get('description', '')} |")
    for name, entry in suite["results"].items():
        for field, groups in entry["groups"].items():
            if len(groups) < 2:
                continue
            lines += ["", f"<details><summary>{name} by {field} ({len(groups)} groups)</summary>", ""]
            lines += [f"| {field} | {name} ± stderr | n |", "|---|---|---|"]
            lines += [f"| {value} | {_pct(g)} | {g['n']} |" for value, g in groups.items()]
            lines += ["", "</details>"]
    judge_line = suite_judge_line(suite)
    if judge_line:
        lines += ["", judge_line]
    lines += ["", f"Licence: {suite['license']}. Suite digest `{suite['digest']}`.", "", "Cite:", "", "```"]
    lines += [suite["citation"].rstrip(), "```", ""]
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    model, precision, env = report["model"], report["precision"], report["environment"]
    lines = [
        f"# evalkit report: {model['name']}",
        "",
        "This file is a rendering of `report.json`. The signed record is `report.dsse.json`; check it",
        "with `evalkit verify`.",
        "",
        f"- Model: `{model['name']}` ({model['format']}), manifest digest `{model['manifest_digest']}`",
        f"- Precision: {precision['dtype']} on {precision['device']} ({precision['reason']})",
        f"- evalkit {report['evalkit']['version']} (commit {report['evalkit']['git_commit'] or 'unknown'}),"
        f" Python {env['python']}, torch {env['torch']}, transformers {env['transformers']}",
        f"- Hardware: {env['hardware']}",
        f"- Samples: `{report['samples']['file']}` ({report['samples']['rows']} rows,"
        f" sha256 `{report['samples']['sha256']}`)",
        f"- Harmful completions: {report['redaction']['note']}",
        *([f"- {judge_header_line(report)}"] if report.get("judge") else []),
        f"- Determinism: {report['determinism']['mode']} mode; invariance self-test "
        f"({report['determinism']['self_test']['canaries']} canaries alone, batched, reversed): "
        + ("bit-identical" if report["determinism"]["self_test"]["bit_identical"]
           else f"NOT bit-identical (max difference {report['determinism']['self_test']['max_abs_diff']:.3g})"),
        f"- Run time: {report['timing']['seconds']:.1f} s",
        "",
        "## Summary",
        "",
        "| suite | metric | value ± stderr | n |",
        "|---|---|---|---|",
    ]
    for suite in report["suites"]:
        for name, entry in suite["results"].items():
            shown = perf_tables.summary_text(suite, name, entry) if perf_tables.is_performance(suite) else _pct(entry)
            lines.append(f"| {suite['ref']} | {name} | {shown} | {entry['n']} |")
    lines.append("")
    for suite in report["suites"]:
        lines += _suite_section(suite)
    return "\n".join(lines).rstrip() + "\n"
