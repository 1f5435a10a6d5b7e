"""Comparing two reports sample by sample: is B really better than A, or is it noise?

Two reports on the same suites (two models, or a vendor's and a partner's run of one model) answer
the same questions, so the honest comparison pairs them: per sample, B's value minus A's, and a
paired bootstrap over those differences. Pairing removes the variance of question difficulty that
two independent intervals would double-count. Samples are paired by (suite ref, sample id), the
values and filters are exactly those the report's metrics aggregate (`metric.where`, the metric's
value key), so "accuracy +3.1 points" here means the same accuracy as in both reports.

A comparison is only meaningful on the same data: when the suite digests differ, the result says so
loudly, because the difference then mixes the models with the questions.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evalkit import report as files
from evalkit.errors import ConfigError, ReportError
from evalkit.perf import diff as perf_diff
from evalkit.perf import tables as perf_tables
from evalkit.report.files import read_jsonl
from evalkit.report.samples import metric_specs
from evalkit.scoring.aggregate import MetricSpec

CONFIDENCE = 0.95

# Bootstrap draws are made this many index cells at a time, so memory stays bounded on full suites
# (2000 resamples x 14,042 MMLU questions would be 225 MB of indices at once).
_CELLS_PER_CHUNK = 4_000_000


def load_report_folder(folder: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """report.json and samples.jsonl of a run's --out folder."""
    report_path, samples_path = folder / files.REPORT_JSON, folder / files.SAMPLES_JSONL
    for path in (report_path, samples_path):
        if not path.is_file():
            raise ReportError(f"{path} is missing; give the --out folder of an `evalkit run`")
    try:
        report = json.loads(report_path.read_text(encoding="utf-8"))
        rows = read_jsonl(samples_path)
    except (json.JSONDecodeError, ValueError) as exc:
        raise ReportError(f"{folder}: cannot read the report ({exc})") from None
    if report.get("schema") != files.REPORT_SCHEMA:
        raise ReportError(f"{report_path} has schema {report.get('schema')!r}; this evalkit reads {files.REPORT_SCHEMA}")
    return report, rows


def selected_values(rows: Sequence[Mapping[str, Any]], ref: str, spec: MetricSpec) -> dict[str, tuple[float, Mapping[str, Any]]]:
    """{sample id: (value, fields)} for the rows of suite `ref` that metric `spec` averages: the same
    filter as scoring.aggregate (every `where` field equal, as text, and the value present)."""
    chosen: dict[str, tuple[float, Mapping[str, Any]]] = {}
    for row in rows:
        if row["suite"] != ref or spec.value not in row["values"]:
            continue
        fields = row["fields"]
        if all(str(fields.get(k)) == v for k, v in spec.where.items()):
            chosen[str(row["id"])] = (float(row["values"][spec.value]), fields)
    return chosen


def paired_bootstrap_ci(diffs: np.ndarray, *, n_boot: int, seed: int) -> tuple[float, float]:
    """Percentile 95% interval of the mean of `diffs` (shape (n,)) over `n_boot` resamples of the
    paired indices. A fresh Generator(PCG64(seed)) per call: every interval depends only on its own
    differences and the seed, not on which other suites or groups were compared before it."""
    n = len(diffs)
    rng = np.random.Generator(np.random.PCG64(seed))
    means = np.empty(n_boot, dtype=np.float64)
    per_chunk = max(1, _CELLS_PER_CHUNK // n)
    for start in range(0, n_boot, per_chunk):
        count = min(per_chunk, n_boot - start)
        index = rng.integers(0, n, size=(count, n))
        means[start:start + count] = diffs[index].mean(axis=1)
    tail = 100 * (1 - CONFIDENCE) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def paired_difference(pairs: Sequence[tuple[float, float]], *, n_boot: int, seed: int) -> dict[str, Any]:
    """{n, a, b, diff (b - a), ci: [low, high], excludes_zero} of paired (a, b) values."""
    n = len(pairs)
    if n == 0:
        return {"n": 0, "a": None, "b": None, "diff": None, "ci": None, "excludes_zero": False}
    mean_a = math.fsum(a for a, _ in pairs) / n
    mean_b = math.fsum(b for _, b in pairs) / n
    diffs = np.array([b - a for a, b in pairs], dtype=np.float64)
    low, high = paired_bootstrap_ci(diffs, n_boot=n_boot, seed=seed)
    return {
        "n": n, "a": mean_a, "b": mean_b, "diff": math.fsum(diffs.tolist()) / n,
        "ci": [low, high], "excludes_zero": low > 0 or high < 0,
    }


def _compare_metric(
    ref: str, spec_a: MetricSpec, spec_b: MetricSpec, group_by: Sequence[str],
    rows_a: Sequence[Mapping[str, Any]], rows_b: Sequence[Mapping[str, Any]], n_boot: int, seed: int,
) -> dict[str, Any]:
    chosen_a = selected_values(rows_a, ref, spec_a)
    chosen_b = selected_values(rows_b, ref, spec_b)
    paired_ids = [i for i in chosen_a if i in chosen_b]  # A's order: the report's suite order
    entry = paired_difference([(chosen_a[i][0], chosen_b[i][0]) for i in paired_ids], n_boot=n_boot, seed=seed)
    entry["metric"] = spec_a.name
    entry["unpaired_a"] = sum(1 for i in chosen_a if i not in chosen_b)
    entry["unpaired_b"] = sum(1 for i in chosen_b if i not in chosen_a)
    groups: dict[str, dict[str, Any]] = {}
    for field in group_by:
        by_value: dict[str, list[tuple[float, float]]] = {}
        for i in paired_ids:
            by_value.setdefault(str(chosen_a[i][1].get(field)), []).append((chosen_a[i][0], chosen_b[i][0]))
        groups[field] = {v: paired_difference(by_value[v], n_boot=n_boot, seed=seed) for v in sorted(by_value)}
    entry["groups"] = groups
    return entry


def _side(folder: Path, report: Mapping[str, Any], rows: Sequence[Any]) -> dict[str, Any]:
    precision = report.get("precision", {})
    return {
        "path": str(folder),
        "model": report["model"]["name"],
        "model_digest": report["model"]["manifest_digest"],
        "dtype": precision.get("dtype"),
        "device": precision.get("device"),
        "evalkit": report.get("evalkit", {}).get("version"),
        "rows": len(rows),
    }


def _compare_suite(
    suite_a: Mapping[str, Any], suite_b: Mapping[str, Any], rows_a: Sequence[Mapping[str, Any]],
    rows_b: Sequence[Mapping[str, Any]], n_boot: int, seed: int, warnings: list[str],
) -> dict[str, Any]:
    ref = suite_a["ref"]
    same_digest = suite_a["digest"] == suite_b["digest"]
    if not same_digest:
        warnings.append(
            f"suite {ref}: DIFFERENT SUITE DATA (digest {suite_a['digest'][:16]}… in A, {suite_b['digest'][:16]}… in B); "
            "the two runs did not answer the same questions, so these differences mix model and data"
        )
    specs_a = {m.name: m for m in metric_specs(suite_a)}
    specs_b = {m.name: m for m in metric_specs(suite_b)}
    for name in sorted(set(specs_a) ^ set(specs_b)):
        warnings.append(f"suite {ref}: metric {name} is only in {'A' if name in specs_a else 'B'}; not compared")
    metrics = []
    for name, spec_a in specs_a.items():
        spec_b = specs_b.get(name)
        if spec_b is None:
            continue
        if (spec_a.value, dict(spec_a.where)) != (spec_b.value, dict(spec_b.where)):
            warnings.append(f"suite {ref}: metric {name} is defined differently in A and B; each side uses its own")
        metrics.append(_compare_metric(ref, spec_a, spec_b, suite_a.get("group_by", []), rows_a, rows_b, n_boot, seed))
    ids_a = {str(r["id"]) for r in rows_a if r["suite"] == ref}
    ids_b = {str(r["id"]) for r in rows_b if r["suite"] == ref}
    unpaired = {"a_only": len(ids_a - ids_b), "b_only": len(ids_b - ids_a)}
    if unpaired["a_only"] or unpaired["b_only"]:
        warnings.append(
            f"suite {ref}: {unpaired['a_only']} sample(s) only in A and {unpaired['b_only']} only in B "
            "(different --limit or suite data); only paired samples are compared"
        )
    return {
        "ref": ref,
        "same_digest": same_digest,
        "digest_a": suite_a["digest"],
        "digest_b": suite_b["digest"],
        "paired": len(ids_a & ids_b),
        "unpaired": unpaired,
        "metrics": metrics,
    }


def compare_reports(a: Path, b: Path, *, n_boot: int = 2000, seed: int = 1234) -> dict[str, Any]:
    """Paired differences (B − A) of every metric of every suite run in both report folders, with
    paired bootstrap 95% intervals, overall and per group. JSON-ready."""
    if n_boot < 1:
        raise ConfigError(f"--bootstrap must be at least 1, not {n_boot}")
    report_a, rows_a = load_report_folder(a)
    report_b, rows_b = load_report_folder(b)
    suites_b = {s["ref"]: s for s in report_b["suites"]}
    refs_a = [s["ref"] for s in report_a["suites"]]
    warnings: list[str] = []
    suites = [
        _compare_suite(s, suites_b[s["ref"]], rows_a, rows_b, n_boot, seed, warnings)
        if not perf_tables.is_performance(s)  # timings: A, B and B / A, no interval (evalkit/perf/diff.py)
        else perf_diff.compare_suite(s, suites_b[s["ref"]], rows_a, rows_b, warnings)
        for s in report_a["suites"] if s["ref"] in suites_b
    ]
    only_a = [r for r in refs_a if r not in suites_b]
    only_b = [r for r in suites_b if r not in refs_a]
    if only_a or only_b:
        warnings.append(f"suites run in only one report, not compared: A only {only_a or 'none'}, B only {only_b or 'none'}")
    if not suites:
        warnings.append("the two reports share no suite: nothing was compared")
    side_a, side_b = _side(a, report_a, rows_a), _side(b, report_b, rows_b)
    return {
        "a": side_a,
        "b": side_b,
        "same_model": side_a["model_digest"] == side_b["model_digest"],
        "same_suite_digests": all(s["same_digest"] for s in suites),
        "bootstrap": {"n_boot": n_boot, "seed": seed, "confidence": CONFIDENCE, "rng": "numpy PCG64"},
        "suites": suites,
        "suites_only_in_a": only_a,
        "suites_only_in_b": only_b,
        "unpaired": {
            "a_only": sum(s["unpaired"]["a_only"] for s in suites),
            "b_only": sum(s["unpaired"]["b_only"] for s in suites),
        },
        "warnings": warnings,
    }


# --- a readable table --------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _points(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:+.1f}"


def _ci(entry: Mapping[str, Any]) -> str:
    ci = entry["ci"]
    return "n/a" if ci is None else f"[{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]"


def format_comparison(result: Mapping[str, Any], *, width: int = 120) -> str:
    """Plain text: the two runs, any warnings first, then one row per suite/metric (and per group
    where a field has several groups). Differences are B − A in percentage points; `*` marks an
    interval that excludes zero."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    a, b, boot = result["a"], result["b"], result["bootstrap"]
    lines = [
        f"A: {a['path']}  model {a['model']} ({a['model_digest'][:16]}…), {a['dtype']} on {a['device']}, {a['rows']} samples",
        f"B: {b['path']}  model {b['model']} ({b['model_digest'][:16]}…), {b['dtype']} on {b['device']}, {b['rows']} samples",
        "model: " + ("the same weights (same manifest digest)" if result["same_model"] else "different weights"),
        "suite data: " + ("the same (every suite digest matches)" if result["same_suite_digests"]
                          else "DIFFERENT for at least one suite (see warnings)"),
        (f"difference = B − A in percentage points over paired samples; paired bootstrap, {boot['n_boot']} resamples, "
        f"seed {boot['seed']}, {int(100 * boot['confidence'])}% interval; * = interval excludes 0"),
    ]
    lines += [f"WARNING: {w}" for w in result["warnings"]]
    table = Table(box=box.SIMPLE_HEAD, show_edge=False)
    for column, justify in (("suite", "left"), ("metric", "left"), ("group", "left"), ("n", "right"), ("A", "right"),
                            ("B", "right"), ("B − A", "right"), ("95% interval", "right"), ("", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for suite in result["suites"]:
        ref = suite["ref"] + ("" if suite["same_digest"] else " (DATA DIFFERS)")
        for metric in suite["metrics"]:
            rows = [("", metric)]
            for field, groups in metric["groups"].items():
                if len(groups) >= 2:
                    rows += [(f"{field}={value}", g) for value, g in groups.items()]
            for group, e in rows:
                table.add_row(ref, metric["metric"], group, str(e["n"]), _pct(e["a"]), _pct(e["b"]),
                              _points(e["diff"]), _ci(e), "*" if e["excludes_zero"] else "")
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, color_system=None, highlight=False, emoji=False, markup=False)
    console.print(table)
    unpaired = result["unpaired"]
    tail = f"unpaired samples: {unpaired['a_only']} only in A, {unpaired['b_only']} only in B"
    if result["warnings"]:
        tail += f"; {len(result['warnings'])} WARNING(S) above"
    measured = perf_diff.format_measurements(result)
    return "\n".join(lines) + "\n\n" + buffer.getvalue().rstrip() + "\n\n" + measured + tail + "\n"
