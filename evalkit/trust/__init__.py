"""Signing and verifying reports: keys on disk, DSSE envelopes, in-toto Statements.

This layer knows bytes and keys, never evaluation: the report stage hands it a Statement's
subjects and predicate, and gets back a signed envelope (or, when verifying, the verified payload).
"""

from evalkit.trust.dsse import (
    PAYLOAD_TYPE_INTOTO,
    add_signature,
    pae,
    read_envelope,
    sign_envelope,
    verify_envelope,
    write_envelope,
)
from evalkit.trust.keys import (
    Algorithm,
    SigningKey,
    VerifyKey,
    generate_keypair,
    key_is_encrypted,
    load_signing_key,
    load_verify_key,
)
from evalkit.trust.statement import (
    PREDICATE_TYPE_REPORT,
    STATEMENT_TYPE,
    build_statement,
    parse_statement,
    resource,
    statement_bytes,
)

__all__ = [
    "PAYLOAD_TYPE_INTOTO",
    "PREDICATE_TYPE_REPORT",
    "STATEMENT_TYPE",
    "Algorithm",
    "SigningKey",
    "VerifyKey",
    "add_signature",
    "build_statement",
    "generate_keypair",
    "key_is_encrypted",
    "load_signing_key",
    "load_verify_key",
    "pae",
    "parse_statement",
    "read_envelope",
    "resource",
    "sign_envelope",
    "statement_bytes",
    "verify_envelope",
    "write_envelope",
]
