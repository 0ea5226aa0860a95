"""Rendering many VMs offline: `vm create NAME --count N --network dp --mac auto -o yaml`.

    .venv/bin/python benchmarks/render_vms.py [N] [runs]

Reports the median wall time for N VMs and for one VM (start-up), and the difference: the work of
rendering N VMs beyond start-up. Target for N=1000: well under a second.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time


def run(count: int, fmt: str, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "macvtapctl", "vm", "create", "web", "--count", str(count),
                        "--network", "dataplane", "--mac", "auto", "-o", fmt], check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    from benchmarks.common import Row, record

    for fmt in ("yaml", "json"):
        one = run(1, fmt, runs)
        many = run(n, fmt, runs)
        print(f"-o {fmt}: 1 VM {one * 1000:6.0f} ms   {n} VMs {many * 1000:6.0f} ms   "
              f"work beyond start-up {(many - one) * 1000:6.0f} ms ({(many - one) / n * 1e6:.0f} us/VM)")
        record(Row("render", f"vm create --count {n} -o {fmt} (offline)", many * 1000, 0, "ms", ""))


if __name__ == "__main__":
    main()
