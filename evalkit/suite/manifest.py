"""The `suite.yaml` schema, format v1: what a suite may declare, and nothing it may execute.

A suite is a folder holding `suite.yaml`, its data files (CSV or JSONL), its LICENSE and, where the
data came from elsewhere, a SOURCE.md. Everything a suite does is declared here: prompt templates
are plain `{field}` substitution (no expressions, no attribute access), scorers and metrics are
chosen by name from fixed lists. A suite therefore cannot run code on the evaluator's machine.

Example (abridged from suites/mmlu/suite.yaml):

    format: evalkit.suite/v1
    name: mmlu
    version: 1.0.0
    kind: multiple_choice
    data:
      - {path: data/test/anatomy.csv, sha256: 0f3c..., split: test,
         fields: {subject: anatomy, subject_name: anatomy}}
    prompt:
      description: "The following are multiple choice questions (with answers) about {subject_name}.\n\n"
      template: "{question}\nA. {choice0}\nB. {choice1}\nC. {choice2}\nD. {choice3}\nAnswer:"
    choices: {static: [" A", " B", " C", " D"]}
    target: {field: answer, type: index}
    fewshot: {split: dev, match: subject, default: 0, max: 5}
    scorer: choice_loglikelihood
    group_by: [subject]
    metrics: [{name: accuracy, value: correct}]
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SUITE_FORMAT = "evalkit.suite/v1"

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
SHA256_PATTERN = r"^[0-9a-f]{64}$"
FIELD_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"

# A placeholder in a template: `{field}`. `{{` and `}}` are literal braces.
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")

# Scorers and the per-sample values each one produces (the `value` a metric may average).
SCORER_VALUES: dict[str, tuple[str, ...]] = {
    # argmax over the summed log-likelihood of each choice; `correct_norm` divides each sum by the
    # choice's length in UTF-8 bytes first (lm-eval's acc_norm).
    "choice_loglikelihood": ("correct", "correct_norm"),
    # the greedy completion classified by evalkit.scoring.refusal (rule-based, versioned).
    "refusal": ("refused",),
    # the completion, stripped, equals the target text.
    "exact_match": ("exact_match",),
}

SCORERS_FOR_KIND: dict[str, tuple[str, ...]] = {
    "multiple_choice": ("choice_loglikelihood",),
    "generation": ("refusal", "exact_match"),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class DataFile(_Strict):
    path: str = Field(description="relative to the suite folder; .csv or .jsonl")
    sha256: str = Field(pattern=SHA256_PATTERN)
    split: str = Field(pattern=NAME_PATTERN, description="e.g. test, dev; few-shot examples come from a split")
    fields: dict[str, str] = Field(
        default_factory=dict, description="constant fields added to every row of this file"
    )


class Prompt(_Strict):
    template: str = Field(description="the question, with {field} placeholders")
    description: str = Field(default="", description="rendered once, before the few-shot examples")
    chat: bool = Field(default=False, description="wrap the prompt in the model's chat template")
    system: str | None = Field(default=None, description="system message when chat is true")
    strip: list[str] = Field(
        default_factory=list,
        description="fields whose surrounding whitespace is removed before substitution "
        "(lm-eval's MMLU prompt strips the question)",
    )


class Choices(_Strict):
    """Exactly one of: fixed continuations, one field per choice, or one list-valued field."""

    static: list[str] | None = None
    fields: list[str] | None = None
    field: str | None = None
    delimiter: str = Field(
        default=" ",
        description="put between the prompt and each choice taken from fields or field "
        "(lm-eval's target_delimiter); static choices are used verbatim",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> "Choices":
        given = [k for k in ("static", "fields", "field") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("choices needs exactly one of static, fields or field")
        return self


class Target(_Strict):
    field: str = Field(pattern=FIELD_PATTERN)
    type: Literal["index", "text"] = Field(
        default="index", description="index: a 0-based index into choices; text: the expected text"
    )


class FewShot(_Strict):
    split: str = Field(pattern=NAME_PATTERN)
    match: str | None = Field(
        default=None, description="shots come from rows of `split` with the same value of this field"
    )
    default: int = Field(default=0, ge=0)
    max: int = Field(ge=0)
    separator: str = "\n\n"


class Generation(_Strict):
    max_new_tokens: int = Field(default=256, ge=1, le=32768)
    stop: list[str] = Field(default_factory=list)


class Metric(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    value: str = Field(description="a per-sample value produced by the scorer, averaged")
    where: dict[str, str] = Field(
        default_factory=dict, description="only samples whose fields equal these values"
    )
    description: str = ""


class Harmful(_Strict):
    """Which samples ask for harmful content: their completions are stored as digests by default."""

    field: str | None = Field(default=None, description="None: every sample is harmful")
    values: list[str] = Field(default_factory=list)


class SuiteManifest(_Strict):
    format: Literal["evalkit.suite/v1"]
    name: str = Field(pattern=NAME_PATTERN)
    version: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    description: str = Field(min_length=1)
    license: str = Field(min_length=1, description="SPDX identifier or licence name")
    license_file: str = Field(default="LICENSE")
    citation: str = Field(min_length=1)
    source: str | None = Field(default=None, description="provenance notes file, e.g. SOURCE.md")
    kind: Literal["multiple_choice", "generation"]
    data: list[DataFile] = Field(min_length=1)
    id_field: str | None = Field(default=None, description="row field holding a stable sample id")
    eval_split: str = Field(default="test", pattern=NAME_PATTERN)
    prompt: Prompt
    choices: Choices | None = None
    target: Target | None = None
    fewshot: FewShot | None = None
    generation: Generation | None = None
    scorer: str
    group_by: list[str] = Field(default_factory=list)
    metrics: list[Metric] = Field(min_length=1)
    harmful: Harmful | None = None

    @model_validator(mode="after")
    def _consistent(self) -> "SuiteManifest":
        problems: list[str] = []
        if self.scorer not in SCORERS_FOR_KIND[self.kind]:
            problems.append(
                f"scorer {self.scorer!r} does not fit kind {self.kind!r}; "
                f"use one of {', '.join(SCORERS_FOR_KIND[self.kind])}"
            )
        else:
            produced = SCORER_VALUES[self.scorer]
            for metric in self.metrics:
                if metric.value not in produced:
                    problems.append(
                        f"metric {metric.name!r}: scorer {self.scorer!r} produces "
                        f"{', '.join(produced)}, not {metric.value!r}"
                    )
        if self.kind == "multiple_choice" and (self.choices is None or self.target is None):
            problems.append("a multiple_choice suite needs choices and target")
        if self.scorer == "exact_match" and self.target is None:
            problems.append("the exact_match scorer needs a target")
        if self.kind == "generation" and self.choices is not None:
            problems.append("a generation suite has no choices")
        if self.fewshot is not None and self.fewshot.default > self.fewshot.max:
            problems.append("fewshot.default is larger than fewshot.max")
        if self.eval_split not in {d.split for d in self.data}:
            problems.append(f"no data file has the eval_split {self.eval_split!r}")
        if self.fewshot is not None and self.fewshot.split not in {d.split for d in self.data}:
            problems.append(f"no data file has the few-shot split {self.fewshot.split!r}")
        if len({m.name for m in self.metrics}) != len(self.metrics):
            problems.append("metric names must be unique")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def generation_or_default(self) -> Generation:
        return self.generation or Generation()


def template_fields(template: str) -> list[str]:
    """The field names a template refers to, in order of appearance."""
    return PLACEHOLDER.findall(template.replace("{{", "").replace("}}", ""))
