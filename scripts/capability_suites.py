"""Builders of the capability suites gsm8k, truthfulqa_mc2, truthfulqa_gen, xcopa and indonlu.

A maintainer tool, part of scripts/build_suites.py (whose main() adds BUILDERS from here, and
whose helpers these builders use): each one checks its upstream files against the sha256s their
SOURCE.md pins, writes the suite's data (a byte-identical copy, or a derived JSONL file made by a
documented, deterministic transformation), LICENSE, SOURCE.md (upstream provenance plus how
evalkit uses the data and its caveats) and suite.yaml. Prompts, target delimiters, stop strings
and metrics follow lm-evaluation-harness's task definitions (lm_eval/tasks/{gsm8k,truthfulqa,
xcopa}), so the scores are comparable with lm-eval's; IndoNLU has no lm-eval task, so its prompts
are evalkit's own, modelled on lm-eval's RTE and SST-2 prompts.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from pathlib import Path

from build_suites import (
    TRUTHFULQA_CITATION,
    TRUTHFULQA_PRIMER,
    TRUTHFULQA_TEMPLATE,
    Built,
    _indent,
    _yaml,
    jsonl,
    pinned_digests,
    q,
    read_pinned,
    suite_header,
)

# --------------------------------------------------------------------------------------------
# gsm8k

GSM8K_CITATION = """\
@misc{cobbe2021training,
      title={Training Verifiers to Solve Math Word Problems},
      author={Karl Cobbe and Vineet Kosaraju and Mohammad Bavarian and Jacob Hilton and Reiichiro Nakano and Christopher Hesse and John Schulman},
      year={2021},
      eprint={2110.14168},
      archivePrefix={arXiv},
      primaryClass={cs.LG}
}
@inproceedings{wei2022chain,
  title={Chain-of-Thought Prompting Elicits Reasoning in Large Language Models},
  author={Jason Wei and Xuezhi Wang and Dale Schuurmans and Maarten Bosma and Brian Ichter and Fei Xia and Ed Chi and Quoc V. Le and Denny Zhou},
  booktitle={Advances in Neural Information Processing Systems},
  year={2022}
}
"""
GSM8K_DESCRIPTION = "Grade-school maths word problems: chain-of-thought answer, final number exact match (lm-eval's gsm8k_cot)."
# lm-eval's gsm8k-cot.yaml: doc_to_text, target delimiter " ", few-shot delimiter "\n\n", `until`.
GSM8K_TEMPLATE = "Q: {question}\nA:"
GSM8K_STOP = ["Q:", "</s>", "<|im_end|>"]
# The eight chain-of-thought exemplars of Wei et al. (2022), as lm-eval's gsm8k-cot.yaml gives
# them (fewshot_config.samples, `target` the worked answer ending "The answer is N.").
GSM8K_COT_EXEMPLARS = [
    ("There are 15 trees in the grove. Grove workers will plant trees in the grove today. After they are done, there will be 21 trees. How many trees did the grove workers plant today?",
     "There are 15 trees originally. Then there were 21 trees after some more were planted. So there must have been 21 - 15 = 6. The answer is 6."),
    ("If there are 3 cars in the parking lot and 2 more cars arrive, how many cars are in the parking lot?",
     "There are originally 3 cars. 2 more cars arrive. 3 + 2 = 5. The answer is 5."),
    ("Leah had 32 chocolates and her sister had 42. If they ate 35, how many pieces do they have left in total?",
     "Originally, Leah had 32 chocolates. Her sister had 42. So in total they had 32 + 42 = 74. After eating 35, they had 74 - 35 = 39. The answer is 39."),
    ("Jason had 20 lollipops. He gave Denny some lollipops. Now Jason has 12 lollipops. How many lollipops did Jason give to Denny?",
     "Jason started with 20 lollipops. Then he had 12 after giving some to Denny. So he gave Denny 20 - 12 = 8. The answer is 8."),
    ("Shawn has five toys. For Christmas, he got two toys each from his mom and dad. How many toys does he have now?",
     "Shawn started with 5 toys. If he got 2 toys each from his mom and dad, then that is 4 more toys. 5 + 4 = 9. The answer is 9."),
    ("There were nine computers in the server room. Five more computers were installed each day, from monday to thursday. How many computers are now in the server room?",
     "There were originally 9 computers. For each of 4 days, 5 more computers were added. So 5 * 4 = 20 computers were added. 9 + 20 is 29. The answer is 29."),
    ("Michael had 58 golf balls. On tuesday, he lost 23 golf balls. On wednesday, he lost 2 more. How many golf balls did he have at the end of wednesday?",
     "Michael started with 58 golf balls. After losing 23 on tuesday, he had 58 - 23 = 35. After losing 2 more, he had 35 - 2 = 33 golf balls. The answer is 33."),
    ("Olivia has $23. She bought five bagels for $3 each. How much money does she have left?",
     "Olivia had 23 dollars. 5 bagels for 3 dollars each will be 5 x 3 = 15 dollars. So she has 23 - 15 dollars left. 23 - 15 is 8. The answer is 8."),
]


def build_gsm8k(shared: Path) -> Built:
    src = shared / "gsm8k"
    upstream_source = (src / "SOURCE.md").read_text(encoding="utf-8")
    data = read_pinned(src, "test.jsonl", pinned_digests(upstream_source))
    rows = [json.loads(line) for line in data.decode("utf-8").removesuffix("\n").split("\n")]
    if any(set(row) != {"question", "answer"} or "#### " not in row["answer"] for row in rows):
        raise SystemExit("gsm8k: a row is not {question, answer ending '#### N'}; check the data")

    built = Built()
    digest = built.add("data/test.jsonl", data)
    cot_digest = built.add("data/cot_exemplars.jsonl", jsonl([{"question": qn, "answer": a} for qn, a in GSM8K_COT_EXEMPLARS]))
    built.add("LICENSE", (src / "LICENSE").read_bytes())
    usage = _gsm8k_usage(len(rows), cot_digest)
    built.add("SOURCE.md", (upstream_source.rstrip("\n") + "\n\n" + usage).encode("utf-8"))
    yaml_lines = [
        *suite_header("gsm8k", GSM8K_DESCRIPTION, "MIT", GSM8K_CITATION, "generation", "test"),
        "data:",
        f"  - {{path: {q('data/test.jsonl')}, sha256: {q(digest)}, split: test}}",
        f"  - {{path: {q('data/cot_exemplars.jsonl')}, sha256: {q(cot_digest)}, split: cot}}",
        "prompt:",
        f"  template: {q(GSM8K_TEMPLATE)}",
        # The test rows' `answer` is the upstream worked solution ending "#### N" (the scorer
        # compares the number after "#### "); the exemplars' is their chain of thought (the shots).
        "target: {field: answer, type: text}",
        f"fewshot: {{split: cot, default: 8, max: 8, separator: {q(chr(10) * 2)}}}",
        "generation:",
        "  max_new_tokens: 256",
        f"  stop: [{', '.join(q(s) for s in GSM8K_STOP)}]",
        "scorer: numeric_match",
        "metrics:",
        (
            "  - {name: exact_match_strict, value: exact_match_strict, "
            f"description: {q('the number after The answer is (or ####) equals the reference')}}}"
        ),
        (
            "  - {name: exact_match_flexible, value: exact_match_flexible, "
            f"description: {q('the last number of the answer equals the reference')}}}"
        ),
    ]
    built.add("suite.yaml", _yaml(yaml_lines))
    return built


def _gsm8k_usage(n: int, cot_digest: str) -> str:
    return f"""## How evalkit uses it

This folder is the evalkit suite `gsm8k`, built by `scripts/build_suites.py` from the evalkit data
bundle: lm-evaluation-harness's `gsm8k_cot` task (chain of thought, 8-shot by default; `gsm8k:0shot`
for zero-shot). `test.jsonl` is here as `data/test.jsonl`, byte-identical ({n:,} rows; same sha256,
pinned again in `suite.yaml`). Sample ids are `test:<row>` (1-based).

- **Few-shot exemplars.** The data bundle has no train split, so the shots are the eight standard
  chain-of-thought exemplars of Wei et al. (2022, "Chain-of-Thought Prompting Elicits Reasoning in
  Large Language Models", the GSM8K prompt of its appendix), exactly as lm-evaluation-harness's
  `gsm8k-cot.yaml` lists them. They are written by the build script into
  `data/cot_exemplars.jsonl` (split `cot`, sha256 `{cot_digest}`), each
  `{{"question", "answer"}}` where `answer` is the worked answer ending "The answer is N.". They are
  not GSM8K items (they come from the paper, not from this repository's data), so they never overlap
  the test set. Every sample gets the same shots, in the same order as lm-eval (`first_n`).
- **Prompt.** `Q: <question>\\nA:`; each shot is `Q: <question>\\nA: <answer>`, shots separated by a
  blank line (lm-eval's target delimiter " " and few-shot delimiter "\\n\\n"). Greedy generation, at
  most 256 new tokens, stopped at `Q:`, `</s>` or `<|im_end|>` (lm-eval's `until`; the model's
  end-of-sequence token also stops it). The same stop strings hold at zero shots, as in lm-eval's
  `gsm8k_cot` run with `--num_fewshot 0`.
- **Scoring** (`numeric_match`, `evalkit/scoring/numeric.py`), with lm-eval's regexes: strict
  (`exact_match_strict`) takes the number after the first `#### ` (lm-eval `gsm8k`'s strict-match)
  or, failing that, after the first `The answer is ` followed by one more character (`gsm8k_cot`'s);
  flexible (`exact_match_flexible`) takes the last number-like run (`-?[$0-9.,]{{2,}}` or `-?[0-9]+`).
  Both the extracted text and the reference (the upstream answer) then lose commas, `$`, everything
  up to the last `#### ` and a final `.`, and are compared lower-cased: lm-eval's `exact_match`
  with its `regexes_to_ignore`. What each rule extracted is kept in every row (`extracted`).
- Caveat: the strict rule accepts either answer format, where each lm-eval task accepts only its
  own; a completion holding both formats (rare) can score differently from lm-eval. GSM8K has no
  categories, so results are overall only.
"""


# --------------------------------------------------------------------------------------------
# truthfulqa_mc2 and truthfulqa_gen

TRUTHFULQA_MC_UPSTREAM = "v0/mc_task.json"
TRUTHFULQA_CSV_UPSTREAM = "v0/TruthfulQA.csv"
MC2_DESCRIPTION = "Truthfulness: MC2, the normalised probability mass on the true answers (TruthfulQA, 817 questions)."
GEN_DESCRIPTION = "Truthfulness: greedy answers compared by BLEU and ROUGE with true and false references (TruthfulQA)."
# lm-eval's truthfulqa_gen.yaml: the primer, a blank line, then "Q: <question>" with no "A:" after
# it; no generation_kwargs, so greedy until its few-shot delimiter "\n\n", at most 256 tokens.
GEN_TEMPLATE = "Q: {question}"
GEN_STOP = ["\n\n"]


def _truthfulqa_csv(src: Path, pinned: dict[str, str]) -> list[dict[str, str]]:
    """The rows of v0/TruthfulQA.csv (UTF-8 with a byte-order mark, as the HF loader reads it)."""
    text = read_pinned(src, TRUTHFULQA_CSV_UPSTREAM, pinned).decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text, newline="")))


def _split_answers(field: str) -> list[str]:
    """A ";"-separated answer list, split and stripped as the Hugging Face `truthful_qa` loader does."""
    return [item.strip() for item in field.strip().split(";")]


def _format_answers(answers: list[str]) -> list[str]:
    """lm-eval's truthfulqa preprocess: strip, drop empty answers, end each with a period."""
    out = []
    for answer in (a.strip() for a in answers):
        if answer:
            out.append(answer if answer[-1] == "." else answer + ".")
    return out


def _categories(src: Path, pinned: dict[str, str]) -> dict[str, tuple[str, str]]:
    """Question (stripped) -> (Category, Type) from the CSV: the MC file has no categories."""
    return {row["Question"].strip(): (row["Category"], row["Type"]) for row in _truthfulqa_csv(src, pinned)}


def mc2_rows(mc_task: str, categories: dict[str, tuple[str, str]]) -> list[dict]:
    """{question, category, type, choices, labels}: mc2_targets in upstream order (as lm-eval)."""
    rows = []
    for number, item in enumerate(json.loads(mc_task), start=1):
        targets = item["mc2_targets"]
        if set(targets.values()) != {0, 1}:
            raise SystemExit(f"truthfulqa item {number}: mc2 needs true and false answers, got {targets}")
        category, kind = categories[item["question"].strip()]
        rows.append({
            "question": item["question"], "category": category, "type": kind,
            "choices": list(targets), "labels": list(targets.values()),
        })
    return rows


def gen_rows(table: list[dict[str, str]]) -> list[dict]:
    """One row per CSV row: HF `truthful_qa` (generation) fields, then lm-eval's preprocessing."""
    rows = []
    for number, row in enumerate(table, start=2):
        correct = _format_answers(_split_answers(row["Correct Answers"]))
        incorrect = _format_answers(_split_answers(row["Incorrect Answers"]))
        if "I have no comment." not in correct:
            correct.append("I have no comment.")  # lm-eval adds it to every question's true answers
        if not incorrect:
            raise SystemExit(f"truthfulqa csv line {number}: no incorrect answers")
        rows.append({
            "question": row["Question"].strip(), "category": row["Category"], "type": row["Type"],
            "best_answer": row["Best Answer"], "correct_answers": correct, "incorrect_answers": incorrect,
            "source": row["Source"],
        })
    return rows


def _truthfulqa_head(name: str, description: str, kind: str, rel: str, digest: str) -> list[str]:
    return [
        "format: evalkit.suite/v1",
        f"name: {name}",
        "version: 1.0.0",
        f"description: {q(description)}",
        "license: Apache-2.0",
        "license_file: LICENSE",
        "source: SOURCE.md",
        "citation: |",
        *_indent(TRUTHFULQA_CITATION),
        f"kind: {kind}",
        "eval_split: validation",
        "data:",
        f"  - {{path: {q(rel)}, sha256: {q(digest)}, split: validation}}",
    ]


def build_truthfulqa_mc2(shared: Path) -> Built:
    src = shared / "truthfulqa"
    upstream_source = (src / "SOURCE.md").read_text(encoding="utf-8")
    pinned = pinned_digests(upstream_source)
    rows = mc2_rows(read_pinned(src, TRUTHFULQA_MC_UPSTREAM, pinned).decode("utf-8"), _categories(src, pinned))

    built = Built()
    digest = built.add("data/mc2.jsonl", jsonl(rows))
    built.add("LICENSE", (src / "LICENSE").read_bytes())
    sizes = [len(row["choices"]) for row in rows]
    trues = [sum(row["labels"]) for row in rows]
    usage = _mc2_usage(len(rows), pinned, digest, (min(sizes), max(sizes)), (min(trues), max(trues)))
    built.add("SOURCE.md", (upstream_source.rstrip("\n") + "\n\n" + usage).encode("utf-8"))
    yaml_lines = [
        *_truthfulqa_head("truthfulqa_mc2", MC2_DESCRIPTION, "multiple_choice", "data/mc2.jsonl", digest),
        "prompt:",
        f"  description: {q(TRUTHFULQA_PRIMER)}",
        f"  template: {q(TRUTHFULQA_TEMPLATE)}",
        f"choices: {{field: choices, delimiter: {q(' ')}}}",
        "target: {field: labels, type: labels}",
        "scorer: mc2",
        "group_by: [category, type]",
        "metrics:",
        f"  - {{name: mc2, value: mc2, description: {q('normalised probability mass on the true answers')}}}",
    ]
    built.add("suite.yaml", _yaml(yaml_lines))
    return built


def _mc2_usage(n: int, pinned: dict[str, str], digest: str, sizes: tuple[int, int], trues: tuple[int, int]) -> str:
    return f"""## How evalkit uses it

This folder is the evalkit suite `truthfulqa_mc2`: TruthfulQA's multiple-choice setting, MC2,
built by `scripts/build_suites.py` from the evalkit data bundle. Like `truthfulqa_mc` it uses the
original 817-question release (the one of the Hugging Face `truthful_qa` dataset, lm-evaluation-
harness and most published numbers), not the 2025 top-level files.

| upstream file | sha256 |
|---|---|
| `{TRUTHFULQA_MC_UPSTREAM}` | `{pinned[TRUTHFULQA_MC_UPSTREAM]}` |
| `{TRUTHFULQA_CSV_UPSTREAM}` | `{pinned[TRUTHFULQA_CSV_UPSTREAM]}` |

Its one data file, `data/mc2.jsonl`, is **derived**: sha256 `{digest}`
(pinned again in `suite.yaml`), {n} rows, one per question of `{TRUTHFULQA_MC_UPSTREAM}` in the
same order, each `{{"question", "category", "type", "choices", "labels"}}`: `choices` are the keys of
the question's `mc2_targets` in upstream order ({sizes[0]} to {sizes[1]} answers), `labels` their
values (1 true, 0 false; {trues[0]} to {trues[1]} true answers per question). `category` and `type`
come from the row of `{TRUTHFULQA_CSV_UPSTREAM}` with the same question (stripped of surrounding
whitespace; every question has exactly one), since the MC file has none. Sample ids are
`mc2:<row>` (1-based). Re-running the build reproduces it byte for byte.

- The prompt is lm-evaluation-harness's `truthfulqa_mc2` (which includes `truthfulqa_mc1`'s): its
  fixed six-shot QA primer, then `Q: <question>\\nA:`; each answer, after a space, is scored by
  log-likelihood (not length-normalised).
- Metric: `mc2` (`evalkit/scoring/mc2.py`), lm-eval's `process_results_mc2`: each answer's
  probability exp(log-likelihood), normalised over the question's answers, summed over the true
  ones. evalkit subtracts the largest log-likelihood before exponentiating (the same quotient;
  lm-eval's plain exp can underflow to 0/0 for long answers on a confident model). Results overall,
  per `category` (38) and per `type` (Adversarial / Non-Adversarial).
- Caveat: answers are scored by their summed log-likelihood, not normalised by length, so MC2
  leans towards short answers; this is lm-eval's (and the paper's) definition, kept for
  comparability.
"""


def build_truthfulqa_gen(shared: Path) -> Built:
    src = shared / "truthfulqa"
    upstream_source = (src / "SOURCE.md").read_text(encoding="utf-8")
    pinned = pinned_digests(upstream_source)
    table = _truthfulqa_csv(src, pinned)
    rows = gen_rows(table)

    built = Built()
    digest = built.add("data/generation.jsonl", jsonl(rows))
    built.add("LICENSE", (src / "LICENSE").read_bytes())
    empty = sum(
        1 for row in table for a in _split_answers(row["Correct Answers"]) + _split_answers(row["Incorrect Answers"])
        if not a
    )
    added = sum(1 for row in table if "I have no comment." not in _format_answers(_split_answers(row["Correct Answers"])))
    usage = _gen_usage(len(rows), pinned, digest, empty, added)
    built.add("SOURCE.md", (upstream_source.rstrip("\n") + "\n\n" + usage).encode("utf-8"))
    metric = "the best {0} with a true reference beats the best with a false one"
    yaml_lines = [
        *_truthfulqa_head("truthfulqa_gen", GEN_DESCRIPTION, "generation", "data/generation.jsonl", digest),
        "prompt:",
        f"  description: {q(TRUTHFULQA_PRIMER)}",
        f"  template: {q(GEN_TEMPLATE)}",
        "generation:",
        "  max_new_tokens: 256",
        f"  stop: [{', '.join(q(s) for s in GEN_STOP)}]",
        "scorer: reference_similarity",
        "group_by: [category, type]",
        "metrics:",
        f"  - {{name: bleu_acc, value: bleu_acc, description: {q(metric.format('BLEU'))}}}",
        f"  - {{name: rouge1_acc, value: rouge1_acc, description: {q(metric.format('ROUGE-1'))}}}",
        f"  - {{name: rouge2_acc, value: rouge2_acc, description: {q(metric.format('ROUGE-2'))}}}",
        f"  - {{name: rougel_acc, value: rougeL_acc, description: {q(metric.format('ROUGE-Lsum'))}}}",
        f"  - {{name: bleu_max, value: bleu_max, description: {q('best BLEU (0-100) with a true reference')}}}",
    ]
    built.add("suite.yaml", _yaml(yaml_lines))
    return built


def _gen_usage(n: int, pinned: dict[str, str], digest: str, empty: int, added: int) -> str:
    return f"""## How evalkit uses it

This folder is the evalkit suite `truthfulqa_gen`: TruthfulQA's generation setting as
lm-evaluation-harness's `truthfulqa_gen` scores it (BLEU and ROUGE; not the paper's GPT-judge,
and not BLEURT, which lm-eval leaves out too). It uses the original 817-question release.

| upstream file | sha256 |
|---|---|
| `{TRUTHFULQA_CSV_UPSTREAM}` | `{pinned[TRUTHFULQA_CSV_UPSTREAM]}` |

Its one data file, `data/generation.jsonl`, is **derived**: sha256 `{digest}`
(pinned again in `suite.yaml`), {n} rows, one per CSV row in the same order, each
`{{"question", "category", "type", "best_answer", "correct_answers", "incorrect_answers", "source"}}`.
The CSV (UTF-8 with a byte-order mark) is read as the Hugging Face `truthful_qa` loader reads it
(the ";"-separated answer lists split and each answer stripped), then lm-eval's `process_docs_gen`
is applied: the question is stripped, empty answers are dropped ({empty} in all), every answer
gets a final "." if it has none, and "I have no comment." is added to the true answers
({added} questions lacked it). So the references in the file are exactly those lm-eval compares
with. Sample ids are `generation:<row>` (1-based).

- **Prompt.** lm-eval's: the six-shot QA primer, a blank line, then `Q: <question>`, with no `A:`
  after it (lm-eval's template ends there; the model usually continues with a line `A: ...`, and
  that text, `A:` included, is what is scored, as in lm-eval). Greedy, at most 256 new tokens,
  stopped at a blank line (lm-eval's default `until`, its few-shot delimiter).
- **Scoring** (`reference_similarity`, `evalkit/scoring/similarity.py`), lm-eval's
  `process_results_gen` with the same libraries and settings: sacrebleu sentence BLEU (`intl`
  tokenizer, exp smoothing) and rouge_score ROUGE-1/2/Lsum F-measure (" . " turned into line
  breaks), each against every true and every false reference. `<m>_acc` is 1 when the best score
  with a true reference exceeds the best with a false one; the row also keeps `<m>_max` and
  `<m>_diff` for all four measures. Everything is recomputed from the row (completion plus the
  row's references) by `evalkit verify`. Results overall, per `category` and per `type`.
- Caveat: BLEU and ROUGE reward word overlap, not truth; lm-eval's numbers from this setting are
  known to favour short, hedging answers. Treat them as comparable to lm-eval's, not to the paper's
  human or GPT-judge truthfulness.
"""


# --------------------------------------------------------------------------------------------
# xcopa

XCOPA_CITATION = """\
@inproceedings{ponti2020xcopa,
  title={{XCOPA: A} Multilingual Dataset for Causal Commonsense Reasoning},
  author={Edoardo M. Ponti, Goran Glava\\v{s}, Olga Majewska, Qianchu Liu, Ivan Vuli\\'{c} and Anna Korhonen},
  booktitle={Proceedings of the 2020 Conference on Empirical Methods in Natural Language Processing (EMNLP)},
  year={2020},
  url={https://ducdauge.github.io/files/xcopa.pdf}
}
"""
XCOPA_DESCRIPTION = "Causal commonsense in 11 languages: the more plausible cause or effect of a premise (lm-eval's xcopa)."
# lm-eval's xcopa utils.py: the connector per language for question = cause / effect.
XCOPA_CONNECTORS: dict[str, dict[str, str]] = {
    "et": {"cause": "sest", "effect": "seetõttu"},
    "ht": {"cause": "poukisa", "effect": "donk sa"},
    "id": {"cause": "karena", "effect": "maka"},
    "it": {"cause": "perché", "effect": "quindi"},
    "qu": {"cause": "imataq", "effect": "chaymi"},
    "sw": {"cause": "kwa sababu", "effect": "kwa hiyo"},
    "ta": {"cause": "காரணமாக", "effect": "எனவே"},
    "th": {"cause": "เพราะ", "effect": "ดังนั้น"},
    "tr": {"cause": "çünkü", "effect": "bu yüzden"},
    "vi": {"cause": "bởi vì", "effect": "vì vậy"},
    "zh": {"cause": "因为", "effect": "所以"},
}
XCOPA_FIELDS = ("premise", "choice1", "choice2", "question", "label", "idx", "changed")


def xcopa_rows(text: str, language: str) -> list[dict]:
    """The upstream rows, each with lm-eval's rendered prompt parts added: `context` (the premise,
    stripped, its last character dropped, then a space and the connector) and `choices` (each
    alternative with its first character lower-cased)."""
    rows = []
    for number, line in enumerate(text.removesuffix("\n").split("\n"), start=1):
        item = json.loads(line)
        if tuple(item) != XCOPA_FIELDS or item["question"] not in ("cause", "effect"):
            raise SystemExit(f"xcopa {language} line {number}: unexpected fields {list(item)}")
        connector = XCOPA_CONNECTORS[language][item["question"]]
        rows.append({
            **item,
            "connector": connector,
            "context": item["premise"].strip()[:-1] + f" {connector}",
            "choices": [c[0].lower() + c[1:] for c in (item["choice1"], item["choice2"])],
        })
    return rows


def build_xcopa(shared: Path) -> Built:
    src = shared / "xcopa"
    upstream_source = (src / "SOURCE.md").read_text(encoding="utf-8")
    pinned = pinned_digests(upstream_source)
    built = Built()
    entries = []
    cut: Counter[str] = Counter()
    counts: dict[str, int] = {}
    for split, stem in (("test", "test"), ("validation", "val")):
        for language in sorted(XCOPA_CONNECTORS):
            name = f"{language}/{stem}.{language}.jsonl"
            rows = xcopa_rows(read_pinned(src, name, pinned).decode("utf-8"), language)
            counts[f"{split}/{language}"] = len(rows)
            cut[language] += sum(1 for row in rows if row["premise"].strip()[-1] not in ".。")
            digest = built.add(f"data/{stem}.{language}.jsonl", jsonl(rows))
            entries.append(
                f"  - {{path: {q(f'data/{stem}.{language}.jsonl')}, sha256: {q(digest)}, split: {split}, "
                f"fields: {{language: {language}}}}}"
            )
    built.add("LICENSE", (src / "LICENSE").read_bytes())
    built.add("SOURCE.md", (upstream_source.rstrip("\n") + "\n\n" + _xcopa_usage(counts, cut)).encode("utf-8"))
    yaml_lines = [
        *suite_header("xcopa", XCOPA_DESCRIPTION, "CC-BY-4.0", XCOPA_CITATION, "multiple_choice", "test"),
        "data:",
        *entries,
        "prompt:",
        f"  template: {q('{context}')}",
        f"choices: {{field: choices, delimiter: {q(' ')}}}",
        "target: {field: label, type: index}",
        f"fewshot: {{split: validation, match: language, default: 0, max: 5, separator: {q(chr(10) * 2)}}}",
        "scorer: choice_loglikelihood",
        "group_by: [language, question]",
        "metrics:",
        "  - {name: accuracy, value: correct}",
    ]
    built.add("suite.yaml", _yaml(yaml_lines))
    return built


def _xcopa_usage(counts: dict[str, int], cut: Counter[str]) -> str:
    connectors = "\n".join(
        f"| `{lang}` | {c['cause']} | {c['effect']} |" for lang, c in sorted(XCOPA_CONNECTORS.items())
    )
    n_test = sum(v for k, v in counts.items() if k.startswith("test/"))
    n_val = sum(v for k, v in counts.items() if k.startswith("validation/"))
    cut_text = ", ".join(f"{lang}: {cut[lang]}" for lang in sorted(cut) if cut[lang])
    return f"""## How evalkit uses it

This folder is the evalkit suite `xcopa`: all 11 languages, with lm-evaluation-harness's `xcopa_<lang>`
prompt, built by `scripts/build_suites.py` from the evalkit data bundle. Its data files are
**derived**: `data/test.<lang>.jsonl` ({n_test:,} rows) and `data/val.<lang>.jsonl` ({n_val:,} rows) hold
the upstream rows of the files above, in the same order, each upstream field unchanged, plus three
fields the build adds so that the prompt needs no code at run time:

- `connector`: lm-eval's word for the row's `question` in its language (table below);
- `context`: lm-eval's `doc_to_text`, i.e. the premise stripped, its last character dropped (meant
  to be the final full stop), then a space and the connector;
- `choices`: lm-eval's `doc_to_choice`, each alternative with its first character lower-cased.

| language | cause | effect |
|---|---|---|
{connectors}

Each data file carries the constant field `language`; sample ids are `<file stem>:<row>` (e.g.
`test.id:1`). The prompt is `context`; each choice, after a space (lm-eval's target delimiter), is
scored by log-likelihood; `label` (0 or 1) is the right one. Metric: `accuracy` (lm-eval's `acc`),
overall (all 5,500 test items pooled; lm-eval's `xcopa` group averages the 11 languages, which is the
same number since every language has 500) and per `language` and `question` (cause / effect).
Few-shot examples (`xcopa:Nshot`, at most 5) are the first rows of the same language's validation
file; lm-eval samples them at random instead, so only 0-shot numbers are directly comparable.

- Caveat (inherited from lm-eval): the last character of every premise is dropped, but not every
  premise ends with a full stop ({cut_text} do not, in test and validation together:
  Thai writes no full stop and most Tamil premises have none), so for those a letter of the
  premise's last word is cut. evalkit keeps this, for comparability with lm-eval's numbers.
- Only the human translations (`data/`) are used, not the machine-translated `data-gmt/`.
"""


# --------------------------------------------------------------------------------------------
# indonlu

INDONLU_CITATION = """\
@inproceedings{wilie2020indonlu,
  title={IndoNLU: Benchmark and Resources for Evaluating Indonesian Natural Language Understanding},
  author={Bryan Wilie and Karissa Vincentio and Genta Indra Winata and Samuel Cahyawijaya and Xiaohong Li and Zhi Yuan Lim and Sidik Soleman and Rahmad Mahendra and Pascale Fung and Syafri Bahar and Ayu Purwarianti},
  booktitle={Proceedings of the 1st Conference of the Asia-Pacific Chapter of the Association for Computational Linguistics and the 10th International Joint Conference on Natural Language Processing},
  year={2020}
}
"""
INDONLU_DESCRIPTION = "Indonesian understanding: sentiment (SmSA), emotion (EmoT), entailment (WReTE) by label-word likelihood."
INDONLU_TEMPLATE = "{text}\nPertanyaan: {question}\nJawaban:"
# task -> (upstream file, question, {upstream label: Indonesian label word} in choice order).
INDONLU_TASKS: dict[str, tuple[str, str, dict[str, str]]] = {
    "smsa": (
        "smsa_doc-sentiment-prosa/valid_preprocess.tsv",
        "Apakah sentimen teks ini positif, netral, atau negatif?",
        {"positive": "positif", "neutral": "netral", "negative": "negatif"},
    ),
    "emot": (
        "emot_emotion-twitter/valid_preprocess.csv",
        "Apa emosi dalam tweet ini: marah, takut, senang, cinta, atau sedih?",
        {"anger": "marah", "fear": "takut", "happy": "senang", "love": "cinta", "sadness": "sedih"},
    ),
    "wrete": (
        "wrete_entailment-ui/valid_preprocess.csv",
        "{sent_B} Benar atau salah?",
        {"Entail_or_Paraphrase": "benar", "NotEntail": "salah"},
    ),
}


def indonlu_rows(task: str, text: str) -> list[dict]:
    """{text, question, choices, answer, label}: the task's text, its question (for WReTE the second
    sentence, as lm-eval's RTE prompt asks), its label words, the index of the upstream label among
    them, and the upstream label itself."""
    _, question, words = INDONLU_TASKS[task]
    if task == "smsa":  # no header, one `text<TAB>label` per line
        pairs = [line.split("\t") for line in text.removesuffix("\n").split("\n")]
        if any(len(p) != 2 for p in pairs):
            raise SystemExit("indonlu smsa: a line is not text<TAB>label")
        items = [({"text": t}, label) for t, label in pairs]
    else:
        table = list(csv.DictReader(io.StringIO(text, newline="")))
        if task == "emot":
            items = [({"text": r["tweet"]}, r["label"]) for r in table]
        else:
            items = [({"text": r["sent_A"], "sent_B": r["sent_B"]}, r["label"]) for r in table]
    rows = []
    for parts, label in items:
        if label not in words:
            raise SystemExit(f"indonlu {task}: unknown label {label!r}; expected one of {sorted(words)}")
        rows.append({
            "text": parts["text"],
            "question": question.format(**parts),
            "choices": list(words.values()),
            "answer": list(words).index(label),
            "label": label,
        })
    return rows


def build_indonlu(shared: Path) -> Built:
    src = shared / "indonlu"
    upstream_source = (src / "SOURCE.md").read_text(encoding="utf-8")
    pinned = pinned_digests(upstream_source)
    built = Built()
    entries = []
    counts: dict[str, Counter[str]] = {}
    for task, (upstream, _, _) in INDONLU_TASKS.items():
        rows = indonlu_rows(task, read_pinned(src, upstream, pinned).decode("utf-8"))
        counts[task] = Counter(row["label"] for row in rows)
        digest = built.add(f"data/{task}.jsonl", jsonl(rows))
        entries.append(
            f"  - {{path: {q(f'data/{task}.jsonl')}, sha256: {q(digest)}, split: validation, fields: {{task: {task}}}}}"
        )
    built.add("LICENSE", (src / "LICENSE").read_bytes())
    built.add("SOURCE.md", (upstream_source.rstrip("\n") + "\n\n" + _indonlu_usage(counts)).encode("utf-8"))
    yaml_lines = [
        *suite_header("indonlu", INDONLU_DESCRIPTION, "Apache-2.0", INDONLU_CITATION, "multiple_choice", "validation"),
        "data:",
        *entries,
        "prompt:",
        f"  template: {q(INDONLU_TEMPLATE)}",
        f"choices: {{field: choices, delimiter: {q(' ')}}}",
        "target: {field: answer, type: index}",
        "scorer: choice_loglikelihood",
        "group_by: [task, label]",
        "metrics:",
        *(
            f"  - {{name: accuracy_{task}, value: correct, where: {{task: {task}}}, "
            f"description: {q(f'{name} accuracy')}}}"
            for task, name in (("smsa", "SmSA sentiment"), ("emot", "EmoT emotion"), ("wrete", "WReTE entailment"))
        ),
        (
            "  - {name: accuracy, value: correct, "
            f"description: {q('all three tasks pooled (mostly SmSA: read the per-task metrics)')}}}"
        ),
    ]
    built.add("suite.yaml", _yaml(yaml_lines))
    return built


def _indonlu_usage(counts: dict[str, Counter[str]]) -> str:
    def dist(task: str) -> str:
        return ", ".join(f"{label} {n}" for label, n in sorted(counts[task].items()))

    words = "\n".join(
        f"| `{task}` | {question} | {', '.join(f'{k} → {v}' for k, v in labels.items())} |"
        for task, (_, question, labels) in INDONLU_TASKS.items()
    )
    total = sum(sum(c.values()) for c in counts.values())
    return f"""## How evalkit uses it

This folder is the evalkit suite `indonlu`: the three IndoNLU tasks of the data bundle in one suite,
each sample carrying a `task` field (`smsa`, `emot`, `wrete`) and results reported per task.
One suite rather than three, so that `--suite indonlu` runs all of Indonesian understanding at once
and `--limit` spreads its subset over the three tasks; the pooled `accuracy` ({total:,} samples) is
dominated by SmSA, so read `accuracy_smsa`, `accuracy_emot` and `accuracy_wrete`.

Its data files are **derived**, one per task (`data/smsa.jsonl`, `data/emot.jsonl`,
`data/wrete.jsonl`), rows in upstream order, each `{{"text", "question", "choices", "answer", "label"}}`:
`text` is the upstream text (SmSA `text`, EmoT `tweet`, WReTE `sent_A`), `question` the task's
question in Indonesian (for WReTE it begins with `sent_B`), `choices` the label words, `answer` the
index of the upstream `label` (kept as is) among them. The SmSA file has no header row and is split
on its one tab per line. Sample ids are `<task>:<row>` (1-based).

lm-evaluation-harness has no IndoNLU task, so the prompt is evalkit's own, modelled on lm-eval's
SST-2 and RTE prompts in Indonesian: `<text>\\nPertanyaan: <question>\\nJawaban:`, and each label
word, after a space, is scored by log-likelihood (not length-normalised: the words are short and
of similar length).

| task | question | label → label word |
|---|---|---|
{words}

- Label counts: SmSA {dist("smsa")}; EmoT {dist("emot")}; WReTE {dist("wrete")}.
- Caveats: these are the validation splits (the public test files of most IndoNLU tasks are
  label-masked), so numbers are not the paper's test-set numbers; the paper reports macro-F1,
  evalkit accuracy (per-label accuracy, i.e. recall, is in the `label` breakdown). WReTE has only
  50 items, so its standard error is large (about 7 points). The texts are the upstream
  "preprocessed" files (lower-cased, tokenised with spaces around punctuation for SmSA; tweets
  with `[USERNAME]` placeholders for EmoT). The corpora come from several institutions and are
  distributed under the repository licence (Apache-2.0; the IndoNLU README badge says MIT):
  check the IndoNLU README and paper for task-specific terms before commercial use.
- No few-shot examples: the training splits are not in the data bundle.
"""


BUILDERS = {
    "gsm8k": build_gsm8k,
    "indonlu": build_indonlu,
    "truthfulqa_gen": build_truthfulqa_gen,
    "truthfulqa_mc2": build_truthfulqa_mc2,
    "xcopa": build_xcopa,
}
