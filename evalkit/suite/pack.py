"""Signed suite packs: one file a standards body publishes and signs, and any evaluator can check.

Why a pack and not a folder: a single file has a single sha256 that a signature can name, travels
through an air gap as one object, and unpacks into exactly the suite that was signed, or not at all.

Format `evalkit.suite-pack/v1`: an uncompressed POSIX tar whose first member is `pack.json`
({"format", "suite", "version", "suite_digest", "files": [{"path", "size", "sha256"}]}), followed by
every file of the suite under `suite/`, sorted by path. Every header has mtime 0, uid/gid 0, no owner
names and mode 0644, so packing the same suite twice gives the same bytes and the same sha256. There
is no compression: nothing to inflate means no decompression bomb, and no zlib version can change
the bytes.

Signature: `<pack>.dsse.json` beside the pack, a DSSE envelope over an in-toto Statement whose
subject is the pack file by sha256 and whose predicate names the suite, its version and its digest.
A second body co-signs by adding its signature to the same envelope.

Unpacking trusts nothing inside the archive: every member must be a regular file with a plain
relative name under `suite/`, listed once in `pack.json`, within the size limits, and hash to what
`pack.json` says. Members are written by our own code (never tarfile's extraction) into a fresh
temporary folder, which is renamed into place only when every check has passed.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import stat
import tarfile
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO

from evalkit.errors import ConfigError, VerificationError
from evalkit.fileio import reject_duplicate_keys
from evalkit.suite.loader import load_suite, suite_digest
from evalkit.suite.records import DataFileDigest
from evalkit.suite.registry import resolve_suite_path
from evalkit.trust import (
    PAYLOAD_TYPE_INTOTO,
    SigningKey,
    VerifyKey,
    add_signature,
    build_statement,
    parse_statement,
    read_envelope,
    resource,
    sign_envelope,
    statement_bytes,
    verify_envelope,
    write_envelope,
)

PACK_FORMAT = "evalkit.suite-pack/v1"
PREDICATE_TYPE_SUITE_PACK = "https://evalkit.dev/attestations/suite-pack/v1"
PACK_SUFFIXES = (".evalkit-pack", ".tar")
SIGNATURE_SUFFIX = ".dsse.json"
MANIFEST_MEMBER = "pack.json"
SUITE_MEMBER_PREFIX = "suite/"

_MANIFEST_KEYS = {"format", "suite", "version", "suite_digest", "files"}
_FILE_KEYS = {"path", "size", "sha256"}
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_MAX_MANIFEST_BYTES = 16 * 1024 * 1024
_CHUNK = 1 << 20


@dataclass(frozen=True)
class PackLimits:
    """What unpacking accepts at most; a pack past any limit is refused before its bytes are read."""

    max_member_bytes: int = 512 * 1024 * 1024
    max_total_bytes: int = 2 * 1024 * 1024 * 1024
    max_members: int = 100_000

    @property
    def max_pack_bytes(self) -> int:
        # Room for pack.json and up to three 512-byte header blocks (pax, ustar) per member.
        return self.max_total_bytes + _MAX_MANIFEST_BYTES + (self.max_members + 10) * 2048


@dataclass(frozen=True)
class PackInfo:
    """A checked pack. signed_by: keyids of the trusted keys whose signature verified (empty when
    the signature was not checked)."""

    path: Path
    sha256: str
    suite: str
    version: str
    suite_digest: str
    files: tuple[DataFileDigest, ...]
    signed_by: tuple[str, ...] = ()

    @property
    def predicate(self) -> dict[str, str]:
        """What a signature over this pack asserts, beside the pack's sha256."""
        return {"suite": self.suite, "version": self.version, "suite_digest": self.suite_digest}


def signature_path(pack: Path) -> Path:
    """Where a pack's signature lives: `<pack>.dsse.json`, beside it."""
    pack = Path(pack)
    return pack.with_name(pack.name + SIGNATURE_SUFFIX)


def is_pack_ref(ref: str) -> bool:
    """True when a suite reference names a pack file rather than a bundled name or a folder."""
    return ref.endswith(PACK_SUFFIXES)


# --------------------------------------------------------------------------------------------
# packing


def _manifest_bytes(name: str, version: str, digest: str, files: Sequence[DataFileDigest]) -> bytes:
    document = {
        "format": PACK_FORMAT,
        "suite": name,
        "version": version,
        "suite_digest": digest,
        "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in files],
    }
    return (json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def _member(name: str, size: int) -> tarfile.TarInfo:
    """A tar header that depends only on the name and size: the source of byte-identical packs."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.type = tarfile.REGTYPE
    info.mode = 0o644
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


class _HashingReader:
    """Feeds a file to tarfile while hashing exactly the bytes that went into the pack."""

    def __init__(self, handle: IO[bytes]) -> None:
        self._handle, self._digest, self.size = handle, hashlib.sha256(), 0

    def read(self, n: int = -1) -> bytes:
        data = self._handle.read(n)
        self._digest.update(data)
        self.size += len(data)
        return data

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()


def pack_suite(folder: Path, out: Path) -> PackInfo:
    """Validate the suite in `folder` (every problem at once), then write it as a pack to `out`.

    Never overwrites: a pack that changes under its signature would only fail later, far away.
    """
    suite = load_suite(Path(folder))
    out = Path(out)
    if out.exists() or out.is_symlink():
        raise ConfigError(f"{out} already exists; remove it or choose another --out (packs are never overwritten)")
    if not out.parent.is_dir():
        raise ConfigError(f"folder {out.parent} does not exist; create it or choose another --out")
    if out.parent.resolve().is_relative_to(suite.root.resolve()):
        raise ConfigError(f"{out} is inside the suite folder; write the pack somewhere else")

    manifest = _manifest_bytes(suite.name, suite.manifest.version, suite.digest, suite.files)
    fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o644)  # a pack is published; mkstemp makes 0600 files
            with tarfile.open(fileobj=handle, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8") as tar:
                tar.addfile(_member(MANIFEST_MEMBER, len(manifest)), io.BytesIO(manifest))
                for entry in suite.files:
                    with (suite.root / entry.path).open("rb") as source:
                        reader = _HashingReader(source)
                        tar.addfile(_member(SUITE_MEMBER_PREFIX + entry.path, entry.size), reader)  # type: ignore[arg-type]
                    if reader.sha256 != entry.sha256:
                        raise ConfigError(f"{entry.path} changed while it was being packed; pack again")
            handle.flush()
            os.fsync(handle.fileno())
        sha256 = _sha256_path(tmp)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return PackInfo(out, sha256, suite.name, suite.manifest.version, suite.digest, suite.files)


def _sha256_path(path: Path) -> str:
    with path.open("rb") as handle:
        return _sha256_stream(handle)


def _sha256_stream(handle: IO[bytes]) -> str:
    digest = hashlib.sha256()
    while chunk := handle.read(_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# reading: pack.json, member names, members


def _bad(pack: Path, problem: str) -> VerificationError:
    return VerificationError(f"suite pack {pack.name}: {problem}")


def _path_problem(rel: str) -> str | None:
    """Why a relative path may not be written, or None. Paths must be plain, relative and inside."""
    if not rel:
        return "is empty"
    if "\x00" in rel or "\\" in rel:
        return "contains a backslash or NUL"
    if rel.startswith("/") or re.match(r"^[A-Za-z]:", rel):
        return "is absolute"
    parts = rel.split("/")
    if ".." in parts:
        return "contains '..' (it would be written outside the pack's folder)"
    if any(part in ("", ".") for part in parts):
        return "is not a normalised path (empty or '.' parts)"
    return None




def _parse_manifest(data: bytes, pack: Path) -> tuple[str, str, str, tuple[DataFileDigest, ...]]:
    """(suite, version, suite_digest, files) from pack.json, checked strictly and against itself."""
    try:
        doc = json.loads(data.decode("utf-8"), object_pairs_hook=reject_duplicate_keys)
    except (UnicodeDecodeError, ValueError) as exc:
        raise _bad(pack, f"{MANIFEST_MEMBER} is not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or set(doc) != _MANIFEST_KEYS:
        keys = sorted(doc) if isinstance(doc, dict) else type(doc).__name__
        raise _bad(pack, f"{MANIFEST_MEMBER} must hold exactly {sorted(_MANIFEST_KEYS)}, got {keys}")
    if doc["format"] != PACK_FORMAT:
        raise _bad(pack, f"{MANIFEST_MEMBER} has format {doc['format']!r}; this evalkit reads {PACK_FORMAT}")
    for key in ("suite", "version", "suite_digest"):
        if not isinstance(doc[key], str) or not doc[key]:
            raise _bad(pack, f"{MANIFEST_MEMBER}: {key!r} must be a non-empty string")
    if not isinstance(doc["files"], list):
        raise _bad(pack, f"{MANIFEST_MEMBER}: 'files' must be a list")
    files: list[DataFileDigest] = []
    seen: dict[str, str] = {}
    for i, item in enumerate(doc["files"]):
        where = f"{MANIFEST_MEMBER}: files[{i}]"
        if not isinstance(item, dict) or set(item) != _FILE_KEYS:
            raise _bad(pack, f"{where} must hold exactly path, size and sha256")
        path, size, sha = item["path"], item["size"], item["sha256"]
        if not isinstance(path, str) or (problem := _path_problem(path)):
            raise _bad(pack, f"{where}.path {path!r} {problem if isinstance(path, str) else 'is not a string'}")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise _bad(pack, f"{where}.size must be a non-negative integer")
        if not isinstance(sha, str) or not _SHA256.match(sha):
            raise _bad(pack, f"{where}.sha256 must be 64 lowercase hex characters")
        folded = path.casefold()
        if folded in seen:
            raise _bad(pack, f"{where}: {path!r} is listed twice (or differs from {seen[folded]!r} only in case)")
        seen[folded] = path
        files.append(DataFileDigest(path, sha, size))
    files.sort(key=lambda f: f.path)
    # The digest binds the list: a list edited after packing no longer matches it.
    computed = suite_digest(doc["suite"], doc["version"], files)
    if computed != doc["suite_digest"]:
        raise _bad(
            pack,
            f"{MANIFEST_MEMBER}'s file list gives suite digest {computed[:16]}…, but it declares "
            f"{doc['suite_digest'][:16]}…: the list was edited after packing",
        )
    return doc["suite"], doc["version"], doc["suite_digest"], tuple(files)


_KINDS = {
    tarfile.SYMTYPE: "a symbolic link",
    tarfile.LNKTYPE: "a hard link",
    tarfile.DIRTYPE: "a folder entry",
    tarfile.CHRTYPE: "a character device",
    tarfile.BLKTYPE: "a block device",
    tarfile.FIFOTYPE: "a FIFO",
    tarfile.CONTTYPE: "a contiguous file",
    tarfile.GNUTYPE_SPARSE: "a sparse file",
}


def _check_header(member: tarfile.TarInfo, pack: Path, limits: PackLimits) -> None:
    """Refuse what our packer never writes, before a byte of the member is read."""
    if member.type not in (tarfile.REGTYPE, tarfile.AREGTYPE) or member.issparse():
        kind = _KINDS.get(member.type, f"a member of type {member.type!r}")
        raise _bad(pack, f"member {member.name!r} is {kind}; packs hold regular files only")
    if member.size > limits.max_member_bytes:
        raise _bad(
            pack,
            f"member {member.name!r} is {member.size} bytes, over the limit of "
            f"{limits.max_member_bytes} bytes per member",
        )


def _copy_member(source: IO[bytes], target: Path | None) -> tuple[str, int]:
    """Stream one member, hashing it; write it to `target` (a new file, never followed) if given."""
    digest, size = hashlib.sha256(), 0
    fd = None
    if target is not None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(target, flags, 0o644)
    try:
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            if fd is not None:
                os.write(fd, chunk)
    finally:
        if fd is not None:
            os.close(fd)
    return digest.hexdigest(), size


def _scan(handle: IO[bytes], pack: Path, sha256: str, limits: PackLimits, dest: Path | None) -> PackInfo:
    """Check every member against pack.json; with `dest`, also write pack.json and suite/ there."""
    try:
        with tarfile.open(fileobj=handle, mode="r:") as tar:
            first = tar.next()
            if first is None or first.name != MANIFEST_MEMBER:
                got = "nothing" if first is None else repr(first.name)
                raise _bad(pack, f"the first member must be {MANIFEST_MEMBER}, found {got}; is this an evalkit pack?")
            if first.type not in (tarfile.REGTYPE, tarfile.AREGTYPE) or first.size > _MAX_MANIFEST_BYTES:
                raise _bad(pack, f"{MANIFEST_MEMBER} is not a regular file under {_MAX_MANIFEST_BYTES} bytes")
            raw = tar.extractfile(first).read()  # type: ignore[union-attr]
            name, version, digest, files = _parse_manifest(raw, pack)
            if dest is not None:
                (dest / MANIFEST_MEMBER).write_bytes(raw)
            expected = {SUITE_MEMBER_PREFIX + f.path: f for f in files}
            seen: dict[str, str] = {}
            total, count = 0, 1
            while (member := tar.next()) is not None:
                count += 1
                if count > limits.max_members:
                    raise _bad(pack, f"more than {limits.max_members} members, over the limit")
                problem = _path_problem(member.name)
                if problem:
                    raise _bad(pack, f"member {member.name!r} {problem}; refusing to unpack")
                _check_header(member, pack, limits)
                folded = member.name.casefold()
                if folded in seen:
                    other = seen[folded]
                    same = "appears twice" if other == member.name else f"differs from {other!r} only in case"
                    raise _bad(pack, f"member {member.name!r} {same}; a pack lists each file once")
                seen[folded] = member.name
                entry = expected.get(member.name)
                if entry is None:
                    raise _bad(pack, f"member {member.name!r} is not listed in {MANIFEST_MEMBER} (added after packing?)")
                if member.size != entry.size:
                    raise _bad(pack, f"member {member.name!r} is {member.size} bytes, {MANIFEST_MEMBER} says {entry.size}")
                total += member.size
                if total > limits.max_total_bytes:
                    raise _bad(pack, f"members total more than the limit of {limits.max_total_bytes} bytes")
                target = None if dest is None else dest / member.name
                try:
                    if target is not None:
                        target.parent.mkdir(parents=True, exist_ok=True)
                    actual, size = _copy_member(tar.extractfile(member), target)  # type: ignore[arg-type]
                except (FileExistsError, NotADirectoryError, IsADirectoryError):
                    # e.g. both suite/a and suite/a/b: one name is a file and a folder at once.
                    raise _bad(pack, f"member {member.name!r} clashes with another member's path") from None
                if actual != entry.sha256 or size != entry.size:
                    raise _bad(
                        pack,
                        f"member {member.name!r} has sha256 {actual[:16]}…, {MANIFEST_MEMBER} says "
                        f"{entry.sha256[:16]}…: the file was changed after packing",
                    )
    except tarfile.TarError as exc:
        raise _bad(pack, f"not a readable uncompressed tar archive ({exc})") from None
    missing = sorted(set(expected) - set(seen.values()))
    if missing:
        raise _bad(pack, f"{MANIFEST_MEMBER} lists {missing[0]!r} but the pack has no such member (truncated?)")
    return PackInfo(pack, sha256, name, version, digest, files)


def _open_and_scan(
    pack: Path,
    limits: PackLimits,
    dest: Path | None = None,
    expect_sha256: str | None = None,
    expect_what: str = "not {expected} as when it was checked: it changed while evalkit was reading it",
) -> PackInfo:
    """Hash the pack, then scan it, through one open file: the bytes checked are the bytes read.

    With `expect_sha256`, the pack's bytes must hash to it before a member is read.
    """
    pack = Path(pack)
    try:
        handle = pack.open("rb")
    except FileNotFoundError:
        raise ConfigError(f"suite pack {pack} not found") from None
    except OSError as exc:
        raise ConfigError(f"cannot read suite pack {pack}: {exc.strerror}") from None
    with handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise ConfigError(f"{pack} is not a file; give a pack made by `evalkit suite pack`")
        size = os.fstat(handle.fileno()).st_size
        if size > limits.max_pack_bytes:
            raise _bad(pack, f"{size} bytes, over the limit of {limits.max_pack_bytes}")
        sha256 = _sha256_stream(handle)
        if expect_sha256 is not None and sha256 != expect_sha256:
            expected = expect_what.format(expected=expect_sha256[:16] + "…")
            raise VerificationError(f"{pack.name} has sha256 {sha256[:16]}…, {expected}")
        handle.seek(0)
        return _scan(handle, pack, sha256, limits, dest)


# --------------------------------------------------------------------------------------------
# signing and verifying


def _statement(info: PackInfo) -> dict:
    return build_statement([resource(info.path.name, info.sha256)], PREDICATE_TYPE_SUITE_PACK, info.predicate)


def _check_names_pack(envelope: dict, payload: bytes, info: PackInfo, source: str) -> None:
    """The Statement in `payload` must name this pack's bytes and pack.json's suite, or nothing holds."""
    if envelope.get("payloadType") != PAYLOAD_TYPE_INTOTO:
        raise VerificationError(
            f"{source} has payloadType {envelope.get('payloadType')!r}, not {PAYLOAD_TYPE_INTOTO!r}: "
            "it is not an evalkit pack signature"
        )
    statement = parse_statement(payload, PREDICATE_TYPE_SUITE_PACK)
    signed = [s["digest"]["sha256"] for s in statement["subject"]]
    if info.sha256 not in signed:
        raise VerificationError(
            f"{info.path.name} has sha256 {info.sha256[:16]}…, but {source} covers "
            f"{', '.join(s[:16] + '…' for s in signed)}: the pack was changed after signing"
        )
    if statement["predicate"] != info.predicate:
        raise VerificationError(
            f"{source} vouches for {statement['predicate']}, but the pack's {MANIFEST_MEMBER} says "
            f"{info.predicate}; the signature is for another suite"
        )


def sign_pack(pack: Path, key: SigningKey, *, limits: PackLimits = PackLimits()) -> Path:
    """Sign `pack` into `<pack>.dsse.json`; if that file exists, add this key's signature to it.

    The pack is checked in full first: nobody should vouch for a pack that does not unpack.
    Returns the signature file's path.
    """
    pack = Path(pack)
    info = _open_and_scan(pack, limits)
    sig_path = signature_path(pack)
    if sig_path.exists():
        envelope = add_signature(read_envelope(sig_path), key)
        # The existing payload is unverified (we may not hold the first signer's key); our own
        # fresh signature yields it, and it must name exactly this pack before we co-sign it.
        payload = verify_envelope(envelope, [key.public_key], source=sig_path.name)
        try:
            _check_names_pack(envelope, payload, info, sig_path.name)
        except VerificationError as exc:
            raise VerificationError(f"{exc}; remove {sig_path.name} to sign this pack afresh") from None
    else:
        envelope = sign_envelope(statement_bytes(_statement(info)), PAYLOAD_TYPE_INTOTO, [key])
    write_envelope(sig_path, envelope)
    return sig_path


def _signers(envelope: dict, keys: Sequence[VerifyKey]) -> tuple[str, ...]:
    """Keyids of the trusted keys that each verify a signature on `envelope` on their own."""
    found = []
    for key in {k.keyid: k for k in keys}.values():
        try:
            verify_envelope(envelope, [key])
        except VerificationError:
            continue
        found.append(key.keyid)
    return tuple(found)


def verify_pack(
    pack: Path, keys: Sequence[VerifyKey], threshold: int = 1, *, limits: PackLimits = PackLimits()
) -> PackInfo:
    """Check the signature (by `threshold` trusted keys), then the pack's sha256, then every member.

    Raises VerificationError naming what failed; returns the pack's info with `signed_by` set.
    """
    pack = Path(pack)
    if not pack.is_file():
        raise ConfigError(f"suite pack {pack} not found")
    sig_path = signature_path(pack)
    if not sig_path.is_file():
        raise VerificationError(
            f"{sig_path.name} not found beside {pack.name}: the pack is unsigned (sign it with `evalkit suite sign`)"
        )
    envelope = read_envelope(sig_path)
    payload = verify_envelope(envelope, keys, threshold, source=sig_path.name)
    statement = parse_statement(payload, PREDICATE_TYPE_SUITE_PACK)
    if len(statement["subject"]) != 1:
        raise VerificationError(f"{sig_path.name} names {len(statement['subject'])} subjects; a pack signature names one")
    signed = statement["subject"][0]["digest"]["sha256"]
    changed = "but its signature covers {expected}: the pack was changed after signing"
    info = _open_and_scan(pack, limits, expect_sha256=signed, expect_what=changed)
    _check_names_pack(envelope, payload, info, sig_path.name)
    return replace(info, signed_by=_signers(envelope, keys))


# --------------------------------------------------------------------------------------------
# unpacking and the suite references `evalkit run` accepts


def _unpack(pack: Path, dest: Path, limits: PackLimits, expect_sha256: str | None) -> PackInfo:
    """Unpack into a fresh sibling temp folder, then rename it to `dest` (OSError if dest appeared)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".unpacking", dir=dest.parent))
    try:
        (tmp / SUITE_MEMBER_PREFIX.rstrip("/")).mkdir()
        info = _open_and_scan(pack, limits, tmp, expect_sha256)
        tmp.chmod(0o755)  # mkdtemp makes 0700 folders; an unpacked suite is meant to be read
        os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return info


def unpack_pack(pack: Path, dest: Path, *, limits: PackLimits = PackLimits()) -> Path:
    """Unpack `pack` into the new folder `dest` (pack.json and suite/); return the suite folder.

    Checks integrity against pack.json only; call `verify_pack` first to check who signed it.
    """
    dest = Path(dest)
    if dest.exists() or dest.is_symlink():
        raise ConfigError(f"{dest} already exists; unpack into a new folder")
    try:
        _unpack(Path(pack), dest, limits, None)
    except OSError as exc:
        raise ConfigError(f"cannot unpack into {dest}: {exc.strerror or exc}") from None
    return dest / SUITE_MEMBER_PREFIX.rstrip("/")


def _cache_intact(suite_dir: Path, info: PackInfo) -> bool:
    """True when `suite_dir` holds exactly the pack's files, regular and unchanged."""
    if suite_dir.is_symlink() or not suite_dir.is_dir():
        return False
    expected = {f.path: f for f in info.files}
    found: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(suite_dir, followlinks=False):
        for name in dirnames + filenames:
            full = Path(dirpath) / name
            mode = os.lstat(full).st_mode
            if stat.S_ISDIR(mode):
                continue
            rel = full.relative_to(suite_dir).as_posix()
            entry = expected.get(rel)
            if not stat.S_ISREG(mode) or entry is None or _sha256_path(full) != entry.sha256:
                return False
            found.add(rel)
    return found == set(expected)


def _cached_suite(pack: Path, info: PackInfo, folder: Path, limits: PackLimits) -> Path:
    suite_dir = folder / SUITE_MEMBER_PREFIX.rstrip("/")
    if not folder.is_symlink() and _cache_intact(suite_dir, info):
        return suite_dir
    if folder.exists() or folder.is_symlink():
        # Damaged or half-removed: move it aside first, so no reader ever sees a mix of two copies.
        stale = folder.with_name(f".{folder.name}.stale-{uuid.uuid4().hex[:8]}")
        os.rename(folder, stale)
        if stale.is_symlink() or not stale.is_dir():
            stale.unlink()
        else:
            shutil.rmtree(stale, ignore_errors=True)
    try:
        _unpack(pack, folder, limits, info.sha256)
    except OSError as exc:
        # Another run unpacked the same pack at the same moment: use its copy if it is whole.
        if _cache_intact(suite_dir, info):
            return suite_dir
        raise ConfigError(f"cannot unpack {pack.name} into {folder}: {exc.strerror or exc}") from None
    return suite_dir


def load_suite_ref(
    ref: str,
    *,
    trusted_keys: Sequence[VerifyKey] = (),
    require_signed: bool = False,
    cache_dir: Path,
    limits: PackLimits = PackLimits(),
) -> tuple[Path, dict | None]:
    """The suite folder for `ref` (a pack file, a folder or a bundled name) and, for a pack, what the
    report must record: {"pack_sha256", "signed_by", "pack_file", "suite_digest"}.

    A pack with a signature beside it is verified whenever trusted keys are given (a signature that
    does not verify is never ignored); with `require_signed`, only packs signed by a trusted key pass.
    Packs unpack once into cache_dir/packs/<sha256>/ and are re-checked file by file on every reuse.
    """
    if not is_pack_ref(ref):
        if require_signed:
            raise VerificationError(
                f"suite {ref} is not a signed pack; --require-signed-suites accepts only packs signed by a --trust key"
            )
        return resolve_suite_path(ref), None
    pack = Path(ref).expanduser()
    if not pack.is_file():
        raise ConfigError(f"suite pack {pack} not found")
    if require_signed and not trusted_keys:
        raise ConfigError("--require-signed-suites needs at least one --trust KEY (a .pub file) to check packs with")
    sig_path = signature_path(pack)
    if trusted_keys and sig_path.is_file():
        info = verify_pack(pack, trusted_keys, 1, limits=limits)
    elif require_signed:
        raise VerificationError(
            f"suite pack {pack.name} is unsigned (no {sig_path.name} beside it); "
            "--require-signed-suites accepts only packs signed by a --trust key"
        )
    else:
        info = _open_and_scan(pack, limits)
    suite_dir = _cached_suite(pack, info, Path(cache_dir) / "packs" / info.sha256, limits)
    suite = load_suite(suite_dir)
    if suite.digest != info.suite_digest:
        raise VerificationError(
            f"suite pack {pack.name}: the unpacked suite has digest {suite.digest[:16]}…, the pack "
            f"declares {info.suite_digest[:16]}…"
        )
    return suite_dir, {
        "pack_sha256": info.sha256,
        "signed_by": list(info.signed_by),
        "pack_file": pack.name,
        "suite_digest": info.suite_digest,
    }
