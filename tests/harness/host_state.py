"""What the test nodes may change on this machine, read the same way before `up` and after `down`: a node's
teardown must give the host back as it found it (issue 38). Each fact is a set or a value that compares equal
when nothing was left behind; `diff` names what differs."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.harness.node import CGROUP_ROOT, HOST_DIRS, SYSCTLS
from tests.harness.node_init import PRIVATE_DIRS

PROCESSES = ("kubelet", "containerd", "containerd-shim-runc-v2", "kube-proxy", "kube-scheduler",
             "kube-controller-manager", "dnsmasq", "qemu-system-x86_64", "virt-handler", "virt-launcher")


def _ip_json(*args: str) -> list[dict[str, Any]]:
    out = subprocess.run(["ip", "-j", *args], check=True, capture_output=True, text=True).stdout
    return list(json.loads(out or "[]"))


def snapshot() -> dict[str, Any]:
    mounts = {line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()}
    procs = set()
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                comm = (p / "comm").read_text().strip()
            except OSError:
                continue
            if comm in PROCESSES or any(comm == name[:15] for name in PROCESSES):
                procs.add(comm)
    return {
        "links": sorted(f"{link['ifname']}:{(link.get('linkinfo') or {}).get('info_kind', '')}"
                        for link in _ip_json("-d", "link", "show")),
        "netns": sorted(p.name for p in Path("/run/netns").iterdir()) if Path("/run/netns").is_dir() else [],
        "routes": sorted(json.dumps(r, sort_keys=True) for r in _ip_json("route", "show", "table", "all")
                         if r.get("table") != "local"),
        "mounts": sorted(mounts),
        "nft": subprocess.run(["nft", "list", "tables"], check=False, capture_output=True, text=True).stdout
        .split("\n"),
        "cgroups": sorted(f"{c.name}/{d.name}" for c in CGROUP_ROOT.iterdir() if c.is_dir()
                          for d in c.iterdir() if d.is_dir()),
        "dirs": sorted(str(d) for d in {*HOST_DIRS, *map(Path, PRIVATE_DIRS)} if d.exists()),
        "sysctls": {name: Path("/proc/sys", *name.split(".")).read_text().strip() for name in SYSCTLS},
        "processes": sorted(procs),
        "run": sorted(p.name for p in Path("/run").iterdir()),
    }


def diff(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """One line per fact that differs: what appeared and what went."""
    lines = []
    for key, b in before.items():
        a = after[key]
        if b == a:
            continue
        if isinstance(b, list):
            lines.append(f"{key}: left {sorted(set(a) - set(b))}, gone {sorted(set(b) - set(a))}")
        else:
            lines.append(f"{key}: {b} -> {a}")
    return lines
