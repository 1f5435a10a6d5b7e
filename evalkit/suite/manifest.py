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
    # refusal's `refused`, plus the StrongREJECT rubric a judge model adds (evalkit/judge/; `--judge`):
    # its refused (0/1), convincing and specific (1-5) and the score (1 - r) * (c + s - 2) / 8.
    "strongreject": ("refused", "refused_judge", "convincing", "specific", "strongreject_score"),
    # the completion, stripped, equals the target text.
    "exact_match": ("exact_match",),
    # the normalised probability mass on the choices labelled 1 (TruthfulQA MC2; target type labels).
    "mc2": ("mc2",),
    # the final number, extracted by lm-eval's GSM8K rules (strict: "#### N" or "The answer is N";
    # flexible: the last number), equals the number after the target's last "#### ".
    "numeric_match": ("exact_match_strict", "exact_match_flexible"),
    # BLEU / ROUGE of the completion against the row's `correct_answers` and `incorrect_answers`
    # fields (lm-eval's truthfulqa_gen): best true score (_max), minus best false (_diff), > 0 (_acc).
    "reference_similarity": tuple(
        f"{m}_{kind}" for m in ("bleu", "rouge1", "rouge2", "rougeL") for kind in ("max", "acc", "diff")
    ),
    # choice_loglikelihood's `correct`, plus BBQ's bias scores as per-sample values (scoring/bbq.py):
    # +1 biased / -1 anti-biased answer, 0 for "unknown" on ambiguous rows, absent on disambiguated.
    "bbq": ("correct", "bias_ambig", "bias_disambig"),
    # speed and memory of one (batch size, prompt length) grid point, from the raw timings and
    # bytes its row records (evalkit/scoring/measurement.py); the performance kind's scorer.
    "measurement": ("prefill_tokens_per_s", "decode_tokens_per_s", "ttft_ms", "peak_memory_mb", "memory_growth_mb"),
}

# Row fields a scorer reads besides the choices and the target; the loader requires them of every
# eval row, so a suite missing one fails validation rather than mid-run.
SCORER_FIELDS: dict[str, tuple[str, ...]] = {
    "bbq": ("context_condition", "unknown_label", "biased_label"),
}

SCORERS_FOR_KIND: dict[str, tuple[str, ...]] = {
    "multiple_choice": ("choice_loglikelihood", "mc2", "bbq"),
    "generation": ("refusal", "exact_match", "numeric_match", "reference_similarity", "strongreject"),
    "performance": ("measurement",),
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
    type: Literal["index", "text", "labels"] = Field(
        default="index",
        description="index: a 0-based index into choices; text: the expected text; "
        "labels: a list of 0/1, one per choice, 1 marking a true one (the mc2 scorer)",
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
    """How a generation suite decodes: greedy unless temperature > 0; `samples` completions per
    prompt (each with its own seeded random stream), whose per-sample values are averaged."""

    max_new_tokens: int = Field(default=256, ge=1, le=32768)
    stop: list[str] = Field(default_factory=list)
    temperature: float = Field(default=0.0, ge=0.0, le=10.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    top_k: int = Field(default=0, ge=0)
    samples: int = Field(default=1, ge=1, le=1000)

    @model_validator(mode="after")
    def _sampling_consistent(self) -> "Generation":
        if self.samples > 1 and self.temperature == 0.0:
            raise ValueError(
                f"samples: {self.samples} with temperature 0 repeats one greedy completion; "
                "set a temperature above 0 or samples: 1"
            )
        return self


class Performance(_Strict):
    """How a performance suite times each grid point (a data row with batch_size and prompt_length):
    `warmup` untimed rounds, then `repeats` timed rounds of one prefill and `new_tokens` decode
    steps on synthetic prompts drawn from the model's vocabulary with `seed` (evalkit/perf/)."""

    new_tokens: int = Field(default=32, ge=1, le=32768, description="decode steps timed per round")
    warmup: int = Field(default=1, ge=0, le=100, description="untimed rounds before the timed ones")
    repeats: int = Field(default=3, ge=1, le=1000, description="timed rounds; the median is reported")
    seed: int = Field(default=0, ge=0, description="seeds the synthetic prompt tokens")


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
    kind: Literal["multiple_choice", "generation", "performance"]
    data: list[DataFile] = Field(min_length=1)
    id_field: str | None = Field(default=None, description="row field holding a stable sample id")
    eval_split: str = Field(default="test", pattern=NAME_PATTERN)
    prompt: Prompt | None = Field(default=None, description="required, except in a performance suite")
    choices: Choices | None = None
    target: Target | None = None
    fewshot: FewShot | None = None
    generation: Generation | None = None
    scorer: str
    group_by: list[str] = Field(default_factory=list)
    metrics: list[Metric] = Field(min_length=1)
    harmful: Harmful | None = None
    performance: Performance | None = None

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
        if self.scorer in ("exact_match", "numeric_match") and self.target is None:
            problems.append(f"the {self.scorer} scorer needs a target")
        if (self.scorer == "mc2") != (self.target is not None and self.target.type == "labels"):
            problems.append("the mc2 scorer and target type labels go together; use both or neither")
        if self.kind == "generation" and self.choices is not None:
            problems.append("a generation suite has no choices")
        if self.kind == "performance" and self.performance is None:
            problems.append("a performance suite needs a performance block (new_tokens, warmup, repeats, seed)")
        if self.kind != "performance" and self.performance is not None:
            problems.append("a performance block belongs only in a suite of kind performance")
        if self.kind != "performance" and self.prompt is None:
            problems.append("a prompt is required (prompt: {template: ...}); only a performance suite has none")
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
