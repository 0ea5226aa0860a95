"""Last in the package: `uninstall` cleans both nodes; then, the KubeVirt tests' two nodes and control plane
stopped, the host is as the package found it (tests/harness/host_state.py: links, namespaces, routes, mounts, nftables
tables, cgroups, directories, sysctls, processes, /run): `make node-down` leaves nothing behind (issue 38)."""

from __future__ import annotations

import json
import subprocess

from tests.harness import host_state
from tests.harness.cluster import AGENT_NS, POD_NS, Cluster, wait_for


def test_y_uninstall_cleans_both_nodes(kv_cluster: Cluster) -> None:
    """No VM left, `uninstall`: the agent's pods are gone from both nodes, the CNI shim from both nodes' CNI bin
    dir (the same path, each node's own directory), and no temporary link is left in either node's namespace."""
    c = kv_cluster
    assert c.second is not None
    c.kubectl("delete", "vm", "--all", "-n", POD_NS, "--wait=true", timeout=300)
    wait_for("no launcher pod left", lambda: not json.loads(c.kubectl(
        "get", "pods", "-n", POD_NS, "-l", "kubevirt.io=virt-launcher", "-o", "json").out)["items"], timeout=180)
    c.mvc("uninstall")
    wait_for("no agent pod on either node", lambda: not json.loads(c.kubectl(
        "get", "pods", "-n", AGENT_NS, "-l", "app.kubernetes.io/name=macvtapctl-agent", "-o", "json").out)["items"],
        timeout=120)
    second_cni_bin = c.second.dir / c.node.cni_bin.relative_to(c.node.dir)
    assert not (c.node.cni_bin / "macvtap").exists() and not (second_cni_bin / "macvtap").exists()

    def mvt_links(prefix: list[str]) -> list[str]:
        out = subprocess.run([*prefix, "ip", "-j", "link", "show"], check=True, capture_output=True, text=True).stdout
        return [link["ifname"] for link in json.loads(out) if link["ifname"].startswith("mvt")]

    assert mvt_links([]) == [] and mvt_links(c.second.enter()) == []


def test_z_stopping_both_nodes_gives_the_host_back_as_it_was(kv_cluster: Cluster) -> None:
    assert kv_cluster.host_before, "the fixture took no snapshot before it started"
    kv_cluster.close()
    assert host_state.diff(kv_cluster.host_before, host_state.snapshot()) == []
