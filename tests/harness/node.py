"""A real Kubernetes node joined to the local control plane: containerd + runc + kubelet + Multus, with the
scheduler and controller manager, a default pod network, and a lower device for macvtap whose peer sits in a
"LAN" network namespace.

    python -m tests.harness.node up   [--dir .devcluster]    (needs `make cluster-up` first; root)
    python -m tests.harness.node down [--dir .devcluster]    (also after a failed or half-done `up`)

Everything the node changes on the host is recorded in <dir>/node/state.json before it is changed, and `down`
undoes it: processes, mounts, /var/lib/kubelet, /run/containerd, cgroups, links, namespaces, sysctls.
Facts and traps behind the settings: docs/development.md ("The real node").
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.harness import images
from tests.harness.controlplane import NODE_NAME, SERVICE_RANGE, _alive, _tail, default_route_ip
from tests.harness.paths import NODE_SRC, REPO

LOWER = "e2elan0"  # the node's "NIC" for macvtap: a veth whose peer is in the LAN namespace
LAN_NETNS = "macvtapctl-e2e-lan"
LAN_PEER = "lan0"  # the LAN's switch (a bridge) and its own address
LAN_PORT = "port-a"  # the first node's port on it (a second node's: second_node.py)
LAN_DHCP_RANGE = ("198.51.100.100", "198.51.100.150")  # what the LAN's DHCP server (start_lan_dhcp) leases
LAN_PEER_IP = "198.51.100.1"  # TEST-NET-2: only ever inside namespaces this harness made
LAN_PREFIX = 24
POD_SUBNET = "10.88.0.0/24"  # the default pod network (bridge + host-local), inside pod namespaces only
POD_BRIDGE = "e2ecni0"
POD_RANGES = "10.88.0.0/16"  # every node's pod subnet is in here
# Nothing of the test cluster leaves this machine (issue 38): while a node is up, the Service range and the pod
# ranges are routed into a drop link — one end of a veth pair whose other end stays down, so that what it is given
# is dropped and counted (tx_dropped); no ARP on it (this kernel has no dummy driver). kube-proxy's DNAT (or a node's pod bridge, a
# more specific route) takes what something on this machine answers; the rest — an unused Service address, a pod
# subnet with no node — goes nowhere instead of out of the default route.
DROP_LINK, DROP_PEER = "e2edrop0", "e2edrop1"
DROP_METRIC = "4000"  # below every other route's preference
CLUSTER_DNS_IP = "10.0.0.10"  # in the Service range; reserved for a cluster DNS (none runs here)
KUBELET_ROOT = Path("/var/lib/kubelet")
CONTAINERD_STATE = Path("/run/containerd")
CONTAINERD_ROOT = Path("/var/lib/macvtapctl-e2e/containerd")
SOCKET = CONTAINERD_STATE / "containerd.sock"
# KubeVirt's virt-handler keeps its state in host directories (hostPath volumes, DirectoryOrCreate).
KUBEVIRT_HOST_DIRS = [Path("/run/kubevirt"), Path("/run/kubevirt-private"), Path("/run/kubevirt-libvirt-runtimes"),
                      Path("/var/lib/kubevirt-node-labeller"), Path("/etc/multipath")]
HOST_DIRS = [KUBELET_ROOT, CONTAINERD_STATE, CONTAINERD_ROOT.parent, Path("/var/log/pods"),
             Path("/var/log/containers"), Path("/usr/libexec/kubernetes"), Path("/etc/kubernetes"),
             *KUBEVIRT_HOST_DIRS]
NFT_TABLES = [("ip", "kube-proxy"), ("ip6", "kube-proxy")]  # kube-proxy's own (nftables mode); no other table
SYSCTLS = ["kernel.panic", "kernel.panic_on_oops", "vm.overcommit_memory"]  # the kubelet changes these
CGROUP_ROOT = Path("/sys/fs/cgroup")
# The kubelet's nodeStatusUpdateFrequency (its default is 10 s): how late a new resource can reach the Node's
# allocatable, which is what the scheduler and `--wait` read; tests that time a wait add it (test_g).
STATUS_PERIOD = 2
# One node per host (its kubelet root, containerd socket, LAN namespace and link names are the host's): the node that
# holds the host names its directory here, so that a second `up` (make test beside make demo's node) refuses before
# it changes anything, and its clean-up can touch nothing of the first (issue 37).
OWNER = Path("/run/macvtapctl-e2e-node.owner")
RUNC = "/usr/sbin/runc"  # Debian's runc: built with seccomp, which containerd's sandbox profile needs


class NodeError(RuntimeError):
    """The node could not start or stop."""


class HostTaken(NodeError):
    """Another node runs on this host: nothing was changed, and there is nothing to undo."""


def run(*cmd: str, check: bool = True, quiet: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), check=check, text=True,
                          stdout=subprocess.PIPE if quiet else None, stderr=subprocess.PIPE if quiet else None)


def node_binaries() -> Path:
    out = subprocess.run(["bash", str(NODE_SRC / "build.sh")], check=True, stdout=subprocess.PIPE, text=True)
    return Path(out.stdout.strip().splitlines()[-1])


def node_ip() -> str:
    """The address the kubelet reports (it refuses loopback): the one on the default route's interface."""
    ip = default_route_ip()
    if ip is None:
        raise NodeError("no default route: the kubelet needs a non-loopback node address")
    return ip


class Node:
    """A node on this machine. The first one (the default) holds the host's namespaces and runs the LAN, the
    scheduler and the controller manager; a second one (`second`) is run by tests/harness/second_node.py inside its
    own namespaces, where the first node's directory shows its own (same paths on every node)."""

    def __init__(self, cluster_dir: Path, name: str = NODE_NAME, *, pod_subnet: str = POD_SUBNET,
                 second: bool = False, cgroup_root: str = "") -> None:
        self.cluster = Path(cluster_dir).resolve()
        self.dir = self.cluster / "node"
        self.name, self.pod_subnet, self.second, self.cgroup_root = name, pod_subnet, second, cgroup_root
        # The admin kubeconfig the node's own parts use (kube-proxy, Multus, this harness): a second node reaches
        # the API server at the host's address, not at loopback (second_node.py writes it).
        self.kubeconfig = self.dir / "admin.kubeconfig" if second else self.cluster / "kubeconfig"
        self.state_file = self.dir / "state.json"
        self.state: dict[str, Any] = {}
        self.cni_bin = self.dir / "cni" / "bin"
        self.cni_conf = self.dir / "cni" / "net.d"
        self.images = self.dir / "images"

    # --- state: written before each change, so `down` can undo a half-done `up` ---
    def _save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps(self.state, indent=1))

    def _load(self) -> None:
        self.state = json.loads(self.state_file.read_text()) if self.state_file.exists() else {}

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = self.dir / f"{name}.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, env={**os.environ, **(env or {})})
        self.state.setdefault("pids", {})[name] = proc.pid
        self._save()
        return proc

    def _wait(self, what: str, check: Any, proc: subprocess.Popen[bytes] | None, log: str,
              timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise NodeError(f"{what} exited with {proc.returncode}; last log lines:\n{_tail(self.dir / log)}")
            with contextlib.suppress(Exception):
                if check():
                    return
            time.sleep(0.2)
        raise NodeError(f"{what} not ready after {timeout:.0f}s; last log lines:\n{_tail(self.dir / log)}")

    # --- the host, held by one node at a time ---
    def holder(self, owner: Path = OWNER) -> Path | None:
        """The directory of another node that holds this host and still runs, or None."""
        try:
            other = Path(owner.read_text().strip())
        except OSError:
            return None
        if other == self.dir:
            return None
        try:
            pids = json.loads((other / "state.json").read_text()).get("pids", {})
        except (OSError, ValueError):
            return None
        return other if any(_alive(p) for p in pids.values()) else None

    def claim_host(self, owner: Path = OWNER) -> None:
        """Refuse, having changed nothing, while another node runs here; else record this node as the holder."""
        other = self.holder(owner)
        if other is not None:
            raise HostTaken(f"another macvtapctl test node runs on this host (its directory: {other}); stop it "
                            "first with `make cluster-down` (or `make node-down`)")
        owner.write_text(f"{self.dir}\n")

    def release_host(self, owner: Path = OWNER) -> None:
        with contextlib.suppress(OSError):
            if Path(owner.read_text().strip()) == self.dir:
                owner.unlink()

    # --- up ---
    def up(self) -> None:
        if os.geteuid() != 0:
            raise NodeError("the real node needs root (kubelet, containerd, network namespaces)")
        cp_state = self.cluster / "state.json"
        if not cp_state.exists():
            raise NodeError(f"no local control plane in {self.cluster}: run `make cluster-up` first")
        self.claim_host()
        self._load()
        if self.state.get("pids") and all(_alive(p) for p in self.state["pids"].values()):
            print(f"node {self.name} already running")
            return
        if self.state:
            self.down()
        t0 = time.monotonic()
        cp = json.loads(cp_state.read_text())
        self.state = {"node": self.name, "created_dirs": [], "sysctls": {}, "pids": {}}
        self._save()
        bins = Path(cp["bin"])
        nbins = node_binaries()
        if not Path(RUNC).exists():
            raise NodeError(f"{RUNC} is missing: apt-get install runc")
        for d in HOST_DIRS:
            if not d.exists():
                self.state["created_dirs"].append(str(d))
        self._save()
        for name in SYSCTLS:
            self.state["sysctls"][name] = Path("/proc/sys", *name.split(".")).read_text().strip()
        self._save()
        # The guest VMs' qemu runs as uid 107 and reads its kernel from a directory below this one.
        CONTAINERD_ROOT.parent.mkdir(parents=True, exist_ok=True)
        CONTAINERD_ROOT.parent.chmod(0o711)
        self.state["pid_namespace"] = cp.get("crds") == "runtime"
        self._contain()  # before anything of the cluster can send
        if not self.second:  # a second node's lower device is on the LAN already (second_node.py)
            self._lan()  # first: its /run/netns bind mount must not join /'s peer group (see _shared_mounts)
        self._shared_mounts()
        self._cni(nbins)
        if not self.second:  # a second node imports the first one's (second_node.py copies them here)
            self._images()
        self._containerd(nbins)
        self._kubelet(bins, _server_of(self.kubeconfig))
        if not self.second:
            self._control_loops(bins)
        # Always: Service addresses are answered on this machine (an endpoint, or kube-proxy's reject), never
        # left to the routes. With an in-cluster control plane pods reach the API server at its Service.
        self._kube_proxy(bins)
        self._wait_ready(bins)
        print(f"node {self.name} Ready in {time.monotonic() - t0:.1f}s (lower device {LOWER}, "
              f"LAN peer {LAN_PEER_IP} in netns {LAN_NETNS}; logs in {self.dir})")

    def _shared_mounts(self) -> None:
        """Shared mounts where a systemd host has them: KubeVirt's virt-handler (/var/lib/kubelet, /run/kubevirt)
        and upstream macvtap-cni (its CNI dir) mount with Bidirectional propagation, which the kubelet refuses on
        a private mount ("... is not a shared mount"). Only the mounts holding those paths change (here: /), not
        recursively: this host stacks mounts at /dev/shm and /dev/pts that `--make-rshared /` would reach and no
        path can give back. Each one's propagation is recorded first; `down` restores it.
        After `ip netns add` (_lan): a /run/netns bind made while / is shared joins /'s peer group, a namespace
        mounted in it then propagates to / under the bind, and `ip netns del` cannot remove it (EBUSY)."""
        holders = {_mount_of(p) for p in (KUBELET_ROOT.parent, Path("/run"), self.cni_bin.parent)}
        found = _propagation()
        self.state["propagation"] = {t: found[t] for t in sorted(holders) if found.get(t) != "shared"}
        self._save()
        for target in self.state["propagation"]:
            run("mount", "--make-shared", target)

    def _contain(self) -> None:
        self.state["drop_link"] = DROP_LINK  # removed by `down` with the other e2e* links; its routes go with it
        self._save()
        run("ip", "link", "add", DROP_LINK, "type", "veth", "peer", "name", DROP_PEER)
        run("ip", "link", "set", DROP_LINK, "arp", "off")
        run("ip", "link", "set", DROP_LINK, "up")
        for cidr in (SERVICE_RANGE, POD_RANGES):
            run("ip", "route", "add", cidr, "dev", DROP_LINK, "metric", DROP_METRIC)

    def _kube_proxy(self, bins: Path) -> None:
        """kube-proxy (nftables mode): the `kubernetes` Service's address reaches the API server from pods, as in
        a real cluster. It writes only its own tables (ip/ip6 kube-proxy), which `down` removes."""
        if shutil.which("nft") is None:
            raise NodeError("nft is missing (Debian package nftables): kube-proxy's nftables mode runs it")
        self.state["nft_tables"] = [f"{fam} {name}" for fam, name in NFT_TABLES]
        self._save()
        kc = str(self.kubeconfig)
        self._spawn("kube-proxy", [
            str(bins / "kube-proxy"), f"--kubeconfig={kc}", "--proxy-mode=nftables",
            f"--hostname-override={self.name}", f"--cluster-cidr={self.pod_subnet}",
            "--conntrack-max-per-core=0",  # leave the host's nf_conntrack_max alone
            "--metrics-bind-address=127.0.0.1:10249", "--healthz-bind-address=127.0.0.1:10256", "--v=1"])

    def _lan(self) -> None:
        self.state["lan"] = True
        # `ip netns add` turns /run/netns into a shared bind mount; undo that only if it was not one already.
        self.state["netns_mount"] = "/run/netns" not in _mounts()
        self._save()
        run("ip", "netns", "add", LAN_NETNS)
        run("ip", "-n", LAN_NETNS, "link", "set", "lo", "up")
        # The LAN is a switch (a bridge, no STP: ports forward at once) with one port per node's lower device;
        # its own interface is the LAN's peer (DHCP server, pings).
        run("ip", "-n", LAN_NETNS, "link", "add", LAN_PEER, "type", "bridge", "forward_delay", "0")
        run("ip", "-n", LAN_NETNS, "addr", "add", f"{LAN_PEER_IP}/{LAN_PREFIX}", "dev", LAN_PEER)
        run("ip", "-n", LAN_NETNS, "link", "set", LAN_PEER, "up")
        run("ip", "link", "add", LOWER, "type", "veth", "peer", "name", LAN_PORT, "netns", LAN_NETNS)
        run("ip", "-n", LAN_NETNS, "link", "set", LAN_PORT, "master", LAN_PEER, "up")
        run("ip", "link", "set", LOWER, "up")

    def start_lan_dhcp(self) -> Path:
        """dnsmasq as the LAN's DHCP server, only on the LAN namespace's interface (as a VM's DHCP finds one on a
        real L2 network); stopped by stop_lan_dhcp or node-down. Returns its lease file."""
        self._load()
        leases, pid_file = self.dir / "lan.leases", self.dir / "lan-dnsmasq.pid"
        self.stop_lan_dhcp()
        run("ip", "netns", "exec", LAN_NETNS, "dnsmasq", "--no-resolv", "--no-hosts", "--port=0",
            f"--interface={LAN_PEER}", "--bind-interfaces", f"--pid-file={pid_file}",
            f"--dhcp-range={LAN_DHCP_RANGE[0]},{LAN_DHCP_RANGE[1]},255.255.255.0,1h", f"--dhcp-leasefile={leases}",
            "--user=root", "--log-dhcp", f"--log-facility={self.dir / 'lan-dnsmasq.log'}")
        self.state["lan_dhcp_pid"] = int(pid_file.read_text().split()[0])
        self._save()
        return leases

    def stop_lan_dhcp(self) -> None:
        pid = self.state.pop("lan_dhcp_pid", None)
        if pid and _alive(pid):
            # Not _stop: the daemon forked after setsid, so it leads no process group of its own.
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        self._save()

    def _cni(self, nbins: Path) -> None:
        self.cni_bin.mkdir(parents=True, exist_ok=True)
        self.cni_conf.mkdir(parents=True, exist_ok=True)
        for b in ("bridge", "ptp", "loopback", "host-local", "multus"):
            shutil.copy2(nbins / b, self.cni_bin / b)
        # One plugin, not a conflist: Multus v4.2.3 caches a clusterNetwork conflist for DEL with only the fields
        # it knows (bridge's ipam loses its ranges: "no IP ranges specified"), and pods then never terminate.
        podnet = {"cniVersion": "1.0.0", "name": "podnet",
                  "type": "bridge", "bridge": POD_BRIDGE, "isGateway": True, "ipMasq": False,  # no iptables here
                  # The default route (via the bridge, the host): what in-cluster clients reach Services through.
                  "ipam": {"type": "host-local", "ranges": [[{"subnet": self.pod_subnet}]],
                           "routes": [{"dst": "0.0.0.0/0"}], "dataDir": str(self.dir / "cni" / "ipam")}}
        (self.dir / "cni" / "podnet.conf").write_text(json.dumps(podnet, indent=1))
        multus = {"cniVersion": "1.0.0", "name": "multus-cni-network", "type": "multus",
                  "kubeconfig": str(self.kubeconfig), "confDir": str(self.cni_conf),
                  "cniDir": str(self.dir / "cni" / "multus"), "binDir": str(self.cni_bin),
                  "clusterNetwork": str(self.dir / "cni" / "podnet.conf"),
                  "logFile": str(self.dir / "multus.log"), "logLevel": "verbose"}
        (self.cni_conf / "00-multus.conf").write_text(json.dumps(multus, indent=1))

    def _images(self) -> None:
        self.images.mkdir(parents=True, exist_ok=True)
        shim = REPO / "macvtapctl" / "agent" / "shim" / "macvtap"
        if not shim.exists():
            raise NodeError(f"{shim} is missing: run `make shim`")
        t0 = time.monotonic()
        images.pause_image(self.images)
        images.test_image(self.images)
        images.agent_image(self.images, shim)
        print(f"images built in {time.monotonic() - t0:.1f}s", file=sys.stderr)

    def _containerd(self, nbins: Path) -> None:
        cfg = f"""version = 3
root = "{CONTAINERD_ROOT}"
state = "{CONTAINERD_STATE}"
[grpc]
  address = "{SOCKET}"
[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "{images.PAUSE_IMAGE}"
[plugins."io.containerd.cri.v1.runtime"]
  enable_selinux = false
  # root here lacks CAP_SYS_RESOURCE: runc cannot lower oom_score_adj below the current value otherwise
  restrict_oom_score_adj = true
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = "{RUNC}"
        SystemdCgroup = false
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["{self.cni_bin}"]
    conf_dir = "{self.cni_conf}"
    max_conf_num = 1
"""
        (self.dir / "containerd.toml").write_text(cfg)
        self.state["node_bin"] = str(nbins)
        self._save()
        # The shim is found on PATH.
        env = {"PATH": f"{nbins}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
        cmd = [str(nbins / "containerd"), "--config", str(self.dir / "containerd.toml")]
        if self.state.get("pid_namespace"):
            # KubeVirt takes the node's PID 1 for its init (systemd on a real node): virt-handler (hostPID) joins
            # /proc/1/ns/mnt to reach the host's mounts. This sandbox's PID 1 denies that even to root, so the
            # runtime gets a PID namespace whose PID 1 is containerd, with its own /proc (containerd reads
            # /proc/1 too) in a mount namespace whose other mounts stay the host's peers (propagation unchanged:
            # / is shared, see _shared_mounts), so the kubelet's volumes and the pods' mounts are seen both ways.
            cmd = ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc", "--propagation", "unchanged", *cmd]
        proc = self._spawn("containerd", cmd, env)
        self._wait("containerd", lambda: self.ctr(nbins, "version", quiet=True).returncode == 0, proc,
                   "containerd.log")
        t0 = time.monotonic()
        for tar in sorted(self.images.glob("*.tar")):
            self.ctr(nbins, "images", "import", "--platform", "linux/amd64", str(tar), quiet=True, check=True)
        print(f"images imported in {time.monotonic() - t0:.1f}s", file=sys.stderr)

    def ctr(self, nbins: Path, *args: str, quiet: bool = False, check: bool = False) -> subprocess.CompletedProcess[str]:
        return run(str(nbins / "ctr"), "--address", str(SOCKET), "-n", "k8s.io", *args, check=check, quiet=quiet)

    def _kubelet(self, bins: Path, server: str) -> None:
        import yaml

        pki = self.cluster / "pki"
        kubeconfig = {
            "apiVersion": "v1", "kind": "Config", "current-context": "node",
            "clusters": [{"name": "local", "cluster": {"server": server, "certificate-authority": str(pki / "ca.crt")}}],
            "users": [{"name": "node", "user": {"client-certificate": str(self._client_cert("crt")),
                                                 "client-key": str(self._client_cert("key"))}}],
            "contexts": [{"name": "node", "context": {"cluster": "local", "user": "node"}}]}
        (self.dir / "kubelet.kubeconfig").write_text(yaml.safe_dump(kubeconfig))
        (self.dir / "kubelet.kubeconfig").chmod(0o600)
        ip = node_ip()
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
            # cgroup v1 on this machine, cgroupfs (no systemd), swap tolerated.
            "failCgroupV1": False, "cgroupDriver": "cgroupfs", "failSwapOn": False,
            "containerRuntimeEndpoint": f"unix://{SOCKET}",
            "address": ip, "port": 10250, "readOnlyPort": 0, "healthzBindAddress": "127.0.0.1",
            "authentication": {"x509": {"clientCAFile": str(pki / "ca.crt")}, "webhook": {"enabled": False},
                               "anonymous": {"enabled": False}},
            "authorization": {"mode": "AlwaysAllow"},  # test node only: the API server is the only client
            "evictionHard": {"memory.available": "0%", "nodefs.available": "0%", "imagefs.available": "0%"},
            "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
            "serializeImagePulls": False, "resolvConf": "",
            "nodeStatusUpdateFrequency": f"{STATUS_PERIOD}s",
            # syncFrequency (which also paces mounted ConfigMap refreshes) stays the kubelet's default, 1m: the
            # agent must not depend on a fast one (it follows its ConfigMap through the API server).
            "fileCheckFrequency": "5s", "cpuManagerReconcilePeriod": "5s",
            "maxPods": 60, "containerLogMaxSize": "10Mi",
        }
        if self.cgroup_root:  # a second node's pods under a cgroup of their own (cgroup v1 here: no cgroupns)
            config["cgroupRoot"] = self.cgroup_root
        if self.state.get("pid_namespace"):  # KubeVirt's runtime (see _containerd)
            # virt-launcher's DHCP server (the pod network's masquerade binding) hands the guest the pod's search
            # domains and refuses the "." a kubelet without a cluster domain writes. No DNS server answers at
            # 10.0.0.10 (nothing here resolves names); the search list is what a cluster's pods get.
            config |= {"clusterDomain": "cluster.local", "clusterDNS": [CLUSTER_DNS_IP]}
        (self.dir / "kubelet.yaml").write_text(yaml.safe_dump(config))
        with self._kube() as kube:
            _node_rbac(kube)
        self.state["kubelet_cmd"] = [
            str(bins / "kubelet"), f"--config={self.dir / 'kubelet.yaml'}",
            f"--kubeconfig={self.dir / 'kubelet.kubeconfig'}", f"--hostname-override={self.name}",
            f"--node-ip={ip}", f"--root-dir={KUBELET_ROOT}", f"--cert-dir={self.dir / 'kubelet-pki'}", "--v=2"]
        proc = self._spawn("kubelet", self.state["kubelet_cmd"])
        self._wait("kubelet", lambda: self._node() is not None, proc, "kubelet.log")

    def _client_cert(self, suffix: str) -> Path:
        """The kubelet's client certificate (CN system:node:<name>): the first node's from the harness's PKI, a
        second node's issued by second_node.py into its directory."""
        return self.dir / f"kubelet-client.{suffix}" if self.second else self.cluster / "pki" / f"node.{suffix}"

    def container_pid(self, container_id: str) -> int:
        """The host PID of a running container's process (`containerd://<id>` from the pod's status)."""
        self._load()
        cid = container_id.removeprefix("containerd://")
        out = self.ctr(Path(self.state["node_bin"]), "tasks", "ls", quiet=True, check=True).stdout
        for line in out.splitlines()[1:]:
            fields = line.split()
            if fields and fields[0] == cid:
                return self._host_pid(int(fields[1]))
        raise NodeError(f"no running task for container {cid}")

    def _host_pid(self, pid: int) -> int:
        """containerd's PIDs are in its own PID namespace when the node has one (pid_namespace): the host's PID
        of the process whose NSpid there is `pid`."""
        if not self.state.get("pid_namespace"):
            return pid
        node_ns = self._pid_ns()
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                nspid = next(line.split()[1:] for line in (proc / "status").read_text().splitlines()
                             if line.startswith("NSpid:"))
                if len(nspid) >= 2 and int(nspid[1]) == pid and _within(proc / "ns" / "pid", node_ns):
                    return int(proc.name)
        raise NodeError(f"no host process is PID {pid} in the node's PID namespace")

    def _pid_ns(self) -> int:
        """The node's PID namespace (its inode): containerd's, the child of the `unshare` recorded as containerd."""
        unshare = self.state["pids"]["containerd"]
        child = Path(f"/proc/{unshare}/task/{unshare}/children").read_text().split()[0]
        return os.stat(f"/proc/{child}/ns/pid").st_ino

    @staticmethod
    def kubelet_healthy() -> bool:
        import urllib.request

        try:
            with urllib.request.urlopen("http://127.0.0.1:10248/healthz", timeout=2) as reply:
                return bool(reply.status == 200)
        except OSError:
            return False

    def restart_kubelet(self) -> None:
        """Stop the kubelet and start it again with the same arguments (pods keep running meanwhile)."""
        self._load()
        _stop(self.state["pids"]["kubelet"])
        self._spawn("kubelet", self.state["kubelet_cmd"])

    def _control_loops(self, bins: Path) -> None:
        kc = str(self.cluster / "kubeconfig")
        self._spawn("kube-scheduler", [str(bins / "kube-scheduler"), f"--kubeconfig={kc}",
                                       f"--authentication-kubeconfig={kc}", f"--authorization-kubeconfig={kc}",
                                       "--leader-elect=false", "--secure-port=0", "--v=1"])
        # No service-account token controller: the harness has no token signing for it and nothing needs tokens.
        self._spawn("kube-controller-manager", [
            str(bins / "kube-controller-manager"), f"--kubeconfig={kc}", f"--authentication-kubeconfig={kc}",
            f"--authorization-kubeconfig={kc}", "--leader-elect=false", "--secure-port=0",
            "--controllers=*,-serviceaccount-token", "--use-service-account-credentials=false",
            # kube-root-ca.crt in every namespace: what pods' projected service-account volumes mount
            f"--root-ca-file={self.cluster / 'pki' / 'ca.crt'}",
            "--node-monitor-grace-period=20s", "--v=1"])

    def _wait_ready(self, bins: Path) -> None:
        def ready() -> bool:
            node = self._node()
            conds = {c["type"]: c["status"] for c in (node or {}).get("status", {}).get("conditions", [])}
            taints = [t["key"] for t in (node or {}).get("spec", {}).get("taints", []) or []]
            return conds.get("Ready") == "True" and "node.kubernetes.io/not-ready" not in taints

        self._wait(f"node {self.name}", ready, None, "kubelet.log", timeout=90)

    def _kube(self) -> Any:
        from macvtapctl.kube.client import Kube
        from macvtapctl.kube.options import Connection

        return Kube.connect(Connection(kubeconfig=str(self.kubeconfig), request_timeout=10))

    def _node(self) -> dict[str, Any] | None:
        from macvtapctl.kube.resources import NODE

        with self._kube() as kube:
            obj = kube.get_or_none(NODE, self.name)
        return dict(obj) if obj is not None else None

    # --- down ---
    def down(self) -> None:
        self._load()
        if not self.state:
            print(f"node {self.name} is not running")
            return
        step = Undo()
        if not self.second and (self.cluster / "node-b" / "host-state.json").exists():
            # A second node first: it runs on this one's LAN and routes, and its shims are on this host's /proc.
            from tests.harness.second_node import SecondNode

            step("second node", SecondNode(self.cluster).down)
        step("keep the agent's log", self._keep_agent_log)
        pids = self.state.get("pids", {})
        for name in ("kube-proxy", "kube-controller-manager", "kube-scheduler", "kubelet"):
            if name in pids:
                step(f"stop {name}", lambda p=pids[name]: _stop(p))
        step("kill pod processes", lambda: _kill_cgroup_tasks(self.cgroup_root))
        step("stop containerd shims", _kill_shims)
        if "containerd" in pids:
            step("stop containerd", lambda: _stop(pids["containerd"]))
        step("unmount", _unmount_all)
        step("pod namespaces", _remove_pod_netns)
        step("cgroups", lambda: _remove_cgroups(self.cgroup_root))
        step("links", self._remove_links)
        for table in self.state.get("nft_tables", []):
            step(f"nft table {table}", lambda t=table: _delete_nft_table(t))

        step("LAN DHCP server", self.stop_lan_dhcp)
        if self.state.get("lan"):
            step("LAN namespace", lambda: run("ip", "netns", "del", LAN_NETNS, check=False, quiet=True))
        if self.state.get("netns_mount") and not any(Path("/run/netns").iterdir()):
            step("/run/netns", lambda: run("umount", "/run/netns", check=False, quiet=True))
        if self.state.get("propagation"):
            step("mount propagation", lambda: _restore_propagation(self.state["propagation"]))
        for name, value in self.state.get("sysctls", {}).items():
            step(f"sysctl {name}", lambda n=name, v=value: Path("/proc/sys", *n.split(".")).write_text(v))
        for d in self.state.get("created_dirs", []):
            step(f"remove {d}", lambda d=d: shutil.rmtree(d, ignore_errors=False) if Path(d).exists() else None)
        step("node dir", self._remove_all_but_logs)
        step("Node object", self._delete_node_object)
        step.report("node-down")
        self.release_host()
        print(f"node {self.name} stopped; host restored")

    def _keep_agent_log(self) -> None:
        """The agents' container logs (the agent's in any namespace, macvtap-cni's) live under /var/log/pods,
        which `down` removes: keep a copy with ours."""
        for name, pattern in (("agent.log", "*_macvtapctl-agent-*/agent/*.log"),
                              ("macvtap-cni.log", "*_macvtap-cni-*/*/*.log")):
            logs = sorted(Path("/var/log/pods").glob(pattern))
            if logs:
                with open(self.dir / name, "a") as out:
                    for log in logs:
                        out.write(f"==> {log} <==\n{log.read_text(errors='replace')}")

    def _remove_all_but_logs(self) -> None:
        remove_all_but_logs(self.dir)

    def _remove_links(self) -> None:
        out = json.loads(run("ip", "-j", "-d", "link", "show", check=True, quiet=True).stdout or "[]")
        for link in out:
            name = link.get("ifname", "")
            kind = (link.get("linkinfo") or {}).get("info_kind", "")
            # The lower device, the pod bridge and the tests' extra links all start with "e2e".
            ours = name.startswith("e2e") or (name.startswith("mvt") and kind == "macvtap") or (
                kind == "veth" and str(link.get("master", "")).startswith("e2e"))
            if ours:
                run("ip", "link", "del", name, check=False, quiet=True)

    def _delete_node_object(self) -> None:
        if not (self.cluster / "state.json").exists():
            return
        from macvtapctl.kube.resources import NODE

        with contextlib.suppress(Exception), self._kube() as kube:
            if kube.get_or_none(NODE, self.name) is not None:
                kube.delete(NODE, self.name)


def _server_of(kubeconfig: Path) -> str:
    import yaml

    return str(yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"])


class Undo:
    """A teardown's steps: each one runs whatever failed before it (undo as much as possible), then `report`
    names every failure at once."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def __call__(self, what: str, fn: Any) -> None:
        try:
            fn()
        except Exception as exc:
            self.errors.append(f"{what}: {exc}")

    def report(self, what: str) -> None:
        if self.errors:
            raise NodeError(f"{what} left work undone:\n  " + "\n  ".join(self.errors))


def remove_all_but_logs(d: Path) -> None:
    """Logs stay for whoever debugs a failed run (docs/development.md); everything else goes."""
    for p in d.iterdir() if d.exists() else []:
        if p.suffix == ".log":
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


def _node_rbac(kube: Any) -> None:
    """The harness authorizes with RBAC only (no Node authorizer): bind system:node to the nodes group."""
    from macvtapctl.kube.errors import AlreadyExistsError
    from macvtapctl.kube.resources import CLUSTER_ROLE_BINDING

    with contextlib.suppress(AlreadyExistsError):
        kube.create(CLUSTER_ROLE_BINDING, {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "macvtapctl-e2e:nodes"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:node"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:nodes"}]})


def _stop(pid: int, timeout: float = 15) -> None:
    if not _alive(pid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.1)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


def _kubepods_cgroups(root: str = "") -> list[Path]:
    """The pods' cgroups of the node whose kubelet has `root` as its cgroupRoot ("" for the first node)."""
    found: list[Path] = []
    for ctrl in CGROUP_ROOT.iterdir():
        base = ctrl / root.strip("/") / "kubepods"
        if base.is_dir():
            # os.walk skips what vanishes under it (a pod's cgroup removed while we look); rglob raises.
            dirs = [Path(root) / d for root, subdirs, _ in os.walk(base) for d in subdirs]
            found += sorted(dirs, key=lambda p: -len(p.parts))
            found.append(base)
    return found


def _kill_cgroup_tasks(root: str = "") -> None:
    for _ in range(20):
        pids = set()
        for cg in _kubepods_cgroups(root):
            with contextlib.suppress(OSError):
                pids |= {int(x) for x in (cg / "cgroup.procs").read_text().split()}
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.3)
    raise NodeError("pod processes survive SIGKILL")


def _kill_shims() -> None:
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            exe = os.readlink(proc / "exe")
            if exe.endswith("/containerd-shim-runc-v2"):
                os.kill(int(proc.name), signal.SIGKILL)


def _mounts() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4].replace("\\040", " ") for line in f]


NS_GET_PARENT = 0xB702  # ioctl on a namespace fd: its parent (linux/nsfs.h)


def _within(ns_path: Path, ancestor_ino: int) -> bool:
    """Whether the PID namespace at `ns_path` is `ancestor_ino` or nested in it (a pod's own PID namespace)."""
    fd = os.open(ns_path, os.O_RDONLY)
    try:
        while True:
            if os.fstat(fd).st_ino == ancestor_ino:
                return True
            try:
                parent = fcntl.ioctl(fd, NS_GET_PARENT)
            except OSError:  # the initial namespace, or one we do not own
                return False
            os.close(fd)
            fd = parent
    finally:
        os.close(fd)


def _propagation() -> dict[str, str]:
    """Every mount point and its propagation (shared, private, slave, unbindable)."""
    out = run("findmnt", "-J", "-l", "-o", "TARGET,PROPAGATION", check=True, quiet=True).stdout
    return {m["target"]: m["propagation"].split(",")[0] for m in json.loads(out)["filesystems"]}


def _mount_of(path: Path) -> str:
    """The mount point holding `path` (the nearest existing ancestor's)."""
    while not path.exists():
        path = path.parent
    return run("findmnt", "-n", "-o", "TARGET", "-T", str(path), check=True, quiet=True).stdout.strip()


def _restore_propagation(before: dict[str, str]) -> None:
    now = _propagation()
    for target, prop in before.items():
        if target in now and now[target] != prop:
            run("mount", f"--make-{prop}", target, quiet=True)


def _delete_nft_table(table: str) -> None:
    family, name = table.split()
    if run("nft", "list", "table", family, name, check=False, quiet=True).returncode == 0:
        run("nft", "delete", "table", family, name, quiet=True)


def _unmount_all() -> None:
    roots = [KUBELET_ROOT, CONTAINERD_STATE, CONTAINERD_ROOT, *KUBEVIRT_HOST_DIRS]
    prefixes = [str(d) + "/" for d in roots] + ["/run/netns/cni-"]
    exact = {str(d) for d in roots}
    for _ in range(5):
        targets = [m for m in _mounts() if m in exact or any(m.startswith(p) for p in prefixes)]
        if not targets:
            return
        for m in sorted(targets, key=lambda m: -m.count("/")):
            run("umount", "-l", m, check=False, quiet=True)
    left = [m for m in _mounts() if m in exact or any(m.startswith(p) for p in prefixes)]
    if left:
        raise NodeError(f"still mounted: {', '.join(left[:5])}")


def _remove_pod_netns() -> None:
    d = Path("/run/netns")
    if d.is_dir():
        for ns in d.glob("cni-*"):
            run("ip", "netns", "del", ns.name, check=False, quiet=True)
            with contextlib.suppress(OSError):
                ns.unlink()


def _remove_cgroups(root: str = "") -> None:
    for cg in _kubepods_cgroups(root):
        with contextlib.suppress(FileNotFoundError):
            cg.rmdir()


def cli(argv: list[str] | None, doc: str | None, make: Any, extra: Any = None) -> int:
    """`up` or `down` of a node (this file's, second_node.py's): one line per error, the undo named after a
    failed `up`."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cmd", choices=("up", "down"))
    parser.add_argument("--dir", default=".devcluster")
    if extra is not None:
        extra(parser)
    args = parser.parse_args(argv)
    node = make(args)
    try:
        node.up() if args.cmd == "up" else node.down()
    except (NodeError, subprocess.CalledProcessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        if args.cmd == "up":
            print("(run `make node-down` to undo what was done)", file=sys.stderr)
        return 1
    return 0


def _second_node_flags(parser: argparse.ArgumentParser) -> None:
    """A second node (run by second_node.py inside its namespaces, not by hand)."""
    parser.add_argument("--name", default=NODE_NAME, help=argparse.SUPPRESS)
    parser.add_argument("--pod-subnet", default=POD_SUBNET, help=argparse.SUPPRESS)
    parser.add_argument("--second", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cgroup-root", default="", help=argparse.SUPPRESS)


def main(argv: list[str] | None = None) -> int:
    return cli(argv, __doc__, lambda a: Node(Path(a.dir), a.name, pod_subnet=a.pod_subnet, second=a.second,
                                             cgroup_root=a.cgroup_root), _second_node_flags)


if __name__ == "__main__":
    sys.exit(main())
