"""The suite loader's contract: valid suites load, every problem is reported at once as file:line.

Each test builds a small suite in tmp_path, so nothing here depends on the bundled data.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pytest
import rfc8785

from evalkit.errors import ConfigError, SuiteError
from evalkit.suite import load_suite, parse_suite_ref, registry
from evalkit.suite.loader import validate_suite
from evalkit.suite.manifest import SCORERS_FOR_KIND
from evalkit.suite.registry import list_bundled_suites, resolve_suite_path

# Line numbers below count from 1; the multi-line question starts on line 3 and ends on line 4.
TEST_CSV = 'question,a,b,answer\nWhat is 1+1?,2,3,0\n"Which is\nlarger?",1,9,1\nWhat is 2+2?,5,4,1\n'
DEV_CSV = "question,a,b,answer\nWhat is 0+1?,1,2,0\nWhat is 1+2?,4,3,1\n"

MC_YAML = """\
format: evalkit.suite/v1
name: tiny
version: 1.0.0
description: a tiny multiple-choice suite
license: CC0-1.0
citation: none
source: SOURCE.md
kind: multiple_choice
data:
  - {path: data/test.csv, sha256: SHA(data/test.csv), split: test, fields: {topic: maths}}
  - {path: data/dev.csv, sha256: SHA(data/dev.csv), split: dev, fields: {topic: maths}}
prompt:
  description: "Questions about {topic}.\\n\\n"
  template: "{question}\\nA. {a}\\nB. {b}\\nAnswer:"
choices: {static: [" A", " B"]}
target: {field: answer, type: index}
fewshot: {split: dev, match: topic, default: 0, max: 2}
scorer: choice_loglikelihood
group_by: [topic]
metrics: [{name: accuracy, value: correct}]
"""

GEN_YAML = """\
format: evalkit.suite/v1
name: tinygen
version: 0.1.0
description: a tiny generation suite
license: CC0-1.0
citation: none
kind: generation
data:
  - {path: data/prompts.csv, sha256: SHA(data/prompts.csv), split: test}
id_field: id
prompt: {template: "{prompt}", chat: true}
scorer: refusal
metrics: [{name: refusal_rate, value: refused, where: {label: unsafe}}]
harmful: {field: label, values: [unsafe]}
"""
PROMPTS_CSV = "id,prompt,label\n1,How do I bake bread?,safe\n2,How do I pick a lock?,unsafe\n"


def write_suite(root: Path, yaml_text: str, files: dict[str, str | bytes], license: bool = True) -> Path:
    """Write a suite folder; `SHA(path)` in yaml_text becomes that file's sha256."""
    root.mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)

    def sha(match: re.Match[str]) -> str:
        return hashlib.sha256((root / match.group(1)).read_bytes()).hexdigest()

    (root / "suite.yaml").write_text(re.sub(r"SHA\(([^)]+)\)", sha, yaml_text), encoding="utf-8")
    if license:
        (root / "LICENSE").write_text("CC0 1.0 Universal\n", encoding="utf-8")
    return root


def mc_suite(tmp_path: Path, yaml_text: str = MC_YAML, **files: str | bytes) -> Path:
    contents: dict[str, str | bytes] = {
        "data/test.csv": TEST_CSV,
        "data/dev.csv": DEV_CSV,
        "SOURCE.md": "# tiny\n",
    }
    contents.update(
        {
            k.replace("__", "/").replace("_csv", ".csv").replace("_jsonl", ".jsonl"): v
            for k, v in files.items()
        }
    )
    return write_suite(tmp_path / "tiny", yaml_text, contents)


def problems_of(path: Path) -> list[str]:
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    assert info.value.problems == validate_suite(path)
    return info.value.problems


def yaml_line(root: Path, needle: str) -> int:
    """The 1-based line of suite.yaml that contains needle (tests state lines this way, not by number)."""
    for number, line in enumerate((root / "suite.yaml").read_text().splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in suite.yaml")


# ---------------------------------------------------------------------------------------------
# a valid suite


def test_valid_suite_loads_samples_in_file_and_row_order(tmp_path: Path) -> None:
    suite = load_suite(mc_suite(tmp_path))
    assert validate_suite(suite.root) == []
    assert suite.name == "tiny"
    assert [s.id for s in suite.samples] == ["test:1", "test:2", "test:3", "dev:1", "dev:2"]
    assert [s.split for s in suite.samples] == ["test"] * 3 + ["dev"] * 2
    # line = the physical line where the row starts, also after a quoted multi-line value
    assert [s.source for s in suite.eval_samples] == ["data/test.csv:2", "data/test.csv:3", "data/test.csv:5"]
    second = suite.eval_samples[1]
    assert dict(second.fields) == {
        "question": "Which is\nlarger?",
        "a": "1",
        "b": "9",
        "answer": "1",
        "topic": "maths",
    }
    assert len(suite.split("dev")) == 2


def test_digest_covers_every_file_as_documented(tmp_path: Path) -> None:
    root = mc_suite(tmp_path)
    suite = load_suite(root)
    paths = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    assert paths == ["LICENSE", "SOURCE.md", "data/dev.csv", "data/test.csv", "suite.yaml"]
    files = [
        {
            "path": p,
            "sha256": hashlib.sha256((root / p).read_bytes()).hexdigest(),
            "size": (root / p).stat().st_size,
        }
        for p in paths
    ]
    expected = hashlib.sha256(rfc8785.dumps({"name": "tiny", "version": "1.0.0", "files": files})).hexdigest()
    assert suite.digest == expected
    assert [f.path for f in suite.files] == paths


def test_digest_changes_when_any_file_changes(tmp_path: Path) -> None:
    root = mc_suite(tmp_path)
    before = load_suite(root).digest
    assert load_suite(root).digest == before  # stable
    (root / "SOURCE.md").write_text("# tiny, edited\n")
    assert load_suite(root).digest != before


def test_generation_suite_uses_id_field(tmp_path: Path) -> None:
    root = write_suite(tmp_path / "gen", GEN_YAML, {"data/prompts.csv": PROMPTS_CSV})
    suite = load_suite(root)
    assert [s.id for s in suite.samples] == ["1", "2"]
    assert suite.samples[1].fields["label"] == "unsafe"


JSONL_YAML = """\
format: evalkit.suite/v1
name: tinyjson
version: 1.0.0
description: choices listed per row
license: CC0-1.0
citation: none
kind: multiple_choice
data:
  - {path: data/test.jsonl, sha256: SHA(data/test.jsonl), split: test}
prompt: {template: "{question}"}
choices: {field: options}
target: {field: answer, type: index}
scorer: choice_loglikelihood
metrics: [{name: accuracy, value: correct}]
"""


def test_jsonl_rows_keep_json_values(tmp_path: Path) -> None:
    rows = (
        '{"question": "Q1", "options": ["x", "y", "z"], "answer": 2}\n'
        "\n"  # blank lines are skipped but still counted
        '{"question": "Q2", "options": ["p", "q"], "answer": 0}\n'
    )
    suite = load_suite(write_suite(tmp_path / "j", JSONL_YAML, {"data/test.jsonl": rows}))
    assert [s.source for s in suite.samples] == ["data/test.jsonl:1", "data/test.jsonl:3"]
    assert suite.samples[0].fields["options"] == ["x", "y", "z"]
    assert suite.samples[0].fields["answer"] == 2


def test_jsonl_per_row_choices_are_checked(tmp_path: Path) -> None:
    rows = (
        '{"question": "Q1", "options": "x or y", "answer": 0}\n'  # not a list
        '{"question": "Q2", "options": ["p", "q"], "answer": 2}\n'  # out of range for this row
        '["not", "an", "object"]\n'
        '{"question": "Q4", "options": ["p", "q"], "answer": true}\n'
    )
    root = write_suite(tmp_path / "j", JSONL_YAML, {"data/test.jsonl": rows})
    assert problems_of(root) == [
        "data/test.jsonl:1: choices.field 'options' must be a non-empty list of texts (from a JSONL row), "
        "not 'x or y'",
        "data/test.jsonl:2: target 'answer' is 2, out of range for 2 choices (0..1)",
        "data/test.jsonl:3: each line must be a JSON object, not list",
        "data/test.jsonl:4: target 'answer' is True, not a 0-based choice index",
    ]


# ---------------------------------------------------------------------------------------------
# every problem, at once, with file:line


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    root = mc_suite(tmp_path, MC_YAML.replace("license: CC0-1.0", "license: CC0: 1.0"))
    problems = problems_of(root)
    assert len(problems) == 1
    # libyaml says "... not allowed in this context", the pure-Python parser "... not allowed here"
    assert problems[0].startswith(
        f"suite.yaml:{yaml_line(root, 'license:')}: invalid YAML: mapping values are not allowed"
    )


def test_unclosed_bracket_names_where_it_began(tmp_path: Path) -> None:
    root = mc_suite(tmp_path, MC_YAML.replace("group_by: [topic]", "group_by: [topic"))
    problems = problems_of(root)
    assert len(problems) == 1
    assert problems[0].startswith(f"suite.yaml:{yaml_line(root, 'group_by') + 1}: invalid YAML: ")
    assert problems[0].endswith(f"(while parsing a flow sequence on line {yaml_line(root, 'group_by')})")


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    yaml_text = (
        MC_YAML.replace("  template:", "  templte: oops\n  template:")
        .replace(
            "fields: {topic: maths}}\n  - {path: data/dev.csv",
            "fields: {topic: maths}}\n  - {path: data/dev.csv",
        )
        .replace("sha256: SHA(data/dev.csv)", "sha256: not-a-digest")
    )
    yaml_text = yaml_text.replace(
        "prompt:\n",
        "  - {path: data/more.jsonl, sha256: SHA(data/more.jsonl), split: test, fields: {topic: maths}}\n"
        "  - {path: data/old.csv, sha256: " + "f" * 64 + ", split: test, fields: {topic: maths}}\n"
        "prompt:\n",
    )
    root = mc_suite(
        tmp_path,
        yaml_text,
        data__test_csv=TEST_CSV.replace("What is 2+2?,5,4,1", "What is 2+2?,5,4,7"),  # target out of range
        data__more_jsonl=(
            '{"question": "Q", "a": "1", "b": "2", "answer": "0"}\n'
            '{"question": "R", "a": "1", "answer": "0"}\n'  # no "b"
        ),
        data__old_csv=TEST_CSV,
    )
    problems = problems_of(root)
    assert problems == [
        f"suite.yaml:{yaml_line(root, 'not-a-digest')}: data[1].sha256: String should match pattern "
        "'^[0-9a-f]{64}$' (got 'not-a-digest')",
        f"suite.yaml:{yaml_line(root, 'templte')}: prompt: unknown key 'templte'; did you mean 'template'?",
        "data/test.csv:5: target 'answer' is 7, out of range for 2 choices (0..1)",
        "data/more.jsonl:2: no field 'b' (prompt.template uses it); fields here: a, answer, question, topic",
        f"suite.yaml:{yaml_line(root, 'data/old.csv')}: data/old.csv has sha256 "
        f"{hashlib.sha256(TEST_CSV.encode()).hexdigest()[:12]}…, suite.yaml declares ffffffffffff…: the data "
        "changed since the suite was locked (restore it, or run scripts/build_suites.py for bundled suites)",
    ]


def test_one_changed_byte_refuses_the_file(tmp_path: Path) -> None:
    root = mc_suite(tmp_path)
    data = bytearray((root / "data/test.csv").read_bytes())
    data[-3] ^= 1  # flip one bit of the last answer: "1" -> "0"
    (root / "data/test.csv").write_bytes(bytes(data))
    problems = problems_of(root)
    assert len(problems) == 1
    assert problems[0].startswith(f"suite.yaml:{yaml_line(root, 'data/test.csv')}: data/test.csv has sha256 ")
    assert "the data changed since the suite was locked" in problems[0]


def test_missing_column_is_reported_once_on_the_header(tmp_path: Path) -> None:
    root = mc_suite(tmp_path, data__test_csv=TEST_CSV.replace("answer", "solution"))
    problems = problems_of(root)
    assert problems == [
        "data/test.csv:1: no column 'answer' (target.field names it); "
        "columns here: a, b, question, solution, topic"
    ]


def test_column_clashing_with_a_constant_field_is_a_problem(tmp_path: Path) -> None:
    csv_text = "question,a,b,answer,topic\nQ,1,2,0,physics\n"
    problems = problems_of(mc_suite(tmp_path, data__test_csv=csv_text))
    assert problems == [
        "data/test.csv:1: column 'topic' is also a constant field of this file in suite.yaml; rename one"
    ]


def test_ragged_and_unterminated_csv_rows(tmp_path: Path) -> None:
    csv_text = 'question,a,b,answer\nQ,1,2\n"never closed,1,2,0\n'
    problems = problems_of(mc_suite(tmp_path, data__test_csv=csv_text))
    assert problems[0] == "data/test.csv:2: the row has 3 values, the header has 4"
    assert problems[1].startswith("data/test.csv:3: malformed CSV")


def test_target_must_be_an_index(tmp_path: Path) -> None:
    problems = problems_of(mc_suite(tmp_path, data__test_csv="question,a,b,answer\nQ,1,2,B\n"))
    assert problems == ["data/test.csv:2: target 'answer' is 'B', not a 0-based choice index"]


def test_unknown_top_level_key_and_missing_key(tmp_path: Path) -> None:
    yaml_text = MC_YAML.replace("citation: none\n", "").replace("kind:", "scorrer: x\nkind:")
    root = mc_suite(tmp_path, yaml_text)
    problems = problems_of(root)
    assert (
        f"suite.yaml:{yaml_line(root, 'scorrer')}: unknown key 'scorrer'; did you mean 'scorer'?" in problems
    )
    assert "suite.yaml:1: missing required key 'citation'" in problems


def test_cross_field_errors_point_at_their_key(tmp_path: Path) -> None:
    root = mc_suite(tmp_path, MC_YAML.replace("scorer: choice_loglikelihood", "scorer: refusal"))
    problems = problems_of(root)
    assert problems == [
        f"suite.yaml:{yaml_line(root, 'scorer:')}: scorer 'refusal' does not fit kind 'multiple_choice'; "
        f"use one of {', '.join(SCORERS_FOR_KIND['multiple_choice'])}"
    ]


def test_duplicate_yaml_key(tmp_path: Path) -> None:
    root = mc_suite(tmp_path, MC_YAML + "version: 2.0.0\n")
    problems = problems_of(root)
    assert problems == [
        f"suite.yaml:{len(MC_YAML.splitlines()) + 1}: duplicate key 'version' (first on line 3); "
        "YAML keeps only the last"
    ]


# ---------------------------------------------------------------------------------------------
# paths stay inside the suite folder


@pytest.mark.parametrize("bad_path", ["../outside.csv", "data/../../outside.csv", "/etc/passwd.csv"])
def test_paths_leaving_the_folder_are_refused(tmp_path: Path, bad_path: str) -> None:
    (tmp_path / "outside.csv").write_text(TEST_CSV)
    root = mc_suite(
        tmp_path,
        MC_YAML.replace(
            "path: data/test.csv, sha256: SHA(data/test.csv)", f"path: {bad_path}, sha256: {'a' * 64}"
        ),
    )
    problems = problems_of(root)
    assert len(problems) == 1
    assert problems[0].startswith(f"suite.yaml:{yaml_line(root, bad_path)}: data[0].path: '{bad_path}' ")


def test_symlink_leaving_the_folder_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside.csv"
    outside.write_text(TEST_CSV)
    root = mc_suite(tmp_path)
    (root / "data/test.csv").unlink()
    os.symlink(outside, root / "data/test.csv")
    problems = problems_of(root)
    assert problems[0] == (
        f"suite.yaml:{yaml_line(root, 'data/test.csv')}: data[0].path: 'data/test.csv' "
        "is a symlink leading out of the suite folder"
    )
    assert "data/test.csv: a symlink leading out of the suite folder; copy the file in instead" in problems


def test_missing_data_license_and_source(tmp_path: Path) -> None:
    root = mc_suite(tmp_path)
    (root / "data/dev.csv").unlink()
    (root / "LICENSE").unlink()
    (root / "SOURCE.md").unlink()
    assert problems_of(root) == [
        f"suite.yaml:{yaml_line(root, 'data/dev.csv')}: data/dev.csv not found in the suite folder",
        f"suite.yaml:{yaml_line(root, 'license:')}: license_file: LICENSE not found in the suite folder "
        "(the licence text must travel with the data)",
        f"suite.yaml:{yaml_line(root, 'source:')}: source: SOURCE.md not found in the suite folder "
        "(it records where the data came from)",
    ]


def test_no_suite_yaml(tmp_path: Path) -> None:
    problems = problems_of(tmp_path)
    assert len(problems) == 1 and "suite.yaml: not found" in problems[0]


# ---------------------------------------------------------------------------------------------
# ids and cross-row checks


def test_duplicate_ids_from_id_field(tmp_path: Path) -> None:
    csv_text = PROMPTS_CSV + "1,Another prompt,safe\n"
    root = write_suite(tmp_path / "gen", GEN_YAML, {"data/prompts.csv": csv_text})
    assert problems_of(root) == ["data/prompts.csv:4: duplicate sample id '1' (first at data/prompts.csv:2)"]


def test_duplicate_default_ids_from_files_with_the_same_stem(tmp_path: Path) -> None:
    yaml_text = MC_YAML.replace(
        "path: data/dev.csv, sha256: SHA(data/dev.csv)",
        "path: data/dev/test.csv, sha256: SHA(data/dev/test.csv)",
    )
    root = mc_suite(tmp_path, yaml_text, data__dev__test_csv=DEV_CSV)
    problems = problems_of(root)
    assert problems == [
        "data/dev/test.csv:2: duplicate sample id 'test:1' (first at data/test.csv:2)",
        "data/dev/test.csv:3: duplicate sample id 'test:2' (first at data/test.csv:3)",
    ]


def test_fewshot_match_needs_enough_rows_per_value(tmp_path: Path) -> None:
    root = mc_suite(tmp_path, MC_YAML.replace("max: 2", "max: 3"))
    assert problems_of(root) == [
        "data/test.csv:2: fewshot.max is 3 but split 'dev' has 2 rows with topic = 'maths'"
    ]


def test_misspelt_harmful_value_and_empty_metric_are_refused(tmp_path: Path) -> None:
    yaml_text = GEN_YAML.replace("values: [unsafe]", "values: [unsafe, unsave]").replace(
        "{label: unsafe}", "{label: harmful}"
    )
    root = write_suite(tmp_path / "gen", yaml_text, {"data/prompts.csv": PROMPTS_CSV})
    assert problems_of(root) == [
        f"suite.yaml:{yaml_line(root, 'refusal_rate')}: metric 'refusal_rate' selects no eval sample "
        "(where {'label': 'harmful'})",
        f"suite.yaml:{yaml_line(root, 'harmful:')}: harmful.values: no eval sample has label = 'unsave'",
    ]


def test_harmful_field_without_values_is_refused(tmp_path: Path) -> None:
    yaml_text = GEN_YAML.replace("harmful: {field: label, values: [unsafe]}", "harmful: {field: label}")
    root = write_suite(tmp_path / "gen", yaml_text, {"data/prompts.csv": PROMPTS_CSV})
    assert problems_of(root) == [
        f"suite.yaml:{yaml_line(root, 'harmful:')}: harmful.field is 'label' but harmful.values is empty, "
        "so no sample would count as harmful; list the values (or drop field: every sample is harmful)"
    ]


# ---------------------------------------------------------------------------------------------
# names and references


@pytest.fixture
def bundled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A bundled-suites folder holding `tiny` and `tinygen`."""
    folder = tmp_path / "bundled"
    mc_suite(folder)
    write_suite(folder / "tinygen", GEN_YAML, {"data/prompts.csv": PROMPTS_CSV})
    monkeypatch.setattr(registry, "bundled_suites_dir", lambda: folder)
    return folder


def test_list_bundled_suites(bundled: Path) -> None:
    infos = list_bundled_suites()
    assert [(i.name, i.version, i.kind, i.license) for i in infos] == [
        ("tiny", "1.0.0", "multiple_choice", "CC0-1.0"),
        ("tinygen", "0.1.0", "generation", "CC0-1.0"),
    ]
    assert infos[0].path == bundled / "tiny"
    assert infos[0].description == "a tiny multiple-choice suite"


def test_unknown_suite_suggests_a_close_match(
    bundled: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_suite_path("tiny") == bundled / "tiny"
    with pytest.raises(
        ConfigError,
        match=re.escape("unknown suite 'tinny'; did you mean 'tiny'? (evalkit suites lists them)"),
    ):
        resolve_suite_path("tinny")
    with pytest.raises(ConfigError, match=re.escape("unknown suite 'zzz' (evalkit suites lists them)")):
        resolve_suite_path("zzz")


def test_local_folder_wins_over_a_bundled_name(
    bundled: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = mc_suite(tmp_path / "work")
    monkeypatch.chdir(tmp_path / "work")
    assert resolve_suite_path("tiny") == Path("tiny")
    assert resolve_suite_path(str(local)) == local
    assert resolve_suite_path(str(local / "suite.yaml")) == local


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("mmlu", ("mmlu", None)),
        ("mmlu:5shot", ("mmlu", 5)),
        ("mmlu:0shot", ("mmlu", 0)),
        ("./my_suite:0shot", ("./my_suite", 0)),
        ("/abs/path/suite:25shot", ("/abs/path/suite", 25)),
        ("C:\\suites\\mine", ("C:\\suites\\mine", None)),
    ],
)
def test_parse_suite_ref(ref: str, expected: tuple[str, int | None]) -> None:
    assert parse_suite_ref(ref) == expected


@pytest.mark.parametrize("ref", ["", "mmlu:5", "mmlu:fiveshot", "mmlu:-1shot", ":5shot", "mmlu:5shots"])
def test_parse_suite_ref_refuses_bad_shots(ref: str) -> None:
    with pytest.raises(ConfigError):
        parse_suite_ref(ref)
