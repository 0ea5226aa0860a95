"""The small reads send what they print and no more, on one connection: `nad list -o json` reads the NADs only
(the ConfigMap feeds the table's EXPOSED column), `exposed` one LIST of the ConfigMap. The server is a stand-in
(http.server) that records each request and the client port it came from."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from macvtapctl.manifests import nad as nadm
from tests.conftest import run_cli

DP = {"apiVersion": "v1", "kind": "ConfigMap",
      "metadata": {"name": "macvtap-deviceplugin-config", "namespace": "macvtap", "resourceVersion": "1"},
      "data": {"DP_MACVTAP_CONF": json.dumps([{"name": "lan0", "lowerDevice": "eth0"}])}}
LISTS = {"/apis/k8s.cni.cncf.io/v1/network-attachment-definitions": [nadm.render("net0", "default", "lan0")],
         "/api/v1/configmaps": [DP]}


class Server:
    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []  # (path, client port)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the API server

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                outer.seen.append((path, self.client_address[1]))
                if path in LISTS:
                    body = json.dumps({"kind": "List", "metadata": {}, "items": LISTS[path]}).encode()
                else:  # an object the server does not have, as the API server says it
                    body = json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
                                       "code": 404, "details": {"name": path.rsplit("/", 1)[-1]}}).encode()
                self.send_response(200 if path in LISTS else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def paths(self) -> list[str]:
        return [p for p, _ in self.seen]

    @property
    def connections(self) -> int:
        return len({port for _, port in self.seen})


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Server, str]]:
    srv = Server()
    cfg = tmp_path / "kubeconfig"
    cfg.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{srv.httpd.server_address[1]}"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    yield srv, str(cfg)
    srv.httpd.shutdown()


@pytest.mark.parametrize("fmt", ["json", "yaml", "name"])
def test_nad_list_of_objects_reads_the_nads_only(server: tuple[Server, str], fmt: str) -> None:
    srv, cfg = server
    r = run_cli("--kubeconfig", cfg, "nad", "list", "-A", "-o", fmt)
    assert r.exit_code == 0, r.stderr
    assert "net0" in r.stdout
    assert srv.paths == ["/apis/k8s.cni.cncf.io/v1/network-attachment-definitions"]


def test_nad_list_table_reads_the_configmap_too_on_the_same_connection(server: tuple[Server, str]) -> None:
    srv, cfg = server
    r = run_cli("--kubeconfig", cfg, "nad", "list", "-A")
    assert r.exit_code == 0, r.stderr
    assert r.stdout.split("\n")[1].split() == ["default", "net0", "lan0", "yes"]
    assert srv.paths == ["/apis/k8s.cni.cncf.io/v1/network-attachment-definitions", "/api/v1/configmaps"]
    assert srv.connections == 1


def test_exposed_is_one_request(server: tuple[Server, str]) -> None:
    srv, cfg = server
    r = run_cli("--kubeconfig", cfg, "exposed", "-o", "json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["entries"][0]["name"] == "lan0"
    assert srv.paths == ["/api/v1/configmaps"]


def test_doctor_of_a_vm_that_does_not_exist_is_one_request(server: tuple[Server, str]) -> None:
    """`doctor VM` reads the VM first: a mistyped name fails before the cluster-wide read (issue 41)."""
    srv, cfg = server
    r = run_cli("--kubeconfig", cfg, "doctor", "nosuch", "-n", "default")
    assert r.exit_code == 3, r.stderr
    assert 'virtualmachine.kubevirt.io "nosuch" not found in namespace "default"' in r.stderr
    assert srv.paths == ["/apis/kubevirt.io/v1/namespaces/default/virtualmachines/nosuch"]
