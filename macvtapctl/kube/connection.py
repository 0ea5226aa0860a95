"""HTTP/1.1 to one API server on the standard library: kept-alive connections, shared by threads.

Not urllib3: importing it cost 21.5 ms of the ~130 ms an `exposed` took (its URL regexes, its HTTP/2 probe's
importlib.metadata, logging, queue), before the first byte was sent (docs/performance.md, measured with
benchmarks/startup.py). A client of one server needs little of it: connections reused across requests and
threads, an idle one checked before reuse, TLS with the kubeconfig's CA, client certificate and
tls-server-name, the kubeconfig's HTTP proxy (a CONNECT tunnel for https), timeouts, and a stream to read a
watch from. Redirects are not followed and nothing is retried here, but a GET whose kept-alive connection
the server had closed.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import select
import socket
import ssl
import threading
from dataclasses import dataclass
from email.message import Message
from urllib.parse import unquote, urlsplit

from macvtapctl.errors import MacvtapctlError


class ConnectError(OSError):
    """No connection to the server (or its proxy) was made: nothing was sent. `reason` is the socket's error."""

    def __init__(self, reason: OSError) -> None:
        super().__init__(reason.errno, str(reason))
        self.reason = reason


@dataclass
class Response:
    status: int
    headers: Message
    data: bytes


class _Conn(http.client.HTTPConnection):
    """One connection; TLS (when `context` is given) after TCP and after a proxy's CONNECT, as
    http.client.HTTPSConnection does, but verifying `server_hostname` (the kubeconfig's tls-server-name)."""

    def __init__(self, host: str, port: int, *, context: ssl.SSLContext | None, server_hostname: str,
                 timeout: float | None) -> None:
        super().__init__(host, port, timeout=timeout)
        self._context, self._sni = context, server_hostname

    def connect(self) -> None:
        try:
            super().connect()
        except ssl.SSLError:
            raise
        except OSError as exc:  # refused, DNS, unreachable, connect timeout, the proxy refusing the tunnel
            raise ConnectError(exc) from exc
        if self._context is not None:
            self.sock = self._context.wrap_socket(self.sock, server_hostname=self._sni)


class Stream:
    """A response read as it arrives (a watch); `shutdown()` from another thread ends the read."""

    def __init__(self, conn: _Conn, resp: http.client.HTTPResponse) -> None:
        self._conn, self._resp = conn, resp
        self.status = resp.status

    @property
    def data(self) -> bytes:
        return self._resp.read()

    def __iter__(self) -> Stream:
        return self

    def __next__(self) -> bytes:
        line = self._resp.readline()
        if not line:
            raise StopIteration
        return line

    def shutdown(self) -> None:
        sock = self._conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):  # already closed
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._resp.close()
        self._conn.close()  # a watch's connection is not reused: the server ends it at an arbitrary point


class Pool:
    """Connections to the server of `url` (through `proxy`, an http:// URL, when given); at most `maxsize` are
    kept idle, more are opened when threads need them."""

    def __init__(self, url: str, *, context: ssl.SSLContext | None, server_hostname: str | None = None,
                 proxy: str | None = None, proxy_source: str = "kubeconfig: proxy-url", maxsize: int = 10) -> None:
        u = urlsplit(url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise MacvtapctlError(f'invalid kubeconfig: server "{url}" is not an http or https URL')
        self.tls = u.scheme == "https"
        self.host, self.port = u.hostname, u.port or (443 if self.tls else 80)
        self.prefix = u.path.rstrip("/")  # a server behind a path (https://host/k8s/clusters/c-1)
        self.context = context if self.tls else None
        self.server_hostname = server_hostname
        self.maxsize = maxsize
        self._proxy: tuple[str, int, dict[str, str]] | None = None
        if proxy:
            p = urlsplit(proxy)
            if p.scheme != "http" or not p.hostname:
                raise MacvtapctlError(f'invalid {proxy_source} "{proxy}": not supported (only http:// proxies '
                                      "are)")
            auth = {}
            if p.username is not None:
                cred = f"{unquote(p.username)}:{unquote(p.password or '')}".encode()
                auth["Proxy-Authorization"] = "Basic " + base64.b64encode(cred).decode()
            self._proxy = (p.hostname, p.port or 80, auth)
        self._idle: list[_Conn] = []
        self._lock = threading.Lock()

    def _target(self, path: str) -> str:
        """The request target: origin-form, or absolute-form to a proxy for plain http."""
        if self._proxy is not None and not self.tls:
            host = f"[{self.host}]" if ":" in self.host else self.host
            return f"http://{host}:{self.port}{self.prefix}{path}"
        return self.prefix + path

    def _new(self, timeout: float | None) -> _Conn:
        name = self.server_hostname or self.host  # verified in the certificate, sent as SNI
        if self._proxy is None:
            return _Conn(self.host, self.port, context=self.context, server_hostname=name, timeout=timeout)
        phost, pport, auth = self._proxy
        conn = _Conn(phost, pport, context=self.context, server_hostname=name, timeout=timeout)
        if self.tls:  # Host too: http.client's CONNECT (HTTP/1.0 on 3.11) leaves it out, and proxies may want it
            host = f"[{self.host}]" if ":" in self.host else self.host
            conn.set_tunnel(self.host, self.port, headers={"Host": f"{host}:{self.port}", **auth})
        return conn

    def _take(self, timeout: float | None) -> tuple[_Conn, bool]:
        """An idle connection the server has not closed (reused: True), else a new one."""
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                return self._new(timeout), False
            if _dropped(conn):
                conn.close()
                continue
            conn.timeout = timeout
            if conn.sock is not None:
                conn.sock.settimeout(timeout)
            return conn, True

    def _give(self, conn: _Conn) -> None:
        with self._lock:
            if len(self._idle) < self.maxsize:
                self._idle.append(conn)
                return
        conn.close()

    def request(self, method: str, path: str, *, body: bytes | None, headers: dict[str, str],
                timeout: float | None) -> Response:
        """One request and its whole answer; `timeout` bounds connecting and each read (None: no limit). A GET
        that finds its reused connection closed by the server (it may close an idle one at any time) is sent
        once more on a new connection."""
        conn, reused = self._take(timeout)
        try:
            resp = self._send(conn, method, path, body, headers)
        except (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine, ssl.SSLEOFError,
                ssl.SSLZeroReturnError):  # the server's close seen by TCP, by HTTP or by TLS
            if not (reused and method == "GET"):
                raise
            conn = self._new(timeout)
            resp = self._send(conn, method, path, body, headers)
        try:
            data = resp.read()
        except BaseException:
            conn.close()
            raise
        if resp.will_close:
            conn.close()
        else:
            self._give(conn)
        return Response(resp.status, resp.headers, data)

    def stream(self, method: str, path: str, *, headers: dict[str, str], connect_timeout: float | None,
               read_timeout: float | None) -> Stream:
        """The answer's status and headers; its body is read from the Stream, on a connection of its own."""
        conn = self._new(connect_timeout)
        resp = self._send(conn, method, path, None, headers)
        if conn.sock is not None:
            conn.sock.settimeout(read_timeout)
        return Stream(conn, resp)

    def _send(self, conn: _Conn, method: str, path: str, body: bytes | None,
              headers: dict[str, str]) -> http.client.HTTPResponse:
        if self._proxy is not None and not self.tls:
            headers = {**headers, **self._proxy[2]}  # the proxy reads each request (no tunnel)
        try:
            conn.request(method, self._target(path), body=body, headers=headers)
            return conn.getresponse()
        except BaseException:
            conn.close()
            raise

    def clear(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def _dropped(conn: _Conn) -> bool:
    """An idle connection is readable only when the server closed it (or sent what nobody asked for)."""
    sock = conn.sock
    if sock is None:
        return True
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)
