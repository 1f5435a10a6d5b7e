"""Reproduce and compare for performance suites: timings are measurements, never a failure.

`evalkit reproduce` promises bit-identical per-sample rows, and `evalkit compare` paired bootstrap
intervals of rates. Neither fits a timing: two runs on one machine never take the same
microseconds, and tok/s is not a rate in [0, 1]. So for a performance suite:

- reproduce checks what must repeat exactly: the same grid points, on the same synthetic inputs
  (their sha256), with the same settings, device and dtype; the timings and memory are listed
  beside the original ones ("measurement, not compared"), and a rerun that timed the same points
  counts as identical;
- compare shows each point's value in A and B and the ratio B / A, with no significance claim.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from evalkit.perf.grid import POINT_FIELD
from evalkit.perf.tables import COLUMNS, format_number, is_performance
from evalkit.report.samples import suite_results
from evalkit.scoring.measurement import TIMED_KEYS

NOT_COMPARED = "measurement, not compared"

Keyed = Mapping[tuple[str, str], tuple[bytes, dict[str, Any]]]


def untimed(row: Mapping[str, Any]) -> dict[str, Any]:
    """The row without what varies from run to run (timings, memory bytes, the values from them)."""
    out = {k: v for k, v in row.items() if k != "values"}
    out["measurement"] = {k: v for k, v in (row.get("measurement") or {}).items() if k not in TIMED_KEYS}
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or a == 0 else b / a


def reproduce_suite(entry: Mapping[str, Any], original: Keyed, rerun: Keyed) -> dict[str, Any]:
    """reproduce's per-suite comparison for a performance suite (same keys as the others): a row
    differs only when its untimed part does; `metrics` is empty (nothing flips), and
    `measurement` holds each metric's value then and now."""
    ref = entry["ref"]
    mine = [k for k in original if k[0] == ref]
    theirs = [k for k in rerun if k[0] == ref]
    differing = [k for k in mine if k in rerun and untimed(original[k][1]) != untimed(rerun[k][1])]
    before = suite_results(entry, [original[k][1] for k in mine])
    after = suite_results(entry, [rerun[k][1] for k in theirs])
    measurement = {
        name: {"original": before[name]["value"], "rerun": after.get(name, {}).get("value"),
               "ratio": _ratio(before[name]["value"], after.get(name, {}).get("value"))}
        for name in before
    }
    return {
        "rows_original": len(mine),
        "rows_rerun": len(theirs),
        "rows_differing": len(differing),
        "differing_ids": [k[1] for k in differing],
        "missing_in_rerun": [k[1] for k in mine if k not in rerun],
        "extra_in_rerun": [k[1] for k in theirs if k not in original],
        "max_abs_delta_loglikelihood": None,
        "max_delta_id": None,
        "metrics": {},
        "measurement": measurement,
        "compared": NOT_COMPARED,
    }


def same_apart_from_timings(report: Mapping[str, Any], original: Keyed, rerun: Keyed) -> bool:
    """The two samples files hold the same rows in the same order, and only performance rows may
    differ, and only in their timings (the per-suite checks vouch for each row's content)."""
    measured = {s["ref"] for s in report["suites"] if is_performance(s)}
    if not measured or list(original) != list(rerun):
        return False
    return all(
        original[k][0] == rerun[k][0] or (k[0] in measured and untimed(original[k][1]) == untimed(rerun[k][1]))
        for k in original
    )


def reproduce_note(suites: Mapping[str, Any]) -> str:
    """One clause for reproduce's summary: the performance suites' timings then and now."""
    parts = []
    for ref, s in suites.items():
        if "measurement" not in s:
            continue
        shown = ", ".join(
            f"{name} {format_number(m['original'])} then, {format_number(m['rerun'])} now"
            for name, m in s["measurement"].items()
        )
        parts.append(f"{ref}: {s['rows_original']} grid points on the same inputs; timings are a {NOT_COMPARED} ({shown})")
    return "; ".join(parts)


def compare_suite(
    suite_a: Mapping[str, Any], suite_b: Mapping[str, Any], rows_a: Sequence[Mapping[str, Any]],
    rows_b: Sequence[Mapping[str, Any]], warnings: list[str],
) -> dict[str, Any]:
    """compare's entry for a performance suite: per grid point and measured value, A, B and B / A."""
    ref = suite_a["ref"]
    same_digest = suite_a["digest"] == suite_b["digest"]
    if not same_digest:
        warnings.append(f"suite {ref}: different grid (suite digests differ); only common points are shown")
    a = {str(r["id"]): r for r in rows_a if r["suite"] == ref}
    b = {str(r["id"]): r for r in rows_b if r["suite"] == ref}
    points = []
    for point in (p for p in a if p in b):
        for value in COLUMNS:
            va, vb = a[point]["values"].get(value), b[point]["values"].get(value)
            if va is not None and vb is not None:
                points.append({POINT_FIELD: point, "value": value, "a": va, "b": vb, "ratio": _ratio(va, vb)})
    return {
        "ref": ref,
        "same_digest": same_digest,
        "digest_a": suite_a["digest"],
        "digest_b": suite_b["digest"],
        "paired": len(set(a) & set(b)),
        "unpaired": {"a_only": len(set(a) - set(b)), "b_only": len(set(b) - set(a))},
        "metrics": [],
        "measurement": points,
        "compared": NOT_COMPARED,
    }


def format_measurements(result: Mapping[str, Any]) -> str:
    """compare's text for its performance suites (empty when there are none)."""
    lines = []
    for suite in result["suites"]:
        if "measurement" not in suite:
            continue
        lines.append(f"{suite['ref']}: speed and memory per grid point ({NOT_COMPARED}: no interval; B / A is a ratio)")
        lines.append(f"  {'point':<14} {'measure':<16} {'A':>12} {'B':>12} {'B / A':>8}")
        for p in suite["measurement"]:
            ratio = "n/a" if p["ratio"] is None else f"{p['ratio']:.2f}x"
            lines.append(
                f"  {p[POINT_FIELD]:<14} {COLUMNS[p['value']][0]:<16} {format_number(p['a']):>12} "
                f"{format_number(p['b']):>12} {ratio:>8}"
            )
    return "\n".join(lines) + "\n" if lines else ""
