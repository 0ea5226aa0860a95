"""The API client's HTTP, on urllib3: one kept-alive pool to the server (through the kubeconfig's or the
environment's proxy), shared by threads; the TLS context from the kubeconfig (transport.py).

What is decided here, and why:
- No redirects (client-go follows none to another host with credentials); nothing retried but a GET whose
  connection dropped before the answer (Go's transport resends idempotent requests on a dead kept-alive
  connection); a read timeout is never resent.
- A connect timeout (30 s, client-go's dialer) and TCP keepalive (30 s) always; `--request-timeout` is a deadline
  for the whole request, as kubectl's, not a bound on each read: the body is read as it arrives, each read given
  only what is left.
- A proxy's credentials are sent as Proxy-Authorization and only to the proxy; the URL urllib3 sees has none, so
  no error can print them.
Imported only by commands that connect (tests/cli/test_lazy_imports.py).
"""

from __future__ import annotations

import base64
import contextlib
import socket
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import urllib3
from urllib3.exceptions import InsecureRequestWarning, ReadTimeoutError
from urllib3.util.retry import Retry

from macvtapctl.errors import MacvtapctlError
from macvtapctl.kube import transport

CONNECT_TIMEOUT = 30.0  # seconds: client-go's dialer
KEEPALIVE = 30  # seconds idle before the first probe, and between probes
POOL_SIZE = 64  # connections kept to the server: --concurrency allows 64 writers
READ_SIZE = 65536

_SOCKET_OPTIONS = [*urllib3.connection.HTTPConnection.default_socket_options,
                   (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1),
                   (socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, KEEPALIVE),
                   (socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, KEEPALIVE)]


class RequestTimeout(TimeoutError):
    """The whole-request deadline (--request-timeout) passed while the answer was being read."""


class _ResendDropped(Retry):
    """One more try for a GET whose connection dropped (the server closed a kept-alive connection as it was reused);
    never for a read timeout, which would double the user's wait."""

    def increment(self, method: str | None = None, url: str | None = None, response: Any = None,
                  error: Exception | None = None, _pool: Any = None, _stacktrace: Any = None) -> _ResendDropped:
        if isinstance(error, ReadTimeoutError):
            raise error
        return super().increment(method, url, response, error, _pool, _stacktrace)


def _resend(method: str) -> Retry | bool:
    if method != "GET":
        return False  # a write may have been carried out: never sent twice
    return _ResendDropped(total=1, connect=False, read=1, status=False, other=False, redirect=False,
                          raise_on_redirect=False, raise_on_status=False, respect_retry_after_header=False,
                          allowed_methods=frozenset({"GET"}))


def redacted(url: str) -> str:
    """A URL fit to print: a password in it replaced (Go's url.Redacted)."""
    u = urlsplit(url)
    if u.password is None:
        return url
    host = u.netloc.rpartition("@")[2]
    return u._replace(netloc=f"{u.username}:xxxxx@{host}").geturl()


def _proxy(url: str, source: str) -> tuple[str, dict[str, str]]:
    """The proxy's URL without credentials, and the header that carries them (to the proxy only)."""
    p = urlsplit(url)
    if p.scheme not in ("http", "https") or not p.hostname:
        raise MacvtapctlError(f'invalid {source} "{redacted(url)}": not supported (only http:// and https:// '
                              "proxies are)")
    headers = {}
    if p.username is not None:
        cred = f"{unquote(p.username)}:{unquote(p.password or '')}".encode()
        headers["Proxy-Authorization"] = "Basic " + base64.b64encode(cred).decode()
    return p._replace(netloc=p.netloc.rpartition("@")[2]).geturl(), headers


@dataclass
class Response:
    status: int
    headers: Any  # urllib3's HTTPHeaderDict: .get(name)
    data: bytes


class Stream:
    """A response read as it arrives (a watch); `shutdown()` from another thread ends the read."""

    def __init__(self, resp: urllib3.BaseHTTPResponse) -> None:
        self._resp = resp
        self.status = resp.status

    @property
    def data(self) -> bytes:
        return self._resp.read()

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._resp)  # lines, as the server's chunks arrive

    def shutdown(self) -> None:
        with contextlib.suppress(Exception):  # already closed
            self._resp.shutdown()

    def close(self) -> None:
        self._resp.close()  # a watch's connection is not reused: the server ends it at an arbitrary point
        self._resp.release_conn()


class Wire:
    """Requests to one server. Thread-safe: urllib3's pool hands each thread its own connection."""

    def __init__(self, ep: transport.Endpoint) -> None:
        self.ep = ep
        self._client_cert: tuple[bytes, bytes] | None = None
        self._manager = self._build(None)

    def _build(self, client_cert: tuple[bytes, bytes] | None) -> urllib3.PoolManager:
        kw: dict[str, Any] = {"maxsize": POOL_SIZE, "block": False, "retries": False,
                              "socket_options": _SOCKET_OPTIONS}
        if self.ep.tls:
            kw["ssl_context"] = transport.ssl_context(self.ep, *(client_cert or (None, None)))
            if self.ep.tls_server_name:
                kw["server_hostname"] = self.ep.tls_server_name  # sent as SNI, verified in the certificate
            if self.ep.insecure:
                warnings.simplefilter("ignore", InsecureRequestWarning)  # the kubeconfig asked for it
        if self.ep.proxy:
            url, headers = _proxy(self.ep.proxy, self.ep.proxy_source)
            if self.ep.tls:  # the CONNECT names its target in Host too, as Go's does (urllib3 on 3.11 leaves it out)
                headers["Host"] = urlsplit(self.ep.server).netloc.rpartition("@")[2]
            return urllib3.ProxyManager(url, proxy_headers=headers, **kw)
        return urllib3.PoolManager(**kw)

    def use_client_cert(self, cert: bytes | None, key: bytes | None) -> None:
        """An exec plugin's client certificate: new connections present it (a changed one replaces the pool)."""
        if not (cert and key) or self._client_cert == (cert, key):
            return
        old, self._manager, self._client_cert = self._manager, self._build((cert, key)), (cert, key)
        old.clear()

    def request(self, method: str, path: str, *, body: bytes | None, headers: Any,
                timeout: float | None) -> Response:
        """One request and its whole answer; `timeout` is a deadline for all of it (None: none, but connecting
        is bounded by CONNECT_TIMEOUT)."""
        deadline = time.monotonic() + timeout if timeout else None
        limit = urllib3.Timeout(connect=min(timeout, CONNECT_TIMEOUT) if timeout else CONNECT_TIMEOUT,
                                read=timeout)
        resp = self._manager.urlopen(method, self.ep.server + path, body=body, headers=headers, timeout=limit,
                                     retries=_resend(method), redirect=False, preload_content=False,
                                     assert_same_host=False)
        try:
            data = _read(resp, deadline)
        except BaseException:
            resp.close()
            resp.release_conn()
            raise
        resp.release_conn()
        return Response(resp.status, resp.headers, data)

    def stream(self, method: str, path: str, *, headers: Any, connect_timeout: float | None,
               read_timeout: float | None) -> Stream:
        """The answer's status and headers; its body is read from the Stream as it arrives."""
        limit = urllib3.Timeout(connect=connect_timeout or CONNECT_TIMEOUT, read=read_timeout)
        resp = self._manager.urlopen(method, self.ep.server + path, headers=headers, timeout=limit, retries=False,
                                     redirect=False, preload_content=False, assert_same_host=False)
        return Stream(resp)

    def clear(self) -> None:
        self._manager.clear()


def _read(resp: urllib3.BaseHTTPResponse, deadline: float | None) -> bytes:
    """The body as it arrives; with a deadline, each read waits only for what is left of it."""
    chunks: list[bytes] = []
    while True:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RequestTimeout("the request deadline passed")
            sock = getattr(resp.connection, "sock", None)
            if sock is not None:
                sock.settimeout(left)
        chunk = resp.read1(READ_SIZE)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
