"""`evalkit reproduce`, `evalkit disclose` and `evalkit verify-disclosure`: checking a report from
outside it. A thin shell over evalkit/reproduce.py, like cli.py; `register(app)` adds the commands.

Imports happen inside each command (cli.py's helpers too), so registering costs nothing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer

from evalkit.errors import ReportError

# Exit status of `reproduce` when the rerun differs (0: identical, 1: verification failed, 2: usage).
EXIT_NOT_IDENTICAL = 3


def reproduce(
    out_dir: Path = typer.Argument(..., help="The report folder (the --out of a run) to reproduce."),
    model: str = typer.Option(..., "--model", help="The checkpoint the report evaluated (its digest must match; 'default' for the installed default model)."),
    pub: Optional[List[Path]] = typer.Option(None, "--pub", help="Trusted public key: check the report's signature first. Repeatable. Without it the report is not signature-checked (and the output says so)."),
    threshold: int = typer.Option(1, "--threshold", min=1, help="How many distinct trusted keys must have signed (with --pub)."),
    keep: Optional[Path] = typer.Option(None, "--keep", help="Write the rerun's report folder here and keep it (must be new or empty). Default: a temporary folder beside OUTDIR, removed afterwards."),
    as_json: bool = typer.Option(False, "--json", help="Print the full comparison as JSON after the summary line."),
) -> None:
    """Re-run what a report recorded on the same weights and compare every sample.

    The rerun repeats the recorded config, suites, seed, mode, device and dtype, and compares its samples.jsonl with the report's row by row.

    Exit status: 0 when every sample is bit for bit identical; 3 when not identical (the differing rows, the largest log-likelihood gap and each metric's change with its bound are printed); 1 when verification fails (signature, or the model is not the report's); 2 on usage errors.
    """
    from evalkit.cli import RichProgress, _model_path, out
    from evalkit.reproduce import reproduce_run
    from evalkit.trust import load_verify_key

    keys = [load_verify_key(p) for p in pub or []]
    result = reproduce_run(
        out_dir, Path(_model_path(model)), keys=keys, threshold=threshold, work_dir=keep, progress=RichProgress()
    )
    out.print(result.summary, markup=False, highlight=False, soft_wrap=True)
    if not result.identical:
        for ref, suite in result.details["suites"].items():
            delta = suite["max_abs_delta_loglikelihood"]
            shown = "" if delta is None else f"; largest |Δ log-likelihood| {delta:.6g} ({suite['max_delta_id']})"
            out.print(
                f"  {ref}: {suite['rows_differing']} of {suite['rows_original']} rows differ{shown}",
                markup=False, highlight=False, soft_wrap=True,
            )
    for note in result.details["notes"]:
        out.print(f"note: {note}", markup=False, highlight=False, soft_wrap=True)
    if keep is not None:
        out.print(f"rerun kept in {keep}", markup=False, highlight=False)
    if as_json:
        sys.stdout.write(json.dumps(result.details, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    if not result.identical:
        raise typer.Exit(EXIT_NOT_IDENTICAL)


def disclose(
    out_dir: Path = typer.Argument(..., help="A signed report folder (the --out of a run with --key)."),
    sample: str = typer.Option(..., "--sample", help="The id of the sample to disclose (its `id` in samples.jsonl)."),
    suite: Optional[str] = typer.Option(None, "--suite", help="The suite run holding it (e.g. mmlu:5shot), when the id is in several."),
    out_file: Optional[Path] = typer.Option(None, "--out", help="Write the disclosure to this file (never overwritten); default: print it."),
) -> None:
    """Disclose one sample with its Merkle inclusion proof and the signed envelope.

    The disclosure can be published and checked (`evalkit verify-disclosure`) without the other samples.
    """
    from evalkit.cli import err, out
    from evalkit.report.files import json_text, write_atomic
    from evalkit.reproduce import disclose_sample

    disclosure = disclose_sample(out_dir, sample, suite=suite)
    text = json_text(disclosure)
    row = json.loads(disclosure["row"])
    what = (
        f"sample {row['id']!r} of {row['suite']} (row {disclosure['index'] + 1} of {disclosure['n_leaves']}, "
        f"{len(disclosure['proof'])} proof hashes); the envelope also reveals the signed report (config, "
        "aggregates, digests), no other sample"
    )
    if out_file is None:
        sys.stdout.write(text)
        err.print(f"disclosed {what}", markup=False, highlight=False, soft_wrap=True)
        return
    if out_file.exists():
        raise ReportError(f"{out_file} exists; choose a new --out file (evalkit never overwrites it)")
    write_atomic(out_file, text)
    out.print(f"disclosed {what} -> {out_file}", markup=False, highlight=False, soft_wrap=True)


def verify_disclosure(
    file: Path = typer.Argument(..., help="A disclosure file (from `evalkit disclose`)."),
    pub: List[Path] = typer.Option(..., "--pub", help="Trusted public key file; repeat for several."),
    threshold: int = typer.Option(1, "--threshold", min=1, help="How many distinct trusted keys must have signed."),
) -> None:
    """Check a disclosed sample: signature, signed Merkle root, inclusion proof.

    Exit status 0 only if the envelope is signed by trusted keys, its report's samples.merkle_root is the disclosure's, and the row's inclusion proof holds; 1 otherwise.
    """
    from evalkit.cli import out
    from evalkit.reproduce import read_disclosure
    from evalkit.reproduce import verify_disclosure as check
    from evalkit.trust import load_verify_key

    verdict = check(read_disclosure(file), [load_verify_key(p) for p in pub], threshold=threshold)
    out.print(verdict.summary, markup=False, highlight=False, soft_wrap=True)
    for note in verdict.notes:
        out.print(f"note: {note}", markup=False, highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add `reproduce`, `disclose` and `verify-disclosure` to the evalkit command."""
    app.command("reproduce")(reproduce)
    app.command("disclose")(disclose)
    app.command("verify-disclosure")(verify_disclosure)
