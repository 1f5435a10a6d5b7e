"""DSSE envelopes and in-toto Statements: sign exact bytes, verify against trusted keys only."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from pathlib import Path

import pytest

from evalkit.errors import KeyFileError, VerificationError
from evalkit.trust.dsse import (
    PAYLOAD_TYPE_INTOTO,
    add_signature,
    pae,
    read_envelope,
    sign_envelope,
    verify_envelope,
    write_envelope,
)
from evalkit.trust.keys import SigningKey, generate_keypair, load_signing_key
from evalkit.trust.statement import (
    PREDICATE_TYPE_REPORT,
    STATEMENT_TYPE,
    build_statement,
    parse_statement,
    resource,
    statement_bytes,
)

PAYLOAD = b'{"hello": "world"}'


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SigningKey]:
    folder = tmp_path_factory.mktemp("keys")
    made = {}
    for name, algorithm in (("vendor", "ed25519"), ("partner", "ed25519"), ("hsm", "ecdsa-p256")):
        key_path, _ = generate_keypair(folder, name, algorithm=algorithm)  # type: ignore[arg-type]
        made[name] = load_signing_key(key_path)
    return made


def _sig_count(envelope: dict) -> int:
    return len(envelope["signatures"])


# --- PAE ----------------------------------------------------------------------------------------


def test_pae_matches_the_spec_worked_example() -> None:
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_pae_counts_bytes_not_characters() -> None:
    # "é" is two UTF-8 bytes; an empty body is length 0 with the trailing space kept.
    assert pae("é", b"") == b"DSSEv1 2 \xc3\xa9 0 "


# --- signing and verifying ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["vendor", "hsm"])
def test_sign_then_verify_returns_the_payload(keys: dict[str, SigningKey], name: str) -> None:
    key = keys[name]
    envelope = sign_envelope(PAYLOAD, PAYLOAD_TYPE_INTOTO, [key])
    assert set(envelope) == {"payload", "payloadType", "signatures"}
    assert envelope["payloadType"] == PAYLOAD_TYPE_INTOTO
    assert base64.b64decode(envelope["payload"], validate=True) == PAYLOAD
    assert envelope["signatures"][0]["keyid"] == key.keyid
    sig = base64.b64decode(envelope["signatures"][0]["sig"], validate=True)
    assert key.public_key.verify(sig, pae(PAYLOAD_TYPE_INTOTO, PAYLOAD))
    assert verify_envelope(envelope, [key.public_key]) == PAYLOAD


def test_ed25519_envelopes_are_byte_identical(keys: dict[str, SigningKey]) -> None:
    first = sign_envelope(PAYLOAD, PAYLOAD_TYPE_INTOTO, [keys["vendor"]])
    second = sign_envelope(PAYLOAD, PAYLOAD_TYPE_INTOTO, [keys["vendor"]])
    assert first == second


def test_tampered_payload_fails(keys: dict[str, SigningKey]) -> None:
    envelope = sign_envelope(PAYLOAD, PAYLOAD_TYPE_INTOTO, [keys["vendor"]])
    envelope["payload"] = base64.b64encode(b'{"hello": "w0rld"}').decode()
    with pytest.raises(VerificationError) as caught:
        verify_envelope(envelope, [keys["vendor"].public_key], source="report.dsse.json")
    message = str(caught.value)
    assert message.startswith(
        "signature check failed: no signature on report.dsse.json verifies with the given "
        f"public key(s) (keyids {keys['vendor'].keyid[:16]})"
    )
    assert "0 valid of 1 required" in message


def test_tampered_payload_type_fails(keys: dict[str, SigningKey]) -> None:
    envelope = sign_envelope(PAYLOAD, PAYLOAD_TYPE_INTOTO, [keys["vendor"]])
    envelope["payloadType"] = "application/json"
    with pytest.raises(VerificationError, match="no signature on envelope verifies"):
        verify_envelope(envelope, [keys["vendor"].public_key])


@pytest.mark.parametrize("name", ["vendor", "hsm"])
def test_tampered_signature_fails(keys: dict[str, SigningKey], name: str) -> None:
    envelope = sign_envelope(PAYLOAD, PAYLOAD_TYPE_INTOTO, [keys[name]])
    sig = bytearray(base64.b64decode(envelope["signatures"][0]["sig"]))
    sig[-1] ^= 0x01
    envelope["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
    with pytest.raises(VerificationError, match="signature check failed: no signature on envelope"):
        verify_envelope(envelope, [keys[name].public_key])


def test_wrong_key_fails_and_names_both_keyids(keys: dict[str, SigningKey]) -> None:
    envelope = sign_envelope(PAYLOAD, PAYLOAD_TYPE_INTOTO, [keys["vendor"]])
    with pytest.raises(VerificationError) as caught:
        verify_envelope(envelope, [keys["partner"].public_key])
    message = str(caught.value)
    assert f"(keyids {keys['partner'].keyid[:16]})" in message
    assert f"its signatures name keyid(s) {keys['vendor'].keyid[:16]}" in message


def test_wrong_keyid_hint_still_verifies_with_the_right_key(keys: dict[str, SigningKey]) -> None:
    envelope = sign_envelope(PAYLOAD, PAYLOAD_TYPE_INTOTO, [keys["vendor"]])
    envelope["signatures"][0]["keyid"] = keys["partner"].keyid  # a lie: keyids are hints only
    trusted = [keys["partner"].public_key, keys["vendor"].public_key]
    assert verify_envelope(envelope, trusted) == PAYLOAD


def test_missing_keyid_hint_still_verifies(keys: dict[str, SigningKey]) -> None:
    envelope = sign_envelope(PAYLOAD, PAYLOAD_TYPE_INTOTO, [keys["vendor"]])
    del envelope["signatures"][0]["keyid"]
    assert verify_envelope(envelope, [keys["vendor"].public_key]) == PAYLOAD


def test_keyid_hint_alone_grants_nothing(keys: dict[str, SigningKey]) -> None:
    # A signature by an untrusted key that claims a trusted keyid must not count.
    envelope = sign_envelope(PAYLOAD, PAYLOAD_TYPE_INTOTO, [keys["partner"]])
    envelope["signatures"][0]["keyid"] = keys["vendor"].keyid
    with pytest.raises(VerificationError, match="no signature on envelope verifies"):
        verify_envelope(envelope, [keys["vendor"].public_key])


def test_threshold_two_with_one_signer_fails(keys: dict[str, SigningKey]) -> None:
    envelope = sign_envelope(PAYLOAD, PAYLOAD_TYPE_INTOTO, [keys["vendor"]])
    trusted = [keys["vendor"].public_key, keys["partner"].public_key]
    with pytest.raises(VerificationError) as caught:
        verify_envelope(envelope, trusted, threshold=2)
    message = str(caught.value)
    assert message.startswith(
        "signature check failed: 1 of 2 required trusted keys signed envelope"
    )
    assert f"valid: {keys['vendor'].keyid[:16]}" in message


def test_threshold_two_with_two_signers_including_ecdsa(keys: dict[str, SigningKey]) -> None:
    envelope = sign_envelope(PAYLOAD, PAYLOAD_TYPE_INTOTO, [keys["vendor"], keys["hsm"]])
    trusted = [keys["hsm"].public_key, keys["partner"].public_key, keys["vendor"].public_key]
    assert verify_envelope(envelope, trusted, threshold=2) == PAYLOAD


def test_duplicate_signatures_by_one_key_count_once(keys: dict[str, SigningKey]) -> None:
    envelope = sign_envelope(PAYLOAD, PAYLOAD_TYPE_INTOTO, [keys["vendor"]])
    envelope["signatures"] = envelope["signatures"] * 2
    envelope["signatures"][1] = {**envelope["signatures"][1], "keyid": keys["partner"].keyid}
    trusted = [keys["vendor"].public_key, keys["partner"].public_key]
    with pytest.raises(VerificationError, match="1 of 2 required trusted keys signed"):
        verify_envelope(envelope, trusted, threshold=2)


def test_the_same_trusted_key_given_twice_counts_once(keys: dict[str, SigningKey]) -> None:
    envelope = sign_envelope(PAYLOAD, PAYLOAD_TYPE_INTOTO, [keys["vendor"]])
    vendor = keys["vendor"].public_key
    with pytest.raises(
        VerificationError, match="2 valid signatures are required but only 1 distinct"
    ):
        verify_envelope(envelope, [vendor, vendor], threshold=2)


def test_no_trusted_keys_is_an_error(keys: dict[str, SigningKey]) -> None:
    envelope = sign_envelope(PAYLOAD, PAYLOAD_TYPE_INTOTO, [keys["vendor"]])
    with pytest.raises(VerificationError, match="no public key given to verify envelope with"):
        verify_envelope(envelope, [])


def test_urlsafe_unpadded_base64_is_accepted(keys: dict[str, SigningKey]) -> None:
    payload = b"\xfb\xff\xfe binary-ish payload"
    envelope = sign_envelope(payload, "application/octet-stream", [keys["vendor"]])
    envelope["payload"] = base64.urlsafe_b64encode(payload).decode().rstrip("=")
    assert verify_envelope(envelope, [keys["vendor"].public_key]) == payload


# --- envelope shape -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (lambda e: e.pop("payload"), "missing 'payload'"),
        (lambda e: e.pop("payloadType"), "missing 'payloadType'"),
        (lambda e: e.pop("signatures"), "missing 'signatures'"),
        (lambda e: e.__setitem__("payload", 7), "'payload' must be a base64 string"),
        (lambda e: e.__setitem__("payload", "not base64!"), "'payload' is not valid base64"),
        (lambda e: e.__setitem__("signatures", {}), "'signatures' must be a list"),
        (lambda e: e.__setitem__("signatures", []), "'signatures' is empty"),
        (lambda e: e.__setitem__("signatures", ["x"]), "signatures[0] must be an object"),
        (lambda e: e["signatures"][0].pop("sig"), "signatures[0] is missing 'sig'"),
        (
            lambda e: e["signatures"][0].__setitem__("keyid", 5),
            "signatures[0].keyid must be a string",
        ),
    ],
)
def test_malformed_envelope_is_named(keys: dict[str, SigningKey], mutate, problem: str) -> None:
    envelope = sign_envelope(PAYLOAD, PAYLOAD_TYPE_INTOTO, [keys["vendor"]])
    mutate(envelope)
    with pytest.raises(VerificationError) as caught:
        verify_envelope(envelope, [keys["vendor"].public_key])
    assert str(caught.value).startswith(f"envelope is not valid DSSE: {problem}")


def test_envelope_that_is_not_an_object() -> None:
    with pytest.raises(
        VerificationError, match="envelope is not valid DSSE: expected a JSON object"
    ):
        verify_envelope([], [])  # type: ignore[arg-type]


# --- co-signing ---------------------------------------------------------------------------------


def test_add_signature_co_signs_without_changing_the_input(keys: dict[str, SigningKey]) -> None:
    envelope = sign_envelope(PAYLOAD, PAYLOAD_TYPE_INTOTO, [keys["vendor"]])
    snapshot = json.dumps(envelope, sort_keys=True)
    cosigned = add_signature(envelope, keys["hsm"])
    assert json.dumps(envelope, sort_keys=True) == snapshot
    assert _sig_count(cosigned) == 2
    assert cosigned["payload"] == envelope["payload"]
    trusted = [keys["vendor"].public_key, keys["hsm"].public_key]
    assert verify_envelope(cosigned, trusted, threshold=2) == PAYLOAD


def test_add_signature_refuses_a_key_that_already_signed(keys: dict[str, SigningKey]) -> None:
    envelope = sign_envelope(PAYLOAD, PAYLOAD_TYPE_INTOTO, [keys["vendor"]])
    with pytest.raises(KeyFileError, match=r"key [0-9a-f]{16} has already signed this envelope"):
        add_signature(envelope, keys["vendor"])
    # Caught by the signature itself, even when the keyid hint is gone.
    del envelope["signatures"][0]["keyid"]
    with pytest.raises(KeyFileError, match="has already signed this envelope"):
        add_signature(envelope, keys["vendor"])


def test_add_signature_refuses_a_malformed_envelope(keys: dict[str, SigningKey]) -> None:
    with pytest.raises(VerificationError, match="envelope is not valid DSSE: missing 'payload'"):
        add_signature({"payloadType": "x", "signatures": []}, keys["vendor"])


def test_sign_envelope_refuses_no_keys_and_repeated_keys(keys: dict[str, SigningKey]) -> None:
    with pytest.raises(KeyFileError, match="no signing key given"):
        sign_envelope(PAYLOAD, PAYLOAD_TYPE_INTOTO, [])
    with pytest.raises(KeyFileError, match="was given twice"):
        sign_envelope(PAYLOAD, PAYLOAD_TYPE_INTOTO, [keys["vendor"], keys["vendor"]])


# --- files --------------------------------------------------------------------------------------


def test_write_then_read_round_trips(tmp_path: Path, keys: dict[str, SigningKey]) -> None:
    envelope = sign_envelope(PAYLOAD, PAYLOAD_TYPE_INTOTO, [keys["vendor"]])
    path = tmp_path / "report.dsse.json"
    write_envelope(path, envelope)
    text = path.read_text()
    assert text.endswith("}\n")
    assert text == json.dumps(envelope, indent=2, sort_keys=True) + "\n"
    assert read_envelope(path) == envelope
    assert [p.name for p in tmp_path.iterdir()] == ["report.dsse.json"]  # no temp file left
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_write_replaces_an_existing_envelope(tmp_path: Path, keys: dict[str, SigningKey]) -> None:
    path = tmp_path / "report.dsse.json"
    path.write_text("old\n")
    envelope = sign_envelope(PAYLOAD, PAYLOAD_TYPE_INTOTO, [keys["vendor"]])
    write_envelope(path, envelope)
    assert read_envelope(path) == envelope


def test_read_missing_envelope_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(VerificationError, match=r"signed envelope .*absent.dsse.json not found"):
        read_envelope(tmp_path / "absent.dsse.json")


def test_read_non_json_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "report.dsse.json"
    path.write_text("not json")
    with pytest.raises(VerificationError, match=r"report.dsse.json is not JSON \(Expecting value"):
        read_envelope(path)


def test_read_rejects_duplicate_keys(tmp_path: Path) -> None:
    path = tmp_path / "report.dsse.json"
    path.write_text('{"payload": "YQ==", "payload": "Yg==", "payloadType": "x", "signatures": []}')
    with pytest.raises(VerificationError, match="duplicate key 'payload'"):
        read_envelope(path)


# --- in-toto Statement --------------------------------------------------------------------------

DIGEST = hashlib.sha256(b"model manifest").hexdigest()


def _statement() -> dict:
    return build_statement(
        [resource("model:smollm2-135m", DIGEST, kind="model-manifest")],
        PREDICATE_TYPE_REPORT,
        {"results": {"mmlu": {"accuracy": 0.25}}, "seed": 1234},
    )


def test_resource_and_statement_shape() -> None:
    assert resource("suite:mmlu", DIGEST) == {"name": "suite:mmlu", "digest": {"sha256": DIGEST}}
    statement = _statement()
    assert statement["_type"] == STATEMENT_TYPE == "https://in-toto.io/Statement/v1"
    assert statement["subject"][0]["annotations"] == {"kind": "model-manifest"}
    assert statement["predicateType"] == PREDICATE_TYPE_REPORT


def test_resource_refuses_a_bad_digest() -> None:
    with pytest.raises(ValueError, match="64 lowercase hex"):
        resource("model", DIGEST.upper())


def test_statement_bytes_are_canonical_and_deterministic() -> None:
    statement = _statement()
    reordered = dict(reversed(list(statement.items())))
    assert statement_bytes(statement) == statement_bytes(reordered)
    assert statement_bytes(statement).startswith(b'{"_type":"https://in-toto.io/Statement/v1"')


def test_statement_signed_verified_and_parsed(keys: dict[str, SigningKey]) -> None:
    statement = _statement()
    envelope = sign_envelope(statement_bytes(statement), PAYLOAD_TYPE_INTOTO, [keys["vendor"]])
    payload = verify_envelope(envelope, [keys["vendor"].public_key])
    assert parse_statement(payload, PREDICATE_TYPE_REPORT) == statement


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\xff", "signed payload is not UTF-8 JSON"),
        (b"{", "signed payload is not valid JSON"),
        (b'{"a": NaN}', "signed payload is not valid JSON: NaN is not valid JSON"),
        (b"[]", "not an in-toto Statement (not a JSON object)"),
        (b'{"_type": "x"}', "_type is 'x', expected 'https://in-toto.io/Statement/v1'"),
        (b'{"_type": "x", "_type": "y"}', "signed statement repeats the key '_type'"),
    ],
)
def test_parse_statement_rejects_bad_json(payload: bytes, message: str) -> None:
    with pytest.raises(VerificationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_statement(payload, PREDICATE_TYPE_REPORT)


def test_parse_statement_checks_predicate_type_and_subjects() -> None:
    statement = _statement()
    with pytest.raises(VerificationError, match="has predicateType .* expected 'https://other'"):
        parse_statement(statement_bytes(statement), "https://other")

    no_digest = {**statement, "subject": [{"name": "model", "digest": {"sha512": "ab"}}]}
    with pytest.raises(VerificationError, match=r"subject\[0\] has no sha256 digest"):
        parse_statement(statement_bytes(no_digest), PREDICATE_TYPE_REPORT)

    no_subject = {**statement, "subject": []}
    with pytest.raises(VerificationError, match="names no subject"):
        parse_statement(statement_bytes(no_subject), PREDICATE_TYPE_REPORT)
