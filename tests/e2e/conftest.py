"""E2E fixtures (root): a real node — kubelet, containerd, runc, Multus — joined to the session's control plane,
the agent deployed by `macvtapctl install` as a DaemonSet the kubelet runs. A node that cannot start fails the
run; it never skips."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "node"))

from harness import ControlPlane
from node import Node

from tests.e2e.helpers import Cluster


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e" in str(item.fspath):
            item.add_marker(pytest.mark.root)


@pytest.fixture(scope="package")
def cluster(control_plane: ControlPlane) -> Iterator[Cluster]:
    if os.geteuid() != 0:
        pytest.fail("the real-node tests need root (kubelet, containerd, network namespaces); run them as root",
                    pytrace=False)
    node = Node(control_plane.dir)
    try:
        node.up()
    except Exception as exc:
        try:
            node.down()
        finally:
            pytest.fail(f"the real node did not start: {exc}\n(logs: {node.dir})", pytrace=False)
    c = Cluster(control_plane, node)
    try:
        c.deploy()
        yield c
    finally:
        try:
            c.teardown()
        finally:
            node.down()
