"""The few error types the engine understands, and the exit code each one maps to.

Backends translate their SDK's exceptions into these, so discover/hydrate/push never see an SDK
error and can never mistake a denied or failing request for "no data".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from syncops.report import Report


class SyncopsError(Exception):
    """Base of every error syncops reports; ``exit_code`` is what the CLI exits with."""

    exit_code = 4


class BadInput(SyncopsError):
    """A bad URL, flag or path given by the user."""

    exit_code = 2


class StoreError(SyncopsError):
    """A remote or network failure that retries did not cure."""

    exit_code = 4


class NotFound(StoreError):
    """The object does not exist (S3 NoSuchKey/404, GCS NotFound, a missing local file)."""


class PreconditionFailed(StoreError):
    """A conditional write lost: the object exists (create-only) or changed (If-Match)."""


class ConditionUnsupported(StoreError):
    """The backend rejected the conditional header itself as not implemented."""


class Unavailable(StoreError):
    """5xx, throttling, connection failures and timeouts that outlasted the retries."""


class AccessDenied(StoreError):
    """401/403: failed fast, with a hint naming the credential source and the denied operation."""

    exit_code = 3


class CorruptIndex(SyncopsError):
    """The remote index exists but is not a valid version-1 datastore index."""

    exit_code = 6


class ReportedFailure(SyncopsError):
    """A command ran to its end without fully succeeding; ``report`` says what it did (Python API)."""

    def __init__(self, message: str, report: Report) -> None:
        super().__init__(message)
        self.report = report


class VerifyProblems(ReportedFailure):
    """``verify`` found problems, each listed in ``report.problems``."""

    exit_code = 5


class Conflicts(ReportedFailure):
    """Keys changed on both sides (or, for seed, held other content at the destination); listed in
    ``report.conflicts``, everything else done, nothing of either side lost."""

    exit_code = 7


class IncompleteTransfer(ReportedFailure):
    """Every other key was done, but the keys in ``report.problems`` could not be brought."""

    exit_code = 4
