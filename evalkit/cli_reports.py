"""`evalkit compare` and `evalkit html`: commands that read finished report folders.

Kept apart from cli.py so the run/verify shell stays small; cli.py calls `register(app)`. Like the
rest of the CLI these are thin: flags become one library call, and an EvalkitError raised here is
printed by cli.main as one `error: ...` line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from evalkit.errors import ReportError

_out = Console()
_err = Console(stderr=True)


def compare(
    a: Path = typer.Argument(..., help="Report folder A (the baseline)."),
    b: Path = typer.Argument(..., help="Report folder B (compared against A; differences are B − A)."),
    bootstrap: int = typer.Option(2000, "--bootstrap", min=1, help="Paired bootstrap resamples."),
    seed: int = typer.Option(1234, "--seed", min=0, help="Bootstrap seed (same seed, same intervals)."),
    as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON instead of a table."),
) -> None:
    """Paired per-sample comparison of two reports on the same suites, with bootstrap intervals."""
    from evalkit.compare import compare_reports, format_comparison

    result = compare_reports(a, b, n_boot=bootstrap, seed=seed)
    if as_json:
        sys.stdout.write(json.dumps(result, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
        # Warnings go to stderr too, so a pipeline reading the JSON still shows them to a person.
        for warning in result["warnings"]:
            _err.print(f"warning: {warning}", style="bold red", markup=False, highlight=False, soft_wrap=True)
    else:
        sys.stdout.write(format_comparison(result))


def html(
    out_dir: Path = typer.Argument(..., help="A report folder (the --out of a run)."),
    pub: Optional[List[Path]] = typer.Option(None, "--pub", help="Trusted public key: verify first and embed the verdict. Repeatable."),
    threshold: int = typer.Option(1, "--threshold", min=1, help="How many distinct trusted keys must have signed (with --pub)."),
) -> None:
    """Render OUTDIR/report.html from report.json; with --pub, verify first and show the verdict.

    The page is written even when verification fails (it then says so in red); the exit status is
    1 in that case, as for `evalkit verify`."""
    from evalkit import report as files
    from evalkit.errors import VerificationError
    from evalkit.report.files import write_atomic
    from evalkit.report.html import REPORT_HTML, render_html

    report_path = out_dir / files.REPORT_JSON
    if not report_path.is_file():
        raise ReportError(f"{report_path} is missing; give the --out folder of an `evalkit run`")
    try:
        report = json.loads(report_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ReportError(f"{report_path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None

    verification: Optional[str] = None
    failed = False
    if pub:
        from evalkit.trust import load_verify_key
        from evalkit.verify import verify_report

        keys = [load_verify_key(p) for p in pub]
        try:
            verdict = verify_report(out_dir, keys, threshold=threshold)
            verification = "\n".join([verdict.summary] + [f"note: {n}" for n in verdict.notes])
        except VerificationError as exc:
            verification, failed = str(exc), True
    target = out_dir / REPORT_HTML
    write_atomic(target, render_html(report, verification=verification))
    if verification is not None:
        _out.print(verification, markup=False, highlight=False, soft_wrap=True)
    _out.print(f"report: {target}", markup=False, highlight=False)
    if failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add `compare` and `html` to the evalkit command."""
    app.command("compare")(compare)
    app.command("html")(html)
