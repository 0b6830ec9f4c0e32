"""The operator's exception tree: every failure is temporary or permanent.

::

    PayScopeError
    ├── TransientError          retry after ``delay`` seconds; checks turn Unknown
    │   ├── DependencyUnavailable   a server is unreachable, timed out or rate-limited
    │   │   ├── RateLimited             HTTP 429; ``delay`` is the server's Retry-After
    │   │   ├── ResponseTooLarge        an HTTP body exceeded the operator's size cap
    │   │   └── LockTimeout             a DDL statement gave up waiting for a lock (names the blockers)
    │   └── Conflict                the object changed since it was read (HTTP 409): re-read, then retry
    └── PermanentError          retrying cannot help; the resource is Stalled
        ├── SpecInvalid             the spec fails validation (names the field)
        ├── SecretNotFound          a referenced Secret or key is missing
        ├── PermissionDenied        the operator or a credential lacks a permission
        │   └── SecretUnreadable        the operator may not read a referenced Secret (names it)
        ├── CredentialsRequired     a section names no credentials and ambient ones are not allowed
        ├── EgressDenied            an endpoint is outside the operator's egress policy
        └── SpecUnsatisfiable       the systems cannot do what the spec asks

Anything else a backend lets escape (a ``KeyError``, a library's own exception)
is *unexpected*: :func:`unexpected` tells, and the pass contains it to the
system or source it came from (reason ``UnexpectedError``, naming only the
exception's type), never letting it abort the pass.

Every error carries a ``reason`` (a CamelCase constant from the reason catalog)
and a message safe to show in status, events and logs: callers must never put
a secret value into one. This module imports nothing from the package; it is
the bottom layer.
"""

from __future__ import annotations


class PayScopeError(Exception):
    """Base of every error the operator raises on purpose."""

    reason: str = "InternalError"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason


class TransientError(PayScopeError):
    """A fault that may go away by itself; retry after ``delay`` seconds."""

    reason = "DependencyUnavailable"

    def __init__(self, message: str, *, reason: str | None = None, delay: float = 10.0) -> None:
        super().__init__(message, reason=reason)
        self.delay = delay


class DependencyUnavailable(TransientError):
    """A server is unreachable, timed out, or asked us to slow down."""


class RateLimited(DependencyUnavailable):
    """The server asked us to slow down (HTTP 429); ``delay`` is the wait it asked for."""


class ResponseTooLarge(DependencyUnavailable):
    """An HTTP response body was larger than the operator reads (``--max-response-bytes``)."""

    reason = "ResponseTooLarge"


class LockTimeout(DependencyUnavailable):
    """A DDL statement waited its ``lock_timeout`` for a lock other sessions hold, and gave up.

    ``blockers`` describes those sessions (pid, application name, how long), without
    their queries. Only the object the statement was for is affected: the caller
    retries it later, with backoff, and goes on with other objects.
    """

    reason = "LockTimeout"

    def __init__(self, message: str, *, blockers: tuple[str, ...] = (), delay: float = 10.0) -> None:
        super().__init__(message, delay=delay)
        self.blockers = blockers


class Conflict(TransientError):
    """A write's resourceVersion precondition failed: the object changed since it was read."""

    reason = "Conflict"


class PermanentError(PayScopeError):
    """A fault retrying cannot fix: the resource is reported Stalled."""

    reason = "SpecInvalid"


class SpecInvalid(PermanentError):
    """The spec fails validation; the message names the field."""

    reason = "SpecInvalid"


class SecretNotFound(PermanentError):
    """A referenced Secret, or a key inside it, does not exist."""

    reason = "SecretNotFound"


class PermissionDenied(PermanentError):
    """The operator's ServiceAccount or a configured credential lacks a permission."""

    reason = "PermissionDenied"


class SecretUnreadable(PermissionDenied):
    """The operator may not read a referenced Secret (HTTP 403); ``secret`` names it."""

    def __init__(self, message: str, *, secret: str) -> None:
        super().__init__(message)
        self.secret = secret


class CredentialsRequired(PermanentError):
    """A section omits its credentials; the operator's own identity may not stand in for them.

    Raised unless the operator runs with ``--allow-ambient-credentials``; the message
    names the spec field to set.
    """

    reason = "CredentialsRequired"


class EgressDenied(PermanentError):
    """An endpoint from the spec resolves to an address the operator's egress policy denies.

    Raised before any connection is attempted; the message names the spec field, the
    host and the rule that denied it.
    """

    reason = "EgressDenied"


class SpecUnsatisfiable(PermanentError):
    """The external system cannot do what the spec asks (e.g. an immutable field differs)."""


def unexpected(exc: BaseException) -> bool:
    """Whether ``exc`` is none of the failures a probe or provisioner is expected to meet.

    Expected: our own errors, timeouts, and the operating system's connection errors.
    Everything else is a bug or an unmapped library error, reported as ``UnexpectedError``.
    """
    return not isinstance(exc, PayScopeError | TimeoutError | OSError)


def describe_unexpected(exc: BaseException) -> str:
    """A message safe for status: the exception's type only (its text may carry anything)."""
    return f"unexpected {type(exc).__name__} (the operator's log has the traceback)"
