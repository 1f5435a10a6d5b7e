"""Co-signing: vendor and partner on one report; verify counts distinct trusted keys against a threshold.

One tiny signed run (the tiny random Llama on a two-question suite) is made per module; each test
co-signs its own copy of it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from evalkit.cli_trust import register
from evalkit.config import RunConfig, SuiteSpec
from evalkit.cosign import cosign_report
from evalkit.errors import KeyFileError, ReportError, VerificationError
from evalkit.runner import run_evaluation
from evalkit.trust import (
    generate_keypair,
    load_signing_key,
    load_verify_key,
    read_envelope,
    write_envelope,
)
from evalkit.verify import verify_report

TEST_CSV = "question,a,b,answer\nWhat is 1+1?,2,3,0\nWhat is 2+2?,5,4,1\n"
SUITE_YAML = """\
format: evalkit.suite/v1
name: tiny
version: 1.0.0
description: a tiny multiple-choice suite
license: CC0-1.0
citation: none
kind: multiple_choice
data:
  - {path: data/test.csv, sha256: SHA, split: test}
prompt: {template: "{question}\\nA. {a}\\nB. {b}\\nAnswer:"}
choices: {static: [" A", " B"]}
target: {field: answer, type: index}
scorer: choice_loglikelihood
metrics: [{name: accuracy, value: correct}]
"""


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("keys")
    generate_keypair(folder, "vendor")
    generate_keypair(folder, "partner", algorithm="ecdsa-p256")  # the HSM-friendly kind
    generate_keypair(folder, "stranger")
    return folder


@pytest.fixture(scope="module")
def signed_run(tiny_llama_dir: Path, keys: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    suite = tmp_path_factory.mktemp("suites") / "tiny"
    (suite / "data").mkdir(parents=True)
    (suite / "data" / "test.csv").write_text(TEST_CSV, encoding="utf-8")
    (suite / "LICENSE").write_text("CC0 1.0 Universal\n", encoding="utf-8")
    sha = hashlib.sha256(TEST_CSV.encode()).hexdigest()
    (suite / "suite.yaml").write_text(SUITE_YAML.replace("SHA", sha), encoding="utf-8")
    out = tmp_path_factory.mktemp("runs") / "signed"
    config = RunConfig(model=str(tiny_llama_dir), suites=(SuiteSpec(suite=str(suite)),), batch_size=2)
    run_evaluation(config, out, signing_keys=[load_signing_key(keys / "vendor.key")])
    return out


@pytest.fixture
def run(signed_run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(signed_run, copy)
    return copy


def pub(keys: Path, *names: str) -> list:
    return [load_verify_key(keys / f"{name}.pub") for name in names]


def test_vendor_and_partner_meet_a_threshold_of_two(run: Path, keys: Path) -> None:
    before = read_envelope(run / "report.dsse.json")
    partner = load_signing_key(keys / "partner.key")
    assert cosign_report(run, partner) == partner.keyid
    after = read_envelope(run / "report.dsse.json")
    assert after["payload"] == before["payload"] and len(after["signatures"]) == 2
    assert [p.name for p in run.iterdir() if p.name.endswith(".tmp")] == []  # rewritten atomically

    verdict = verify_report(run, pub(keys, "vendor", "partner"), threshold=2)
    assert verdict.summary.startswith("verified: signed by 2 of 2 trusted key(s)")
    assert verify_report(run, pub(keys, "partner")).summary.startswith("verified:")  # ECDSA alone
    with pytest.raises(VerificationError, match="2 valid signatures are required but only 1 distinct public key"):
        verify_report(run, pub(keys, "vendor"), threshold=2)
    with pytest.raises(VerificationError, match="1 of 2 required trusted keys signed report.dsse.json"):
        verify_report(run, pub(keys, "vendor", "stranger"), threshold=2)


def test_a_key_signs_once(run: Path, keys: Path) -> None:
    with pytest.raises(KeyFileError, match="has already signed this envelope; co-sign with another key"):
        cosign_report(run, load_signing_key(keys / "vendor.key"))
    cosign_report(run, load_signing_key(keys / "partner.key"))
    with pytest.raises(KeyFileError, match="already signed"):
        cosign_report(run, load_signing_key(keys / "partner.key"))


def test_an_unsigned_report_is_refused(run: Path, keys: Path) -> None:
    (run / "report.dsse.json").unlink()
    with pytest.raises(ReportError, match="report.dsse.json is missing .* never signed"):
        cosign_report(run, load_signing_key(keys / "partner.key"))
    with pytest.raises(ReportError, match="is not a folder"):
        cosign_report(run / "nope", load_signing_key(keys / "partner.key"))


def test_a_changed_report_json_is_not_co_signed(run: Path, keys: Path) -> None:
    report = run / "report.json"
    report.write_text(report.read_text(encoding="utf-8").replace('"batch_size": 2', '"batch_size": 3'), encoding="utf-8")
    before = (run / "report.dsse.json").read_bytes()
    with pytest.raises(VerificationError, match="differs from the signed report; refusing to co-sign"):
        cosign_report(run, load_signing_key(keys / "partner.key"))
    assert (run / "report.dsse.json").read_bytes() == before


def test_an_envelope_that_is_not_an_evalkit_report_is_refused(run: Path, keys: Path) -> None:
    path, partner = run / "report.dsse.json", load_signing_key(keys / "partner.key")
    original = read_envelope(path)
    write_envelope(path, {**original, "payloadType": "text/plain"})
    with pytest.raises(VerificationError, match="payloadType 'text/plain'"):
        cosign_report(run, partner)
    statement = json.dumps({"_type": "https://in-toto.io/Statement/v1", "predicateType": "x"}).encode()
    write_envelope(path, {**original, "payload": base64.b64encode(statement).decode()})
    with pytest.raises(VerificationError, match="predicateType 'x'"):
        cosign_report(run, partner)


def test_cli_sign_through_register(run: Path, keys: Path) -> None:
    app = typer.Typer()
    app.command("noop")(lambda: None)
    register(app, typer.Typer())
    result = CliRunner().invoke(app, ["sign", str(run), "--key", str(keys / "partner.key")])
    assert result.exit_code == 0, result.output
    assert "co-signed by key" in result.output and "(2 signatures)" in result.output
    again = CliRunner().invoke(app, ["sign", str(run), "--key", str(keys / "partner.key")])
    assert isinstance(again.exception, KeyFileError)


def test_cli_sign_then_verify_in_a_subprocess(run: Path, keys: Path) -> None:
    script = (
        "from evalkit import cli\n"
        "from evalkit.cli_trust import register\n"
        "if not any(c.name == 'sign' for c in cli.app.registered_commands):\n"
        "    register(cli.app, cli.suite_app)\n"
        "cli.main()\n"
    )

    def evalkit(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", script, *args], check=False, capture_output=True, text=True)

    signed = evalkit("sign", str(run), "--key", str(keys / "partner.key"))
    assert signed.returncode == 0, signed.stderr
    both = ["--pub", str(keys / "vendor.pub"), "--pub", str(keys / "partner.pub")]
    assert evalkit("verify", str(run), *both, "--threshold", "2").returncode == 0
    one = evalkit("verify", str(run), "--pub", str(keys / "vendor.pub"), "--threshold", "2")
    assert one.returncode == 1 and one.stderr.startswith("error: signature check failed")
    twice = evalkit("sign", str(run), "--key", str(keys / "partner.key"))
    assert twice.returncode == 2 and "already signed" in twice.stderr and "Traceback" not in twice.stderr
