"""The small reads send what they print and no more, on one connection: `nad list -o json` reads the NADs only
(the ConfigMap feeds the table's EXPOSED column), `exposed` one LIST of the ConfigMap. The server is the
harness's API stand-in (tests/harness/standin.py), which records each request and the client port it came from."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from macvtapctl.manifests import nad as nadm
from tests.conftest import run_cli
from tests.harness.standin import ApiStandIn, not_found

DP = {"apiVersion": "v1", "kind": "ConfigMap",
      "metadata": {"name": "macvtap-deviceplugin-config", "namespace": "macvtap", "resourceVersion": "1"},
      "data": {"DP_MACVTAP_CONF": json.dumps([{"name": "lan0", "lowerDevice": "eth0"}])}}
LISTS = {"/apis/k8s.cni.cncf.io/v1/network-attachment-definitions": [nadm.render("net0", "default", "lan0")],
         "/api/v1/configmaps": [DP]}


def _respond(method: str, path: str) -> tuple[int, dict[str, str], Any]:
    if path in LISTS:
        return 200, {}, {"kind": "List", "metadata": {}, "items": LISTS[path]}
    return 404, {}, not_found(path)  # an object the server does not have, as the API server says it


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[ApiStandIn, str]]:
    srv = ApiStandIn(_respond)
    yield srv, str(srv.kubeconfig(tmp_path / "kubeconfig"))
    srv.close()


@pytest.mark.parametrize("fmt", ["json", "yaml", "name"])
def test_nad_list_of_objects_reads_the_nads_only(server: tuple[ApiStandIn, str], fmt: str) -> None:
    srv, cfg = server
    r = run_cli("--kubeconfig", cfg, "nad", "list", "-A", "-o", fmt)
    assert r.exit_code == 0, r.stderr
    assert "net0" in r.stdout
    assert srv.paths == ["/apis/k8s.cni.cncf.io/v1/network-attachment-definitions"]


def test_nad_list_table_reads_the_configmap_too_on_the_same_connection(server: tuple[ApiStandIn, str]) -> None:
    srv, cfg = server
    r = run_cli("--kubeconfig", cfg, "nad", "list", "-A")
    assert r.exit_code == 0, r.stderr
    assert r.stdout.split("\n")[1].split() == ["default", "net0", "lan0", "yes"]
    assert srv.paths == ["/apis/k8s.cni.cncf.io/v1/network-attachment-definitions", "/api/v1/configmaps"]
    assert srv.connections == 1


def test_exposed_is_one_request(server: tuple[ApiStandIn, str]) -> None:
    srv, cfg = server
    r = run_cli("--kubeconfig", cfg, "exposed", "-o", "json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["entries"][0]["name"] == "lan0"
    assert srv.paths == ["/api/v1/configmaps"]


def test_doctor_of_a_vm_that_does_not_exist_is_one_request(server: tuple[ApiStandIn, str]) -> None:
    """`doctor VM` reads the VM first: a mistyped name fails before the cluster-wide read (issue 41)."""
    srv, cfg = server
    r = run_cli("--kubeconfig", cfg, "doctor", "nosuch", "-n", "default")
    assert r.exit_code == 3, r.stderr
    assert 'virtualmachine.kubevirt.io "nosuch" not found in namespace "default"' in r.stderr
    assert srv.paths == ["/apis/kubevirt.io/v1/namespaces/default/virtualmachines/nosuch"]
