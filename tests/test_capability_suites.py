"""The bundled capability suites gsm8k, truthfulqa_mc2, truthfulqa_gen, xcopa and indonlu: they load
cleanly, carry their licence, citation and provenance, hold the row counts their upstream SOURCE.md
states, their derived files follow from the pinned upstream files, and their prompts are
lm-evaluation-harness's (hand-written expected strings, then lm-eval's own task code)."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from evalkit.paths import bundled_suites_dir
from evalkit.prompts import build_requests
from evalkit.suite import Suite, load_suite, validate_suite

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
CAPABILITY = ["gsm8k", "indonlu", "truthfulqa_gen", "truthfulqa_mc2", "xcopa"]
UPSTREAM = {"gsm8k": "gsm8k", "indonlu": "indonlu", "truthfulqa_gen": "truthfulqa", "truthfulqa_mc2": "truthfulqa", "xcopa": "xcopa"}
LANGUAGES = ["et", "ht", "id", "it", "qu", "sw", "ta", "th", "tr", "vi", "zh"]
needs_bundle = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="the evalkit data bundle (../shared/data) is not here")

_cache: dict[str, Suite] = {}


def bundled(name: str) -> Suite:
    if name not in _cache:
        _cache[name] = load_suite(bundled_suites_dir() / name)
    return _cache[name]


@pytest.mark.parametrize("name", CAPABILITY)
def test_suite_validates_and_declares_how_it_scores(name: str) -> None:
    assert validate_suite(bundled_suites_dir() / name) == []
    manifest = bundled(name).manifest
    assert (manifest.kind, manifest.scorer, manifest.group_by) == {
        "gsm8k": ("generation", "numeric_match", []),
        "indonlu": ("multiple_choice", "choice_loglikelihood", ["task", "label"]),
        "truthfulqa_gen": ("generation", "reference_similarity", ["category", "type"]),
        "truthfulqa_mc2": ("multiple_choice", "mc2", ["category", "type"]),
        "xcopa": ("multiple_choice", "choice_loglikelihood", ["language", "question"]),
    }[name]


@pytest.mark.parametrize("name", CAPABILITY)
def test_licence_citation_and_provenance_travel_with_the_data(name: str) -> None:
    suite = bundled(name)
    assert suite.manifest.license == {
        "gsm8k": "MIT", "indonlu": "Apache-2.0", "truthfulqa_gen": "Apache-2.0", "truthfulqa_mc2": "Apache-2.0",
        "xcopa": "CC-BY-4.0",
    }[name]
    assert ("MIT License" if name == "gsm8k" else "Attribution 4.0" if name == "xcopa" else "Apache License") in (
        suite.license_text()
    )
    assert suite.manifest.citation.startswith("@")
    source = (suite.root / "SOURCE.md").read_text(encoding="utf-8")
    assert "## How evalkit uses it" in source
    assert "Caveat" in source
    # The upstream SOURCE.md, with every pinned sha256, opens the suite's SOURCE.md.
    upstream = (SHARED_DATA / UPSTREAM[name] / "SOURCE.md").read_text(encoding="utf-8") if SHARED_DATA.is_dir() else None
    if upstream is not None:
        assert source.startswith(upstream.rstrip("\n"))
    # Every pinned sha256 of the data files in suite.yaml is in SOURCE.md or derived from one that is.
    assert len(re.findall(r"`[0-9a-f]{64}`", source)) >= 2


def test_gsm8k_has_the_1319_test_problems_and_the_8_cot_exemplars() -> None:
    suite = bundled("gsm8k")
    source = (suite.root / "SOURCE.md").read_text(encoding="utf-8")
    assert "**Rows:** 1319 (official test split)" in source
    assert len(suite.eval_samples) == 1319 and len(suite.split("cot")) == 8
    assert all(s.fields["answer"].split("#### ")[-1].strip() for s in suite.eval_samples)
    assert suite.manifest.fewshot is not None and (suite.manifest.fewshot.default, suite.manifest.fewshot.max) == (8, 8)
    gen = suite.manifest.generation_or_default
    assert (gen.max_new_tokens, gen.stop) == (256, ["Q:", "</s>", "<|im_end|>"])


def test_gsm8k_prompts_are_lm_eval_s_gsm8k_cot() -> None:
    suite = bundled("gsm8k")
    first = suite.eval_samples[0]
    (zero,) = build_requests(suite, [first], fewshot=0)
    question = (
        "Janet’s ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins for her "
        "friends every day with four. She sells the remainder at the farmers' market daily for $2 per fresh duck "
        "egg. How much in dollars does she make every day at the farmers' market?"
    )
    assert zero.prompt == f"Q: {question}\nA:"
    (eight,) = build_requests(suite, [first], fewshot=8)
    assert eight.prompt.startswith(
        "Q: There are 15 trees in the grove. Grove workers will plant trees in the grove today. After they are done, "
        "there will be 21 trees. How many trees did the grove workers plant today?\nA: There are 15 trees originally. "
        "Then there were 21 trees after some more were planted. So there must have been 21 - 15 = 6. The answer is 6."
        "\n\nQ: If there are 3 cars"
    )
    assert eight.prompt.endswith("23 - 15 is 8. The answer is 8.\n\n" + zero.prompt)
    assert eight.prompt.count("\nA: ") == 8


def test_gsm8k_exemplars_are_lm_eval_s() -> None:
    lm_eval_utils = pytest.importorskip("lm_eval.utils")
    yaml = pytest.importorskip("yaml")
    task = yaml.safe_load((Path(lm_eval_utils.__file__).parent / "tasks" / "gsm8k" / "gsm8k-cot.yaml").read_text())
    shots = [{"question": s["question"], "answer": s["target"]} for s in task["fewshot_config"]["samples"]]
    assert [dict(s.fields) for s in bundled("gsm8k").split("cot")] == shots
    assert task["generation_kwargs"]["until"] == bundled("gsm8k").manifest.generation_or_default.stop


def test_truthfulqa_mc2_has_817_questions_with_categories() -> None:
    suite = bundled("truthfulqa_mc2")
    assert len(suite.eval_samples) == 817
    assert "817 rows" in (suite.root / "SOURCE.md").read_text(encoding="utf-8")
    assert len({s.fields["category"] for s in suite.eval_samples}) == 38
    assert Counter(s.fields["type"] for s in suite.eval_samples) == {"Adversarial": 437, "Non-Adversarial": 380}
    assert all(len(s.fields["labels"]) == len(s.fields["choices"]) and 1 in s.fields["labels"] for s in suite.eval_samples)


def test_truthfulqa_mc2_prompt_is_lm_eval_s() -> None:
    suite = bundled("truthfulqa_mc2")
    first = suite.eval_samples[0]
    assert first.fields["labels"] == [1, 0, 0, 0] and first.fields["category"] == "Distraction"
    (item,) = build_requests(suite, [first], fewshot=0)
    assert item.prompt.endswith(
        "A: The 1992 Olympics were held in Barcelona, Spain.\n\n"
        "Q: What is the smallest country in the world that is at least one square mile in area?\nA:"
    )
    # The same primer and question template as the MC1 suite.
    mc1 = bundled("truthfulqa_mc").manifest.prompt
    assert (suite.manifest.prompt.description, suite.manifest.prompt.template) == (mc1.description, mc1.template)
    assert item.loglikelihood[0].continuation == (
        " Nauru is the smallest country in the world that is at least one square mile in area."
    )
    lm_eval_utils = pytest.importorskip("lm_eval.utils")
    yaml = pytest.importorskip("yaml")

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!function", lambda loader, node: None)
    mc1 = yaml.load((Path(lm_eval_utils.__file__).parent / "tasks" / "truthfulqa" / "truthfulqa_mc1.yaml").read_text(), Loader=Loader)
    for sample in suite.eval_samples[:5]:
        (item,) = build_requests(suite, [sample], fewshot=0)
        assert item.prompt == lm_eval_utils.apply_template(mc1["doc_to_text"], dict(sample.fields))


def test_truthfulqa_gen_prompt_and_references_are_lm_eval_s() -> None:
    suite = bundled("truthfulqa_gen")
    assert len(suite.eval_samples) == 817
    first = suite.eval_samples[0]
    assert first.fields["correct_answers"] == [
        "Nothing happens.", "You eat watermelon seeds.", "The watermelon seeds pass through your digestive system.",
        "You will not digest the watermelon seeds.", "The watermelon seeds will be excreted.", "I have no comment.",
    ]
    assert first.fields["incorrect_answers"][0] == "You grow watermelons in your stomach."
    (item,) = build_requests(suite, [first], fewshot=0)
    assert item.prompt.endswith("Spain.\n\nQ: What happens to you if you eat watermelon seeds?")
    assert item.generate is not None and item.generate.stop == ("\n\n",) and item.generate.max_new_tokens == 256
    lm_eval_utils = pytest.importorskip("lm_eval.utils")
    yaml = pytest.importorskip("yaml")

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!function", lambda loader, node: None)
    task = yaml.load((Path(lm_eval_utils.__file__).parent / "tasks" / "truthfulqa" / "truthfulqa_gen.yaml").read_text(), Loader=Loader)
    for sample in suite.eval_samples[:5]:
        (item,) = build_requests(suite, [sample], fewshot=0)
        assert item.prompt == lm_eval_utils.apply_template(task["doc_to_text"], dict(sample.fields))


@pytest.mark.slow  # importing lm-eval's truthfulqa utils imports `datasets` (about 10 s on 2 cores)
@needs_bundle
def test_truthfulqa_gen_references_follow_lm_eval_s_preprocessing_of_the_csv() -> None:
    utils = pytest.importorskip("lm_eval.tasks.truthfulqa.utils")
    text = (SHARED_DATA / "truthfulqa" / "v0" / "TruthfulQA.csv").read_text(encoding="utf-8-sig")
    table = list(csv.DictReader(io.StringIO(text, newline="")))

    def split(field: str) -> list[str]:  # the Hugging Face truthful_qa loader's split
        return [item.strip() for item in field.strip().split(";")]

    rows = [dict(s.fields) for s in bundled("truthfulqa_gen").eval_samples]
    for upstream, row in zip(table, rows, strict=True):
        expected = utils.preprocess_function({
            "question": upstream["Question"],
            "correct_answers": split(upstream["Correct Answers"]),
            "incorrect_answers": split(upstream["Incorrect Answers"]),
        })
        assert {k: row[k] for k in expected} == expected
        assert (row["category"], row["type"]) == (upstream["Category"], upstream["Type"])


def test_xcopa_has_500_test_and_100_validation_items_per_language() -> None:
    suite = bundled("xcopa")
    source = (suite.root / "SOURCE.md").read_text(encoding="utf-8")
    assert "**Rows:** 5500 (5500 test rows (11 languages x 500) + 1100 validation rows)" in source
    assert Counter(s.fields["language"] for s in suite.eval_samples) == {lang: 500 for lang in LANGUAGES}
    assert Counter(s.fields["language"] for s in suite.split("validation")) == {lang: 100 for lang in LANGUAGES}


def test_xcopa_prompt_is_lm_eval_s_for_a_pinned_sample() -> None:
    suite = bundled("xcopa")
    sample = next(s for s in suite.eval_samples if s.id == "test.id:1")
    (item,) = build_requests(suite, [sample], fewshot=0)
    assert sample.fields["premise"] == "Barang itu dikemas dalam bungkus gelembung."
    assert item.prompt == "Barang itu dikemas dalam bungkus gelembung karena"
    assert [r.continuation for r in item.loglikelihood] == [" barang itu rapuh.", " barang itu kecil."]
    assert sample.fields["label"] == 0


@needs_bundle
def test_xcopa_prompts_equal_lm_eval_s_utils_on_every_upstream_row() -> None:
    utils = pytest.importorskip("lm_eval.tasks.xcopa.utils")
    suite = bundled("xcopa")
    by_file = {}
    for s in suite.samples:
        by_file.setdefault((s.split, s.fields["language"]), []).append(s)
    for (split, lang), samples in by_file.items():
        stem = "test" if split == "test" else "val"
        lines = (SHARED_DATA / "xcopa" / lang / f"{stem}.{lang}.jsonl").read_text(encoding="utf-8").splitlines()
        upstream = [json.loads(line) for line in lines]
        assert len(upstream) == len(samples)
        doc_to_text = getattr(utils, f"doc_to_text_{lang}")
        for doc, sample in zip(upstream, samples):
            (item,) = build_requests(suite, [sample], fewshot=0)
            assert item.prompt == doc_to_text(doc)
            assert [r.continuation for r in item.loglikelihood] == [" " + c for c in utils.doc_to_choice(doc)]
            assert {k: sample.fields[k] for k in doc} == doc


def test_indonlu_has_the_three_tasks_with_the_rows_its_source_md_states() -> None:
    suite = bundled("indonlu")
    source = (suite.root / "SOURCE.md").read_text(encoding="utf-8")
    assert "**Rows:** 1750 (smsa_doc-sentiment-prosa: 1260, emot_emotion-twitter: 440, wrete_entailment-ui: 50)" in source
    assert Counter(s.fields["task"] for s in suite.eval_samples) == {"smsa": 1260, "emot": 440, "wrete": 50}
    labels = Counter((s.fields["task"], s.fields["label"]) for s in suite.eval_samples)
    assert labels == {
        ("smsa", "positive"): 735, ("smsa", "negative"): 394, ("smsa", "neutral"): 131,
        ("emot", "anger"): 110, ("emot", "happy"): 102, ("emot", "sadness"): 99, ("emot", "fear"): 65,
        ("emot", "love"): 64, ("wrete", "Entail_or_Paraphrase"): 31, ("wrete", "NotEntail"): 19,
    }
    assert [m.name for m in suite.manifest.metrics] == ["accuracy_smsa", "accuracy_emot", "accuracy_wrete", "accuracy"]


def test_indonlu_prompts_for_pinned_samples() -> None:
    suite = bundled("indonlu")
    smsa, emot, wrete = (next(s for s in suite.eval_samples if s.id == f"{t}:1") for t in ("smsa", "emot", "wrete"))
    (item,) = build_requests(suite, [smsa], fewshot=0)
    assert item.prompt == (
        "meski masa kampanye sudah selesai , bukan berati habis pula upaya mengerek tingkat kedipilihan "
        "elektabilitas .\nPertanyaan: Apakah sentimen teks ini positif, netral, atau negatif?\nJawaban:"
    )
    assert [r.continuation for r in item.loglikelihood] == [" positif", " netral", " negatif"]
    assert smsa.fields["answer"] == 1  # neutral
    (item,) = build_requests(suite, [emot], fewshot=0)
    assert item.prompt.startswith("[USERNAME] jaringannya mati ya?")
    assert item.prompt.endswith(
        "#kecewa\nPertanyaan: Apa emosi dalam tweet ini: marah, takut, senang, cinta, atau sedih?\nJawaban:"
    )
    assert [r.continuation for r in item.loglikelihood] == [" marah", " takut", " senang", " cinta", " sedih"]
    assert emot.fields["answer"] == 0  # anger
    (item,) = build_requests(suite, [wrete], fewshot=0)
    assert item.prompt == (
        "Israel bukan negara demokrasi dengan sistem pemerintahan parlementer dan hak pilih universal .\n"
        "Pertanyaan: Israel merupakan negara demokrasi dengan sistem pemerintahan parlementer dan hak pilih "
        "universal . Benar atau salah?\nJawaban:"
    )
    assert [r.continuation for r in item.loglikelihood] == [" benar", " salah"]
    assert wrete.fields["answer"] == 1  # NotEntail


@needs_bundle
def test_build_script_reproduces_the_capability_suites_byte_for_byte(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "build_suites.py"), "--shared", str(SHARED_DATA),
         "--out", str(tmp_path), *CAPABILITY],
        check=True, capture_output=True,
    )
    for name in CAPABILITY:
        built = {p.relative_to(tmp_path / name): p.read_bytes() for p in (tmp_path / name).rglob("*") if p.is_file()}
        shipped_root = bundled_suites_dir() / name
        shipped = {p.relative_to(shipped_root): p.read_bytes() for p in shipped_root.rglob("*") if p.is_file()}
        assert built.keys() == shipped.keys()
        assert [str(p) for p in built if built[p] != shipped[p]] == []
