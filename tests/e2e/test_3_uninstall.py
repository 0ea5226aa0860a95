"""Last: `uninstall` on the real node (the other e2e files need the agent installed)."""

from __future__ import annotations

from tests.harness.cluster import Cluster, host_links, wait_for

PREFIX = "macvtap.network.kubevirt.io/"


def test_i_uninstall_cleans_the_node_and_purges_node_resources(cluster: Cluster) -> None:
    """Plain uninstall already takes the shim out (a shim without its agent fails every pod's DEL: issue 13.10)
    and the links no pod owns; nothing can schedule onto the resources any more (allocatable 0).
    --purge-node-resources then removes them from the Node. Measured on kubelet v1.37: for 5 minutes after its
    plugin went away (the device manager's endpointStopGracePeriod) the kubelet writes the capacity back, with
    allocatable 0; after that it removes the resources itself. So this checks the purge's own write, not how long
    it lasts."""
    agent = cluster.agent_container()
    cluster.mvc("uninstall")
    wait_for("the agent's container gone from containerd", lambda: not cluster.container_running(agent), timeout=60)
    assert not (cluster.node.cni_bin / "macvtap").exists(), "the shim must leave the CNI bin dir"
    assert not host_links()
    wait_for("nothing allocatable on macvtap resources", lambda: all(
        v == "0" for k, v in cluster.node_obj()["status"].get("allocatable", {}).items() if k.startswith(PREFIX)),
        timeout=60)
    done = cluster.mvc("uninstall", "--purge-node-resources")
    assert f"node/{cluster.node_obj()['metadata']['name']} patched (removed {PREFIX}" in done.err, done.err
