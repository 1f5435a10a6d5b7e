"""Per-sample rows of samples.jsonl: what was asked, what the model answered, how it scored.

A row carries everything needed to recompute its suite's metrics: the sample's fields (filters,
groups), the raw engine outputs (log-likelihoods, completion or its digest) and the per-sample
values. `rescore` recomputes the values from the raw outputs, and `suite_results` the aggregates
from the values, which is how `evalkit verify` checks a report without trusting it.
"""

from __future__ import annotations

import hashlib
import math
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
    target: int | list[int],
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
    result: GenerateResult | Sequence[GenerateResult],
    scorer: str,
    target: Any,
    harmful: bool,
    show_harmful: bool,
) -> dict[str, Any]:
    """One row per sample. With several completions (a suite's `generation.samples` > 1) they sit
    in `completions`, each scored alone, and the row's values are their means."""
    results = [result] if isinstance(result, GenerateResult) else list(result)
    row: dict[str, Any] = {
        "suite": suite_ref,
        "index": index,
        "id": sample.id,
        "fields": dict(sample.fields),
        "prompt": prompt,
        "harmful": harmful,
    }
    if target is not None:
        row["target"] = target
    # A completion to a harmful prompt may itself be harmful: by default keep only its digest.
    redact = harmful and not show_harmful
    if len(results) == 1:
        row.update(_completion_entry(results[0]))
        _scored(row, scorer)
        if redact:
            del row["completion"]
        return row
    row["completions"] = [_completion_entry(r) for r in results]
    chosen = get_scorer(scorer)
    per_completion = []
    for entry in row["completions"]:
        alone = {**row, **entry}
        if chosen.details is not None:
            entry.update(chosen.details(alone))
        per_completion.append(chosen.score(alone))
        if redact:
            del entry["completion"]
    row["values"] = _mean_values(per_completion)
    return row


def _completion_entry(result: GenerateResult) -> dict[str, Any]:
    return {
        "finish_reason": result.finish_reason,
        "n_tokens": len(result.token_ids),
        "completion_sha256": text_sha256(result.text),
        "completion": result.text,
    }


def _mean_values(per_completion: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Each value averaged over the completions that have it (fsum: the same bits in verify)."""
    names = sorted({name for values in per_completion for name in values})
    means = {}
    for name in names:
        xs = [values[name] for values in per_completion if name in values]
        means[name] = math.fsum(xs) / len(xs)
    return means


def completion_digest_problems(row: Mapping[str, Any]) -> list[str]:
    """Each stored completion must match its recorded sha256."""
    entries = row.get("completions", [row])
    return [
        f"completion {k + 1} does not match its recorded sha256" if "completions" in row
        else "completion does not match its recorded sha256"
        for k, entry in enumerate(entries)
        if "completion" in entry and text_sha256(entry["completion"]) != entry["completion_sha256"]
    ]


def rescore(row: Mapping[str, Any], scorer: str) -> dict[str, float] | None:
    """The row's values recomputed from its raw outputs; None when they cannot be (a redacted
    completion can only be checked through its digest)."""
    chosen = get_scorer(scorer)
    if "completions" in row:
        entries = row["completions"]
        if chosen.needs_completion and any("completion" not in e for e in entries):
            return None
        return _mean_values([chosen.score({**row, **e}) for e in entries])
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
