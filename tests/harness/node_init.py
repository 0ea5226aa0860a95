"""PID 1 of a second node (tests/harness/second_node.py): a kind-like node's init, on this machine's kernel.

    nsenter --net=/run/netns/NS unshare --pid --fork --mount --uts --ipc --mount-proc --propagation private \
        python3 -m tests.harness.node_init --name NAME --dir NODE_DIR --as FIRST_NODE_DIR

It runs in the node's own PID, mount, UTS, IPC and network namespaces, so that what KubeVirt's virt-handler reaches
through /proc/1 (hostPID: /proc/1/root, /proc/1/ns/mnt) is this node's, not the host's. Before anything starts it
gives the node what a machine has of its own: /run, /var/lib/kubelet, containerd's root, the pod logs,
KubeVirt's host directories, a machine-id, a hostname, a sysfs of its network namespace; and the first node's
directory (same paths on every node, as on a real cluster: the DaemonSets' hostPaths) shows this node's. The rest
of the file system is the host's (/tmp too: the tests' clusters live there), a private copy (the host's binaries; no mount goes either way).
Then it reaps what is orphaned to it, and on SIGTERM stops everything in the namespace.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

# A machine's own directories (bound from <node dir>/root/...); the first node's HOST_DIRS and where its
# containerd keeps images and snapshots.
PRIVATE_DIRS = ("/var/lib/kubelet", "/var/lib/macvtapctl-e2e", "/var/log/pods", "/var/log/containers",
                "/usr/libexec/kubernetes", "/etc/kubernetes", "/var/lib/kubevirt-node-labeller", "/etc/multipath",
                "/var/lib/cni")
READY = "init.ready"


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True)


def _mount_points() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4].replace("\\040", " ") for line in f]


def drop_copied_mounts(prefixes: list[str]) -> None:
    """This mount namespace began as a private copy of the host's, with the first node's mounts in it (its
    containers' root file systems under /run/containerd, its pods' volumes): leave them to the host, deepest
    first, before this node's own directories cover those paths (the copies would be out of reach then)."""
    for _ in range(5):
        found = [m for m in _mount_points() if any(m == p or m.startswith(p + "/") for p in prefixes)]
        if not found:
            return
        for m in sorted(set(found), key=lambda m: -m.count("/")):
            subprocess.run(["umount", "-l", m], check=False, stderr=subprocess.DEVNULL)


def setup(name: str, node_dir: Path, first_dir: Path) -> None:
    root = node_dir / "root"
    drop_copied_mounts(["/run", *PRIVATE_DIRS, str(first_dir)])
    mount("-t", "tmpfs", "-o", "mode=755", "tmpfs", "/run")
    for d in PRIVATE_DIRS:
        (root / d.lstrip("/")).mkdir(parents=True, exist_ok=True)
        Path(d).mkdir(parents=True, exist_ok=True)  # the mount point (second_node records those it made)
        mount("--bind", str(root / d.lstrip("/")), d)
    first_dir.mkdir(parents=True, exist_ok=True)
    mount("--bind", str(node_dir), str(first_dir))
    machine_id = node_dir / "machine-id"
    machine_id.write_text(os.urandom(16).hex() + "\n")
    if Path("/etc/machine-id").exists():
        mount("--bind", str(machine_id), "/etc/machine-id")
    # sysfs shows the network namespace of whoever mounts it: this node's links under /sys/class/net (the
    # kubelet, the agent's /dev/tapN check, KubeVirt). The cgroup hierarchies are kept across it.
    hold = Path("/run/.cgroup")
    hold.mkdir()
    mount("--rbind", "/sys/fs/cgroup", str(hold))
    mount("-t", "sysfs", "sysfs", "/sys")
    mount("--move", str(hold), "/sys/fs/cgroup")
    hold.rmdir()
    # Shared, as a systemd machine's mounts are: the kubelet refuses Bidirectional propagation (virt-handler's
    # /var/lib/kubelet, /run/kubevirt) from a private mount. Peers only within this node: its namespace began private.
    for target in ("/run", *PRIVATE_DIRS, str(first_dir)):
        mount("--make-shared", target)
    socket.sethostname(name)


class Stop(Exception):
    pass


def reap_until_stopped(node_dir: Path) -> int:
    def on_term(_sig: int, _frame: object) -> None:
        raise Stop  # out of a blocking waitpid (Python would otherwise retry it after the handler)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    (node_dir / READY).write_text(f"{os.getpid()}\n")
    try:
        while True:
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                time.sleep(0.2)  # nothing to reap yet: processes are entered with nsenter, orphaned to us later
    except Stop:
        pass
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Everything in this PID namespace: polite first; PID 1 leaving kills whatever is left.
    with contextlib.suppress(ProcessLookupError):
        os.kill(-1, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        time.sleep(0.1)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", required=True)
    parser.add_argument("--dir", required=True, type=Path)
    parser.add_argument("--as", dest="first", required=True, type=Path)
    args = parser.parse_args(argv)
    if os.getpid() != 1:
        print("node_init.py runs as PID 1 of the node's PID namespace (see its docstring)", file=sys.stderr)
        return 2
    setup(args.name, args.dir.resolve(), args.first.resolve())
    return reap_until_stopped(args.dir.resolve())


if __name__ == "__main__":
    sys.exit(main())
