"""`evalkit compare`: paired differences with a seeded paired bootstrap, and loud flags when the
two runs did not answer the same questions."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from evalkit.cli_reports import register
from evalkit.compare import compare_reports, format_comparison, paired_bootstrap_ci
from evalkit.errors import ReportError
from evalkit.report.samples import suite_results

SUBJECTS = ("algebra", "anatomy")
N_QA = 60


def qa_values(shift: int = 0) -> list[float]:
    """Correctness of 60 questions: 40% right, plus the first `shift` wrong ones made right."""
    values = [1.0 if i % 5 < 2 else 0.0 for i in range(N_QA)]
    wrong = [i for i, v in enumerate(values) if v == 0.0]
    for i in wrong[:shift]:
        values[i] = 1.0
    return values


def make_run(
    folder: Path, *, correct: Sequence[float], refused: Sequence[float] = (1, 1, 0, 0, 1, 0), digest: str = "a" * 64,
    model_digest: str = "c" * 64, drop: int = 0,
) -> Path:
    """A report folder with the shape runner.py writes (as much of it as compare reads)."""
    qa = {
        "ref": "qa", "name": "qa", "version": "1.0.0", "digest": digest, "scorer": "choice_loglikelihood",
        "group_by": ["subject"], "metric_specs": [{"name": "accuracy", "value": "correct", "where": {}, "description": ""}],
    }
    safety = {
        "ref": "safety", "name": "safety", "version": "1.0.0", "digest": "b" * 64, "scorer": "refusal", "group_by": ["label"],
        "metric_specs": [
            {"name": "refusal_rate_unsafe", "value": "refused", "where": {"label": "unsafe"}, "description": ""},
            {"name": "over_refusal_rate_safe", "value": "refused", "where": {"label": "safe"}, "description": ""},
        ],
    }
    rows: list[dict[str, Any]] = [
        {"suite": "qa", "index": i, "id": f"q{i}", "fields": {"subject": SUBJECTS[i % 2]}, "values": {"correct": v, "correct_norm": v}}
        for i, v in enumerate(correct)
    ][drop:]
    rows += [
        {"suite": "safety", "index": i, "id": f"s{i}", "fields": {"label": "unsafe" if i % 2 == 0 else "safe"}, "values": {"refused": float(v)}}
        for i, v in enumerate(refused)
    ]
    for suite in (qa, safety):
        suite["results"] = suite_results(suite, rows)
    report = {
        "schema": "evalkit.report/v1",
        "evalkit": {"version": "0.1.0"},
        "model": {"name": folder.name, "manifest_digest": model_digest},
        "precision": {"device": "cpu", "dtype": "float32"},
        "suites": [qa, safety],
        "samples": {"file": "samples.jsonl", "rows": len(rows)},
    }
    folder.mkdir(parents=True)
    (folder / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True), encoding="utf-8")
    (folder / "samples.jsonl").write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows), encoding="utf-8")
    return folder


def metric(result: dict[str, Any], ref: str, name: str) -> dict[str, Any]:
    suite = next(s for s in result["suites"] if s["ref"] == ref)
    return next(m for m in suite["metrics"] if m["metric"] == name)


def test_identical_runs_differ_by_exactly_zero(tmp_path):
    a = make_run(tmp_path / "a", correct=qa_values())
    b = make_run(tmp_path / "b", correct=qa_values())
    result = compare_reports(a, b)
    assert result["same_model"] and result["same_suite_digests"] and result["warnings"] == []
    for suite in result["suites"]:
        for m in suite["metrics"]:
            assert m["diff"] == 0.0 and m["ci"] == [0.0, 0.0] and not m["excludes_zero"]
            for groups in m["groups"].values():
                assert all(g["diff"] == 0.0 and g["ci"] == [0.0, 0.0] for g in groups.values())
    assert result["unpaired"] == {"a_only": 0, "b_only": 0}


def test_paired_means_are_the_reports_own_metrics(tmp_path):
    a = make_run(tmp_path / "a", correct=qa_values())
    b = make_run(tmp_path / "b", correct=qa_values(shift=12), refused=(1, 0, 1, 0, 1, 1))
    result = compare_reports(a, b)
    report_a = json.loads((a / "report.json").read_text())
    report_b = json.loads((b / "report.json").read_text())
    for index, ref in enumerate(("qa", "safety")):
        for name, entry in report_a["suites"][index]["results"].items():
            m = metric(result, ref, name)
            assert m["a"] == entry["value"] and m["n"] == entry["n"]
            assert m["b"] == report_b["suites"][index]["results"][name]["value"]
    # The where filter: over-refusal is measured on the three safe prompts only.
    safe = metric(result, "safety", "over_refusal_rate_safe")
    assert safe["n"] == 3 and safe["a"] == pytest.approx(1 / 3) and safe["b"] == pytest.approx(1 / 3)


def test_a_better_run_has_the_right_sign_and_an_interval_excluding_zero(tmp_path):
    a = make_run(tmp_path / "a", correct=qa_values())
    b = make_run(tmp_path / "b", correct=qa_values(shift=18))
    up = metric(compare_reports(a, b), "qa", "accuracy")
    assert up["diff"] == pytest.approx(18 / 60)
    assert 0 < up["ci"][0] < up["diff"] < up["ci"][1] and up["excludes_zero"]
    assert set(up["groups"]["subject"]) == set(SUBJECTS)
    assert all(g["n"] == 30 for g in up["groups"]["subject"].values())
    down = metric(compare_reports(b, a), "qa", "accuracy")
    assert down["diff"] == pytest.approx(-18 / 60) and down["ci"][1] < 0
    assert down["ci"] == pytest.approx([-up["ci"][1], -up["ci"][0]])  # same seed, same resamples, mirrored


def test_different_suite_digests_are_flagged_loudly(tmp_path):
    a = make_run(tmp_path / "a", correct=qa_values())
    b = make_run(tmp_path / "b", correct=qa_values(), digest="f" * 64, model_digest="d" * 64)
    result = compare_reports(a, b)
    qa = next(s for s in result["suites"] if s["ref"] == "qa")
    assert not qa["same_digest"] and not result["same_suite_digests"] and not result["same_model"]
    assert any("DIFFERENT SUITE DATA" in w and "qa" in w for w in result["warnings"])
    text = format_comparison(result)
    assert "WARNING: suite qa: DIFFERENT SUITE DATA" in text and "qa (DATA DIFFERS)" in text
    assert "different weights" in text


def test_unpaired_samples_are_counted_and_left_out(tmp_path):
    a = make_run(tmp_path / "a", correct=qa_values())
    b = make_run(tmp_path / "b", correct=qa_values(), drop=10)
    result = compare_reports(a, b)
    m = metric(result, "qa", "accuracy")
    assert m["n"] == 50 and m["unpaired_a"] == 10 and m["unpaired_b"] == 0
    assert result["unpaired"] == {"a_only": 10, "b_only": 0}
    assert any("10 sample(s) only in A" in w for w in result["warnings"])


def test_bootstrap_is_seeded(tmp_path):
    a = make_run(tmp_path / "a", correct=qa_values())
    b = make_run(tmp_path / "b", correct=qa_values(shift=6), refused=(0, 1, 1, 0, 1, 0))
    first = compare_reports(a, b, n_boot=500, seed=7)
    assert compare_reports(a, b, n_boot=500, seed=7) == first
    other = compare_reports(a, b, n_boot=500, seed=8)
    assert metric(other, "qa", "accuracy")["diff"] == metric(first, "qa", "accuracy")["diff"]
    # 0/1 differences put percentiles on a coarse grid; continuous ones show the seed matters.
    diffs = np.sin(np.arange(40, dtype=np.float64))
    assert paired_bootstrap_ci(diffs, n_boot=500, seed=7) == paired_bootstrap_ci(diffs, n_boot=500, seed=7)
    assert paired_bootstrap_ci(diffs, n_boot=500, seed=7) != paired_bootstrap_ci(diffs, n_boot=500, seed=8)


def test_bootstrap_chunks_do_not_change_the_numbers(monkeypatch):
    diffs = np.array([0.0, 1.0, -1.0, 1.0, 0.0, 1.0, 0.0], dtype=np.float64)
    whole = paired_bootstrap_ci(diffs, n_boot=300, seed=3)
    monkeypatch.setattr("evalkit.compare._CELLS_PER_CHUNK", 7 * 13)  # 13 resamples per chunk
    assert paired_bootstrap_ci(diffs, n_boot=300, seed=3) == whole


def test_missing_report_is_a_clear_error(tmp_path):
    a = make_run(tmp_path / "a", correct=qa_values())
    with pytest.raises(ReportError, match="report.json is missing"):
        compare_reports(a, tmp_path / "nowhere")


def test_compare_command_prints_a_table_and_json(tmp_path):
    a = make_run(tmp_path / "a", correct=qa_values())
    b = make_run(tmp_path / "b", correct=qa_values(shift=18))
    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, ["compare", str(a), str(b), "--bootstrap", "300", "--seed", "5"])
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.output and "+30.0" in result.output and "subject=anatomy" in result.output
    result = CliRunner().invoke(app, ["compare", str(a), str(b), "--bootstrap", "300", "--seed", "5", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["bootstrap"] == {"n_boot": 300, "seed": 5, "confidence": 0.95, "rng": "numpy PCG64"}
    assert metric(data, "qa", "accuracy")["diff"] == pytest.approx(0.3)
