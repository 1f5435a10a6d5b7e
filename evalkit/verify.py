"""Verifying a report folder offline: signature first, then every file, then every number.

Order matters: nothing in the folder is parsed as a report until the signature over it holds. Then
report.json must be byte-identical to the signed predicate, samples.jsonl must match the signed
digest, every per-sample value must follow from the recorded outputs, every aggregate must follow
from the per-sample values, and the suites and (given its path) the model are re-hashed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from evalkit import report as files
from evalkit.errors import EvalkitError, ModelError, VerificationError
from evalkit.model import ModelManifest, build_manifest, verify_manifest
from evalkit.report.files import json_text
from evalkit.report.markdown import render_markdown
from evalkit.judge.checks import check_judge
from evalkit.judge.parse import split_values
from evalkit.report.samples import completion_digest_problems, rescore, suite_results
from evalkit.suite import load_suite
from evalkit.paths import cache_dir
from evalkit.suite.pack import load_suite_ref
from evalkit.trust import PREDICATE_TYPE_REPORT, VerifyKey, parse_statement, read_envelope, verify_envelope
from evalkit.trust.merkle import jsonl_leaves, merkle_root


@dataclass(frozen=True)
class Verdict:
    """summary: the one-line verdict; notes: what could not be checked here (not failures)."""

    summary: str
    notes: tuple[str, ...]


def _first_difference(a: str, b: str) -> int:
    for number, (x, y) in enumerate(zip(a.splitlines(), b.splitlines()), start=1):
        if x != y:
            return number
    return min(len(a.splitlines()), len(b.splitlines())) + 1


def _check_file_matches(path: Path, expected: str, what: str, failures: list[str]) -> None:
    if not path.is_file():
        failures.append(f"{path.name} is missing")
        return
    actual = path.read_text(encoding="utf-8")
    if actual != expected:
        failures.append(
            f"{path.name} does not match {what} (first difference at line {_first_difference(actual, expected)})"
        )


def _check_samples(out_dir: Path, report: dict[str, Any], failures: list[str]) -> list[dict[str, Any]]:
    path = out_dir / files.SAMPLES_JSONL
    if not path.is_file():
        failures.append(f"{files.SAMPLES_JSONL} is missing")
        return []
    # Read once: the digest, the Merkle root and the rows all come from the same bytes.
    data = path.read_bytes()
    lines = jsonl_leaves(data)
    signed = report["samples"]["sha256"]
    actual = hashlib.sha256(data).hexdigest()
    if actual != signed:
        failures.append(f"{files.SAMPLES_JSONL} was changed: its sha256 is {actual[:16]}…, the signed report says {signed[:16]}…")
    signed_root = report["samples"].get("merkle_root")  # absent in reports made before disclosure existed
    if signed_root is not None:
        actual_root = merkle_root(lines)
        if actual_root != signed_root:
            failures.append(
                f"{files.SAMPLES_JSONL} does not match the signed merkle_root: its Merkle root is "
                f"{actual_root[:16]}…, the signed report says {signed_root[:16]}…"
            )
    rows: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        try:
            rows.append(json.loads(line))
        except (json.JSONDecodeError, UnicodeDecodeError):
            failures.append(f"{files.SAMPLES_JSONL}:{number}: not valid JSON")
            return []
    if len(rows) != report["samples"]["rows"]:
        failures.append(f"{files.SAMPLES_JSONL} has {len(rows)} rows, the signed report says {report['samples']['rows']}")
    scorer_of = {s["ref"]: s["scorer"] for s in report["suites"]}
    for number, row in enumerate(rows, start=1):
        where = f"{files.SAMPLES_JSONL}:{number}"
        try:
            scorer = scorer_of[row["suite"]]
            failures.extend(f"{where}: {problem}" for problem in completion_digest_problems(row))
            values = rescore(row, scorer)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            failures.append(f"{where}: malformed row ({type(exc).__name__}: {exc})")
            continue
        # The judge's values are re-checked from its stored answer (check_judge), the rest here.
        if values is not None and values != split_values(row["values"])[0]:
            failures.append(f"{where}: recorded values {row['values']} do not follow from its outputs ({values})")
    return rows


def _check_aggregates(report: dict[str, Any], rows: list[dict[str, Any]], failures: list[str]) -> None:
    for suite in report["suites"]:
        try:
            recomputed = suite_results(suite, rows)
        except (KeyError, TypeError, ValueError) as exc:
            failures.append(f"suite {suite['ref']}: cannot recompute its metrics ({exc})")
            continue
        for name, entry in suite["results"].items():
            again = recomputed.get(name)
            if again != entry:
                shown = again["value"] if again else None
                failures.append(
                    f"suite {suite['ref']}: metric {name} is {entry.get('value')} in the report, "
                    f"{shown} recomputed from {files.SAMPLES_JSONL}"
                )


def _check_suites(report: dict[str, Any], failures: list[str], notes: list[str]) -> list[str]:
    checked = []
    seen: set[str] = set()
    for suite in report["suites"]:
        if suite["source"] in seen:
            continue
        seen.add(suite["source"])
        try:
            folder, pack = load_suite_ref(suite["source"], cache_dir=cache_dir())
            local = load_suite(folder)
            recorded_pack = (suite.get("pack") or {}).get("sha256")
            if pack is not None and pack["pack_sha256"] != recorded_pack:
                failures.append(f"suite pack {suite['source']}: sha256 differs from the one the report records")
        except EvalkitError as exc:
            notes.append(f"suite {suite['name']} not re-hashed ({str(exc).splitlines()[0]})")
            continue
        if local.digest != suite["digest"]:
            failures.append(
                f"suite {suite['name']}: the local copy has digest {local.digest[:16]}…, "
                f"the report was made with {suite['digest'][:16]}…"
            )
        else:
            checked.append(suite["name"])
    return checked


def _check_model(out_dir: Path, report: dict[str, Any], model_path: Path | None, failures: list[str], notes: list[str]) -> str:
    signed = report["model"]["manifest_digest"]
    path = out_dir / files.MODEL_MANIFEST
    if path.is_file():
        try:
            recorded = ModelManifest.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (ModelError, ValueError) as exc:
            failures.append(f"{files.MODEL_MANIFEST} is malformed or tampered with ({exc})")
            recorded = None
        if recorded is not None and recorded.digest != signed:
            failures.append(f"{files.MODEL_MANIFEST} does not match the signed model digest")
    else:
        notes.append(f"{files.MODEL_MANIFEST} is missing")
        recorded = None
    if model_path is None:
        notes.append("model not re-hashed (pass --model PATH to check the weights)")
        return "model not re-hashed"
    # Re-hash with the shard size the signed manifest used (v1 manifests shard nothing).
    shard_size = recorded.shard_size if recorded is not None and recorded.shard_size else None
    actual = build_manifest(model_path, **({"shard_size": shard_size} if shard_size else {}))
    if actual.digest == signed:
        return f"model re-hashed ({len(actual.files)} files match)"
    detail = "; ".join(verify_manifest(model_path, recorded)[:5]) if recorded is not None else "file list unavailable"
    failures.append(f"model at {model_path} does not match the report's model digest: {detail}")
    return "model mismatch"


def verify_report(
    out_dir: Path, keys: Sequence[VerifyKey], *, threshold: int = 1, model_path: Path | None = None
) -> Verdict:
    """Raise VerificationError naming every failure; return the verdict when everything holds."""
    if not out_dir.is_dir():
        raise VerificationError(f"{out_dir} is not a folder; give the --out folder of a run")
    envelope_path = out_dir / files.ENVELOPE
    if not envelope_path.is_file():
        raise VerificationError(f"{files.ENVELOPE} is missing in {out_dir}: the report was not signed (run with --key)")
    payload = verify_envelope(read_envelope(envelope_path), keys, threshold, source=files.ENVELOPE)
    report = parse_statement(payload, PREDICATE_TYPE_REPORT)["predicate"]
    if report.get("schema") != files.REPORT_SCHEMA:
        raise VerificationError(f"the signed report has schema {report.get('schema')!r}; this evalkit reads {files.REPORT_SCHEMA}")

    failures: list[str] = []
    notes: list[str] = []
    _check_file_matches(out_dir / files.REPORT_JSON, json_text(report), "the signed report", failures)
    _check_file_matches(out_dir / files.REPORT_MD, render_markdown(report), "a rendering of the signed report", failures)
    rows = _check_samples(out_dir, report, failures)
    if rows:
        _check_aggregates(report, rows, failures)
        failures += check_judge(report, rows)
    suites_checked = _check_suites(report, failures, notes)
    model_note = _check_model(out_dir, report, model_path, failures, notes)
    if failures:
        raise VerificationError("verification FAILED:\n  " + "\n  ".join(failures))
    summary = (
        f"verified: signed by {threshold} of {len(keys)} trusted key(s); report.json, report.md and "
        f"{files.SAMPLES_JSONL} ({len(rows)} rows) match; metrics of {len(report['suites'])} suite run(s) recomputed; "
        f"suite data re-hashed ({', '.join(suites_checked) or 'none'}); {model_note}"
        + (f"; {report['judge']['rows']} judge answers re-parsed and judge agreement recomputed" if report.get("judge") else "")
    )
    return Verdict(summary=summary, notes=tuple(notes))
