"""`doctor`'s rules: every known way a macvtap VM fails to get on the network, as pure functions over a Snapshot
of the cluster (and of what the node agents report) and the View derived from it once. No I/O; ops/doctor.py
gathers the Snapshot.

Each finding has a stable id (docs/doctor.md lists them with an example each), a severity, the object it
concerns, the cause in one sentence and, where there is one, the fix as a command. The checks are grouped by what
they look at: cluster.py (the set-up), nodes.py, vms.py, workloads.py (what does not start).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from macvtapctl.rules.doctor import cluster, nodes, vms, workloads
from macvtapctl.rules.doctor.finding import ERROR, INFO, SEVERITIES, WARNING, Finding
from macvtapctl.rules.doctor.snapshot import Snapshot
from macvtapctl.rules.doctor.view import View
from macvtapctl.rules.doctor.vms import chain_of, narrow

__all__ = [
    "CHECKS",
    "ERROR",
    "INFO",
    "SEVERITIES",
    "WARNING",
    "Check",
    "Finding",
    "Snapshot",
    "View",
    "chain_of",
    "diagnose",
    "narrow",
]

Check = Callable[[Snapshot, View], Iterator[Finding]]
CHECKS: tuple[Check, ...] = (
    workloads.failing_workloads, nodes.resource_capacity, cluster.dp_config, cluster.versions, vms.vm_spec,
    cluster.nad_content, nodes.node_agents, cluster.agent_health, nodes.stale_resources, vms.mac_consistency,
    cluster.l2_explainers, nodes.dhcp_probe, vms.migration_readiness, vms.migration_source_up,
    vms.migration_target_parked)


def diagnose(s: Snapshot, v: View | None = None) -> list[Finding]:
    """Every finding, errors first and, among them, what the failing workloads say; in a stable order. `v`: the
    snapshot's View when the caller has built it already."""
    v = View.of(s) if v is None else v
    found = [f for check in CHECKS for f in check(s, v)]
    rank = {sev: i for i, sev in enumerate(SEVERITIES)}

    def group(f: Finding) -> int:  # a known cause of a failing workload, then a verbatim one, then the rest
        return 0 if f.id.startswith("workload-") and f.id != "workload-failing" else 1 if f.id.startswith(
            "workload-") else 2

    return sorted(found, key=lambda f: (rank[f.severity], group(f), f.id, f.object, f.cause))
