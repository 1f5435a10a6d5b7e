"""in-toto Statement v1: what a signed report says, and about which bytes.

Spec: https://github.com/in-toto/attestation (spec/v1/statement.md, resource_descriptor.md).
A Statement binds a predicate (the evaluation results) to subjects named by digest (the model
manifest, the suite data), so a verifier can re-hash what it holds and compare. We serialise it
with RFC 8785 canonical JSON, so the same Statement always gives the same bytes to sign; the
signature itself (DSSE) covers whatever bytes were signed, canonical or not.
"""

from __future__ import annotations

import json
import re
from typing import Any

import rfc8785

from evalkit.errors import VerificationError
from evalkit.fileio import DuplicateKeyError, reject_duplicate_keys

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE_REPORT = "https://evalkit.dev/attestations/eval-report/v1"

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def resource(name: str, sha256: str, **annotations: Any) -> dict:
    """A ResourceDescriptor naming one subject by its SHA-256 (lowercase hex, as the spec asks)."""
    if not isinstance(sha256, str) or not _SHA256.match(sha256):
        raise ValueError(f"sha256 of {name!r} must be 64 lowercase hex characters, got {sha256!r}")
    descriptor: dict[str, Any] = {"name": name, "digest": {"sha256": sha256}}
    if annotations:
        descriptor["annotations"] = dict(annotations)
    return descriptor


def build_statement(subjects: list[dict], predicate_type: str, predicate: dict) -> dict:
    """An in-toto Statement v1 dict. Every subject must carry a sha256 digest (see `resource`)."""
    if not subjects:
        raise ValueError("a Statement needs at least one subject")
    for i, subject in enumerate(subjects):
        problem = _subject_problem(subject)
        if problem:
            raise ValueError(f"subject[{i}] {problem}")
    return {
        "_type": STATEMENT_TYPE,
        "subject": [dict(subject) for subject in subjects],
        "predicateType": predicate_type,
        "predicate": predicate,
    }


def statement_bytes(statement: dict) -> bytes:
    """RFC 8785 canonical JSON: deterministic bytes, so signing the same Statement twice matches.

    Raises rfc8785's ValueError subclasses for values JSON cannot carry exactly (NaN, infinities,
    integers beyond 2**53): the report must encode those explicitly.
    """
    return rfc8785.dumps(statement)


def _subject_problem(subject: Any) -> str | None:
    if not isinstance(subject, dict):
        return "is not an object"
    digest = subject.get("digest")
    if not isinstance(digest, dict) or "sha256" not in digest:
        return "has no sha256 digest"
    if not isinstance(digest["sha256"], str) or not _SHA256.match(digest["sha256"]):
        return "has a sha256 digest that is not 64 lowercase hex characters"
    return None




def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_statement(payload: bytes, expected_predicate_type: str) -> dict:
    """Parse a verified DSSE payload as a Statement v1 of the expected predicate type.

    Call only after `verify_envelope` succeeded: until then the payload is attacker-controlled.
    """
    try:
        statement = json.loads(
            payload.decode("utf-8"),
            object_pairs_hook=reject_duplicate_keys,
            parse_constant=_reject_constant,
        )
    except UnicodeDecodeError:
        raise VerificationError("signed payload is not UTF-8 JSON") from None
    except DuplicateKeyError as exc:
        # Two parsers could disagree on which duplicate wins; a signed claim must mean one thing.
        raise VerificationError(f"signed statement repeats the key {exc}") from None
    except ValueError as exc:  # JSONDecodeError and NaN/Infinity
        raise VerificationError(f"signed payload is not valid JSON: {exc}") from None

    if not isinstance(statement, dict):
        raise VerificationError("signed payload is not an in-toto Statement (not a JSON object)")
    if statement.get("_type") != STATEMENT_TYPE:
        raise VerificationError(
            f"signed payload is not an in-toto Statement v1: _type is {statement.get('_type')!r}, "
            f"expected {STATEMENT_TYPE!r}"
        )
    if statement.get("predicateType") != expected_predicate_type:
        raise VerificationError(
            f"signed statement has predicateType {statement.get('predicateType')!r}, "
            f"expected {expected_predicate_type!r}"
        )
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or not subjects:
        raise VerificationError("signed statement names no subject")
    for i, subject in enumerate(subjects):
        problem = _subject_problem(subject)
        if problem:
            raise VerificationError(f"signed statement's subject[{i}] {problem}")
    if not isinstance(statement.get("predicate"), dict):
        raise VerificationError("signed statement has no predicate object")
    return statement
