"""The API client's HTTP on urllib3 (kube/wire.py), against stand-in servers on loopback that misbehave on purpose:
a server closing kept-alive connections, a chunked watch split mid-line, a body that trickles past the deadline,
an early answer to an upload, HTTP proxies. (The real API server over TLS: every integration test; kubectl beside
us: tests/integration/test_kubeconfig_corpus.py.)"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from macvtapctl.errors import ExitCode, MacvtapctlError
from macvtapctl.kube.errors import Request, from_transport
from macvtapctl.kube.resources import NAD
from macvtapctl.kube.transport import Endpoint
from macvtapctl.kube.wire import Wire
from tests.harness.standin import ConnectProxy, Loopback, read_head

Handler = Callable[[socket.socket, int], None]  # (accepted socket, index of the connection)


def wire(server: str, **kw: object) -> Wire:
    return Wire(Endpoint(server=server, **kw))  # type: ignore[arg-type]


class RawServer(Loopback):
    """A TCP server on loopback whose handler writes exactly what the test wants (given the connection and its
    number, from 1)."""

    def __init__(self, handler: Handler) -> None:
        self.requests: list[bytes] = []
        self.handler = handler
        super().__init__()

    def handle(self, conn: socket.socket, n: int) -> None:
        self.handler(conn, n)

    def read_request(self, conn: socket.socket) -> bytes:
        """The request head (these tests send no bodies but where they say so)."""
        data = read_head(conn)
        if data:
            self.requests.append(data)
        return data


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
    pool = wire(f"http://127.0.0.1:{srv.port}")
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
    pool = wire(f"http://127.0.0.1:{srv.port}")
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
    pool = wire(f"http://127.0.0.1:{srv.port}")
    pool.request("GET", "/a", body=None, headers={}, timeout=5)
    assert pool.request("GET", "/b", body=None, headers={}, timeout=5).status == 200
    assert srv.connections == 2
    with pytest.raises(Exception) as err:
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
    stream = wire(f"http://127.0.0.1:{srv.port}").stream(
        "GET", "/w", headers={}, connect_timeout=5, read_timeout=30)
    lines_left = iter(stream)
    lines = [next(lines_left), next(lines_left)]
    assert lines == [b'{"type":"ADDED","object":{}}\n', b'{"type":"DELETED","object":{}}\n']
    threading.Timer(0.2, stream.shutdown).start()
    t0 = time.monotonic()
    try:
        rest = list(lines_left)  # blocked until shutdown(), which ends the stream ...
    except Exception:
        rest = []
    assert rest == [] and time.monotonic() - t0 < 5
    released.set()
    stream.close()


def test_a_plain_http_server_through_a_proxy_gets_the_absolute_form_and_credentials(
        serve: Callable[[Handler], RawServer]) -> None:
    def handler(conn: socket.socket, _: int) -> None:
        srv.read_request(conn)
        conn.sendall(ok(close=True))
        conn.close()

    srv = serve(handler)
    pool = wire("http://10.9.9.9:8080/prefix", proxy=f"http://u%40x:p%3Aw@127.0.0.1:{srv.port}")
    assert pool.request("GET", "/api?x=1", body=None, headers={}, timeout=5).status == 200
    head = srv.requests[0].decode()
    assert head.startswith("GET http://10.9.9.9:8080/prefix/api?x=1 HTTP/1.1\r\n")
    assert "Proxy-Authorization: Basic dUB4OnA6dw==\r\n" in head  # base64 of "u@x:p:w"


@pytest.mark.parametrize(("proxy", "shown"), [("socks5://127.0.0.1:1080", "socks5://127.0.0.1:1080"),
                                             ("http://", "http://"),
                                             ("socks5://u:secret@proxy:1080", "socks5://u:xxxxx@proxy:1080")])
def test_an_unsupported_proxy_is_one_line_naming_it_without_its_password(proxy: str, shown: str) -> None:
    with pytest.raises(MacvtapctlError) as err:
        wire("https://api:6443", proxy=proxy)
    assert str(err.value) == (f'invalid kubeconfig: proxy-url "{shown}": not supported (only http:// and https:// '
                              "proxies are)")


def test_refused_and_timed_out_say_so(serve: Callable[[Handler], RawServer]) -> None:
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    with pytest.raises(Exception) as refused:
        wire(f"http://127.0.0.1:{port}").request("GET", "/", body=None, headers={}, timeout=5)
    err = from_transport(refused.value, Request("list", NAD), f"http://127.0.0.1:{port}", None)
    assert (str(err), err.exit_code) == (f"cannot reach the API server at http://127.0.0.1:{port}: connection "
                                         "refused", ExitCode.UNREACHABLE)

    srv = serve(lambda conn, _: (srv.read_request(conn), time.sleep(3)))  # reads, never answers
    with pytest.raises(Exception) as slow:
        wire(f"http://127.0.0.1:{srv.port}").request("GET", "/", body=None, headers={},
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
    server_ctx, _ = _tls_pair(tmp_path)

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
    ca = (tmp_path / "c.pem").read_bytes()
    pool = wire(f"https://127.0.0.1:{srv.port}", ca=ca, tls_server_name="api.test")
    for _ in range(4):
        assert pool.request("GET", "/api", body=None, headers={}, timeout=5).status == 200
    assert srv.connections == 2 and len(srv.requests) == 5

    wrong = wire(f"https://127.0.0.1:{srv.port}", ca=ca)  # 127.0.0.1 is not in the certificate
    with pytest.raises(Exception) as err:
        wrong.request("GET", "/api", body=None, headers={}, timeout=5)
    assert str(from_transport(err.value, Request("list", NAD), "https://127.0.0.1", None)).startswith(
        "TLS handshake with https://127.0.0.1 failed: certificate verify failed")


def test_request_timeout_is_a_deadline_for_the_whole_answer(serve: Callable[[Handler], RawServer]) -> None:
    """kubectl's --request-timeout bounds the request, not each read: a body trickling a byte every 0.2 s
    (each read well inside the limit) is cut at the deadline."""
    def handler(conn: socket.socket, _: int) -> None:
        srv.read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
        for _ in range(100):
            time.sleep(0.2)
            try:
                conn.sendall(b" ")
            except OSError:
                return

    srv = serve(handler)
    t0 = time.monotonic()
    with pytest.raises(Exception) as err:
        wire(f"http://127.0.0.1:{srv.port}").request("GET", "/", body=None, headers={}, timeout=1.0)
    took = time.monotonic() - t0
    mapped = from_transport(err.value, Request("list", NAD), "https://api", 1.0)
    assert mapped.exit_code == ExitCode.TIMEOUT and "timed out after 1s" in str(mapped)
    assert took < 1.6, took  # the deadline, not 100 reads of 0.2 s


def test_an_early_answer_to_an_upload_is_the_answer_not_a_broken_pipe(serve: Callable[[Handler], RawServer]) -> None:
    """A server may answer (413, 401, 429) and close before the body is sent: the client reports that answer."""
    def handler(conn: socket.socket, _: int) -> None:
        srv.read_request(conn)
        body = b'{"kind":"Status","code":413,"message":"too large"}'
        conn.sendall(b"HTTP/1.1 413 Request Entity Too Large\r\nConnection: close\r\nContent-Length: "
                     + str(len(body)).encode() + b"\r\n\r\n" + body)
        conn.shutdown(socket.SHUT_WR)
        time.sleep(0.3)
        conn.close()

    srv = serve(handler)
    resp = wire(f"http://127.0.0.1:{srv.port}").request("POST", "/", body=b"x" * (16 << 20), headers={},
                                                       timeout=10)
    assert resp.status == 413 and b"too large" in resp.data


def test_connect_to_an_ipv6_server_is_bracketed_and_the_proxy_password_never_printed() -> None:
    proxy = ConnectProxy(answer=b"407 Proxy Authentication Required")
    try:
        with pytest.raises(Exception) as err:
            wire("https://[fd00::1]:6443", proxy=f"http://user:s3cret@127.0.0.1:{proxy.port}").request(
                "GET", "/version", body=None, headers={}, timeout=5)
    finally:
        proxy.close()
    head = proxy.heads[0]
    assert head.startswith("CONNECT [fd00::1]:6443 HTTP/1.")
    assert "Proxy-Authorization: Basic dXNlcjpzM2NyZXQ=" in head  # to the proxy: base64 of user:s3cret
    mapped = from_transport(err.value, Request("get", NAD), "https://[fd00::1]:6443", None)
    assert mapped.exit_code == ExitCode.UNREACHABLE and "proxy" in str(mapped)
    assert "s3cret" not in str(mapped) and "s3cret" not in repr(err.value)


def test_a_refused_proxy_is_named_without_its_password() -> None:
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    with pytest.raises(Exception) as err:
        wire("https://api.example:6443", proxy=f"http://user:s3cret@127.0.0.1:{port}").request(
            "GET", "/version", body=None, headers={}, timeout=5)
    mapped = from_transport(err.value, Request("get", NAD), "https://api.example:6443", None)
    assert str(mapped) == ("cannot reach the API server at https://api.example:6443 through the proxy: "
                           "connection refused")
    assert "s3cret" not in repr(err.value)


def test_a_kept_alive_connection_is_reused_past_1024_descriptors(serve: Callable[[Handler], RawServer]) -> None:
    """select() cannot watch a descriptor past 1,023; the idle check must not fail there."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    fillers = [socket.socket() for _ in range(1100)]
    try:
        def handler(conn: socket.socket, _: int) -> None:
            while srv.read_request(conn):
                conn.sendall(ok())

        srv = serve(handler)
        pool = wire(f"http://127.0.0.1:{srv.port}")
        for _ in range(3):
            assert pool.request("GET", "/api", body=None, headers={}, timeout=5).status == 200
        assert srv.connections == 1
    finally:
        for f in fillers:
            f.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
