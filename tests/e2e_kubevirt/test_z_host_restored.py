"""Last in the package: the KubeVirt tests' two nodes and control plane stopped, the host is as the package found
it (tests/node/host_state.py: links, namespaces, routes, mounts, nftables tables, cgroups, directories, sysctls,
processes, /run): `make node-down` leaves nothing behind (issue 38)."""

from __future__ import annotations

import host_state

from tests.e2e.helpers import Cluster


def test_z_stopping_both_nodes_gives_the_host_back_as_it_was(kv_cluster: Cluster) -> None:
    assert kv_cluster.host_before, "the fixture took no snapshot before it started"
    kv_cluster.close()
    assert host_state.diff(kv_cluster.host_before, host_state.snapshot()) == []
