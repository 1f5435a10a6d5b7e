"""Re-running a report (`reproduce`) and proving one of its samples (`disclose`, `verify-disclosure`).

One small signed run on the tiny model is shared by the module; reruns happen in this process, where
the engine is already warm, so each costs about a second.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evalkit.config import RunConfig, SuiteSpec
from evalkit.errors import ConfigError, ReportError, VerificationError
from evalkit.report.files import json_line
from evalkit.reproduce import disclose_sample, rebuild_config, reproduce_run, verify_disclosure
from evalkit.runner import run_evaluation
from evalkit.trust.merkle import MERKLE_SCHEME
from evalkit.verify import verify_report

SUITES = (SuiteSpec(suite="mmlu", limit=3), SuiteSpec(suite="xstest", limit=2))


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """On 2 shared cores, torch's second OpenMP thread mostly spin-waits for the other jobs: one
    thread runs this module's tiny-model runs about 10x faster. Restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)




@pytest.fixture(scope="module")
def signed_run(tiny_llama_dir, keys, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "signed"
    config = RunConfig(model=str(tiny_llama_dir), suites=SUITES, batch_size=4)
    outcome = run_evaluation(config, out, signing_keys=[keys["vendor"]])
    return out, outcome.report


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "samples.jsonl").read_text(encoding="utf-8").splitlines()]


def _write_rows(out: Path, rows: list[dict]) -> None:
    (out / "samples.jsonl").write_text("".join(json_line(r) for r in rows), encoding="utf-8")


def _copy(signed_run, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(signed_run[0], target)
    return target


# --- reproduce ---------------------------------------------------------------------------------------


def test_rerun_of_an_unchanged_signed_run_is_identical(signed_run, keys, tiny_llama_dir, tmp_path):
    out, report = signed_run
    result = reproduce_run(out, tiny_llama_dir, keys=[keys["vendor_pub"]], work_dir=tmp_path / "rerun")
    assert result.identical, result.summary
    assert result.summary.startswith("identical: all 5 samples of 2 suite run(s)")
    assert "signature checked" in result.summary
    assert result.details["rows_differing"] == 0 and result.details["max_abs_delta_loglikelihood"] is None
    assert result.details["samples_sha256"]["rerun"] == report["samples"]["sha256"]
    assert all(s["digest_match"] for s in result.details["suites"].values())
    assert result.details["suites"]["mmlu"]["metrics"]["accuracy"]["bound"] == 0.0
    # --keep: the rerun's folder stays, a complete report of its own.
    assert result.details["rerun_dir"] == str(tmp_path / "rerun")
    assert (tmp_path / "rerun" / "report.json").is_file()


def test_one_changed_loglikelihood_is_not_identical_with_its_gap(signed_run, tiny_llama_dir, tmp_path):
    out = _copy(signed_run, tmp_path)
    rows = _rows(out)
    mc = [i for i, r in enumerate(rows) if r["suite"] == "mmlu"]
    first, second = rows[mc[0]], rows[mc[1]]
    first["loglikelihoods"][2] += 0.25
    second["values"]["correct"] = 1.0 - second["values"]["correct"]  # a flipped decision
    _write_rows(out, rows)
    before = sorted(p.name for p in tmp_path.iterdir())

    result = reproduce_run(out, tiny_llama_dir)  # no keys: the tampered copy is read as it is

    assert not result.identical
    assert result.summary.startswith("NOT identical: 2 of 5 samples differ (mmlu 2/3, xstest 0/2)")
    assert "report not signature-checked" in result.summary
    details = result.details
    assert details["max_abs_delta_loglikelihood"] == pytest.approx(0.25, abs=1e-12)
    assert details["max_delta_at"] == {"suite": "mmlu", "id": first["id"]}
    mmlu = details["suites"]["mmlu"]
    assert mmlu["rows_differing"] == 2 and sorted(mmlu["differing_ids"]) == sorted([first["id"], second["id"]])
    accuracy = mmlu["metrics"]["accuracy"]
    assert accuracy["flipped"] == 1 and accuracy["n"] == 3 and accuracy["bound"] == pytest.approx(1 / 3)
    assert abs(accuracy["change"]) == pytest.approx(1 / 3)
    assert details["suites"]["xstest"]["rows_differing"] == 0
    assert any("does not match the digest its report.json records" in n for n in details["notes"])
    # The temporary rerun folder beside the report is gone.
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_cli_exit_status_is_3_when_not_identical(signed_run, tiny_llama_dir, tmp_path):
    from evalkit.cli import app

    out = _copy(signed_run, tmp_path)
    rows = _rows(out)
    rows[0]["loglikelihoods"][0] -= 1.5
    _write_rows(out, rows)
    result = CliRunner().invoke(app, ["reproduce", str(out), "--model", str(tiny_llama_dir), "--json"])
    assert result.exit_code == 3, result.output
    assert "NOT identical: 1 of 5 samples differ" in result.output
    details = json.loads(result.output[result.output.index("\n{") + 1:])
    assert details["max_abs_delta_loglikelihood"] == pytest.approx(1.5, abs=1e-12)


def test_other_weights_are_refused_before_anything_runs(signed_run, keys, tiny_llama_dir, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_llama_dir, model)
    with (model / "config.json").open("a") as handle:
        handle.write("\n")
    with pytest.raises(VerificationError, match="is not the one the report evaluated.*config.json"):
        reproduce_run(signed_run[0], model, work_dir=tmp_path / "rerun")
    assert not (tmp_path / "rerun").exists()
    with pytest.raises(VerificationError, match="signature"):
        reproduce_run(signed_run[0], tiny_llama_dir, keys=[keys["other_pub"]])
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("")
    with pytest.raises(ConfigError, match="--keep .* is not empty"):
        reproduce_run(signed_run[0], tiny_llama_dir, work_dir=tmp_path / "busy")


def test_cli_exit_status_is_1_for_other_weights_and_2_for_usage(signed_run, tiny_llama_dir, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_llama_dir, model)
    (model / "config.json").write_text((model / "config.json").read_text() + " ")
    wrong = _cli("reproduce", str(signed_run[0]), "--model", str(model))
    assert wrong.returncode == 1 and "not the one the report evaluated" in wrong.stderr
    assert "Traceback" not in wrong.stderr
    usage = _cli("reproduce", str(signed_run[0]))
    assert usage.returncode == 2 and "--model" in usage.stderr


def test_config_is_rebuilt_as_recorded_and_pinned():
    report = {
        "config": RunConfig(model="/elsewhere", suites=SUITES, batch_size=8, seed=7).model_dump(mode="json"),
        "precision": {"device": "cpu", "dtype": "float32", "reason": "auto"},
        "engine": {"token_budget": 4096},
    }
    config = rebuild_config(report, Path("/here/model"))
    assert config.model == "/here/model" and config.suites == SUITES
    assert (config.batch_size, config.seed, config.device, config.dtype, config.token_budget) == (8, 7, "cpu", "float32", 4096)


# --- Merkle root in the report and verify ------------------------------------------------------------


def test_report_records_the_merkle_root_and_verify_checks_it(signed_run, keys, tmp_path):
    out, report = signed_run
    assert report["samples"]["merkle"] == MERKLE_SCHEME and len(report["samples"]["merkle_root"]) == 64
    assert verify_report(out, [keys["vendor_pub"]]).summary.startswith("verified:")
    copy = _copy(signed_run, tmp_path)
    rows = _rows(copy)
    rows[-1]["n_tokens"] += 1
    _write_rows(copy, rows)
    with pytest.raises(VerificationError, match="samples.jsonl does not match the signed merkle_root"):
        verify_report(copy, [keys["vendor_pub"]])


# --- disclose / verify-disclosure -------------------------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evalkit", *args], capture_output=True, text=True)


def test_cli_disclose_and_verify_round_trip_and_a_tampered_row_fails(signed_run, keys, tmp_path):
    out, _ = signed_run
    row = [r for r in _rows(out) if r["suite"] == "xstest"][1]
    pub = str(keys["folder"] / "vendor.pub")
    target = tmp_path / "finding.json"
    made = _cli("disclose", str(out), "--sample", row["id"], "--suite", "xstest", "--out", str(target))
    assert made.returncode == 0, made.stderr
    disclosure = json.loads(target.read_text())
    assert disclosure["format"] == "evalkit.disclosure/v1" and disclosure["index"] == 4 and disclosure["n_leaves"] == 5
    assert json.loads(disclosure["row"]) == row
    assert set(disclosure) == {"format", "row", "index", "n_leaves", "proof", "merkle_root", "envelope"}

    checked = _cli("verify-disclosure", str(target), "--pub", pub)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith(f"verified: sample {row['id']!r} of suite run xstest (row 5 of 5)")

    disclosure["row"] = disclosure["row"].replace('"n_tokens":', '"n_tokens":1', 1)
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(disclosure))
    failed = _cli("verify-disclosure", str(tampered), "--pub", pub)
    assert failed.returncode == 1
    assert "inclusion proof does not verify" in failed.stderr and "Traceback" not in failed.stderr


def test_every_tampered_disclosure_fails_naming_what(signed_run, keys):
    out, _ = signed_run
    first = _rows(out)[0]
    good = disclose_sample(out, first["id"])
    assert good["index"] == 0 and good["proof"]
    assert verify_disclosure(good, [keys["vendor_pub"]]).row == first

    def fails(change, match, key="vendor_pub"):
        bad = json.loads(json.dumps(good))
        change(bad)
        with pytest.raises(VerificationError, match=match):
            verify_disclosure(bad, [keys[key]])

    fails(lambda d: d.update(index=1), "inclusion proof does not verify")
    fails(lambda d: d["proof"].pop(), "inclusion proof does not verify")
    fails(lambda d: d["proof"][0].update(sha256="0" * 64), "inclusion proof does not verify")
    fails(lambda d: d.update(merkle_root="0" * 64), "merkle_root 0000000000000000… is not the signed")
    fails(lambda d: d.update(n_leaves=6), "n_leaves is 6, the signed report has 5 rows")
    fails(lambda d: d["envelope"].update(payload=d["envelope"]["payload"][:-8] + "AAAAAAA="), "signature")
    fails(lambda d: None, "signature", key="other_pub")
    fails(lambda d: d.update(format="something/v0"), "not a disclosure")
    fails(lambda d: d.update(proof="none"), "malformed disclosure: proof")


def test_disclose_names_unknown_samples_and_needs_a_signed_intact_report(signed_run, tmp_path):
    out, _ = signed_run
    first = _rows(out)[0]
    with pytest.raises(ReportError, match="no sample with id .*did you mean"):
        disclose_sample(out, first["id"][:-1] + "9")
    copy = _copy(signed_run, tmp_path)
    rows = _rows(copy)
    rows[0]["values"]["correct"] = 1.0 - rows[0]["values"]["correct"]
    _write_rows(copy, rows)
    with pytest.raises(VerificationError, match="does not match the signed merkle_root"):
        disclose_sample(copy, first["id"])
    (copy / "report.dsse.json").unlink()
    with pytest.raises(ReportError, match="only a signed report"):
        disclose_sample(copy, first["id"])
