"""Datapath fixtures (root): network namespaces and veth pairs stand in for nodes and NICs; macvtap links,
/dev/tapN and the agent are real; cnitool (libcni) drives the CNI through the installed shim."""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import need_root
from tests.datapath.helpers import REPO, SHIM, Agent, Node, host_mvt_links, ip, returned_links


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/datapath" in str(item.fspath):
            item.add_marker(pytest.mark.root)


@pytest.fixture(scope="session", autouse=True)
def _need_root() -> None:
    need_root("the datapath tests (network namespaces, macvtap links)")


@pytest.fixture(scope="session")
def cnitool() -> str:
    out = subprocess.run(["bash", str(REPO / "tests/controlplane/build.sh")], check=True, capture_output=True,
                         text=True).stdout.strip().splitlines()[-1]
    return str(Path(out) / "cnitool")


@pytest.fixture(scope="session")
def shim() -> Path:
    subprocess.run(["make", "-s", "-C", str(REPO), "shim"], check=True)
    return SHIM


# Package, not session: the agent reclaims the host's mvt* links its fake kubelet does not list, and kept alive
# through the e2e suites that run next it deleted the real node's allocated links (their pods then failed).
@pytest.fixture(scope="package")
def agent(tmp_path_factory: pytest.TempPathFactory, shim: Path) -> Iterator[Agent]:
    d = tmp_path_factory.mktemp("agent")
    a = Agent(dir=d, socket=str(d / "run" / "cni.sock"), bin_dir=str(d / "bin"), conf_dir=d / "net.d",
              log=d / "agent.log")
    a.conf_dir.mkdir()
    from tests.harness.kubelet import FakeKubelet

    a.kubelet = FakeKubelet(d / "kubelet" / "device-plugins")
    a.kubelet.start()
    subprocess.run([sys.executable, "-m", "macvtapctl", "agent", "--install-cni", a.bin_dir, "--install-only",
                    "--shim", str(shim)], check=True, capture_output=True)
    a.start()
    yield a
    a.stop()
    a.kubelet.stop()


@pytest.fixture
def node() -> Iterator[Node]:
    tag = secrets.token_hex(3)
    n = Node(tag=tag, pod=f"mvtpod-{tag}", peer_ns=f"mvtsw-{tag}", lower=f"nic{tag}", peer=f"sw{tag}")
    before = host_mvt_links()
    ip("netns", "add", n.pod)
    ip("netns", "add", n.peer_ns)
    ip("link", "add", n.lower, "mtu", "1500", "type", "veth", "peer", "name", n.peer)
    ip("link", "set", n.peer, "netns", n.peer_ns)
    ip("link", "set", n.lower, "up")
    ip("-n", n.peer_ns, "link", "set", n.peer, "up")
    yield n
    for ns in (n.pod, n.peer_ns, *n.extra_netns):
        ip("netns", "del", ns, check=False)
    returned = returned_links() - before  # DEL gives links back; the agent's reclaim deletes them later
    for name in returned:
        ip("link", "del", name, check=False)
    leaked = host_mvt_links() - before
    for name in leaked:
        ip("link", "del", name, check=False)
    ip("link", "del", n.lower, check=False)
    assert leaked == set(), f"temporary links leaked on the node: {leaked}"


