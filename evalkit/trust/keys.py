"""Signing keys on disk: make them, load them, and say clearly what is wrong when a file won't do.

A partner signs reports offline with a software key held as a PKCS#8 PEM file (Ed25519 by
default; ECDSA P-256 where the key must later move to an HSM, since the HSM signing paths support
only NIST curves). The public half is a SubjectPublicKeyInfo PEM that anyone may hold. A key is
named by its keyid, the SHA-256 of its SubjectPublicKeyInfo DER, so two tools that read the same
public key agree on its name.

Everything a user can get wrong with a key file (the wrong half, a missing or wrong passphrase,
an RSA key, a file other users can read) raises a one-line KeyFileError that says how to fix it.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

from evalkit.errors import KeyFileError

Algorithm = Literal["ed25519", "ecdsa-p256"]
ALGORITHMS: tuple[Algorithm, ...] = ("ed25519", "ecdsa-p256")

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]+$")

# The first PEM armour line names what the file holds; we read it to give a precise error before
# asking cryptography to parse, whose messages don't say which half of a key pair it was given.
_PEM_LABEL = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----")
_PRIVATE_LABELS = {b"PRIVATE KEY", b"ENCRYPTED PRIVATE KEY", b"EC PRIVATE KEY", b"RSA PRIVATE KEY"}
_PUBLIC_LABELS = {b"PUBLIC KEY", b"RSA PUBLIC KEY"}


def _public_der(public: PublicKey) -> bytes:
    return public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _keyid(public: PublicKey) -> str:
    return hashlib.sha256(_public_der(public)).hexdigest()


def _algorithm_of(key: PrivateKey | PublicKey) -> Algorithm | None:
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
        return "ed25519"
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)) and isinstance(
        key.curve, ec.SECP256R1
    ):
        return "ecdsa-p256"
    return None


def _describe(key: object) -> str:
    """Name an unsupported key type for an error message ("an RSA key", "an EC key on secp384r1")."""
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        return "an RSA key"
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        return f"an EC key on curve {key.curve.name}"
    if isinstance(key, (dsa.DSAPrivateKey, dsa.DSAPublicKey)):
        return "a DSA key"
    if isinstance(key, (ed448.Ed448PrivateKey, ed448.Ed448PublicKey)):
        return "an Ed448 key"
    return f"a key of type {type(key).__name__}"


def _supported_algorithm(key: PrivateKey | PublicKey) -> Algorithm:
    algorithm = _algorithm_of(key)
    if algorithm is None:
        raise KeyFileError(f"{_describe(key)} is not supported; evalkit uses ed25519 or ecdsa-p256 keys")
    return algorithm


@dataclass(frozen=True)
class VerifyKey:
    """A trusted public key. Built from a cryptography public key with `VerifyKey(key)`."""

    key: PublicKey = field(repr=False, compare=False)
    algorithm: Algorithm = field(init=False)
    keyid: str = field(init=False)

    def __post_init__(self) -> None:
        # frozen: set the derived fields once, here, and never again.
        object.__setattr__(self, "algorithm", _supported_algorithm(self.key))
        object.__setattr__(self, "keyid", _keyid(self.key))

    def verify(self, signature: bytes, data: bytes) -> bool:
        """True if `signature` is this key's signature over `data`; False otherwise, never raises."""
        if not isinstance(signature, (bytes, bytearray)) or not isinstance(
            data, (bytes, bytearray)
        ):
            return False
        try:
            if isinstance(self.key, ed25519.Ed25519PublicKey):
                self.key.verify(bytes(signature), bytes(data))
            else:
                self.key.verify(bytes(signature), bytes(data), ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError):
            # ValueError: a signature of the wrong shape for this algorithm is simply not valid.
            return False
        return True

    def to_pem(self) -> bytes:
        return self.key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


@dataclass(frozen=True)
class SigningKey:
    """A private key that can sign. Built from a cryptography private key with `SigningKey(key)`."""

    key: PrivateKey = field(repr=False, compare=False)
    algorithm: Algorithm = field(init=False)
    keyid: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "algorithm", _supported_algorithm(self.key))
        object.__setattr__(self, "keyid", _keyid(self.key.public_key()))

    @property
    def public_key(self) -> VerifyKey:
        return VerifyKey(self.key.public_key())

    def sign(self, data: bytes) -> bytes:
        """Ed25519: the raw 64-byte signature (deterministic). ECDSA P-256: SHA-256, DER-encoded."""
        if isinstance(self.key, ed25519.Ed25519PrivateKey):
            return self.key.sign(data)
        return self.key.sign(data, ec.ECDSA(hashes.SHA256()))


# ---------------------------------------------------------------------------------------------
# Making a key pair


def _new_private_key(algorithm: str) -> PrivateKey:
    if algorithm == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if algorithm == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    raise KeyFileError(
        f"unknown key algorithm {algorithm!r}; choose one of: {', '.join(ALGORITHMS)}"
    )


def _write_new_file(path: Path, data: bytes, mode: int) -> None:
    """Create `path` with `mode` from its first instant (O_EXCL: never follow or replace a file)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        # The umask may have narrowed `mode` (a public key is meant to be world-readable); set it
        # exactly, before a single byte is written.
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def generate_keypair(
    out_dir: Path,
    name: str = "evalkit",
    *,
    passphrase: bytes | None = None,
    algorithm: Algorithm = "ed25519",
) -> tuple[Path, Path]:
    """Write `out_dir/NAME.key` (private, 0600) and `out_dir/NAME.pub` (public, 0644).

    The private key is PKCS#8 PEM, encrypted when a passphrase is given. Nothing is overwritten.
    Returns (key_path, pub_path).
    """
    if not NAME_PATTERN.match(name):
        raise KeyFileError(
            f"key name {name!r} is not allowed; use letters, digits, '_', '.' and '-' only"
        )
    if passphrase is not None and len(passphrase) == 0:
        # An empty passphrase is almost always an unset environment variable, not a choice.
        raise KeyFileError("the passphrase is empty; give a non-empty passphrase or none at all")
    private = _new_private_key(algorithm)

    out_dir = Path(out_dir)
    key_path, pub_path = out_dir / f"{name}.key", out_dir / f"{name}.pub"
    for existing in (key_path, pub_path):
        if existing.exists() or existing.is_symlink():
            raise KeyFileError(
                f"{existing} already exists; choose another --name or folder "
                "(evalkit never overwrites a key)"
            )
    # 0700: the folder that holds a private key need not be listable by anyone else.
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)

    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase is not None
        else serialization.NoEncryption()
    )
    key_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    pub_pem = VerifyKey(private.public_key()).to_pem()

    try:
        _write_new_file(key_path, key_pem, 0o600)
    except FileExistsError:
        raise KeyFileError(f"{key_path} already exists; choose another --name or folder") from None
    try:
        _write_new_file(pub_path, pub_pem, 0o644)
    except BaseException as exc:
        # Don't leave half a key pair behind: the private key we just made has no public half.
        key_path.unlink(missing_ok=True)
        if isinstance(exc, FileExistsError):
            raise KeyFileError(
                f"{pub_path} already exists; choose another --name or folder"
            ) from None
        raise
    return key_path, pub_path


# ---------------------------------------------------------------------------------------------
# Loading keys


def _read_key_file(path: Path) -> tuple[bytes, bytes | None]:
    """Return the file's bytes and its first PEM label (None when it is not PEM)."""
    path = Path(path)
    if not path.exists():
        raise KeyFileError(f"key file {path} not found")
    if not path.is_file():
        raise KeyFileError(f"key file {path} is not a file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror}") from None
    match = _PEM_LABEL.search(data)
    return data, (match.group(1) if match else None)


def _not_a_key(path: Path, label: bytes | None) -> KeyFileError:
    if label == b"OPENSSH PRIVATE KEY":
        return KeyFileError(f"{path} is an OpenSSH key; evalkit reads PKCS#8 PEM keys only")
    if label == b"CERTIFICATE":
        return KeyFileError(f"{path} is a certificate, not a key; give the .pub or .key file")
    return KeyFileError(f"{path} is not a PEM key file")


def _is_encrypted(data: bytes, label: bytes | None) -> bool:
    # PKCS#8 says so in its label; traditional OpenSSL PEM says so in a Proc-Type header.
    return label == b"ENCRYPTED PRIVATE KEY" or b"Proc-Type: 4,ENCRYPTED" in data


def _check_private_mode(path: Path) -> None:
    """Refuse a private key other users could read, as ssh does: a shared secret is no secret."""
    if os.name != "posix":
        return
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        what = "readable by others" if mode & 0o044 else "accessible by others"
        raise KeyFileError(f"{path} is {what} (mode {mode:04o}); run chmod 600 {path}")


def key_is_encrypted(path: Path) -> bool:
    """True if `path` is a passphrase-protected private key (so the CLI knows to ask for one)."""
    data, label = _read_key_file(path)
    return label in _PRIVATE_LABELS and _is_encrypted(data, label)


def _load_private(path: Path, data: bytes, label: bytes | None, passphrase: bytes | None) -> object:
    encrypted = _is_encrypted(data, label)
    if encrypted and not passphrase:
        raise KeyFileError(
            f"{path} is encrypted; give its passphrase "
            "(--passphrase-env VAR or EVALKIT_KEY_PASSPHRASE)"
        )
    try:
        # A passphrase given for an unencrypted key is ignored: it may come from a global
        # environment variable that applies to other keys.
        return serialization.load_pem_private_key(data, passphrase if encrypted else None)
    except ValueError:
        if encrypted:
            raise KeyFileError(f"wrong passphrase for {path} (or the file is damaged)") from None
        raise KeyFileError(
            f"{path} is not a valid PEM private key (damaged or unsupported)"
        ) from None
    except UnsupportedAlgorithm:
        raise KeyFileError(
            f"{path} holds a key type evalkit does not support; use ed25519 or ecdsa-p256"
        ) from None
    except TypeError as exc:  # cryptography's signal for a passphrase mismatch it detected itself
        raise KeyFileError(f"cannot load {path}: {exc}") from None


def load_signing_key(path: Path, passphrase: bytes | None = None) -> SigningKey:
    """Load a private key (PKCS#8 or traditional PEM) for signing; KeyFileError says what's wrong."""
    path = Path(path)
    data, label = _read_key_file(path)
    if label in _PUBLIC_LABELS:
        raise KeyFileError(f"{path} is a public key; sign with the .key file")
    if label not in _PRIVATE_LABELS:
        raise _not_a_key(path, label)
    private = _load_private(path, data, label, passphrase)
    if _algorithm_of(private) is None:  # type: ignore[arg-type]
        raise KeyFileError(
            f"{path} holds {_describe(private)}; evalkit signs with ed25519 or ecdsa-p256 keys"
        )
    # Checked after parsing, so a public key or a non-key gets its own, more useful message.
    _check_private_mode(path)
    return SigningKey(private)  # type: ignore[arg-type]


def load_verify_key(path: Path) -> VerifyKey:
    """Load a public key (.pub PEM), or derive it from an unencrypted private key file."""
    path = Path(path)
    data, label = _read_key_file(path)
    if label in _PUBLIC_LABELS:
        try:
            public: object = serialization.load_pem_public_key(data)
        except (ValueError, UnsupportedAlgorithm):
            raise KeyFileError(
                f"{path} is not a valid PEM public key (damaged or unsupported)"
            ) from None
    elif label in _PRIVATE_LABELS:
        if _is_encrypted(data, label):
            raise KeyFileError(
                f"{path} is an encrypted private key; verify with its public key (the .pub file)"
            )
        public = _load_private(path, data, label, None).public_key()  # type: ignore[attr-defined]
    else:
        raise _not_a_key(path, label)
    if _algorithm_of(public) is None:  # type: ignore[arg-type]
        raise KeyFileError(
            f"{path} holds {_describe(public)}; evalkit verifies ed25519 or ecdsa-p256 keys"
        )
    return VerifyKey(public)  # type: ignore[arg-type]
