"""KubeVirt's own components on the real node (root): a control plane ready for in-cluster clients, the node with
kube-proxy and shared mounts, virt-operator deploying virt-api, virt-controller and virt-handler from the KubeVirt
CR, the agent installed by `macvtapctl install`, and a DHCP server on the LAN. Nothing of KubeVirt is stood in
for; a part that cannot start fails the run, it never skips."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "node"))

import guest
from harness import ControlPlane, kubevirt_runtime_version
from kubevirt import KubeVirt
from node import LAN_NETNS, LAN_PEER, Node

from tests.e2e.helpers import Cluster

DHCP_RANGE = ("198.51.100.100", "198.51.100.150")


@pytest.fixture(scope="package")
def kv_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if os.geteuid() != 0:
        pytest.fail("the KubeVirt tests need root (kubelet, containerd, KubeVirt's privileged virt-handler)",
                    pytrace=False)
    version = kubevirt_runtime_version()
    cp = ControlPlane(tmp_path_factory.mktemp("kubevirt-controlplane"), kubevirt_version=version, crds="runtime",
                      kubevirt_pin=version)
    try:
        cp.start()
    except Exception as exc:
        cp.stop()
        pytest.fail(f"local control plane did not start: {exc}", pytrace=False)
    node = Node(cp.dir)
    c = Cluster(cp, node)
    try:
        node.up()
        KubeVirt(cp.dir).up()
        node.ctr(Path(node.state["node_bin"]), "images", "import", "--platform", "linux/amd64",
                 str(guest.containerdisk_image(node.images)), quiet=True, check=True)
        c.deploy()
    except Exception as exc:
        try:
            node.down()
        finally:
            cp.stop()
        pytest.fail(f"KubeVirt on the real node did not start: {exc}\n(logs: {node.dir})", pytrace=False)
    try:
        yield c
    finally:
        try:
            # VMs first: their controller would start a new launcher for every pod the teardown deletes.
            c.kubectl("delete", "vm", "--all", "-n", "default", "--wait=true", timeout=180, check=False)
            c.teardown()
        finally:
            try:
                node.down()
            finally:
                cp.stop()


@pytest.fixture(scope="package")
def lan_dhcp(kv_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """dnsmasq as the LAN's DHCP server (only on the LAN namespace's interface); yields its lease file."""
    leases = tmp_path_factory.mktemp("dnsmasq") / "leases"
    proc = subprocess.Popen(["ip", "netns", "exec", LAN_NETNS, "dnsmasq", "--keep-in-foreground", "--no-resolv",
                             "--no-hosts", "--port=0", f"--interface={LAN_PEER}", "--bind-interfaces",
                             f"--dhcp-range={DHCP_RANGE[0]},{DHCP_RANGE[1]},255.255.255.0,1h",
                             f"--dhcp-leasefile={leases}", "--user=root", "--log-dhcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    yield leases
    proc.terminate()
    proc.wait(timeout=10)
