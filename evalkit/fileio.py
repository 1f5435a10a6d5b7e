"""Reading and writing the files evalkit hands to other people: strictly and atomically.

Shared by the report writer, the signing layer and suite packs, so a signed envelope, a report and
a pack manifest are all written the same durable way and parsed with the same strictness.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

# Files evalkit writes are meant to be shared: readable by all (mkstemp alone would leave 0600).
SHARED_FILE_MODE = 0o644


class DuplicateKeyError(ValueError):
    """A JSON object names the same key twice: two readers could see two different documents."""


def reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """`object_pairs_hook` for json.loads that refuses duplicate keys."""
    result: dict[str, Any] = {}
    for name, value in pairs:
        if name in result:
            raise DuplicateKeyError(repr(name))
        result[name] = value
    return result


def write_chunks_atomic(path: Path, chunks: Iterable[bytes], mode: int = SHARED_FILE_MODE) -> None:
    """Write to a temporary file in the same folder, fsync, rename over `path`, fsync the folder:
    a reader sees the old file or the new one, never half of one, even after a crash."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if os.name == "posix":
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
