"""Device-plugin Allocate latency and agent memory, against a Go device plugin doing the same work.

    sudo .venv/bin/python benchmarks/deviceplugin.py [runs] [parallel]

Needs root and Go (builds benchmarks/go-baseline/cmd/deviceplugin: kubevirt/macvtap-cni's Allocate steps with
vishvananda/netlink and grpc-go, since macvtap-cni itself is not served by the module proxy here).
Both plugins are dialled directly over their unix sockets (no kubelet). Reports Allocate p50/p99 (one device
per call, alternating plugin by plugin), RSS idle, and RSS after `parallel` concurrent pod starts (Allocate +
CNI ADD through the shim for the agent; Allocate only for the Go plugin, whose CNI is a separate process).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from macvtapctl.agent.deviceplugin import api_pb2 as pb  # noqa: E402
from macvtapctl.agent.deviceplugin import api_pb2_grpc as rpc  # noqa: E402


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def wait_socket(path: str) -> None:
    deadline = time.monotonic() + 30
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(path)
        time.sleep(0.05)


def allocate(stub: rpc.DevicePluginStub, device: str) -> float:
    t0 = time.perf_counter()
    stub.Allocate(pb.AllocateRequest(container_requests=[pb.ContainerAllocateRequest(devices_ids=[device])]),
                  timeout=30)
    return time.perf_counter() - t0


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))] * 1000


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    parallel = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    if os.geteuid() != 0:
        sys.exit("run as root")
    work = Path(tempfile.mkdtemp(prefix="dpb", dir="/tmp"))
    gobin = work / "dp-go"
    subprocess.run(["go", "build", "-o", str(gobin), "./cmd/deviceplugin"], cwd=REPO / "benchmarks/go-baseline",
                   check=True, env={**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod"})
    subprocess.run(["make", "-s", "-C", str(REPO), "shim"], check=True)
    subprocess.run(["ip", "link", "add", "dpbnic0", "type", "veth", "peer", "name", "dpbsw0"], check=True)
    subprocess.run(["ip", "link", "set", "dpbnic0", "up"], check=True)
    plugin_dir = work / "dp"
    plugin_dir.mkdir()
    (work / "conf.json").write_text(json.dumps([{"name": "bench", "lowerDevice": "dpbnic0", "capacity": 1000}]))
    agent = subprocess.Popen([sys.executable, "-m", "macvtapctl", "agent", "--cni-socket", str(work / "cni.sock"),
                              "--device-plugin-dir", str(plugin_dir), "--config-file", str(work / "conf.json"),
                              "--metrics-address", "", "--log-level", "warning"], cwd=REPO)
    go_sock = str(work / "go.sock")
    go = subprocess.Popen([str(gobin), go_sock, "gobench", "dpbnic0", "1000"])
    try:
        agent_sock = str(plugin_dir / "macvtap.network.kubevirt.io_bench")
        wait_socket(agent_sock)
        wait_socket(go_sock)
        time.sleep(1.0)
        idle = {"agent": rss_kib(agent.pid), "go": rss_kib(go.pid)}
        stubs = {"agent": rpc.DevicePluginStub(grpc.insecure_channel(f"unix://{agent_sock}")),
                 "go": rpc.DevicePluginStub(grpc.insecure_channel(f"unix://{go_sock}"))}
        names = {"agent": "bench", "go": "gobench"}
        lat: dict[str, list[float]] = {"agent": [], "go": []}
        for i in range(runs + 10):
            for who, stub in stubs.items():
                t = allocate(stub, f"{names[who]}Mvp{i % 1000}")
                if i >= 10:
                    lat[who].append(t)
        # 50 concurrent pod starts: Allocate, then (agent) CNI ADD into a fresh namespace.
        shim = str(REPO / "macvtapctl/agent/shim/macvtap")

        def pod_start(i: int) -> None:
            dev = f"benchMvp{500 + i}"
            allocate(stubs["agent"], dev)
            ns = f"dpbp{i}"
            subprocess.run(["ip", "netns", "add", ns], check=True)
            conf = json.dumps({"cniVersion": "1.0.0", "name": "b", "type": "macvtap", "deviceID": dev}).encode()
            env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": dev, "CNI_NETNS": f"/run/netns/{ns}",
                   "CNI_IFNAME": "net1", "CNI_PATH": str(work), "CNI_ARGS": f"MAC=02:00:00:05:00:{i:02x}",
                   "MACVTAPCTL_CNI_SOCKET": str(work / "cni.sock")}
            r = subprocess.run([shim], env=env, input=conf, capture_output=True, check=False)
            assert r.returncode == 0, r.stdout

        peak = {"agent": 0, "go": 0}
        with ThreadPoolExecutor(max_workers=parallel) as pool:
            futures = [pool.submit(pod_start, i) for i in range(parallel)]
            go_futures = [pool.submit(allocate, stubs["go"], f"gobenchMvp{600 + i}") for i in range(parallel)]
            while not all(f.done() for f in futures + go_futures):
                peak = {"agent": max(peak["agent"], rss_kib(agent.pid)), "go": max(peak["go"], rss_kib(go.pid))}
                time.sleep(0.02)
            for f in futures + go_futures:
                f.result()
        print(f"{'plugin':8s} {'Allocate p50':>13s} {'p99':>9s} {'RSS idle':>10s} {'RSS peak x' + str(parallel):>14s}")
        for who in ("agent", "go"):
            print(f"{who:8s} {pct(lat[who], 50):11.2f}ms {pct(lat[who], 99):7.2f}ms {idle[who] / 1024:8.1f}MiB "
                  f"{peak[who] / 1024:12.1f}MiB")
        print(f"Allocate p50 ratio agent/Go: {statistics.median(lat['agent']) / statistics.median(lat['go']):.2f}x "
              f"(target <= 1.5x); RSS idle ratio {idle['agent'] / idle['go']:.2f}x, under load "
              f"{peak['agent'] / max(peak['go'], 1):.2f}x (target <= 2x)")
    finally:
        agent.terminate()
        go.terminate()
        agent.wait()
        go.wait()
        for i in range(parallel):
            subprocess.run(["ip", "netns", "del", f"dpbp{i}"], check=False, capture_output=True)
        out = subprocess.run(["ip", "-j", "link"], capture_output=True, text=True, check=True).stdout
        for link in json.loads(out):
            if link["ifname"].startswith("mvt"):
                subprocess.run(["ip", "link", "del", link["ifname"]], check=False)
        subprocess.run(["ip", "link", "del", "dpbnic0"], check=False)


if __name__ == "__main__":
    main()
