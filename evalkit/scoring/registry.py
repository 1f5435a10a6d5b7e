"""Every scorer by name: which per-sample values it produces and how, from a samples.jsonl row.

A scorer reads only the row (the sample's fields, the raw engine outputs, the target) and returns
its per-sample values, so the same function scores at run time and re-scores in `evalkit verify`.
The names and values must match the suite format's `SCORER_VALUES` (suite/manifest.py); a test
keeps the two in step. Literal dict, no import-time registration: one place to read them all.

To add a scorer: write `score_<name>(row) -> dict[str, float]` in its own module under scoring/,
add its entry here and its values to `SCORER_VALUES`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from evalkit.scoring.bbq import bbq_row
from evalkit.scoring.choice import score_choices, score_exact_match
from evalkit.scoring.mc2 import mc2_row
from evalkit.scoring.measurement import score_measurement
from evalkit.scoring.numeric import numeric_match_row, numeric_match_row_details
from evalkit.scoring.refusal import classify_refusal
from evalkit.scoring.similarity import similarity_row

Row = Mapping[str, Any]


@dataclass(frozen=True)
class Scorer:
    """needs_completion: the values come from the completion text, so a row whose completion is
    stored as a digest only (a harmful prompt) cannot be re-scored; its values are taken as signed.
    details: optional extra row keys explaining the verdict (e.g. which refusal rule fired)."""

    score: Callable[[Row], dict[str, float]]
    needs_completion: bool
    details: Callable[[Row], dict[str, Any]] | None = None


def _choice(row: Row) -> dict[str, float]:
    return score_choices(row["loglikelihoods"], row["choices"], row["target"])


def _refusal(row: Row) -> dict[str, float]:
    return {"refused": float(classify_refusal(row["completion"]).refused)}


def _refusal_details(row: Row) -> dict[str, Any]:
    verdict = classify_refusal(row["completion"])
    return {"refusal": {"kind": verdict.kind, "rule": verdict.rule}}


def _exact_match(row: Row) -> dict[str, float]:
    return score_exact_match(row["completion"], row["target"])


SCORERS: dict[str, Scorer] = {
    "choice_loglikelihood": Scorer(_choice, needs_completion=False),
    "refusal": Scorer(_refusal, needs_completion=True, details=_refusal_details),
    # Scored like refusal; the rubric values come from the judge pass (evalkit/judge/run.py).
    "strongreject": Scorer(_refusal, needs_completion=True, details=_refusal_details),
    "exact_match": Scorer(_exact_match, needs_completion=True),
    "mc2": Scorer(mc2_row, needs_completion=False),
    "numeric_match": Scorer(numeric_match_row, needs_completion=True, details=numeric_match_row_details),
    "reference_similarity": Scorer(similarity_row, needs_completion=True),
    "measurement": Scorer(score_measurement, needs_completion=False),
    "bbq": Scorer(bbq_row, needs_completion=False),
}


def get_scorer(name: str) -> Scorer:
    try:
        return SCORERS[name]
    except KeyError:
        raise ValueError(f"unknown scorer {name!r}; known: {', '.join(sorted(SCORERS))}") from None
