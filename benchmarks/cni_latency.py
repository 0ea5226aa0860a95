"""CNI ADD/DEL latency through the shim and the warm agent, against the real upstream macvtap-cni plugin.

    sudo .venv/bin/python benchmarks/cni_latency.py [runs] [parallel]

Needs root, `make shim`, and Go. The comparison is the real kubevirt/macvtap-cni plugin, built offline from
../shared/upstream by tests/compat/build.sh (it speaks cniVersion <= 0.4.0, so both get 0.4.0). Without that
source beside the repository it falls back to benchmarks/go-baseline, a stand-in Go plugin doing macvtap-cni's
ADD/DEL steps with vishvananda/netlink, and says so.
Each run: a fresh pod netns and a temporary macvtap link (not timed), then ADD and DEL (timed, as the
runtime runs them: exec of the plugin binary with CNI_* env and the config on stdin).
Prints p50/p99 per command and plugin, and ADD throughput with `parallel` concurrent ADDs.
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

from benchmarks.common import REPO
from macvtapctl.agent.link_name import temporary_link_name
from tests.harness.paths import UPSTREAM_BUILD


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))] * 1000


def call(plugin: str, command: str, netns: str, device: str, socket: str, mac: str = "02:00:00:00:00:42") -> float:
    conf = json.dumps({"cniVersion": "0.4.0", "name": "bench", "type": "macvtap", "deviceID": device,
                       "mtu": 1400}).encode()
    env = {"CNI_COMMAND": command, "CNI_CONTAINERID": device, "CNI_NETNS": netns, "CNI_IFNAME": "net1",
           "CNI_PATH": str(Path(plugin).parent), "CNI_ARGS": f"MAC={mac}",
           "MACVTAPCTL_CNI_SOCKET": socket, "PATH": os.environ["PATH"]}
    t0 = time.perf_counter()
    p = subprocess.run([plugin], env=env, input=conf, capture_output=True, check=False)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"{plugin} {command} failed: {p.stdout!r} {p.stderr!r}")
    return dt


def one_run(plugin: str, lower: str, socket: str, tag: str) -> tuple[float, float]:
    name, device = f"bn{tag}", f"bench{tag}Mvp0"
    sh("ip", "netns", "add", name)
    sh("ip", "link", "add", temporary_link_name(device), "link", lower, "type", "macvtap", "mode", "bridge")
    try:
        add = call(plugin, "ADD", f"/run/netns/{name}", device, socket)
        delete = call(plugin, "DEL", f"/run/netns/{name}", device, socket)
    finally:
        sh("ip", "netns", "del", name)
        # The agent's DEL gives the link back to the node (a retried sandbox needs it); not timed.
        subprocess.run(["ip", "link", "del", temporary_link_name(device)], check=False, capture_output=True)
    return add, delete


Timings = dict[str, tuple[list[float], list[float]]]


def interleaved(plugins: dict[str, str], runs: int, lower: str, socket: str) -> Timings:
    """Alternate the plugins run by run, so both see the same machine state (netns cleanup, other load)."""
    out: Timings = {label: ([], []) for label in plugins}
    for i in range(runs):
        for j, (label, plugin) in enumerate(plugins.items()):
            add, delete = one_run(plugin, lower, socket, f"{j}x{i}")
            out[label][0].append(add)
            out[label][1].append(delete)
    return out


def throughput(plugin: str, n: int, lower: str, socket: str, tag: str) -> float:
    names = [(f"bp{tag}{i}", f"par{tag}Mvp{i}") for i in range(n)]
    for name, device in names:
        sh("ip", "netns", "add", name)
        sh("ip", "link", "add", temporary_link_name(device), "link", lower, "type", "macvtap", "mode", "bridge")
    try:
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=n) as pool:
            # MACs must differ: macvtaps on one lower device cannot share one.
            list(pool.map(lambda i: call(plugin, "ADD", f"/run/netns/{names[i][0]}", names[i][1], socket,
                                         mac=f"02:00:00:00:01:{i:02x}"), range(n)))
        return n / (time.perf_counter() - t0)
    finally:
        for name, _ in names:
            sh("ip", "netns", "del", name)


def upstream_plugin(work: Path) -> tuple[Path, str]:
    """The real upstream CNI plugin when its source is beside the repository, else the Go stand-in."""
    built = subprocess.run(["bash", str(UPSTREAM_BUILD)], capture_output=True, text=True, check=False)
    if built.returncode == 0:
        return Path(built.stdout.strip().splitlines()[-1]) / "macvtap", "upstream macvtap-cni"
    print(f"upstream source not available ({built.stderr.strip()}): comparing with the Go stand-in")
    gobin = work / "macvtap-go"
    subprocess.run(["go", "build", "-o", str(gobin), "./cmd/cni"], cwd=REPO / "benchmarks" / "go-baseline", check=True,
                   env={**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod"})
    return gobin, "Go stand-in"


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    parallel = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    if os.geteuid() != 0:
        sys.exit("run as root")
    subprocess.run(["make", "-s", "-C", str(REPO), "shim"], check=True)
    work = Path(tempfile.mkdtemp(prefix="cnibench-"))
    gobin, other = upstream_plugin(work)
    shim = work / "macvtap"
    shim.write_bytes((REPO / "macvtapctl/agent/shim/macvtap").read_bytes())
    shim.chmod(0o755)
    socket = str(work / "cni.sock")
    agent = subprocess.Popen([sys.executable, "-m", "macvtapctl", "agent", "--cni-socket", socket, "--no-device-plugin",
                              "--reclaim-interval", "0", "--report-interval", "0",
                              "--metrics-address", "",
                              "--log-level", os.environ.get("BENCH_AGENT_LOG", "warning")], cwd=REPO)
    sh("ip", "link", "add", "benchnic0", "type", "veth", "peer", "name", "benchsw0")
    sh("ip", "link", "set", "benchnic0", "up")
    try:
        while not os.path.exists(socket):
            time.sleep(0.05)
        print(f"{'plugin':28s} {'ADD p50':>9s} {'ADD p99':>9s} {'DEL p50':>9s} {'DEL p99':>9s}  ADD/s x{parallel}")
        plugins = {"shim -> macvtapctl agent": str(shim), other: str(gobin)}
        interleaved(plugins, 10, "benchnic0", socket)  # warm-up
        series = interleaved(plugins, runs, "benchnic0", socket)
        tputs = {}
        for label, plugin in plugins.items():
            adds, dels = series[label]
            tputs[label] = throughput(plugin, parallel, "benchnic0", socket, label[:1])
            print(f"{label:28s} {pct(adds, 50):7.2f}ms {pct(adds, 99):7.2f}ms {pct(dels, 50):7.2f}ms "
                  f"{pct(dels, 99):7.2f}ms  {tputs[label]:6.0f}")
        ours, theirs = series["shim -> macvtapctl agent"], series[other]
        ratio = statistics.median(ours[0]) / statistics.median(theirs[0])
        print(f"ADD p50 ratio agent/{other}: {ratio:.2f}x; {runs} interleaved runs each")
        from benchmarks.common import Row, record

        record(Row("CNI", "ADD p50", pct(ours[0], 50), pct(theirs[0], 50), "ms", other, "<= 1.0x"),
               Row("CNI", "ADD p99", pct(ours[0], 99), pct(theirs[0], 99), "ms", other),
               Row("CNI", "DEL p50", pct(ours[1], 50), pct(theirs[1], 50), "ms", other, "<= 0.9x"),
               Row("CNI", f"ADD/s, {parallel} in parallel (higher is better)", tputs["shim -> macvtapctl agent"],
                   tputs[other], "/s", other))
    finally:
        agent.terminate()
        agent.wait()
        sh("ip", "link", "del", "benchnic0")


if __name__ == "__main__":
    main()
