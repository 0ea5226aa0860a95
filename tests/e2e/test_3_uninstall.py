"""Last: `uninstall` on the real node (the other e2e files need the agent installed)."""

from __future__ import annotations

from tests.e2e.helpers import Cluster, agent_pid, host_links, wait_for


def test_i_uninstall_cleans_the_node_and_purges_node_resources(cluster: Cluster) -> None:
    """Plain uninstall already takes the shim out (a shim without its agent fails every pod's DEL: issue 13.10)
    and the links no pod owns; --purge-node-resources then clears the capacity the kubelet keeps."""
    cluster.mvc("uninstall")
    wait_for("the agent pod gone", lambda: not agent_pid(), timeout=60)
    assert not (cluster.node.cni_bin / "macvtap").exists(), "the shim must leave the CNI bin dir"
    assert not host_links()
    cluster.mvc("uninstall", "--purge-node-resources")
    wait_for("no macvtap resources on the Node", lambda: not [
        k for k in cluster.node_obj()["status"].get("capacity", {}) if k.startswith("macvtap.network.kubevirt.io/")],
        timeout=60)
