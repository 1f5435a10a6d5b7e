"""One exception tree for every failure a user can cause or fix.

Every message is one line (or one line per problem, for validation) that says what is wrong and,
where there is a fix, how to make it. The CLI prints `error: <message>` and exits non-zero; it
never shows a traceback for an EvalkitError.
"""

from __future__ import annotations


class EvalkitError(Exception):
    """Base of every error evalkit raises on purpose."""

    exit_code = 2


class ConfigError(EvalkitError):
    """A run configuration or command-line value is invalid."""


class ModelError(EvalkitError):
    """A checkpoint cannot be found, is unsafe to load, or is damaged."""


class SuiteError(EvalkitError):
    """A suite is malformed. `problems` holds every problem found, each as `file:line: what`."""

    def __init__(self, suite: str, problems: list[str]):
        self.suite = suite
        self.problems = list(problems)
        shown = "\n  ".join(self.problems)
        super().__init__(f"suite {suite!r} has {len(self.problems)} problem(s):\n  {shown}")


class EngineError(EvalkitError):
    """The inference engine cannot serve a request (too long for the model, bad parameters)."""


class ReportError(EvalkitError):
    """A report folder is missing, incomplete or cannot be written."""


class KeyFileError(EvalkitError):
    """A key file is missing, of the wrong type, or its passphrase is wrong."""


class VerificationError(EvalkitError):
    """A signed report failed verification; the message names what failed."""

    exit_code = 1
