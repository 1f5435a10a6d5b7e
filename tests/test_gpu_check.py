"""scripts/gpu_check.py works before a GPU is ever lent: its CPU smoke mode runs every stage on tiny
shapes and writes the full report, and asking for CUDA where there is none is a one-line usage error.

A GPU session is short and rare; a script that only fails once it has one wastes it. The smoke run
takes about a minute on two cores (most of it bench_scoring's lm-eval workers starting up).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "gpu_check.py"
STAGES = (
    "triton_head",
    "prepare_models",
    "bf16_vs_fp32",
    "batch_invariance",
    "build_large_model",
    "bench_scoring_large_bf16",
    "bench_generate_large_bf16",
    "bench_scoring_small_fp32",
)


def _run(args: list[str], tmp_path: Path, timeout: float, **env: str) -> subprocess.CompletedProcess[str]:
    # An empty evalkit cache: the script must build its tokenizer and models itself, as on a fresh
    # GPU machine, whatever this machine has installed.
    environ = {**os.environ, "EVALKIT_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1", **env}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=REPO, env=environ,
        timeout=timeout, check=False,
    )


def test_cpu_smoke_run_records_every_stage_and_passes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = _run(["--device", "cpu", "--smoke", "--out", str(out)], tmp_path, timeout=600)
    assert done.returncode == 0, (done.stdout[-4000:], done.stderr[-4000:])

    report = json.loads((out / "gpu_check.json").read_text())
    assert report["schema"] == "evalkit.gpu_check/1" and report["mode"] == "smoke"
    assert report["finished"] is True and report["ok"] is True
    assert report["environment"]["torch"] and report["environment"]["transformers"]
    assert list(report["stages"]) == list(STAGES)
    for name, stage in report["stages"].items():
        assert stage["status"] in ("pass", "skipped"), (name, stage)
        assert stage["passed"] is (None if stage["status"] == "skipped" else True), (name, stage)

    stages = report["stages"]
    if stages["triton_head"]["status"] == "pass":  # skipped only where triton is not installed
        cases = stages["triton_head"]["cases"]
        assert cases and all(c["passed"] for c in cases)
        assert {c["dtype"] for c in cases} == {"float32", "float16"}  # the interpreter runs no bf16
    comparisons = stages["bf16_vs_fp32"]["comparisons"]
    assert comparisons["engine_fp32_vs_reference"]["max_abs"] <= 1e-3
    assert set(stages["batch_invariance"]["dtypes"]) == {"float32", "bfloat16"}
    assert stages["batch_invariance"]["dtypes"]["float32"]["generation_judged"] is True
    # bench_scoring cannot leave lm-eval out, so smoke mode runs it once, on the small model.
    assert stages["bench_scoring_large_bf16"]["status"] == "skipped"
    assert "mmlu_0shot" in stages["bench_scoring_small_fp32"]["summary"]["workloads"]
    assert "gsm8k" in stages["bench_generate_large_bf16"]["summary"]["workloads"]

    note = (out / "gpu_check.md").read_text()
    assert "| check | status | key numbers | s |" in note
    assert all(f"| {name} |" in note for name in STAGES)
    assert note.strip() in done.stdout  # printed at the end, ready to paste


def test_cuda_where_there_is_none_is_a_one_line_usage_error(tmp_path: Path) -> None:
    # No visible GPU even on a machine that has one, so this runs everywhere.
    done = _run(["--device", "cuda", "--out", str(tmp_path / "out")], tmp_path, timeout=120, CUDA_VISIBLE_DEVICES="")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu_check.py: error:"), done.stderr
    assert "CUDA is not available" in lines[0] and "--device cpu --smoke" in lines[0]
    assert "Traceback" not in done.stderr and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--device", "cpu"], "--device cpu runs only with --smoke"),
        (["--device", "tpu", "--smoke"], "--device must be cuda, cuda:N or cpu"),
        (["--smoke", "--device", "cpu", "--budget-s", "0"], "must be positive"),
        (["--no-such-flag"], "unrecognized arguments"),
    ],
)
def test_bad_usage_exits_2_with_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    done = _run(args, tmp_path, timeout=120)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr
