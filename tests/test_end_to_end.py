"""From a local checkpoint to a signed report that verifies, and every tamper that must not."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from evalkit.config import RunConfig, SuiteSpec
from evalkit.errors import ReportError, VerificationError
from evalkit.runner import run_evaluation
from evalkit.trust import generate_keypair, load_signing_key
from evalkit.verify import verify_report

SUITES = (SuiteSpec(suite="mmlu", limit=6), SuiteSpec(suite="mmlu", fewshot=2, limit=3), SuiteSpec(suite="xstest", limit=4))




@pytest.fixture(scope="module")
def signed_run(tiny_llama_dir, keys, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "signed"
    config = RunConfig(model=str(tiny_llama_dir), suites=SUITES, batch_size=4)
    outcome = run_evaluation(config, out, signing_keys=[keys["vendor"]])
    return out, outcome.report


def copy_run(signed_run, tmp_path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(signed_run[0], target)
    return target


def test_signed_run_writes_every_file_and_verifies(signed_run, keys, tiny_llama_dir):
    out, report = signed_run
    assert sorted(p.name for p in out.iterdir()) == [
        "model.manifest.json", "report.dsse.json", "report.html", "report.json", "report.md", "samples.jsonl",
    ]
    verdict = verify_report(out, [keys["vendor_pub"]], model_path=tiny_llama_dir)
    assert verdict.summary.startswith("verified:")
    assert "model re-hashed" in verdict.summary and "suite data re-hashed (mmlu, xstest)" in verdict.summary


def test_report_records_provenance_and_results(signed_run):
    _, report = signed_run
    assert report["schema"] == "evalkit.report/v1"
    assert [s["ref"] for s in report["suites"]] == ["mmlu", "mmlu:2shot", "xstest"]
    mmlu = report["suites"][0]
    assert mmlu["n_samples"] == 6 and mmlu["license"] == "MIT" and "Hendrycks" in mmlu["citation"]
    assert len(mmlu["results"]["accuracy"]["groups"]["subject"]) == 6  # spread across subjects
    xstest = report["suites"][2]
    assert set(xstest["results"]) == {"refusal_rate_unsafe", "over_refusal_rate_safe"}
    assert xstest["classifier"].startswith("refusal-rules/")
    assert report["precision"] == {"device": "cpu", "dtype": "float32", "reason": report["precision"]["reason"]}
    assert report["precision"]["reason"]
    for key in ("python", "torch", "transformers", "hardware"):
        assert report["environment"][key]
    assert report["seeds"]["run_seed"] == 1234
    assert report["config"]["batch_size"] == 4
    assert len(report["model"]["manifest_digest"]) == 64


def test_harmful_completions_are_stored_as_digests(signed_run):
    out, _ = signed_run
    rows = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    xstest = [r for r in rows if r["suite"] == "xstest"]
    unsafe = [r for r in xstest if r["fields"]["label"] == "unsafe"]
    safe = [r for r in xstest if r["fields"]["label"] == "safe"]
    assert unsafe and safe
    assert all("completion" not in r and len(r["completion_sha256"]) == 64 for r in unsafe)
    assert all("completion" in r for r in safe)


def test_same_inputs_give_the_same_samples_bytes(tiny_llama_dir, signed_run, tmp_path):
    config = RunConfig(model=str(tiny_llama_dir), suites=SUITES, batch_size=4)
    again = run_evaluation(config, tmp_path / "again")
    assert (tmp_path / "again" / "samples.jsonl").read_bytes() == (signed_run[0] / "samples.jsonl").read_bytes()
    assert again.report["suites"] == signed_run[1]["suites"]


def test_batch_size_does_not_change_results_beyond_float_noise(tiny_llama_dir, signed_run, tmp_path):
    config = RunConfig(model=str(tiny_llama_dir), suites=SUITES, batch_size=1)
    run_evaluation(config, tmp_path / "b1")
    one = [json.loads(x) for x in (tmp_path / "b1" / "samples.jsonl").read_text().splitlines()]
    four = [json.loads(x) for x in (signed_run[0] / "samples.jsonl").read_text().splitlines()]
    for a, b in zip(one, four):
        assert a["id"] == b["id"]
        if "loglikelihoods" in a:
            assert max(abs(x - y) for x, y in zip(a["loglikelihoods"], b["loglikelihoods"])) < 1e-4


def _flip_byte(path: Path, needle: bytes, replacement: bytes) -> None:
    data = path.read_bytes()
    assert needle in data
    path.write_bytes(data.replace(needle, replacement, 1))


def test_changed_report_json_fails(signed_run, keys, tmp_path):
    out = copy_run(signed_run, tmp_path)
    _flip_byte(out / "report.json", b'"batch_size": 4', b'"batch_size": 5')
    with pytest.raises(VerificationError, match="report.json does not match the signed report"):
        verify_report(out, [keys["vendor_pub"]])


def test_changed_samples_fail(signed_run, keys, tmp_path):
    out = copy_run(signed_run, tmp_path)
    _flip_byte(out / "samples.jsonl", b'"correct":0.0', b'"correct":1.0')
    with pytest.raises(VerificationError) as caught:
        verify_report(out, [keys["vendor_pub"]])
    message = str(caught.value)
    assert "samples.jsonl was changed" in message
    assert "do not follow from its outputs" in message


def test_changed_envelope_fails(signed_run, keys, tmp_path):
    out = copy_run(signed_run, tmp_path)
    envelope = json.loads((out / "report.dsse.json").read_text())
    payload = base64.b64decode(envelope["payload"]).replace(b'"batch_size":4', b'"batch_size":5')
    envelope["payload"] = base64.b64encode(payload).decode()
    (out / "report.dsse.json").write_text(json.dumps(envelope))
    with pytest.raises(VerificationError, match="signature"):
        verify_report(out, [keys["vendor_pub"]])


def test_one_byte_of_the_signature_changed_fails(signed_run, keys, tmp_path):
    out = copy_run(signed_run, tmp_path)
    envelope = json.loads((out / "report.dsse.json").read_text())
    sig = bytearray(base64.b64decode(envelope["signatures"][0]["sig"]))
    sig[0] ^= 1
    envelope["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
    (out / "report.dsse.json").write_text(json.dumps(envelope))
    with pytest.raises(VerificationError, match="signature"):
        verify_report(out, [keys["vendor_pub"]])


def test_another_key_fails(signed_run, keys):
    with pytest.raises(VerificationError, match="signature"):
        verify_report(signed_run[0], [keys["other_pub"]])


def test_a_different_model_fails(signed_run, keys, tiny_llama_dir, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_llama_dir, model)
    with (model / "config.json").open("a") as handle:
        handle.write("\n")
    with pytest.raises(VerificationError, match="does not match the report's model digest"):
        verify_report(signed_run[0], [keys["vendor_pub"]], model_path=model)


def test_changed_report_md_fails(signed_run, keys, tmp_path):
    out = copy_run(signed_run, tmp_path)
    _flip_byte(out / "report.md", b"# evalkit report", b"# evalkit Report")
    with pytest.raises(VerificationError, match="report.md does not match"):
        verify_report(out, [keys["vendor_pub"]])


def test_unsigned_report_does_not_verify(tiny_llama_dir, keys, tmp_path):
    config = RunConfig(model=str(tiny_llama_dir), suites=(SuiteSpec(suite="mmlu", limit=2),))
    run_evaluation(config, tmp_path / "unsigned")
    with pytest.raises(VerificationError, match="report.dsse.json is missing.*not signed"):
        verify_report(tmp_path / "unsigned", [keys["vendor_pub"]])


def test_refuses_to_overwrite_a_report(signed_run, tiny_llama_dir):
    config = RunConfig(model=str(tiny_llama_dir), suites=(SuiteSpec(suite="mmlu", limit=2),))
    with pytest.raises(ReportError, match="not empty"):
        run_evaluation(config, signed_run[0])


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evalkit", *args], capture_output=True, text=True, cwd=cwd)


def test_cli_run_help_documents_every_flag():
    result = _cli("run", "--help")
    assert result.returncode == 0
    for flag in ("--model", "--suite", "--out", "--key", "--limit", "--config", "--device", "--dtype",
                 "--batch-size", "--show-harmful", "--allow-pickle"):
        assert flag in result.stdout


def test_cli_errors_are_one_line_without_traceback(tmp_path):
    result = _cli("run", "--model", str(tmp_path / "nope"), "--suite", "mmlux", "--out", str(tmp_path / "o"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: unknown suite 'mmlux'; did you mean 'mmlu'?")
    result = _cli("run", "--model", str(tmp_path / "nope"), "--suite", "mmlu", "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "does not exist" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_cli_end_to_end_keygen_run_verify(tiny_llama_dir, tmp_path):
    assert _cli("keygen", "--out", str(tmp_path / "keys")).returncode == 0
    run = _cli("run", "--model", str(tiny_llama_dir), "--suite", "xstest", "--limit", "2",
               "--out", str(tmp_path / "out"), "--key", str(tmp_path / "keys" / "evalkit.key"))
    assert run.returncode == 0, run.stderr
    verify = _cli("verify", str(tmp_path / "out"), "--pub", str(tmp_path / "keys" / "evalkit.pub"))
    assert verify.returncode == 0, verify.stderr
    assert verify.stdout.startswith("verified:")
    other = _cli("keygen", "--out", str(tmp_path / "keys"), "--name", "other")
    assert other.returncode == 0
    wrong = _cli("verify", str(tmp_path / "out"), "--pub", str(tmp_path / "keys" / "other.pub"))
    assert wrong.returncode == 1 and "signature" in wrong.stderr


@pytest.mark.slow
def test_default_model_quick_run_signs_and_verifies(smollm2_dir, tmp_path):
    """The README's main job, shrunk: the real SmolLM2 on every kind of suite."""
    assert _cli("keygen", "--out", str(tmp_path / "keys")).returncode == 0
    run = _cli("run", "--model", str(smollm2_dir), "--config", "quick", "--limit", "3",
               "--out", str(tmp_path / "out"), "--key", str(tmp_path / "keys" / "evalkit.key"))
    assert run.returncode == 0, run.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [s["ref"] for s in report["suites"]] == [
        "mmlu:0shot", "mmlu:5shot", "piqa", "truthfulqa_mc", "bbq", "gsm8k", "xstest", "perf"
    ]
    assert report["determinism"]["self_test"]["generation"]["identical"]
    verify = _cli("verify", str(tmp_path / "out"), "--pub", str(tmp_path / "keys" / "evalkit.pub"),
                  "--model", str(smollm2_dir))
    assert verify.returncode == 0, verify.stderr
    assert "model re-hashed" in verify.stdout


def test_run_with_required_signed_pack_records_it_and_verifies(tiny_llama_dir, keys, tmp_path, monkeypatch):
    from evalkit.paths import bundled_suites_dir
    from evalkit.suite.pack import pack_suite, sign_pack

    monkeypatch.setenv("EVALKIT_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "keys"
    generate_keypair(folder, "body")
    pack = pack_suite(bundled_suites_dir() / "xstest", tmp_path / "xstest.evalkit-pack")
    sign_pack(pack.path, load_signing_key(folder / "body.key"))
    config = RunConfig(
        model=str(tiny_llama_dir), suites=(SuiteSpec(suite=str(pack.path), limit=2),),
        trust=(str(folder / "body.pub"),), require_signed_suites=True,
    )
    outcome = run_evaluation(config, tmp_path / "out", signing_keys=[keys["vendor"]])
    entry = outcome.report["suites"][0]
    assert entry["pack"]["sha256"] == pack.sha256 and len(entry["pack"]["signed_by"]) == 1
    assert verify_report(tmp_path / "out", [keys["vendor_pub"]]).summary.startswith("verified:")

    unsigned = RunConfig(
        model=str(tiny_llama_dir), suites=(SuiteSpec(suite="xstest", limit=2),),
        trust=(str(folder / "body.pub"),), require_signed_suites=True,
    )
    with pytest.raises(Exception, match="not a signed pack"):
        run_evaluation(unsigned, tmp_path / "out2")


def test_a_changed_suite_file_fails_verification(tiny_llama_dir, keys, tmp_path):
    from evalkit.paths import bundled_suites_dir

    suite = tmp_path / "xstest_copy"
    shutil.copytree(bundled_suites_dir() / "xstest", suite)
    config = RunConfig(model=str(tiny_llama_dir), suites=(SuiteSpec(suite=str(suite), limit=2),))
    run_evaluation(config, tmp_path / "out", signing_keys=[keys["vendor"]])
    assert verify_report(tmp_path / "out", [keys["vendor_pub"]]).summary.startswith("verified:")
    with (suite / "SOURCE.md").open("a") as handle:
        handle.write("\nedited\n")
    with pytest.raises(VerificationError, match="suite xstest: the local copy has digest"):
        verify_report(tmp_path / "out", [keys["vendor_pub"]])
