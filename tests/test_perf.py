"""The `perf` suite kind: its manifest checks, the measurement scorer's arithmetic, and a run on the
tiny model whose rows, values, aggregates, report tables, verify, reproduce and compare all hold.
No assertion is about how fast anything ran: only about what was recorded and derived."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from evalkit.compare import compare_reports, format_comparison
from evalkit.config import RunConfig, SuiteSpec
from evalkit.errors import ConfigError
from evalkit.perf.grid import PerfOverride, grid_rows, parse_perf_options
from evalkit.reproduce import compare_runs, reproduce_run
from evalkit.runner import run_evaluation
from evalkit.scoring.measurement import score_measurement
from evalkit.suite import validate_suite
from evalkit.verify import verify_report

METRICS = ("prefill_tokens_per_s", "decode_tokens_per_s", "ttft_ms", "peak_memory_mb", "memory_growth_mb")


def write_perf_suite(folder: Path, rows: list[dict] | None = None, performance: str | None = None) -> Path:
    """A performance suite: a 2 x 2 grid (batch 1, 2; length 8, 16), 3 decode steps, 2 timed rounds."""
    folder.mkdir(parents=True)
    grid = "".join(json.dumps(r) + "\n" for r in (rows if rows is not None else grid_rows((1, 2), (8, 16))))
    (folder / "grid.jsonl").write_text(grid)
    (folder / "LICENSE").write_text("CC0-1.0\n")
    sha = hashlib.sha256(grid.encode()).hexdigest()
    block = performance if performance is not None else "performance: {new_tokens: 3, warmup: 1, repeats: 2, seed: 7}\n"
    metrics = "".join(f"  - {{name: {m}, value: {m}}}\n" for m in METRICS)
    (folder / "suite.yaml").write_text(
        "format: evalkit.suite/v1\nname: tinyperf\nversion: 1.0.0\ndescription: Speed.\nlicense: CC0-1.0\n"
        f"citation: ours\nkind: performance\ndata:\n  - {{path: grid.jsonl, sha256: {sha}, split: test}}\n"
        f"id_field: point\n{block}scorer: measurement\ngroup_by: [batch_size, prompt_length, point]\n"
        f"metrics:\n{metrics}"
    )
    return folder


# --- the suite format ------------------------------------------------------------------------------


def test_a_performance_suite_validates_without_a_prompt(tmp_path: Path) -> None:
    assert validate_suite(write_perf_suite(tmp_path / "s")) == []


def test_a_performance_suite_needs_its_block_and_a_fitting_scorer(tmp_path: Path) -> None:
    problems = validate_suite(write_perf_suite(tmp_path / "s", performance=""))
    assert problems == [
        "suite.yaml:7: a performance suite needs a performance block (new_tokens, warmup, repeats, seed)"
    ]
    folder = write_perf_suite(tmp_path / "t")
    text = (folder / "suite.yaml").read_text().replace("scorer: measurement", "scorer: exact_match")
    (folder / "suite.yaml").write_text(text)
    assert any("scorer 'exact_match' does not fit kind 'performance'" in p for p in validate_suite(folder))


def test_grid_rows_need_positive_integer_sizes(tmp_path: Path) -> None:
    rows = [{"point": "a", "batch_size": 0, "prompt_length": 8}, {"point": "b", "batch_size": 2, "prompt_length": "8"},
            {"point": "c", "batch_size": 2}]
    problems = validate_suite(write_perf_suite(tmp_path / "s", rows=rows))
    assert problems == [
        "grid.jsonl:1: batch_size must be an integer from 1 to 65536 (a JSONL number), not 0",
        "grid.jsonl:2: prompt_length must be an integer from 1 to 1048576 (a JSONL number), not '8'",
        ("grid.jsonl:3: no field 'prompt_length' (a performance suite's grid point needs it); "
         "fields here: batch_size, point"),
    ]


def test_other_kinds_still_need_a_prompt_and_no_performance_block(tmp_path: Path) -> None:
    folder = write_perf_suite(tmp_path / "s")
    text = (folder / "suite.yaml").read_text().replace("kind: performance", "kind: generation")
    (folder / "suite.yaml").write_text(text.replace("scorer: measurement", "scorer: refusal"))
    problems = validate_suite(folder)
    assert any("a performance block belongs only in a suite of kind performance" in p for p in problems)
    assert any("a prompt is required" in p for p in problems)


def test_perf_options_parse_and_refuse_nonsense() -> None:
    assert parse_perf_options([]) is None
    assert parse_perf_options(["batch_sizes=1,8,32", "new_tokens=128"]) == PerfOverride(
        batch_sizes=(1, 8, 32), new_tokens=128
    )
    for bad in (["batch_sizes"], ["speed=3"], ["repeats=1,2"], ["batch_sizes=0,4"], ["prompt_lengths=8,8"], ["warmup=x"]):
        with pytest.raises(ConfigError, match="--perf"):
            parse_perf_options(bad)


# --- the scorer ------------------------------------------------------------------------------------


def _row(**measured: object) -> dict:
    m = {"batch_size": 2, "prompt_length": 8, "new_tokens": 4, "prefill_seconds": [0.5, 0.25, 1.0],
         "decode_seconds": [0.1, 0.2, 0.4], "ttft_seconds": [0.7, 0.5, 0.6], "peak_bytes": 3 << 20,
         "baseline_bytes": 1 << 20}
    m.update(measured)
    return {"measurement": m}


def test_measurement_values_are_medians_of_the_recorded_rounds() -> None:
    assert score_measurement(_row()) == {
        "prefill_tokens_per_s": 32.0,  # 2 x 8 tokens / median 0.5 s
        "decode_tokens_per_s": 40.0,  # 2 x 4 tokens / median 0.2 s
        "ttft_ms": 600.0,
        "peak_memory_mb": 3.0,
        "memory_growth_mb": 2.0,
    }
    assert score_measurement(_row(prefill_seconds=[0.5, 1.5]))["prefill_tokens_per_s"] == 16.0  # even: mean of two
    assert score_measurement(_row(baseline_bytes=5 << 20))["memory_growth_mb"] == 0.0


@pytest.mark.parametrize("bad", [[], [0.0, 0.1], [-1.0], [True]])
def test_a_timing_that_cannot_be_a_measurement_is_refused(bad: list) -> None:
    with pytest.raises(ValueError, match="positive seconds"):
        score_measurement(_row(decode_seconds=bad))


# --- a run on the tiny model -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def perf_runs(tiny_llama_dir, keys, tmp_path_factory):
    """A signed run of a perf suite next to an accuracy suite, and its rerun by `evalkit reproduce`
    (kept in b): (a, b, the reproduce result)."""
    root = tmp_path_factory.mktemp("perf")
    suite = write_perf_suite(root / "tinyperf")
    config = RunConfig(model=str(tiny_llama_dir), suites=(SuiteSpec(suite=str(suite)), SuiteSpec(suite="mmlu", limit=2)))
    run_evaluation(config, root / "a", signing_keys=[keys["vendor"]])
    result = reproduce_run(root / "a", tiny_llama_dir, keys=[keys["vendor_pub"]], work_dir=root / "b")
    return root / "a", root / "b", result


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]


def test_each_grid_point_is_one_row_with_its_raw_measurement(perf_runs) -> None:
    rows = [r for r in _rows(perf_runs[0]) if r["suite"].endswith("tinyperf")]
    assert [r["id"] for r in rows] == ["b1_l8", "b1_l16", "b2_l8", "b2_l16"]
    for row in rows:
        m = row["measurement"]
        assert (m["batch_size"], m["prompt_length"]) == (row["fields"]["batch_size"], row["fields"]["prompt_length"])
        assert (m["new_tokens"], m["warmup"], m["repeats"], m["seed"]) == (3, 1, 2, 7)
        assert len(m["prefill_seconds"]) == len(m["decode_seconds"]) == len(m["ttft_seconds"]) == 2
        assert (m["device"], m["dtype"]) == ("cpu", "float32")
        assert m["peak_bytes"] > 0 and m["memory"]
        assert row["values"] == score_measurement(row)
        assert set(row["values"]) == set(METRICS)
    # The same synthetic inputs on every run: seeded by (seed, batch size, prompt length).
    again = [r for r in _rows(perf_runs[1]) if r["suite"].endswith("tinyperf")]
    assert [r["measurement"]["inputs_sha256"] for r in rows] == [r["measurement"]["inputs_sha256"] for r in again]
    assert len({r["measurement"]["inputs_sha256"] for r in rows}) == 4


def test_report_has_the_grid_aggregates_and_tables_and_verifies(perf_runs, keys, tiny_llama_dir) -> None:
    out = perf_runs[0]
    report = json.loads((out / "report.json").read_text())
    perf = report["suites"][0]
    assert perf["kind"] == "performance" and perf["n_samples"] == 4
    assert perf["performance"]["grid"][3] == {"point": "b2_l16", "batch_size": 2, "prompt_length": 16}
    assert perf["performance"]["new_tokens"] == 3 and perf["performance"]["device"] == "cpu"
    results = perf["results"]
    assert set(results) == set(METRICS)
    assert set(results["prefill_tokens_per_s"]["groups"]["batch_size"]) == {"1", "2"}
    assert len(results["ttft_ms"]["groups"]["point"]) == 4
    md = (out / "report.md").read_text()
    assert "| batch size | prompt length | prefill tok/s | decode tok/s | TTFT ms | peak MiB | growth MiB |" in md
    assert "| 2 | 16 |" in md and "tok/s (mean of 4 points)" in md
    page = (out / "report.html").read_text()
    assert "speed and memory per grid point" in page and "<th>prefill tok/s</th>" in page
    verdict = verify_report(out, [keys["vendor_pub"]], model_path=tiny_llama_dir)
    assert verdict.summary.startswith("verified:")


def test_verify_recomputes_perf_values_from_the_timings(perf_runs, tmp_path) -> None:
    from evalkit.report.samples import rescore

    row = next(r for r in _rows(perf_runs[0]) if r["suite"].endswith("tinyperf"))
    row["measurement"]["prefill_seconds"] = [s * 2 for s in row["measurement"]["prefill_seconds"]]
    assert rescore(row, "measurement")["prefill_tokens_per_s"] == pytest.approx(row["values"]["prefill_tokens_per_s"] / 2)


def test_reproduce_calls_a_rerun_identical_although_its_timings_differ(perf_runs) -> None:
    a, b, reproduced = perf_runs
    assert reproduced.identical, reproduced.summary
    report = json.loads((a / "report.json").read_text())
    rerun_report = json.loads((b / "report.json").read_text())
    assert (a / "samples.jsonl").read_bytes() != (b / "samples.jsonl").read_bytes()  # timings differ
    result = compare_runs(report, a, rerun_report, b)
    assert result.identical, result.summary
    assert "timings are a measurement, not compared" in result.summary
    perf = next(s for ref, s in result.details["suites"].items() if ref.endswith("tinyperf"))
    assert perf["rows_differing"] == 0 and perf["compared"] == "measurement, not compared"
    assert set(perf["measurement"]) == set(METRICS)
    assert not result.details["order_differs"]


def test_reproduce_still_fails_when_a_perf_row_timed_other_inputs(perf_runs, tmp_path) -> None:
    a, b, _ = perf_runs
    changed = tmp_path / "changed"
    shutil.copytree(b, changed)
    rows = _rows(changed)
    rows[1]["measurement"]["inputs_sha256"] = "0" * 64
    (changed / "samples.jsonl").write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    report = json.loads((a / "report.json").read_text())
    result = compare_runs(report, a, json.loads((changed / "report.json").read_text()), changed)
    assert not result.identical
    perf = next(s for ref, s in result.details["suites"].items() if ref.endswith("tinyperf"))
    assert perf["differing_ids"] == ["b1_l16"]


def test_compare_shows_ratios_for_perf_and_intervals_for_the_rest(perf_runs) -> None:
    result = compare_reports(perf_runs[0], perf_runs[1], n_boot=50)
    perf, mmlu = result["suites"]
    assert perf["compared"] == "measurement, not compared" and perf["metrics"] == []
    assert len(perf["measurement"]) == 4 * len(METRICS) and perf["paired"] == 4
    assert mmlu["metrics"] and result["same_suite_digests"]
    text = format_comparison(result)
    assert "B / A" in text and "b2_l16" in text and "prefill tok/s" in text


@pytest.mark.slow  # a run of its own (about 10-20 s with the invariance self-test)
def test_perf_override_replaces_the_grid_and_is_recorded(tiny_llama_dir, tmp_path) -> None:
    suite = write_perf_suite(tmp_path / "tinyperf")
    override = PerfOverride(batch_sizes=(3,), new_tokens=2, warmup=0, repeats=1)
    config = RunConfig(model=str(tiny_llama_dir), suites=(SuiteSpec(suite=str(suite)),), perf=override)
    outcome = run_evaluation(config, tmp_path / "out")
    entry = outcome.report["suites"][0]
    assert [p["point"] for p in entry["performance"]["grid"]] == ["b3_l8", "b3_l16"]
    assert (entry["performance"]["new_tokens"], entry["performance"]["repeats"]) == (2, 1)
    assert outcome.report["config"]["perf"]["batch_sizes"] == [3]


def test_a_point_longer_than_the_model_is_refused_before_timing(tiny_llama_dir, tmp_path) -> None:
    suite = write_perf_suite(tmp_path / "tinyperf")
    config = RunConfig(
        model=str(tiny_llama_dir), suites=(SuiteSpec(suite=str(suite)),), perf=PerfOverride(prompt_lengths=(510,))
    )
    with pytest.raises(ConfigError, match=r"perf point b1_l510 needs 513 positions .* the model has 512"):
        run_evaluation(config, tmp_path / "out")
