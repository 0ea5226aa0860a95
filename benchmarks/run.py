"""`make bench`: every benchmark, then one table of what was compared, with ratios.

    sudo .venv/bin/python -m benchmarks.run [--quick]

Runs, one after another (never in parallel: they would time each other): start-up (vs kubectl, the small reads on a
local control plane) and rendering, scale reads and writes and install --wait (vs kubectl, on a local control
plane), CNI ADD/DEL and the device plugin (vs the real upstream macvtap-cni when ../shared/upstream is beside the
repository, else its Go stand-in, said so), the agent at capacity under churn (BENCH_CHURN_SECONDS, default 600),
and a VM started by KubeVirt (vs the hand-made launcher, interleaved) with KubeVirt's memory. --quick: smaller
sizes and a 60 s churn, for a smoke run. Benchmarks time and compare; tests never assert timings.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import REPO, RESULTS_ENV


def machine() -> str:
    cpus = os.cpu_count()
    mem = next((int(line.split()[1]) // 1024 // 1024 for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal:")), 0)
    return f"{cpus} CPUs, {mem} GiB, Linux {platform.release()}, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    py = sys.executable
    churn = "60" if args.quick else os.environ.get("BENCH_CHURN_SECONDS", "600")
    plan: list[tuple[str, list[str]]] = [
        ("start-up", [py, "-m", "benchmarks.startup", "5" if args.quick else "15"]),
        ("render", [py, "-m", "benchmarks.render_vms", "1000", "3"]),
        ("scale", [py, "-m", "benchmarks.scale", *(["--vms", "1000", "--namespaces", "10", "--nodes", "100",
                                                 "--nads", "40", "--writes", "200", "--runs", "2"]
                                                if args.quick else [])]),
        ("CNI", [py, "-m", "benchmarks.cni_latency", "50" if args.quick else "200", "20"]),
        ("device plugin", [py, "-m", "benchmarks.deviceplugin", "50" if args.quick else "200", "30"]),
        ("agent at capacity", [py, "-m", "benchmarks.agent_churn", "--seconds", churn]),
        ("VM started by KubeVirt", [py, "-m", "benchmarks.vm_kubevirt", "--runs", "2" if args.quick else "5"]),
        ("migration, the limit (plain qemu)", [py, "-m", "benchmarks.migration", "--runs", "1" if args.quick else "3"]),
        ("migration under KubeVirt: limit, agent, upstream", [py, "-m", "benchmarks.migration_kubevirt", "--runs",
                                                               "1" if args.quick else "2"]),
    ]
    results = Path(tempfile.mkstemp(prefix="bench-", suffix=".jsonl")[1])
    env = {**os.environ, RESULTS_ENV: str(results), "PYTHONPATH": str(REPO)}
    failed = []
    for name, argv in plan:
        print(f"=== {name}: {' '.join(argv[1:])}", flush=True)
        started = time.monotonic()
        if subprocess.run(argv, cwd=REPO, env=env, check=False).returncode != 0:
            failed.append(name)
        print(f"=== {name}: {time.monotonic() - started:.0f} s", flush=True)
    rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    print(f"\nmacvtapctl benchmarks, {time.strftime('%Y-%m-%d')}, {machine()}\n")
    print("| benchmark | figure | macvtapctl | reference | ratio | goal |\n|---|---|---:|---:|---:|---|")
    for r in rows:
        ratio = f"{r['ours'] / r['reference']:.2f}x" if r["reference"] else "-"
        ref = f"{r['reference']:.2f} {r['unit']} ({r['against']})" if r["reference"] else r["against"] or "-"
        print(f"| {r['benchmark']} | {r['figure']} | {r['ours']:.2f} {r['unit']} | {ref} | {ratio} | {r['goal']} |")
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
