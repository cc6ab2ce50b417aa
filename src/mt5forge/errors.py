"""One error hierarchy for the whole toolkit.

Every class carries the exit code the task layer uses, so an expected failure (a bad config, a
missing engine) ends with a one-paragraph message and a non-zero exit instead of a traceback.
Third-party errors are translated at the boundary with ``raise ... from e``.
"""

from __future__ import annotations


class Mt5ForgeError(Exception):
    """Base of every expected failure. ``hint`` says what the user can do about it."""

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n{self.hint}"
        return self.message


class ConfigError(Mt5ForgeError):
    """mt5forge.toml, an MT5FORGE_* variable or a task option is wrong."""

    exit_code = 2


class ToolError(Mt5ForgeError):
    """An external program failed."""

    exit_code = 3


class ToolMissingError(ToolError):
    """An external program is not installed; the hint says how to install it."""

    exit_code = 4


class ToolTimeoutError(ToolError):
    """An external program ran past its timeout and was killed."""

    exit_code = 5


class EngineError(Mt5ForgeError):
    """No Docker Engine is reachable and none could be started here."""

    exit_code = 6


class BaseImageError(Mt5ForgeError):
    """The base image could not be pulled or built."""

    exit_code = 7


class RegistryError(Mt5ForgeError):
    """The local registry could not be started, stopped or reached."""

    exit_code = 8


class FetchError(Mt5ForgeError):
    """An artifact could not be downloaded."""

    exit_code = 10


class VerificationError(Mt5ForgeError):
    """An artifact, signature or image failed a check. Verification never returns False."""

    exit_code = 11


class CertError(Mt5ForgeError):
    """Bridge certificates could not be made or read."""

    exit_code = 12


class BuildError(Mt5ForgeError):
    """An image failed to build."""

    exit_code = 13


class RecordError(Mt5ForgeError):
    """A stage record is missing, unreadable, failing, or describes another image."""

    exit_code = 14


class StageError(Mt5ForgeError):
    """A stage was run without what it needs (the pipeline's own wiring)."""

    exit_code = 15


class GateError(Mt5ForgeError):
    """A gate (sbom, scan, verify) judged and refused. ``results`` holds what it found for
    every image, so the task can still print the report before it exits non-zero."""

    def __init__(self, message: str, *, hint: str | None = None, results: object = None) -> None:
        super().__init__(message, hint=hint)
        self.results = results


class SbomError(GateError):
    """An SBOM could not be made, does not validate, or disagrees with what is installed."""

    exit_code = 16


class ScanError(GateError):
    """The scan gate failed: findings the policy does not accept, or a database too old."""

    exit_code = 17
