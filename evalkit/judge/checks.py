"""What `evalkit verify` checks of a judged report, without running the judge again.

Per row: the judge's stored answer matches its digest, re-parses (parse.py) to exactly the judge
values the row records, and a row nobody judged carries no judge values. Per suite: the judge
summary (unparsed count, agreement table, percent, kappa) follows from the rows. For the report:
every judge prompt it names is this evalkit's text of that version (same sha256), since the answers
are re-parsed by this evalkit's rules for that version. The judge's metrics themselves are
ordinary aggregates, re-checked with every other metric.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from evalkit.errors import ConfigError
from evalkit.judge.agreement import judge_summary
from evalkit.judge.parse import judge_values, split_values
from evalkit.judge.prompts import PROMPT_FOR_SCORER, get_prompt


def check_judged_row(row: Mapping[str, Any], scorer: str, where: str) -> list[str]:
    """Failures of one row's judge record and judge values (an empty list when they hold)."""
    recorded = split_values(row["values"])[1]
    if "judge" not in row:
        return [f"{where}: judge values {sorted(recorded)} without a judge answer"] if recorded else []
    record = row["judge"]
    expected_prompt = PROMPT_FOR_SCORER.get(scorer)
    if record.get("prompt") != expected_prompt:
        return [f"{where}: judged with prompt {record.get('prompt')!r}, but a {scorer!r} suite is judged with {expected_prompt!r}"]
    output = record.get("output")
    if output is not None and hashlib.sha256(output.encode("utf-8")).hexdigest() != record.get("output_sha256"):
        return [f"{where}: the judge's answer does not match its recorded sha256"]
    try:
        again = judge_values(row)
    except (ConfigError, KeyError, TypeError, ValueError) as exc:
        return [f"{where}: cannot re-parse the judge's answer ({type(exc).__name__}: {exc})"]
    if again != recorded:
        return [f"{where}: recorded judge values {recorded} do not follow from the judge's answer ({again})"]
    return []


def check_judge(report: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Failures of the report's judge entries against the rows (rows are checked one by one too)."""
    failures: list[str] = []
    scorer_of = {s["ref"]: s["scorer"] for s in report["suites"]}
    for number, row in enumerate(rows, start=1):
        scorer = scorer_of.get(row.get("suite"))
        if scorer is not None and isinstance(row.get("values"), dict):
            failures += check_judged_row(row, scorer, f"samples.jsonl:{number}")
    judge = report.get("judge")
    if judge is not None:
        for version, recorded in judge.get("prompts", {}).items():
            try:
                local = get_prompt(version).sha256
            except ConfigError as exc:
                failures.append(str(exc))
                continue
            if recorded.get("sha256") != local:
                failures.append(f"judge prompt {version}: the report's text has sha256 {str(recorded.get('sha256'))[:16]}…, this evalkit's {local[:16]}…")
    for suite in report["suites"]:
        if "judge" not in suite:
            continue
        again = judge_summary(suite["ref"], rows)
        if again != suite["judge"]:
            failures.append(
                f"suite {suite['ref']}: judge summary (agreement {suite['judge'].get('agreement')}) does not "
                f"follow from samples.jsonl ({again['agreement']})"
            )
    return failures
