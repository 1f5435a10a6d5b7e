"""Per-sample scoring and aggregation, pinned to numbers."""

from __future__ import annotations

import math

from evalkit.scoring.aggregate import MetricSpec, ScoredSample, aggregate, mean_and_stderr
from evalkit.scoring.choice import first_argmax, score_choices


def test_first_argmax_takes_the_first_on_ties():
    assert first_argmax([-1.0, -0.5, -0.5]) == 1


def test_choice_scoring_and_length_normalisation():
    # Raw: choice 0 wins; per byte: choice 1 wins (-4/8 > -3/3).
    values = score_choices([-3.0, -4.0], [" abc"[:3], " abcdefg"], target=1)
    assert values == {"correct": 0.0, "correct_norm": 1.0}


def test_mean_and_stderr_pinned():
    entry = mean_and_stderr([1.0, 0.0, 1.0, 1.0])
    assert entry["value"] == 0.75 and entry["n"] == 4
    # deviations 0.25, 0.75, 0.25, 0.25: sample variance 0.75 / 3 = 0.25; stderr sqrt(0.25 / 4)
    assert math.isclose(entry["stderr"], 0.25)
    assert mean_and_stderr([1.0])["stderr"] is None
    assert mean_and_stderr([])["value"] is None


def test_aggregate_filters_and_groups():
    samples = [
        ScoredSample({"label": "unsafe", "type": "a"}, {"refused": 1.0}),
        ScoredSample({"label": "unsafe", "type": "b"}, {"refused": 0.0}),
        ScoredSample({"label": "safe", "type": "a"}, {"refused": 1.0}),
    ]
    metrics = [MetricSpec("refusal_rate_unsafe", "refused", {"label": "unsafe"})]
    result = aggregate(metrics, ["type"], samples)["refusal_rate_unsafe"]
    assert result["value"] == 0.5 and result["n"] == 2
    assert result["groups"]["type"] == {
        "a": {"value": 1.0, "stderr": None, "n": 1},
        "b": {"value": 0.0, "stderr": None, "n": 1},
    }


def test_aggregate_does_not_depend_on_sample_order():
    samples = [ScoredSample({"g": str(i % 3)}, {"correct": float(i % 2)}) for i in range(20)]
    metrics = [MetricSpec("accuracy", "correct", {})]
    assert aggregate(metrics, ["g"], samples) == aggregate(metrics, ["g"], samples[::-1])


def test_scorer_registry_matches_the_suite_format():
    """Every scorer a suite may name is implemented, and nothing else is registered."""
    from evalkit.scoring.registry import SCORERS
    from evalkit.suite.manifest import SCORER_VALUES, SCORERS_FOR_KIND

    assert set(SCORERS) == set(SCORER_VALUES)
    assert {s for names in SCORERS_FOR_KIND.values() for s in names} == set(SCORERS)
