"""Key files: made with safe permissions, loaded with one-line errors that say how to fix them."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from evalkit.errors import KeyFileError
from evalkit.trust.keys import (
    SigningKey,
    VerifyKey,
    generate_keypair,
    key_is_encrypted,
    load_signing_key,
    load_verify_key,
)

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _write_private(path: Path, key: object, mode: int = 0o600) -> Path:
    pem = key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.write_bytes(pem)
    path.chmod(mode)
    return path


@posix_only
@pytest.mark.parametrize("algorithm", ["ed25519", "ecdsa-p256"])
def test_generate_writes_private_0600_and_public_0644(tmp_path: Path, algorithm: str) -> None:
    out = tmp_path / "keys"
    key_path, pub_path = generate_keypair(out, "vendor", algorithm=algorithm)  # type: ignore[arg-type]
    assert key_path == out / "vendor.key" and pub_path == out / "vendor.pub"
    assert _mode(key_path) == 0o600
    assert _mode(pub_path) == 0o644
    assert _mode(out) == 0o700
    assert key_path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert pub_path.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")


@posix_only
def test_private_key_is_0600_even_under_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        key_path, pub_path = generate_keypair(tmp_path)
    finally:
        os.umask(old)
    assert _mode(key_path) == 0o600
    assert _mode(pub_path) == 0o644


@pytest.mark.parametrize("algorithm", ["ed25519", "ecdsa-p256"])
def test_loaded_keys_round_trip_sign_and_verify(tmp_path: Path, algorithm: str) -> None:
    key_path, pub_path = generate_keypair(tmp_path, algorithm=algorithm)  # type: ignore[arg-type]
    signing = load_signing_key(key_path)
    verify = load_verify_key(pub_path)
    assert signing.algorithm == verify.algorithm == algorithm
    assert signing.keyid == verify.keyid == signing.public_key.keyid

    signature = signing.sign(b"report bytes")
    assert verify.verify(signature, b"report bytes")
    assert not verify.verify(signature, b"report bytez")
    assert not verify.verify(b"\x00" * len(signature), b"report bytes")
    assert not verify.verify(b"", b"report bytes")  # malformed: False, never an exception


def test_keyid_is_sha256_of_subject_public_key_info_der(tmp_path: Path) -> None:
    import hashlib

    _, pub_path = generate_keypair(tmp_path)
    verify = load_verify_key(pub_path)
    der = serialization.load_pem_public_key(pub_path.read_bytes()).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert verify.keyid == hashlib.sha256(der).hexdigest()
    assert len(verify.keyid) == 64 and verify.keyid == verify.keyid.lower()
    assert verify.to_pem() == pub_path.read_bytes()


def test_ed25519_signatures_are_deterministic(tmp_path: Path) -> None:
    key_path, _ = generate_keypair(tmp_path)
    signing = load_signing_key(key_path)
    first, second = signing.sign(b"same bytes"), signing.sign(b"same bytes")
    assert first == second
    assert len(first) == 64


def test_ecdsa_signature_is_der(tmp_path: Path) -> None:
    key_path, _ = generate_keypair(tmp_path, algorithm="ecdsa-p256")
    signature = load_signing_key(key_path).sign(b"x")
    assert signature[0] == 0x30  # DER SEQUENCE(r, s)


def test_keys_with_the_same_public_half_compare_equal(tmp_path: Path) -> None:
    key_path, pub_path = generate_keypair(tmp_path)
    assert load_verify_key(pub_path) == load_signing_key(key_path).public_key
    assert len({load_verify_key(pub_path), load_verify_key(pub_path)}) == 1


def test_wrong_key_does_not_verify(tmp_path: Path) -> None:
    key_a, _ = generate_keypair(tmp_path, "a")
    _, pub_b = generate_keypair(tmp_path, "b")
    signature = load_signing_key(key_a).sign(b"data")
    assert not load_verify_key(pub_b).verify(signature, b"data")


# --- passphrases --------------------------------------------------------------------------------


def test_encrypted_key_loads_with_the_right_passphrase(tmp_path: Path) -> None:
    key_path, pub_path = generate_keypair(tmp_path, passphrase=b"correct horse")
    assert key_path.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert key_is_encrypted(key_path)
    assert not key_is_encrypted(pub_path)
    signing = load_signing_key(key_path, b"correct horse")
    assert signing.keyid == load_verify_key(pub_path).keyid


def test_unencrypted_key_is_not_reported_encrypted(tmp_path: Path) -> None:
    key_path, _ = generate_keypair(tmp_path)
    assert not key_is_encrypted(key_path)
    # A passphrase from a global environment variable must not break an unencrypted key.
    assert load_signing_key(key_path, b"unused").algorithm == "ed25519"


def test_encrypted_key_without_passphrase_says_how_to_give_one(tmp_path: Path) -> None:
    key_path, _ = generate_keypair(tmp_path, passphrase=b"secret")
    with pytest.raises(KeyFileError) as caught:
        load_signing_key(key_path)
    message = str(caught.value)
    assert f"{key_path} is encrypted; give its passphrase" in message
    assert "--passphrase-env VAR or EVALKIT_KEY_PASSPHRASE" in message
    assert "\n" not in message


def test_wrong_passphrase_is_named(tmp_path: Path) -> None:
    key_path, _ = generate_keypair(tmp_path, passphrase=b"secret")
    with pytest.raises(KeyFileError, match="wrong passphrase for .*evalkit.key"):
        load_signing_key(key_path, b"not the secret")


def test_empty_passphrase_is_refused_when_generating(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="passphrase is empty"):
        generate_keypair(tmp_path, passphrase=b"")
    assert not (tmp_path / "evalkit.key").exists()


def test_verify_key_from_encrypted_private_key_is_refused(tmp_path: Path) -> None:
    key_path, _ = generate_keypair(tmp_path, passphrase=b"secret")
    with pytest.raises(
        KeyFileError, match=r"is an encrypted private key; verify with its public key"
    ):
        load_verify_key(key_path)


def test_verify_key_can_be_derived_from_unencrypted_private_key(tmp_path: Path) -> None:
    key_path, pub_path = generate_keypair(tmp_path)
    assert load_verify_key(key_path).keyid == load_verify_key(pub_path).keyid


# --- wrong files --------------------------------------------------------------------------------


def test_public_key_given_as_signing_key(tmp_path: Path) -> None:
    _, pub_path = generate_keypair(tmp_path)
    with pytest.raises(KeyFileError) as caught:
        load_signing_key(pub_path)
    assert str(caught.value) == f"{pub_path} is a public key; sign with the .key file"


def test_missing_key_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.key"
    with pytest.raises(KeyFileError, match=r"key file .*nope.key not found"):
        load_signing_key(missing)
    with pytest.raises(KeyFileError, match=r"key file .*nope.key not found"):
        load_verify_key(missing)


def test_file_that_is_not_a_pem_key(tmp_path: Path) -> None:
    junk = tmp_path / "report.json"
    junk.write_text('{"not": "a key"}')
    junk.chmod(0o600)
    with pytest.raises(KeyFileError, match=r"report.json is not a PEM key file"):
        load_signing_key(junk)
    with pytest.raises(KeyFileError, match=r"report.json is not a PEM key file"):
        load_verify_key(junk)


def test_damaged_pem_key(tmp_path: Path) -> None:
    broken = tmp_path / "broken.key"
    broken.write_bytes(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    broken.chmod(0o600)
    with pytest.raises(KeyFileError, match=r"broken.key is not a valid PEM private key"):
        load_signing_key(broken)


def test_rsa_key_is_refused(tmp_path: Path) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = _write_private(tmp_path / "rsa.key", rsa_key)
    with pytest.raises(KeyFileError) as caught:
        load_signing_key(path)
    assert str(caught.value) == (
        f"{path} holds an RSA key; evalkit signs with ed25519 or ecdsa-p256 keys"
    )
    pub = tmp_path / "rsa.pub"
    pub.write_bytes(
        rsa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    with pytest.raises(KeyFileError, match=r"rsa.pub holds an RSA key; evalkit verifies"):
        load_verify_key(pub)


def test_ec_key_on_another_curve_is_refused(tmp_path: Path) -> None:
    path = _write_private(tmp_path / "p384.key", ec.generate_private_key(ec.SECP384R1()))
    with pytest.raises(KeyFileError, match=r"holds an EC key on curve secp384r1; evalkit signs"):
        load_signing_key(path)


def test_wrapping_an_unsupported_key_object_is_refused() -> None:
    with pytest.raises(KeyFileError, match="an EC key on curve secp384r1 is not supported"):
        SigningKey(ec.generate_private_key(ec.SECP384R1()))
    with pytest.raises(KeyFileError, match="an EC key on curve secp384r1 is not supported"):
        VerifyKey(ec.generate_private_key(ec.SECP384R1()).public_key())


@posix_only
def test_private_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    key_path, _ = generate_keypair(tmp_path)
    key_path.chmod(0o644)
    with pytest.raises(KeyFileError) as caught:
        load_signing_key(key_path)
    assert str(caught.value) == (
        f"{key_path} is readable by others (mode 0644); run chmod 600 {key_path}"
    )


@posix_only
def test_group_readable_private_key_is_refused(tmp_path: Path) -> None:
    key_path, _ = generate_keypair(tmp_path)
    key_path.chmod(0o640)
    with pytest.raises(KeyFileError, match=r"is readable by others \(mode 0640\); run chmod 600"):
        load_signing_key(key_path)


# --- generating ---------------------------------------------------------------------------------


def test_refuses_to_overwrite_an_existing_key(tmp_path: Path) -> None:
    key_path, pub_path = generate_keypair(tmp_path, "partner")
    before = key_path.read_bytes(), pub_path.read_bytes()
    with pytest.raises(KeyFileError) as caught:
        generate_keypair(tmp_path, "partner")
    assert str(caught.value).startswith(
        f"{key_path} already exists; choose another --name or folder"
    )
    assert (key_path.read_bytes(), pub_path.read_bytes()) == before


def test_refuses_to_overwrite_an_existing_pub_and_writes_nothing(tmp_path: Path) -> None:
    pub_path = tmp_path / "partner.pub"
    pub_path.write_text("someone else's key\n")
    with pytest.raises(KeyFileError, match=r"partner.pub already exists; choose another --name"):
        generate_keypair(tmp_path, "partner")
    assert not (tmp_path / "partner.key").exists()
    assert pub_path.read_text() == "someone else's key\n"


@pytest.mark.parametrize("name", ["../escape", "a/b", "", "with space", "semi;colon"])
def test_key_name_must_be_plain(tmp_path: Path, name: str) -> None:
    with pytest.raises(KeyFileError, match="is not allowed; use letters, digits"):
        generate_keypair(tmp_path, name)


def test_unknown_algorithm_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="unknown key algorithm 'rsa'; choose one of: ed25519"):
        generate_keypair(tmp_path, algorithm="rsa")  # type: ignore[arg-type]
