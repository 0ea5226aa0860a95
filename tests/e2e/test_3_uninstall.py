"""Last: `uninstall --purge-node-resources` on the real node (the other e2e files need the agent installed)."""

from __future__ import annotations

from tests.e2e.helpers import Cluster, agent_pid, host_links, wait_for


def test_i_uninstall_purges_node_resources(cluster: Cluster) -> None:
    cluster.mvc("uninstall", "--purge-node-resources")
    wait_for("no macvtap resources on the Node", lambda: not [
        k for k in cluster.node_obj()["status"].get("capacity", {}) if k.startswith("macvtap.network.kubevirt.io/")],
        timeout=60)
    wait_for("the agent pod gone", lambda: not agent_pid(), timeout=60)
    assert not (cluster.node.cni_bin / "macvtap").exists(), "the shim must leave the CNI bin dir"
    assert not host_links()
