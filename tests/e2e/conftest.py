"""E2E fixtures (root): a real node — kubelet, containerd, runc, Multus — joined to the session's control plane,
the agent deployed by `macvtapctl install` as a DaemonSet the kubelet runs (tests/harness/cluster.py's lifecycle).
A node that cannot start fails the run; it never skips."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import need_root
from tests.harness.cluster import Cluster, StartFailed, running_cluster


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e" in str(item.fspath):
            item.add_marker(pytest.mark.root)


@pytest.fixture(scope="package", autouse=True)
def _need_root() -> None:
    need_root("the real-node tests (kubelet, containerd, network namespaces)")


@pytest.fixture(scope="package")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    try:
        with running_cluster(tmp_path_factory.mktemp("e2e-controlplane")) as c:
            yield c
    except StartFailed as exc:
        pytest.fail(str(exc), pytrace=False)
