"""Start-up cost of the CLI: `--help` and offline commands must stay cheap (no kubernetes/grpc/pyroute2).

    .venv/bin/python benchmarks/startup.py [runs]

Prints the median and p90 wall time of each command over N cold runs (new interpreter each time).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = [
    ["--help"],
    ["version", "--client"],
    ["version", "--client", "-o", "json"],
]


def measure(args: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "macvtapctl", *args], check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return sorted(times)


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    bare = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        bare.append(time.perf_counter() - t0)
    print(f"{'python -c pass':40s} median {statistics.median(bare) * 1000:6.1f} ms")
    for args in COMMANDS:
        t = measure(args, runs)
        p90 = t[int(len(t) * 0.9) - 1]
        print(f"{'macvtapctl ' + ' '.join(args):40s} median {statistics.median(t) * 1000:6.1f} ms   "
              f"p90 {p90 * 1000:6.1f} ms")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from benchmarks.common import Row, record
    from tests.controlplane.harness import binaries

    kubectl = str(binaries() / "kubectl")
    ours, theirs = [], []
    for _ in range(runs):  # alternately
        ours += measure(["version", "--client", "-o", "json"], 1)
        t0 = time.perf_counter()
        subprocess.run([kubectl, "version", "--client", "-o", "json"], check=True, capture_output=True)
        theirs.append(time.perf_counter() - t0)
    record(Row("start-up", "version --client -o json", statistics.median(ours) * 1000,
               statistics.median(theirs) * 1000, "ms", "kubectl version --client"))


if __name__ == "__main__":
    main()
