"""Device-plugin Allocate latency and agent memory, against the real upstream macvtap-cni device plugin.

    sudo .venv/bin/python benchmarks/deviceplugin.py [runs] [parallel]

Needs root and Go. Upstream is built offline from ../shared/upstream (tests/compat/build.sh) and runs in a
private mount namespace on a kubelet stand-in, as does the agent (tests/harness/upstream.py); without that source
the Go stand-in (benchmarks/go-baseline/cmd/deviceplugin) is used instead, and said so. Reports Allocate p50/p99
(one device per call, interleaved plugin by plugin), RSS idle, and RSS peak during `parallel` concurrent pod
starts (Allocate + CNI ADD: the agent's shim, or upstream's CNI binary, whose processes are not counted).
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
from typing import Any

import grpc

from benchmarks.common import REPO
from macvtapctl.agent.deviceplugin import api_pb2 as pb
from macvtapctl.agent.deviceplugin import api_pb2_grpc as rpc


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cni_rss_kib(binary: str) -> int:
    """RSS of every running process of this CNI binary: a pod start costs the daemon plus these."""
    total = 0
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if os.readlink(f"/proc/{pid}/exe") == binary:
                    total += rss_kib(int(pid))
            except OSError:
                continue
    return total


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


def start_plugins(work: Path) -> tuple[dict[str, Any], list[Any], str]:
    """{who: (pid, stub, device prefix, CNI argv)}, things to stop, and the comparison's label.

    The real upstream device plugin (built from ../shared/upstream, on a kubelet stand-in) when available; the
    Go stand-in (benchmarks/go-baseline) otherwise, said so."""
    from tests.harness.upstream import PREFIX, DevicePlugin, build_upstream

    conf = json.dumps([{"name": "bench", "lowerDevice": "dpbnic0", "capacity": 1000}])
    (work / "a").mkdir()
    agent = DevicePlugin("agent", work / "a", Path("/nonexistent"), conf)
    shim = [str(REPO / "macvtapctl/agent/shim/macvtap")]
    try:
        upstream = build_upstream()
    except subprocess.CalledProcessError as exc:
        print(f"upstream source not available ({exc.stderr.strip()}): comparing with the Go stand-in")
        upstream = None
    agent.kubelet.wait(lambda: agent.kubelet.plugins.get(PREFIX + "bench"), timeout=30)
    plugins: dict[str, Any] = {"agent": (agent.proc.pid, agent.kubelet.plugins[PREFIX + "bench"].stub, "bench",
                                         shim, agent.socket)}
    if upstream is not None:
        (work / "u").mkdir()
        other = DevicePlugin("upstream", work / "u", upstream, conf.replace('"bench"', '"ubench"'))
        other.kubelet.wait(lambda: other.kubelet.plugins.get(PREFIX + "ubench"), timeout=30)
        plugins["upstream"] = (other.proc.pid, other.kubelet.plugins[PREFIX + "ubench"].stub, "ubench",
                               [str(upstream / "macvtap")], None)
        return plugins, [agent, other], "upstream"
    gobin = work / "dp-go"
    subprocess.run(["go", "build", "-o", str(gobin), "./cmd/deviceplugin"], cwd=REPO / "benchmarks/go-baseline",
                   check=True, env={**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod"})
    go_sock = str(work / "go.sock")
    go = subprocess.Popen([str(gobin), go_sock, "gobench", "dpbnic0", "1000"])
    wait_socket(go_sock)
    plugins["go stand-in"] = (go.pid, rpc.DevicePluginStub(grpc.insecure_channel(f"unix://{go_sock}")), "gobench",
                              None, None)
    return plugins, [agent, go], "go stand-in"


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    parallel = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    if os.geteuid() != 0:
        sys.exit("run as root")
    work = Path(tempfile.mkdtemp(prefix="dpb", dir="/tmp"))  # short: unix socket paths
    subprocess.run(["make", "-s", "-C", str(REPO), "shim"], check=True)
    subprocess.run(["ip", "link", "add", "dpbnic0", "type", "veth", "peer", "name", "dpbsw0"], check=True)
    subprocess.run(["ip", "link", "set", "dpbnic0", "up"], check=True)
    running: list[Any] = []
    try:
        plugins, running, other = start_plugins(work)
        time.sleep(1.0)
        idle = {who: rss_kib(p[0]) for who, p in plugins.items()}
        lat: dict[str, list[float]] = {who: [] for who in plugins}
        for i in range(runs + 10):  # interleaved, one device per call
            for who, (_, stub, name, _, _) in plugins.items():
                t = allocate(stub, f"{name}Mvp{i % 500}")
                if i >= 10:
                    lat[who].append(t)

        def pod_start(who: str, i: int) -> None:
            """Allocate, then the CNI ADD into a fresh namespace (the agent's shim, or upstream's binary)."""
            _, stub, name, cni, socket = plugins[who]
            dev = f"{name}Mvp{500 + i}"
            allocate(stub, dev)
            if cni is None:
                return  # the Go stand-in has no CNI of its own
            ns = f"dpb{who[0]}{i}"
            subprocess.run(["ip", "netns", "add", ns], check=True)
            conf = json.dumps({"cniVersion": "0.4.0", "name": "b", "type": "macvtap", "deviceID": dev}).encode()
            env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": dev, "CNI_NETNS": f"/run/netns/{ns}",
                   "CNI_IFNAME": "net1", "CNI_PATH": str(work),
                   "CNI_ARGS": f"MAC=02:00:00:05:{ord(who[0]):02x}:{i:02x}",
                   "PATH": os.environ["PATH"], **({"MACVTAPCTL_CNI_SOCKET": socket} if socket else {})}
            r = subprocess.run(cni, env=env, input=conf, capture_output=True, check=False)
            assert r.returncode == 0, r.stdout

        peak = dict.fromkeys(plugins, 0)
        total = dict.fromkeys(plugins, 0)  # the daemon plus its CNI processes running at that moment
        with ThreadPoolExecutor(max_workers=parallel * len(plugins)) as pool:
            futures = [pool.submit(pod_start, who, i) for i in range(parallel) for who in plugins]
            while not all(f.done() for f in futures):
                for who, p in plugins.items():
                    daemon = rss_kib(p[0])
                    cni = cni_rss_kib(os.path.realpath(p[3][0])) if p[3] else 0
                    peak[who] = max(peak[who], daemon)
                    total[who] = max(total[who], daemon + cni)
                time.sleep(0.005)
            for f in futures:
                f.result()
        print(f"{'plugin':12s} {'Allocate p50':>13s} {'p99':>9s} {'RSS idle':>10s} {'RSS peak x' + str(parallel):>14s}"
              f" {'with CNI processes':>19s}")
        for who in plugins:
            print(f"{who:12s} {pct(lat[who], 50):11.2f}ms {pct(lat[who], 99):7.2f}ms {idle[who] / 1024:8.1f}MiB "
                  f"{peak[who] / 1024:12.1f}MiB {total[who] / 1024:17.1f}MiB")
        ratio = statistics.median(lat["agent"]) / statistics.median(lat[other])
        print(f"Allocate p50 ratio agent/{other}: {ratio:.2f}x; "
              f"RSS idle ratio {idle['agent'] / idle[other]:.2f}x, under load "
              f"{peak['agent'] / max(peak[other], 1):.2f}x (daemons only), "
              f"{total['agent'] / max(total[other], 1):.2f}x (with the CNI processes of {parallel} pod starts)")
        from benchmarks.common import Row, record

        record(Row("device plugin", "Allocate p50", statistics.median(lat["agent"]) * 1000,
                   statistics.median(lat[other]) * 1000, "ms", other, "<= 1.0x"),
               Row("device plugin", "Allocate p99", pct(lat["agent"], 99), pct(lat[other], 99), "ms", other),
               Row("device plugin", "RSS idle", idle["agent"] / 1024, idle[other] / 1024, "MiB", other,
                   "<= 3.0x (36 MiB)"),
               Row("device plugin", f"RSS peak, {parallel} pod starts (daemon)", peak["agent"] / 1024,
                   peak[other] / 1024, "MiB", other, "<= 2.0x"),
               Row("device plugin", f"RSS peak, {parallel} pod starts (daemon + CNI processes)",
                   total["agent"] / 1024, total[other] / 1024, "MiB", other))
    finally:
        for thing in running:
            if hasattr(thing, "kubelet"):
                thing.stop()
            else:
                thing.terminate()
                thing.wait()
        for i in range(parallel):
            for prefix in ("dpba", "dpbu"):
                subprocess.run(["ip", "netns", "del", f"{prefix}{i}"], check=False, capture_output=True)
        out = subprocess.run(["ip", "-j", "link"], capture_output=True, text=True, check=True).stdout
        for link in json.loads(out):
            if link["ifname"].startswith("mvt"):
                subprocess.run(["ip", "link", "del", link["ifname"]], check=False)
        subprocess.run(["ip", "link", "del", "dpbnic0"], check=False)


if __name__ == "__main__":
    main()
