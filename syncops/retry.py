"""One retry policy and one error classifier for every backend and every path.

Why one module: S3 had botocore's ``standard`` mode plus three loops of its own (a GetObject whose
error body broke off, bodies re-read whole, the obstore data plane), GCS had google-api-core's
``DEFAULT_RETRY``; that was three backoff formulas and two opinions of the same S3 error. Here, as in
rclone's ``pacer`` + ``fserrors``, the question "may this be tried again, after how long, how many
times" is answered once:

* :func:`classify` turns what came back (HTTP status, provider error code, or the exception of a
  request that got no answer) into a :class:`Decision`: retry, throttle (back off longer, honour
  ``Retry-After``) or fatal. It knows the providers' documented answers: S3 ``409
  ConditionalRequestConflict`` and ``OperationAborted`` (another conditional write to the key is in
  flight: try again), ``503 SlowDown``, ``200 OK`` bodies carrying ``<Error>`` (botocore turns them
  into a 500 before we see them), GCS ``429 rateLimitExceeded`` (more than one write per second to
  one object). Redirects and every other 3xx/4xx are fatal here; the backends say what they mean.
* :class:`RetryPolicy` paces the retries: ``attempts`` per request (first try included), exponential
  backoff with full jitter (``uniform(0, min(cap, base × 2^(n-1)))``), a longer base for throttling,
  and a server's ``Retry-After`` (delta-seconds or HTTP-date) waited at least, up to
  :data:`RETRY_AFTER_CAP`. Every wait goes through :func:`pause`, so tests observe the waits (and
  skip them) without timing anything.

The module imports no SDK: exception types of botocore, urllib3, requests and google-auth are
recognised by their qualified names, so a hydrate that never loads boto3 does not load it here.
"""

from __future__ import annotations

import http.client
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from enum import Enum
from typing import TypeVar

from syncops import environment

T = TypeVar("T")

#: Attempts per request, first try included. ``SYNCOPS_MAX_ATTEMPTS`` changes it for every backend;
#: on S3 the AWS SDKs' own ``AWS_MAX_ATTEMPTS`` does too (``SYNCOPS_MAX_ATTEMPTS`` wins when both are set).
MAX_ATTEMPTS = 6
#: The most attempts a setting may ask for: beyond it a persistent failure would be retried for days.
MOST_ATTEMPTS = 100
#: Whole re-reads of a body that broke off or failed its checksum, per object transfer (a budget of
#: its own: a request that was answered is not spent again by a body that broke off later).
BODY_ATTEMPTS = 4
#: The ceiling of the first retry's wait after a transient failure (5xx, reset, timeout); doubles per retry.
BASE_DELAY = 0.1
#: The same for throttling (429, SlowDown): a service asking for less traffic gets a longer pause.
THROTTLE_BASE_DELAY = 1.0
#: No computed wait exceeds this.
MAX_DELAY = 20.0
#: A server's ``Retry-After`` is waited at least, but never longer than this: a longer one is waited
#: this long (a command run unattended should not sleep for an hour on one header).
RETRY_AFTER_CAP = 60.0


class Verdict(Enum):
    RETRY = "retry"  # transient: try again soon
    THROTTLE = "throttle"  # the service asks for less traffic: back off longer
    FATAL = "fatal"  # trying again cannot help


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    #: Seconds the server asked for (``Retry-After``), already capped; None when it did not say.
    retry_after: float | None = None
    #: What was seen, for messages: ``503 SlowDown``, ``ConnectionResetError``.
    reason: str = ""

    @property
    def retriable(self) -> bool:
        return self.verdict is not Verdict.FATAL


#: A body that arrived whole but failed its checksum (S3 ETag MD5, GCS crc32c): read it again.
BROKEN_BODY = Decision(Verdict.RETRY, reason="body failed its checksum")

#: Provider error codes that mean "slow down" (S3, the AWS SDKs' throttling list, GCS reasons).
THROTTLE_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequests",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "PriorRequestNotComplete",
        "rateLimitExceeded",
        "userRateLimitExceeded",
    }
)
#: Provider error codes that mean "transient, try again", whatever status they came with. S3 documents
#: ``ConditionalRequestConflict`` (409) and ``OperationAborted`` (409) as "a conflicting conditional
#: operation is in progress on this key: try again"; they are not a lost race (that is 412).
TRANSIENT_CODES = frozenset(
    {
        "InternalError",
        "ServiceUnavailable",
        "RequestTimeout",
        "RequestTimeoutException",
        "ConditionalRequestConflict",
        "OperationAborted",
        "backendError",
        "internalError",
    }
)
TRANSIENT_STATUSES = frozenset({408, 500, 502, 503, 504})
THROTTLE_STATUSES = frozenset({429})

#: Exceptions of requests that got no (whole) answer: reset, refused, timed out, cut off mid-body.
_TRANSPORT_ERRORS = (ConnectionError, TimeoutError, http.client.IncompleteRead, http.client.BadStatusLine)
_TRANSPORT_ERROR_NAMES = frozenset(
    {
        "botocore.exceptions.ConnectionError",
        "botocore.exceptions.HTTPClientError",
        "botocore.exceptions.ResponseStreamingError",
        "botocore.exceptions.IncompleteReadError",
        "urllib3.exceptions.ProtocolError",
        "urllib3.exceptions.TimeoutError",
        "urllib3.exceptions.NewConnectionError",
        "requests.exceptions.ConnectionError",
        "requests.exceptions.Timeout",
        "requests.exceptions.ChunkedEncodingError",
        "google.auth.exceptions.TransportError",
        "google.cloud.storage.exceptions.DataCorruption",
        "google.resumable_media.common.DataCorruption",
    }
)


def is_transport_error(exc: BaseException) -> bool:
    """True for a failure of the connection rather than an answer of the service."""
    if isinstance(exc, _TRANSPORT_ERRORS):
        return True
    return any(f"{cls.__module__}.{cls.__qualname__}" in _TRANSPORT_ERROR_NAMES for cls in type(exc).__mro__)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (RFC 9110: delta-seconds or an HTTP-date),
    capped at :data:`RETRY_AFTER_CAP`; None when absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isdigit():
        seconds = float(int(text[:6]))  # more than six digits is above the cap anyway
    else:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
    return min(max(seconds, 0.0), RETRY_AFTER_CAP)


def classify(
    status: int | None,
    code: str = "",
    *,
    exc: BaseException | None = None,
    retry_after: str | None = None,
) -> Decision:
    """What to do about one failed request.

    ``status``: the HTTP status of the answer (None when there was none: then ``exc`` says why, and
    None for ``exc`` too means the caller already knows it was the connection). ``code``: the
    provider's error code (S3 ``<Code>``, a GCS reason), which outranks the status: S3 sends
    ``InternalError`` inside a ``200 OK`` and ``SlowDown`` with a 503. ``retry_after``: the raw header.
    """
    waited = parse_retry_after(retry_after)
    shown = f"{status or ''} {code}".strip()
    if code in THROTTLE_CODES:
        return Decision(Verdict.THROTTLE, waited, shown)
    if code in TRANSIENT_CODES:
        return Decision(Verdict.RETRY, waited, shown)
    if status is None:
        if exc is None or is_transport_error(exc):
            return Decision(Verdict.RETRY, None, type(exc).__name__ if exc is not None else "no answer")
        return Decision(Verdict.FATAL, None, type(exc).__name__)
    if status in THROTTLE_STATUSES:
        return Decision(Verdict.THROTTLE, waited, shown)
    if status in TRANSIENT_STATUSES:
        return Decision(Verdict.RETRY, waited, shown)
    return Decision(Verdict.FATAL, None, shown)


def attempts_from_environment(*, aws: bool = False) -> int:
    """``SYNCOPS_MAX_ATTEMPTS`` (every backend), else ``AWS_MAX_ATTEMPTS`` (S3 only), else :data:`MAX_ATTEMPTS`."""
    names = ("SYNCOPS_MAX_ATTEMPTS", "AWS_MAX_ATTEMPTS") if aws else ("SYNCOPS_MAX_ATTEMPTS",)
    for name in names:
        if os.environ.get(name, "").strip():
            return int(environment.number(name, MAX_ATTEMPTS, minimum=1, whole=True, maximum=MOST_ATTEMPTS))
    return MAX_ATTEMPTS


@dataclass(frozen=True)
class Pause:
    """One wait before a retry, as :data:`observers` see it."""

    what: str  # the request, e.g. "PutObject s3://bucket/key"
    failures: int  # failures so far of this request (1 before the first retry)
    decision: Decision
    delay: float  # seconds


#: Called with every :class:`Pause` before it is waited (tests record them; a CLI could log them).
observers: list[Callable[[Pause], None]] = []


def sleep(seconds: float) -> None:
    """The one place a retry waits (tests replace it to skip the waits)."""
    time.sleep(seconds)


def pause(event: Pause) -> None:
    for observe in list(observers):
        observe(event)
    sleep(event.delay)


@dataclass(frozen=True)
class RetryPolicy:
    """How many times and how long apart; the same numbers for every backend.

    ``deadline``: seconds after a request's first try after which no retry is started (GCS keeps its
    documented ``SYNCOPS_GCS_RETRY_TIMEOUT``); None for none.
    """

    attempts: int = MAX_ATTEMPTS
    body_attempts: int = BODY_ATTEMPTS
    base: float = BASE_DELAY
    throttle_base: float = THROTTLE_BASE_DELAY
    cap: float = MAX_DELAY
    deadline: float | None = None

    def backoff(self, failures: int, decision: Decision) -> float:
        """The wait after the ``failures``-th failure: full jitter, at least what the server asked for."""
        base = self.throttle_base if decision.verdict is Verdict.THROTTLE else self.base
        jittered = random.uniform(0.0, min(self.cap, base * 2.0 ** max(failures - 1, 0)))
        if decision.retry_after is not None:
            return max(jittered, decision.retry_after)
        return jittered

    def delay(
        self, failures: int, decision: Decision, *, started: float | None = None, budget: int | None = None
    ) -> float | None:
        """The wait before the next try, or None when it must not be tried again (fatal, out of
        attempts, past the deadline). ``budget`` replaces ``attempts`` (body re-reads have their own)."""
        if not decision.retriable or failures >= (self.attempts if budget is None else budget):
            return None
        wait = self.backoff(failures, decision)
        if self.deadline is not None and started is not None:
            if time.monotonic() + wait - started > self.deadline:
                return None
        return wait

    def call(
        self,
        operation: Callable[[], T],
        judge: Callable[[Exception], Decision],
        *,
        what: str,
        rewind: Callable[[], object] | None = None,
    ) -> T:
        """``operation()``, tried again while ``judge`` calls its failure retriable and the budget lasts.

        ``rewind`` runs before each retry: an upload body seeks back, a download's writer truncates
        and takes back the progress it reported. The last failure propagates as it was raised.
        """
        started = time.monotonic()
        failures = 0
        while True:
            try:
                return operation()
            except Exception as exc:
                failures += 1
                decision = judge(exc)
                wait = self.delay(failures, decision, started=started)
                if wait is None:
                    raise
                if rewind is not None:
                    rewind()
                pause(Pause(what, failures, decision, wait))


class Transfer:
    """The retry state of one object transfer: failed requests and broken bodies, each on its budget.

    A GET can fail before any byte (no answer, a 503: ``attempts``) or after its answer began (a body
    cut off or failing its checksum: ``body_attempts``); one object costs at most
    ``attempts + body_attempts - 1`` requests, whichever plane moves it.
    """

    def __init__(self, policy: RetryPolicy, what: str) -> None:
        self.policy = policy
        self.what = what
        self.request_failures = 0
        self.body_failures = 0
        self._started = time.monotonic()

    def again(self, decision: Decision, *, in_body: bool) -> bool:
        """Record one failure; wait and return True when the transfer should be tried again."""
        if in_body:
            self.body_failures += 1
            failures, budget = self.body_failures, self.policy.body_attempts
        else:
            self.request_failures += 1
            failures, budget = self.request_failures, self.policy.attempts
        wait = self.policy.delay(failures, decision, started=self._started, budget=budget)
        if wait is None:
            return False
        pause(Pause(self.what, failures, decision, wait))
        return True
