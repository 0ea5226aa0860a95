"""Datapath fixtures (root): network namespaces and veth pairs stand in for nodes and NICs; macvtap links,
/dev/tapN and the agent are real; cnitool (libcni) drives the CNI through the installed shim."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SHIM = REPO / "macvtapctl" / "agent" / "shim" / "macvtap"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/datapath" in str(item.fspath):
            item.add_marker(pytest.mark.root)


@pytest.fixture(scope="session", autouse=True)
def _need_root() -> None:
    # Fail, never skip quietly: a skipped datapath layer looks like a green run. Opting out is explicit and named.
    if os.geteuid() != 0:
        if os.environ.get("MACVTAPCTL_SKIP_ROOT_TESTS") == "1":
            pytest.skip("datapath tests need root; skipped because MACVTAPCTL_SKIP_ROOT_TESTS=1")
        pytest.fail("datapath tests need root (network namespaces, macvtap links): run as root, or set "
                    "MACVTAPCTL_SKIP_ROOT_TESTS=1 to skip them explicitly", pytrace=False)


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


def host_mvt_links() -> set[str]:
    out = json.loads(ip("-j", "link", "show").stdout)
    return {link["ifname"] for link in out if link["ifname"].startswith("mvt")}


def returned_links() -> set[str]:
    """mvt* links a DEL handed back to the node: they carry their own name as alias (set at ADD)."""
    out = json.loads(ip("-j", "-d", "link", "show").stdout)
    return {link["ifname"] for link in out if link["ifname"].startswith("mvt") and link.get("ifalias") == link["ifname"]}


@pytest.fixture(scope="session")
def cnitool() -> str:
    out = subprocess.run(["bash", str(REPO / "tests/controlplane/build.sh")], check=True, capture_output=True,
                         text=True).stdout.strip().splitlines()[-1]
    return str(Path(out) / "cnitool")


@pytest.fixture(scope="session")
def shim() -> Path:
    subprocess.run(["make", "-s", "-C", str(REPO), "shim"], check=True)
    return SHIM


@dataclass
class Agent:
    dir: Path
    socket: str
    bin_dir: str
    conf_dir: Path
    proc: subprocess.Popen[bytes] | None = None
    log: Path = field(default_factory=Path)
    kubelet: Any = None  # its pod-resources API says which device IDs live pods hold (GC reclaims the rest)

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "CNI_PATH": self.bin_dir, "NETCONFPATH": str(self.conf_dir),
                "MACVTAPCTL_CNI_SOCKET": self.socket, **extra}

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "macvtapctl", "agent", "--cni-socket", self.socket, "--gc-min-age", "2",
             "--log-level", "debug", "--no-device-plugin", "--metrics-address", "",
             "--pod-resources-socket", self.kubelet.pod_resources_socket, "--reclaim-interval", "0"],
            stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)  # noqa: SIM115 - lives as long as the agent
        deadline = time.monotonic() + 20
        while not os.path.exists(self.socket):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"agent did not start:\n{self.log.read_text()}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=15)


@pytest.fixture(scope="session")
def agent(tmp_path_factory: pytest.TempPathFactory, shim: Path) -> Iterator[Agent]:
    d = tmp_path_factory.mktemp("agent")
    a = Agent(dir=d, socket=str(d / "run" / "cni.sock"), bin_dir=str(d / "bin"), conf_dir=d / "net.d",
              log=d / "agent.log")
    a.conf_dir.mkdir()
    from tests.datapath.kubelet import FakeKubelet

    a.kubelet = FakeKubelet(d / "kubelet" / "device-plugins")
    a.kubelet.start()
    subprocess.run([sys.executable, "-m", "macvtapctl", "agent", "--install-cni", a.bin_dir, "--install-only",
                    "--shim", str(shim)], check=True, capture_output=True)
    a.start()
    yield a
    a.stop()
    a.kubelet.stop()


@dataclass
class Node:
    """A pod netns, a 'NIC' (veth in the host netns) whose peer sits in a 'switch' netns."""

    tag: str
    pod: str
    peer_ns: str
    lower: str
    peer: str
    extra_netns: list[str] = field(default_factory=list)

    @property
    def pod_path(self) -> str:
        return f"/run/netns/{self.pod}"

    def allocate(self, device_id: str, mode: str = "bridge", lower: str | None = None) -> str:
        """What the device plugin does on Allocate: create the temporary macvtap link."""
        from macvtapctl.agent.link_name import temporary_link_name

        tmp = temporary_link_name(device_id)
        ip("link", "add", tmp, "link", lower or self.lower, "type", "macvtap", "mode", mode)
        ip("link", "set", tmp, "up")
        return tmp

    def new_pod(self) -> str:
        name = f"mvtp-{secrets.token_hex(4)}"
        ip("netns", "add", name)
        self.extra_netns.append(name)
        return f"/run/netns/{name}"

    def pod_link(self, name: str, netns: str | None = None) -> dict | None:
        r = ip("-j", "-d", "-n", netns or self.pod, "link", "show", name, check=False)
        return json.loads(r.stdout)[0] if r.returncode == 0 else None


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


@dataclass
class CniRun:
    code: int
    stdout: str
    stderr: str

    @property
    def result(self) -> dict:
        return json.loads(self.stdout) if self.stdout.strip() else {}


def write_conf(agent: Agent, name: str, version: str, **extra: object) -> None:
    for f in agent.conf_dir.glob("*.conf"):
        f.unlink()
    conf = {"cniVersion": version, "name": name, "type": "macvtap", **extra}
    (agent.conf_dir / f"10-{name}.conf").write_text(json.dumps(conf))


def run_cnitool(cnitool: str, agent: Agent, command: str, name: str, netns: str, *, ifname: str = "net1",
                args: str = "", **env: str) -> CniRun:
    e = agent.env(CNI_IFNAME=ifname, **env)
    if args:
        e["CNI_ARGS"] = args
    p = subprocess.run([cnitool, command, name, netns], check=False, env=e, capture_output=True, text=True, timeout=60)
    return CniRun(p.returncode, p.stdout, p.stderr)


def run_shim(agent: Agent, env: dict[str, str], stdin: bytes, socket: str | None = None) -> CniRun:
    e = {"PATH": os.environ.get("PATH", ""), "MACVTAPCTL_CNI_SOCKET": socket or agent.socket, **env}
    p = subprocess.run([agent.bin_dir + "/macvtap"], check=False, env=e, input=stdin, capture_output=True, timeout=60)
    return CniRun(p.returncode, p.stdout.decode(), p.stderr.decode())
