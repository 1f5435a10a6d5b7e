"""From what a user types to a suite folder: bundled suite names, local paths and `:Nshot` refs.

The bundled suites are simply the folders under `evalkit.paths.bundled_suites_dir()`; there is no
registration step and nothing happens at import time. Listing reads only each `suite.yaml`, so
`evalkit suites` stays instant even though MMLU has 14,000 rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from difflib import get_close_matches
from pathlib import Path

from evalkit.errors import ConfigError
from evalkit.paths import bundled_suites_dir
from evalkit.suite.loader import SUITE_FILE, read_manifest

# "<name or path>:<N>shot"; the shot count overrides the suite's fewshot.default.
_SHOTS = re.compile(r"([0-9]+)shot")
# A Windows drive letter ("C:\suites\x") is not a shot suffix.
_DRIVE = re.compile(r"[A-Za-z]")


@dataclass(frozen=True)
class SuiteInfo:
    """What `evalkit suites` shows about one bundled suite, read from its suite.yaml alone."""

    name: str
    version: str
    kind: str
    description: str
    license: str
    path: Path


def list_bundled_suites() -> list[SuiteInfo]:
    """Every bundled suite, sorted by name. Raises SuiteError if a bundled suite.yaml is invalid."""
    root = bundled_suites_dir()
    if not root.is_dir():
        return []
    infos = []
    for folder in root.iterdir():
        if not (folder / SUITE_FILE).is_file():
            continue
        manifest = read_manifest(folder)
        infos.append(
            SuiteInfo(
                name=manifest.name,
                version=manifest.version,
                kind=manifest.kind,
                description=manifest.description,
                license=manifest.license,
                path=folder,
            )
        )
    return sorted(infos, key=lambda info: info.name)


def parse_suite_ref(ref: str) -> tuple[str, int | None]:
    """Split "mmlu:5shot" into ("mmlu", 5); "mmlu" -> ("mmlu", None); paths work too.

    Raises ConfigError when the part after the last ':' is not `<N>shot`.
    """
    if not ref:
        raise ConfigError("empty suite reference; write NAME or NAME:Nshot, e.g. mmlu:5shot")
    if ":" not in ref:
        return ref, None
    head, tail = ref.rsplit(":", 1)
    if _DRIVE.fullmatch(head) and tail[:1] in ("\\", "/"):
        return ref, None
    match = _SHOTS.fullmatch(tail)
    if not head or match is None:
        raise ConfigError(
            f"bad suite reference {ref!r}; write NAME or NAME:Nshot, e.g. mmlu:5shot or mmlu:0shot"
        )
    return head, int(match.group(1))


def resolve_suite_path(name_or_path: str) -> Path:
    """The folder of a suite: an existing folder holding suite.yaml wins, else a bundled name.

    Raises ConfigError naming the closest bundled suite when neither exists.
    """
    given = Path(name_or_path).expanduser()
    if given.is_file() and given.name == SUITE_FILE:
        return given.parent
    if given.is_dir():
        if (given / SUITE_FILE).is_file():
            return given
        # A bare name that is also a local folder without suite.yaml: still try the bundled ones.
        if name_or_path not in bundled_suite_names():
            raise ConfigError(f"folder {str(given)!r} has no {SUITE_FILE}; a suite is a folder holding one")
    names = bundled_suite_names()
    if name_or_path in names:
        return bundled_suites_dir() / name_or_path
    close = get_close_matches(name_or_path, names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ConfigError(f"unknown suite {name_or_path!r}{hint} (evalkit suites lists them)")


def bundled_suite_names() -> list[str]:
    """Names of the bundled suites (their folder names), without reading any suite.yaml."""
    root = bundled_suites_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / SUITE_FILE).is_file())
