"""The physical limit of a macvtap VM's live migration (issue 39, Tier 1 of ../shared/research/migration.md §5.2):
plain qemu (TCG) migrating the project's test guest between two network namespaces ("nodes") whose NICs are
macvtaps on their node's lower device, both lower devices ports of one LAN bridge. No kubelet, no KubeVirt: what
the datapath alone allows, and what each hand-off strategy for the two macvtap links costs.

    sudo .venv/bin/python benchmarks/migration.py [--runs 3] [--strategies nothing,source-down,...]

Per run: the guest boots on node A (static address, answers pings), a LAN peer (the bridge's own address) and a
peer on node A (a macvlan on node A's lower device: a VM beside the source, kubevirt#5912's case) ping it every
10 ms; qemu migrates it to node B over a unix socket; the bridge's FDB is watched. Recorded: qemu's own downtime
(query-migrate), each peer's longest gap between replies and its losses, and how often the VM's MAC moved
between the bridge's ports.

Strategies (what is done with the two links; research §6.1):
- nothing: today's macvtap setups. The target link is UP from the start with the kernel's default IPv6 address
  generation (it speaks from the VM's MAC), the source link stays UP until the source "pod" ends (here: the end
  of the measurement, 4 s after the migration completed).
- source-down: as nothing, but the source link is set DOWN the moment qemu reports the migration complete.
- early-silent: the target link UP from the start with `addrgenmode none` (it sends nothing of its own), the
  source link DOWN at completion.
- parked: the target link stays DOWN until the migration completes, then UP; the source link DOWN at once.

Nothing here leaves the machine: every address is in namespaces this script makes and removes (TEST-NET-2).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import Row, record
from tests.harness import guest, l2probe

PREFIX = "mvb"  # every namespace and link this benchmark makes
LAN, NODE_A, NODE_B, PEER_A = f"{PREFIX}-lan", f"{PREFIX}-a", f"{PREFIX}-b", f"{PREFIX}-apeer"
GUEST_IP, LAN_IP, PEER_IP = "198.51.100.50", "198.51.100.1", "198.51.100.2"
MAC = "02:00:5e:77:00:01"
# /dev/tapN is named by ifindex on the host's devtmpfs: the two nodes' links get distinct indexes, and each run new
# ones (a deleted link's node leaves devtmpfs a moment later; opening it then would create a plain file).
TAP_BASE = {NODE_A: 20000, NODE_B: 30000}
_runs = itertools.count(1)
AFTER = 4.0  # seconds measured after the migration completed (the source "pod" ends then, for `nothing`)
PING_SECONDS = 20.0  # each pinger's life: 1 s before the migration, the migration (a few s on TCG), AFTER
STRATEGIES = ("nothing", "source-down", "early-silent", "parked")


def ip(*args: str, ns: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = ["ip", *(["-n", ns] if ns else []), *args]
    return subprocess.run(cmd, check=check, capture_output=True, text=True)


def in_ns(ns: str, *cmd: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *cmd]


def teardown() -> None:
    for ns in (PEER_A, NODE_A, NODE_B, LAN):
        ip("netns", "del", ns, check=False)


def setup() -> None:
    teardown()
    for ns in (LAN, NODE_A, NODE_B, PEER_A):
        ip("netns", "add", ns)
        ip("link", "set", "lo", "up", ns=ns)
    ip("link", "add", "lanbr", "type", "bridge", ns=LAN)
    ip("addr", "add", f"{LAN_IP}/24", "dev", "lanbr", ns=LAN)
    ip("link", "set", "lanbr", "up", ns=LAN)
    for node, port in ((NODE_A, "pa"), (NODE_B, "pb")):
        ip("link", "add", "lan0", "netns", node, "type", "veth", "peer", "name", port, "netns", LAN)
        ip("link", "set", port, "master", "lanbr", "up", ns=LAN)
        ip("link", "set", "lan0", "up", ns=node)
    # The peer beside the source VM: a macvlan (bridge mode) on node A's lower device, in a namespace of its own.
    ip("link", "add", "link", "lan0", "name", "peer0", "type", "macvlan", "mode", "bridge", ns=NODE_A)
    ip("link", "set", "peer0", "netns", PEER_A, ns=NODE_A)
    ip("addr", "add", f"{PEER_IP}/24", "dev", "peer0", ns=PEER_A)
    ip("link", "set", "peer0", "up", ns=PEER_A)


def macvtap(node: str, run: int, *, up: bool, silent: bool) -> str:
    """The VM's link on `node` (MAC = the guest's), as the CNI makes it; returns its /dev/tapN."""
    index = TAP_BASE[node] + run
    ip("link", "add", "link", "lan0", "name", "mvt", "index", str(index), "type", "macvtap", "mode", "bridge",
       ns=node)
    ip("link", "set", "mvt", "address", MAC, ns=node)
    if silent:
        ip("link", "set", "mvt", "addrgenmode", "none", ns=node)
    if up:
        ip("link", "set", "mvt", "up", ns=node)
    tap = Path(f"/dev/tap{index}")
    for _ in range(50):
        if tap.is_char_device():
            return str(tap)
        time.sleep(0.02)
    raise RuntimeError(f"{tap} did not appear")


class Qmp:
    """QEMU's machine protocol on a unix socket: one command at a time; events kept with their arrival time."""

    def __init__(self, path: Path, proc: subprocess.Popen[str]) -> None:
        for _ in range(600):
            if proc.poll() is not None:
                raise RuntimeError(f"qemu exited {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}")
            try:
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.connect(str(path))
                break
            except OSError:
                self.sock.close()
                time.sleep(0.05)
        else:
            raise RuntimeError(f"no QMP socket at {path}")
        self.file = self.sock.makefile("rw")
        self.events: list[tuple[float, str]] = []
        json.loads(self.file.readline())  # greeting
        self.command("qmp_capabilities")

    def command(self, name: str, **arguments: object) -> object:
        self.file.write(json.dumps({"execute": name, "arguments": arguments}) + "\n")
        self.file.flush()
        while True:
            msg = json.loads(self.file.readline())
            if "event" in msg:
                self.events.append((time.monotonic(), msg["event"]))
                continue
            if "error" in msg:
                raise RuntimeError(f"QMP {name}: {msg['error']}")
            return msg.get("return")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def qemu(node: str, tap: str, work: Path, name: str, *, incoming: Path | None) -> tuple[subprocess.Popen[str], Qmp]:
    art = guest.artefacts()
    accel, _ = guest.accelerator()
    qmp = work / f"{name}.qmp"
    args = [guest.QEMU, "-accel", accel, "-machine", "pc", "-m", "128", "-smp", "1", "-nodefaults", "-no-reboot",
            "-display", "none", "-serial", f"file:{work / (name + '.console')}", "-kernel", str(art.kernel),
            "-initrd", str(art.initramfs), "-append",
            f"console=ttyS0 quiet panic=-1 mvt.ip={GUEST_IP}/24 mvt.do=serve:600",
            "-netdev", "tap,id=n0,fd=3,vhost=off", "-device", f"virtio-net-pci,netdev=n0,mac={MAC}",
            "-qmp", f"unix:{qmp},server=on,wait=off"]
    if incoming is not None:
        args += ["-incoming", f"unix:{incoming}"]
    # `3<>` on a path that is not the tap device would create a plain file there: refuse instead.
    proc = subprocess.Popen(in_ns(node, "/bin/sh", "-c", '[ -c "$0" ] || exit 97; exec 3<>"$0"; exec "$@"', tap, *args),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        return proc, Qmp(qmp, proc)
    except BaseException:
        proc.kill()
        raise


@dataclass
class Result:
    strategy: str
    downtime: float  # ms, qemu's
    lan_gap: float  # ms
    peer_gap: float  # ms
    lan_lost: int
    peer_lost: int
    fdb: list[str]


def one_run(strategy: str, work: Path) -> Result:
    setup()
    procs: list[subprocess.Popen[str]] = []
    run = next(_runs)
    try:
        src_tap = macvtap(NODE_A, run, up=True, silent=strategy != "nothing")
        dst_tap = macvtap(NODE_B, run, up=strategy != "parked", silent=strategy != "nothing")
        src, src_qmp = qemu(NODE_A, src_tap, work, "source", incoming=None)
        procs.append(src)
        deadline = time.monotonic() + 60
        while "MVT-READY" not in (work / "source.console").read_text(errors="replace"):
            if time.monotonic() > deadline or src.poll() is not None:
                raise RuntimeError("the guest did not boot: " + (work / "source.console").read_text()[-2000:])
            time.sleep(0.1)
        mig = work / "migration.sock"
        dst, _target_qmp = qemu(NODE_B, dst_tap, work, "target", incoming=mig)
        procs.append(dst)
        lan, peer = l2probe.Pinger(LAN, GUEST_IP, PING_SECONDS), l2probe.Pinger(PEER_A, GUEST_IP, PING_SECONDS)
        lan.start()
        peer.start()
        time.sleep(1.0)  # both peers answered before the migration (the FDB has the MAC on pa)
        fdb = l2probe.FdbWatch(LAN, MAC)
        start = time.time()
        src_qmp.command("migrate", uri=f"unix:{mig}")
        while True:
            info = src_qmp.command("query-migrate")
            assert isinstance(info, dict)
            if info.get("status") == "completed":
                break
            if info.get("status") in ("failed", "cancelled"):
                raise RuntimeError(f"migration {info}")
            time.sleep(0.005)
        done = time.time()
        if strategy == "parked":
            ip("link", "set", "mvt", "up", ns=NODE_B)
        if strategy != "nothing":
            ip("link", "set", "mvt", "down", ns=NODE_A)
        time.sleep(AFTER)
        lan.stop()
        peer.stop()
        fdb.stop()
        window_end = done + AFTER
        return Result(strategy, float(info.get("downtime") or 0), lan.gap_after(start, window_end),
                      peer.gap_after(start, window_end), lan.lost(start, window_end), peer.lost(start, window_end),
                      [f"{port}@{(t - start) * 1000:.0f}ms" for t, port in fdb.moves])
    finally:
        for p in procs:
            with contextlib.suppress(Exception):
                p.kill()
                p.wait(timeout=10)
        teardown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    args = parser.parse_args()
    strategies = args.strategies.split(",")
    for s in strategies:
        if s not in STRATEGIES:
            parser.error(f"unknown strategy {s!r}: one of {', '.join(STRATEGIES)}")
    for tool in ("ip", "bridge", guest.QEMU):
        if not shutil.which(tool):
            sys.exit(f"error: {tool} is missing (python3 tools/prereqs.py test installs it)")
    results: dict[str, list[Result]] = {s: [] for s in strategies}
    with tempfile.TemporaryDirectory(prefix="mvbench-") as tmp:
        for i in range(args.runs):  # strategies interleaved: each sees the same machine load
            for s in strategies:
                work = Path(tmp) / f"{s}-{i}"
                work.mkdir()
                r = one_run(s, work)
                results[s].append(r)
                print(f"{s:13} run {i + 1}: qemu downtime {r.downtime:.0f} ms; LAN gap {r.lan_gap:.0f} ms "
                      f"(lost {r.lan_lost}); node-A peer gap {r.peer_gap:.0f} ms (lost {r.peer_lost}); "
                      f"FDB: {' '.join(r.fdb) or 'no move'}", flush=True)
    rows = []
    for s, rs in results.items():
        down = statistics.median(r.downtime for r in rs)
        rows += [Row("migration (plain qemu)", f"{s}: LAN peer's longest gap", max(r.lan_gap for r in rs), down, "ms",
                     "qemu's downtime (median)", "<= downtime + 50 ms"),
                 Row("migration (plain qemu)", f"{s}: node-A peer's longest gap", max(r.peer_gap for r in rs), down,
                     "ms", "qemu's downtime (median)", "<= 200 ms")]
    record(*rows)


if __name__ == "__main__":
    main()
