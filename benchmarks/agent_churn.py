"""The agent at capacity: 5 resources of 1,000 devices each, 200 pods kept alive and replaced one by one (Allocate,
netns, CNI ADD; later CNI DEL, netns gone, the kubelet forgets the device) for a while, on real links.

    sudo .venv/bin/python benchmarks/agent_churn.py [--seconds 600] [--pods 200] [--rate 2] [--workers 4]

The kubelet is the stand-in of tests/harness/kubelet.py (device-plugin registration and pod-resources API, which
the agent's reclaim reads); the agent, the shim, links, namespaces and /dev/tapN are real. Reports Allocate and
ADD p50/p99 under churn, the agent's RSS after warm-up (the first fifth) and at the end, its open fds, and what is
left once every pod is gone and one reclaim ran: links, namespaces, fds.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks.common import REPO, Row, pct, record
from tests.harness.kubelet import FakeKubelet

PREFIX = "macvtap.network.kubevirt.io/"
RESOURCES = [f"churn{i}" for i in range(5)]
SHIM = REPO / "macvtapctl/agent/shim/macvtap"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def fds(pid: int) -> tuple[int, int]:
    """(open fds, of which network namespaces)."""
    names = os.listdir(f"/proc/{pid}/fd")
    netns = 0
    for n in names:
        with contextlib.suppress(OSError):
            netns += os.readlink(f"/proc/{pid}/fd/{n}").startswith("net:")
    return len(names), netns


def mvt_links() -> set[str]:
    out = subprocess.run(["ip", "-j", "link"], capture_output=True, text=True, check=True).stdout
    return {link["ifname"] for link in json.loads(out) if link["ifname"].startswith("mvt")}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


class Churn:
    def __init__(self, kubelet: FakeKubelet, socket: str, work: Path) -> None:
        self.kubelet, self.socket, self.work = kubelet, socket, work
        self.alloc: list[float] = []
        self.add: list[float] = []
        self.lock = threading.Lock()
        self.devices = itertools.cycle([(r, f"{r}Mvp{i}") for i in range(1000) for r in RESOURCES])
        self.serial = itertools.count()

    def cni(self, command: str, ns: str, device: str, mac: str) -> float:
        conf = json.dumps({"cniVersion": "1.0.0", "name": "churn", "type": "macvtap", "deviceID": device}).encode()
        env = {"CNI_COMMAND": command, "CNI_CONTAINERID": ns, "CNI_NETNS": f"/run/netns/{ns}", "CNI_IFNAME": "net1",
               "CNI_PATH": str(SHIM.parent), "CNI_ARGS": f"MAC={mac}", "MACVTAPCTL_CNI_SOCKET": self.socket,
               "PATH": os.environ["PATH"]}
        t0 = time.perf_counter()
        r = subprocess.run([str(SHIM)], env=env, input=conf, capture_output=True, check=False)
        if r.returncode != 0:
            raise RuntimeError(f"{command} {device}: {r.stdout!r}")
        return time.perf_counter() - t0

    def start(self) -> tuple[str, str, str]:
        with self.lock:
            resource, device = next(self.devices)
            n = next(self.serial)
        ns = f"ch{n}"
        t0 = time.perf_counter()
        self.kubelet.allocate(PREFIX + resource, [device])
        alloc = time.perf_counter() - t0
        with self.kubelet.cond:
            self.kubelet.owned.add(device)
        ip("netns", "add", ns)
        mac = f"02:00:{(n >> 24) & 255:02x}:{(n >> 16) & 255:02x}:{(n >> 8) & 255:02x}:{n & 255:02x}"
        add = self.cni("ADD", ns, device, mac)
        with self.lock:
            self.alloc.append(alloc)
            self.add.append(add)
        return ns, device, mac

    def stop(self, pod: tuple[str, str, str]) -> None:
        ns, device, mac = pod
        self.cni("DEL", ns, device, mac)
        ip("netns", "del", ns)
        with self.kubelet.cond:
            self.kubelet.owned.discard(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--pods", type=int, default=200)
    parser.add_argument("--rate", type=float, default=2.0, help="pods replaced per second")
    parser.add_argument("--workers", type=int, default=4, help="replacements at a time")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root")
    subprocess.run(["make", "-s", "-C", str(REPO), "shim"], check=True)
    work = Path(tempfile.mkdtemp(prefix="churn", dir="/tmp"))
    before_links = mvt_links()
    for i in range(len(RESOURCES)):
        ip("link", "add", f"chnic{i}", "type", "veth", "peer", "name", f"chsw{i}")
        ip("link", "set", f"chnic{i}", "up")
    kubelet = FakeKubelet(work / "device-plugins")
    kubelet.start()
    conf = json.dumps([{"name": r, "lowerDevice": f"chnic{i}", "capacity": 1000} for i, r in enumerate(RESOURCES)])
    socket = str(work / "cni.sock")
    agent = subprocess.Popen([sys.executable, "-m", "macvtapctl", "agent", "--cni-socket", socket,
                              "--device-plugin-dir", str(kubelet.dir), "--metrics-address", f"127.0.0.1:{free_port()}",
                              "--pod-resources-socket", kubelet.pod_resources_socket, "--reclaim-interval", "5",
                              "--gc-min-age", "1", "--report-interval", "0", "--log-level", "warning"],
                             env={**os.environ, "DP_MACVTAP_CONF": conf, "PYTHONPATH": str(REPO)})
    pods: list[tuple[str, str, str]] = []
    try:
        kubelet.wait(lambda: all(len(kubelet.devices(PREFIX + r) or []) == 1000 for r in RESOURCES), timeout=60)
        churn = Churn(kubelet, socket, work)
        with ThreadPoolExecutor(max_workers=args.workers) as pool:
            pods = list(pool.map(lambda _: churn.start(), range(args.pods)))
            churn.alloc.clear()  # latencies under churn only, not of the first 200 pods started together
            churn.add.clear()
            started = time.monotonic()
            warm_rss = warm_fds = None
            samples = 0
            while time.monotonic() - started < args.seconds:
                # Replace `workers` pods at a time, oldest first (DEL and netns gone, then a new pod), at `rate`.
                tick = time.monotonic()
                old, pods = pods[:args.workers], pods[args.workers:]
                list(pool.map(churn.stop, old))
                pods += list(pool.map(lambda _: churn.start(), old))
                samples += len(old)
                time.sleep(max(0.0, len(old) / args.rate - (time.monotonic() - tick)))
                if warm_rss is None and time.monotonic() - started > args.seconds / 5:
                    warm_rss, warm_fds = rss_kib(agent.pid), fds(agent.pid)
            end_rss, end_fds = rss_kib(agent.pid), fds(agent.pid)
            list(pool.map(churn.stop, pods))
            pods = []
        # The reclaim (every 5 s) deletes a returned link once no pod owns it and it is older than 1 s.
        gone_at = time.monotonic()
        while mvt_links() - before_links and time.monotonic() - gone_at < 30:
            time.sleep(0.5)
        reclaimed_in = time.monotonic() - gone_at
        left_links = mvt_links() - before_links
        left_ns = [n for n in os.listdir("/run/netns") if n.startswith("ch")] if os.path.isdir("/run/netns") else []
        idle_fds = fds(agent.pid)
        assert warm_rss is not None and warm_fds is not None
        growth = (end_rss - warm_rss) / warm_rss * 100
        print(f"churned {samples} pods in {args.seconds:.0f} s ({args.pods} alive, {args.workers} replaced at a time, "
              f"{args.rate:g}/s), 5 resources x 1000 devices")
        print(f"Allocate p50 {pct(churn.alloc, 50) * 1000:.2f} ms p99 {pct(churn.alloc, 99) * 1000:.2f} ms; "
              f"ADD p50 {pct(churn.add, 50) * 1000:.1f} ms p99 {pct(churn.add, 99) * 1000:.1f} ms")
        print(f"RSS after warm-up {warm_rss / 1024:.1f} MiB, at the end {end_rss / 1024:.1f} MiB ({growth:+.1f} %); "
              f"fds {warm_fds[0]} -> {end_fds[0]} (netns {warm_fds[1]} -> {end_fds[1]})")
        print(f"after every pod is gone: {len(left_links)} mvt links left after {reclaimed_in:.1f} s (reclaim every "
              f"5 s), {len(left_ns)} namespaces, {idle_fds[0]} fds ({idle_fds[1]} on network namespaces: its own)")
        record(Row("agent at capacity", "RSS under churn, end vs after warm-up", end_rss / 1024, warm_rss / 1024,
                   "MiB", "the same agent after warm-up", "<= 1.05x"),
               Row("agent at capacity", "Allocate p99 under churn", pct(churn.alloc, 99) * 1000, 0, "ms", ""),
               Row("agent at capacity", "ADD p99 under churn", pct(churn.add, 99) * 1000, 0, "ms", ""),
               Row("agent at capacity", "links, namespaces, fds left after the last pod (+ reclaim)",
                   len(left_links) + len(left_ns) + (end_fds[0] - warm_fds[0]), 0, "", "", "0"))
    finally:
        stopper = Churn(kubelet, socket, work)
        for pod in pods:
            try:
                stopper.stop(pod)
            except Exception as exc:
                print(f"cleanup of {pod[0]}: {exc}", file=sys.stderr)
        agent.terminate()
        agent.wait()
        kubelet.stop()
        for i in range(len(RESOURCES)):
            subprocess.run(["ip", "link", "del", f"chnic{i}"], check=False, capture_output=True)
        for name in mvt_links() - before_links:
            subprocess.run(["ip", "link", "del", name], check=False, capture_output=True)


if __name__ == "__main__":
    main()
