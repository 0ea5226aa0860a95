"""KubeVirt's own components on the real node (root), as the KubeVirt tests and benchmarks/vm_kubevirt.py use
them: a control plane ready for in-cluster clients, the node with kube-proxy and shared mounts, virt-operator
deploying virt-api, virt-controller and virt-handler from the KubeVirt CR (and the guest's containerDisk), the
agent installed by `macvtapctl install`; and a DHCP server on the LAN. Not a conftest: both import it."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "node"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "controlplane"))

import host_state
from harness import ControlPlane, kubevirt_runtime_version
from kubevirt import KubeVirt
from node import Node
from second_node import SecondNode

from tests.e2e.helpers import POD_NS, Cluster


class StartFailed(Exception):
    """A real part did not start: the message says which, and where its logs are."""


@contextmanager
def kubevirt_cluster(workdir: Path, *, images: Callable[[Path], object] | None = None,
                     deploy: Callable[[Cluster], None] = Cluster.deploy, nodes: int = 1) -> Iterator[Cluster]:
    """`images` builds more images into the node's image directory (imported with the others); `deploy` puts the
    macvtap plugin on the cluster (by default the agent, as `macvtapctl install` does); `nodes`: 2 adds the second
    node (its own namespaces, the same LAN). The cluster's `close()` stops it all (also run on exit, once)."""
    version = kubevirt_runtime_version()
    before = host_state.snapshot()
    cp = ControlPlane(workdir, kubevirt_version=version, crds="runtime", kubevirt_pin=version)
    try:
        cp.start()
    except Exception as exc:
        cp.stop()
        raise StartFailed(f"local control plane did not start: {exc}") from exc
    node = Node(cp.dir)
    c = Cluster(cp, node, SecondNode(cp.dir) if nodes == 2 else None)
    c.host_before = before
    try:
        if images is not None:
            node.images.mkdir(parents=True, exist_ok=True)
            images(node.images)
        node.up()
        if c.second is not None:
            c.second.up()
        KubeVirt(cp.dir).up()
        deploy(c)
    except Exception as exc:
        try:
            node.down()
        finally:
            cp.stop()
        raise StartFailed(f"KubeVirt on the real node did not start: {exc}\n(logs: {node.dir})") from exc
    closed = False

    def close() -> None:
        nonlocal closed
        if closed:
            return
        closed = True
        try:
            # VMs first: their controller would start a new launcher for every pod the teardown deletes.
            c.kubectl("delete", "vm", "--all", "-n", POD_NS, "--wait=true", timeout=180, check=False)
            c.teardown()
        finally:
            try:
                node.down()  # the second node first (node.py)
            finally:
                cp.stop()

    c.close = close
    try:
        yield c
    finally:
        close()


@contextmanager
def lan_dhcp(c: Cluster) -> Iterator[Path]:
    """The LAN's DHCP server (tests/node: dnsmasq on the LAN namespace's interface); yields its lease file."""
    leases = c.node.start_lan_dhcp()
    try:
        yield leases
    finally:
        c.node.stop_lan_dhcp()
