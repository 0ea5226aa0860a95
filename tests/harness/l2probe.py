"""What a LAN peer sees of a VM while it moves: a raw-ICMP pinger (every 5-10 ms, the reply times) and the LAN
switch's forwarding table for the VM's MAC (each time it is learnt on another port). Shared by the KubeVirt
migration test and benchmarks/migration.py (iputils' ping is not on every machine; busybox's cannot go below 1 s).

    python -m tests.harness.l2probe ping TARGET INTERVAL DURATION   (in a namespace, as root: JSON on stdout)
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path


def icmp_pinger(target: str, interval: float, duration: float) -> dict[str, list[float]]:
    """Echo requests to `target` every `interval` s for `duration` s from this namespace (raw ICMP socket): the
    wall-clock time of each request sent and each reply received."""
    import os

    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    ident = os.getpid() & 0xFFFF
    replies: list[float] = []
    sends: list[float] = []
    stop = threading.Event()

    def checksum(data: bytes) -> int:
        total = sum(struct.unpack(f"!{len(data) // 2}H", data))
        total = (total >> 16) + (total & 0xFFFF)
        return ~(total + (total >> 16)) & 0xFFFF

    def receive() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                packet = sock.recv(2048)
            except TimeoutError:
                continue
            header = (packet[0] & 0x0F) * 4
            kind, _code, _sum, rid, _seq = struct.unpack("!BBHHH", packet[header:header + 8])
            if kind == 0 and rid == ident:
                replies.append(time.time())

    thread = threading.Thread(target=receive, daemon=True)
    thread.start()
    ended = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: ended.set())  # Pinger.stop(): end now, report what was seen
    seq, end = 0, time.monotonic() + duration
    while time.monotonic() < end and not ended.is_set():
        seq = (seq + 1) & 0xFFFF
        body = struct.pack("!d", time.time()) + b"mvprobe!"
        head = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
        head = struct.pack("!BBHHH", 8, 0, checksum(head + body), ident, seq)
        with contextlib.suppress(OSError):  # unreachable for a moment: that is what is measured
            sock.sendto(head + body, (target, 0))
            sends.append(time.time())
        time.sleep(interval)
    time.sleep(0.3)
    stop.set()
    thread.join()
    return {"sends": sends, "replies": replies}


def in_ns(ns: str, *cmd: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *cmd]


@dataclass
class Pinger:
    """icmp_pinger in namespace `ns` (or a process's: `nsenter` prefix in `enter`), in a process of its own."""

    ns: str | None
    target: str
    duration: float
    interval: float = 0.01
    enter: list[str] = field(default_factory=list)
    proc: subprocess.Popen[str] | None = None
    replies: list[float] = field(default_factory=list)
    sends: list[float] = field(default_factory=list)

    def start(self) -> None:
        cmd = [sys.executable, str(Path(__file__).resolve()), "ping", self.target, str(self.interval),
               str(self.duration)]
        # A session of its own: stop() signals the whole group, so a pinger behind `nsenter -p` (which forks and
        # does not pass signals on: node B's pods) ends too.
        self.proc = subprocess.Popen(in_ns(self.ns, *cmd) if self.ns else [*self.enter, *cmd],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True)

    def stop(self, now: bool = False) -> None:
        """Collect the times (`now`: end the pinger first; otherwise it ends after its duration)."""
        assert self.proc is not None
        if now and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
        out, err = self.proc.communicate(timeout=self.duration + 30)
        # An nsenter that forked dies of the signal itself while its child, the pinger, reports and exits 0.
        ended = self.proc.returncode == 0 or (now and self.proc.returncode == -signal.SIGTERM and out.strip())
        if not ended:
            raise RuntimeError(f"pinger ({self.ns or self.enter}) failed ({self.proc.returncode}): {err}")
        try:
            doc = json.loads(out)
        except ValueError:
            raise RuntimeError(f"pinger ({self.ns or self.enter}) printed no report: {out[-300:]!r} {err}") from None
        self.replies, self.sends = doc["replies"], doc["sends"]

    def lost(self, since: float, until: float) -> int:
        """Requests sent in [since, until - 0.2 s] minus the replies received in [since, until]."""
        sent = sum(1 for t in self.sends if since < t < until - 0.2)
        return max(0, sent - sum(1 for t in self.replies if since < t < until))

    def gap_after(self, since: float, until: float) -> float:
        """The longest time without a reply, in ms, within [since, until] (wall clock)."""
        points = [since, *[t for t in self.replies if since < t < until], until]
        return max(b - a for a, b in itertools.pairwise(points)) * 1000


class FdbWatch:
    """`bridge monitor fdb` in the LAN's namespace: each time `mac` is (re)learnt on another port."""

    def __init__(self, ns: str, mac: str) -> None:
        self.mac = mac.lower()
        self.moves: list[tuple[float, str]] = []
        self.proc = subprocess.Popen(in_ns(ns, "bridge", "monitor", "fdb"), stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            m = re.search(r"dev (\S+)", line) if line.lower().startswith(self.mac) and "Deleted" not in line else None
            if m and (not self.moves or self.moves[-1][1] != m[1]):
                self.moves.append((time.time(), m[1]))

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=5)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "ping":
        print(json.dumps(icmp_pinger(sys.argv[2], float(sys.argv[3]), float(sys.argv[4]))))
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
