"""Credentials go only where kubectl would send them: a corpus of kubeconfigs, each given to kubectl (built here)
and to macvtapctl against stand-in servers on loopback. For every case both accept or both refuse, and what each
put on the wire is compared: TLS or plaintext, the name sent in the ClientHello, the client certificate,
Authorization, Impersonate-*, and Proxy-Authorization only to the proxy.

kubectl runs `get --raw /version`, macvtapctl `version -o json`; only their GET /version is compared (version
also reads KubeVirt, which the stand-in answers with an empty list). A case where we differ from kubectl on
purpose says why in `differs`."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import socket
import ssl
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.harness.standin import ConnectProxy, Loopback

REPO = Path(__file__).resolve().parents[2]
TOKEN = "corpus-token-1"


# --- PKI: one CA; a server certificate for api.test, localhost, 127.0.0.1 and ::1; a client certificate ---------
@dataclass
class Pki:
    ca: bytes
    server_cert: Path
    server_key: Path
    client_cert: bytes
    client_key: bytes
    only_named: tuple[Path, Path]  # a server certificate naming only other.test


def _pki(d: Path) -> Pki:
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def pem_key(k: Any) -> bytes:
        return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("corpus-ca")).issuer_name(name("corpus-ca"))
          .public_key(ca_key.public_key()).serial_number(1).not_valid_before(now - dt.timedelta(hours=1))
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False),
                         critical=True)
          .sign(ca_key, hashes.SHA256()))

    def leaf(cn: str, sans: list[Any], serial: int, usage: Any) -> tuple[bytes, bytes]:
        key = ec.generate_private_key(ec.SECP256R1())
        b = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(ca.subject).public_key(key.public_key())
             .serial_number(serial).not_valid_before(now - dt.timedelta(hours=1))
             .not_valid_after(now + dt.timedelta(days=1))
             .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return b.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM), pem_key(key)

    from cryptography.x509.oid import ExtendedKeyUsageOID as Eku

    srv = leaf("api", [x509.DNSName("api.test"), x509.DNSName("localhost"),
                       x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                       x509.IPAddress(ipaddress.ip_address("::1"))], 2, Eku.SERVER_AUTH)
    other = leaf("other", [x509.DNSName("other.test")], 3, Eku.SERVER_AUTH)
    client = leaf("corpus-client", [], 4, Eku.CLIENT_AUTH)
    paths = {}
    for stem, (c, k) in (("server", srv), ("other", other)):
        (d / f"{stem}.crt").write_bytes(c)
        (d / f"{stem}.key").write_bytes(k)
        paths[stem] = (d / f"{stem}.crt", d / f"{stem}.key")
    ca_pem = ca.public_bytes(serialization.Encoding.PEM)
    (d / "ca.crt").write_bytes(ca_pem)
    return Pki(ca=ca_pem, server_cert=paths["server"][0], server_key=paths["server"][1], client_cert=client[0],
               client_key=client[1], only_named=paths["other"])


# --- The stand-in API server: TLS or plaintext on one port, records what each request carried -------------------
@dataclass
class Seen:
    transport: str  # "tls" or "plain"
    sni: str | None = None
    client_cn: str | None = None
    line: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)

    def header(self, name: str) -> list[str]:
        return sorted(v for k, v in self.headers if k.lower() == name.lower())

    def impersonation(self) -> list[tuple[str, str]]:
        return sorted((k.lower(), v) for k, v in self.headers if k.lower().startswith("impersonate-"))


class StandIn(Loopback):
    """Answers GET /version, and an empty list anything else; 401 to a bearer token in `reject`."""

    def __init__(self, pki: Pki, host: str = "127.0.0.1", *, cert: tuple[Path, Path] | None = None) -> None:
        self.seen: list[Seen] = []
        self.handshakes: list[str | None] = []  # SNI of every TLS handshake, finished or not
        self.reject: set[str] = set()
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(*(cert or (pki.server_cert, pki.server_key)))
        self.ctx.load_verify_locations(cadata=pki.ca.decode())
        self.ctx.verify_mode = ssl.CERT_OPTIONAL  # record a client certificate when one is presented
        self.ctx.set_alpn_protocols(["http/1.1"])
        self.ctx.sni_callback = lambda _s, name, _c: self.handshakes.append(name)  # type: ignore[assignment]
        super().__init__(host)

    def handle(self, raw: socket.socket, n: int) -> None:
        raw.settimeout(10)
        try:
            first = raw.recv(1, socket.MSG_PEEK)
            if not first:
                return
            conn: socket.socket = raw
            transport, sni, cn = "plain", None, None
            if first == b"\x16":
                before = len(self.handshakes)
                conn = self.ctx.wrap_socket(raw, server_side=True)
                transport = "tls"
                sni = self.handshakes[before] if len(self.handshakes) > before else None
                peer = conn.getpeercert()
                if peer:
                    cn = dict(x[0] for x in peer["subject"]).get("commonName")
            self._http(conn, transport, sni, cn)
        except (OSError, ssl.SSLError):
            return
        finally:
            raw.close()

    def _http(self, conn: socket.socket, transport: str, sni: str | None, cn: str | None) -> None:
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
            head, _, buf = buf.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = [(k.strip(), v.strip()) for k, _, v in (h.partition(":") for h in lines[1:])]
            seen = Seen(transport, sni, cn, lines[0], headers)
            self.seen.append(seen)
            length = int(next((v for k, v in headers if k.lower() == "content-length"), "0"))
            while len(buf) < length:
                buf += conn.recv(65536)
            buf = buf[length:]
            auth = seen.header("Authorization")
            if auth and auth[0].removeprefix("Bearer ") in self.reject:
                status, body = "401 Unauthorized", {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                                    "reason": "Unauthorized", "code": 401}
            elif " /version" in lines[0]:
                status, body = "200 OK", {"major": "1", "minor": "37", "gitVersion": "v1.37.2"}
            else:
                status, body = "200 OK", {"kind": "List", "apiVersion": "v1", "metadata": {}, "items": []}
            data = json.dumps(body).encode()
            conn.sendall(f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(data)}"
                         f"\r\n\r\n".encode() + data)

    def versions(self) -> list[Seen]:
        return [s for s in self.seen if " /version" in s.line]


@dataclass
class Env:
    """What a case can build its kubeconfig from."""

    tmp: Path
    pki: Pki
    server: StandIn
    v6: StandIn | None
    named: StandIn  # a certificate naming only other.test
    proxy: ConnectProxy

    def b64(self, data: bytes) -> str:
        return base64.b64encode(data).decode()

    def url(self, scheme: str = "https", host: str = "127.0.0.1") -> str:
        return f"{scheme}://{host}:{self.server.port}"


@dataclass
class Case:
    name: str
    cluster: Callable[[Env], dict[str, Any]]
    user: Callable[[Env], dict[str, Any]] = lambda e: {"token": TOKEN}
    accepted: bool = True
    flags: tuple[str, ...] = ()
    env: Callable[[Env], dict[str, str]] = lambda e: {}
    setup: Callable[[Env], None] = lambda e: None
    differs: str = ""  # why macvtapctl deliberately differs from kubectl here (compared as stated)
    context: dict[str, Any] | None = None
    server: str = "server"  # which stand-in the case talks to


def _ca(e: Env) -> dict[str, Any]:
    return {"server": e.url(), "certificate-authority-data": e.b64(e.pki.ca)}


def _exec(e: Env, *, api: str = "client.authentication.k8s.io/v1", mode: str | None = "Never",
          expires: str | None = None, tokens: tuple[str, ...] = (TOKEN,), command: str | None = None) -> dict[str, Any]:
    """A plugin printing the next of `tokens` each time it runs (the last one again when they run out)."""
    plugin = e.tmp / "plugin.py"
    plugin.write_text(
        "import json, os, sys\n"
        f"tokens = {list(tokens)!r}\n"
        "count = os.path.join(os.path.dirname(sys.argv[0]), 'runs')\n"
        "n = int(open(count).read()) if os.path.exists(count) else 0\n"
        "open(count, 'w').write(str(n + 1))\n"
        f"status = {{'token': tokens[min(n, len(tokens) - 1)]}}\n"
        f"if {expires!r}: status['expirationTimestamp'] = {expires!r}\n"
        f"print(json.dumps({{'apiVersion': {api!r}, 'kind': 'ExecCredential', 'status': status}}))\n")
    cfg: dict[str, Any] = {"apiVersion": api, "command": command or sys.executable, "args": [str(plugin)]}
    if mode:
        cfg["interactiveMode"] = mode
    return {"exec": cfg}


def _past() -> str:
    return (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _future() -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _write(e: Env, name: str, data: bytes | str) -> str:
    path = e.tmp / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return str(path)


CASES: list[Case] = [
    Case("https with CA data and a token", _ca),
    Case("scheme in upper case", lambda e: {**_ca(e), "server": e.url("HTTPS")}),
    Case("scheme in mixed case", lambda e: {**_ca(e), "server": e.url("Https")}),
    Case("server with a leading blank", lambda e: {**_ca(e), "server": " " + e.url()}, accepted=False),
    Case("server without a scheme is plain http, no credentials",
         lambda e: {**_ca(e), "server": f"127.0.0.1:{e.server.port}"}),
    Case("plain http gets no token", lambda e: {"server": e.url("http")}),
    Case("plain http gets no basic auth but the impersonation", lambda e: {"server": e.url("http")},
         lambda e: {"username": "alice", "password": "pw", "as": "jane"}),
    Case("ftp server refused", lambda e: {**_ca(e), "server": f"ftp://127.0.0.1:{e.server.port}"},
         accepted=False),
    Case('insecure-skip-tls-verify: "false" (a string)',
         lambda e: {**_ca(e), "insecure-skip-tls-verify": "false"}, accepted=False),
    Case('insecure-skip-tls-verify: "true" (a string)',
         lambda e: {"server": e.url(), "insecure-skip-tls-verify": "true"}, accepted=False),
    Case("insecure-skip-tls-verify: true without a CA", lambda e: {"server": e.url(),
                                                                  "insecure-skip-tls-verify": True}),
    Case("insecure-skip-tls-verify: true with a CA", lambda e: {**_ca(e), "insecure-skip-tls-verify": True},
         accepted=False),
    Case("an untrusted server gets no token", lambda e: {"server": e.url()}, accepted=False),
    Case("CA as a file", lambda e: {"server": e.url(), "certificate-authority": str(e.tmp / "ca.crt")}),
    Case("CA as a relative file", lambda e: {"server": e.url(), "certificate-authority": "ca.crt"}),
    Case("CA file and data both", lambda e: {**_ca(e), "certificate-authority": str(e.tmp / "ca.crt")},
         accepted=False),
    Case("CA file missing", lambda e: {"server": e.url(), "certificate-authority": str(e.tmp / "nope.crt")},
         accepted=False),
    Case("CA data not base64", lambda e: {"server": e.url(), "certificate-authority-data": "%%%"},
         accepted=False),
    Case("client certificate and key as data", _ca,
         lambda e: {"client-certificate-data": e.b64(e.pki.client_cert),
                    "client-key-data": e.b64(e.pki.client_key)}),
    Case("client certificate and key as files", _ca,
         lambda e: {"client-certificate": _write(e, "c.crt", e.pki.client_cert),
                    "client-key": _write(e, "c.key", e.pki.client_key)}),
    Case("client certificate without its key", _ca,
         lambda e: {"client-certificate-data": e.b64(e.pki.client_cert)}, accepted=False),
    Case("tokenFile", _ca, lambda e: {"tokenFile": _write(e, "tok", "from-file\n")}),
    Case("token and tokenFile both", _ca, lambda e: {"token": TOKEN, "tokenFile": _write(e, "tok", "from-file\n")}),
    Case("tokenFile missing", _ca, lambda e: {"tokenFile": str(e.tmp / "missing")}, accepted=False),
    Case("token as a number", _ca, lambda e: {"token": 12345}, accepted=False),
    Case("basic auth", _ca, lambda e: {"username": "alice", "password": "pw"}),
    Case("token and basic auth both", _ca, lambda e: {"token": TOKEN, "username": "alice", "password": "pw"},
         accepted=False),
    Case("exec v1", _ca, _exec),
    Case("exec v1beta1 without interactiveMode", _ca,
         lambda e: _exec(e, api="client.authentication.k8s.io/v1beta1", mode=None)),
    Case("exec v1 without interactiveMode", _ca, lambda e: _exec(e, mode=None), accepted=False),
    Case("exec with a future expiry", _ca, lambda e: _exec(e, expires=_future())),
    Case("exec with an expired credential", _ca, lambda e: _exec(e, expires=_past())),
    Case("exec answered 401, its credential refreshed", _ca,
         lambda e: _exec(e, tokens=("stale-token", TOKEN)),
         setup=lambda e: e.server.reject.add("stale-token"),
         differs="kubectl fails the request the server answered 401 and refreshes for the next one; macvtapctl "
                 "runs the plugin again and sends the same request once more (an unauthenticated request was "
                 "not carried out), so a command succeeds where kubectl's first attempt fails"),
    Case("exec command not found", _ca, lambda e: _exec(e, command=str(e.tmp / "no-such-plugin")), accepted=False),
    Case("exec unknown apiVersion", _ca, lambda e: _exec(e, api="client.authentication.k8s.io/v9"),
         accepted=False),
    Case("proxy-url with credentials", lambda e: {**_ca(e), "server": f"https://api.test:{e.server.port}",
                                                  "proxy-url": f"http://bob:s%40cret@127.0.0.1:{e.proxy.port}"}),
    Case("HTTPS_PROXY with credentials for a named server",
         lambda e: {**_ca(e), "server": f"https://api.test:{e.server.port}"},
         env=lambda e: {"HTTPS_PROXY": f"http://carol:pw@127.0.0.1:{e.proxy.port}", "NO_PROXY": "other.test"}),
    Case("HTTPS_PROXY is not used for loopback", _ca,
         env=lambda e: {"HTTPS_PROXY": f"http://carol:pw@127.0.0.1:{e.proxy.port}"}),
    Case("HTTP_PROXY is not used for an https server", _ca,
         env=lambda e: {"HTTP_PROXY": f"http://carol:pw@127.0.0.1:{e.proxy.port}"}),
    Case("IPv6 server", lambda e: {"server": f"https://[::1]:{e.v6.port if e.v6 else 0}",
                                   "certificate-authority-data": e.b64(e.pki.ca)}, server="v6"),
    Case("tls-server-name is the name verified and sent", lambda e: {
        "server": f"https://127.0.0.1:{e.named.port}", "certificate-authority-data": e.b64(e.pki.ca),
        "tls-server-name": "other.test"}, server="named"),
    Case("a certificate that does not name the server", lambda e: {
        "server": f"https://127.0.0.1:{e.named.port}", "certificate-authority-data": e.b64(e.pki.ca)},
         accepted=False, server="named"),
    Case("impersonation from the kubeconfig", _ca,
         lambda e: {"token": TOKEN, "as": "jane", "as-uid": "42", "as-groups": ["dev", "ops"],
                    "as-user-extra": {"scopes": ["view", "edit"]}}),
    Case("impersonation flags", _ca, flags=("--as", "jane", "--as-group", "dev", "--as-group", "ops",
                                            "--as-uid", "42")),
    Case("impersonation flags over the kubeconfig's", _ca,
         lambda e: {"token": TOKEN, "as": "jane", "as-groups": ["dev"]}, flags=("--as", "joe")),
    Case("as-groups without as", _ca, lambda e: {"token": TOKEN, "as-groups": ["dev"]}, accepted=False),
    Case("as-groups as a string", _ca, lambda e: {"token": TOKEN, "as": "jane", "as-groups": "dev"},
         accepted=False),
    Case("unknown fields are ignored", lambda e: {**_ca(e), "shiny-new-field": True},
         lambda e: {"token": TOKEN, "another": {"x": 1}}),
    Case("a context naming an undefined user", _ca, context={"cluster": "c", "user": "nobody"}, accepted=False),
]


@pytest.fixture(scope="module")
def kubectl() -> str:
    from tests.harness.controlplane import binaries

    return str(binaries() / "kubectl")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return _pki(tmp_path_factory.mktemp("pki"))


def _has_ipv6() -> bool:
    try:
        socket.create_server(("::1", 0), family=socket.AF_INET6).close()
        return True
    except OSError:
        return False


@pytest.fixture
def env(tmp_path: Path, pki: Pki) -> Iterator[Env]:
    (tmp_path / "ca.crt").write_bytes(pki.ca)
    server = StandIn(pki)
    named = StandIn(pki, cert=pki.only_named)
    v6 = StandIn(pki, "::1") if _has_ipv6() else None
    proxy = ConnectProxy(target_port=server.port)
    yield Env(tmp_path, pki, server, v6, named, proxy)
    for s in (server, named, proxy, *([v6] if v6 else [])):
        s.close()


def _run(cmd: list[str], env: Env, extra_env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items()
            if k not in ("KUBECONFIG", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY",
                         "no_proxy") and not k.startswith("MACVTAPCTL_")}
    home = env.tmp / "home"
    home.mkdir(exist_ok=True)
    return subprocess.run(cmd, env={**base, "HOME": str(home), "NO_COLOR": "1", **extra_env}, cwd=str(REPO),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, check=False)


@dataclass(frozen=True)
class Wire:
    """What one client sent, as the stand-ins saw it."""

    ok: bool
    requests: tuple[tuple[Any, ...], ...]  # (transport, sni, client CN, Authorization, Impersonate-*)
    handshakes: int  # TLS handshakes that reached the server, answered or not
    proxy_auth: tuple[str, ...]
    proxy_connects: tuple[str, ...]


def _observe(env: Env, stand_in: StandIn, run: Callable[[], subprocess.CompletedProcess[str]]) -> tuple[Wire, str]:
    stand_in.seen.clear()
    stand_in.handshakes.clear()
    env.proxy.heads.clear()
    for runs in env.tmp.glob("runs"):
        runs.unlink()
    proc = run()
    requests = tuple((s.transport, s.sni, s.client_cn, tuple(s.header("Authorization")), tuple(s.impersonation()),
                      tuple(s.header("Proxy-Authorization"))) for s in stand_in.versions())
    # The request target only: urllib3 on Python 3.11 sends CONNECT as HTTP/1.0, Go as HTTP/1.1 (the same Host).
    connects = tuple(h.split("\r\n")[0].rsplit(" ", 1)[0] for h in env.proxy.heads)
    return Wire(proc.returncode == 0, requests, len(stand_in.handshakes), tuple(env.proxy.authorizations()),
                connects), proc.stderr


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_kubectl_and_macvtapctl_agree(case: Case, env: Env, kubectl: str) -> None:
    if case.server == "v6" and env.v6 is None:
        pytest.fail("this machine has no IPv6 loopback (::1): the IPv6 case cannot run")
    stand_in = {"server": env.server, "named": env.named, "v6": env.v6}[case.server]
    assert stand_in is not None
    doc = {"apiVersion": "v1", "kind": "Config", "current-context": "c",
           "clusters": [{"name": "c", "cluster": case.cluster(env)}],
           "users": [{"name": "u", "user": case.user(env)}],
           "contexts": [{"name": "c", "context": case.context or {"cluster": "c", "user": "u"}}]}
    cfg = env.tmp / "kubeconfig"
    cfg.write_text(yaml.safe_dump(doc))
    case.setup(env)
    extra = case.env(env)
    theirs, their_err = _observe(env, stand_in, lambda: _run(
        [kubectl, "--kubeconfig", str(cfg), *case.flags, "get", "--raw", "/version"], env, extra))
    if case.differs:
        stand_in.reject = set(stand_in.reject)  # the same rejections for both runs
    ours, our_err = _observe(env, stand_in, lambda: _run(
        [sys.executable, "-m", "macvtapctl", "--kubeconfig", str(cfg), *case.flags, "version", "-o", "json"],
        env, extra))
    detail = f"\nkubectl: {theirs}\n{their_err}\nmacvtapctl: {ours}\n{our_err}"
    # Never a secret on the terminal: the token, the proxy's password, the client key.
    for secret in (TOKEN, "s%40cret", "s@cret", "carol:pw", e_key(env)):
        assert secret not in our_err, detail
    if case.differs:
        assert theirs.ok is False and ours.ok is True, detail
        assert ours.requests[-1][3] == (f"Bearer {TOKEN}",), detail
        assert all(r[3] in ((f"Bearer {TOKEN}",), ("Bearer stale-token",)) for r in theirs.requests), detail
        return
    assert (theirs.ok, ours.ok) == (case.accepted, case.accepted), detail
    assert ours.requests == theirs.requests, detail
    assert ours.proxy_auth == theirs.proxy_auth and ours.proxy_connects == theirs.proxy_connects, detail
    assert (ours.handshakes > 0) == (theirs.handshakes > 0), detail
    if not case.accepted:
        assert len(our_err.strip().splitlines()) == 1 and "Traceback" not in our_err, detail
        # With -v (a traceback on stderr) no secret either.
        loud = _run([sys.executable, "-m", "macvtapctl", "--kubeconfig", str(cfg), *case.flags, "version", "-v"],
                    env, extra).stderr
        for secret in (TOKEN, "s%40cret", "s@cret", "carol:pw", e_key(env)):
            assert secret not in loud, loud
    for request in ours.requests:
        assert request[5] == (), "Proxy-Authorization reached the API server" + detail


def e_key(env: Env) -> str:
    return env.pki.client_key.decode().splitlines()[1]


def test_the_corpus_is_large_and_covers_what_was_asked() -> None:
    names = " ".join(c.name for c in CASES)
    assert len(CASES) >= 30
    for topic in ("upper case", "string", "with a CA", "CA file and data", "without its key", "tokenFile", "exec",
                  "expired", "401", "proxy-url", "HTTPS_PROXY", "IPv6", "tls-server-name", "impersonation",
                  "unknown fields", "as a number"):
        assert topic in names, topic
