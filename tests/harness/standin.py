"""Loopback stand-ins for what a test cannot make a real part do on demand: an API server answering as a script
says (a 429 with Retry-After, a request count) and an HTTP proxy (CONNECT recorded, then tunnelled or refused).
Everything listens on 127.0.0.1; no name is resolved and nothing leaves the machine."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class Seen:
    method: str
    path: str  # without the query
    client_port: int  # one per connection: keep-alive shows as one port
    at: float  # time.monotonic()


# (status, headers, JSON body) for a request's method and path (query stripped)
Respond = Callable[[str, str], tuple[int, dict[str, str], Any]]


class ApiStandIn:
    """An HTTP/1.1 server (keep-alive, as the API server) that records each request and answers with `respond`."""

    def __init__(self, respond: Respond) -> None:
        self.seen: list[Seen] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path = self.path.split("?")[0]
                outer.seen.append(Seen(self.command, path, self.client_address[1], time.monotonic()))
                status, headers, obj = respond(self.command, path)
                body = json.dumps(obj).encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def paths(self) -> list[str]:
        return [s.path for s in self.seen]

    @property
    def connections(self) -> int:
        return len({s.client_port for s in self.seen})

    def kubeconfig(self, path: Path) -> Path:
        """A kubeconfig for this server (a bearer token, as most clusters give)."""
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "c",
            "clusters": [{"name": "c", "cluster": {"server": self.url}}],
            "users": [{"name": "u", "user": {"token": "t"}}],
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
        return path

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def not_found(path: str) -> dict[str, Any]:
    """The API server's answer for an object it does not have."""
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404,
            "details": {"name": path.rsplit("/", 1)[-1]}}


class Loopback:
    """A TCP server on loopback: each connection is given to `handle`, with its number (from 1), in a thread of its
    own."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.sock = socket.create_server((host, 0), family=socket.AF_INET6 if ":" in host else socket.AF_INET)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # closed
                return
            self.connections += 1
            threading.Thread(target=self.handle, args=(conn, self.connections), daemon=True).start()

    def handle(self, conn: socket.socket, n: int) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.sock.close()


def read_head(conn: socket.socket) -> bytes:
    """An HTTP request head up to and including its blank line, plus whatever came after it in the same reads;
    b"" when the peer closed first."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return b""
        data += chunk
    return data


class ConnectProxy(Loopback):
    """An HTTP proxy on loopback recording each request head. `answer` (e.g. b"407 Proxy Authentication
    Required"): every request gets that status. Otherwise a CONNECT is joined to `target_port` on loopback, or,
    without one, to the host:port it names; anything but CONNECT gets 405."""

    def __init__(self, *, target_port: int | None = None, answer: bytes | None = None) -> None:
        self.target_port, self.answer = target_port, answer
        self.heads: list[str] = []
        super().__init__()
        self.url = f"http://127.0.0.1:{self.port}"

    def handle(self, conn: socket.socket, n: int) -> None:
        with conn:
            data = read_head(conn)
            if not data:
                return
            head, _, rest = data.partition(b"\r\n\r\n")
            self.heads.append((head + b"\r\n\r\n").decode("latin-1"))  # the head as sent, blank line and all
            if self.answer is not None:
                conn.sendall(b"HTTP/1.1 " + self.answer + b"\r\nContent-Length: 0\r\n\r\n")
                return
            if not head.startswith(b"CONNECT "):
                conn.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
                return
            host, port = head.split()[1].decode().rsplit(":", 1)
            target = ("127.0.0.1", self.target_port) if self.target_port else (host.strip("[]"), int(port))
            upstream = socket.create_connection(target)
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            if rest:
                upstream.sendall(rest)
            _relay(conn, upstream)

    def authorizations(self) -> list[str]:
        return [line.partition(":")[2].strip() for h in self.heads for line in h.split("\r\n")
                if line.lower().startswith("proxy-authorization:")]


def _relay(a: socket.socket, b: socket.socket) -> None:
    def pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while chunk := src.recv(65536):
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    t = threading.Thread(target=pump, args=(b, a), daemon=True)
    t.start()
    pump(a, b)
    t.join(5)
    b.close()
