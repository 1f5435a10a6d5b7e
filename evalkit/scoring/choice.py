"""Per-sample values for the scorers: multiple choice by log-likelihood, exact match.

(The refusal scorer lives in refusal.py.) Each scorer returns the named per-sample values that
suite metrics average (see suite/manifest.py SCORER_VALUES).
"""

from __future__ import annotations

from typing import Sequence


def first_argmax(values: Sequence[float]) -> int:
    """Index of the largest value; the first one on ties (as numpy.argmax, which lm-eval uses)."""
    best = 0
    for i, v in enumerate(values):
        if v > values[best]:
            best = i
    return best


def score_choices(logprobs: Sequence[float], choices: Sequence[str], target: int) -> dict[str, float]:
    """correct: the most likely choice is the target; correct_norm: the same after dividing each
    choice's log-likelihood by its length in UTF-8 bytes (lm-eval's acc_norm)."""
    normalised = [lp / max(1, len(c.encode("utf-8"))) for lp, c in zip(logprobs, choices)]
    return {
        "correct": float(first_argmax(logprobs) == target),
        "correct_norm": float(first_argmax(normalised) == target),
    }


def score_exact_match(completion: str, target: str) -> dict[str, float]:
    return {"exact_match": float(completion.strip() == target.strip())}
