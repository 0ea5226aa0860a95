"""The one ExitCode enum and the exceptions that map to it (documented in docs/exit-codes.md)."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    SUCCESS = 0
    ERROR = 1  # anything not covered below
    USAGE = 2  # invalid flag, argument or value; nothing was sent
    PRECONDITION = 3  # something the command needs is missing in the cluster (KubeVirt, a CRD, an object)
    FORBIDDEN = 4  # 401/403: credentials rejected or RBAC denies the request
    CONFLICT = 5  # a write kept conflicting after the bounded retries
    TIMEOUT = 6  # --request-timeout or --timeout ran out
    UNREACHABLE = 7  # connection refused, DNS, TLS: the API server could not be reached
    FINDINGS = 8  # a check ran and found problems (vm check, status)
    INTERRUPTED = 130  # Ctrl-C


class Hint:
    """What the user can change to fix an error, named by meaning; the command layer words it with its own flags
    (cli/common.py HINTS), so the layers below never speak CLI."""

    NO_KUBECONFIG = "no-kubeconfig"
    KUBECONFIG = "kubeconfig"
    CONTEXT = "context"
    UNREACHABLE = "unreachable"
    REQUEST_TIMEOUT = "request-timeout"
    DP_NAMESPACE = "dp-namespace"
    FORCE_CONFLICTS = "force-conflicts"


class MacvtapctlError(Exception):
    """An error the user should see as one line, with a defined exit code (and maybe a Hint)."""

    exit_code: ExitCode = ExitCode.ERROR

    def __init__(self, message: str, *, exit_code: ExitCode | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(MacvtapctlError):
    exit_code = ExitCode.USAGE


class PreconditionError(MacvtapctlError):
    exit_code = ExitCode.PRECONDITION


class ForbiddenError(MacvtapctlError):
    exit_code = ExitCode.FORBIDDEN


class ConflictError(MacvtapctlError):
    exit_code = ExitCode.CONFLICT


class TimeoutExceeded(MacvtapctlError):
    exit_code = ExitCode.TIMEOUT


class UnreachableError(MacvtapctlError):
    exit_code = ExitCode.UNREACHABLE


class NotFoundError(PreconditionError):
    """A named object does not exist (404)."""


class InvalidObjectError(MacvtapctlError):
    """The server rejected an object as invalid (422) or bad (400)."""

    exit_code = ExitCode.USAGE
