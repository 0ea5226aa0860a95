"""The ExecCredential exchange (client.authentication.k8s.io v1 and v1beta1), as client-go's exec authenticator
does it: run the kubeconfig's plugin, read its credential from stdout, keep it until its expirationTimestamp, and
run the plugin again when it has expired or the server answered 401 to it.

Ours, not the `kubernetes` package's ExecProvider: importing that package costs ~0.45 s (its __init__ loads the
whole generated client), and its loader re-runs the plugin only where its Configuration hook is called; the
exchange itself is a subprocess and a JSON document (docs/performance.md). The plugin's stdout carries a secret:
it is never printed, not even in an error; its stderr is the user's (client-go passes it through).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from typing import Any

from macvtapctl.errors import MacvtapctlError
from macvtapctl.kube.kubeconfig import ExecConfig

KIND = "ExecCredential"
API_VERSIONS = ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1")


@dataclass(frozen=True)
class Credential:
    token: str = ""
    cert: bytes | None = None  # PEM client certificate
    key: bytes | None = None
    expires: dt.datetime | None = None  # None: until the server rejects it

    def expired(self, now: dt.datetime) -> bool:
        return self.expires is not None and now >= self.expires


def _fail(config: ExecConfig, why: str) -> MacvtapctlError:
    hint = f" ({config.install_hint.strip()})" if config.install_hint.strip() else ""
    return MacvtapctlError(f'exec credential plugin "{config.command}": {why}{hint}')


def _interactive(config: ExecConfig) -> bool:
    tty = sys.stdin is not None and sys.stdin.isatty()
    if config.interactive_mode == "Always" and not tty:
        raise _fail(config, "interactiveMode is Always but standard input is not a terminal")
    return config.interactive_mode != "Never" and tty


def run(config: ExecConfig, cluster: dict[str, Any] | None = None) -> Credential:
    """Run the plugin once: KUBERNETES_EXEC_INFO describes the request; stdout is the ExecCredential."""
    if config.api_version not in API_VERSIONS:
        raise _fail(config, f'apiVersion "{config.api_version}" is not supported (use one of '
                            f'{", ".join(API_VERSIONS)})')
    interactive = _interactive(config)
    spec: dict[str, Any] = {"interactive": interactive}
    if config.provide_cluster_info and cluster is not None:
        spec["cluster"] = cluster
    env = {**os.environ, **dict(config.env),
           "KUBERNETES_EXEC_INFO": json.dumps({"apiVersion": config.api_version, "kind": KIND, "spec": spec})}
    try:
        proc = subprocess.run([config.command, *config.args], env=env, stdout=subprocess.PIPE, check=False,
                              stdin=None if interactive else subprocess.DEVNULL)
    except FileNotFoundError:
        raise _fail(config, "executable not found") from None
    except OSError as exc:
        raise _fail(config, f"cannot run it: {exc.strerror}") from None
    if proc.returncode != 0:
        raise _fail(config, f"exited with status {proc.returncode}")
    return parse(config, proc.stdout)


def parse(config: ExecConfig, stdout: bytes) -> Credential:
    """The plugin's answer, checked as client-go checks it (never quoted back: it holds the secret)."""
    try:
        doc = json.loads(stdout)
    except ValueError:
        raise _fail(config, "its output is not an ExecCredential (not JSON)") from None
    if not isinstance(doc, dict) or doc.get("kind") != KIND:
        raise _fail(config, "its output is not an ExecCredential")
    if doc.get("apiVersion") != config.api_version:
        raise _fail(config, f'it answered apiVersion "{doc.get("apiVersion")}", the kubeconfig asks for '
                            f'"{config.api_version}"')
    status = doc.get("status")
    if not isinstance(status, dict):
        raise _fail(config, "its ExecCredential has no status")
    token, cert, key = status.get("token") or "", status.get("clientCertificateData"), status.get("clientKeyData")
    if not isinstance(token, str) or not all(v is None or isinstance(v, str) for v in (cert, key)):
        raise _fail(config, "its ExecCredential's status has a field of the wrong type")
    if bool(cert) != bool(key):
        raise _fail(config, "its ExecCredential has only one of clientCertificateData and clientKeyData")
    if not token and not cert:
        raise _fail(config, "its ExecCredential has neither a token nor a client certificate")
    expires = None
    stamp = status.get("expirationTimestamp")
    if stamp:
        try:
            expires = dt.datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
        except ValueError:
            raise _fail(config, f'its expirationTimestamp "{stamp}" is not RFC 3339') from None
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=dt.UTC)
    return Credential(token=token, cert=cert.encode() if cert else None, key=key.encode() if key else None,
                      expires=expires)


class Source:
    """The plugin's current credential: fetched on first use, again once expired or rejected (a 401)."""

    def __init__(self, config: ExecConfig, cluster: dict[str, Any] | None = None) -> None:
        self.config, self.cluster = config, cluster
        self._lock = threading.Lock()
        self._current: Credential | None = None

    def get(self) -> Credential:
        with self._lock:
            now = dt.datetime.now(dt.UTC)
            if self._current is None or self._current.expired(now):
                self._current = run(self.config, self.cluster)
            return self._current

    def rejected(self, used: Credential) -> bool:
        """The server answered 401 to `used`: forget it (unless another thread already has). True: the next get()
        runs the plugin again."""
        with self._lock:
            if self._current is used:
                self._current = None
                return True
            return self._current is None or self._current is not used
