"""The agent's one door to the API server: stdlib http.client over TLS with the pod's projected service-account
token, as client-go's in-cluster configuration does (the CA and token files of the ServiceAccount mount, the
`kubernetes` Service from KUBERNETES_SERVICE_HOST/PORT). The CLI's client is not used here: the agent's memory
budget has no room for it (docs/architecture.md).

The ConfigMap watch (configmap_watch.py) and the migration Events (events.py) go through it.
"""

from __future__ import annotations

import http.client
import json
import os
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from macvtapctl import __version__, identity


class ApiUnavailable(Exception):
    """The API server cannot be asked (unreachable, refused, forbidden, or an answer that is not an object)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class InCluster:
    sa_dir: Path = field(default_factory=lambda: Path(identity.SERVICE_ACCOUNT_DIR))
    server: tuple[str, int] = field(default_factory=lambda: (
        os.environ.get("KUBERNETES_SERVICE_HOST", ""), int(os.environ.get("KUBERNETES_SERVICE_PORT", "443"))))

    def connect(self, method: str, path: str, *, timeout: float, body: dict[str, object] | None = None
                ) -> tuple[http.client.HTTPSConnection, http.client.HTTPResponse]:
        """One request on a new connection (the caller closes it); ApiUnavailable unless the answer is 2xx."""
        # Read on each connection: the kubelet rotates the projected token (and the CA bundle may change).
        try:
            token = (self.sa_dir / "token").read_text().strip()
            ctx = ssl.create_default_context(cafile=str(self.sa_dir / "ca.crt"))
        except (OSError, ssl.SSLError) as exc:
            raise ApiUnavailable(f"the service-account token or CA cannot be read: {exc}") from None
        host, port = self.server
        conn = http.client.HTTPSConnection(host, port, context=ctx, timeout=timeout)
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json",
                   "User-Agent": f"macvtapctl-agent/{__version__}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise ApiUnavailable(f"{host}:{port}: {exc}") from None
        if not 200 <= resp.status < 300:
            detail = message(resp)
            conn.close()
            raise ApiUnavailable(f"HTTP {resp.status}: {detail}", resp.status)
        return conn, resp


def message(resp: http.client.HTTPResponse) -> str:
    try:
        doc = json.loads(resp.read(64 * 1024))
    except (ValueError, OSError, http.client.HTTPException):
        return resp.reason
    return str(doc.get("message") or resp.reason) if isinstance(doc, dict) else resp.reason
