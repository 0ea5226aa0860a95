"""One test node per host (tests/harness/node.py): a second `up` beside a running one — `make test` after `make demo`
— refuses in one line naming `make cluster-down`, having changed nothing, so that its clean-up cannot tear down
the first node's LAN, links or pods (issue 37)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.harness.node import HostTaken, Node


def _running_node(d: Path, pid: int) -> Node:
    node = Node(d)
    node.dir.mkdir(parents=True)
    (node.dir / "state.json").write_text(json.dumps({"pids": {"kubelet": pid}}))
    return node


def test_a_second_node_refuses_while_the_first_runs_and_writes_nothing(tmp_path: Path) -> None:
    owner = tmp_path / "owner"
    demo = _running_node(tmp_path / "demo", os.getpid())  # a live process stands for the demo's kubelet
    demo.claim_host(owner)
    tests = Node(tmp_path / "tests")
    with pytest.raises(HostTaken) as err:
        tests.claim_host(owner)
    assert str(err.value) == (f"another macvtapctl test node runs on this host (its directory: {demo.dir}); stop "
                              "it first with `make cluster-down` (or `make node-down`)")
    assert owner.read_text().strip() == str(demo.dir)
    assert not tests.dir.exists()  # no state: the caller's down() has nothing to undo
    tests.down()  # what the e2e fixtures call after a failed up: touches nothing
    assert owner.read_text().strip() == str(demo.dir)


def test_the_host_is_free_again_once_the_first_node_is_gone(tmp_path: Path) -> None:
    owner = tmp_path / "owner"
    proc = subprocess.Popen(["true"])
    proc.wait()
    old = _running_node(tmp_path / "old", proc.pid)
    old.claim_host(owner)
    new = Node(tmp_path / "new")
    new.claim_host(owner)  # the old node's processes are gone: the host is free
    assert owner.read_text().strip() == str(new.dir)
    old.release_host(owner)  # not the holder any more: leaves the new one's claim
    assert owner.read_text().strip() == str(new.dir)
    new.release_host(owner)
    assert not owner.exists()
