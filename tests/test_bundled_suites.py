"""The bundled suites ship whole and intact: they load cleanly, their bytes match their locks, and
their row counts match the published datasets."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import rfc8785

from evalkit.paths import bundled_suites_dir
from evalkit.suite import Suite, list_bundled_suites, load_suite, validate_suite

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
BUNDLED = [
    "advbench", "bbq", "harmbench", "simple_safety_tests",  # sorted in below
    "strongreject",
    "perf",
    "gsm8k", "indonlu", "mmlu", "piqa", "truthfulqa_gen", "truthfulqa_mc", "truthfulqa_mc2", "xcopa", "xstest"
]

_cache: dict[str, Suite] = {}


def bundled(name: str) -> Suite:
    """Each bundled suite is loaded once per test session (MMLU has 14,327 rows)."""
    if name not in _cache:
        _cache[name] = load_suite(bundled_suites_dir() / name)
    return _cache[name]


def test_list_bundled_suites_lists_every_suite() -> None:
    infos = list_bundled_suites()
    assert [info.name for info in infos] == sorted(BUNDLED)
    for info in infos:
        assert info.path.name == info.name  # a bundled suite is found by its folder name
        assert info.version == "1.0.0"
    assert {info.name: (info.kind, info.license) for info in infos} == {
        "advbench": ("generation", "MIT"),
        "bbq": ("multiple_choice", "CC-BY-4.0"),
        "harmbench": ("generation", "MIT"),
        "simple_safety_tests": ("generation", "CC-BY-4.0"),
        "gsm8k": ("generation", "MIT"),
        "indonlu": ("multiple_choice", "Apache-2.0"),
        "mmlu": ("multiple_choice", "MIT"),
        "piqa": ("multiple_choice", "AFL-3.0"),
        "truthfulqa_gen": ("generation", "Apache-2.0"),
        "truthfulqa_mc": ("multiple_choice", "Apache-2.0"),
        "truthfulqa_mc2": ("multiple_choice", "Apache-2.0"),
        "xcopa": ("multiple_choice", "CC-BY-4.0"),
        "strongreject": ("generation", "MIT"),
        "xstest": ("generation", "CC-BY-4.0"),
        "perf": ("performance", "Apache-2.0"),
    }


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_suite_has_no_problems(name: str) -> None:
    assert validate_suite(bundled_suites_dir() / name) == []


@pytest.mark.parametrize("name", BUNDLED)
def test_every_data_file_matches_its_sha256(name: str) -> None:
    suite = bundled(name)
    for entry in suite.manifest.data:
        assert hashlib.sha256((suite.root / entry.path).read_bytes()).hexdigest() == entry.sha256, entry.path


@pytest.mark.parametrize("name", BUNDLED)
def test_digest_is_stable_and_covers_every_file(name: str) -> None:
    suite = bundled(name)
    assert load_suite(suite.root).digest == suite.digest
    paths = sorted(p.relative_to(suite.root).as_posix() for p in suite.root.rglob("*") if p.is_file())
    assert [f.path for f in suite.files] == paths
    files = [
        {
            "path": p,
            "sha256": hashlib.sha256((suite.root / p).read_bytes()).hexdigest(),
            "size": (suite.root / p).stat().st_size,
        }
        for p in paths
    ]
    document = {"name": suite.name, "version": suite.manifest.version, "files": files}
    assert suite.digest == hashlib.sha256(rfc8785.dumps(document)).hexdigest()


@pytest.mark.parametrize("name", BUNDLED)
def test_licence_and_provenance_travel_with_the_data(name: str) -> None:
    suite = bundled(name)
    assert suite.manifest.license_file == "LICENSE"
    assert len(suite.license_text()) > 500
    assert suite.manifest.source == "SOURCE.md"
    source = (suite.root / "SOURCE.md").read_text(encoding="utf-8")
    assert "## How evalkit uses it" in source
    assert suite.manifest.citation.startswith("@")


def test_mmlu_has_57_subjects_and_the_published_counts() -> None:
    suite = bundled("mmlu")
    test, dev = suite.split("test"), suite.split("dev")
    assert len(test) == 14042
    assert len(dev) == 285
    assert suite.eval_samples == test
    per_subject_dev = Counter(s.fields["subject"] for s in dev)
    assert len({s.fields["subject"] for s in test}) == 57
    assert set(per_subject_dev) == {s.fields["subject"] for s in test}
    assert set(per_subject_dev.values()) == {5}  # five few-shot examples per subject
    assert Counter(s.fields["answer"] for s in test) == {"0": 3222, "1": 3462, "2": 3582, "3": 3776}


def test_mmlu_first_item_and_prompt_match_lm_eval() -> None:
    suite = bundled("mmlu")
    first = suite.eval_samples[0]
    assert first.id == "abstract_algebra_test:1"
    assert first.source == "data/test/abstract_algebra_test.csv:2"
    assert dict(first.fields) == {
        "question": "Find the degree for the given field extension Q(sqrt(2), sqrt(3), sqrt(18)) over Q.",
        "choice0": "0",
        "choice1": "4",
        "choice2": "2",
        "choice3": "6",
        "answer": "1",
        "subject": "abstract_algebra",
        "subject_name": "abstract algebra",
    }
    prompt = suite.manifest.prompt
    assert (
        prompt.description
        == "The following are multiple choice questions (with answers) about {subject_name}.\n\n"
    )
    assert prompt.template == "{question}\nA. {choice0}\nB. {choice1}\nC. {choice2}\nD. {choice3}\nAnswer:"
    assert suite.manifest.choices is not None and suite.manifest.choices.static == [" A", " B", " C", " D"]
    assert suite.manifest.fewshot is not None
    assert (suite.manifest.fewshot.split, suite.manifest.fewshot.match, suite.manifest.fewshot.max) == (
        "dev",
        "subject",
        5,
    )


def test_xstest_has_250_safe_and_200_unsafe_prompts() -> None:
    suite = bundled("xstest")
    assert Counter(s.fields["label"] for s in suite.eval_samples) == {"safe": 250, "unsafe": 200}
    assert [s.id for s in suite.eval_samples[:3]] == ["1", "2", "3"]
    assert suite.manifest.harmful is not None and suite.manifest.harmful.values == ["unsafe"]
    assert suite.manifest.prompt.chat is True
    assert suite.manifest.generation_or_default.max_new_tokens == 128


def test_strongreject_has_313_prompts_in_6_categories_all_harmful() -> None:
    suite = bundled("strongreject")
    assert Counter(s.fields["category"] for s in suite.eval_samples) == {
        "Disinformation and deception": 50, "Hate, harassment and discrimination": 50,
        "Illegal goods and services": 50, "Non-violent crimes": 59, "Sexual content": 50, "Violence": 54,
    }
    assert [s.id for s in suite.eval_samples[::312]] == ["strongreject_dataset:1", "strongreject_dataset:313"]
    assert suite.manifest.harmful is not None and suite.manifest.harmful.field is None  # every prompt
    assert (suite.manifest.scorer, suite.manifest.prompt.chat) == ("strongreject", True)
    assert {m.name: m.value for m in suite.manifest.metrics} == {"refusal_rate": "refused", "score": "strongreject_score"}


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="the evalkit data bundle (../shared/data) is not here")
def test_build_script_reproduces_the_bundled_suites_byte_for_byte(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "scripts" / "build_suites.py"),
            "--shared",
            str(SHARED_DATA),
            "--out",
            str(tmp_path),
        ],
        check=True,
        capture_output=True,
    )
    for name in BUNDLED:
        built = {
            p.relative_to(tmp_path / name): p.read_bytes()
            for p in (tmp_path / name).rglob("*")
            if p.is_file()
        }
        shipped = {
            p.relative_to(bundled_suites_dir() / name): p.read_bytes()
            for p in (bundled_suites_dir() / name).rglob("*")
            if p.is_file()
        }
        assert built.keys() == shipped.keys()
        assert [str(p) for p in built if built[p] != shipped[p]] == []
