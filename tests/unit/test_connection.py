"""The API client's HTTP/1.1 on the standard library (kube/connection.py), against stand-in servers on loopback
that misbehave on purpose: a server closing kept-alive connections, a chunked watch split mid-line, an HTTP
proxy. (The real API server over TLS: every integration test, and test_proxy_and_server_name there.)"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from macvtapctl.errors import ExitCode, MacvtapctlError
from macvtapctl.kube.connection import ConnectError, Pool
from macvtapctl.kube.errors import Request, from_transport
from macvtapctl.kube.resources import NAD

Handler = Callable[[socket.socket, int], None]  # (accepted socket, index of the connection)


class RawServer:
    """A TCP server on loopback whose handler writes exactly what the test wants."""

    def __init__(self, handler: Handler) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.requests: list[bytes] = []
        self.handler = handler
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self.handler, args=(conn, self.connections), daemon=True).start()

    def read_request(self, conn: socket.socket) -> bytes:
        """The request head (these tests send no bodies but where they say so)."""
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return b""
            data += chunk
        self.requests.append(data)
        return data

    def close(self) -> None:
        self.sock.close()


def ok(body: bytes = b'{"kind":"Status"}', *, close: bool = False) -> bytes:
    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return (head + ("Connection: close\r\n" if close else "") + "\r\n").encode() + body


@pytest.fixture
def serve() -> Iterator[Callable[[Handler], RawServer]]:
    servers: list[RawServer] = []

    def start(handler: Handler) -> RawServer:
        servers.append(RawServer(handler))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def test_requests_share_one_kept_alive_connection(serve: Callable[[Handler], RawServer]) -> None:
    def handler(conn: socket.socket, _: int) -> None:
        while srv.read_request(conn):
            conn.sendall(ok())

    srv = serve(handler)
    pool = Pool(f"http://127.0.0.1:{srv.port}", context=None)
    for _ in range(5):
        assert pool.request("GET", "/api", body=None, headers={}, timeout=5).status == 200
    assert srv.connections == 1 and len(srv.requests) == 5


def test_a_connection_the_server_closed_while_idle_is_not_reused(serve: Callable[[Handler], RawServer]) -> None:
    """The server answers (keep-alive) and then closes: the next request, a POST too, goes on a new
    connection without error."""
    def handler(conn: socket.socket, _: int) -> None:
        srv.read_request(conn)
        conn.sendall(ok())
        conn.close()

    srv = serve(handler)
    pool = Pool(f"http://127.0.0.1:{srv.port}", context=None)
    assert pool.request("GET", "/a", body=None, headers={}, timeout=5).status == 200
    time.sleep(0.1)  # the close reaches the client
    assert pool.request("POST", "/b", body=b"{}", headers={}, timeout=5).status == 200
    assert srv.connections == 2


def test_a_get_is_sent_again_when_the_server_drops_a_reused_connection_unanswered(
        serve: Callable[[Handler], RawServer]) -> None:
    """The race the idle check cannot see (the server closing as the request leaves): a GET goes again on a
    new connection, once; a POST, which the server may have carried out, is an error."""
    def handler(conn: socket.socket, index: int) -> None:
        srv.read_request(conn)
        conn.sendall(ok())
        if srv.read_request(conn):  # the second request on this connection: closed unanswered
            conn.close()

    srv = serve(handler)
    pool = Pool(f"http://127.0.0.1:{srv.port}", context=None)
    pool.request("GET", "/a", body=None, headers={}, timeout=5)
    assert pool.request("GET", "/b", body=None, headers={}, timeout=5).status == 200
    assert srv.connections == 2
    with pytest.raises((ConnectionError, http.client.RemoteDisconnected)) as err:
        pool.request("POST", "/c", body=b"{}", headers={}, timeout=5)
    assert "cannot reach the API server at https://api: " in str(
        from_transport(err.value, Request("create", NAD), "https://api", None))
    assert srv.connections == 2  # not sent again


def test_a_watch_streams_lines_across_chunks_and_shutdown_ends_it(serve: Callable[[Handler], RawServer]) -> None:
    released = threading.Event()

    def handler(conn: socket.socket, _: int) -> None:
        srv.read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for part in (b'{"type":"ADDED",', b'"object":{}}\n{"type":', b'"DELETED","object":{}}\n'):
            conn.sendall(f"{len(part):x}\r\n".encode() + part + b"\r\n")
        released.wait(10)  # then nothing more: the client's read blocks until shutdown()
        conn.close()

    srv = serve(handler)
    stream = Pool(f"http://127.0.0.1:{srv.port}", context=None).stream(
        "GET", "/w", headers={}, connect_timeout=5, read_timeout=30)
    lines = [next(stream), next(stream)]
    assert lines == [b'{"type":"ADDED","object":{}}\n', b'{"type":"DELETED","object":{}}\n']
    threading.Timer(0.2, stream.shutdown).start()
    t0 = time.monotonic()
    with pytest.raises((StopIteration, OSError, http.client.HTTPException)):
        next(stream)
    assert time.monotonic() - t0 < 5
    released.set()
    stream.close()


def test_a_plain_http_server_through_a_proxy_gets_the_absolute_form_and_credentials(
        serve: Callable[[Handler], RawServer]) -> None:
    def handler(conn: socket.socket, _: int) -> None:
        srv.read_request(conn)
        conn.sendall(ok(close=True))
        conn.close()

    srv = serve(handler)
    pool = Pool("http://10.9.9.9:8080/prefix", context=None, proxy=f"http://u%40x:p%3Aw@127.0.0.1:{srv.port}")
    assert pool.request("GET", "/api?x=1", body=None, headers={}, timeout=5).status == 200
    head = srv.requests[0].decode()
    assert head.startswith("GET http://10.9.9.9:8080/prefix/api?x=1 HTTP/1.1\r\n")
    assert "Proxy-Authorization: Basic dUB4OnA6dw==\r\n" in head  # base64 of "u@x:p:w"


@pytest.mark.parametrize("proxy", ["socks5://127.0.0.1:1080", "https://proxy:3128", "http://"])
def test_an_unsupported_proxy_is_one_line_naming_it(proxy: str) -> None:
    with pytest.raises(MacvtapctlError) as err:
        Pool("https://api:6443", context=None, proxy=proxy)
    assert str(err.value) == f'invalid kubeconfig: proxy-url "{proxy}": not supported (only http:// proxies are)'


def test_refused_and_timed_out_say_so(serve: Callable[[Handler], RawServer]) -> None:
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    with pytest.raises(ConnectError) as refused:
        Pool(f"http://127.0.0.1:{port}", context=None).request("GET", "/", body=None, headers={}, timeout=5)
    err = from_transport(refused.value, Request("list", NAD), f"http://127.0.0.1:{port}", None)
    assert (str(err), err.exit_code) == (f"cannot reach the API server at http://127.0.0.1:{port}: connection "
                                         "refused", ExitCode.UNREACHABLE)

    srv = serve(lambda conn, _: (srv.read_request(conn), time.sleep(3)))  # reads, never answers
    with pytest.raises(TimeoutError) as slow:
        Pool(f"http://127.0.0.1:{srv.port}", context=None).request("GET", "/", body=None, headers={},
                                                                   timeout=0.5)
    err = from_transport(slow.value, Request("list", NAD), "https://api", 0.5)
    assert (str(err), err.exit_code) == (
        "request to https://api timed out after 0.5s while trying to list network-attachment-definitions."
        "k8s.cni.cncf.io", ExitCode.TIMEOUT)


def _tls_pair(tmp_path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context whose certificate names only `api.test`, and a client context trusting it."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "api.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(7).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("api.test")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    (tmp_path / "c.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "k.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
    client = ssl.create_default_context(cafile=str(tmp_path / "c.pem"))
    return server, client


def test_tls_connections_are_reused_and_a_closed_one_replaced(serve: Callable[[Handler], RawServer],
                                                              tmp_path) -> None:
    """Over TLS (the name checked is tls-server-name's, the server reached by address): two requests on the
    first connection; the server then closes it unanswered, and the GET goes again on a second one."""
    server_ctx, client_ctx = _tls_pair(tmp_path)

    def handler(raw: socket.socket, index: int) -> None:
        try:
            conn = server_ctx.wrap_socket(raw, server_side=True)
        except ssl.SSLError:  # the client refusing the certificate (the last part of the test)
            return
        with conn:
            for _ in range(2):
                srv.read_request(conn)
                conn.sendall(ok())
            if index == 1 and srv.read_request(conn):
                return  # closed unanswered
            while srv.read_request(conn):
                conn.sendall(ok())

    srv = serve(handler)
    pool = Pool(f"https://127.0.0.1:{srv.port}", context=client_ctx, server_hostname="api.test")
    for _ in range(4):
        assert pool.request("GET", "/api", body=None, headers={}, timeout=5).status == 200
    assert srv.connections == 2 and len(srv.requests) == 5

    wrong = Pool(f"https://127.0.0.1:{srv.port}", context=client_ctx)  # 127.0.0.1 is not in the certificate
    with pytest.raises(ssl.SSLCertVerificationError) as err:
        wrong.request("GET", "/api", body=None, headers={}, timeout=5)
    assert str(from_transport(err.value, Request("list", NAD), "https://127.0.0.1", None)).startswith(
        "TLS handshake with https://127.0.0.1 failed: certificate verify failed")
