"""A second real node on this machine, kind-like: its own PID, mount, UTS, IPC and network namespaces, PID 1 an
init of its own (node_init.py), and inside them the same node as the first (node.py: containerd, runc, kubelet,
kube-proxy, Multus) joined to the same control plane.

    python -m tests.harness.second_node up   [--dir .devcluster]   (after `node.py up`; `make node-up NODES=2`)
    python -m tests.harness.second_node down [--dir .devcluster]   (node.py down runs it first)

Why namespaces and not a second kubelet beside the first: KubeVirt's virt-handler (hostPID) works through
/proc/1/root and /proc/1/ns/mnt, the kubelet, containerd and the DaemonSets' hostPaths are per machine, and the
macvtap agent serves its node's network namespace. Why not a root file system of its own (kind's image): the
binaries are the host's, in a private copy of its mounts; what a machine has of its own is given its own (node_init.py).

The host side, recorded in <dir>/node-b/host-state.json before each change so that `down` undoes a half-done
`up`: the node's network namespace; a veth to the host carrying its node address (198.18.0.0/24, RFC 2544's
benchmarking range: never routed on a LAN) and routes between the nodes' pod subnets; its lower device e2elan0,
a veth whose other end is port-b of the LAN's switch (node.py's LAN); a cgroup per hierarchy under which its kubelet
puts its pods (cgroup v1 here: no cgroup namespace can give it a root of its own); its client certificate.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from tests.harness import node_init
from tests.harness.controlplane import _alive, _tail, default_route_ip, issue_client_cert
from tests.harness.node import (
    CGROUP_ROOT,
    LAN_NETNS,
    LAN_PEER,
    LOWER,
    POD_SUBNET,
    Node,
    NodeError,
    Undo,
    _kill_cgroup_tasks,
    _stop,
    cli,
    remove_all_but_logs,
    run,
)
from tests.harness.paths import REPO

NAME = "macvtap-e2e-b"
NETNS = "macvtapctl-e2e-b"
HOST_LINK, NODE_LINK = "e2eb0", "eth0"  # "e2e": the first node's clean-up finds a leftover too
HOST_IP, NODE_IP, LINK_PREFIX = "198.18.0.1", "198.18.0.2", 24
NODE_POD_SUBNET = "10.88.1.0/24"  # in node.py's POD_RANGES
NODE_CGROUP = "/macvtapctl-e2e-b"
LAN_PORT = "port-b"


def _with_repo() -> dict[str, str]:
    """The environment for `python -m tests.harness...` inside the node's namespaces: the repository by its absolute
    path (the node sees the host's files at the same paths; a working directory does not survive a mount-namespace
    switch reliably)."""
    return {**os.environ, "PYTHONPATH": str(REPO)}


class SecondNode:
    def __init__(self, cluster_dir: Path) -> None:
        self.cluster = Path(cluster_dir).resolve()
        self.dir = self.cluster / "node-b"
        self.state_file = self.dir / "host-state.json"  # node.py's state.json here is the node's own (inside)
        self.state: dict[str, Any] = {}
        self.name = NAME

    def _save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps(self.state, indent=1))

    def _load(self) -> None:
        self.state = json.loads(self.state_file.read_text()) if self.state_file.exists() else {}

    def running(self) -> bool:
        self._load()
        return bool(self.state.get("init")) and _alive(self.state["init"])

    # --- inside the node ---
    def enter(self) -> list[str]:
        """The command prefix that runs a program inside the node (all its namespaces)."""
        return ["nsenter", "-t", str(self.state["init"]), "-m", "-u", "-i", "-n", "-p", "--"]

    def ctr(self, nbins: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run(*self.enter(), str(nbins / "ctr"), "--address", "/run/containerd/containerd.sock", "-n", "k8s.io",
                   *args, check=check, quiet=True)

    def see(self, path: Path) -> Path:
        """`path` as this node sees it: a file in the first node's directory (which inside shows this node's)
        is hard-linked into this node's, at the same place."""
        first = self.cluster / "node"
        if not path.resolve().is_relative_to(first):
            return path
        mine = self.dir / path.resolve().relative_to(first)
        mine.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.link(path, mine)
        return path

    def _node_py(self, cmd: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.enter(), sys.executable, "-m", "tests.harness.node", cmd, "--dir", str(self.cluster),
                               "--second", "--name", NAME, "--pod-subnet", NODE_POD_SUBNET, "--cgroup-root",
                               NODE_CGROUP], env=_with_repo(), check=False, text=True)

    # --- up ---
    def up(self) -> None:
        if os.geteuid() != 0:
            raise NodeError("the second node needs root (namespaces, kubelet, containerd)")
        first = Node(self.cluster)
        first._load()
        if not first.state.get("pids"):
            raise NodeError(f"the first node is not running in {self.cluster}: `make node-up` first")
        if self.running():
            print(f"node {NAME} already running")
            return
        self._load()
        if self.state:
            self.down()
        t0 = time.monotonic()
        self.state = {"node": NAME, "created_dirs": [], "cgroups": []}
        self._save()
        self._network()
        self._lan()
        self._files(first)
        self._cgroups()
        self._init()
        r = self._node_py("up")
        if r.returncode != 0:
            raise NodeError(f"node {NAME} did not start inside its namespaces (logs in {self.dir})")
        print(f"node {NAME} Ready in {time.monotonic() - t0:.1f}s (own namespaces, PID 1 {self.state['init']} on "
              f"the host; node IP {NODE_IP}; lower device {LOWER} on the LAN's port {LAN_PORT})")

    def _network(self) -> None:
        self.state["netns"] = NETNS
        self._save()
        run("ip", "netns", "add", NETNS)
        run("ip", "-n", NETNS, "link", "set", "lo", "up")
        run("ip", "link", "add", HOST_LINK, "type", "veth", "peer", "name", NODE_LINK, "netns", NETNS)
        run("ip", "addr", "add", f"{HOST_IP}/{LINK_PREFIX}", "dev", HOST_LINK)
        run("ip", "link", "set", HOST_LINK, "up")
        run("ip", "-n", NETNS, "addr", "add", f"{NODE_IP}/{LINK_PREFIX}", "dev", NODE_LINK)
        run("ip", "-n", NETNS, "link", "set", NODE_LINK, "up")
        run("ip", "-n", NETNS, "route", "add", "default", "via", HOST_IP)
        # Pod to pod across nodes, routed by the host (as a cloud's routes do for kubenet); the host forwards.
        run("ip", "-n", NETNS, "route", "add", POD_SUBNET, "via", HOST_IP)
        run("ip", "route", "add", NODE_POD_SUBNET, "via", NODE_IP, "dev", HOST_LINK)

    def _lan(self) -> None:
        self.state["lan_port"] = LAN_PORT
        self._save()
        run("ip", "link", "add", LAN_PORT, "netns", LAN_NETNS, "type", "veth", "peer", "name", LOWER, "netns", NETNS)
        run("ip", "-n", LAN_NETNS, "link", "set", LAN_PORT, "master", LAN_PEER, "up")
        run("ip", "-n", NETNS, "link", "set", LOWER, "up")

    def _files(self, first: Node) -> None:
        # The images the first node built, for this node's containerd (node.py --second imports, never builds).
        images = self.dir / "images"
        images.mkdir(parents=True, exist_ok=True)
        for tar in first.images.glob("*.tar"):
            with contextlib.suppress(FileExistsError):
                os.link(tar, images / tar.name)
        issue_client_cert(self.cluster / "pki", f"system:node:{NAME}", ("system:nodes",), self.dir / "kubelet-client")
        # The API server as this node reaches it: at the host's address (it listens there for in-cluster clients),
        # which its certificate names; loopback here is the node's own.
        host_ip = default_route_ip()
        if host_ip is None:
            raise NodeError("no default route: the second node reaches the API server at the host's address")
        kc = yaml.safe_load((self.cluster / "kubeconfig").read_text())
        for c in kc["clusters"]:
            c["cluster"]["server"] = urlsplit(c["cluster"]["server"])._replace(
                netloc=f"{host_ip}:{urlsplit(c['cluster']['server']).port}").geturl()
        (self.dir / "admin.kubeconfig").touch(mode=0o600)
        (self.dir / "admin.kubeconfig").write_text(yaml.safe_dump(kc))
        # Mount points node_init.py binds this node's directories on: the host gets the empty directory.
        self.state["created_dirs"] = [d for d in node_init.PRIVATE_DIRS if not Path(d).exists()]
        self._save()

    def _cgroups(self) -> None:
        for ctrl in sorted(CGROUP_ROOT.iterdir()):
            if ctrl.is_dir() and not ctrl.is_symlink() and (ctrl / "cgroup.procs").exists():
                cg = ctrl / NODE_CGROUP.strip("/")
                if not cg.exists():
                    self.state["cgroups"].append(str(cg))
                    self._save()
                    cg.mkdir()
                    # cpuset: a child has no CPUs or memory nodes until given its parent's.
                    for f in ("cpuset.cpus", "cpuset.mems"):
                        if (ctrl / f).exists():
                            (cg / f).write_text((ctrl / f).read_text())

    def _init(self) -> None:
        log = self.dir / "init.log"
        (self.dir / node_init.READY).unlink(missing_ok=True)
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                # nsenter joins the prepared network namespace (unshare's --net=FILE would make a new one there).
                ["nsenter", f"--net=/run/netns/{NETNS}", "--", "unshare", "--pid", "--fork", "--kill-child", "--mount",
                 "--uts", "--ipc", "--mount-proc", "--propagation", "private", sys.executable, "-m", "tests.harness.node_init", "--name", NAME,
                 "--dir", str(self.dir), "--as", str(self.cluster / "node")],
                env=_with_repo(), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        self.state["unshare"] = proc.pid  # nsenter execs unshare: the same process
        self._save()
        deadline = time.monotonic() + 30
        while not (self.dir / node_init.READY).exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise NodeError(f"node {NAME}'s init did not start; last log lines:\n{_tail(log)}")
            time.sleep(0.05)
        self.state["init"] = int(Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()[0])
        self._save()

    # --- down ---
    def down(self) -> None:
        self._load()
        if not self.state:
            return
        step = Undo()
        if self.running() and (self.dir / "state.json").exists():
            step("the node inside", lambda: self._node_py("down").check_returncode())
        step("init", self._stop_init)
        step("pod processes", lambda: _kill_cgroup_tasks(NODE_CGROUP))
        for cg in reversed(self.state.get("cgroups", [])):
            step(f"cgroup {cg}", lambda cg=cg: _rmdir_tree(Path(cg)))
        if self.state.get("lan_port"):
            step("LAN port", lambda: run("ip", "-n", LAN_NETNS, "link", "del", LAN_PORT, check=False, quiet=True))
        if self.state.get("netns"):
            step("network namespace", lambda: run("ip", "netns", "del", NETNS, check=False, quiet=True))
            step("host link", lambda: run("ip", "link", "del", HOST_LINK, check=False, quiet=True))
        for d in self.state.get("created_dirs", []):
            # Empty: only this node's mount point. Not empty: the first node's KubeVirt has filled it since (a
            # hostPath DirectoryOrCreate), and the first node's `down` removes it.
            step(f"remove {d}", lambda d=d: Path(d).rmdir() if Path(d).is_dir() and not any(Path(d).iterdir())
                 else None)
        step("Node object", Node(self.cluster, NAME, second=True)._delete_node_object)
        step("node dir", lambda: remove_all_but_logs(self.dir))
        step.report(f"node-down of node {NAME}")
        print(f"node {NAME} stopped; host restored")

    def _stop_init(self) -> None:
        init, unshare = self.state.get("init"), self.state.get("unshare")
        if init and _alive(init):
            os.kill(init, signal.SIGTERM)
            deadline = time.monotonic() + 20
            while _alive(init) and time.monotonic() < deadline:
                time.sleep(0.1)
        if unshare:
            _stop(unshare, timeout=5)  # --kill-child: its end takes the init, and so the whole PID namespace


def _rmdir_tree(cg: Path) -> None:
    """A cgroup and its children, deepest first (a cgroup directory is removed with rmdir, never its files)."""
    if not cg.is_dir():
        return
    dirs = [Path(root) / d for root, subdirs, _ in os.walk(cg) for d in subdirs]
    for d in sorted(dirs, key=lambda p: -len(p.parts)):
        with contextlib.suppress(FileNotFoundError):
            d.rmdir()
    cg.rmdir()


def main(argv: list[str] | None = None) -> int:
    return cli(argv, __doc__, lambda a: SecondNode(Path(a.dir)))


if __name__ == "__main__":
    sys.exit(main())
