"""Writing report files safely and deterministically."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, TextIO

import rfc8785


# Reports are meant to be shared: readable by all (mkstemp would leave them 0600).
REPORT_FILE_MODE = 0o644


def json_text(data: Any) -> str:
    """The one way evalkit renders a JSON file: sorted keys, 2-space indent, UTF-8, final newline.

    NaN and infinities are refused: JSON cannot carry them and a verifier could not recompute them.
    """
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


def canonical(data: Any) -> Any:
    """`data` as it reads back from its RFC 8785 form (e.g. 0.0 becomes 0).

    The signed Statement is RFC 8785 JSON; a report normalised this way renders to the same
    report.json before signing and after verification, byte for byte.
    """
    return json.loads(rfc8785.dumps(data))


def json_line(data: Any) -> str:
    """One compact JSON line (samples.jsonl): sorted keys, shortest round-trip floats."""
    return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False) + "\n"


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over `path`."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, REPORT_FILE_MODE)
        with os.fdopen(fd, "wb") as handle:
            handle.write(raw)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_lines_atomic(path: Path, lines: Iterable[str]) -> str:
    """Write lines atomically; return the sha256 of the bytes written."""
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, REPORT_FILE_MODE)
        with os.fdopen(fd, "wb") as handle:
            for line in lines:
                raw = line.encode("utf-8")
                digest.update(raw)
                handle.write(raw)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Journal:
    """Append-only per-sample log, flushed after every row, so work done survives a crash."""

    def __init__(self, path: Path):
        self.path = path
        self._handle: TextIO = path.open("a", encoding="utf-8")

    def append(self, row: dict[str, Any]) -> None:
        self._handle.write(json_line(row))
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path.name}:{number}: not valid JSON ({exc.msg})") from None
    return rows
