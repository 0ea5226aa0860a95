"""Turn API and transport failures into one-line errors with the documented exit codes."""

from __future__ import annotations

import http.client
import json
import re
import ssl
from dataclasses import dataclass
from typing import Any

from macvtapctl.errors import (
    ConflictError,
    ExitCode,
    ForbiddenError,
    Hint,
    InvalidObjectError,
    MacvtapctlError,
    NotFoundError,
    PreconditionError,
    TimeoutExceeded,
    UnreachableError,
)
from macvtapctl.kube.resources import Resource


@dataclass(frozen=True)
class Request:
    """What was being attempted, so errors can say it (verb, resource, namespace, name)."""

    verb: str
    resource: Resource
    namespace: str | None = None
    name: str | None = None

    def where(self) -> str:
        if self.resource.namespaced:
            return f'in namespace "{self.namespace}"' if self.namespace else "in any namespace"
        return "at the cluster scope"


class AlreadyExistsError(ConflictError):
    """409 AlreadyExists on create."""


class StaleError(ConflictError):
    """409 Conflict: the object changed since it was read (resourceVersion mismatch). Retried."""


def _status_body(body: Any) -> dict[str, Any]:
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        try:
            parsed = json.loads(body)
        except ValueError:
            return {"message": body.strip()}
        return parsed if isinstance(parsed, dict) else {}
    return {}


def from_status(status: int, body: Any, req: Request, server: str) -> MacvtapctlError:
    st = _status_body(body)
    message = str(st.get("message") or "").strip()
    reason = str(st.get("reason") or "")
    target = req.resource.qualified + (f' "{req.name}"' if req.name else "")
    if status == 401:
        return ForbiddenError(
            f"unauthorized: the API server at {server} rejected the credentials "
            "(check the user of the selected kubeconfig context)"
        )
    if status == 403:
        return ForbiddenError(
            f"forbidden: the current user cannot {req.verb} {req.resource.qualified} {req.where()}"
            f" (grant it with RBAC; see 'macvtapctl rbac'). Server said: {message}"
        )
    if status == 404:
        details = st.get("details") or {}
        if reason == "NotFound" and details.get("kind") == "namespaces" and details.get("name") != req.name:
            return NotFoundError(f'namespace "{details.get("name")}" not found')  # the parent, not the object
        if reason == "NotFound" and details.get("name"):
            return NotFoundError(f"{target} not found {req.where()}")
        return PreconditionError(
            f"the server does not serve {req.resource.qualified}/{req.resource.version} "
            f"(is the {req.resource.kind} CRD installed?)"
        )
    if status == 409:
        if reason == "AlreadyExists":
            return AlreadyExistsError(f"{target} already exists {req.where()}")
        if message.startswith("Apply failed with"):  # server-side apply: fields other managers own, not staleness
            return ConflictError(f"{target} has fields other managers own {req.where()}: {message}",
                                 hint=Hint.FORCE_CONFLICTS)
        return StaleError(f"{target} was modified concurrently {req.where()}: {message}")
    if status in (400, 422):
        return InvalidObjectError(f"the server rejected {target}: {message or reason}")
    if status == 504 or reason == "Timeout":
        return TimeoutExceeded(f"the server timed out handling {req.verb} {target}: {message}")
    if status == 429:
        return MacvtapctlError(f"the server is throttling requests (429): {message}")
    return MacvtapctlError(f"the server failed to {req.verb} {target} (HTTP {status}): {message or reason}")


def from_transport(exc: BaseException, req: Request, server: str, timeout: float | None) -> MacvtapctlError:
    """Failures without an HTTP answer (wire.py, urllib3): refused, DNS, TLS, a proxy, timeouts, a dropped
    connection."""
    from urllib3 import exceptions as u3

    inner: BaseException = exc
    while isinstance(inner, u3.MaxRetryError) and inner.reason is not None:
        inner = inner.reason
    proxy_failed = isinstance(inner, u3.ProxyError)
    if isinstance(inner, u3.ProxyError) and isinstance(inner.original_error, BaseException):
        inner = inner.original_error
    timed_out = isinstance(inner, (TimeoutError, u3.TimeoutError)) and not isinstance(inner, u3.NewConnectionError)
    if timed_out:  # connecting, a read, or the whole-request deadline
        limit = f" after {timeout:g}s" if timeout else ""
        return TimeoutExceeded(f"request to {server} timed out{limit} while trying to {req.verb} "
                               f"{req.resource.qualified}", hint=Hint.REQUEST_TIMEOUT if timeout else None)
    if isinstance(inner, (ssl.SSLError, u3.SSLError)) and not proxy_failed:
        return UnreachableError(
            f"TLS handshake with {server} failed: {_short(inner)} "
            "(check certificate-authority in the kubeconfig)"
        )
    if proxy_failed:
        return UnreachableError(f"cannot reach the API server at {server} through the proxy: {_short(inner)}",
                                hint=Hint.UNREACHABLE)
    if isinstance(inner, (OSError, http.client.HTTPException, u3.HTTPError)):
        return UnreachableError(f"cannot reach the API server at {server}: {_short(inner)}", hint=Hint.UNREACHABLE)
    return MacvtapctlError(f"request to {server} failed: {_short(inner)}", exit_code=ExitCode.ERROR)


_USERINFO = re.compile(r"(://[^/@\s:]*):[^/@\s]*@")


def _short(exc: BaseException) -> str:
    """The cause in a few words; a password in any URL it quotes is masked."""
    text = _USERINFO.sub(r"\1:xxxxx@", str(exc))
    for marker in ("Connection refused", "Name or service not known", "certificate verify failed",
                   "timed out", "No route to host", "Network is unreachable", "Connection reset",
                   "Remote end closed connection", "Temporary failure in name resolution",
                   "Proxy Authentication Required"):
        if marker in text:
            return marker.lower() if marker != "certificate verify failed" else marker
    return text.splitlines()[0][:200] if text else type(exc).__name__
