"""Load a suite folder into a validated, immutable `Suite`, reporting every problem at once.

A suite is data that arrives from outside: bundled with evalkit, written by a partner, or unpacked
from a signed pack. Before anything is rendered or run, this module checks every byte against the
digests `suite.yaml` locks, checks every row against what the manifest uses, and reports all
problems together as `file:line: what is wrong` in one `SuiteError`, so an author fixes them in one
pass instead of one per run. Nothing here executes suite content: YAML is read with the safe loader,
data files are plain CSV or JSONL.
"""

from __future__ import annotations

import csv
import hashlib
import inspect
import io
import json
import os
import re
import stat
import typing
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from difflib import get_close_matches
from pathlib import Path, PurePosixPath
from typing import Any

import rfc8785
import yaml
from pydantic import BaseModel, ValidationError

from evalkit.errors import SuiteError
from evalkit.perf import grid as perf_grid
from evalkit.suite.manifest import (
    SCORER_FIELDS,
    Choices,
    DataFile,
    FewShot,
    Harmful,
    Metric,
    Prompt,
    SuiteManifest,
    Target,
    template_fields,
)
from evalkit.suite.records import DataFileDigest, Sample, Suite

SUITE_FILE = "suite.yaml"
DATA_SUFFIXES = (".csv", ".jsonl")

# One broken column would otherwise yield one problem per row (14,000 for MMLU); past this many
# problems in one file the rest are counted, not listed.
MAX_PROBLEMS_PER_FILE = 20

# libyaml's loader is ~10x faster on MMLU's 114-entry manifest; both keep node marks (line numbers).
_YamlLoader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

Loc = tuple[Any, ...]
_Row = tuple[int, "dict[str, Any] | None"]


# --------------------------------------------------------------------------------------------
# public API


def load_suite(path: Path) -> Suite:
    """Load and validate the suite in folder `path` (or at `path` = .../suite.yaml).

    Raises SuiteError listing every problem found, each as `file:line: what is wrong`, with file
    relative to the suite folder.
    """
    suite, problems, label = _load(Path(path))
    if problems or suite is None:
        raise SuiteError(label, problems)
    return suite


def validate_suite(path: Path) -> list[str]:
    """Every problem of the suite at `path`, as `file:line: what is wrong`; empty when it is fine."""
    return _load(Path(path))[1]


def read_manifest(path: Path) -> SuiteManifest:
    """Parse and validate only `suite.yaml` (no data files): cheap, for listings.

    Raises SuiteError with `suite.yaml:line:` problems when the manifest itself is invalid.
    """
    root = _suite_root(Path(path))
    problems = _Problems()
    raw, lines = _read_yaml(root / SUITE_FILE, problems)
    manifest = _validate_manifest(raw, lines, problems) if raw is not None else None
    found = problems.close()
    if found or manifest is None:
        raise SuiteError(_label(raw, root), found)
    return manifest


# --------------------------------------------------------------------------------------------
# problems


class _Problems:
    """Collects `file:line: message` strings, capping each file at MAX_PROBLEMS_PER_FILE."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self._per_file: Counter[str] = Counter()

    def add(self, file: str, line: int | None, message: str) -> None:
        self._per_file[file] += 1
        if self._per_file[file] <= MAX_PROBLEMS_PER_FILE:
            where = f"{file}:{line}" if line is not None else file
            self.items.append(f"{where}: {message}")

    def count(self, file: str) -> int:
        return self._per_file[file]

    def close(self) -> list[str]:
        for file, n in self._per_file.items():
            if n > MAX_PROBLEMS_PER_FILE:
                self.items.append(f"{file}: ... and {n - MAX_PROBLEMS_PER_FILE} more problem(s)")
        return self.items


# --------------------------------------------------------------------------------------------
# suite.yaml: YAML with line numbers, then the pydantic schema


def _read_yaml(file: Path, problems: _Problems) -> tuple[Any, dict[Loc, int]]:
    """The parsed document and the 1-based line of every mapping key and sequence item, by loc."""
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        problems.add(
            SUITE_FILE, None, f"not found in {file.parent}: a suite is a folder holding {SUITE_FILE}"
        )
        return None, {}
    except UnicodeDecodeError as exc:
        problems.add(SUITE_FILE, _line_at(file.read_bytes(), exc.start), "not valid UTF-8")
        return None, {}
    loader = _YamlLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            problems.add(SUITE_FILE, 1, "empty file; see evalkit/suite/manifest.py for the format")
            return None, {}
        raw = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        context = ""
        if exc.context:
            # e.g. an unclosed "[": the problem shows where it was noticed, the context where it began.
            started = f" on line {exc.context_mark.line + 1}" if exc.context_mark else ""
            context = f" ({exc.context}{started})"
        problems.add(SUITE_FILE, mark.line + 1 if mark else 1, f"invalid YAML: {exc.problem}{context}")
        return None, {}
    except yaml.YAMLError as exc:
        problems.add(SUITE_FILE, 1, f"invalid YAML: {exc}")
        return None, {}
    finally:
        loader.dispose()
    lines: dict[Loc, int] = {(): node.start_mark.line + 1}
    _index_lines(node, (), lines, problems, set())
    if not isinstance(raw, dict):
        problems.add(SUITE_FILE, lines[()], "the top level must be a mapping of keys (format, name, ...)")
        return None, lines
    return raw, lines


def _index_lines(
    node: yaml.Node, loc: Loc, lines: dict[Loc, int], problems: _Problems, seen: set[int]
) -> None:
    # An alias points at a node already indexed; not descending again keeps a hostile document of
    # nested aliases ("billion laughs") linear here. Its keys fall back to the alias's own line.
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first_line: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            key: Any = key_node.value
            line = key_node.start_mark.line + 1
            if key in first_line:
                problems.add(
                    SUITE_FILE,
                    line,
                    f"duplicate key {key!r} (first on line {first_line[key]}); YAML keeps only the last",
                )
            first_line.setdefault(key, line)
            lines[loc + (key,)] = line
            _index_lines(value_node, loc + (key,), lines, problems, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[loc + (i,)] = item.start_mark.line + 1
            _index_lines(item, loc + (i,), lines, problems, seen)


def _line(lines: dict[Loc, int], loc: Loc) -> int:
    """The line of `loc`, or of its nearest ancestor that has one (a missing key: its parent)."""
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return 1


# Cross-field errors of SuiteManifest._consistent have an empty loc; point them at the key they
# are about rather than at line 1.
_ROOT_MESSAGE_LOCS: tuple[tuple[str, Loc], ...] = (
    ("scorer ", ("scorer",)),
    ("metric names", ("metrics",)),
    ("metric ", ("metrics",)),
    ("a multiple_choice suite", ("kind",)),
    ("the exact_match scorer", ("scorer",)),
    ("a generation suite", ("choices",)),
    ("fewshot.default", ("fewshot", "default")),
    ("a performance suite", ("kind",)),
    ("a performance block", ("performance",)),
    ("a prompt is required", ("kind",)),
    ("no data file has the eval_split", ("eval_split",)),
    ("no data file has the few-shot split", ("fewshot", "split")),
)


def _validate_manifest(raw: dict, lines: dict[Loc, int], problems: _Problems) -> SuiteManifest | None:
    try:
        return SuiteManifest.model_validate(raw)
    except ValidationError as exc:
        found: list[tuple[int, str]] = []
        for error in exc.errors(include_url=False):
            found.extend(_describe(error, lines))
        for line, message in sorted(found, key=lambda item: item[0]):
            problems.add(SUITE_FILE, line, message)
        return None


def _describe(error: Any, lines: dict[Loc, int]) -> list[tuple[int, str]]:
    """One pydantic error as (line, message) pairs; the root validator may pack several."""
    loc: Loc = tuple(error["loc"])
    kind, msg = error["type"], error["msg"]
    if kind == "extra_forbidden":
        key, parent = loc[-1], loc[:-1]
        text = f"unknown key {key!r}"
        model = _model_at(parent)
        if model is not None:
            close = get_close_matches(str(key), list(model.model_fields), n=1)
            text += (
                f"; did you mean {close[0]!r}?" if close else f"; allowed: {', '.join(model.model_fields)}"
            )
        return [(_line(lines, loc), _prefixed(parent, text))]
    if kind == "missing":
        return [(_line(lines, loc), _prefixed(loc[:-1], f"missing required key {loc[-1]!r}"))]
    msg = msg.removeprefix("Value error, ")
    if not loc:
        found = []
        # The root validator joins its problems with "; ", which a problem may itself contain:
        # split only where a known problem begins.
        starts = "|".join(re.escape(prefix) for prefix, _ in _ROOT_MESSAGE_LOCS)
        for part in re.split(f"; (?=(?:{starts}))", msg):
            where = next((at for prefix, at in _ROOT_MESSAGE_LOCS if part.startswith(prefix)), ())
            found.append((_line(lines, where), part))
        return found
    value = error.get("input")
    if isinstance(value, (str, int, float, bool)) or value is None:
        shown = repr(value)
        msg += f" (got {shown[:60] + '…' if len(shown) > 60 else shown})"
    return [(_line(lines, loc), _prefixed(loc, msg))]


def _prefixed(loc: Loc, text: str) -> str:
    where = _format_loc(loc)
    return f"{where}: {text}" if where else text


def _format_loc(loc: Loc) -> str:
    """("data", 3, "sha256") -> "data[3].sha256"."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """The schema model that validates the mapping at `loc`, to suggest its keys."""
    model: type[BaseModel] = SuiteManifest
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        sub = _model_in(field.annotation) if field is not None else None
        if sub is None:
            return None
        model = sub
    return model


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


# --------------------------------------------------------------------------------------------
# what the data checks need, taken part by part so one bad part does not hide the others' checks


@dataclass
class _Plan:
    kind: str | None
    data: list[tuple[int, DataFile]]  # (index in suite.yaml, entry) for every valid entry
    all_data_valid: bool
    prompt: Prompt | None
    choices: Choices | None
    target: Target | None
    fewshot: FewShot | None
    harmful: Harmful | None
    metrics: list[Metric]
    group_by: list[str]
    id_field: str | None
    eval_split: str
    license_file: str
    source: str | None
    scorer: str | None = None

    @classmethod
    def from_raw(cls, raw: dict) -> _Plan:
        entries = raw.get("data") if isinstance(raw.get("data"), list) else []
        data = [(i, d) for i, d in enumerate(_part(DataFile, e) for e in entries) if d is not None]
        metrics = raw.get("metrics") if isinstance(raw.get("metrics"), list) else []
        group_by = raw.get("group_by") if isinstance(raw.get("group_by"), list) else []
        return cls(
            kind=_str_or(raw.get("kind"), None),
            data=data,
            all_data_valid=len(data) == len(entries),
            prompt=_part(Prompt, raw.get("prompt")),
            choices=_part(Choices, raw.get("choices")),
            target=_part(Target, raw.get("target")),
            fewshot=_part(FewShot, raw.get("fewshot")),
            harmful=_part(Harmful, raw.get("harmful")),
            metrics=[m for m in (_part(Metric, m) for m in metrics) if m is not None],
            group_by=[g for g in group_by if isinstance(g, str)],
            id_field=_str_or(raw.get("id_field"), None),
            eval_split=_str_or(raw.get("eval_split"), "test"),
            license_file=_str_or(raw.get("license_file"), "LICENSE"),
            source=_str_or(raw.get("source"), None),
            scorer=_str_or(raw.get("scorer"), None),
        )

    def required_fields(self, eval_rows: bool) -> dict[str, str]:
        """Field -> why it is needed, for a row of the eval split (eval_rows) or of another split."""
        need: dict[str, str] = {}
        if self.prompt is not None:
            for name in template_fields(self.prompt.description):
                need.setdefault(name, "prompt.description uses it")
            for name in template_fields(self.prompt.template):
                need.setdefault(name, "prompt.template uses it")
        if self.choices is not None:
            for name in self.choices.fields or ():
                need.setdefault(name, "choices.fields lists it")
            if self.choices.field is not None:
                need.setdefault(self.choices.field, "choices.field names it")
        if self.target is not None:
            need.setdefault(self.target.field, "target.field names it")
        if self.id_field is not None:
            need.setdefault(self.id_field, "id_field names it")
        if self.kind == perf_grid.KIND and eval_rows:
            for name in (perf_grid.BATCH_FIELD, perf_grid.LENGTH_FIELD):
                need.setdefault(name, "a performance suite's grid point needs it")
        if self.fewshot is not None and self.fewshot.match is not None:
            need.setdefault(self.fewshot.match, "fewshot.match names it")
        # Grouping, metric filters and the harmful flag apply to evaluated samples only, so a
        # few-shot split need not carry them.
        if eval_rows:
            for name in self.group_by:
                need.setdefault(name, "group_by lists it")
            for metric in self.metrics:
                for name in metric.where:
                    need.setdefault(name, f"metric {metric.name!r} filters on it")
            if self.harmful is not None and self.harmful.field is not None:
                need.setdefault(self.harmful.field, "harmful.field names it")
            for name in SCORER_FIELDS.get(self.scorer or "", ()):
                need.setdefault(name, f"the {self.scorer} scorer reads it")
        return need


def _part(model: type[BaseModel], value: Any) -> Any:
    """`value` validated as `model`, else None. Unknown keys (already reported) are dropped first,
    so a misspelt key does not also switch off the row checks that the rest of the part drives."""
    if not isinstance(value, dict):
        return None
    try:
        return model.model_validate({k: v for k, v in value.items() if k in model.model_fields})
    except ValidationError:
        return None


def _str_or(value: Any, default: Any) -> Any:
    return value if isinstance(value, str) else default


# --------------------------------------------------------------------------------------------
# paths and files


def _suite_root(path: Path) -> Path:
    return path.parent if path.name == SUITE_FILE and path.is_file() else path


def _label(raw: Any, root: Path) -> str:
    name = raw.get("name") if isinstance(raw, dict) else None
    return name if isinstance(name, str) and name else (root.name or str(root))


def _inside(root: Path, rel: str) -> tuple[Path | None, str]:
    """The file `rel` names, or None and why it is refused: data must stay inside the suite folder."""
    if not rel:
        return None, "an empty path"
    if "\\" in rel:
        return None, f"{rel!r} uses backslashes; write paths with '/'"
    pure = PurePosixPath(rel)
    if pure.is_absolute() or re.match(r"^[A-Za-z]:", rel):
        return None, f"{rel!r} is absolute; paths are relative to the suite folder"
    if ".." in pure.parts:
        return None, f"{rel!r} contains '..'; files must stay inside the suite folder"
    full = root.joinpath(*pure.parts)
    if not _resolves_inside(full, root.resolve()):
        return None, f"{rel!r} is a symlink leading out of the suite folder"
    return full, ""


def _resolves_inside(path: Path, real_root: Path) -> bool:
    try:
        return path.resolve().is_relative_to(real_root)
    except (OSError, RuntimeError):  # a symlink loop: refused like any link that leads nowhere safe
        return False


def _sha256_file(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _line_at(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _suite_files(root: Path, problems: _Problems) -> list[DataFileDigest]:
    """Every regular file under root (symlinks that stay inside count), sorted by POSIX path."""
    real_root = root.resolve()
    files: list[DataFileDigest] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in sorted(dirnames) + sorted(filenames):
            full = Path(dirpath) / name
            rel = full.relative_to(root).as_posix()
            mode = os.lstat(full).st_mode
            if stat.S_ISLNK(mode):
                if not _resolves_inside(full, real_root):
                    problems.add(
                        rel, None, "a symlink leading out of the suite folder; copy the file in instead"
                    )
                elif full.is_file():
                    files.append(DataFileDigest(rel, *_sha256_file(full)))
                # a symlinked folder inside the suite: its files are already counted at their real path
            elif stat.S_ISREG(mode):
                files.append(DataFileDigest(rel, *_sha256_file(full)))
    return sorted(files, key=lambda f: f.path)


def suite_digest(name: str, version: str, files: list[DataFileDigest] | tuple[DataFileDigest, ...]) -> str:
    """The digest the Suite docstring defines: sha256 of RFC 8785 JSON of name, version, files."""
    document = {
        "name": name,
        "version": version,
        "files": [{"path": f.path, "sha256": f.sha256, "size": f.size} for f in files],
    }
    return hashlib.sha256(rfc8785.dumps(document)).hexdigest()


# --------------------------------------------------------------------------------------------
# data files


def _open_csv(text: str, shown: str, problems: _Problems) -> tuple[list[str] | None, Iterator[_Row]]:
    """The header (None when unreadable, already reported) and an iterator over the data rows."""
    # strict: an unclosed quote is an error, not a value that silently swallows the rest of the file.
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        problems.add(shown, 1, "empty file; a CSV data file needs a header row")
        return None, iter(())
    except csv.Error as exc:
        problems.add(shown, 1, f"malformed CSV header: {exc}")
        return None, iter(())
    duplicates = sorted(name for name, n in Counter(header).items() if n > 1)
    if duplicates:
        problems.add(shown, 1, f"the header repeats column(s) {', '.join(map(repr, duplicates))}")
    return header, _csv_body(reader, header, shown, problems)


def _csv_body(reader: Any, header: list[str], shown: str, problems: _Problems) -> Iterator[_Row]:
    """(line, row) per data row; row is None when broken (already reported).

    line is the physical line where the row starts: a quoted value may span several lines, and
    reader.line_num counts the lines consumed so far.
    """
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            problems.add(shown, start, f"malformed CSV: {exc}")
            return  # the reader's position is unreliable after a syntax error
        if not row:
            continue  # a blank line, e.g. at the end of the file
        if len(row) != len(header):
            problems.add(shown, start, f"the row has {len(row)} values, the header has {len(header)}")
            yield start, None
            continue
        yield start, dict(zip(header, row, strict=True))


def _jsonl_rows(text: str, shown: str, problems: _Problems) -> Iterator[_Row]:
    """(line, row) per non-blank line; row is None when the line is not a JSON object (reported)."""
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.add(shown, number, f"invalid JSON: {exc.msg} (column {exc.colno})")
            yield number, None
            continue
        if not isinstance(row, dict):
            problems.add(shown, number, f"each line must be a JSON object, not {type(row).__name__}")
            yield number, None
            continue
        yield number, row


def _as_index(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"[0-9]+", value):
        return int(value)
    return None


def _group_key(value: Any) -> Any:
    """A hashable stand-in for a JSON value, so rows can be grouped by fewshot.match."""
    return (
        value
        if isinstance(value, (str, int, float, bool)) or value is None
        else json.dumps(value, sort_keys=True)
    )


class _Reader:
    """Reads the data files of one suite into samples, checking each row as it goes."""

    def __init__(self, root: Path, plan: _Plan, lines: dict[Loc, int], problems: _Problems):
        self.root, self.plan, self.lines, self.problems = root, plan, lines, problems
        self.samples: list[Sample] = []
        self.first_seen: dict[str, str] = {}  # sample id -> source
        self.complete = plan.all_data_valid  # False once any file's rows are refused

    def read_all(self) -> None:
        paths_seen: dict[str, int] = {}
        for index, entry in self.plan.data:
            yaml_line = _line(self.lines, ("data", index, "path"))
            normal = PurePosixPath(entry.path).as_posix()
            if normal in paths_seen:
                self.problems.add(
                    SUITE_FILE, yaml_line, f"{entry.path} is listed twice (also data[{paths_seen[normal]}])"
                )
                continue
            paths_seen[normal] = index
            if not self._read_file(index, entry, yaml_line):
                self.complete = False

    def _read_file(self, index: int, entry: DataFile, yaml_line: int) -> bool:
        """Check and read one data file; False when its rows are refused."""
        full, why = _inside(self.root, entry.path)
        if full is None:
            self.problems.add(SUITE_FILE, yaml_line, f"data[{index}].path: {why}")
            return False
        suffix = PurePosixPath(entry.path).suffix
        if suffix not in DATA_SUFFIXES:
            self.problems.add(
                SUITE_FILE,
                yaml_line,
                f"{entry.path}: data files are .csv or .jsonl, not {suffix or 'no suffix'!r}",
            )
            return False
        if not full.is_file():
            self.problems.add(SUITE_FILE, yaml_line, f"{entry.path} not found in the suite folder")
            return False
        data = full.read_bytes()
        # The lock is checked before a single row is parsed: rows from changed bytes never become samples.
        actual = hashlib.sha256(data).hexdigest()
        if actual != entry.sha256:
            self.problems.add(
                SUITE_FILE,
                _line(self.lines, ("data", index, "sha256")),
                f"{entry.path} has sha256 {actual[:12]}…, suite.yaml declares {entry.sha256[:12]}…: "
                "the data changed since the suite was locked "
                "(restore it, or run scripts/build_suites.py for bundled suites)",
            )
            return False
        try:
            # utf-8-sig: a byte-order mark from a spreadsheet export would otherwise rename the first column.
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            self.problems.add(entry.path, _line_at(data, exc.start), "not valid UTF-8")
            return False
        return self._read_rows(entry, text)

    def _read_rows(self, entry: DataFile, text: str) -> bool:
        shown, problems = PurePosixPath(entry.path).as_posix(), self.problems
        required = self.plan.required_fields(eval_rows=entry.split == self.plan.eval_split)
        constants = entry.fields
        conflicts_reported: set[str] = set()
        before = problems.count(shown)
        if shown.endswith(".csv"):
            header, rows = _open_csv(text, shown, problems)
            if header is None:
                return False
            # CSV columns are the same for every row: check them once, on the header line.
            self._check_columns(shown, 1, header, constants, required, conflicts_reported, "column")
        else:
            header, rows = None, _jsonl_rows(text, shown, problems)
        stem = PurePosixPath(shown).stem
        for row_number, (line, row) in enumerate(rows, start=1):
            if row is None:
                continue
            if header is None:
                self._check_columns(shown, line, row, constants, required, conflicts_reported, "field")
            fields = dict(row)
            fields.update(constants)
            source = f"{shown}:{line}"
            self._check_values(fields, shown, line)
            sample_id = self._sample_id(fields, stem, row_number, source)
            if sample_id is not None:
                self.samples.append(Sample(id=sample_id, split=entry.split, fields=fields, source=source))
        return problems.count(shown) == before

    def _check_columns(
        self,
        shown: str,
        line: int,
        keys: Any,
        constants: dict[str, str],
        required: dict[str, str],
        conflicts_reported: set[str],
        noun: str,
    ) -> None:
        keys = set(keys)
        for name in sorted(keys & constants.keys()):
            if name not in conflicts_reported:
                conflicts_reported.add(name)
                self.problems.add(
                    shown,
                    line,
                    f"{noun} {name!r} is also a constant field of this file in suite.yaml; rename one",
                )
        available = keys | constants.keys()
        for name, why in required.items():
            if name not in available:
                have = ", ".join(sorted(available)) or "none"
                self.problems.add(shown, line, f"no {noun} {name!r} ({why}); {noun}s here: {have}")

    def _check_values(self, fields: dict[str, Any], shown: str, line: int) -> None:
        """Choices and target of one row: what the prompt builder would otherwise fail on mid-run."""
        if self.plan.kind == perf_grid.KIND:
            for problem in perf_grid.point_problems(fields):
                self.problems.add(shown, line, problem)
        choices, target = self.plan.choices, self.plan.target
        texts: list[str] | None = None  # the row's choices, when they can be known
        if choices is not None and choices.static is not None:
            texts = list(choices.static)
        elif choices is not None and choices.fields is not None:
            present = [fields[name] for name in choices.fields if name in fields]
            for name in choices.fields:
                if name in fields and not _is_text(fields[name]):
                    self.problems.add(
                        shown, line, f"choice field {name!r} must be text, not {_short(fields[name])}"
                    )
            if len(present) == len(choices.fields) and all(map(_is_text, present)):
                texts = [str(v) for v in present]
        elif choices is not None and choices.field is not None and choices.field in fields:
            value = fields[choices.field]
            if isinstance(value, list) and value and all(map(_is_text, value)):
                texts = [str(v) for v in value]
            else:
                self.problems.add(
                    shown,
                    line,
                    f"choices.field {choices.field!r} must be a non-empty list of texts (from a JSONL row), "
                    f"not {_short(value)}",
                )
        if target is None or target.field not in fields:
            return
        value = fields[target.field]
        if target.type == "index":
            index = _as_index(value)
            if index is None:
                self.problems.add(
                    shown, line, f"target {target.field!r} is {_short(value)}, not a 0-based choice index"
                )
            elif index < 0 or (texts is not None and index >= len(texts)):
                self.problems.add(
                    shown,
                    line,
                    f"target {target.field!r} is {index}, out of range for {len(texts or ())} choices "
                    f"(0..{len(texts or ()) - 1})",
                )
        elif target.type == "labels":
            labels_ok = isinstance(value, list) and all(v in (0, 1) and not isinstance(v, bool) for v in value)
            if not labels_ok or 1 not in value:
                self.problems.add(
                    shown, line, f"target {target.field!r} must be a list of 0/1 labels with a 1, not {_short(value)}"
                )
            elif texts is not None and len(value) != len(texts):
                self.problems.add(
                    shown, line, f"target {target.field!r} has {len(value)} labels for {len(texts)} choices"
                )
        elif not _is_text(value):
            self.problems.add(shown, line, f"target {target.field!r} must be text, not {_short(value)}")
        elif self.plan.kind == "multiple_choice" and texts is not None:
            # A text target names its choice; the prompt builder matches them with surrounding space stripped.
            if str(value).strip() not in {t.strip() for t in texts}:
                self.problems.add(
                    shown, line, f"target {target.field!r} is {_short(value)}, which is none of the choices"
                )

    def _sample_id(self, fields: dict[str, Any], stem: str, row_number: int, source: str) -> str | None:
        """The row's id (id_field, else `<file stem>:<row number>`); None when refused (reported)."""
        shown, _, line_text = source.rpartition(":")
        line = int(line_text)
        id_field = self.plan.id_field
        if id_field is None:
            sample_id = f"{stem}:{row_number}"
        else:
            if id_field not in fields:
                return None  # already reported as a missing field
            value = fields[id_field]
            if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
                self.problems.add(
                    shown,
                    line,
                    f"id_field {id_field!r} must be a non-empty string or integer, not {_short(value)}",
                )
                return None
            sample_id = str(value)
        if sample_id in self.first_seen:
            self.problems.add(
                shown, line, f"duplicate sample id {sample_id!r} (first at {self.first_seen[sample_id]})"
            )
            return None
        self.first_seen[sample_id] = source
        return sample_id

    def check_across_rows(self) -> None:
        """Checks that need every row: enough few-shot rows, metrics and harmful values that match."""
        plan, problems = self.plan, self.problems
        if not self.complete:
            return  # counts over refused files would only produce misleading follow-on problems
        eval_rows = [s for s in self.samples if s.split == plan.eval_split]
        if not eval_rows:
            problems.add(
                SUITE_FILE,
                _line(self.lines, ("eval_split",)),
                f"the eval split {plan.eval_split!r} has no rows",
            )
            return
        if plan.fewshot is not None:
            self._check_fewshot(plan.fewshot, eval_rows)
        for i, metric in enumerate(plan.metrics):
            if metric.where and not any(
                all(s.fields.get(k) == v for k, v in metric.where.items()) for s in eval_rows
            ):
                problems.add(
                    SUITE_FILE,
                    _line(self.lines, ("metrics", i, "where")),
                    f"metric {metric.name!r} selects no eval sample (where {metric.where})",
                )
        # A misspelt harmful value would silently mark nothing as harmful, and harmful completions
        # would then be printed in reports: refuse it.
        harmful = plan.harmful
        if harmful is not None and harmful.field is not None and not harmful.values:
            problems.add(
                SUITE_FILE,
                _line(self.lines, ("harmful",)),
                f"harmful.field is {harmful.field!r} but harmful.values is empty, so no sample would count "
                "as harmful; list the values (or drop field: every sample is harmful)",
            )
        if harmful is not None and harmful.field is not None:
            present = {_group_key(s.fields.get(harmful.field)) for s in eval_rows}
            for value in harmful.values:
                if value not in present:
                    problems.add(
                        SUITE_FILE,
                        _line(self.lines, ("harmful", "values")),
                        f"harmful.values: no eval sample has {harmful.field} = {value!r}",
                    )

    def _check_fewshot(self, fewshot: FewShot, eval_rows: list[Sample]) -> None:
        shots = [s for s in self.samples if s.split == fewshot.split]
        # A sample is never its own shot, so drawing from the eval split needs one row more.
        needed = fewshot.max + (1 if fewshot.split == self.plan.eval_split else 0)
        yaml_line = _line(self.lines, ("fewshot", "max"))
        if fewshot.match is None:
            if len(shots) < needed:
                self.problems.add(
                    SUITE_FILE,
                    yaml_line,
                    f"fewshot.max is {fewshot.max} but split {fewshot.split!r} has only {len(shots)} rows",
                )
            return
        field = fewshot.match
        available = Counter(_group_key(s.fields.get(field)) for s in shots if field in s.fields)
        reported: set[Any] = set()
        for sample in eval_rows:
            if field not in sample.fields:
                continue
            key = _group_key(sample.fields[field])
            if available[key] < needed and key not in reported:
                reported.add(key)
                file, _, line = sample.source.rpartition(":")
                self.problems.add(
                    file,
                    int(line),
                    f"fewshot.max is {fewshot.max} but split {fewshot.split!r} has {available[key]} "
                    f"rows with {field} = {sample.fields[field]!r}",
                )


def _is_text(value: Any) -> bool:
    """A value a template or a choice can show: JSONL numbers are rendered as text too."""
    return isinstance(value, (str, int, float)) and not isinstance(value, bool)


def _short(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:59] + "…"


# --------------------------------------------------------------------------------------------
# the whole suite


def _load(path: Path) -> tuple[Suite | None, list[str], str]:
    root = _suite_root(path)
    problems = _Problems()
    if not (root / SUITE_FILE).is_file():
        problems.add(str(root / SUITE_FILE), None, f"not found; a suite is a folder holding {SUITE_FILE}")
        return None, problems.close(), root.name or str(root)
    raw, lines = _read_yaml(root / SUITE_FILE, problems)
    label = _label(raw, root)
    if raw is None:
        return None, problems.close(), label
    manifest = _validate_manifest(raw, lines, problems)
    plan = _Plan.from_raw(raw)

    reader = _Reader(root, plan, lines, problems)
    reader.read_all()
    reader.check_across_rows()

    license_line = _line(lines, ("license_file",) if "license_file" in raw else ("license",))
    _check_declared_file(
        root,
        plan.license_file,
        "license_file",
        license_line,
        "the licence text must travel with the data",
        problems,
    )
    if plan.source is not None:
        _check_declared_file(
            root,
            plan.source,
            "source",
            _line(lines, ("source",)),
            "it records where the data came from",
            problems,
        )

    files = _suite_files(root, problems)
    found = problems.close()
    if found or manifest is None:
        return None, found, label
    digest = suite_digest(manifest.name, manifest.version, files)
    suite = Suite(
        manifest=manifest,
        root=root.resolve(),
        digest=digest,
        files=tuple(files),
        samples=tuple(reader.samples),
    )
    return suite, [], label


def _check_declared_file(root: Path, rel: str, key: str, line: int, why: str, problems: _Problems) -> None:
    full, refused = _inside(root, rel)
    if full is None:
        problems.add(SUITE_FILE, line, f"{key}: {refused}")
    elif not full.is_file():
        problems.add(SUITE_FILE, line, f"{key}: {rel} not found in the suite folder ({why})")
