"""The final number of a worked answer, extracted as lm-evaluation-harness extracts it (GSM8K).

Exists so that a GSM8K score from evalkit means what lm-eval's does: the same two extraction rules
(its `strict-match` and `flexible-extract` filters) and the same normalisation before comparing
(its `exact_match` metric with `regexes_to_ignore` and `ignore_case`). The regexes are lm-eval's,
character for character, so their quirks are kept on purpose: lm-eval's "The answer is N."
pattern wants one more character after the number, so a completion ending "The answer is 18"
extracts "1" (the "8" is that character) and one ending "The answer is 8" extracts nothing. The
reference is the upstream answer, whose number follows its last "#### ".
"""

from __future__ import annotations

import re
from typing import Any

# lm-eval's RegexFilter fallback when nothing matches: it never equals a reference.
INVALID = "[invalid]"
# gsm8k.yaml's strict-match (the "#### N" answer format of the upstream data).
STRICT_HASH = re.compile(r"#### (\-?[0-9\.\,]+)")
# gsm8k-cot.yaml's strict-match (the chain-of-thought exemplars end "The answer is N.").
STRICT_ANSWER_IS = re.compile(r"The answer is (\-?[0-9\.\,]+).")
# Both files' flexible-extract, with group_select -1: the last number-like run of the completion.
FLEXIBLE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")
# exact_match's regexes_to_ignore, applied in this order to prediction and reference alike.
IGNORED = (re.compile(","), re.compile(r"\$"), re.compile(r"(?s).*#### "), re.compile(r"\.$"))


def regex_extract(pattern: re.Pattern[str], text: str, group_select: int = 0) -> str:
    """lm-eval's RegexFilter on one response: the `group_select`-th match (its first non-empty
    group when the pattern has several), stripped; INVALID when nothing matches."""
    matches = pattern.findall(text)
    if not matches:
        return INVALID
    match = matches[group_select]
    if isinstance(match, tuple):
        non_empty = [m for m in match if m]
        match = non_empty[0] if non_empty else INVALID
    return match.strip()


def extract_strict(completion: str) -> str:
    """The number after "#### " (gsm8k's strict-match), else after "The answer is " (gsm8k-cot's):
    one value covers both prompt formats, since a completion rarely has both."""
    found = regex_extract(STRICT_HASH, completion)
    return found if found != INVALID else regex_extract(STRICT_ANSWER_IS, completion)


def extract_flexible(completion: str) -> str:
    """The last number in the completion (flexible-extract)."""
    return regex_extract(FLEXIBLE, completion, group_select=-1)


def normalise(text: str) -> str:
    """Commas, "$", everything up to the last "#### " and a final "." removed, lower-cased."""
    for pattern in IGNORED:
        text = pattern.sub("", text)
    return text.lower()


def score_numeric_match(completion: str, reference: str) -> dict[str, float]:
    """exact_match_strict / exact_match_flexible: the extracted number equals the reference's."""
    expected = normalise(reference)
    return {
        "exact_match_strict": float(normalise(extract_strict(completion)) == expected),
        "exact_match_flexible": float(normalise(extract_flexible(completion)) == expected),
    }


def numeric_details(completion: str) -> dict[str, Any]:
    """What each rule extracted, kept in the row so a reader sees why a sample scored as it did."""
    return {"extracted": {"strict": extract_strict(completion), "flexible": extract_flexible(completion)}}


def numeric_match_row(row: Any) -> dict[str, float]:
    """The scorer on a samples.jsonl row (its completion and its target, the upstream answer)."""
    return score_numeric_match(row["completion"], row["target"])


def numeric_match_row_details(row: Any) -> dict[str, Any]:
    return numeric_details(row["completion"])
