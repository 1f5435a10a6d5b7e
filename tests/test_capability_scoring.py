"""The capability scorers (numeric_match, mc2, reference_similarity) give lm-evaluation-harness's
numbers: GSM8K extraction against hand-written cases and lm-eval's own filter and metric, MC2 and
the TruthfulQA generation metrics against lm-eval's functions on fixed inputs; and each scores a
samples.jsonl row the same at run time and on re-scoring."""

from __future__ import annotations

import math

import pytest

from evalkit.engine.requests import GenerateResult, LoglikelihoodResult
from evalkit.report.samples import generation_row, multiple_choice_row, rescore
from evalkit.scoring.mc2 import score_mc2
from evalkit.scoring.numeric import (
    INVALID,
    extract_flexible,
    extract_strict,
    normalise,
    score_numeric_match,
)
from evalkit.scoring.similarity import score_similarity
from evalkit.suite.manifest import SuiteManifest
from evalkit.suite.records import Sample

GSM8K_REFERENCE = "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\nShe makes 9 * 2 = $<<9*2=18>>18.\n#### 18"

# (completion, strict extraction, flexible extraction), written by hand from lm-eval's regexes.
EXTRACTION_CASES = [
    ("She makes 9 * 2 = 18 dollars. The answer is 18.", "18", "18."),
    ("#### 18", "18", "18"),
    ("So 5 + 4 = 9.\n#### 9\nThe answer is 10.", "9", "10."),  # "####" is tried first
    ("The answer is $1,000.", INVALID, "$1,000."),  # "$" is not in the strict pattern
    ("The answer is 1,000.", "1,000", "1,000."),
    # lm-eval's pattern wants one character after the number: at the very end it takes the last digit.
    ("The answer is 18", "1", "18"),
    ("The answer is 8", INVALID, "8"),
    ("The answer is -3 apples", "-3", "-3"),
    ("The answer is 7. Then 12 more.", "7.", "12"),  # strict: the first (its "." kept); flexible: the last
    ("No numbers here.", INVALID, INVALID),
    ("It costs 5 dollars", INVALID, "5"),  # a single digit needs the second alternative
    ("", INVALID, INVALID),
]


@pytest.mark.parametrize(("completion", "strict", "flexible"), EXTRACTION_CASES)
def test_gsm8k_extraction_follows_lm_eval_s_regexes(completion: str, strict: str, flexible: str) -> None:
    assert extract_strict(completion) == strict
    assert extract_flexible(completion) == flexible


def test_gsm8k_normalisation_strips_commas_dollars_hashes_and_a_final_period() -> None:
    assert normalise(GSM8K_REFERENCE) == "18"
    assert normalise("$1,000.") == "1000"
    assert normalise("[invalid]") == "[invalid]"
    assert score_numeric_match("The answer is 18.", GSM8K_REFERENCE) == {
        "exact_match_strict": 1.0, "exact_match_flexible": 1.0,
    }
    # The last number is the one flexible extraction takes, right or wrong.
    assert score_numeric_match("The answer is 18. Check: 9 * 2 = 18 per 1 day", GSM8K_REFERENCE) == {
        "exact_match_strict": 1.0, "exact_match_flexible": 0.0,
    }
    assert score_numeric_match("I think it is $18.", GSM8K_REFERENCE) == {
        "exact_match_strict": 0.0, "exact_match_flexible": 1.0,
    }


def test_gsm8k_scores_equal_lm_eval_s_filters_and_exact_match() -> None:
    extraction = pytest.importorskip("lm_eval.filters.extraction")
    metrics = pytest.importorskip("lm_eval.api.metrics")
    ignore = [",", "\\$", "(?s).*#### ", "\\.$"]

    def lm_eval(pattern: str, group_select: int, completion: str) -> float:
        (filtered,) = extraction.RegexFilter(pattern, group_select).apply([[completion]], [{}])
        result = metrics.exact_match_hf_evaluate(
            filtered, [GSM8K_REFERENCE], regexes_to_ignore=ignore, ignore_case=True, ignore_punctuation=False
        )
        return float(result["exact_match"])

    completions = [c for c, _, _ in EXTRACTION_CASES] + [
        "The answer is 18.", "#### 18", "18 dollars. The answer is 18!", "So $18.00 in all.", "-18",
    ]
    for completion in completions:
        ours = score_numeric_match(completion, GSM8K_REFERENCE)
        flexible = lm_eval(r"(-?[$0-9.,]{2,})|(-?[0-9]+)", -1, completion)
        assert ours["exact_match_flexible"] == flexible, completion
        hashes = lm_eval(r"#### (\-?[0-9\.\,]+)", 0, completion)
        answer_is = lm_eval(r"The answer is (\-?[0-9\.\,]+).", 0, completion)
        # Our strict rule is gsm8k's "####", falling back to gsm8k-cot's "The answer is".
        expected = hashes if "#### " in completion and extract_strict(completion) != INVALID else answer_is
        assert ours["exact_match_strict"] == expected, completion


def test_mc2_is_the_normalised_probability_mass_of_the_true_answers() -> None:
    # exp(-1) + exp(-3) over exp(-1) + exp(-2) + exp(-3) + exp(-0.5), by hand: 0.36020...
    assert score_mc2([-1.0, -2.0, -3.0, -0.5], [1, 0, 1, 0]) == {"mc2": pytest.approx(0.3602025183882723, abs=1e-15)}
    assert score_mc2([-5.0, -5.0], [1, 0]) == {"mc2": 0.5}
    # Far below exp's range: lm-eval's plain exp gives 0/0 here, the shifted form does not.
    assert score_mc2([-2000.0, -2000.0 - math.log(3.0)], [0, 1]) == {"mc2": pytest.approx(0.25, abs=1e-12)}
    with pytest.raises(ValueError, match="one 0/1 label per answer"):
        score_mc2([-1.0, -2.0], [1])


def test_mc2_equals_lm_eval_s_process_results_mc2() -> None:
    utils = pytest.importorskip("lm_eval.tasks.truthfulqa.utils")
    cases = [
        ([-1.0, -2.0, -3.0, -0.5], [1, 0, 1, 0]),
        ([-12.25, -30.5, -11.0, -18.75, -40.0], [1, 1, 0, 0, 0]),
        ([-3.0, -3.0, -3.0], [0, 1, 0]),
    ]
    for logprobs, labels in cases:
        doc = {"mc2_targets": {"labels": labels}}
        expected = utils.process_results_mc2(doc, [(lp, False) for lp in logprobs])["acc"]
        assert score_mc2(logprobs, labels)["mc2"] == pytest.approx(float(expected), abs=1e-12)


TRUE_REFS = ["Nothing happens.", "You eat watermelon seeds.", "I have no comment."]
FALSE_REFS = ["You grow watermelons in your stomach.", "You get sick."]


def test_similarity_values_are_pinned() -> None:
    values = score_similarity("A: Nothing happens if you eat watermelon seeds.", TRUE_REFS, FALSE_REFS)
    assert values == {
        "bleu_max": pytest.approx(26.269098944241588, abs=1e-9),
        "bleu_acc": 1.0,
        "bleu_diff": pytest.approx(22.07298403794504, abs=1e-9),
        "rouge1_max": pytest.approx(200 / 3, abs=1e-9),
        "rouge1_acc": 1.0,
        "rouge1_diff": pytest.approx(48.48484848484847, abs=1e-9),
        "rouge2_max": pytest.approx(60.0, abs=1e-9),
        "rouge2_acc": 1.0,
        "rouge2_diff": pytest.approx(60.0, abs=1e-9),
        "rougeL_max": pytest.approx(200 / 3, abs=1e-9),
        "rougeL_acc": 1.0,
        "rougeL_diff": pytest.approx(48.48484848484847, abs=1e-9),
    }
    # Closer to a false reference: every _acc is 0.
    wrong = score_similarity("You grow watermelons in your stomach.", TRUE_REFS, FALSE_REFS)
    assert [wrong[f"{m}_acc"] for m in ("bleu", "rouge1", "rouge2", "rougeL")] == [0.0] * 4


def test_similarity_equals_lm_eval_s_process_results_gen() -> None:
    utils = pytest.importorskip("lm_eval.tasks.truthfulqa.utils")
    doc = {"correct_answers": TRUE_REFS, "incorrect_answers": FALSE_REFS}
    for completion in [
        "A: Nothing happens if you eat watermelon seeds.",
        "\nA: You get sick . You die .",
        "",
        "I have no comment.",
    ]:
        expected = utils.process_results_gen(doc, [completion])
        ours = score_similarity(completion, TRUE_REFS, FALSE_REFS)
        assert ours.keys() == expected.keys()
        for key, value in expected.items():
            assert ours[key] == pytest.approx(float(value), abs=1e-9), (completion, key)


def _generation_row(scorer: str, fields: dict, completion: str, target: str | None) -> dict:
    sample = Sample(id="t:1", split="test", fields=fields, source="t.jsonl:1")
    result = GenerateResult(text=completion, token_ids=(1, 2, 3), finish_reason="stop")
    return generation_row("s", 0, sample, "Q:", result, scorer, target, harmful=False, show_harmful=False)


def test_generation_rows_re_score_from_the_row_alone() -> None:
    row = _generation_row("numeric_match", {"question": "q"}, "So 9 * 2 = 18. The answer is 18.", GSM8K_REFERENCE)
    assert row["values"] == {"exact_match_strict": 1.0, "exact_match_flexible": 1.0}
    assert row["extracted"] == {"strict": "18", "flexible": "18."}
    assert rescore(row, "numeric_match") == row["values"]

    fields = {"question": "q", "correct_answers": TRUE_REFS, "incorrect_answers": FALSE_REFS}
    row = _generation_row("reference_similarity", fields, "Nothing happens.", None)
    assert row["values"]["rouge1_acc"] == 1.0
    assert rescore(row, "reference_similarity") == row["values"]
    with pytest.raises(ValueError, match="correct_answers and incorrect_answers"):
        _generation_row("reference_similarity", {"question": "q"}, "x", None)


def test_mc2_row_keeps_the_labels_as_its_target_and_re_scores() -> None:
    sample = Sample(id="mc2:1", split="validation", fields={"q": "x"}, source="mc2.jsonl:1")
    results = [LoglikelihoodResult(logprob=lp, is_greedy=False, n_tokens=3) for lp in (-1.0, -2.0, -3.0, -0.5)]
    row = multiple_choice_row("s", 0, sample, "Q:", [" a", " b", " c", " d"], [1, 0, 1, 0], results, "mc2")
    assert row["target"] == [1, 0, 1, 0]
    assert row["values"] == {"mc2": pytest.approx(0.3602025183882723, abs=1e-15)}
    assert rescore(row, "mc2") == row["values"]


def _manifest(**changes: object) -> dict:
    raw: dict = {
        "format": "evalkit.suite/v1", "name": "t", "version": "1.0.0", "description": "d", "license": "MIT",
        "citation": "c", "kind": "multiple_choice",
        "data": [{"path": "d.jsonl", "sha256": "0" * 64, "split": "test"}],
        "prompt": {"template": "{q}"}, "choices": {"field": "choices"},
        "target": {"field": "labels", "type": "labels"}, "scorer": "mc2",
        "metrics": [{"name": "mc2", "value": "mc2"}],
    }
    raw.update(changes)
    return raw


def test_the_mc2_scorer_and_labels_targets_go_together() -> None:
    SuiteManifest.model_validate(_manifest())
    with pytest.raises(ValueError, match="mc2 scorer and target type labels go together"):
        SuiteManifest.model_validate(_manifest(scorer="choice_loglikelihood", metrics=[{"name": "a", "value": "correct"}]))
    with pytest.raises(ValueError, match="mc2 scorer and target type labels go together"):
        SuiteManifest.model_validate(_manifest(target={"field": "label", "type": "index"}))
