"""DSSE v1 envelopes: sign exact payload bytes, verify them against trusted keys, co-sign.

Spec: https://github.com/secure-systems-lab/dsse (protocol.md, envelope.md). The signature covers
PAE(payloadType, payload), the payload's exact bytes, so verifying needs no JSON canonicalisation
and the payload type cannot be swapped. Several signatures may sit on one envelope (a vendor and a
partner); `verify_envelope` counts distinct trusted keys, never signatures, against a threshold.

A signature's `keyid` is unauthenticated: it only decides which trusted key to try first.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evalkit.errors import KeyFileError, VerificationError
from evalkit.trust.keys import SigningKey, VerifyKey
from evalkit.fileio import DuplicateKeyError, reject_duplicate_keys, write_chunks_atomic

PAYLOAD_TYPE_INTOTO = "application/vnd.in-toto+json"


def pae(payload_type: str, payload: bytes) -> bytes:
    """Pre-Authentication Encoding: b"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body.

    LEN is the ASCII decimal byte length, no leading zeros; type is UTF-8.
    """
    type_bytes = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(type_bytes), type_bytes, len(payload), payload)


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64decode(text: str) -> bytes:
    """Decode standard or URL-safe base64, padded or not (envelope.md allows either alphabet)."""
    text = text.strip().translate(str.maketrans("-_", "+/"))
    text += "=" * (-len(text) % 4)
    return base64.b64decode(text, validate=True)


def _short(keyid: str) -> str:
    return keyid[:16]


def _invalid(source: str, problem: str) -> VerificationError:
    return VerificationError(f"{source} is not valid DSSE: {problem}")


def _parse(
    envelope: Any, source: str = "envelope"
) -> tuple[bytes, str, list[tuple[str | None, bytes]]]:
    """Check the envelope's shape; return (payload, payloadType, [(keyid hint, signature), ...])."""
    if not isinstance(envelope, dict):
        raise _invalid(source, f"expected a JSON object, got {type(envelope).__name__}")
    for name in ("payload", "payloadType", "signatures"):
        if name not in envelope:
            raise _invalid(source, f"missing {name!r}")
    if not isinstance(envelope["payload"], str):
        raise _invalid(source, "'payload' must be a base64 string")
    if not isinstance(envelope["payloadType"], str):
        raise _invalid(source, "'payloadType' must be a string")
    try:
        payload = _b64decode(envelope["payload"])
    except (binascii.Error, ValueError):
        raise _invalid(source, "'payload' is not valid base64") from None
    raw_sigs = envelope["signatures"]
    if not isinstance(raw_sigs, list):
        raise _invalid(source, "'signatures' must be a list")
    if not raw_sigs:
        raise _invalid(source, "'signatures' is empty (the envelope is unsigned)")
    signatures: list[tuple[str | None, bytes]] = []
    for i, item in enumerate(raw_sigs):
        where = f"signatures[{i}]"
        if not isinstance(item, dict):
            raise _invalid(source, f"{where} must be an object")
        if "sig" not in item:
            raise _invalid(source, f"{where} is missing 'sig'")
        if not isinstance(item["sig"], str):
            raise _invalid(source, f"{where}.sig must be a base64 string")
        keyid = item.get("keyid")
        if keyid is not None and not isinstance(keyid, str):
            raise _invalid(source, f"{where}.keyid must be a string")
        try:
            sig = _b64decode(item["sig"])
        except (binascii.Error, ValueError):
            raise _invalid(source, f"{where}.sig is not valid base64") from None
        signatures.append((keyid or None, sig))
    return payload, envelope["payloadType"], signatures


def _signature_entry(key: SigningKey, message: bytes) -> dict[str, str]:
    return {"keyid": key.keyid, "sig": _b64encode(key.sign(message))}


def sign_envelope(payload: bytes, payload_type: str, keys: Sequence[SigningKey]) -> dict:
    """Sign `payload` with every key in `keys`; returns a DSSE envelope as a JSON-ready dict."""
    if not keys:
        raise KeyFileError("no signing key given; sign with at least one .key file")
    keyids = [key.keyid for key in keys]
    for keyid in keyids:
        if keyids.count(keyid) > 1:
            raise KeyFileError(
                f"the same key ({_short(keyid)}) was given twice; give each key once"
            )
    message = pae(payload_type, payload)
    return {
        "payload": _b64encode(payload),
        "payloadType": payload_type,
        "signatures": [_signature_entry(key, message) for key in keys],
    }


def add_signature(envelope: dict, key: SigningKey) -> dict:
    """Return a copy of `envelope` with `key`'s signature added (co-signing); the input is unchanged.

    Existing signatures are not checked here (we may not hold their keys); `verify_envelope` does.
    """
    payload, payload_type, signatures = _parse(envelope)
    message = pae(payload_type, payload)
    verify_key = key.public_key
    for keyid, sig in signatures:
        # Match on the signature itself too: a keyid hint may be missing or written by another tool.
        if keyid == key.keyid or verify_key.verify(sig, message):
            raise KeyFileError(
                f"key {_short(key.keyid)} has already signed this envelope; co-sign with another key"
            )
    return {
        **envelope,
        "signatures": [dict(item) for item in envelope["signatures"]]
        + [_signature_entry(key, message)],
    }


def verify_envelope(
    envelope: dict,
    keys: Sequence[VerifyKey],
    threshold: int = 1,
    *,
    source: str = "envelope",
) -> bytes:
    """Return the payload if at least `threshold` distinct trusted keys signed it.

    `source` names the envelope in error messages (e.g. the file name). Raises VerificationError
    for a malformed envelope or too few valid signatures; the message names the keys tried.
    """
    if threshold < 1:
        raise ValueError(f"threshold must be at least 1, got {threshold}")
    payload, payload_type, signatures = _parse(envelope, source)
    # The same public key passed twice is still one key: dedupe by keyid, keeping order.
    trusted = list({key.keyid: key for key in keys}.values())
    if not trusted:
        raise VerificationError(f"no public key given to verify {source} with; pass a .pub file")
    if threshold > len(trusted):
        raise VerificationError(
            f"signature check failed: {threshold} valid signatures are required but only "
            f"{len(trusted)} distinct public key(s) were given"
        )

    message = pae(payload_type, payload)
    verified: set[str] = set()
    for hint, sig in signatures:
        # The hint only orders the search; every trusted key is still a candidate.
        candidates = sorted(trusted, key=lambda k: k.keyid != hint)
        for key in candidates:
            if key.keyid not in verified and key.verify(sig, message):
                verified.add(key.keyid)
                break
        if len(verified) >= threshold:
            return payload

    tried = ", ".join(_short(key.keyid) for key in trusted)
    hints = sorted({_short(h) for h, _ in signatures if h})
    named = f"; its signatures name keyid(s) {', '.join(hints)}" if hints else ""
    if not verified:
        raise VerificationError(
            f"signature check failed: no signature on {source} verifies with the given public "
            f"key(s) (keyids {tried}); {len(signatures)} signature(s) present, 0 valid of "
            f"{threshold} required{named}"
        )
    raise VerificationError(
        f"signature check failed: {len(verified)} of {threshold} required trusted keys signed "
        f"{source} (valid: {', '.join(sorted(_short(k) for k in verified))}; tried keyids {tried})"
        f"{named}"
    )




def read_envelope(path: Path) -> dict:
    """Read a DSSE envelope JSON file. Its shape is checked by `verify_envelope`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise VerificationError(f"signed envelope {path} not found") from None
    except IsADirectoryError:
        raise VerificationError(f"{path} is a folder, not a signed envelope file") from None
    except UnicodeDecodeError:
        raise VerificationError(f"{path} is not a JSON DSSE envelope (not UTF-8 text)") from None
    except OSError as exc:
        raise VerificationError(f"cannot read {path}: {exc.strerror}") from None
    try:
        envelope = json.loads(text, object_pairs_hook=reject_duplicate_keys)
    except json.JSONDecodeError as exc:
        raise VerificationError(
            f"{path} is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    except DuplicateKeyError as exc:
        # Two "payload" fields could be read differently by two verifiers; accept neither.
        raise VerificationError(
            f"{path} is not a valid DSSE envelope: duplicate key {exc}"
        ) from None
    if not isinstance(envelope, dict):
        raise VerificationError(f"{path} is not a DSSE envelope (expected a JSON object)")
    return envelope


def write_envelope(path: Path, envelope: dict) -> None:
    """Write `envelope` as JSON atomically: a reader sees the old file or the new, never half."""
    text = json.dumps(envelope, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    write_chunks_atomic(Path(path), [text.encode("utf-8")])
