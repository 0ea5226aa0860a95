"""The KubeVirt tests' cluster (tests/e2e_kubevirt/runtime.py): nothing of KubeVirt is stood in for; a part that
cannot start fails the run, it never skips."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "node"))

from tests.conftest import need_root
from tests.e2e.helpers import Cluster
from tests.e2e_kubevirt import runtime


@pytest.fixture(scope="package", autouse=True)
def _need_root() -> None:
    need_root("the KubeVirt tests (kubelet, containerd, KubeVirt's privileged virt-handler)")


@pytest.fixture(scope="package")
def kv_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    try:
        # Two nodes (issue 38): the one-node tests pin their VMs to the first (tests/e2e_kubevirt/vms.py).
        with runtime.kubevirt_cluster(tmp_path_factory.mktemp("kubevirt-controlplane"), nodes=2) as c:
            yield c
    except runtime.StartFailed as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="package")
def lan_dhcp(kv_cluster: Cluster) -> Iterator[Path]:
    with runtime.lan_dhcp(kv_cluster) as leases:
        yield leases
