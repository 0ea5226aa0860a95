"""How to reach the API server: the kubeconfig's (or the pod's) server, TLS and credentials, read as client-go reads
them (kubeconfig.py types and confirms the fields), carried by urllib3 (wire.py).

Credentials are applied per request, in client-go's order: a token (its tokenFile re-read, client-go's one-minute
cache), else basic auth, else an exec plugin's credential (exec_credential.py: cached until it expires, fetched
again after a 401); then the impersonation headers. Only an auth-provider (oidc) still goes through the
`kubernetes` package, whose import costs ~0.45 s.
"""

from __future__ import annotations

import base64
import os
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from macvtapctl.errors import Hint, MacvtapctlError, UsageError
from macvtapctl.kube import exec_credential, kubeconfig, proxy
from macvtapctl.kube.options import ConnectionOptions

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_FILE_PERIOD = 60.0  # seconds: client-go's cached file token source reads the file again after a minute


def normalize_server(raw: str) -> str:
    """The server as kubectl reaches it (client-go's rest.DefaultServerURL as clientcmd calls it): the scheme is
    case-insensitive (Go's URL parser lowers it); a server without one is plain http (clientcmd decides TLS before
    it has merged the CA, so `host:port` is http://host:port, and gets no credentials: see `secure`). Anything but
    http and https is refused here, before a byte is sent; so is a blank or a control character anywhere (Python's
    URL parser would strip a leading one, Go's refuses it)."""
    if any(ch <= " " or ch == "\x7f" for ch in raw):
        raise MacvtapctlError(f'invalid kubeconfig: server "{raw}" contains a blank or a control character')
    parts = urlsplit(raw)
    if not parts.scheme or not parts.netloc:
        parts = urlsplit("http://" + raw)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise MacvtapctlError(f'invalid kubeconfig: server "{raw}" is not an http or https URL')
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise MacvtapctlError(f'invalid kubeconfig: server "{raw}" has an invalid port') from None
    return parts._replace(scheme=scheme).geturl().rstrip("/")


@dataclass(frozen=True)
class Impersonation:
    """kubectl's --as, --as-uid, --as-group (else the kubeconfig's as, as-uid, as-groups, as-user-extra)."""

    user: str = ""
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def headers(self) -> list[tuple[str, str]]:
        if not self.user:
            return []
        out = [("Impersonate-User", self.user)]
        if self.uid:
            out.append(("Impersonate-Uid", self.uid))
        out += [("Impersonate-Group", g) for g in self.groups]
        for key, values in self.extra.items():
            # client-go escapes the key as a header name must be (RFC 7230 token, else percent-encoded).
            out += [(f"Impersonate-Extra-{quote(key, safe='')}", v) for v in values]
        return out


class Credentials:
    """What authenticates each request; thread-safe (--concurrency sends from many threads)."""

    def __init__(self, *, token: str = "", token_file: Path | None = None, username: str = "", password: str = "",
                 exec_source: exec_credential.Source | None = None, static: dict[str, str] | None = None) -> None:
        self.token, self.token_file = token, token_file
        self.basic = (username, password) if (username or password) else None
        self.exec_source = exec_source
        self.static = static or {}  # the `kubernetes` package's answer for an auth-provider
        self._lock = threading.Lock()
        self._file_token: tuple[str, float] | None = None

    def _bearer(self) -> str:
        if self.token_file is None:
            return self.token
        with self._lock:
            now = time.monotonic()
            if self._file_token is not None and now - self._file_token[1] < TOKEN_FILE_PERIOD:
                return self._file_token[0]
            try:
                value = self.token_file.read_text().strip()
            except OSError as exc:
                if self.token:
                    return self.token  # client-go keeps the kubeconfig's token when the file cannot be read
                raise MacvtapctlError(f'invalid kubeconfig: cannot read tokenFile "{self.token_file}": '
                                      f"{exc.strerror}") from None
            self._file_token = (value, now)
            return value

    def headers(self) -> tuple[dict[str, str], exec_credential.Credential | None]:
        """The Authorization header for the next request, and the exec credential it came from (for a 401)."""
        bearer = self._bearer()
        if bearer:
            return {"Authorization": f"Bearer {bearer}"}, None
        if self.basic is not None:
            raw = f"{self.basic[0]}:{self.basic[1]}".encode()
            return {"Authorization": "Basic " + base64.b64encode(raw).decode()}, None
        if self.exec_source is not None:
            cred = self.exec_source.get()
            return ({"Authorization": f"Bearer {cred.token}"} if cred.token else {}), cred
        return dict(self.static), None

    def rejected(self, used: exec_credential.Credential | None) -> bool:
        """A 401: True when a fresh credential may now be had (an exec plugin's), so the request may be resent."""
        return used is not None and self.exec_source is not None and self.exec_source.rejected(used)


@dataclass
class Endpoint:
    """Where the server is, how to verify it and how to authenticate; files and inline data both as bytes."""

    server: str
    credentials: Credentials = field(default_factory=Credentials)
    ca: bytes | None = None  # PEM
    cert: bytes | None = None  # PEM client certificate
    key: bytes | None = None  # PEM client key
    insecure: bool = False
    tls_server_name: str | None = None
    proxy: str | None = None
    proxy_source: str = "kubeconfig: proxy-url"  # what names the proxy, for errors
    impersonation: Impersonation = field(default_factory=Impersonation)

    @property
    def tls(self) -> bool:
        return self.server.startswith("https://")  # normalised: the scheme is lower case


def endpoint(settings: ConnectionOptions) -> Endpoint:
    """kubectl's precedence: the kubeconfig (files merged, context selected), else the pod's service account;
    the kubeconfig's proxy-url, else the environment's proxy (proxy.py); --as/--as-uid/--as-group over the
    kubeconfig's as/as-uid/as-groups."""
    paths = kubeconfig.kubeconfig_paths(settings.kubeconfig)
    merged = kubeconfig.load_merged(paths, explicit=bool(settings.kubeconfig))
    if merged["_found"]:
        entry = kubeconfig.context_entry(merged, settings.context)
        if entry is None:
            raise MacvtapctlError("invalid kubeconfig: no current-context is set and no --context was given")
        ep = _from_kubeconfig(merged, entry[1], settings, paths)
    elif os.environ.get("KUBERNETES_SERVICE_HOST"):
        ep = _in_cluster()
    else:
        raise UsageError("no kubeconfig found (tried " + ", ".join(str(p) for p in paths) + ")",
                         hint=Hint.NO_KUBECONFIG)
    ep.impersonation = _impersonation(settings, ep.impersonation)
    if ep.ca is not None and ep.insecure:
        # client-go: "specifying a root certificates file with the insecure flag is not allowed"
        raise MacvtapctlError("invalid kubeconfig: insecure-skip-tls-verify cannot be set together with a "
                              "certificate authority")
    if not ep.proxy and (found := proxy.from_environment(ep.server, os.environ)):
        ep.proxy, ep.proxy_source = found
    return ep


def _impersonation(settings: ConnectionOptions, configured: Impersonation) -> Impersonation:
    user, uid, groups = settings.impersonate or "", settings.impersonate_uid or "", settings.impersonate_groups
    if not (user or uid or groups):
        return configured
    if (uid or groups) and not (user or configured.user):
        raise UsageError("--as-group and --as-uid need a user to impersonate: add --as")
    # kubectl's flags replace the kubeconfig's fields one by one (clientcmd's overrides).
    return Impersonation(user=user or configured.user, uid=uid or configured.uid,
                         groups=groups or configured.groups, extra=configured.extra)


def _from_kubeconfig(merged: dict[str, Any], ctx: dict[str, Any], settings: ConnectionOptions,
                     paths: list[Path]) -> Endpoint:
    cluster = kubeconfig.cluster_of(merged, ctx)
    user = kubeconfig.user_of(merged, ctx)
    server = normalize_server(cluster.server)
    impersonation = Impersonation(user=user.impersonate, uid=user.impersonate_uid, groups=user.impersonate_groups,
                                  extra=user.impersonate_extra)
    if not server.startswith("https://"):
        # clientcmd reads the user's credentials and the server's CA only for a TLS server (kubectl#744): a token
        # is never sent in clear text. Impersonation is still asked for.
        return Endpoint(server=server, impersonation=impersonation, proxy=cluster.proxy_url or None)
    exec_source = None
    static: dict[str, str] = {}
    if user.exec is not None:
        info = {"server": server, "tls-server-name": cluster.tls_server_name or None,
                "insecure-skip-tls-verify": cluster.insecure,
                "certificate-authority-data": base64.b64encode(cluster.ca).decode() if cluster.ca else None}
        exec_source = exec_credential.Source(user.exec, {k: v for k, v in info.items() if v is not None})
    elif user.auth_provider is not None:
        static = _from_library(settings, paths)
    return Endpoint(
        server=server,
        credentials=Credentials(token=user.token, token_file=user.token_file, username=user.username,
                                password=user.password, exec_source=exec_source, static=static),
        ca=cluster.ca, cert=user.cert, key=user.key, insecure=cluster.insecure,
        tls_server_name=cluster.tls_server_name or None, proxy=cluster.proxy_url or None,
        impersonation=impersonation)


def _in_cluster() -> Endpoint:
    host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    try:
        ca = (SERVICE_ACCOUNT / "ca.crt").read_bytes()
    except OSError as exc:
        raise MacvtapctlError(f"in-cluster configuration failed: {exc}") from None
    host = f"[{host}]" if ":" in host else host
    # The token file is read again as the kubelet rotates it (client-go's InClusterConfig sets BearerTokenFile).
    return Endpoint(server=f"https://{host}:{port}", credentials=Credentials(token_file=SERVICE_ACCOUNT / "token"),
                    ca=ca)


def _from_library(settings: ConnectionOptions, paths: list[Path]) -> dict[str, str]:
    """An auth-provider's Authorization header (oidc), from the `kubernetes` package's loader."""
    from kubernetes import client, config

    cfg = client.Configuration()
    try:
        config.load_kube_config(config_file=os.pathsep.join(str(p) for p in paths if p.exists()),
                                context=settings.context, client_configuration=cfg, persist_config=False)
    except config.ConfigException as exc:
        raise MacvtapctlError(f"invalid kubeconfig: {exc}") from None
    auth = cfg.get_api_key_with_prefix("BearerToken") or (cfg.api_key or {}).get("authorization")
    return {"Authorization": str(auth)} if auth else {}


def ssl_context(ep: Endpoint, cert: bytes | None = None, key: bytes | None = None) -> ssl.SSLContext:
    """Server verification against the kubeconfig's CA (else the system's), and the client certificate (the
    kubeconfig's, or an exec plugin's)."""
    ctx = ssl.create_default_context(cadata=ep.ca.decode() if ep.ca else None)
    if ep.insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    cert, key = (cert, key) if cert else (ep.cert, ep.key)
    if cert and key:
        import tempfile  # only for client certificates

        # ssl loads a certificate chain from files only: a private directory, gone once loaded.
        with tempfile.TemporaryDirectory(prefix="macvtapctl-") as tmp:
            cert_path, key_path = Path(tmp) / "client.crt", Path(tmp) / "client.key"
            for path, data in ((cert_path, cert), (key_path, key)):
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
            try:
                ctx.load_cert_chain(str(cert_path), str(key_path))
            except ssl.SSLError as exc:
                raise MacvtapctlError(f"invalid kubeconfig: the client certificate or key cannot be used: "
                                      f"{exc.reason or exc}") from None
    return ctx
