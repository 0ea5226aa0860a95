"""What every benchmark shares: timing a command with its peak RSS, percentiles, and the rows `make bench` prints
in one table (benchmarks/run.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GNU_TIME = shutil.which("time", path="/usr/bin:/bin") or "/usr/bin/time"
RESULTS_ENV = "MACVTAPCTL_BENCH_RESULTS"  # a JSON-lines file run.py reads; unset: rows are only printed


@dataclass
class Row:
    """One compared figure: ours against a reference (upstream macvtap-cni, kubectl) on the same machine."""

    benchmark: str
    figure: str
    ours: float
    reference: float
    unit: str
    against: str
    goal: str = ""  # e.g. "<= 1.0x"

    @property
    def ratio(self) -> float:
        return self.ours / self.reference if self.reference else float("inf")


def record(*rows: Row) -> None:
    path = os.environ.get(RESULTS_ENV)
    for row in rows:
        versus = (f" vs {row.against} {row.reference:.2f} {row.unit} = {row.ratio:.2f}x" if row.reference
                  else "")
        print(f"  {row.figure}: {row.ours:.2f} {row.unit}{versus}" + (f" (goal {row.goal})" if row.goal else ""))
    if path:
        with open(path, "a") as out:
            for row in rows:
                out.write(json.dumps(asdict(row)) + "\n")


def measured(argv: list[str], *, env: dict[str, str] | None = None, check: bool = True) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one process, output discarded (see Measured)."""
    proc = Measured(argv, env=env)
    elapsed, peak, _cpu = proc.finish(check=check)
    return elapsed, peak


class Measured:
    """Start one process under GNU time; finish() gives wall seconds, peak RSS (KiB) and CPU seconds.

    The peak comes from GNU time (/usr/bin/time, Debian's `time` package), which forks the command from its own
    small process: a child forked by this Python process would inherit its high-water mark (getrusage's
    ru_maxrss survives exec), so every command would seem to use at least this benchmark's memory."""
    def __init__(self, argv: list[str], *, env: dict[str, str] | None = None) -> None:
        if not os.path.exists(GNU_TIME):
            raise SystemExit(f"{GNU_TIME} not found: install GNU time (Debian: apt-get install time)")
        self.argv = argv
        self.out = tempfile.NamedTemporaryFile(mode="r", suffix=".time")  # noqa: SIM115 - closed in finish()
        self.t0 = time.perf_counter()
        self.proc = subprocess.Popen([GNU_TIME, "-f", "%M %U %S", "-o", self.out.name, *argv], env=env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.ended = 0.0  # perf_counter() when it exited

        def stamp() -> None:
            self.proc.wait()
            self.ended = time.perf_counter()

        self.waiter = threading.Thread(target=stamp, daemon=True)
        self.waiter.start()

    def finish(self, *, check: bool = True) -> tuple[float, int, float]:
        _, err = self.proc.communicate()
        self.waiter.join()
        elapsed = self.ended - self.t0
        lines = self.out.read().strip().splitlines()
        self.out.close()
        if check and self.proc.returncode not in (0, 8):  # 8: findings (vm check, doctor), still a complete read
            raise RuntimeError(f"{' '.join(self.argv)} exited {self.proc.returncode}: "
                               f"{err.decode(errors='replace')[-2000:]}")
        fields = lines[-1].split() if lines else []
        if len(fields) != 3:
            return elapsed, 0, 0.0
        return elapsed, int(fields[0]), float(fields[1]) + float(fields[2])


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def median(values: list[float]) -> float:
    return pct(values, 50)
