"""Co-signing a report: a second body (the partner, a third party) adds its signature to the vendor's.

Why a separate step: a report is signed once, when it is written, by whoever ran it. Others who have
checked it (`evalkit verify`) vouch for the same bytes by adding their own signature to the same
envelope, so one report.dsse.json carries vendor and partner, and `verify --threshold 2` can ask for
both. The payload is never re-encoded: a co-signature covers exactly the bytes the first one covered.

Before signing, the envelope's payload must be an evalkit report Statement that matches the folder's
report.json: a co-signer vouches for what they can read, not for an opaque blob. Existing signatures
are not checked here (the co-signer may hold only their own key); run `evalkit verify` first.
"""

from __future__ import annotations

from pathlib import Path

from evalkit import report as files
from evalkit.errors import ReportError, VerificationError
from evalkit.report.files import json_text
from evalkit.trust import (
    PAYLOAD_TYPE_INTOTO,
    PREDICATE_TYPE_REPORT,
    SigningKey,
    add_signature,
    parse_statement,
    read_envelope,
    verify_envelope,
    write_envelope,
)


def _check_report_statement(statement: dict, out_dir: Path) -> None:
    """The Statement must be what the runner signs: a report predicate whose model and suite
    digests are its subjects, and whose text is the folder's report.json."""
    report = statement["predicate"]
    if report.get("schema") != files.REPORT_SCHEMA:
        raise VerificationError(
            f"{files.ENVELOPE} signs a report of schema {report.get('schema')!r}; this evalkit co-signs "
            f"{files.REPORT_SCHEMA} reports"
        )
    try:
        digests = [report["model"]["manifest_digest"]] + [suite["digest"] for suite in report["suites"]]
    except (KeyError, TypeError):
        raise VerificationError(
            f"{files.ENVELOPE} does not sign a well-formed evalkit report (no model or suite digests)"
        ) from None
    subjects = {subject["digest"]["sha256"] for subject in statement["subject"]}
    missing = [digest for digest in digests if digest not in subjects]
    if missing:
        raise VerificationError(
            f"{files.ENVELOPE}: digest {missing[0][:16]}… of the signed report is not among the "
            "Statement's subjects; it was not written by evalkit"
        )
    report_json = out_dir / files.REPORT_JSON
    if not report_json.is_file() or report_json.read_text(encoding="utf-8") != json_text(report):
        raise VerificationError(
            f"{report_json} is missing or differs from the signed report; refusing to co-sign what "
            "you cannot read (run `evalkit verify` first)"
        )


def cosign_report(out_dir: Path, key: SigningKey) -> str:
    """Add `key`'s signature to `out_dir/report.dsse.json` (rewritten atomically); return its keyid.

    Raises ReportError when there is no envelope, KeyFileError when `key` already signed, and
    VerificationError when the envelope does not sign an evalkit report matching report.json.
    """
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise ReportError(f"{out_dir} is not a folder; give the --out folder of a run")
    envelope_path = out_dir / files.ENVELOPE
    if not envelope_path.is_file():
        raise ReportError(
            f"{files.ENVELOPE} is missing in {out_dir}: the report was never signed; "
            "sign it when it is made (evalkit run --key), then co-sign"
        )
    envelope = read_envelope(envelope_path)
    if envelope.get("payloadType") != PAYLOAD_TYPE_INTOTO:
        raise VerificationError(
            f"{files.ENVELOPE} has payloadType {envelope.get('payloadType')!r}, not {PAYLOAD_TYPE_INTOTO!r}: "
            "it is not an evalkit report"
        )
    # add_signature checks the envelope's shape and refuses a key that already signed.
    cosigned = add_signature(envelope, key)
    # The payload as our own fresh signature covers it: the same bytes every other signature covers.
    payload = verify_envelope(cosigned, [key.public_key], source=files.ENVELOPE)
    _check_report_statement(parse_statement(payload, PREDICATE_TYPE_REPORT), out_dir)
    write_envelope(envelope_path, cosigned)
    return key.keyid
