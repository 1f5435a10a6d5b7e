"""Model identity: a manifest of every file's name, size and SHA-256, and one digest over it all.

A report is bound to the exact weights it measured through this digest. The digest is the SHA-256
of the RFC 8785 canonical JSON of `{"format", "files": [{"path", "size", "sha256"}, ...]}`, so it
binds file *names* as well as contents: swapping `tokenizer.json` for another file of the same bytes
under a different name changes the identity (model-signing's root digest omits names; ours does
not). The folder's own name is not bound, so a checkpoint can be copied anywhere.

Checkpoints are gigabytes, so files are hashed in parallel, one file per worker thread (hashlib
releases the GIL on large buffers), each read exactly once in 8 MiB chunks. torch is not needed here:
`evalkit verify` can check a model without loading it.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rfc8785

from evalkit.errors import ModelError

MANIFEST_FORMAT = "evalkit.model-manifest/v1"
CHUNK_BYTES = 8 * 1024 * 1024

# Version-control and download-cache leftovers are not part of a model.
_EXCLUDED_DIRS = frozenset({".git", ".cache"})
_EXCLUDED_FILES = frozenset({".gitattributes"})


@dataclass(frozen=True)
class FileEntry:
    path: str  # relative to the manifest root, POSIX separators
    size: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "sha256": self.sha256}


@dataclass(frozen=True)
class ModelManifest:
    root_name: str  # folder (or file) name; informative only, not part of the digest
    files: tuple[FileEntry, ...]  # sorted by path
    digest: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": MANIFEST_FORMAT,
            "files": [entry.to_dict() for entry in self.files],
            "digest": self.digest,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, root_name: str = "") -> ModelManifest:
        """Rebuild a manifest read from a report; refuses one whose digest does not match its files."""
        if data.get("format") != MANIFEST_FORMAT:
            raise ModelError(
                f"model manifest has format {data.get('format')!r}; expected {MANIFEST_FORMAT!r}"
            )
        try:
            files = tuple(
                sorted(
                    (FileEntry(str(f["path"]), int(f["size"]), str(f["sha256"])) for f in data["files"]),
                    key=lambda e: e.path,
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"model manifest is malformed: {exc}") from None
        digest = manifest_digest(files)
        if data.get("digest") != digest:
            raise ModelError(
                f"model manifest digest {data.get('digest')!r} does not match its file list ({digest})"
            )
        return cls(root_name=str(data.get("root_name", root_name)), files=files, digest=digest)


def manifest_digest(files: tuple[FileEntry, ...] | list[FileEntry]) -> str:
    """SHA-256 hex of the canonical JSON of the format tag and the sorted file entries."""
    body = {
        "format": MANIFEST_FORMAT,
        "files": [entry.to_dict() for entry in sorted(files, key=lambda e: e.path)],
    }
    return hashlib.sha256(rfc8785.dumps(body)).hexdigest()


def _list_files(path: Path) -> list[tuple[str, Path]]:
    """(manifest name, real file to read) for every file of a checkpoint, sorted by name.

    A symlink is followed only when it stays inside the folder (a tokenizer shared by two
    names, say); one pointing outside could make the manifest describe files the folder does
    not hold, so it is refused.
    """
    if not path.exists() and not path.is_symlink():
        raise ModelError(f"{path} does not exist")
    if not path.is_dir():
        if not path.is_file():
            raise ModelError(f"{path} is not a regular file or folder")
        return [(path.name, path.resolve())]

    root = path.resolve()
    found: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        for name in sorted(dirnames):
            if (here / name).is_symlink():
                raise ModelError(
                    f"{here / name} is a symlink to a folder; copy the checkpoint with `cp -rL` "
                    "so it holds regular files"
                )
        dirnames[:] = sorted(d for d in dirnames if d not in _EXCLUDED_DIRS)
        for name in filenames:
            if name in _EXCLUDED_FILES:
                continue
            file = here / name
            rel = file.relative_to(root).as_posix()
            if file.is_symlink():
                target = file.resolve()
                if not target.is_relative_to(root) or not target.is_file():
                    raise ModelError(
                        f"{rel} in {path} is a symlink to {target}, outside the folder; copy the "
                        "checkpoint with `cp -rL` so it holds the files themselves"
                    )
                found.append((rel, target))
            elif file.is_file():
                found.append((rel, file))
            else:
                raise ModelError(f"{rel} in {path} is not a regular file (a pipe or device?)")
    found.sort(key=lambda item: item[0])
    return found


def _hash_file(file: Path, progress: Callable[[int], None] | None) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    buffer = bytearray(CHUNK_BYTES)  # reused: one 8 MiB buffer per worker, not one per chunk
    view = memoryview(buffer)
    with open(file, "rb", buffering=0) as handle:
        while True:
            n = handle.readinto(buffer)
            if not n:
                break
            digest.update(view[:n])
            size += n
            if progress is not None:
                progress(n)
    return size, digest.hexdigest()


def _hash_all(
    files: list[tuple[str, Path]],
    workers: int | None,
    progress: Callable[[int], None] | None,
) -> tuple[FileEntry, ...]:
    report: Callable[[int], None] | None = None
    if progress is not None:
        # Workers report from several threads; serialise so callers need not be thread-safe.
        lock = threading.Lock()
        user_progress = progress

        def locked(n: int) -> None:
            with lock:
                user_progress(n)

        report = locked

    if workers is None:
        workers = min(8, os.cpu_count() or 1)  # disks saturate long before 8 hashing threads
    workers = max(1, min(workers, len(files)))
    if workers == 1:
        results = [_hash_file(real, report) for _, real in files]
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="evalkit-hash") as pool:
            results = list(pool.map(lambda item: _hash_file(item[1], report), files))
    return tuple(FileEntry(name, size, sha) for (name, _), (size, sha) in zip(files, results, strict=True))


def build_manifest(
    path: Path,
    *,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> ModelManifest:
    """Hash a checkpoint folder (every regular file under it) or a single file such as a .gguf.

    `progress(nbytes)` is called as bytes are read, for a progress bar. Raises ModelError for a
    missing path, an empty folder, or a symlink leading outside the folder.
    """
    path = Path(path)
    files = _list_files(path)
    if not files:
        raise ModelError(f"{path} is an empty folder; it holds no model files")
    entries = _hash_all(files, workers, progress)
    return ModelManifest(root_name=path.name, files=entries, digest=manifest_digest(entries))


def verify_manifest(path: Path, expected: ModelManifest) -> list[str]:
    """Re-hash `path` and list how it differs from `expected`; an empty list means identical."""
    path = Path(path)
    try:
        files = _list_files(path)
    except ModelError as exc:
        return [str(exc)]
    actual = {entry.path: entry for entry in _hash_all(files, None, None)} if files else {}
    wanted = {entry.path: entry for entry in expected.files}
    problems: list[str] = []
    for name in sorted(wanted.keys() | actual.keys()):
        if name not in actual:
            problems.append(f"missing file: {name}")
        elif name not in wanted:
            problems.append(f"extra file: {name}")
        elif actual[name].sha256 != wanted[name].sha256 or actual[name].size != wanted[name].size:
            problems.append(
                f"changed file: {name} (sha256 {wanted[name].sha256[:12]}…, {wanted[name].size} bytes "
                f"expected; found {actual[name].sha256[:12]}…, {actual[name].size} bytes)"
            )
    return problems
