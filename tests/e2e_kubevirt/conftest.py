"""The KubeVirt tests' cluster (tests/harness/cluster.py's lifecycle with KubeVirt): nothing of KubeVirt is stood
in for; a part that cannot start fails the run, it never skips."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import need_root
from tests.harness.cluster import Cluster, StartFailed, lan_dhcp, running_cluster
from tests.harness.images import injector_image


@pytest.fixture(scope="package", autouse=True)
def _need_root() -> None:
    need_root("the KubeVirt tests (kubelet, containerd, KubeVirt's privileged virt-handler)")


@pytest.fixture(scope="package")
def kv_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    try:
        # Two nodes (issue 38): the one-node tests pin their VMs to the first (tests/e2e_kubevirt/vms.py). The
        # injector's image for test_y (install --injector on the nodes).
        with running_cluster(tmp_path_factory.mktemp("kubevirt-controlplane"), kubevirt=True, nodes=2,
                             images=injector_image) as c:
            yield c
    except StartFailed as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="package", name="lan_dhcp")
def lan_dhcp_fixture(kv_cluster: Cluster) -> Iterator[Path]:
    with lan_dhcp(kv_cluster) as leases:
        yield leases
