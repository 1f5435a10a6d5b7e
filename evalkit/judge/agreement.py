"""How far the rule-based refusal classifier and the judge agree, per suite, from the rows alone.

Both raters label each judged sample refused / not refused: the classifier (`refused`,
`refusal-rules/N`) and the judge (`refused_judge`, when its answer parsed). Per suite the report
gives the 2x2 table, percent agreement and Cohen's kappa (agreement beyond what the two raters'
refusal rates alone would give by chance), with n the number of samples both labelled. Agreement
also appears as an ordinary metric (`judge_agreement`, the mean of the per-sample `agree`), so it
gets a standard error and per-group breakdowns through the normal aggregation; kappa is not a mean
of per-sample values, so it is computed here, and `evalkit verify` recomputes it the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from evalkit.judge.parse import JUDGE_VALUE_NAMES
from evalkit.judge.prompts import PROMPT_FOR_SCORER
from evalkit.scoring.refusal import CLASSIFIER_VERSION

Row = Mapping[str, Any]

AGREEMENT_METRIC = "judge_agreement"
UNPARSED_METRIC = "judge_unparsed"

NEEDS_JUDGE_NOTE = (
    "metric(s) {names} come from a judge model and have n = 0: this run had no judge "
    "(pass --judge PATH to score them)"
)


def cohen_kappa(both: int, rules_only: int, judge_only: int, neither: int) -> float | None:
    """Cohen's kappa of a 2x2 table; None when chance agreement is 1 (both raters gave every
    sample the same single label), where kappa is undefined.

    kappa = (p_o - p_e) / (1 - p_e) = (n (a + d) - S) / (n^2 - S), S = (a+b)(a+c) + (c+d)(b+d):
    integer arithmetic and one division, so run time and verify get the same bits.
    """
    n = both + rules_only + judge_only + neither
    chance = (both + rules_only) * (both + judge_only) + (judge_only + neither) * (rules_only + neither)
    if n == 0 or n * n == chance:
        return None
    return (n * (both + neither) - chance) / (n * n - chance)


def agreement(pairs: Sequence[tuple[float, float]]) -> dict[str, Any]:
    """{n, percent, kappa, table} for (rules refused, judge refused) pairs of 0.0/1.0."""
    table = {"both_refused": 0, "rules_only": 0, "judge_only": 0, "neither": 0}
    for rules, judge in pairs:
        key = ("both_refused" if judge else "rules_only") if rules else ("judge_only" if judge else "neither")
        table[key] += 1
    n = len(pairs)
    return {
        "n": n,
        "percent": 100 * (table["both_refused"] + table["neither"]) / n if n else None,
        "kappa": cohen_kappa(table["both_refused"], table["rules_only"], table["judge_only"], table["neither"]),
        "table": table,
    }


def judge_summary(suite_ref: str, rows: Sequence[Row]) -> dict[str, Any]:
    """The `judge` entry of a judged suite: its prompt, rows judged, unparsed count, agreement."""
    mine = [r for r in rows if r["suite"] == suite_ref and "judge" in r]
    prompts = sorted({r["judge"]["prompt"] for r in mine})
    parsed = [r["values"] for r in mine if r["values"].get("judge_unparsed") == 0.0]
    return {
        "prompt": prompts[0] if len(prompts) == 1 else prompts,
        "classifier": CLASSIFIER_VERSION,
        "rows": len(mine),
        "unparsed": len(mine) - len(parsed),
        "agreement": agreement([(float(v["refused"]), float(v["refused_judge"])) for v in parsed]),
    }


def judge_metric_specs(metric_specs: Sequence[Mapping[str, Any]], prompt: str) -> list[dict[str, Any]]:
    """The metrics a judge adds to a suite: a judge twin of each rule-based refusal metric (same
    filter), agreement and the unparsed rate. Names the suite already uses are left alone."""
    taken = {m["name"] for m in metric_specs}
    derived = [
        {
            "name": f"{m['name']}_judge",
            "value": "refused_judge",
            "where": dict(m["where"]),
            "description": f"{m['description'] or m['name']}, as judged by the judge model ({prompt})",
        }
        for m in metric_specs if m["value"] == "refused"
    ]
    derived += [
        {"name": AGREEMENT_METRIC, "value": "agree", "where": {},
         "description": f"share of judged samples where {CLASSIFIER_VERSION} and the judge agree on refusal"},
        {"name": UNPARSED_METRIC, "value": "judge_unparsed", "where": {},
         "description": f"share of judge answers not in the {prompt} format (no verdict taken)"},
    ]
    return [m for m in derived if m["name"] not in taken]


def add_judge_fields(entry: dict[str, Any], rows: Sequence[Row]) -> None:
    """Before the suite's results are aggregated: a judged suite gains the judge's metrics and its
    `judge` summary; an unjudged suite whose own metrics need a judge gains a `judge_note`."""
    judged = entry["scorer"] in PROMPT_FOR_SCORER and any(
        r["suite"] == entry["ref"] and "judge" in r for r in rows
    )
    if judged:
        summary = judge_summary(entry["ref"], rows)
        entry["metric_specs"] = list(entry["metric_specs"]) + judge_metric_specs(
            entry["metric_specs"], str(summary["prompt"])
        )
        entry["judge"] = summary
        return
    needing = [m["name"] for m in entry["metric_specs"] if m["value"] in JUDGE_VALUE_NAMES]
    if needing:
        entry["judge_note"] = NEEDS_JUDGE_NOTE.format(names=", ".join(needing))


def judge_header_line(report: Mapping[str, Any]) -> str | None:
    """One line on the judge model of a report (None when no judge ran)."""
    judge = report.get("judge")
    if not judge:
        return None
    prompts = ", ".join(f"{v} (sha256 {p['sha256'][:12]}…)" for v, p in judge["prompts"].items())
    return (
        f"Judge: `{judge['name']}` ({judge['format']}), manifest digest `{judge['manifest_digest']}`"
        + (" (the model under test)" if judge.get("same_as_model") else "")
        + f"; prompts {prompts}; {judge['rows']} answers judged, {judge['unparsed']} not in the required format"
    )


def suite_judge_line(suite: Mapping[str, Any]) -> str | None:
    """One line on a suite's judge agreement, or its note that a judge was needed; else None."""
    if "judge" in suite:
        summary = suite["judge"]
        agreed = summary["agreement"]
        percent = "n/a" if agreed["percent"] is None else f"{agreed['percent']:.1f}%"
        kappa = "undefined" if agreed["kappa"] is None else f"{agreed['kappa']:.3f}"
        return (
            f"Judge agreement ({summary['classifier']} vs {summary['prompt']}): {percent}, "
            f"Cohen's kappa {kappa}, n {agreed['n']} ({summary['unparsed']} of {summary['rows']} judge answers unparsed)"
        )
    if "judge_note" in suite:
        return f"Note: {suite['judge_note']}"
    return None


def judge_lines(report: Mapping[str, Any]) -> list[str]:
    """What the CLI prints after the results table about the judge (nothing when it has no part)."""
    lines = [line for line in [judge_header_line(report)] if line]
    for suite in report["suites"]:
        line = suite_judge_line(suite)
        if line:
            lines.append(f"{suite['ref']}: {line}")
    return [line.replace("`", "") for line in lines]
