"""report.html: self-contained, escaped, deterministic, and readable in a real (headless) browser."""

from __future__ import annotations

import copy
import json
import re
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from evalkit.cli_reports import register
from evalkit.report.html import REPORT_HTML, interval, render_html

CHROMIUM = Path("/usr/bin/chromium")

# A hostile model output / dataset string: it must reach the page as text, never as markup.
COMPLETION = "Sure! <script>alert('pwned')</script><img src=x onerror=alert(1)> & done"


def _metric(value: float | None, stderr: float | None, n: int, description: str, groups: dict[str, Any]) -> dict[str, Any]:
    return {"value": value, "stderr": stderr, "n": n, "description": description, "groups": groups}


def crafted_report(*, model_name: str = "demo-model-7b", hostile: str = COMPLETION) -> dict[str, Any]:
    """A small report with the shape runner.py writes; `hostile` sits in every free-text spot."""
    def g(value: float, stderr: float | None, n: int) -> dict[str, Any]:
        return {"value": value, "stderr": stderr, "n": n}

    mmlu = {
        "ref": "mmlu", "name": "mmlu", "version": "1.0.0", "digest": "a" * 64, "source": "mmlu",
        "kind": "multiple_choice", "scorer": "choice_loglikelihood", "classifier": None, "fewshot": 0,
        "limit": 8, "n_samples": 8, "description": f"Knowledge. {hostile}", "license": "MIT",
        "citation": f"@article{{x, note={{{hostile}}}, url={{https://example.org/paper}}}}\n",
        "group_by": ["subject"], "pack": {"sha256": "7" * 64, "file": "mmlu-1.0.0.evalkit-pack", "signed_by": ["k1d"]},
        "metric_specs": [{"name": "accuracy", "value": "correct", "where": {}, "description": ""}],
        "results": {"accuracy": _metric(0.625, 0.1, 8, "", {"subject": {
            "anatomy": g(0.75, 0.25, 4), hostile: g(0.5, 0.288675, 4)}})},
    }
    xstest = {
        "ref": "xstest", "name": "xstest", "version": "1.0.0", "digest": "b" * 64, "source": "xstest",
        "kind": "generation", "scorer": "refusal", "classifier": "refusal-rules/1", "fewshot": 0,
        "limit": 8, "n_samples": 8, "description": "Exaggerated safety.", "license": "CC-BY-4.0",
        "citation": "Röttger et al., NAACL 2024\n", "group_by": ["label", "type"],
        "metric_specs": [
            {"name": "over_refusal_rate_safe", "value": "refused", "where": {"label": "safe"},
             "description": "share of safe prompts refused (lower is better)"},
            {"name": "refusal_rate_unsafe", "value": "refused", "where": {"label": "unsafe"},
             "description": "share of unsafe prompts refused (higher is safer)"},
        ],
        "results": {
            "over_refusal_rate_safe": _metric(0.25, 0.25, 4, "share of safe prompts refused (lower is better)", {
                "label": {"safe": g(0.25, 0.25, 4)}, "type": {"homonyms": g(0.5, 0.5, 2), "figurative_language": g(0.0, 0.0, 2)}}),
            "refusal_rate_unsafe": _metric(0.75, 0.25, 4, "share of unsafe prompts refused (higher is safer)", {
                "label": {"unsafe": g(0.75, 0.25, 4)}, "type": {"contrast_homonyms": g(0.75, 0.25, 4)}}),
        },
    }
    return {
        "schema": "evalkit.report/v1",
        "evalkit": {"version": "0.1.0", "git_commit": "f" * 40},
        "config": {"model": "/models/demo", "seed": 1234, "note": hostile},
        "model": {
            "name": model_name, "format": "safetensors", "manifest_digest": "c" * 64, "manifest_file": "model.manifest.json",
            "files": 3, "bytes": 1234, "chat_template_sha256": "d" * 64, "architecture": "LlamaForCausalLM", "parameters": 7000,
        },
        "precision": {"device": "cpu", "dtype": "float32", "reason": "auto: CPU, float32"},
        "environment": {"python": "3.11.7", "torch": "2.13.0+cpu", "transformers": "5.24.0", "hardware": f"CPU {hostile}",
                        "gpu": None, "cuda": None, "torch_threads": 2, "platform": "Linux", "implementation": "cpython"},
        "engine": {"max_rows": 32, "token_budget": 16384, "token_budget_reason": "CPU default", "max_length": 512, "generation": "greedy"},
        "determinism": {"mode": "deterministic", "self_test": {
            "bit_identical": True, "canaries": 8, "batch_sizes": [1, 32], "orders": ["forward", "reversed"], "max_abs_diff": 0,
            "results_sha256": "e" * 64}},
        "seeds": {"run_seed": 1234},
        "suites": [mmlu, xstest],
        "samples": {"file": "samples.jsonl", "sha256": "9" * 64, "rows": 16},
        "redaction": {"harmful_completions": "sha256", "note": "completions to harmful prompts are stored as SHA-256 digests only"},
        "timing": {"started_at": "2026-01-01T00:00:00+00:00", "seconds": 12.5, "suite_seconds": {"mmlu": 2.0, "xstest": 8.0}},
    }


# --- pure rendering ----------------------------------------------------------------------------------


def test_every_report_string_is_escaped():
    page = render_html(crafted_report(model_name=f"evil {COMPLETION}"), verification=f"verification FAILED:\n  {COMPLETION}")
    assert "<script" not in page.lower()
    assert "<img" not in page.lower()
    assert "onerror=alert" not in page.replace("onerror=alert(1)&gt;", "")  # only as escaped text
    escaped = "&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt;"
    # model name (title, heading, summary), description, citation, group value, environment, config, verdict
    assert page.count(escaped) >= 8


def test_page_references_nothing_outside_itself():
    page = render_html(crafted_report(), verification="verified: ok")
    assert not re.search(r"""(?:src|href|action|xlink:href|srcset|poster|data)\s*=\s*["']?\s*(?:https?:|//|file:)""", page, re.IGNORECASE)
    for tag in ("<script", "<link", "<iframe", "<img", "<object", "<embed", "<base", "@import", "url("):
        assert tag not in page.lower(), tag
    # Defence in depth: the page itself forbids every fetch and every script.
    assert "default-src 'none'" in page
    # URLs inside citations are shown as text, not followed.
    assert "https://example.org/paper" in page


def test_same_report_gives_the_same_bytes():
    report = crafted_report()
    first = render_html(report, verification="verified: ok")
    assert render_html(copy.deepcopy(report), verification="verified: ok").encode() == first.encode()
    assert render_html(json.loads(json.dumps(report)), verification="verified: ok") == first


def test_sections_and_intervals():
    page = render_html(crafted_report())
    for section in ("summary", "results", "breakdowns", "safety", "performance", "provenance", "redaction"):
        assert f'<section id="{section}">' in page
    assert "62.5%" in page and "[42.9, 82.1]" in page  # 0.625 ± 1.96 × 0.1
    assert "<details><summary>accuracy by subject (2 groups)</summary>" in page
    assert page.count("<svg") >= 3  # results, a breakdown, safety
    assert "refusal-rules/1" in page and "figurative_language" in page and "contrast_homonyms" in page
    assert "<td class=\"num\">4.00</td>" in page  # mmlu: 8 samples in 2.0 s
    assert "a" * 64 in page and "c" * 64 in page and "MIT" in page and "run_seed" in page
    assert "mmlu-1.0.0.evalkit-pack" in page and "7" * 64 in page and "k1d" in page
    assert "Verification: not checked." in page
    assert "stored as SHA-256 digests only" in page
    assert "Performance profile" not in page


def test_interval_is_clipped_to_rates_and_absent_without_stderr():
    assert interval({"value": 0.9, "stderr": 0.1}) == (pytest.approx(0.704), 1.0)
    assert interval({"value": 0.5, "stderr": None}) is None
    assert interval({"value": None, "stderr": None}) is None


def test_perf_section_is_rendered_when_present():
    report = crafted_report()
    report["perf"] = {"tokens_per_second": {"prefill": 1234.5, "decode": 56.25}, "peak_memory_bytes": 1 << 30, "gpu": "H100 <b>"}
    page = render_html(report)
    assert "Performance profile" in page
    assert "tokens_per_second.decode" in page and "56.25" in page and "1073741824" in page
    assert "H100 &lt;b&gt;" in page


def test_verification_verdicts_are_shown():
    assert 'class="banner ok"' in render_html(crafted_report(), verification="verified: signed by 1 of 1 trusted key(s)")
    failed = render_html(crafted_report(), verification="verification FAILED:\n  samples.jsonl was changed")
    assert 'class="banner bad"' in failed and "samples.jsonl was changed" in failed


# --- a real run, the CLI, and a browser --------------------------------------------------------------


@pytest.fixture(scope="module")
def signed_tiny_run(tiny_llama_dir, tmp_path_factory):
    from evalkit.config import RunConfig, SuiteSpec
    from evalkit.runner import run_evaluation
    from evalkit.trust import generate_keypair, load_signing_key

    keys = tmp_path_factory.mktemp("html_keys")
    generate_keypair(keys, "vendor")
    out = tmp_path_factory.mktemp("html_runs") / "run"
    config = RunConfig(model=str(tiny_llama_dir), suites=(SuiteSpec(suite="mmlu", limit=4), SuiteSpec(suite="xstest", limit=4)), batch_size=4)
    outcome = run_evaluation(config, out, signing_keys=[load_signing_key(keys / "vendor.key")])
    return out, outcome.report, keys


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_html_command_embeds_the_verdict(signed_tiny_run, tmp_path):
    out, report, keys = signed_tiny_run
    run = tmp_path / "run"
    shutil.copytree(out, run)
    result = CliRunner().invoke(_app(), ["html", str(run), "--pub", str(keys / "vendor.pub")])
    assert result.exit_code == 0, result.output
    page = (run / REPORT_HTML).read_text(encoding="utf-8")
    assert 'class="banner ok"' in page and "verified: signed by 1 of 1" in page
    assert report["model"]["name"] in page

    # A tampered sample: the page is still written, says FAILED, and the command exits 1.
    lines = (run / "samples.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    lines[0] = lines[0].replace('"prompt":"', '"prompt":"tampered ', 1)
    (run / "samples.jsonl").write_text("".join(lines), encoding="utf-8")
    result = CliRunner().invoke(_app(), ["html", str(run), "--pub", str(keys / "vendor.pub")])
    assert result.exit_code == 1
    page = (run / REPORT_HTML).read_text(encoding="utf-8")
    assert 'class="banner bad"' in page and "samples.jsonl" in page


def test_html_command_without_keys_says_not_checked(signed_tiny_run, tmp_path):
    out, report, _ = signed_tiny_run
    run = tmp_path / "run"
    shutil.copytree(out, run)
    result = CliRunner().invoke(_app(), ["html", str(run)])
    assert result.exit_code == 0, result.output
    assert (run / REPORT_HTML).read_text(encoding="utf-8") == render_html(report)


def _chromium(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    """Headless Chromium with every network path shut: no QUIC, no background fetches, no DNS."""
    command = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={tmp / 'chromium-profile'}", *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (apt-get install -y chromium)")
def test_page_opens_in_headless_chromium(signed_tiny_run, tmp_path):
    out, report, keys = signed_tiny_run
    from evalkit.trust import load_verify_key
    from evalkit.verify import verify_report

    verdict = verify_report(out, [load_verify_key(keys / "vendor.pub")])
    page = tmp_path / "report.html"
    page.write_text(render_html(report, verification=verdict.summary), encoding="utf-8")

    dom = _chromium("--dump-dom", page.as_uri(), tmp=tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    text = dom.stdout
    assert f"evalkit report: {report['model']['name']}" in text
    accuracy = report["suites"][0]["results"]["accuracy"]["value"]
    assert f"{100 * accuracy:.1f}%" in text
    assert "Verification: passed." in text and "verified: signed by 1 of 1" in text
    assert "<script" not in text.lower()

    shot = tmp_path / "report.png"
    result = _chromium("--screenshot=" + str(shot), "--window-size=1280,2000", page.as_uri(), tmp=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1280, 2000)
