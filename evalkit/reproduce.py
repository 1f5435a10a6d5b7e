"""Checking a report from outside it: re-run it (`reproduce`), or prove one of its samples (`disclose`).

`verify` shows that a report's numbers follow from its per-sample file; it cannot show that the
per-sample file is what the model does. `reproduce_run` answers that: it rebuilds the run from what
the report recorded (config, suite selection, seed, mode, device and dtype), re-runs it on the same
weights, and compares samples.jsonl row by row. In deterministic mode on the same hardware the
answer should be "identical", bit for bit; otherwise it says which rows differ, by how much in
log-likelihood, and how far each metric can have moved (at most the share of samples whose
per-sample value flipped).

Selective disclosure lets a partner publish one finding without the rest of samples.jsonl: the
signed report carries the root of a Merkle tree over the file's lines (evalkit/trust/merkle.py), so
one line, its position, its inclusion proof and the signed envelope are enough for anyone to check
that the line is in the signed report.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from pydantic import ValidationError

from evalkit import report as files
from evalkit.config import RunConfig
from evalkit.errors import ConfigError, ModelError, ReportError, VerificationError
from evalkit.fileio import DuplicateKeyError, reject_duplicate_keys
from evalkit.perf import diff as perf_diff
from evalkit.perf import tables as perf_tables
from evalkit.report.files import json_text, sha256_file
from evalkit.report.samples import completion_digest_problems, metric_specs, rescore, suite_results
from evalkit.runner import Progress, SilentProgress, run_evaluation
from evalkit.trust import PREDICATE_TYPE_REPORT, VerifyKey, parse_statement, read_envelope, verify_envelope
from evalkit.trust.merkle import inclusion_proof, jsonl_leaves, merkle_root, verify_inclusion

DISCLOSURE_FORMAT = "evalkit.disclosure/v1"


# --- reading a report folder ------------------------------------------------------------------------


def _read_json_file(path: Path, what: str) -> Any:
    if not path.is_file():
        raise ReportError(f"{path} is missing; give the --out folder of an `evalkit run`")
    try:
        return json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=reject_duplicate_keys)
    except UnicodeDecodeError:
        raise ReportError(f"{path} is not UTF-8 text; it is not {what}") from None
    except json.JSONDecodeError as exc:
        raise ReportError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}); it is not {what}") from None
    except DuplicateKeyError as exc:
        raise ReportError(f"{path} repeats the key {exc}; it is not {what}") from None


def _read_report(out_dir: Path, keys: Sequence[VerifyKey], threshold: int) -> tuple[dict[str, Any], str]:
    """The report and a sentence on how far it was checked. With keys: the signed predicate, which
    report.json and samples.jsonl must match (else VerificationError)."""
    if not out_dir.is_dir():
        raise ReportError(f"{out_dir} is not a folder; give the --out folder of an `evalkit run`")
    report_path = out_dir / files.REPORT_JSON
    if keys:
        envelope_path = out_dir / files.ENVELOPE
        if not envelope_path.is_file():
            raise VerificationError(
                f"{files.ENVELOPE} is missing in {out_dir}: the report was not signed; reproduce it without --pub"
            )
        payload = verify_envelope(read_envelope(envelope_path), keys, threshold, source=files.ENVELOPE)
        report = parse_statement(payload, PREDICATE_TYPE_REPORT)["predicate"]
        if not report_path.is_file() or report_path.read_text(encoding="utf-8") != json_text(report):
            raise VerificationError(f"{files.REPORT_JSON} is missing or does not match the signed report; run `evalkit verify`")
        samples_path = out_dir / files.SAMPLES_JSONL
        signed = (report.get("samples") or {}).get("sha256")
        if samples_path.is_file() and sha256_file(samples_path) != signed:
            raise VerificationError(
                f"{files.SAMPLES_JSONL} was changed after signing (its sha256 is not the signed one); run `evalkit verify`"
            )
        checked = f"signature checked ({threshold} of {len(keys)} trusted key(s))"
    else:
        report = _read_json_file(report_path, "an evalkit report")
        checked = "report not signature-checked (pass --pub KEY to check it)"
    if not isinstance(report, dict) or report.get("schema") != files.REPORT_SCHEMA:
        schema = report.get("schema") if isinstance(report, dict) else None
        raise ReportError(f"{report_path} has schema {schema!r}; this evalkit reads {files.REPORT_SCHEMA}")
    _check_shape(report, report_path)
    return report, checked


def _check_shape(report: Mapping[str, Any], where: Path) -> None:
    """What reproduce reads from a report, present and of the right type (an unsigned report.json
    may have been edited by hand): one clear error instead of a KeyError later."""
    try:
        ok = (
            isinstance(report["config"], dict)
            and isinstance(report["model"]["manifest_digest"], str)
            and isinstance(report["samples"], dict)
            and isinstance(report["suites"], list)
            and all(
                isinstance(s["ref"], str) and isinstance(s["digest"], str)
                and isinstance(s["group_by"], list) and isinstance(s["metric_specs"], list)
                for s in report["suites"]
            )
        )
    except (KeyError, TypeError):
        ok = False
    if not ok:
        raise ReportError(f"{where} lacks the config, model digest, samples or suite entries of an evalkit report")


def _read_sample_lines(path: Path) -> dict[tuple[str, str], tuple[bytes, dict[str, Any]]]:
    """samples.jsonl keyed by (suite, id), in file order: (line bytes, parsed row)."""
    if not path.is_file():
        raise ReportError(f"{path} is missing; reproduce compares against the run's per-sample file")
    keyed: dict[tuple[str, str], tuple[bytes, dict[str, Any]]] = {}
    for number, line in enumerate(jsonl_leaves(path.read_bytes()), start=1):
        try:
            row = json.loads(line)
            key = (str(row["suite"]), str(row["id"]))
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
            raise ReportError(f"{path.name}:{number}: not a per-sample row (JSON with suite and id)") from None
        if key in keyed:
            raise ReportError(f"{path.name}:{number}: sample {key[1]!r} of suite {key[0]!r} appears twice")
        keyed[key] = (line, row)
    return keyed


# --- reproduce ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReproduceResult:
    """identical: every per-sample row bit for bit the same, and the same suite data.
    summary: one line. details: the comparison as data (per suite, per metric; see reproduce_run)."""

    identical: bool
    summary: str
    details: dict[str, Any]


def rebuild_config(report: Mapping[str, Any], model_path: Path) -> RunConfig:
    """The run the report recorded, on `model_path`, pinned to the recorded device, dtype and token
    budget (a report made with `auto` is repeated with what `auto` chose)."""
    data = dict(report.get("config") or {})
    data["model"] = str(model_path)
    precision = report.get("precision") or {}
    for name in ("device", "dtype"):
        if precision.get(name):
            data[name] = precision[name]
    budget = (report.get("engine") or {}).get("token_budget")
    if data.get("token_budget") is None and isinstance(budget, int):
        data["token_budget"] = budget
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ReportError(f"the report's config is not a valid run configuration for this evalkit ({problems})") from None


def _check_precision(config: RunConfig) -> None:
    from evalkit.model import choose_precision

    try:
        choose_precision(config.device, config.dtype)
    except ModelError as exc:
        raise ConfigError(
            f"the report was made on {config.device} in {config.dtype}, and reproduce repeats that, "
            f"but this machine cannot: {exc}"
        ) from None


def _check_model(out_dir: Path, report: Mapping[str, Any], model_path: Path, progress: Progress) -> str:
    from evalkit.model import ModelManifest, build_manifest, verify_manifest

    expected = report["model"]["manifest_digest"]
    files_ = [model_path] if model_path.is_file() else [p for p in model_path.rglob("*") if p.is_file()]
    with progress.task("hashing model files", sum(p.stat().st_size for p in files_)) as advance:
        actual = build_manifest(model_path, progress=advance)
    if actual.digest == expected:
        return actual.digest
    detail = "the report's model.manifest.json is unavailable"
    try:
        recorded = ModelManifest.from_dict(json.loads((out_dir / files.MODEL_MANIFEST).read_text(encoding="utf-8")))
        detail = "; ".join(verify_manifest(model_path, recorded)[:5]) or detail
    except (OSError, ValueError, ModelError):
        pass
    raise VerificationError(
        f"model at {model_path} is not the one the report evaluated: its manifest digest is "
        f"{actual.digest[:16]}…, the report's is {expected[:16]}… ({detail}); reproduce needs the same weights"
    )


def _max_loglikelihood_delta(a: Mapping[str, Any], b: Mapping[str, Any]) -> float | None:
    xs, ys = a.get("loglikelihoods"), b.get("loglikelihoods")
    if not isinstance(xs, list) or not isinstance(ys, list) or len(xs) != len(ys) or not xs:
        return None
    try:
        return max(abs(float(x) - float(y)) for x, y in zip(xs, ys))
    except (TypeError, ValueError):
        return None


def _in_metric(row: Mapping[str, Any], where: Mapping[str, str], value: str) -> bool:
    fields = row.get("fields") or {}
    return all(str(fields.get(k)) == v for k, v in where.items()) and value in (row.get("values") or {})


def _compare_suite(
    entry: Mapping[str, Any],
    original: Mapping[tuple[str, str], tuple[bytes, dict[str, Any]]],
    rerun: Mapping[tuple[str, str], tuple[bytes, dict[str, Any]]],
) -> dict[str, Any]:
    if perf_tables.is_performance(entry):  # timings are measurements: evalkit/perf/diff.py
        return perf_diff.reproduce_suite(entry, original, rerun)
    ref = entry["ref"]
    mine = [k for k in original if k[0] == ref]
    theirs = [k for k in rerun if k[0] == ref]
    common = [k for k in mine if k in rerun]
    differing = [k for k in common if original[k][0] != rerun[k][0]]
    missing = [k[1] for k in mine if k not in rerun]
    extra = [k[1] for k in theirs if k not in original]
    max_delta, max_at = None, None
    for key in differing:
        delta = _max_loglikelihood_delta(original[key][1], rerun[key][1])
        if delta is not None and (max_delta is None or delta > max_delta):
            max_delta, max_at = delta, key[1]
    before = suite_results(entry, [original[k][1] for k in mine])
    after = suite_results(entry, [rerun[k][1] for k in theirs])
    metrics: dict[str, Any] = {}
    for spec in metric_specs(entry):
        a, b = before.get(spec.name, {}), after.get(spec.name, {})
        flipped = sum(
            1 for k in common
            if (_in_metric(original[k][1], spec.where, spec.value) or _in_metric(rerun[k][1], spec.where, spec.value))
            and (original[k][1].get("values") or {}).get(spec.value) != (rerun[k][1].get("values") or {}).get(spec.value)
        )
        n = a.get("n") or 0
        change = None if a.get("value") is None or b.get("value") is None else b["value"] - a["value"]
        metrics[spec.name] = {
            "original": a.get("value"),
            "rerun": b.get("value"),
            "change": change,
            "flipped": flipped,
            "n": n,
            # Each flipped sample moves a mean of n values in [0, 1] by at most 1/n. Only a bound
            # when both runs hold the same samples.
            "bound": flipped / n if n and not missing and not extra else None,
        }
    return {
        "rows_original": len(mine),
        "rows_rerun": len(theirs),
        "rows_differing": len(differing),
        "differing_ids": [k[1] for k in differing],
        "missing_in_rerun": missing,
        "extra_in_rerun": extra,
        "max_abs_delta_loglikelihood": max_delta,
        "max_delta_id": max_at,
        "metrics": metrics,
    }


def _summary(identical: bool, details: Mapping[str, Any], checked: str) -> str:
    suites = details["suites"]
    total = sum(s["rows_original"] for s in suites.values())
    measured = perf_diff.reproduce_note(suites)
    if identical and measured:
        return (
            f"identical: all {total} samples of {len(suites)} suite run(s) are the report's, bit for bit apart from "
            f"the timings of performance suites ({measured}); suite digests match; {checked}"
        )
    if identical:
        return (
            f"identical: all {total} samples of {len(suites)} suite run(s) are bit for bit the report's "
            f"({files.SAMPLES_JSONL} sha256 {details['samples_sha256']['rerun'][:16]}…; suite digests match); {checked}"
        )
    differing = sum(s["rows_differing"] for s in suites.values())
    parts = [
        f"NOT identical: {differing} of {total} samples differ ("
        + ", ".join(f"{ref} {s['rows_differing']}/{s['rows_original']}" for ref, s in suites.items()) + ")"
    ]
    gaps = sum(len(s["missing_in_rerun"]) + len(s["extra_in_rerun"]) for s in suites.values())
    if gaps:
        parts.append(f"{gaps} sample(s) present in only one of the two runs")
    if details["max_abs_delta_loglikelihood"] is not None:
        where = details["max_delta_at"]
        parts.append(
            f"largest per-sample |Δ log-likelihood| {details['max_abs_delta_loglikelihood']:.6g} ({where['suite']} {where['id']})"
        )
    for ref, s in suites.items():
        for name, m in s["metrics"].items():
            if m["flipped"] or (m["change"] or 0.0) != 0.0:
                bound = "no bound" if m["bound"] is None else f"bound ±{m['bound']:.4f}"
                change = "n/a" if m["change"] is None else f"{m['change']:+.4f}"
                parts.append(f"{ref} {name} {change} ({m['flipped']} flipped of {m['n']}, {bound})")
    mismatched = [ref for ref, s in suites.items() if not s["digest_match"]]
    if mismatched:
        parts.append(f"suite data differs: {', '.join(mismatched)}")
    if details["order_differs"]:
        parts.append(f"the same rows in another order in {files.SAMPLES_JSONL}")
    parts.append(checked)
    return "; ".join(parts)


def compare_runs(
    report: Mapping[str, Any], original_dir: Path, rerun_report: Mapping[str, Any], rerun_dir: Path, checked: str = ""
) -> ReproduceResult:
    """Compare the rerun's samples.jsonl with the original's, row by row keyed by (suite, id)."""
    original = _read_sample_lines(original_dir / files.SAMPLES_JSONL)
    rerun = _read_sample_lines(rerun_dir / files.SAMPLES_JSONL)
    rerun_digests = {s["ref"]: s["digest"] for s in rerun_report["suites"]}
    suites: dict[str, Any] = {}
    max_delta, max_at = None, None
    for entry in report["suites"]:
        compared = _compare_suite(entry, original, rerun)
        compared["digest_original"] = entry["digest"]
        compared["digest_rerun"] = rerun_digests.get(entry["ref"])
        compared["digest_match"] = entry["digest"] == rerun_digests.get(entry["ref"])
        delta = compared["max_abs_delta_loglikelihood"]
        if delta is not None and (max_delta is None or delta > max_delta):
            max_delta, max_at = delta, {"suite": entry["ref"], "id": compared["max_delta_id"]}
        suites[entry["ref"]] = compared
    known = {entry["ref"] for entry in report["suites"]}
    stray = sorted({k[0] for k in list(original) + list(rerun)} - known)
    same_rows = all(
        s["rows_differing"] == 0 and not s["missing_in_rerun"] and not s["extra_in_rerun"] for s in suites.values()
    ) and not stray
    digests = {
        "report": (report.get("samples") or {}).get("sha256"),
        "original_file": sha256_file(original_dir / files.SAMPLES_JSONL),
        "rerun": sha256_file(rerun_dir / files.SAMPLES_JSONL),
    }
    notes = []
    if digests["original_file"] != digests["report"]:
        notes.append(f"the original {files.SAMPLES_JSONL} does not match the digest its report.json records")
    if stray:
        notes.append(f"rows of suite runs the report does not list: {', '.join(stray)}")
    for name in ("hardware", "torch", "transformers"):
        was = (report.get("environment") or {}).get(name)
        now = (rerun_report.get("environment") or {}).get(name)
        if was != now:
            notes.append(f"{name} differs: {was} then, {now} now")
    # A performance row's timings differ on every run; its other content must not (evalkit/perf/diff.py).
    same_bytes = digests["original_file"] == digests["rerun"] or perf_diff.same_apart_from_timings(report, original, rerun)
    details: dict[str, Any] = {
        "signature": checked,
        "suites": suites,
        "rows_differing": sum(s["rows_differing"] for s in suites.values()),
        "max_abs_delta_loglikelihood": max_delta,
        "max_delta_at": max_at,
        "samples_sha256": digests,
        "order_differs": same_rows and not same_bytes,
        "notes": notes,
    }
    identical = same_rows and same_bytes and all(
        s["digest_match"] for s in suites.values()
    )
    return ReproduceResult(identical=identical, summary=_summary(identical, details, checked), details=details)


def reproduce_run(
    out_dir: Path,
    model_path: Path,
    *,
    keys: Sequence[VerifyKey] = (),
    threshold: int = 1,
    work_dir: Path | None = None,
    progress: Progress = SilentProgress(),
) -> ReproduceResult:
    """Re-run what the report in `out_dir` recorded on `model_path` and compare every sample.

    With `keys`, the report's signature is checked first (and report.json and samples.jsonl must be
    the signed ones); without, the result says the report was not signature-checked. The model must
    have the report's manifest digest, checked before anything runs. The rerun is written to
    `work_dir` (kept; must be new or empty) or to a temporary folder beside `out_dir` (removed).

    Raises VerificationError (bad signature, other weights), ReportError, ConfigError.
    """
    out_dir, model_path = Path(out_dir), Path(model_path)
    report, checked = _read_report(out_dir, keys, threshold)
    if not (out_dir / files.SAMPLES_JSONL).is_file():
        raise ReportError(f"{out_dir / files.SAMPLES_JSONL} is missing; reproduce compares against it")
    if work_dir is not None and Path(work_dir).exists() and any(Path(work_dir).iterdir()):
        raise ConfigError(f"--keep {work_dir} is not empty; choose a new folder for the rerun")
    config = rebuild_config(report, model_path)
    _check_precision(config)
    _check_model(out_dir, report, model_path, progress)
    temporary = work_dir is None
    rerun_dir = (
        Path(tempfile.mkdtemp(prefix=f".{out_dir.resolve().name}.reproduce-", dir=out_dir.resolve().parent))
        if work_dir is None else Path(work_dir)
    )
    try:
        outcome = run_evaluation(config, rerun_dir, progress=progress)
        result = compare_runs(report, out_dir, outcome.report, rerun_dir, checked)
    finally:
        if temporary:
            shutil.rmtree(rerun_dir, ignore_errors=True)
    result.details["rerun_dir"] = None if temporary else str(rerun_dir)
    result.details["model_digest"] = report["model"]["manifest_digest"]
    return result


# --- selective disclosure ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DisclosureVerdict:
    """summary: one line; row: the disclosed per-sample record; notes: what could not be checked."""

    summary: str
    row: dict[str, Any]
    notes: tuple[str, ...]


def _unverified_report(envelope: Mapping[str, Any]) -> dict[str, Any]:
    """The report inside an envelope, signature NOT checked: only to build a disclosure, whose
    reader checks the signature (verify_disclosure)."""
    try:
        text = envelope["payload"]
        payload = base64.b64decode(text.translate(str.maketrans("-_", "+/")) + "=" * (-len(text) % 4), validate=True)
    except (KeyError, TypeError, AttributeError, binascii.Error, ValueError):
        raise ReportError(f"{files.ENVELOPE} has no valid base64 payload") from None
    return parse_statement(payload, PREDICATE_TYPE_REPORT)["predicate"]


def disclose_sample(out_dir: Path, sample_id: str, *, suite: str | None = None) -> dict[str, Any]:
    """A disclosure of one samples.jsonl line: the line, its position, its inclusion proof, the
    Merkle root and the signed envelope. Raises ReportError when the report is unsigned, has no
    Merkle root, or holds no such sample; ConfigError when the id is ambiguous without `suite`;
    VerificationError when samples.jsonl no longer matches the signed root."""
    out_dir = Path(out_dir)
    envelope_path = out_dir / files.ENVELOPE
    if not envelope_path.is_file():
        raise ReportError(
            f"{files.ENVELOPE} is missing in {out_dir}: only a signed report can disclose a sample (run with --key)"
        )
    envelope = read_envelope(envelope_path)
    report = _unverified_report(envelope)
    signed_root = (report.get("samples") or {}).get("merkle_root")
    if not signed_root:
        raise ReportError(
            "the signed report has no samples.merkle_root (it was made before selective disclosure); run it again to disclose"
        )
    samples_path = out_dir / files.SAMPLES_JSONL
    if not samples_path.is_file():
        raise ReportError(f"{samples_path} is missing")
    leaves = jsonl_leaves(samples_path.read_bytes())
    if merkle_root(leaves) != signed_root:
        raise VerificationError(
            f"{files.SAMPLES_JSONL} does not match the signed merkle_root; it was changed after signing (run `evalkit verify`)"
        )
    refs = [s["ref"] for s in report.get("suites", [])]
    if suite is not None and suite not in refs:
        raise ConfigError(f"--suite {suite!r} is not a suite run of this report; it ran: {', '.join(refs)}")
    matches: list[tuple[int, str]] = []
    ids: list[str] = []
    for index, line in enumerate(leaves):
        try:
            row = json.loads(line)
            ref, row_id = str(row["suite"]), str(row["id"])
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
            raise ReportError(f"{files.SAMPLES_JSONL}:{index + 1}: not a per-sample row") from None
        if suite is None or ref == suite:
            ids.append(row_id)
            if row_id == sample_id:
                matches.append((index, ref))
    if not matches:
        close = difflib.get_close_matches(sample_id, sorted(set(ids)), n=3)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        where = f"suite {suite!r}" if suite else "this report"
        raise ReportError(f"no sample with id {sample_id!r} in {where}{hint}")
    if len(matches) > 1:
        raise ConfigError(
            f"sample id {sample_id!r} is in several suite runs ({', '.join(ref for _, ref in matches)}); "
            "choose one with --suite"
        )
    index = matches[0][0]
    return {
        "format": DISCLOSURE_FORMAT,
        "row": leaves[index].decode("utf-8"),
        "index": index,
        "n_leaves": len(leaves),
        "proof": inclusion_proof(leaves, index),
        "merkle_root": signed_root,
        "envelope": envelope,
    }


def read_disclosure(path: Path) -> dict[str, Any]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise VerificationError(f"disclosure file {path} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise VerificationError(f"cannot read {path} as a disclosure ({exc})") from None
    try:
        data = json.loads(text, object_pairs_hook=reject_duplicate_keys)
    except json.JSONDecodeError as exc:
        raise VerificationError(f"{path} is not JSON ({exc.msg} at line {exc.lineno})") from None
    except DuplicateKeyError as exc:
        raise VerificationError(f"{path} repeats the key {exc}; two readers could see two disclosures") from None
    if not isinstance(data, dict):
        raise VerificationError(f"{path} is not a disclosure (expected a JSON object)")
    return data


def verify_disclosure(disclosure: Mapping[str, Any], keys: Sequence[VerifyKey], *, threshold: int = 1) -> DisclosureVerdict:
    """Check a disclosure: the envelope's signature (first), that the signed report's
    samples.merkle_root and row count are the disclosure's, and the inclusion proof of the row.
    Raises VerificationError naming every failure."""
    if disclosure.get("format") != DISCLOSURE_FORMAT:
        raise VerificationError(f"not a disclosure: format is {disclosure.get('format')!r}, expected {DISCLOSURE_FORMAT!r}")
    shapes = {"row": str, "index": int, "n_leaves": int, "proof": list, "merkle_root": str, "envelope": dict}
    wrong = [
        name for name, kind in shapes.items()
        if not isinstance(disclosure.get(name), kind) or isinstance(disclosure.get(name), bool)
    ]
    if wrong:
        raise VerificationError(f"malformed disclosure: {', '.join(wrong)} missing or of the wrong type")
    payload = verify_envelope(disclosure["envelope"], keys, threshold, source="the disclosure's envelope")
    report = parse_statement(payload, PREDICATE_TYPE_REPORT)["predicate"]
    if report.get("schema") != files.REPORT_SCHEMA:
        raise VerificationError(f"the signed report has schema {report.get('schema')!r}; this evalkit reads {files.REPORT_SCHEMA}")
    samples = report.get("samples") or {}
    signed_root = samples.get("merkle_root")
    if not signed_root:
        raise VerificationError("the signed report has no samples.merkle_root: it cannot prove a single sample")

    failures: list[str] = []
    notes: list[str] = []
    if disclosure["merkle_root"] != signed_root:
        failures.append(
            f"merkle_root {disclosure['merkle_root'][:16]}… is not the signed report's samples.merkle_root {signed_root[:16]}…"
        )
    if disclosure["n_leaves"] != samples.get("rows"):
        failures.append(f"n_leaves is {disclosure['n_leaves']}, the signed report has {samples.get('rows')} rows")
    row_bytes = disclosure["row"].encode("utf-8")
    if not verify_inclusion(row_bytes, disclosure["index"], samples.get("rows", -1), disclosure["proof"], signed_root):
        failures.append(
            f"inclusion proof does not verify: the row at index {disclosure['index']} is not a leaf under the "
            "signed merkle_root (the row, its index or the proof was changed)"
        )
    row: dict[str, Any] = {}
    try:
        parsed = json.loads(disclosure["row"])
        row = parsed if isinstance(parsed, dict) else {}
    except json.JSONDecodeError:
        failures.append("row is not valid JSON")
    suite = next((s for s in report.get("suites", []) if s.get("ref") == row.get("suite")), None)
    if row and suite is None:
        failures.append(f"row names suite run {row.get('suite')!r}, which the signed report does not list")
    if row and suite is not None:
        try:
            failures.extend(f"row's {problem}" for problem in completion_digest_problems(row))
            values = rescore(row, suite["scorer"])
            if values is None:
                notes.append("values not recomputed (the completion is stored as a digest)")
            elif values != row.get("values"):
                failures.append(f"row's values {row.get('values')} do not follow from its outputs ({values})")
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            failures.append(f"row is malformed ({type(exc).__name__}: {exc})")
    if failures:
        raise VerificationError("disclosure verification FAILED:\n  " + "\n  ".join(failures))
    assert suite is not None
    summary = (
        f"verified: sample {row.get('id')!r} of suite run {row.get('suite')} (row {disclosure['index'] + 1} of "
        f"{disclosure['n_leaves']}) is in the report signed by {threshold} of {len(keys)} trusted key(s): model "
        f"{report['model']['name']} (manifest {report['model']['manifest_digest'][:16]}…), suite "
        f"{suite['name']}@{suite['version']} (digest {suite['digest'][:16]}…); values {row.get('values')}"
    )
    return DisclosureVerdict(summary=summary, row=row, notes=tuple(notes))
