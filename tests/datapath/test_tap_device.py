"""Two nodes on one kernel (KinD with the host's /dev, the project's node B): ifindexes are counted per network
namespace, /dev is one devtmpfs. A macvtap whose index another namespace's macvtap already holds must not be
handed out as /dev/tapN: that node is the other one's device (measured below, then the allocator's answer)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.datapath.helpers import ip

REPO = Path(__file__).resolve().parents[2]
NODE_A, NODE_B = "macvtapctl-test-tapa", "macvtapctl-test-tapb"

# Run in node B's namespace by `ip netns exec` (which mounts that namespace's sysfs, as runc does for the agent).
ALLOCATE = """
import asyncio, json, logging, os, sys
logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
from macvtapctl.agent.deviceplugin.allocator import make_allocator
from macvtapctl.agent.link_registry import LinkRegistry
from macvtapctl.rules.dpconfig import Entry
path = asyncio.run(make_allocator(LinkRegistry())("dev-b-0", Entry("lan", "lower0")))
index = int(path.removeprefix("/dev/tap"))
link = [l for l in json.loads(os.popen("ip -j link show").read()) if l["ifindex"] == index][0]["ifname"]
dev = open(f"/sys/class/net/{link}/macvtap/tap{index}/dev").read().strip()
st = os.stat(path)
print(json.dumps({"path": path, "sysfs": dev, "node": f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"}))
"""


def _fresh_node(ns: str) -> None:
    """A namespace whose counter starts again: lo is 1, the lower device's veth pair 2 and 3, so the first macvtap
    made in either node is index 4 — a clash every time, not by chance."""
    ip("netns", "add", ns)
    ip("-n", ns, "link", "add", "lower0", "type", "veth", "peer", "name", "lower1")
    ip("-n", ns, "link", "set", "lower0", "up")


FIRST_INDEX = 4  # a fresh namespace's first macvtap (see _fresh_node)


@pytest.fixture
def two_nodes() -> Iterator[None]:
    for ns in (NODE_A, NODE_B):
        ip("netns", "del", ns, check=False)
    # A deleted namespace's links go asynchronously (the kernel's netns cleanup): until the last tap<4> of an
    # earlier test is gone, it keeps /dev/tap4, and the clash these tests make would not be the one they mean.
    deadline = time.monotonic() + 20
    while os.path.exists(f"/dev/tap{FIRST_INDEX}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(f"/dev/tap{FIRST_INDEX}"), f"/dev/tap{FIRST_INDEX} is held by another namespace"
    for ns in (NODE_A, NODE_B):
        _fresh_node(ns)
    try:
        yield
    finally:
        for ns in (NODE_A, NODE_B):
            ip("netns", "del", ns, check=False)


def _index_of(ns: str, name: str) -> int:
    return int(json.loads(ip("-n", ns, "-j", "link", "show", name).stdout)[0]["ifindex"])


def _sysfs_dev(ns: str, link: str, index: int) -> str:
    return subprocess.run(["ip", "netns", "exec", ns, "cat", f"/sys/class/net/{link}/macvtap/tap{index}/dev"],
                          check=True, capture_output=True, text=True).stdout.strip()


def _node_of(path: str) -> str:
    st = os.stat(path)
    return f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"


def test_a_shared_dev_keeps_the_first_namespaces_node(two_nodes: None) -> None:
    """The hazard itself, as the kernel has it: the second macvtap of index N gets no /dev/tapN of its own."""
    for ns in (NODE_A, NODE_B):
        ip("-n", ns, "link", "add", "link", "lower0", "name", "mvt0", "type", "macvtap", "mode", "bridge")
    index = _index_of(NODE_A, "mvt0")
    assert index == _index_of(NODE_B, "mvt0")
    devs = [_sysfs_dev(ns, "mvt0", index) for ns in (NODE_A, NODE_B)]
    assert _node_of(f"/dev/tap{index}") == devs[0] != devs[1]


def test_allocate_never_hands_out_another_namespaces_tap(two_nodes: None) -> None:
    ip("-n", NODE_A, "link", "add", "link", "lower0", "name", "mvt0", "type", "macvtap", "mode", "bridge")
    clashed = _index_of(NODE_A, "mvt0")
    assert clashed == FIRST_INDEX and _node_of(f"/dev/tap{clashed}") == _sysfs_dev(NODE_A, "mvt0", clashed)
    r = subprocess.run(["ip", "netns", "exec", NODE_B, sys.executable, "-c", ALLOCATE], check=False, capture_output=True,
                       text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["path"] != f"/dev/tap{clashed}"
    assert got["node"] == got["sysfs"]  # the node handed out is this link's own device
    assert f"/dev/tap{clashed} is another network namespace's macvtap" in r.stderr
