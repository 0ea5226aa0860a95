"""How to reach the API server: the kubeconfig's (or the pod's) server, TLS and credentials, on one pool
(connection.py).

The `kubernetes` package loads kubeconfigs too, but importing it costs 0.45 s of a 0.8 s command (pydantic,
requests-oauthlib, dateutil, its API and stream modules; measured with -X importtime), and its ApiClient walks
every request body to sanitize it. The common kubeconfigs — a token or token file, client certificates,
certificate authorities, as files or inline data — are read here; anything else (an exec plugin, an
auth-provider, basic auth) is still loaded by the `kubernetes` package, whose result is used the same way.
"""

from __future__ import annotations

import base64
import os
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from macvtapctl.errors import Hint, MacvtapctlError, UsageError
from macvtapctl.kube import kubeconfig, proxy
from macvtapctl.kube.connection import Pool
from macvtapctl.kube.options import ConnectionOptions

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
POOL_SIZE = 64  # connections kept per host: --concurrency allows 64 writers


@dataclass
class Endpoint:
    """Where the server is and how to authenticate; files and inline data both as bytes."""

    server: str
    token: str | None = None
    ca: bytes | None = None  # PEM
    cert: bytes | None = None  # PEM client certificate
    key: bytes | None = None  # PEM client key
    insecure: bool = False
    tls_server_name: str | None = None
    proxy: str | None = None
    proxy_source: str = "kubeconfig: proxy-url"  # what names the proxy, for errors
    headers: dict[str, str] = field(default_factory=dict)  # from the `kubernetes` loader (exec, auth-provider)


def endpoint(settings: ConnectionOptions) -> Endpoint:
    """kubectl's precedence: the kubeconfig (files merged, context selected), else the pod's service account;
    the kubeconfig's proxy-url, else the environment's proxy (proxy.py)."""
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
    if not ep.proxy and (found := proxy.from_environment(ep.server, os.environ)):
        ep.proxy, ep.proxy_source = found
    return ep


def _named(items: list[dict[str, Any]], name: str, key: str) -> tuple[dict[str, Any], Path]:
    """The entry's body and the directory of the file that holds it."""
    for item in items:
        if item.get("name") == name:
            return item.get(key) or {}, Path(str(item.get("_dir") or "."))
    raise MacvtapctlError(f'invalid kubeconfig: the context refers to {key} "{name}", which is not defined')


def _material(section: dict[str, Any], name: str, base: Path) -> bytes | None:
    """`<name>-data` (base64) or `<name>` (a path, relative to the kubeconfig's directory)."""
    data = section.get(f"{name}-data")
    if data:
        try:
            return base64.b64decode(str(data), validate=True)
        except ValueError:
            raise MacvtapctlError(f"invalid kubeconfig: {name}-data is not base64") from None
    path = section.get(name)
    if path:
        full = (base / str(path)).expanduser()
        try:
            return full.read_bytes()
        except OSError as exc:
            raise MacvtapctlError(f'invalid kubeconfig: cannot read {name} "{full}": {exc.strerror}') from None
    return None


def _from_kubeconfig(merged: dict[str, Any], ctx: dict[str, Any], settings: ConnectionOptions,
                     paths: list[Path]) -> Endpoint:
    cluster, cluster_dir = _named(merged["clusters"], str(ctx.get("cluster")), "cluster")
    user, user_dir = _named(merged["users"], str(ctx.get("user")), "user") if ctx.get("user") else ({}, Path())
    if any(k in user for k in ("exec", "auth-provider", "username", "password")):
        return _from_library(settings, paths)
    server = str(cluster.get("server") or "")
    if not server:
        raise MacvtapctlError("invalid kubeconfig: the cluster has no server")
    if "://" not in server:
        server = "https://" + server  # client-go's default for a bare host:port
    token = user.get("token")
    if not token and user.get("tokenFile"):
        try:
            token = (user_dir / str(user["tokenFile"])).expanduser().read_text().strip()
        except OSError as exc:
            raise MacvtapctlError(f"invalid kubeconfig: cannot read tokenFile: {exc.strerror}") from None
    return Endpoint(server=server.rstrip("/"), token=str(token) if token else None,
                    ca=_material(cluster, "certificate-authority", cluster_dir),
                    cert=_material(user, "client-certificate", user_dir),
                    key=_material(user, "client-key", user_dir),
                    insecure=bool(cluster.get("insecure-skip-tls-verify")),
                    tls_server_name=cluster.get("tls-server-name"), proxy=cluster.get("proxy-url"))


def _in_cluster() -> Endpoint:
    host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    try:
        token = (SERVICE_ACCOUNT / "token").read_text().strip()
        ca = (SERVICE_ACCOUNT / "ca.crt").read_bytes()
    except OSError as exc:
        raise MacvtapctlError(f"in-cluster configuration failed: {exc}") from None
    host = f"[{host}]" if ":" in host else host
    return Endpoint(server=f"https://{host}:{port}", token=token, ca=ca)


def _from_library(settings: ConnectionOptions, paths: list[Path]) -> Endpoint:
    """Credentials only the `kubernetes` package knows how to get (exec plugins, auth-providers, basic auth)."""
    from kubernetes import client, config

    cfg = client.Configuration()
    try:
        config.load_kube_config(config_file=os.pathsep.join(str(p) for p in paths if p.exists()),
                                context=settings.context, client_configuration=cfg, persist_config=False)
    except config.ConfigException as exc:
        raise MacvtapctlError(f"invalid kubeconfig: {exc}") from None
    headers = {}
    auth = cfg.get_api_key_with_prefix("BearerToken") or (cfg.api_key or {}).get("authorization")
    if auth:
        headers["Authorization"] = str(auth)
    elif cfg.username or cfg.password:
        headers["Authorization"] = str(cfg.get_basic_auth_token())

    def read(path: str | None) -> bytes | None:
        return Path(path).read_bytes() if path else None

    return Endpoint(server=str(cfg.host).rstrip("/"), ca=read(cfg.ssl_ca_cert), cert=read(cfg.cert_file),
                    key=read(cfg.key_file), insecure=not cfg.verify_ssl, tls_server_name=cfg.tls_server_name,
                    proxy=cfg.proxy, headers=headers)


def ssl_context(ep: Endpoint) -> ssl.SSLContext:
    """Server verification against the kubeconfig's CA (else the system's), and the client certificate."""
    ctx = ssl.create_default_context(cadata=ep.ca.decode() if ep.ca else None)
    if ep.insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if ep.cert and ep.key:
        import tempfile  # only for client certificates

        # ssl loads a certificate chain from files only: a private directory, gone once loaded.
        with tempfile.TemporaryDirectory(prefix="macvtapctl-") as tmp:
            cert, key = Path(tmp) / "client.crt", Path(tmp) / "client.key"
            for path, data in ((cert, ep.cert), (key, ep.key)):
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
            try:
                ctx.load_cert_chain(str(cert), str(key))
            except ssl.SSLError as exc:
                raise MacvtapctlError(f"invalid kubeconfig: the client certificate or key cannot be used: "
                                      f"{exc.reason or exc}") from None
    return ctx


def pool(ep: Endpoint) -> Pool:
    """Connections to the endpoint (through the kubeconfig's proxy when it names one)."""
    tls = ep.server.startswith("https:")
    return Pool(ep.server, context=ssl_context(ep) if tls else None, server_hostname=ep.tls_server_name,
                proxy=ep.proxy, proxy_source=ep.proxy_source, maxsize=POOL_SIZE)


def auth_headers(ep: Endpoint) -> dict[str, str]:
    headers = dict(ep.headers)
    if ep.token:
        headers["Authorization"] = f"Bearer {ep.token}"
    return headers
