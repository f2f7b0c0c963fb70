"""Errors the use cases and the storage adapters speak in; entrypoints map them to HTTP."""

from dataclasses import dataclass


class TaskTrackerError(Exception):
    """Root of the project's own errors."""


@dataclass(frozen=True, slots=True)
class FieldError:
    """One reason a request was refused, naming the input it came from (`userIds[3]`)."""

    field: str
    message: str


class InvalidRequest(TaskTrackerError):
    """The request breaks a business rule; nothing was read."""

    def __init__(self, *errors: FieldError) -> None:
        super().__init__("; ".join(f"{error.field}: {error.message}" for error in errors))
        self.errors = errors


class StorageUnavailable(TaskTrackerError):
    """The database could not answer now; the same request may succeed later."""


class StorageTimeout(StorageUnavailable):
    """The database took longer than its deadline and the statement was cancelled."""
