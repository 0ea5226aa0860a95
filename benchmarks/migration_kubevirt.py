"""A macvtap VM's live migration in three rows from one run (issue 39): the limit (plain qemu between two network
namespaces, benchmarks/migration.py's early-silent strategy: qemu's own downtime and the gaps with a perfect
hand-off), then KubeVirt on two real nodes (tests/harness: libvirt, virt-handler, two kubelets on this machine)
migrating a VM written by `vm create --apply`, first on upstream macvtap-cni (built from ../shared/upstream), then,
after `install --take-over`, on the agent with its hand-off. Each migration: the LAN and a pod beside the VM on the
source node's NIC (kubevirt#5912's victim) and a pod on the target node's NIC ping it every 10 ms until the
source pod has ended.

    sudo .venv/bin/python -m benchmarks.migration_kubevirt [--runs 2]

Without ../shared/upstream the upstream row is not measured (said so). Upstream and agent cannot interleave: the
take-over sits between them; both run on the same cluster, one after the other. Nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks import migration as limit
from benchmarks.common import Row, record
from tests.e2e_kubevirt.vms import ARRIVAL_IP, Moved, measured_migration, neighbour_pod, vm_on_node_a
from tests.harness.cluster import POD_NS, Cluster, lan_dhcp, running_cluster
from tests.harness.controlplane import NODE_NAME
from tests.harness.images import AGENT_IMAGE
from tests.harness.second_node import NAME as NODE_B
from tests.harness.upstream_node import deploy_upstream, upstream_available, upstream_image


def there_and_back(c: Cluster, mac: str, ip: str, neighbour: dict[str, Any], arrival: dict[str, Any],
                   runs: int) -> list[Moved]:
    """`runs` measured migrations A -> B, each followed by an unmeasured one back (the neighbours stay put: one on
    A, kubevirt#5912's victim, one on B, where the target link waits for the guest)."""
    out = []
    for i in range(runs):
        moved = measured_migration(c, "bench-mover", mac, ip, NODE_B, neighbour, arrival)
        print(f"  run {i + 1}: {moved.row()}", flush=True)
        out.append(moved)
        c.mvc("vm", "migrate", "bench-mover", "-n", POD_NS, "--to", NODE_NAME, "--wait")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mvbench-kv-") as tmp:
        print("the limit: plain qemu, early-silent target, source down at completion", flush=True)
        plain = []
        for i in range(args.runs):
            work = Path(tmp) / f"limit-{i}"
            work.mkdir()
            plain.append(limit.one_run("early-silent", work))
            print(f"  run {i + 1}: qemu downtime {plain[-1].downtime:.0f} ms; LAN gap {plain[-1].lan_gap:.0f} ms; "
                  f"node-A peer gap {plain[-1].peer_gap:.0f} ms", flush=True)
        with_upstream = upstream_available()
        if not with_upstream:
            print("NOT MEASURED: the upstream row (its source, ../shared/upstream/macvtap-cni-*.tar.gz, is not beside "
                  "this checkout)", flush=True)
        upstream: list[Moved] = []
        with running_cluster(Path(tmp) / "cp", kubevirt=True, nodes=2,
                             images=upstream_image if with_upstream else None,
                             deploy=deploy_upstream if with_upstream else Cluster.deploy) as c, lan_dhcp(c):
            mac, _, lease = vm_on_node_a(c, "bench-mover")
            neighbour = neighbour_pod(c, "bench-neighbour", NODE_NAME)
            arrival = neighbour_pod(c, "bench-arrival", NODE_B, ARRIVAL_IP)
            if with_upstream:
                print("KubeVirt, upstream macvtap-cni:", flush=True)
                upstream = there_and_back(c, mac, lease["ip"], neighbour, arrival, args.runs)
                c.mvc("install", "--take-over", "--image", AGENT_IMAGE, "--timeout", "3m")
            print("KubeVirt, the agent:", flush=True)
            agent = there_and_back(c, mac, lease["ip"], neighbour, arrival, args.runs)
    down = statistics.median(r.downtime for r in plain)
    limit_lan = max(r.lan_gap for r in plain)
    rows = [Row("migration (KubeVirt)", "agent: LAN's longest gap", max(m.lan_gap for m in agent), limit_lan, "ms",
                "plain qemu's, same hand-off (the limit)"),
            Row("migration (KubeVirt)", "agent: LAN's longest gap, against qemu's downtime",
                max(m.lan_gap for m in agent), down, "ms", "qemu's downtime (median, plain qemu)",
                "<= downtime + 50 ms")]
    if upstream:
        rows += [Row("migration (KubeVirt)", "source-node neighbour's longest gap", max(m.beside_gap for m in agent),
                     max(m.beside_gap for m in upstream), "ms", "upstream macvtap-cni (kubevirt#5912)", "<= 200 ms"),
                 Row("migration (KubeVirt)", "LAN's longest gap", max(m.lan_gap for m in agent),
                     max(m.lan_gap for m in upstream), "ms", "upstream macvtap-cni"),
                 Row("migration (KubeVirt)", "target-node neighbour's longest gap",
                     max(m.arrival_gap or 0.0 for m in agent), max(m.arrival_gap or 0.0 for m in upstream), "ms",
                     "upstream macvtap-cni (its target link up and idle until the guest resumes; the agent parks it)")]
    record(*rows)


if __name__ == "__main__":
    sys.exit(main())
