"""Per-sample rows of samples.jsonl: what was asked, what the model answered, how it scored.

A row carries everything needed to recompute its suite's metrics: the sample's fields (filters,
groups), the raw engine outputs (log-likelihoods, completion or its digest) and the per-sample
values. `rescore` recomputes the values from the raw outputs, and `suite_results` the aggregates
from the values, which is how `evalkit verify` checks a report without trusting it.
"""

from __future__ import annotations

import hashlib
from typing import Any, Mapping, Sequence

from evalkit.engine.requests import GenerateResult, LoglikelihoodResult
from evalkit.scoring.aggregate import MetricSpec, ScoredSample, aggregate
from evalkit.scoring.registry import get_scorer
from evalkit.suite.records import Sample


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def multiple_choice_row(
    suite_ref: str,
    index: int,
    sample: Sample,
    prompt: str,
    choices: Sequence[str],
    target: int,
    results: Sequence[LoglikelihoodResult],
    scorer: str = "choice_loglikelihood",
) -> dict[str, Any]:
    logprobs = [r.logprob for r in results]
    row: dict[str, Any] = {
        "suite": suite_ref,
        "index": index,
        "id": sample.id,
        "fields": dict(sample.fields),
        "prompt": prompt,
        "choices": list(choices),
        "target": target,
        "loglikelihoods": logprobs,
        "is_greedy": [r.is_greedy for r in results],
        "n_tokens": [r.n_tokens for r in results],
    }
    return _scored(row, scorer)


def _scored(row: dict[str, Any], scorer: str) -> dict[str, Any]:
    """The row with its scorer's details and per-sample values added (computed while the
    completion is still at hand, even when the row will keep only its digest)."""
    chosen = get_scorer(scorer)
    if chosen.details is not None:
        row.update(chosen.details(row))
    row["values"] = chosen.score(row)
    return row


def generation_row(
    suite_ref: str,
    index: int,
    sample: Sample,
    prompt: str,
    result: GenerateResult,
    scorer: str,
    target: Any,
    harmful: bool,
    show_harmful: bool,
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "suite": suite_ref,
        "index": index,
        "id": sample.id,
        "fields": dict(sample.fields),
        "prompt": prompt,
        "finish_reason": result.finish_reason,
        "n_tokens": len(result.token_ids),
        "harmful": harmful,
        "completion_sha256": text_sha256(result.text),
        "completion": result.text,
    }
    if target is not None:
        row["target"] = target
    _scored(row, scorer)
    # A completion to a harmful prompt may itself be harmful: by default keep only its digest.
    if harmful and not show_harmful:
        del row["completion"]
    return row


def rescore(row: Mapping[str, Any], scorer: str) -> dict[str, float] | None:
    """The row's values recomputed from its raw outputs; None when they cannot be (a redacted
    completion can only be checked through its digest)."""
    chosen = get_scorer(scorer)
    if chosen.needs_completion and "completion" not in row:
        return None
    return chosen.score(row)


def metric_specs(suite_entry: Mapping[str, Any]) -> list[MetricSpec]:
    return [
        MetricSpec(name=m["name"], value=m["value"], where=m["where"], description=m["description"])
        for m in suite_entry["metric_specs"]
    ]


def suite_results(suite_entry: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Aggregates of one suite from its rows (rows of other suites are ignored)."""
    mine = [ScoredSample(fields=r["fields"], values=r["values"]) for r in rows if r["suite"] == suite_entry["ref"]]
    return aggregate(metric_specs(suite_entry), suite_entry["group_by"], mine)
