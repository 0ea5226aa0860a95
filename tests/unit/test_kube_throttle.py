"""429 and Retry-After: the client waits as the server asks and sends again; a final answer is not retried.

The server here is a stand-in (http.server): a real kube-apiserver sheds load with 429 only under overload, which a
test cannot produce on demand."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from macvtapctl.errors import MacvtapctlError
from macvtapctl.kube.client import Kube, retry_delay
from macvtapctl.kube.options import Connection
from macvtapctl.kube.resources import VIRTUAL_MACHINE


class Server:
    def __init__(self) -> None:
        self.answers: list[tuple[int, dict[str, str]]] = []  # what to answer before a 200
        self.seen: list[tuple[str, float]] = []

        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                outer.seen.append((self.command, time.monotonic()))
                status, headers = outer.answers.pop(0) if outer.answers else (200, {})
                body = json.dumps({"kind": "Status", "message": "slow down"} if status != 200 else
                                  {"metadata": {"name": "vm1", "namespace": "default"}}).encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_PATCH = do_POST = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"


@pytest.fixture
def server_and_kube(tmp_path: Path) -> Iterator[tuple[Server, Kube]]:
    server = Server()
    cfg = {"apiVersion": "v1", "kind": "Config", "current-context": "c",
           "clusters": [{"name": "c", "cluster": {"server": server.url}}],
           "users": [{"name": "u", "user": {"token": "t"}}],
           "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(cfg))
    kube = Kube.connect(Connection(kubeconfig=str(path), request_timeout=10))
    yield server, kube
    kube.close()
    server.httpd.shutdown()


def test_a_write_throttled_with_retry_after_is_sent_again_after_the_delay(server_and_kube: tuple[Server, Kube]
                                                                         ) -> None:
    server, kube = server_and_kube
    server.answers = [(429, {"Retry-After": "1"}), (503, {"Retry-After": "1"})]
    vm = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": {"name": "vm1"}}
    assert kube.apply(VIRTUAL_MACHINE, vm, "default")["metadata"]["name"] == "vm1"
    assert [m for m, _ in server.seen] == ["PATCH"] * 3
    gaps = [b - a for (_, a), (_, b) in zip(server.seen, server.seen[1:], strict=False)]
    assert all(g >= 0.95 for g in gaps), gaps


def test_an_error_without_retry_after_is_final(server_and_kube: tuple[Server, Kube]) -> None:
    server, kube = server_and_kube
    server.answers = [(500, {})]
    with pytest.raises(MacvtapctlError, match="HTTP 500"):
        kube.get(VIRTUAL_MACHINE, "vm1", "default")
    assert len(server.seen) == 1


def test_retry_delay_rules() -> None:
    assert retry_delay(429, None) == 1.0 and retry_delay(429, "3") == 3.0 and retry_delay(429, "999") == 30.0
    assert retry_delay(503, "2") == 2.0 and retry_delay(503, None) is None and retry_delay(500, "") is None
    assert retry_delay(429, "Wed, 21 Oct 2015 07:28:00 GMT") == 1.0 and retry_delay(429, "-5") == 0.0
    assert retry_delay(409, "1") is None and retry_delay(200, "1") is None
