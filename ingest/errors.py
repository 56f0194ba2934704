"""The project's own exceptions.

Every message names members, columns, rules and what to do next, never a value
of the data nor a key. Third-party exceptions (which may quote data) are
translated at each stage boundary by :func:`guard`, and their chain is cut so a
traceback cannot carry a value either.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


class IngestError(Exception):
    """Base class: a clear, value-free message and a stable exit code."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(IngestError):
    """The command or its arguments are wrong."""

    exit_code = 2


class MediaError(IngestError):
    """The delivery could not be opened: missing, corrupt, truncated, hostile."""

    exit_code = 3


class ToolStalled(IngestError):
    """A child tool (gpg, 7-Zip, mdbtools) made no progress for the set time and was stopped."""

    exit_code = 3


class ChecksumError(MediaError):
    """A checksum file beside the data disagrees with a member."""


class DecryptionError(IngestError):
    """Wrong key or password, tampered or truncated ciphertext."""

    exit_code = 4


class KeyringError(IngestError):
    """A key is missing, unreadable or not authorised."""

    exit_code = 5


class ReadError(IngestError):
    """A member could not be read as a table."""

    exit_code = 6


class SchemaMismatchError(ReadError):
    """The table's columns do not match the schema."""


class ValidationRejected(IngestError):
    """The delivery as a whole was rejected (for example too many bad rows)."""

    exit_code = 7


class OutputError(IngestError):
    """Outputs could not be written, or an existing output failed verification."""

    exit_code = 8


class AlreadyProcessed(IngestError):
    """The delivery's outputs already exist; use --force to replace them."""

    exit_code = 0


@contextlib.contextmanager
def guard(stage: str, error: type[IngestError] = IngestError) -> Iterator[None]:
    """Translate any foreign exception raised in ``stage`` into ``error``.

    The foreign message is dropped (it may quote data) and the chain is cut, so
    neither a log line nor a pickled traceback can carry a value.
    """
    try:
        yield
    except IngestError:
        raise
    except MemoryError:
        raise IngestError(f"{stage}: out of memory") from None
    except OSError as exc:
        # errno and the file name are ours to show; the strerror is generic text.
        raise error(f"{stage}: {exc.strerror or type(exc).__name__}"
                    + (f" ({exc.filename})" if exc.filename else "")) from None
    except Exception as exc:  # noqa: BLE001 - translation point by design
        raise error(f"{stage} failed ({type(exc).__name__}); "
                    "the original message is withheld because it may quote data") from None
