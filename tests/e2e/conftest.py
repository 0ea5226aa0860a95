"""E2E fixtures (root): a real node — kubelet, containerd, runc, Multus — joined to the session's control plane,
the agent deployed by `macvtapctl install` as a DaemonSet the kubelet runs. A node that cannot start fails the
run; it never skips."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "node"))

from harness import ControlPlane, kubevirt_pins
from node import Node

from tests.conftest import need_root
from tests.e2e.helpers import Cluster


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e" in str(item.fspath):
            item.add_marker(pytest.mark.root)


@pytest.fixture(scope="package", autouse=True)
def _need_root() -> None:
    need_root("the real-node tests (kubelet, containerd, network namespaces)")


@pytest.fixture(scope="package")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    # A control plane of their own: what the node tests deploy must not leak into the integration tests.
    # in_cluster: the agent follows its ConfigMap through the `kubernetes` Service, as in a real cluster.
    control_plane = ControlPlane(tmp_path_factory.mktemp("e2e-controlplane"), kubevirt_version="v1.5.0",
                                 kubevirt_pin=kubevirt_pins()[-1], in_cluster=True)
    try:
        control_plane.start()
    except Exception as exc:
        control_plane.stop()
        pytest.fail(f"local control plane did not start: {exc}", pytrace=False)
    node = Node(control_plane.dir)
    try:
        node.up()
    except Exception as exc:
        try:
            node.down()
        finally:
            control_plane.stop()
            pytest.fail(f"the real node did not start: {exc}\n(logs: {node.dir})", pytrace=False)
    c = Cluster(control_plane, node)
    try:
        c.deploy()
        yield c
    finally:
        try:
            c.teardown()
        finally:
            try:
                node.down()
            finally:
                control_plane.stop()
