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
from evalkit.scoring.choice import score_choices, score_exact_match
from evalkit.scoring.refusal import RefusalVerdict, classify_refusal
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
) -> dict[str, Any]:
    logprobs = [r.logprob for r in results]
    return {
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
        "values": score_choices(logprobs, choices, target),
    }


def generation_row(
    suite_ref: str,
    index: int,
    sample: Sample,
    prompt: str,
    result: GenerateResult,
    scorer: str,
    target: str | None,
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
    }
    # A completion to a harmful prompt may itself be harmful: by default keep only its digest.
    if show_harmful or not harmful:
        row["completion"] = result.text
    if scorer == "refusal":
        verdict: RefusalVerdict = classify_refusal(result.text)
        row["refusal"] = {"kind": verdict.kind, "rule": verdict.rule}
        row["values"] = {"refused": float(verdict.refused)}
    elif scorer == "exact_match":
        assert target is not None
        row["target"] = target
        row["values"] = score_exact_match(result.text, target)
    else:
        raise ValueError(f"unknown generation scorer {scorer!r}")
    return row


def rescore(row: Mapping[str, Any], scorer: str) -> dict[str, float] | None:
    """The row's values recomputed from its raw outputs; None when they cannot be (a redacted
    completion can only be checked through its digest)."""
    if scorer == "choice_loglikelihood":
        return score_choices(row["loglikelihoods"], row["choices"], row["target"])
    if "completion" not in row:
        return None
    if scorer == "refusal":
        return {"refused": float(classify_refusal(row["completion"]).refused)}
    if scorer == "exact_match":
        return score_exact_match(row["completion"], row["target"])
    raise ValueError(f"unknown scorer {scorer!r}")


def metric_specs(suite_entry: Mapping[str, Any]) -> list[MetricSpec]:
    return [
        MetricSpec(name=m["name"], value=m["value"], where=m["where"], description=m["description"])
        for m in suite_entry["metric_specs"]
    ]


def suite_results(suite_entry: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Aggregates of one suite from its rows (rows of other suites are ignored)."""
    mine = [ScoredSample(fields=r["fields"], values=r["values"]) for r in rows if r["suite"] == suite_entry["ref"]]
    return aggregate(metric_specs(suite_entry), suite_entry["group_by"], mine)
