"""What the datapath tests share (root): namespaces and veth pairs standing in for nodes and NICs, the agent
process, and ways to call the CNI (cnitool through libcni, or the shim directly). Fixtures are in conftest.py."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SHIM = REPO / "macvtapctl" / "agent" / "shim" / "macvtap"


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


def host_mvt_links() -> set[str]:
    out = json.loads(ip("-j", "link", "show").stdout)
    return {link["ifname"] for link in out if link["ifname"].startswith("mvt")}


def returned_links() -> set[str]:
    """mvt* links a DEL handed back to the node: they carry their own name as alias (set at ADD)."""
    out = json.loads(ip("-j", "-d", "link", "show").stdout)
    return {link["ifname"] for link in out if link["ifname"].startswith("mvt") and link.get("ifalias") == link["ifname"]}


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
